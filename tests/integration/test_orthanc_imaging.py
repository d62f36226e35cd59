"""Imaging against a real Orthanc (Debian `orthanc` + `orthanc-dicomweb`) and real PostgreSQL.

One Orthanc per module (tests/orthanc_server.py: throwaway config, authentication on,
RemoteAccessAllowed false, DefaultEncoding Chinese). Each test starts its bridge at the
feed's current end, so earlier tests' studies are not re-indexed into its empty database.

Residents come from tests/auth_world.py: A (TTWSY-A, MRN A001 at TTWSY, referred TTWSY ->
QYRMYY with consent), B (QYRMYY-B, MRN B001 at QYRMYY, no referral).
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom
import pytest
from fastapi.testclient import TestClient
from pydicom.data import get_charset_files
from pydicom.uid import generate_uid

from ehr_store import SqlStore, Store, StoreSettings, json_loads
from ehr_store.resident_id import RESIDENT_ID_SYSTEM, check_character
from hie_server.app import create_app
from hie_server.auth import AuthSettings
from hie_server.operations.imaging import imaging_router
from hie_server.settings import HieSettings
from imaging import (
    ImagingBridge,
    ImagingSettings,
    OrthancClient,
    export_study,
    study_resource_id,
    upload_files,
)

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS))
import orthanc_server  # noqa: E402
from auth_world import seed  # noqa: E402
from local_issuer import served_issuer  # noqa: E402
from orthanc_server import make_dicom  # noqa: E402

# tests/conftest.py by path: `import conftest` may give another folder's conftest when several
# test folders are collected together (its service_unavailable is stateless)
_root_spec = importlib.util.spec_from_file_location("hie_tests_conftest", TESTS / "conftest.py")
assert _root_spec and _root_spec.loader
_root_conftest = importlib.util.module_from_spec(_root_spec)
_root_spec.loader.exec_module(_root_conftest)
service_unavailable = _root_conftest.service_unavailable


SPECIALIST = {
    "preferred_username": "specialist.qyrmyy",
    "realm_access": {"roles": ["specialist"]},
    "facility": "QYRMYY",
    "county": "441802",
    "sub": "u-spec",
}
ADMIN = {
    "preferred_username": "admin",
    "realm_access": {"roles": ["hie-admin"]},
    "facility": None,
    "county": None,
    "sub": "u-admin",
}
FEED_TTWSY = {
    "preferred_username": "service-account-feed-ttwsy",
    "realm_access": {"roles": ["clinic-feed"]},
    "azp": "feed-ttwsy",
    "sub": "u-feed",
    "facility": "TTWSY",
}


def resident_id(first17: str) -> str:
    return first17 + check_character(first17)


RID_C = resident_id("44182119800101002")  # invented
RID_OTHER = resident_id("44180219750505003")


# -- fixtures ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def orthanc() -> Iterator[orthanc_server.OrthancServer]:
    try:
        server = orthanc_server.start_orthanc()
    except orthanc_server.OrthancUnavailable as exc:
        service_unavailable(f"Orthanc could not be started: {exc}")
        raise
    try:
        yield server
    finally:
        orthanc_server.remove_orthanc(server)


def imaging_settings(orthanc: orthanc_server.OrthancServer) -> ImagingSettings:
    return ImagingSettings(
        orthanc_url=orthanc.url,
        orthanc_username=orthanc.username,
        orthanc_password=orthanc.password,
        poll_seconds=0.2,
        dicomweb_url="http://testserver/dicom-web",
    )


def client_of(orthanc: orthanc_server.OrthancServer) -> OrthancClient:
    return OrthancClient(orthanc.url, orthanc.username, orthanc.password, 30)


def order(sr_id: str, patient: str, fac: str, accession: str) -> dict[str, Any]:
    return {
        "resourceType": "ServiceRequest",
        "id": sr_id,
        "meta": {"source": f"urn:qyhie:facility:{fac}"},
        "status": "active",
        "intent": "order",
        "subject": {"reference": f"Patient/{patient}"},
        "code": {"text": "DR chest"},
        "identifier": [
            {
                "use": "official",
                "type": {
                    "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "ACSN"}]
                },
                "system": f"urn:qyhie:facility:{fac}:accession",
                "value": accession,
            }
        ],
    }


def put(store: Store, *resources: dict[str, Any]) -> None:
    with store.unit_of_work(write=True) as uow:
        for r in resources:
            uow.resources.update(r["resourceType"], r["id"], r)
        uow.commit()


def read(store: Store, rtype: str, rid: str) -> dict[str, Any] | None:
    with store.unit_of_work() as uow:
        found = uow.resources.read_many([(rtype, rid)]).get((rtype, rid))
    return json_loads(found.content) if found and not found.deleted else None


@pytest.fixture
def store(pg_store_url: str) -> Iterator[Store]:
    opened = SqlStore(StoreSettings(database_url=pg_store_url, pool_size=4))
    seed(opened)
    patient_c = {
        "resourceType": "Patient",
        "id": "TTWSY-C",
        "meta": {"source": "urn:qyhie:facility:TTWSY"},
        "identifier": [{"system": RESIDENT_ID_SYSTEM, "value": RID_C}],
        "name": [{"family": "丙", "given": ["测"]}],
        "birthDate": "1980-01-01",
    }
    put(opened, patient_c)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
async def bridge(store: Store, orthanc: orthanc_server.OrthancServer) -> AsyncIterator[ImagingBridge]:
    client = client_of(orthanc)
    b = ImagingBridge(store, client, imaging_settings(orthanc))
    await asyncio.to_thread(b.set_cursor, await client.last_change())
    yield b
    await b.client.close()


async def index_until(bridge: ImagingBridge, studies: int, timeout: float = 20) -> tuple[set[str], set[str]]:
    """Run the bridge until `studies` studies were indexed or sent to review."""
    indexed: set[str] = set()
    review: set[str] = set()
    deadline = asyncio.get_running_loop().time() + timeout
    while len(indexed | review) < studies:
        report = await bridge.run_once()
        indexed.update(report.indexed)
        review.update(report.review)
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"only {len(indexed | review)} of {studies} studies came through /changes")
        await asyncio.sleep(0.3)
    return indexed, review


async def upload(orthanc: orthanc_server.OrthancServer, tmp_path: Path, files: dict[str, bytes]) -> None:
    paths = []
    for name, data in files.items():
        path = tmp_path / name
        path.write_bytes(data)
        paths.append(path)
    async with client_of(orthanc) as client:
        report = await upload_files(client, paths)
    assert report.stored == len(files) and not report.failed


@dataclass(frozen=True)
class TwoStudies:
    """Study A of resident A001 at TTWSY (one series, one instance) and study B of B001 at QYRMYY."""

    a_study: str
    a_series: str
    a_sop: str
    b_study: str


async def upload_two_studies(
    orthanc: orthanc_server.OrthancServer, bridge: ImagingBridge, tmp_path: Path
) -> TwoStudies:
    """Upload and index `TwoStudies` (the access tests' fixture data)."""
    two = TwoStudies(generate_uid(), generate_uid(), generate_uid(), generate_uid())
    files = {
        "a.dcm": make_dicom(study_uid=two.a_study, series_uid=two.a_series, sop_uid=two.a_sop,
                            patient_id="A001", issuer="TTWSY"),
        "b.dcm": make_dicom(study_uid=two.b_study, patient_id="B001", issuer="QYRMYY"),
    }
    await upload(orthanc, tmp_path, files)
    await index_until(bridge, 2)
    return two


# -- into the record -------------------------------------------------------------------------
async def test_upload_links_resident_and_order_before_and_after(orthanc, store, bridge, tmp_path):
    put(store, order("ord-A1", "TTWSY-A", "TTWSY", "ACC1001"))
    s1, s2, s3, s4 = (generate_uid() for _ in range(4))
    series = generate_uid()
    files = {
        "a1.dcm": make_dicom(
            study_uid=s1,
            series_uid=series,
            patient_id="A001",
            issuer="TTWSY",
            accession="ACC1001",
            name="Jia^Ce=甲^测=",
            birth_date="19800101",
        ),
        "a1b.dcm": make_dicom(
            study_uid=s1,
            series_uid=series,
            patient_id="A001",
            issuer="TTWSY",
            accession="ACC1001",
            name="Jia^Ce=甲^测=",
            birth_date="19800101",
        ),
        "a1c.dcm": make_dicom(
            study_uid=s1,
            patient_id="A001",
            issuer="TTWSY",
            accession="ACC1001",
            name="Jia^Ce=甲^测=",
            modality="CT",
            body_part="HEAD",
            extra={"SeriesNumber": 2},
        ),
        "a2.dcm": make_dicom(study_uid=s2, patient_id="A001", issuer="TTWSY", accession="ACC1002"),
        "c.dcm": make_dicom(
            study_uid=s3, patient_id="X77", other_ids=(RID_C,), name="丙^测", charset="GB18030"
        ),
        "conflict.dcm": make_dicom(study_uid=s4, patient_id="A001", issuer="TTWSY", other_ids=(RID_OTHER,)),
    }
    put(
        store,
        {
            "resourceType": "Patient",
            "id": "QYRMYY-X",
            "meta": {"source": "urn:qyhie:facility:QYRMYY"},
            "identifier": [{"system": RESIDENT_ID_SYSTEM, "value": RID_OTHER}],
            "birthDate": "1975-05-05",
        },
    )
    await upload(orthanc, tmp_path, files)
    indexed, review = await index_until(bridge, 4)
    assert indexed == {s1, s2, s3} and review == {s4}

    study = read(store, "ImagingStudy", study_resource_id(s1))
    assert study is not None
    assert {"system": "urn:dicom:uid", "value": f"urn:oid:{s1}"} in study["identifier"]
    assert study["subject"] == {"reference": "Patient/TTWSY-A"}
    assert study["basedOn"] == [{"reference": "ServiceRequest/ord-A1"}]
    assert study["numberOfSeries"] == 2 and study["numberOfInstances"] == 3
    instances = [i for s in study["series"] for i in s["instance"]]  # FHIR R4B series.instance
    assert len({i["uid"] for i in instances}) == 3
    assert {i["sopClass"]["code"] for i in instances} == {f"urn:oid:{orthanc_server.SECONDARY_CAPTURE}"}
    assert {i["sopClass"]["system"] for i in instances} == {"urn:ietf:rfc:3986"}
    assert {m["code"] for m in study["modality"]} == {"DX", "CT"}
    assert study["started"] == "2026-03-10T09:30:00+08:00"
    sites = {s["bodySite"]["code"] for s in study["series"]}
    assert sites == {"51185008", "69536005"}  # chest, head (SNOMED CT)
    endpoint = read(store, "Endpoint", "dicomweb")
    assert endpoint and endpoint["connectionType"]["code"] == "dicom-wado-rs"
    assert study["endpoint"][0] == {"reference": "Endpoint/dicomweb"}

    by_rid = read(store, "ImagingStudy", study_resource_id(s3))
    assert by_rid and by_rid["subject"] == {"reference": "Patient/TTWSY-C"}
    assert read(store, "ImagingStudy", study_resource_id(s4)) is None  # MRN and 身份证号 disagree
    task = read(store, "Task", bridge_review_id(s4))
    assert task and task["status"] == "requested" and "different residents" in task["businessStatus"]["text"]

    # the order of the second study arrives after its images
    late = read(store, "ImagingStudy", study_resource_id(s2))
    assert late and "basedOn" not in late and late["meta"]["tag"][0]["code"] == "order-pending"
    put(store, order("ord-A2", "TTWSY-A", "TTWSY", "ACC1002"))
    assert await bridge.retry_pending() == (0, 1)
    late = read(store, "ImagingStudy", study_resource_id(s2))
    assert late and late["basedOn"] == [{"reference": "ServiceRequest/ord-A2"}] and "tag" not in late["meta"]


DX_CLASS = "1.2.840.10008.5.1.4.1.1.1.1"  # Digital X-Ray Image Storage - For Presentation


async def test_sop_classes_per_instance_or_by_qido_and_reused(orthanc, tmp_path, monkeypatch):
    """Orthanc 1.10 has no SOPClassUID among its instance main tags: `sop_classes` asks each
    instance's metadata or, for many, QIDO-RS per series; both give the same answer, and the
    classes already known (from the ImagingStudy indexed before) are not asked again."""
    import imaging.orthanc

    study, series = generate_uid(), generate_uid()
    sops = [generate_uid() for _ in range(3)]
    files = {
        "dx.dcm": make_dicom(
            study_uid=study, series_uid=series, sop_uid=sops[0], extra={"SOPClassUID": DX_CLASS}
        ),
        "sc.dcm": make_dicom(study_uid=study, series_uid=series, sop_uid=sops[1]),
        "other.dcm": make_dicom(study_uid=study, sop_uid=sops[2], extra={"SeriesNumber": 2}),
    }
    await upload(orthanc, tmp_path, files)
    wanted = {
        sops[0]: DX_CLASS,
        sops[1]: orthanc_server.SECONDARY_CAPTURE,
        sops[2]: orthanc_server.SECONDARY_CAPTURE,
    }
    async with client_of(orthanc) as client:
        raw = await client.study(str(await client.lookup_study(study)))
        assert {i["MainDicomTags"]["SOPInstanceUID"] for i in raw["InstanceDetails"]} == set(sops)
        assert await client.sop_classes(raw, {}) == wanted  # one metadata call per instance
        monkeypatch.setattr(imaging.orthanc, "SOP_CLASS_CALLS", 0)
        assert await client.sop_classes(raw, {}) == wanted  # one QIDO-RS per series
        known = {sop: "1.2.3.4" for sop in sops}  # known classes are taken as they are
        assert await client.sop_classes(raw, known) == known
        monkeypatch.setattr(imaging.orthanc, "SOP_CLASS_CALLS", 16)
        gone = {
            **raw,
            "InstanceDetails": [
                *raw["InstanceDetails"],
                {"ID": "0" * 44, "MainDicomTags": {"SOPInstanceUID": "1.2.3"}},
            ],
        }
        assert await client.sop_classes(gone, {}) == wanted  # an instance deleted meanwhile: absent
        for _ in range(100):  # stable before the next test's bridge starts reading /changes
            if (await client.study(raw["ID"])).get("IsStable"):
                break
            await asyncio.sleep(0.1)


def bridge_review_id(uid: str) -> str:
    from imaging import review_task_id

    return review_task_id(uid)


async def test_no_patient_id_is_never_merged_and_c_store_arrives(orthanc, store, bridge):
    from pynetdicom import AE
    from pynetdicom.sop_class import SecondaryCaptureImageStorage

    anon1, anon2, b_study = generate_uid(), generate_uid(), generate_uid()
    ae = AE(ae_title="TTWSYDR")
    ae.add_requested_context(SecondaryCaptureImageStorage)
    assoc = await asyncio.to_thread(ae.associate, "127.0.0.1", orthanc.dicom_port, ae_title=orthanc.aet)
    assert assoc.is_established
    try:
        for uid, pid, issuer in ((anon1, "", ""), (anon2, "", ""), (b_study, "B001", "QYRMYY")):
            ds = pydicom.dcmread(
                __import__("io").BytesIO(make_dicom(study_uid=uid, patient_id=pid, issuer=issuer))
            )
            status = await asyncio.to_thread(assoc.send_c_store, ds)
            assert status.Status == 0x0000
    finally:
        await asyncio.to_thread(assoc.release)
    indexed, review = await index_until(bridge, 3)
    assert indexed == {b_study} and review == {anon1, anon2}
    assert (
        read(store, "ImagingStudy", study_resource_id(b_study))["subject"]["reference"] == "Patient/QYRMYY-B"
    )
    for uid in (anon1, anon2):
        assert read(store, "ImagingStudy", study_resource_id(uid)) is None
        task = read(store, "Task", bridge_review_id(uid))
        assert task and {"system": "urn:dicom:uid", "value": f"urn:oid:{uid}"} in task["identifier"]


async def test_bridge_restart_mid_feed_loses_and_duplicates_nothing(orthanc, store, bridge, tmp_path):
    uids = [generate_uid() for _ in range(6)]
    await upload(
        orthanc,
        tmp_path,
        {f"{i}.dcm": make_dicom(study_uid=u, patient_id="A001", issuer="TTWSY") for i, u in enumerate(uids)},
    )
    start = bridge.read_cursor()
    async with client_of(orthanc) as client:  # wait until every study is stable in the feed
        for _ in range(100):
            page = await client.changes(start, 1000)
            if sum(c.change_type == "StableStudy" for c in page.changes) == 6:
                break
            await asyncio.sleep(0.2)
        stable = [c.seq for c in page.changes if c.change_type == "StableStudy"]
    first = await bridge.run_once(max_changes=stable[2] - start)  # stops after the third study
    assert len(first.indexed) == 3
    await bridge.client.close()
    await asyncio.to_thread(orthanc.restart)  # Orthanc too: waits for its pid, same storage

    second_bridge = ImagingBridge(store, client_of(orthanc), imaging_settings(orthanc))
    second = await second_bridge.run_once()
    await second_bridge.client.close()
    bridge.client = client_of(orthanc)
    assert set(first.indexed).isdisjoint(second.indexed)
    assert set(first.indexed) | set(second.indexed) == set(uids)
    with store.unit_of_work() as uow:
        for uid in uids:
            assert uow.resources.read("ImagingStudy", study_resource_id(uid)).version_id == 1
        found = uow.resources.search("ImagingStudy", [("_count", "100")]).matches
    assert len(found) == 6
    assert second_bridge.read_cursor() >= stable[-1]


# -- viewing ---------------------------------------------------------------------------------
@pytest.fixture
def local_issuer() -> Iterator[Any]:
    with served_issuer() as issuer:
        yield issuer


@pytest.fixture
def exchange(store, orthanc, local_issuer) -> Iterator[tuple[TestClient, Any]]:
    settings = HieSettings(
        auth=AuthSettings(issuer=local_issuer.issuer, jwks_min_refresh_seconds=0, facts_cache_seconds=0),
        imaging=imaging_settings(orthanc),
    )
    app = create_app(settings, store, root_routers=[imaging_router(settings, store, client_of(orthanc))])
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, local_issuer
    app.state.audit_writer.close()


def call(exchange, claims, method, url, **kw):
    client, issuer = exchange
    headers = {"Authorization": f"Bearer {issuer.token(**claims)}", **kw.pop("headers", {})}
    return client.request(method, url, headers=headers, **kw)


async def test_proxy_specialist_needs_consultation(orthanc, store, bridge, exchange, tmp_path):
    two = await upload_two_studies(orthanc, bridge, tmp_path)
    a_study, a_series, a_sop, b_study = two.a_study, two.a_series, two.a_sop, two.b_study

    def get(claims, url, **kw):
        return call(exchange, claims, "GET", url, **kw)

    r = await asyncio.to_thread(get, SPECIALIST, f"/dicom-web/studies/{b_study}/metadata")
    assert r.status_code == 403 and "specialist-needs-referral" in r.text
    r = await asyncio.to_thread(get, SPECIALIST, f"/dicom-web/studies/{a_study}/metadata")
    assert r.status_code == 200
    assert r.json()[0]["00100020"]["Value"] == ["A001"]
    r = await asyncio.to_thread(get, SPECIALIST, "/dicom-web/studies", params={"PatientID": "B001"})
    assert r.status_code == 200 and r.json() == []
    r = await asyncio.to_thread(get, SPECIALIST, "/dicom-web/studies", params={"StudyInstanceUID": a_study})
    assert [s["0020000D"]["Value"][0] for s in r.json()] == [a_study]
    assert r.json()[0]["00081190"]["Value"][0] == f"http://testserver/dicom-web/studies/{a_study}"
    assert (
        await asyncio.to_thread(
            get,
            {**SPECIALIST, "sub": "x"},
            "/wado",
            params={"requestType": "WADO", "studyUID": b_study, "seriesUID": "1.2", "objectUID": "1.2"},
        )
    ).status_code == 403
    r = await asyncio.to_thread(
        get,
        SPECIALIST,
        "/wado",
        params={
            "requestType": "WADO",
            "studyUID": a_study,
            "seriesUID": a_series,
            "objectUID": a_sop,
            "contentType": "application/dicom",
        },
    )
    assert r.status_code == 200 and r.content[128:132] == b"DICM"
    frames = await asyncio.to_thread(
        get,
        SPECIALIST,
        f"/dicom-web/studies/{a_study}/series/{a_series}/instances/{a_sop}/frames/1",
        headers={"Accept": "multipart/related; type=application/octet-stream"},
    )
    assert frames.status_code == 200 and len(frames.content) >= 32 * 32
    study = await asyncio.to_thread(  # the whole study, relayed as it is: never compressed
        get,
        SPECIALIST,
        f"/dicom-web/studies/{a_study}",
        headers={"Accept": 'multipart/related; type="application/dicom"', "Accept-Encoding": "gzip"},
    )
    assert study.status_code == 200 and study.headers["content-type"].startswith("multipart/related")
    assert "content-encoding" not in study.headers
    assert b"DICM" in study.content and a_sop.encode() in study.content

    # a referral of B to the specialist's facility and B's consent: now allowed
    from auth_world import consent

    put(
        store,
        {
            "resourceType": "ServiceRequest",
            "id": "ref-B",
            "meta": {"source": "urn:qyhie:facility:TTWSY"},
            "status": "active",
            "intent": "order",
            "subject": {"reference": "Patient/QYRMYY-B"},
            "requester": {"reference": "Organization/org-TTWSY"},
            "performer": [{"reference": "Organization/org-QYRMYY"}],
        },
        consent("consent-B", "QYRMYY-B", "permit"),
    )
    r = await asyncio.to_thread(get, SPECIALIST, f"/dicom-web/studies/{b_study}/metadata")
    assert r.status_code == 200

    exchange[0].app.state.audit_writer.flush()
    with store.unit_of_work() as uow:
        events = [
            json_loads(m.content) for m in uow.resources.search("AuditEvent", [("_count", "200")]).matches
        ]
    proxied = [e for e in events if "/dicom-web/" in json.dumps(e) or "/wado" in json.dumps(e)]
    assert any(e["outcome"] == "4" for e in proxied) and any(e["outcome"] == "0" for e in proxied)
    assert r.status_code == 200


async def test_viewer_behind_the_same_check(orthanc, store, bridge, exchange, tmp_path):
    if not orthanc.viewer:
        service_unavailable("Orthanc's Web Viewer plugin is not installed (.ci/orthanc.sh)")
    a_study, a_series, b_study = generate_uid(), generate_uid(), generate_uid()
    files = {
        f"a{n}.dcm": make_dicom(
            study_uid=a_study,
            series_uid=a_series,
            patient_id="A001",
            issuer="TTWSY",
            extra={"InstanceNumber": n},
        )
        for n in (1, 2)
    }
    files["b.dcm"] = make_dicom(study_uid=b_study, patient_id="B001", issuer="QYRMYY")
    await upload(orthanc, tmp_path, files)
    await index_until(bridge, 2)
    study = read(store, "ImagingStudy", study_resource_id(a_study))
    assert study and {"reference": "Endpoint/dicom-viewer"} in study["endpoint"]
    endpoint = read(store, "Endpoint", "dicom-viewer")
    assert endpoint and endpoint["connectionType"]["code"] == "ihe-iid"
    client = exchange[0]

    def entry(claims, uid):
        params = {"requestType": "STUDY", "studyUID": uid}
        return call(
            exchange, claims, "GET", "/viewer/IHEInvokeImageDisplay", params=params, follow_redirects=False
        )

    refused = await asyncio.to_thread(entry, SPECIALIST, b_study)
    assert refused.status_code == 403 and "specialist-needs-referral" in refused.text
    opened = await asyncio.to_thread(entry, SPECIALIST, a_study)
    assert opened.status_code == 303, opened.text
    location = opened.headers["location"]
    base, series_id = location.split("/web-viewer/")[0], location.rsplit("series=", 1)[1]
    page = await asyncio.to_thread(client.get, location)  # a browser: no Bearer token, the ticket
    assert page.status_code == 200 and "cornerstone" in page.text
    assert (
        await asyncio.to_thread(client.get, f"{base}/web-viewer/libs/cornerstone.min.js")
    ).status_code == 200
    geometry = await asyncio.to_thread(client.get, f"{base}/web-viewer/series/{series_id}")
    assert geometry.status_code == 200 and len(geometry.json()["Slices"]) == 2
    slice_id = geometry.json()["Slices"][0]
    image = await asyncio.to_thread(client.get, f"{base}/web-viewer/instances/jpeg95-{slice_id}")
    assert image.status_code == 200 and len(image.content) > 100
    dicom = await asyncio.to_thread(client.get, f"{base}/instances/{slice_id.split('_')[0]}/file")
    assert dicom.status_code == 200 and dicom.content[128:132] == b"DICM"
    async with client_of(orthanc) as orthanc_client:
        b_series = (await orthanc_client.study_series(await orthanc_client.lookup_study(b_study)))[0][0]
    stolen = await asyncio.to_thread(client.get, f"{base}/web-viewer/series/{b_series}")
    assert stolen.status_code == 403 and "viewer-study-only" in stolen.text  # the ticket is for A only
    forged = await asyncio.to_thread(client.get, f"/viewer/t/forged/web-viewer/series/{series_id}")
    assert forged.status_code == 403 and "viewer-ticket" in forged.text

    from auth_world import consent

    put(
        store,
        {
            "resourceType": "ServiceRequest",
            "id": "ref-B-viewer",
            "meta": {"source": "urn:qyhie:facility:TTWSY"},
            "status": "active",
            "intent": "order",
            "subject": {"reference": "Patient/QYRMYY-B"},
            "requester": {"reference": "Organization/org-TTWSY"},
            "performer": [{"reference": "Organization/org-QYRMYY"}],
        },
        consent("consent-B-viewer", "QYRMYY-B", "permit"),
    )
    assert (await asyncio.to_thread(entry, SPECIALIST, b_study)).status_code == 303

    client.app.state.audit_writer.flush()
    with store.unit_of_work() as uow:
        events = [
            json_loads(m.content) for m in uow.resources.search("AuditEvent", [("_count", "200")]).matches
        ]
    dumped = [json.dumps(e) for e in events]
    ticket = base.rsplit("/", 1)[1]
    assert all(ticket not in e for e in dumped)  # a ticket is a capability: never in the audit
    a_ref = f"ImagingStudy/{study_resource_id(a_study)}"
    viewed = [e for e in dumped if a_ref in e and '"outcome": "0"' in e]
    assert len(viewed) >= 2  # the entry and the series (patient-naming) request
    assert any("viewer-study-only" in e and '"outcome": "4"' in e for e in dumped)
    assert any("viewer-ticket" in e and '"outcome": "4"' in e for e in dumped)


async def test_stow_rs_through_the_exchange(orthanc, store, bridge, exchange):
    own, other = generate_uid(), generate_uid()

    def stow(claims, data: bytes):
        boundary = "hie-boundary-1"
        body = (
            (f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n").encode()
            + data
            + f"\r\n--{boundary}--\r\n".encode()
        )
        return call(
            exchange,
            claims,
            "POST",
            "/dicom-web/studies",
            content=body,
            headers={
                "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
                "Accept": "application/dicom+json",
            },
        )

    r = await asyncio.to_thread(
        stow, FEED_TTWSY, make_dicom(study_uid=own, patient_id="A001", issuer="TTWSY")
    )
    assert r.status_code == 200, r.text
    r = await asyncio.to_thread(
        stow, FEED_TTWSY, make_dicom(study_uid=other, patient_id="B001", issuer="QYRMYY")
    )
    assert r.status_code == 403 and "feed-own-facility" in r.text
    r = await asyncio.to_thread(
        stow, SPECIALIST, make_dicom(study_uid=other, patient_id="B001", issuer="QYRMYY")
    )
    assert r.status_code == 403
    indexed, _ = await index_until(bridge, 1)
    assert indexed == {own}
    async with client_of(orthanc) as client:
        assert await client.lookup_study(other) is None


# -- character sets ----------------------------------------------------------------------------
CHINESE = {  # charset -> (alphabetic, ideographic) of the patient name
    "ISO_IR 192": ("Li^Hua", "李^华"),
    "GB18030": ("Zhao^Min", "赵^敏"),
    "GBK": ("Qian^Lei", "钱^磊"),
    "\\ISO 2022 IR 58": ("Sun^Li", "孙^丽"),
    None: ("Zhou^Jie", "周^杰"),
}


async def test_chinese_names_round_trip(orthanc, store, bridge, exchange, tmp_path):
    studies = {}
    files = {}
    for n, (charset, (alpha, ideo)) in enumerate(CHINESE.items()):
        uid = generate_uid()
        studies[charset] = uid
        files[f"{n}.dcm"] = make_dicom(
            study_uid=uid, patient_id="A001", issuer="TTWSY", name=f"{alpha}={ideo}=", charset=charset
        )
    for f in get_charset_files("chrX1.dcm") + get_charset_files("chrX2.dcm"):
        files[Path(f).name] = Path(f).read_bytes()
    await upload(orthanc, tmp_path, files)
    await index_until(bridge, len(CHINESE) + 2)

    async with client_of(orthanc) as client:
        for charset, (_, ideo) in CHINESE.items():
            found = await client.find("Study", {"PatientName": f"*{ideo}*"})
            assert [h["MainDicomTags"]["StudyInstanceUID"] for h in found] == [studies[charset]], charset
    for charset, (alpha, ideo) in CHINESE.items():
        uid = studies[charset]
        r = await asyncio.to_thread(
            call,
            exchange,
            ADMIN,
            "GET",
            "/dicom-web/studies",
            params={"PatientName": f"*{ideo}*", "includefield": "00100010,00080050"},
        )
        assert r.status_code == 200 and [s["0020000D"]["Value"][0] for s in r.json()] == [uid], charset
        meta = await asyncio.to_thread(call, exchange, ADMIN, "GET", f"/dicom-web/studies/{uid}/metadata")
        name = meta.json()[0]["00100010"]["Value"][0]
        assert (name["Alphabetic"], name["Ideographic"]) == (alpha, ideo), charset
    r = await asyncio.to_thread(
        call, exchange, ADMIN, "GET", "/dicom-web/studies", params={"PatientName": "*王^小東*"}
    )
    names = [s["00100010"]["Value"][0] for s in r.json()]
    assert names == [{"Alphabetic": "Wang^XiaoDong", "Ideographic": "王^小東", "Phonetic": ""}]


async def test_deidentified_export_leaves_no_identifier(orthanc, tmp_path):
    study, series = generate_uid(), generate_uid()
    sops = [generate_uid(), generate_uid()]
    extra = {
        "InstitutionName": "清远市阳山县人民医院",
        "ReferringPhysicianName": "Chen^Yi=陈^医=",
        "PatientAddress": "清远市清城区",
        "PatientTelephoneNumbers": "13800001234",
        "OperatorsName": "Lin^Op",
        "StationName": "DR-01",
        "DeviceSerialNumber": "SN-4411",
    }
    await upload(
        orthanc,
        tmp_path,
        {
            f"{n}.dcm": make_dicom(
                study_uid=study,
                series_uid=series,
                sop_uid=sop,
                patient_id="A001",
                issuer="TTWSY",
                other_ids=(RID_C,),
                name="Jia^Ce=甲^测=",
                accession="ACC9",
                birth_date="19800101",
                extra=extra,
            )
            for n, sop in enumerate(sops)
        },
    )
    async with client_of(orthanc) as client:
        paths = await export_study(client, study, tmp_path / "export", salt="teaching-2026")
    assert len(paths) == 2
    originals = [study, series, *sops]
    mapped_series = set()
    for path in paths:
        raw = path.read_bytes()
        for secret in ("A001", RID_C, "ACC9", "19800101", "TTWSY", "SN-4411", "13800001234", *originals):
            assert secret.encode() not in raw, secret
        for text in ("甲", "陈", "清远"):
            assert text.encode("utf-8") not in raw and text.encode("gb18030") not in raw, text
        ds = pydicom.dcmread(path)
        assert ds.PatientIdentityRemoved == "YES" and str(ds.PatientName) == "ANONYMOUS"
        assert ds.DeidentificationMethodCodeSequence[0].CodeValue == "113100"
        for keyword in (
            "OtherPatientIDs",
            "IssuerOfPatientID",
            "InstitutionName",
            "PatientAddress",
            "OperatorsName",
            "StationName",
            "PatientTelephoneNumbers",
        ):
            assert keyword not in ds, keyword
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        mapped_series.add(ds.SeriesInstanceUID)
    assert len(mapped_series) == 1  # one series stays one series


def test_cli_upload_bridge_review(orthanc, sqlite_url, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from hie_server.cli import app

    monkeypatch.setenv("HIE_IMAGING__ORTHANC_URL", orthanc.url)
    monkeypatch.setenv("HIE_IMAGING__ORTHANC_USERNAME", orthanc.username)
    monkeypatch.setenv("HIE_IMAGING__ORTHANC_PASSWORD", orthanc.password)
    monkeypatch.setenv("HIE_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("COLUMNS", "300")
    runner = CliRunner()
    assert runner.invoke(app, ["imaging", "bridge", "--once", "--from-now"]).exit_code == 0
    folder = tmp_path / "dr"
    folder.mkdir()
    study = generate_uid()
    for n in range(2):
        (folder / f"{n}.dcm").write_bytes(make_dicom(study_uid=study, patient_id="Z9", issuer="NOWHERE"))
    (folder / "notes.txt").write_text("not an image")
    result = runner.invoke(app, ["imaging", "upload", str(folder)])
    assert result.exit_code == 1
    assert "2 stored, 0 already in Orthanc, 1 refused; 1 studies" in result.output
    assert "notes.txt" in result.output
    for _ in range(50):
        result = runner.invoke(app, ["imaging", "bridge", "--once"])
        assert result.exit_code == 0, result.output
        review = runner.invoke(app, ["imaging", "review"])
        assert review.exit_code == 0
        if study in review.output:
            break
        time.sleep(0.3)
    else:
        raise AssertionError(f"the uploaded study never reached the review queue: {result.output}")
    assert "studies to review" in review.output and "no Patient with this MRN" in review.output


# -- deletions in Orthanc ----------------------------------------------------------------------
async def test_study_deleted_in_orthanc_is_withdrawn(orthanc, store, bridge, tmp_path):
    kept, deleted, unlinked = generate_uid(), generate_uid(), generate_uid()
    files = {
        "kept.dcm": make_dicom(study_uid=kept, patient_id="A001", issuer="TTWSY"),
        "deleted.dcm": make_dicom(study_uid=deleted, patient_id="A001", issuer="TTWSY", accession="ACC77"),
        "unlinked.dcm": make_dicom(study_uid=unlinked, patient_id="Q404", issuer="TTWSY"),
    }
    await upload(orthanc, tmp_path, files)
    indexed, review = await index_until(bridge, 3)
    assert indexed == {kept, deleted} and review == {unlinked}

    async with client_of(orthanc) as client:
        for uid in (deleted, unlinked):
            orthanc_id = await client.lookup_study(uid)
            upstream = await client.open("DELETE", f"/studies/{orthanc_id}")
            assert upstream.status_code == 200
            await upstream.aclose()
    swept = await bridge.reconcile()
    assert swept.withdrawn == [deleted] and swept.checked >= 2 and swept.stopped is None
    gone = read(store, "ImagingStudy", study_resource_id(deleted))
    assert gone and gone["status"] == "entered-in-error" and "endpoint" not in gone
    assert {"system": "urn:qyhie:imaging", "code": "deleted-in-archive"} in gone["meta"]["tag"]
    assert gone["subject"] == {"reference": "Patient/TTWSY-A"}  # kept for history and audit
    assert read(store, "ImagingStudy", study_resource_id(kept))["status"] == "available"
    await bridge.retry_pending()
    task = read(store, "Task", bridge_review_id(unlinked))
    assert task and task["status"] == "cancelled"
    assert (await bridge.reconcile()).withdrawn == []  # nothing twice

    # the facility sends the study again: it is available again
    await upload(orthanc, tmp_path, {"again.dcm": files["deleted.dcm"]})
    assert (await index_until(bridge, 1))[0] == {deleted}
    again = read(store, "ImagingStudy", study_resource_id(deleted))
    assert again and again["status"] == "available" and again["endpoint"]
