"""The workbench in a real headless Chromium, signed in through the real Keycloak as each role.

One Keycloak and one `hie serve` (SQLite, identity provider configured) for the module: the
sample feed is sent over MLLP (with its malformed messages, which wait in the error queue), one
extra registration that the EMPI can only call a possible match (review queue), and a
cardiologist's clinic is published with `hie telemedicine publish`. Then, as a person would:
- township doctor: finds a resident (name, pinyin, 身份证号), reads the summary, books a slot,
  prints/cancels, asks for a consultation with the resident's consent;
- specialist: sees it in today's list, accepts, writes the opinion; the doctor sees it completed;
- CDC staff: sees the case table and curve, downloads a de-identified extract;
- admin: replays an errored message, resolves the EMPI review, searches the audit log
  (finding the doctor's reads made through the workbench);
- imaging (one Orthanc for the module, indexed by the server's own bridge): the specialist is
  refused a resident's images without a consultation, and with one (and the resident's consent)
  opens the shared record, the study page with its rendered image and the web viewer.
Screenshots of the main pages go to test-artifacts/workbench/ (desktop and 360-px phone).
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import browser
import kcserver
import orthanc_server
from conftest import service_unavailable
from e2e_harness import Server, hie, start_server

pytest.importorskip("playwright")
from playwright.sync_api import Browser, Page, expect, sync_playwright

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
SAMPLES = Path(os.environ.get("HIE_SAMPLES_DIR", REPO / ".." / "shared" / "samples"))
FEED = SAMPLES / "feed-small"
PASSWORD = kcserver.DEMO_PASSWORD
CARDIOLOGY = {"system": "urn:qyhie:department", "code": "03.04", "display": "心血管内科"}


@dataclass
class World:
    server: Server
    base: str
    keycloak: kcserver.KeycloakServer
    resident: dict[str, str]
    clinic_day: date
    orthanc: orthanc_server.OrthancServer


def _next_monday() -> date:
    day = date.today() + timedelta(days=1)
    while day.weekday() != 0:
        day += timedelta(days=1)
    return day


def _review_message(work: Path, resident: dict[str, str]) -> Path:
    """A registration at TTWSY of someone very like `resident` (same surname and birth date, a
    homophone given name, another phone and county, no 身份证号): a possible match, not a certain one."""
    template = next(
        p for p in sorted((FEED / "feeds" / "TTWSY").glob("*.hl7")) if b"ADT^A04" in p.read_bytes()
    )
    segments = []
    for seg in template.read_bytes().decode("utf-8").replace("\n", "\r").split("\r"):
        fields = seg.split("|")
        if seg.startswith("MSH"):
            fields[9] = "WBREVIEW000001"
        if seg.startswith("PID"):
            fields[3], fields[5] = (
                "TT0999003^^^TTWSY^MR",
                f"{resident['family']}^{resident['homophone']}^^^^^L",
            )
            fields[7], fields[8] = resident["birth"].replace("-", ""), resident["sex"]
            fields[13] = "^PRN^CP^^^^^^^^^13800000999"
        if seg:
            segments.append("|".join(fields))
    path = work / "review.hl7"
    path.write_bytes(("\r".join(segments) + "\r").encode("utf-8"))
    return path


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


@pytest.fixture(scope="module")
def world(
    keycloak: kcserver.KeycloakServer,
    orthanc: orthanc_server.OrthancServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[World]:
    if not FEED.is_dir():
        service_unavailable(f"sample feed missing at {FEED}")
    work = tmp_path_factory.mktemp("workbench")
    url = f"sqlite:///{work / 'hie.db'}"
    assert hie("db", "upgrade", "--database-url", url).returncode == 0
    clinic_day = _next_monday()
    template = {
        "practitioner_role": "QYRMYY-card-1",
        "organization": "org-QYRMYY",
        "specialty": CARDIOLOGY,
        "sessions": [{"weekday": 0, "session": "morning", "slot_minutes": 30, "capacity": 1}],
        "practitioner_display": "李心明",
        "organization_display": "清远市人民医院",
        "county": "441802",
    }
    (work / "clinic.json").write_text(json.dumps(template, ensure_ascii=False), encoding="utf-8")
    published = hie(
        "telemedicine",
        "publish",
        str(work / "clinic.json"),
        "--start",
        clinic_day.isoformat(),
        "--days",
        "8",
        "--database-url",
        url,
    )
    assert published.returncode == 0, published.stderr
    env = {
        "HIE_AUTH__ISSUER": keycloak.issuer,
        "HIE_AUDIT__FLUSH_INTERVAL_SECONDS": "0.05",
        "HIE_AUTH__MLLP_PLAIN": "loopback",  # the sample feed is sent over plain MLLP from loopback
        "HIE_IMAGING__ORTHANC_URL": orthanc.url,
        "HIE_IMAGING__ORTHANC_USERNAME": orthanc.username,
        "HIE_IMAGING__ORTHANC_PASSWORD": orthanc.password,
        "HIE_IMAGING__POLL_SECONDS": "0.3",
    }
    server = start_server(work, env, url)
    try:
        sent = hie(
            "send", "--port", str(server.mllp_port), *[str(p) for p in sorted((FEED / "feeds").iterdir())]
        )
        assert "AA" in sent.stdout or "CA" in sent.stdout, sent.stdout + sent.stderr
        residents = {
            json.loads(line)["key"]: json.loads(line)
            for line in (FEED / "residents.jsonl").read_text(encoding="utf-8").splitlines()
            if line
        }
        r = residents["R000005"]  # registered at TTWSY and QYRMYY, several lab results
        other = residents["R000002"]
        review = {
            "family": other["family"],
            "homophone": "静果",
            "birth": other["birth"],
            "sex": other["sex"],
        }
        assert (
            hie("send", "--port", str(server.mllp_port), str(_review_message(work, review))).returncode == 0
        )
        resident = {
            "name": r["family"] + r["given"],
            "resident_id": r["resident_id"],
            "pinyin": "jiangjiali",
            "birth": r["birth"],
            "other_resident_id": residents["R000007"]["resident_id"],  # SJWSY only, never consulted
            "other_birth": residents["R000007"]["birth"],
        }
        yield World(server, server.base.removesuffix("/fhir"), keycloak, resident, clinic_day, orthanc)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    try:
        browser.chromium_path()
    except browser.ChromiumUnavailable as exc:
        service_unavailable(str(exc))
    with sync_playwright() as playwright:
        launched = browser.launch(playwright)
        try:
            yield launched
        finally:
            launched.close()


def _sign_in(chromium: Browser, world: World, username: str, phone: bool = False) -> Page:
    context = browser.new_context(chromium, phone=phone)
    return browser.sign_in(context, world.base, username, PASSWORD)


def _find_resident(page: Page, world: World, query: str) -> None:
    page.goto(f"{world.base}/workbench/residents")
    page.locator("#q").fill(query)
    page.locator("#q").press("Enter")
    expect(page.locator("ul.results")).to_contain_text(world.resident["name"])


def test_doctor_finds_resident_books_and_cancels(chromium: Browser, world: World) -> None:
    page = _sign_in(chromium, world, "doctor.ttwsy")
    expect(page.locator("header")).to_contain_text("乡镇医生")
    for query in (world.resident["pinyin"], world.resident["resident_id"], world.resident["name"]):
        _find_resident(page, world, query)
    page.locator("ul.results a").first.click()
    expect(page.locator("h1")).to_contain_text("居民电子健康档案首页")
    expect(page.locator("#demographics")).to_contain_text(world.resident["name"])
    expect(page.locator("#demographics")).not_to_contain_text(world.resident["resident_id"])  # masked
    expect(page.locator("#labs")).to_contain_text("葡萄糖")
    expect(page.locator("#labs svg").first).to_be_visible()
    started = time.perf_counter()
    page.reload()
    assert time.perf_counter() - started < 1.0, "the resident summary took more than 1 s"
    browser.shot(page, "resident-summary")
    page.get_by_role("link", name="远程挂号").click()
    with browser.keep_evidence(page, "booking"):
        page.locator("#specialty").select_option("03.04", timeout=5000)
    page.locator("#start").fill(world.clinic_day.isoformat())
    page.get_by_role("button", name="查询号源").click()
    expect(page.locator("#slots")).to_contain_text("清远市人民医院")
    expect(page.locator("#slots")).to_contain_text("李心明")
    browser.shot(page, "booking-slots")
    page.locator("#slots").get_by_role("button", name="预约").first.click()
    expect(page.locator("h1")).to_contain_text("预约凭证")
    expect(page.locator("#appt-status")).to_have_text("已预约")
    expect(page.locator(".confirmation")).to_contain_text(world.resident["name"])
    browser.shot(page, "booking-confirmation")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="取消预约").click()
    expect(page.locator("#appt-status")).to_have_text("已取消")
    expect(page.locator(".flash")).to_contain_text("预约已取消")
    page.context.close()


def test_consultation_requested_answered_and_followed(chromium: Browser, world: World) -> None:
    doctor = _sign_in(chromium, world, "doctor.ttwsy")
    _find_resident(doctor, world, world.resident["name"])
    doctor.locator("ul.results a").first.click()
    doctor.get_by_role("link", name="申请远程会诊").click()
    doctor.locator("#performer").select_option("org-QYRMYY")
    doctor.locator("#reason").fill("血糖控制不佳")
    doctor.locator("#question").fill("是否需要调整降糖方案？")
    doctor.locator("#urgency").select_option("urgent")
    doctor.get_by_role("button", name="提交").click()
    expect(doctor.locator(".flash.error")).to_contain_text("知情同意")  # no consent ticked: refused
    doctor.locator("#reason").fill("血糖控制不佳")
    doctor.locator("#question").fill("是否需要调整降糖方案？")
    doctor.locator("#consent").check()
    doctor.get_by_role("button", name="提交").click()
    expect(doctor.locator("#task-status")).to_have_text("待接收")
    consultation_url = doctor.url
    browser.shot(doctor, "consultation-requested")

    specialist = _sign_in(chromium, world, "specialist.qyrmyy", phone=True)
    specialist.get_by_role("link", name="今日").first.click()
    specialist.locator("main ul.plain a").first.click()
    expect(specialist.locator("h1")).to_contain_text("血糖控制不佳")
    specialist.get_by_role("button", name="接收").click()
    expect(specialist.locator("#task-status")).to_have_text("已接收")
    specialist.locator("#opinion-text").fill("建议加用二甲双胍，两周后复查空腹血糖。")
    specialist.locator("#diagnosis").fill("2型糖尿病")
    browser.shot(specialist, "specialist-opinion-phone")
    specialist.get_by_role("button", name="提交").click()
    expect(specialist.locator(".flash")).to_contain_text("会诊意见已提交")
    specialist.context.close()

    doctor.goto(consultation_url)
    expect(doctor.locator("#task-status")).to_have_text("已完成")
    expect(doctor.locator("#opinion")).to_contain_text("二甲双胍")
    browser.shot(doctor, "consultation-completed")
    doctor.goto(f"{world.base}/workbench/consultations")
    expect(doctor.locator("main table")).to_contain_text(world.resident["name"])
    doctor.context.close()


def _download_extract(page: Page) -> tuple[str, list[str], str]:
    with page.expect_download() as info:
        page.locator("#download").click()
    download = info.value
    text = Path(download.path()).read_text(encoding="utf-8-sig")
    return download.suggested_filename, next(csv.reader(io.StringIO(text))), text


def test_cdc_downloads_extracts_per_role(chromium: Browser, world: World) -> None:
    period = f"from=2020-01-01&to={date.today().isoformat()}"
    page = _sign_in(chromium, world, "cdc.fogang")  # county 441821, no identified-data role
    page.goto(f"{world.base}/workbench/cdc?{period}")
    expect(page.locator("#counts table")).to_be_visible()
    expect(page.locator("#counts table")).to_contain_text("441821")
    expect(page.locator("#counts table")).not_to_contain_text("441802")
    expect(page.locator("#curve svg")).to_be_visible()
    expect(page.locator("#extract-kind")).to_have_text("去标识化")
    browser.shot(page, "cdc-dashboard")
    name, header, text = _download_extract(page)
    assert "deidentified" in name
    assert "卡片编号(假名)" in header and "患者姓名" not in header and "有效证件号" not in header
    assert len(text.splitlines()) > 1, "the extract holds cases"
    assert world.resident["name"] not in text
    page.context.close()

    page = _sign_in(chromium, world, "cdc.city")  # the whole city, identified data allowed
    page.goto(f"{world.base}/workbench/cdc?{period}")
    expect(page.locator("#extract-kind")).to_have_text("实名")
    name, header, _ = _download_extract(page)
    assert "identified" in name and "deidentified" not in name and "患者姓名" in header
    page.context.close()


def test_admin_replays_an_errored_message_and_resolves_a_review(chromium: Browser, world: World) -> None:
    page = _sign_in(chromium, world, "admin")
    page.get_by_role("link", name="数据接入").first.click()
    rows = page.locator("#errors tr[id^=msg-]")
    expect(rows.first).to_be_visible()
    count = rows.count()
    assert count >= 4, "the sample feed's malformed messages wait in the error queue"
    expect(page.locator("#per-day")).to_contain_text("TTWSY")
    browser.shot(page, "admin-feeds")
    first_id = rows.first.get_attribute("id", timeout=5000) or ""
    rows.first.get_by_role("button", name="重新处理").click()
    expect(page.locator(".flash")).to_contain_text(f"已重新处理 #{first_id.removeprefix('msg-')}")

    page.get_by_role("link", name="居民主索引待审核").first.click()
    review = page.locator("section.review", has_text="静果")  # the feed may raise other reviews
    expect(review).to_have_count(1)
    expect(review).to_contain_text("homophone")
    browser.shot(page, "admin-empi-review")
    review.get_by_role("button", name="保持为不同居民").click()
    expect(page.locator(".flash")).to_contain_text("已处理")
    expect(page.locator("section.review", has_text="静果")).to_have_count(0)

    page.get_by_role("link", name="审计日志").first.click()
    page.locator("#a-agent").fill("doctor.ttwsy")
    page.locator("#a-subtype").select_option("everything")
    page.get_by_role("button", name="查询").click()
    expect(page.locator("#audit-rows")).to_contain_text(
        "doctor.ttwsy@TTWSY"
    )  # the summary read through the API
    expect(page.locator("#audit-rows")).to_contain_text("everything")
    expect(page.locator("#audit-rows")).to_contain_text("Patient/")
    browser.shot(page, "admin-audit")
    page.context.close()


def test_roles_see_only_their_pages_and_language_switch(chromium: Browser, world: World) -> None:
    page = _sign_in(chromium, world, "cdc.fogang", phone=True)
    expect(page.locator("nav.menu")).not_to_contain_text("数据接入")
    page.goto(f"{world.base}/workbench/admin/feeds")
    expect(page.locator("h1")).to_have_text("无权访问")
    expect(page.locator(".message")).to_contain_text("hie-admin")
    page.goto(f"{world.base}/workbench/")
    page.get_by_role("link", name="English").click()
    expect(page.locator("nav.menu")).to_contain_text("Disease control")
    page.get_by_role("link", name="中文").click()
    browser.shot(page, "home-phone")
    page.locator("header").get_by_role("button", name="退出登录").click()
    page.goto(f"{world.base}/workbench/")
    expect(page.locator("#username")).to_be_visible()  # signed out at Keycloak too
    page.context.close()


def test_api_refuses_the_workbench_admin_operations_to_doctors(world: World) -> None:
    token = httpx.post(
        f"{world.keycloak.issuer}/protocol/openid-connect/token",
        data={
            "grant_type": "password",
            "client_id": "hie-cli",
            "username": "doctor.ttwsy",
            "password": PASSWORD,
        },
    )
    access = token.json()["access_token"]
    answer = httpx.get(f"{world.server.base}/$ingest-errors", headers={"Authorization": f"Bearer {access}"})
    assert answer.status_code == 403 and "hie-admin" in answer.text


def _admin_token(world: World) -> str:
    token = httpx.post(
        f"{world.keycloak.issuer}/protocol/openid-connect/token",
        data={"grant_type": "password", "client_id": "hie-cli", "username": "admin", "password": PASSWORD},
    )
    assert token.status_code == 200, token.text
    return str(token.json()["access_token"])


def _upload_study(world: World, resident_id: str, birth: str, name: str) -> str:
    """One DX image into Orthanc naming the resident by 身份证号 (OtherPatientIDs); its StudyInstanceUID."""
    from pydicom.uid import generate_uid

    uid = generate_uid()
    dicom = orthanc_server.make_dicom(
        study_uid=uid,
        patient_id=f"WB{uid[-8:]}",
        other_ids=(resident_id,),
        name=name,
        birth_date=birth.replace("-", ""),
        modality="DX",
        size=64,
    )
    orthanc = world.orthanc
    answer = httpx.post(f"{orthanc.url}/instances", content=dicom, auth=(orthanc.username, orthanc.password))
    assert answer.status_code == 200, answer.text
    return uid


def _wait_indexed(world: World, uids: list[str], timeout: float = 60) -> None:
    """Until the server's imaging bridge has put an ImagingStudy for each UID in the record."""
    headers = {"Authorization": f"Bearer {_admin_token(world)}"}
    deadline = time.monotonic() + timeout
    waiting = set(uids)
    while waiting and time.monotonic() < deadline:
        for uid in list(waiting):
            found = httpx.get(
                f"{world.server.base}/ImagingStudy",
                params={"identifier": f"urn:dicom:uid|urn:oid:{uid}"},
                headers=headers,
            )
            if found.status_code == 200 and found.json().get("entry"):
                waiting.discard(uid)
        time.sleep(0.5)
    assert not waiting, f"studies not indexed in {timeout} s:\n{world.server.log_tail()}"


