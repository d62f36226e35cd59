"""nginx's cache of bulk WADO answers (docs/imaging.md "Caching") against real servers: nginx
(tests/nginx_server.py, the production templates) -> the exchange's gate -> a recording pump ->
Orthanc, with PostgreSQL and a local token issuer (the fixtures of test_dicomweb_nginx.py).

What must hold: the gate decides and audits every request, hit or miss (a refused caller gets
the refusal and no byte even when the study is cached); an answer is stored at its second
retrieval (`proxy_cache_min_uses 2`: a first one is streamed, never written); a hit is
byte-identical to Orthanc's answer and does not reach Orthanc; the key follows the ImagingStudy
version, so once the bridge has indexed an added (or replaced) instance the next answer holds
it; only 200 answers are cached; a request the gate has no version for bypasses the cache; the
cache directory holds no credential and is readable by its owner only. Residents as in
test_orthanc_imaging.py: A (MRN A001 at TTWSY, referred to QYRMYY with consent); the caller is
a QYRMYY specialist.
"""

from __future__ import annotations

import json
import stat
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from pydicom.uid import generate_uid

from ehr_store import Store
from imaging import study_resource_id

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS))
sys.path.insert(0, str(TESTS / "integration"))
import nginx_server  # noqa: E402
import test_dicomweb_nginx as fast  # noqa: E402  (its fixtures and helpers)
from orthanc_server import OrthancServer, make_dicom  # noqa: E402
from test_orthanc_imaging import ADMIN, SPECIALIST, index_until, upload  # noqa: E402

orthanc, store, bridge, local_issuer, fast_path = (
    fast.orthanc,
    fast.store,
    fast.bridge,
    fast.local_issuer,
    fast.fast_path,
)
MULTIPART_DICOM = fast.MULTIPART_DICOM
#: a specialist at a hospital A was never referred to: refused by the resident rule
STRANGER = {**SPECIALIST, "preferred_username": "specialist.other", "facility": "QYZXYY", "sub": "u-other"}


def orthanc_gets(path: fast.FastPath) -> list[str]:
    """Request lines nginx has sent Orthanc so far."""
    sent = bytes(path.pump.sent).decode("latin-1")
    return [h.split("\r\n", 1)[0] for h in sent.split("\r\n\r\n") if h.startswith("GET ")]


def cache_statuses(server: nginx_server.NginxServer, count: int) -> list[str]:
    """The `$upstream_cache_status` of the first `count` requests nginx logged (it logs a
    request once it is complete, which may be just after the client has the last byte)."""
    deadline = time.monotonic() + 5
    while len(lines := server.access_log_lines()) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return [line.rsplit(" ", 1)[1] for line in lines[:count]]


def allowed_reads(opened: Store, app: Any, study: str) -> list[dict[str, Any]]:
    app.state.audit_writer.flush()
    ref = f"ImagingStudy/{study_resource_id(study)}"
    return [e for e in fast.audit_events(opened) if ref in json.dumps(e) and e["outcome"] == "0"]


