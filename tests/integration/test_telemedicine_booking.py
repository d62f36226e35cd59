"""Remote registration against a real server process on loopback (uvicorn in a thread, real
sockets), on SQLite and PostgreSQL: the booking race, idempotent retry, cancellation."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from ehr_store import SqlStore, Store, StoreSettings
from hie_server.app import create_app
from hie_server.operations.telemedicine import telemedicine_module
from hie_server.settings import HieSettings
from telemedicine import TelemedicineService

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "telemedicine"))
from world import next_monday, seed_residents, template

RACERS = 60


def _patients(store: Store, count: int) -> None:
    with store.unit_of_work(write=True) as uow:
        for n in range(count):
            uow.resources.create(
                {
                    "resourceType": "Patient",
                    "name": [{"family": "测", "given": [f"乙{n}"]}],
                    "meta": {"tag": [{"system": "urn:qyhie:empi", "code": "golden"}]},
                },
                id=f"R-{n}",
            )
        uow.commit()


@pytest.fixture(params=["sqlite", "postgres"])
def server(request: pytest.FixtureRequest) -> Iterator[tuple[str, Store, TelemedicineService]]:
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_store_url")
    settings = HieSettings(store=StoreSettings(database_url=url, pool_size=20, max_overflow=20))
    store = SqlStore(settings.store)
    service = TelemedicineService(store, settings.telemedicine)
    app = create_app(settings, store, modules=[telemedicine_module(service)])
    config = uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="off", log_level="warning")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    while not srv.started:
        time.sleep(0.02)
    port = srv.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/fhir", store, service
    finally:
        srv.should_exit = True
        thread.join(10)
        service.close()
        store.close()


def _params(**values: Any) -> dict[str, Any]:
    out = []
    for name, value in values.items():
        key = {"slot": "valueReference", "patient": "valueReference", "identifier": "valueIdentifier"}.get(
            name, "valueString"
        )
        out.append({"name": name, key: {"reference": value} if key == "valueReference" else value})
    return {"resourceType": "Parameters", "parameter": out}


def _publish(service: TelemedicineService) -> list[str]:
    report = service.publish(template(), next_monday(), 1)
    return sorted(r.split("/")[1] for r in report.created)


def test_racing_for_the_last_place_gives_one_booking(server: tuple[str, Store, TelemedicineService]) -> None:
    base, store, service = server
    _patients(store, RACERS)
    slot = _publish(service)[0]
    barrier = threading.Barrier(RACERS)
    answers: list[httpx.Response | Exception] = [None] * RACERS  # type: ignore[list-item]

    def race(n: int) -> None:
        with httpx.Client(timeout=60) as client:
            body = _params(
                slot=f"Slot/{slot}",
                patient=f"Patient/R-{n}",
                identifier={"system": "urn:test:village", "value": f"race-{n}"},
            )
            barrier.wait()
            try:
                answers[n] = client.post(f"{base}/Appointment/$book", json=body)
            except Exception as exc:  # collected and asserted below
                answers[n] = exc

    threads = [threading.Thread(target=race, args=(n,)) for n in range(RACERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    statuses = sorted(a.status_code if isinstance(a, httpx.Response) else repr(a) for a in answers)
    assert statuses.count(201) == 1, statuses
    assert statuses.count(409) == RACERS - 1, statuses
    loser = next(a for a in answers if isinstance(a, httpx.Response) and a.status_code == 409)
    outcome = loser.json()
    assert outcome["resourceType"] == "OperationOutcome" and outcome["issue"][0]["code"] == "conflict"
    assert "fully booked" in outcome["issue"][0]["diagnostics"]
    with store.unit_of_work() as uow:
        booked = uow.resources.search("Appointment", [("slot", f"Slot/{slot}"), ("status", "booked")])
        assert len(booked.matches) == 1
        assert uow.resources.read("Slot", slot).as_dict()["status"] == "busy"


def test_idempotent_retry_and_cancellation_frees_the_slot(
    server: tuple[str, Store, TelemedicineService],
) -> None:
    base, store, service = server
    seed_residents(store)
    _patients(store, 2)
    slots = _publish(service)
    ident = {"system": "urn:test:village", "value": "bad-line-1"}
    with httpx.Client(timeout=30) as client:
        first = client.post(
            f"{base}/Appointment/$book",
            json=_params(slot=f"Slot/{slots[1]}", patient="Patient/TTWSY-A", identifier=ident),
        )
        again = client.post(
            f"{base}/Appointment/$book",
            json=_params(slot=f"Slot/{slots[1]}", patient="Patient/TTWSY-A", identifier=ident),
        )
        assert first.status_code == 201, first.text
        assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
        appt = first.json()
        assert appt["status"] == "booked" and appt["participant"][0]["actor"]["reference"] == "Patient/G-A"
        other = client.post(
            f"{base}/Appointment/$book", json=_params(slot=f"Slot/{slots[1]}", patient="Patient/R-0")
        )
        assert other.status_code == 409
        fee = client.get(f"{base}/ChargeItem", params={"patient": "Patient/G-A"}).json()["entry"]
        assert len(fee) == 1 and fee[0]["resource"]["status"] == "billable"
        assert str(fee[0]["resource"]["priceOverride"]["value"]) in ("10.00", "10.0", "10")
        cancelled = client.post(
            f"{base}/Appointment/{appt['id']}/$cancel",
            json=_params(reasonCode="pat", reason="村医: 患者已好转"),
        )
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
        slot = client.get(f"{base}/Slot/{slots[1]}").json()
        assert slot["status"] == "free"
        retaken = client.post(
            f"{base}/Appointment/$book", json=_params(slot=f"Slot/{slots[1]}", patient="Patient/R-0")
        )
        assert retaken.status_code == 201, retaken.text
        fee_after = client.get(f"{base}/ChargeItem/{fee[0]['resource']['id']}").json()
        assert fee_after["status"] == "aborted"
        notes = client.get(f"{base}/Communication", params={"based-on": f"Appointment/{appt['id']}"}).json()
        events = sorted(e["resource"]["category"][0]["coding"][0]["code"] for e in notes["entry"])
        assert events == ["appointment-booked", "appointment-cancelled"]
        found = client.get(
            f"{base}/Appointment/$find",
            params={"specialty": "03.04", "start": next_monday().isoformat(), "county": "4418"},
        ).json()
        open_ids = {e["resource"]["id"] for e in found["entry"]}
        assert slots[1] not in open_ids and slots[2] in open_ids