def test_specialist_sees_images_only_with_a_consultation(chromium: Browser, world: World) -> None:
    resident = world.resident
    shared = _upload_study(world, resident["resident_id"], resident["birth"], "Jiang^Jiali=江^佳丽")
    other = _upload_study(world, resident["other_resident_id"], resident["other_birth"], "Xia^Yuanqiang")
    _wait_indexed(world, [shared, other])

    specialist = _sign_in(chromium, world, "specialist.qyrmyy")
    for path in (f"/workbench/imaging/{shared}", f"/workbench/imaging/{shared}/viewer"):
        specialist.goto(f"{world.base}{path}")
        expect(specialist.locator("h1")).to_have_text("无权访问")  # no consultation yet
    browser.shot(specialist, "imaging-refused")

    doctor = _sign_in(chromium, world, "doctor.ttwsy")
    _find_resident(doctor, world, resident["name"])
    doctor.locator("ul.results a").first.click()
    expect(doctor.locator("#images")).to_contain_text("DX")
    expect(doctor.locator("#images").get_by_role("link", name="查看影像")).to_have_count(1)
    doctor.get_by_role("link", name="申请远程会诊").click()
    doctor.locator("#performer").select_option("org-QYRMYY")
    doctor.locator("#reason").fill("胸片复核")
    doctor.locator("#question").fill("请会诊阅片")
    doctor.locator("#consent").check()
    doctor.get_by_role("button", name="提交").click()
    expect(doctor.locator("#task-status")).to_have_text("待接收")
    consultation_url = doctor.url
    doctor.context.close()

    specialist.goto(consultation_url)
    specialist.get_by_role("button", name="接收").click()
    expect(specialist.locator("#task-status")).to_have_text("已接收")
    specialist.get_by_role("link", name="共享病历").first.click()  # the resident's shared record
    expect(specialist.locator("#images")).to_contain_text("DX")
    browser.shot(specialist, "specialist-shared-record")
    specialist.locator("#images").get_by_role("link", name="查看影像").click()
    expect(specialist.locator("h1")).to_have_text("影像浏览")
    image = specialist.locator("main img").first
    expect(image).to_be_visible()
    specialist.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle())
    browser.shot(specialist, "imaging-study")
    if world.orthanc.viewer:  # Debian orthanc-webviewer (installed by .ci/orthanc.sh)
        with (
            specialist.expect_response(lambda r: "/web-viewer/instances/" in r.url, timeout=30_000) as image,
            specialist.expect_response(lambda r: "/web-viewer/app/viewer.html" in r.url) as landed,
        ):
            specialist.locator("#full-viewer").click()
        assert landed.value.status == 200
        assert image.value.status == 200  # the viewer fetched the study's image under its ticket
        assert "/viewer/t/" in specialist.url and "/workbench" not in specialist.url
        browser.shot(specialist, "imaging-web-viewer")
    elif os.environ.get("CI") == "true":
        pytest.fail("orthanc-webviewer is not installed (.ci/orthanc.sh installs it)")

    for path in (f"/workbench/imaging/{other}", f"/workbench/imaging/{other}/viewer"):
        specialist.goto(f"{world.base}{path}")
        expect(specialist.locator("h1")).to_have_text("无权访问")  # another resident: no consultation
    specialist.context.close()