async def test_cached_answers_are_decided_audited_and_follow_the_study_version(
    orthanc: OrthancServer, store: Store, bridge: Any, fast_path: fast.FastPath, tmp_path: Path
) -> None:
    study, series, sop1, sop2 = (generate_uid() for _ in range(4))
    first = make_dicom(study_uid=study, series_uid=series, sop_uid=sop1, patient_id="A001", issuer="TTWSY")
    await upload(orthanc, tmp_path, {"a1.dcm": first})
    await index_until(bridge, 1)
    spec = {**fast_path.token(SPECIALIST), "Accept": MULTIPART_DICOM}
    auth = (orthanc.username, orthanc.password)
    url = f"/dicom-web/studies/{study}"

    def direct() -> list[bytes]:
        answer = httpx.get(f"{orthanc.url}{url}", auth=auth, headers={"Accept": MULTIPART_DICOM})
        return fast.dicom_parts(answer)

    async with httpx.AsyncClient(base_url=fast_path.nginx.url, timeout=30) as web:
        first, miss, hit = [await web.get(url, headers=spec) for _ in range(3)]
        assert first.status_code == miss.status_code == hit.status_code == 200, fast_path.nginx.log_tail()
        assert fast.dicom_parts(first) == fast.dicom_parts(hit) == direct() and len(direct()) == 1
        assert hit.content == miss.content  # the very bytes (same multipart boundary): from the cache
        assert first.content != miss.content  # streamed at the first retrieval, not stored
        assert hit.headers.get_list("cache-control") == ["private, no-store"]
        assert "content-encoding" not in hit.headers and "www-authenticate" not in hit.headers
        assert len(orthanc_gets(fast_path)) == 2
        assert cache_statuses(fast_path.nginx, 3) == ["MISS", "MISS", "HIT"]

        # a cached study is still decided per request: refused callers get no byte of it
        r = await web.get(url, headers={**fast_path.token(STRANGER), "Accept": MULTIPART_DICOM})
        assert r.status_code == 403 and "specialist-needs-referral" in r.text and b"DICM" not in r.content
        assert r.headers["content-type"] == "application/fhir+json"
        r = await web.get(url, headers={"Accept": MULTIPART_DICOM})
        assert r.status_code == 401 and b"DICM" not in r.content
        r = await web.head(url, headers={**fast_path.token(STRANGER), "Accept": MULTIPART_DICOM})
        assert r.status_code == 403
        assert len(orthanc_gets(fast_path)) == 2

        # another Accept is another answer (own key); Orthanc gets exactly the Accept of the key
        octets = {**spec, "Accept": "multipart/related; type=application/octet-stream"}
        frames = f"{url}/series/{series}/instances/{sop1}/frames/1"
        r1, r2, r3 = [await web.get(frames, headers=octets) for _ in range(3)]
        assert r1.status_code == r2.status_code == r3.status_code == 200 and r2.content == r3.content
        assert len(orthanc_gets(fast_path)) == 4
        sent = bytes(fast_path.pump.sent).decode("latin-1").lower()
        assert "accept: multipart/related; type=application/octet-stream" in sent
        assert "bearer" not in sent and "x-break-glass" not in sent

        # only 200 answers are cached: an instance Orthanc does not have is asked for twice
        missing = f"{url}/series/{series}/instances/{generate_uid()}"
        statuses = [(await web.get(missing, headers=spec)).status_code for _ in range(2)]
        assert statuses == [404, 404] and len(orthanc_gets(fast_path)) == 6

        # an instance added in Orthanc: until the bridge has indexed it, the cached answer of the
        # ImagingStudy version the gate decided on (docs/imaging.md "Caching": the window)
        second = make_dicom(
            study_uid=study, series_uid=series, sop_uid=sop2, patient_id="A001", issuer="TTWSY"
        )
        await upload(orthanc, tmp_path, {"a2.dcm": second})
        assert len(direct()) == 2
        window = await web.get(url, headers=spec)
        assert window.content == miss.content and len(orthanc_gets(fast_path)) == 6
        await index_until(bridge, 1)  # StableStudy -> the ImagingStudy's new version
        fresh, stored, again = [await web.get(url, headers=spec) for _ in range(3)]
        assert fresh.status_code == stored.status_code == again.status_code == 200
        assert fast.dicom_parts(fresh) == direct() and len(fast.dicom_parts(fresh)) == 2
        assert again.content == stored.content and len(orthanc_gets(fast_path)) == 8

    # every retrieval, hit or miss, is one allowed-read AuditEvent of the study's resident
    reads = allowed_reads(store, fast_path.app, study)
    assert len(reads) == 12  # 3 + 3 frames + 2 missing instance + window + 3 of the new version
    assert all("Patient/TTWSY-A" in json.dumps(e) for e in reads)
    assert cache_statuses(fast_path.nginx, 15)[-4:] == ["HIT", "MISS", "MISS", "HIT"]

    # the cache: no credential of the caller's or of Orthanc's, readable by nginx's user only
    basic = nginx_server.basic_authorization(*auth).split(" ", 1)[1].encode()
    files = list(fast_path.nginx.cache_dir.rglob("*"))
    assert sum(p.is_file() for p in files) == 3  # study (old + new version), frames
    for p in [fast_path.nginx.cache_dir, *files]:
        assert stat.S_IMODE(p.stat().st_mode) & 0o077 == 0, (p, oct(p.stat().st_mode))
        if p.is_file():
            content = p.read_bytes()
            assert basic not in content and b"Bearer" not in content and auth[1].encode() not in content


