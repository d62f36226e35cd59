"""The workbench without an identity provider (`make demo`): the loopback-only local operator,
in process (no browser), over a SQLite store fed with the sample feed through the ingest service.
Checks what the browser tests do not: the mapping form for an unmapped local code (ConceptMap
version and re-coded resources), the loopback-only rule, the English pages, page build times.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ehr_store import SqlStore, StoreSettings
from ehr_store.empi import EmpiService, load_rules
from hie_server import cli_hl7
from hie_server.app import create_app
from hie_server.operations.telemedicine import telemedicine_module
from hie_server.settings import HieSettings
from hie_server.startup import ensure_terminology
from hie_server.web import admin_module, workbench_router
from telemedicine import TelemedicineService
from terminology import TerminologyService

REPO = Path(__file__).resolve().parents[2]
FEED = Path(os.environ.get("HIE_SAMPLES_DIR", REPO / ".." / "shared" / "samples")) / "feed-small"
LOOPBACK = ("127.0.0.1", 40000)


@pytest.fixture(scope="module")
def app_and_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[object, SqlStore]]:
    if not FEED.is_dir():
        pytest.skip(f"sample feed missing at {FEED}")
    from ehr_store import upgrade_schema

    url = f"sqlite:///{tmp_path_factory.mktemp('wb-local') / 'hie.db'}"
    upgrade_schema(url)
    settings = HieSettings(store=StoreSettings(database_url=url))
    store = SqlStore(settings.store)
    terminology = TerminologyService(store, settings.terminology)
    ensure_terminology(store, terminology)
    empi = EmpiService(load_rules(settings.empi))
    ingest = cli_hl7.build_ingest_service(settings, store, terminology=terminology, empi=empi)
    for path in sorted((FEED / "feeds").rglob("*.hl7")):
        ingest.ingest(path.read_bytes(), transport="file")
    telemed = TelemedicineService(store, settings.telemedicine)
    modules = [admin_module(ingest, empi, terminology), telemedicine_module(telemed)]
    app = create_app(settings, store, modules=modules, root_routers=[workbench_router(settings)])
    yield app, store
    telemed.close()
    store.close()


@pytest.fixture
def client(app_and_store: tuple[object, SqlStore]) -> Iterator[TestClient]:
    with TestClient(app_and_store[0], client=LOOPBACK) as c:  # type: ignore[arg-type]
        assert c.get("/workbench/login").status_code == 200  # signed in as the local operator
        yield c


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "the page carries a CSRF token"
    return found.group(1)


def test_only_loopback_gets_the_local_operator(app_and_store: tuple[object, SqlStore]) -> None:
    with TestClient(app_and_store[0], client=("192.0.2.7", 5000)) as remote:  # type: ignore[arg-type]
        answer = remote.get("/workbench/login")
        assert answer.status_code == 403 and "loopback" in answer.text
        assert remote.get("/workbench/admin/feeds", follow_redirects=False).status_code == 303


def test_mapping_an_unmapped_code_recodes_the_record(client: TestClient) -> None:
    page = client.get("/workbench/admin/terminology", params={"sender": "QYRMYY"})
    assert page.status_code == 200 and "DX-CHEST" in page.text
    form = {
        "csrf": _csrf(page.text),
        "sender": "QYRMYY",
        "system": re.search(r'name="system" value="([^"]*DX[^"]*|[^"]+)"', page.text).group(1),  # type: ignore[union-attr]
        "code": "DX-CHEST",
        "display": "胸部正位片",
        "targetSystem": "http://loinc.org",
        "targetCode": "36643-5",
        "targetDisplay": "XR Chest 2V",
    }
    refused = client.post("/workbench/admin/terminology", data={**form, "csrf": "wrong"})
    assert refused.status_code == 403 and "CSRF" in refused.text
    done = client.post("/workbench/admin/terminology", data=form)
    assert done.status_code == 200
    updated = re.search(r"映射已保存，已更新 (\d+) 条记录", done.text)
    assert updated and int(updated.group(1)) > 0, done.text[-2000:]
    after = client.get("/workbench/admin/terminology", params={"sender": "QYRMYY"})
    assert "DX-CHEST" not in after.text
    recoded = client.get("/fhir/ServiceRequest", params={"code": "http://loinc.org|36643-5", "_count": 1})
    assert recoded.json().get("entry"), "stored orders now carry the LOINC coding"


def test_english_pages_and_build_times(client: TestClient) -> None:
    client.get("/workbench/lang/en", params={"next": "/workbench/"})
    home = client.get("/workbench/")
    assert "Find a resident" in home.text and "Local operator" in home.text
    for path in (
        "/workbench/residents?q=jiangjiali",
        "/workbench/admin/feeds",
        "/workbench/admin/empi",
        "/workbench/admin/audit",
        "/workbench/consultations",
        "/workbench/booking?find=1",
    ):
        started = time.perf_counter()
        answer = client.get(path)
        assert answer.status_code == 200, (path, re.findall(r"class=\"message\">([^<]*)", answer.text))
        assert time.perf_counter() - started < 1.0, f"{path} took more than 1 s"
    feeds = client.get("/workbench/admin/feeds").text
    assert "Error queue" in feeds and "Replay" in feeds
    client.get("/workbench/lang/zh")