async def test_no_version_no_cache(
    orthanc: OrthancServer, store: Store, fast_path: fast.FastPath, tmp_path: Path
) -> None:
    """A study not in the record (only hie-admin may retrieve it) has no ImagingStudy version:
    nginx neither answers it from the cache nor stores it; the gate says why in its answer."""
    study = generate_uid()
    await upload(orthanc, tmp_path, {"x.dcm": make_dicom(study_uid=study, patient_id="X001", issuer="TTWSY")})
    admin = {**fast_path.token(ADMIN), "Accept": MULTIPART_DICOM}
    async with httpx.AsyncClient(base_url=fast_path.nginx.url, timeout=30) as web:
        answers = [await web.get(f"/dicom-web/studies/{study}", headers=admin) for _ in range(2)]
    assert [a.status_code for a in answers] == [200, 200]
    assert fast.dicom_parts(answers[0]) == fast.dicom_parts(answers[1])
    assert len(orthanc_gets(fast_path)) == 2 and cache_statuses(fast_path.nginx, 2) == ["BYPASS", "BYPASS"]
    assert not [p for p in fast_path.nginx.cache_dir.rglob("*") if p.is_file()]
    gate = httpx.get(
        f"{fast_path.exchange_url}/_internal/dicomweb-auth",
        headers={
            **admin,
            "X-Original-URI": f"/dicom-web/studies/{study}",
            "X-Hie-Gate-Secret": fast_path.app.state.settings.imaging.gate_secret.get_secret_value(),
        },
    )
    assert gate.status_code == 204 and "x-hie-study-version" not in gate.headers


async def index_study(bridge: Any, study: str) -> None:
    """Run the bridge until `study` is indexed (earlier tests' studies may come through first)."""
    for _ in range(5):
        indexed, _review = await index_until(bridge, 1)
        if study in indexed:
            return
    raise AssertionError(f"{study} was not indexed")


def study_state(opened: Store, study: str) -> tuple[int, list[str]]:
    """(version, SOPInstanceUIDs listed) of the study's ImagingStudy."""
    with opened.unit_of_work() as uow:
        stored = uow.resources.read("ImagingStudy", study_resource_id(study))
    doc = json.loads(stored.content)
    return stored.version_id, sorted(i["uid"] for s in doc["series"] for i in s.get("instance", []))


async def test_an_instance_replaced_in_a_series_moves_the_key(
    orthanc: OrthancServer, store: Store, bridge: Any, fast_path: fast.FastPath, tmp_path: Path
) -> None:
    """One instance deleted and another added in the same series between two indexings keeps
    every count; the ImagingStudy lists the instances, so its version (the key) still moves
    and nginx serves the new set, not the cached old one (docs/imaging.md "Caching")."""
    study, series, sop1, sop2, sop3 = (generate_uid() for _ in range(5))
    files = {
        f"{sop}.dcm": make_dicom(
            study_uid=study, series_uid=series, sop_uid=sop, patient_id="A001", issuer="TTWSY"
        )
        for sop in (sop1, sop2)
    }
    await upload(orthanc, tmp_path, files)
    await index_study(bridge, study)
    version, listed = study_state(store, study)
    assert listed == sorted([sop1, sop2])
    spec = {**fast_path.token(SPECIALIST), "Accept": MULTIPART_DICOM}
    auth = (orthanc.username, orthanc.password)
    url = f"/dicom-web/studies/{study}"
    async with httpx.AsyncClient(base_url=fast_path.nginx.url, timeout=30) as web:
        old = [await web.get(url, headers=spec) for _ in range(3)]  # streamed, stored, hit
        assert [r.status_code for r in old] == [200, 200, 200] and old[1].content == old[2].content

        found = httpx.post(f"{orthanc.url}/tools/lookup", content=sop2, auth=auth).json()
        assert httpx.delete(f"{orthanc.url}/instances/{found[0]['ID']}", auth=auth).status_code == 200
        third = make_dicom(
            study_uid=study, series_uid=series, sop_uid=sop3, patient_id="A001", issuer="TTWSY"
        )
        await upload(orthanc, tmp_path, {"third.dcm": third})
        await index_study(bridge, study)  # StableStudy after the added instance
        new_version, listed = study_state(store, study)
        assert listed == sorted([sop1, sop3]) and new_version > version

        direct = httpx.get(f"{orthanc.url}{url}", auth=auth, headers={"Accept": MULTIPART_DICOM})
        fresh = await web.get(url, headers=spec)  # not the cached old pair: a new key
        assert fresh.status_code == 200 and fast.dicom_parts(fresh) == fast.dicom_parts(direct)
        assert len(fast.dicom_parts(fresh)) == 2 and fast.dicom_parts(fresh) != fast.dicom_parts(old[0])
    assert cache_statuses(fast_path.nginx, 4) == ["MISS", "MISS", "HIT", "MISS"]
