"""Remote registration (远程挂号) and remote consultation (远程会诊) pages, over the telemedicine
operations of the API (`Appointment/$find`, `$book`, `$cancel`, `ServiceRequest/$request-consultation`,
`$accept`, `$decline`, `$opinion`, `$refer`, `$consultation-record`), plus the specialist's day and
the image viewer (through the exchange's DICOMweb proxy).

May import: starlette/fastapi, `hie_server.web.*`.
"""

from __future__ import annotations

import secrets
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from fastapi import APIRouter
from starlette.responses import RedirectResponse, Response

from hie_server.web import fhirview as fv
from hie_server.web.api import ApiError, param
from hie_server.web.core import PREFIX, Page, Workbench

Json = dict[str, Any]
CONSULTATION = "http://snomed.info/sct|11429006"
TZ = ZoneInfo("Asia/Shanghai")


def ext(resource: Json, name: str) -> Any:
    for e in resource.get("extension", []):
        if str(e.get("url", "")).endswith(f"/StructureDefinition/{name}"):
            return next((v for k, v in e.items() if k.startswith("value")), None)
    return None


def local_time(value: str) -> str:
    at = fv.parse_when(value)
    return at.astimezone(TZ).strftime("%Y-%m-%d %H:%M") if at and at.tzinfo else fv.short(value)


def slot_view(slot: Json) -> Json:
    """What the slot table shows: time, hospital, doctor, places left."""
    capacity, booked = ext(slot, "slot-capacity") or 1, ext(slot, "slot-booked") or 0
    return {
        "id": slot["id"],
        "start": local_time(str(slot.get("start", ""))),
        "hospital": (ext(slot, "slot-organization") or {}).get("display", ""),
        "doctor": (ext(slot, "slot-provider") or {}).get("display", ""),
        "left": int(capacity) - int(booked),
        "specialty": fv.code_text((slot.get("specialty") or [{}])[0]),
    }


async def schedule_options(page: Page) -> tuple[dict[str, str], dict[str, str]]:
    """Specialties (code → name) and hospitals (Organization id → name) with free slots in the
    next four weeks, from `Appointment/$find` (Slots are open to every clinician; Schedules of a
    hospital are shown by the API only to its own staff)."""
    specialties: dict[str, str] = {}
    hospitals: dict[str, str] = {}
    start = date.today()
    found = await page.api.search(
        "Appointment/$find",
        {"start": start.isoformat(), "end": (start + timedelta(days=28)).isoformat(), "_count": 1000},
    )
    for slot in found:
        for concept in slot.get("specialty", []):
            for coding in concept.get("coding", []):
                specialties[str(coding.get("code"))] = str(coding.get("display") or coding.get("code"))
        org = ext(slot, "slot-organization")
        if org:
            hospitals[fv.ref_id(org)] = str(org.get("display") or fv.ref_id(org))
    return specialties, hospitals


def booking_routes(router: APIRouter, wb: Workbench) -> None:
    """`/booking` (find and book), `/appointments/{id}` (confirmation, cancel)."""

    @wb.page
    async def booking(page: Page) -> Response:
        q = page.request.query_params
        patient_id = q.get("patient", "")
        patient = await page.api.get(f"Patient/{patient_id}") if patient_id else None
        specialties, hospitals = await schedule_options(page)
        start = q.get("start") or date.today().isoformat()
        end = q.get("end") or (date.fromisoformat(start) + timedelta(days=13)).isoformat()
        slots = None
        if q.get("find"):
            found = await page.api.search(
                "Appointment/$find",
                {
                    "specialty": q.get("specialty") or None,
                    "organization": q.get("organization") or None,
                    "start": start,
                    "end": end,
                    "_count": 60,
                },
            )
            slots = [slot_view(s) for s in found if s.get("resourceType") == "Slot"]
        return page.render(
            "booking.html",
            title=page.t("book_registration"),
            patient=patient,
            fv=fv,
            specialties=specialties,
            hospitals=hospitals,
            q=q,
            start=start,
            end=end,
            slots=slots,
            key=secrets.token_urlsafe(12),
        )

    @wb.page
    async def book(page: Page) -> Response:
        form = await page.form()
        appointment = await page.api.operation(
            "Appointment/$book",
            param("slot", {"reference": f"Slot/{form['slot']}"}),
            param("patient", {"reference": f"Patient/{form['patient']}"}),
            {
                "name": "identifier",
                "valueIdentifier": {"system": "urn:qyhie:workbench:booking", "value": str(form["key"])},
            },
            param("reason", form.get("reason") or "远程挂号"),
        )
        page.flash("ok", page.t("booked_ok"))
        return page.redirect(f"{PREFIX}/appointments/{appointment['id']}")

    @wb.page
    async def appointment(page: Page, id: str) -> Response:
        appt = await page.api.get(f"Appointment/{id}")
        patient_ref: Json = next(
            (
                p["actor"]
                for p in appt.get("participant", [])
                if str((p.get("actor") or {}).get("reference", "")).startswith("Patient/")
            ),
            {},
        )
        patient = await page.api.get(f"Patient/{fv.ref_id(patient_ref)}") if patient_ref else {}
        others = [
            p["actor"] for p in appt.get("participant", []) if p.get("actor") and p["actor"] != patient_ref
        ]
        return page.render(
            "appointment.html",
            title=page.t("confirmation"),
            appt=appt,
            patient=patient,
            others=others,
            fv=fv,
            start=local_time(str(appt.get("start", ""))),
            end=local_time(str(appt.get("end", ""))),
        )

    @wb.page
    async def cancel(page: Page, id: str) -> Response:
        await page.api.operation(
            f"Appointment/{id}/$cancel", param("reasonCode", "pat"), param("reason", "居民要求取消（工作台）")
        )
        page.flash("ok", page.t("cancelled_ok"))
        return page.redirect(f"{PREFIX}/appointments/{id}")

    router.add_route(f"{PREFIX}/booking", booking, methods=["GET"])
    router.add_route(f"{PREFIX}/booking", book, methods=["POST"])
    router.add_route(f"{PREFIX}/appointments/{{id}}", appointment, methods=["GET"])
    router.add_route(f"{PREFIX}/appointments/{{id}}/cancel", cancel, methods=["POST"])


def consent_resource(patient_id: str, performer: str, now: datetime) -> Json:
    """The resident's consent to share records with the invited hospital for a consultation
    (FHIR R4B Consent, scope patient-privacy, provision permit, purpose TREAT)."""
    return {
        "resourceType": "Consent",
        "status": "active",
        "scope": {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}
            ]
        },
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": f"Patient/{patient_id}"},
        "dateTime": now.isoformat(timespec="seconds"),
        "policyRule": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}]
        },
        "provision": {
            "type": "permit",
            "purpose": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "TREAT"}],
            "actor": [
                {
                    "role": {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                "code": "IRCP",
                            }
                        ]
                    },
                    "reference": {"reference": f"Organization/{performer}"},
                }
            ],
        },
    }


async def _tasks(page: Page, params: Json) -> list[Json]:
    return [
        t for t in await page.api.search("Task", {**params, "_count": 100}) if t.get("resourceType") == "Task"
    ]


def consultation_routes(router: APIRouter, wb: Workbench) -> None:
    """`/consultations` (list, new, detail, accept/decline/opinion/refer) and `/today`."""

    @wb.page
    async def listing(page: Page) -> Response:
        found = await page.api.search(
            "ServiceRequest",
            {
                "category": CONSULTATION,
                "_sort": "-authored",
                "_include": "ServiceRequest:subject",
                "_count": 50,
            },
        )
        patients = {p["id"]: p for p in found if p.get("resourceType") == "Patient"}
        requests = [r for r in found if r.get("resourceType") == "ServiceRequest"]
        tasks = {}
        if requests:
            for task in await _tasks(
                page, {"focus": ",".join(f"ServiceRequest/{r['id']}" for r in requests)}
            ):
                tasks[fv.ref_id(task.get("focus"))] = task
        return page.render(
            "consultations.html",
            title=page.t("consultations"),
            requests=requests,
            patients=patients,
            tasks=tasks,
            fv=fv,
            local_time=local_time,
        )

    @wb.page
    async def new(page: Page) -> Response:
        patient_id = page.request.query_params.get("patient", "")
        patient = await page.api.get(f"Patient/{patient_id}")
        shared = await page.api.search(
            f"Patient/{patient_id}/$everything", {"_type": "DiagnosticReport,ImagingStudy", "_count": 50}
        )
        _, hospitals = await schedule_options(page)
        return page.render(
            "consultation_new.html",
            title=page.t("request_consultation"),
            patient=patient,
            shared=[s for s in shared if s.get("resourceType") in ("DiagnosticReport", "ImagingStudy")],
            hospitals=hospitals,
            fv=fv,
        )

    @wb.page
    async def create(page: Page) -> Response:
        form = await page.form()
        patient_id, performer = str(form.get("patient", "")), str(form.get("performer", ""))
        if form.get("consent") != "yes":
            page.flash("error", page.t("consent_required"))
            return page.redirect(f"{PREFIX}/consultations/new?patient={patient_id}")
        consent = await page.api.create(consent_resource(patient_id, performer, datetime.now(TZ)))
        shared = form.get("shared") or []
        shared = [shared] if isinstance(shared, str) else shared
        sr = await page.api.operation(
            "ServiceRequest/$request-consultation",
            param("patient", {"reference": f"Patient/{patient_id}"}),
            param("performer", {"reference": f"Organization/{performer}"}),
            param("reason", form.get("reason", "")),
            param("question", form.get("question", "")),
            {"name": "urgency", "valueCode": str(form.get("urgency") or "routine")},
            param("consent", {"reference": f"Consent/{consent['id']}"}),
            *[param("shared", {"reference": ref}) for ref in shared],
        )
        return page.redirect(f"{PREFIX}/consultations/{sr['id']}")

    @wb.page
    async def detail(page: Page, id: str) -> Response:
        sr = await page.api.get(f"ServiceRequest/{id}")
        tasks = await _tasks(page, {"focus": f"ServiceRequest/{id}"})
        task = tasks[0] if tasks else {}
        try:
            record: Json = await page.api.get(f"ServiceRequest/{id}/$consultation-record")
        except ApiError:
            record = {}
        shared = []
        for ref in sr.get("supportingInfo", []):
            try:
                shared.append(await page.api.get(str(ref.get("reference", ""))))
            except ApiError as exc:
                shared.append(
                    {"resourceType": "OperationOutcome", "ref": ref.get("reference"), "error": exc.message}
                )
        user = page.session.principal
        owner = fv.ref_id(task.get("owner"))
        invited = user.is_admin or (user.has("specialist") and owner == f"org-{user.facility}")
        return page.render(
            "consultation.html",
            title=page.t("consultation"),
            sr=sr,
            task=task,
            record=record,
            shared=shared,
            invited=invited,
            fv=fv,
            local_time=local_time,
            patient_id=fv.ref_id(sr.get("subject")),
        )

    def step(name: str, build: Any) -> Any:
        @wb.page
        async def handler(page: Page, id: str) -> Response:
            form = await page.form()
            await page.api.operation(f"ServiceRequest/{id}/${name}", *build(form))
            page.flash(
                "ok", page.t({"opinion": "opinion_sent", "accept": "accepted_ok"}.get(name, name), id=id)
            )
            if name == "opinion" and not page.session.principal.is_admin:
                # the completed request no longer opens the record to the specialist (docs/security.md)
                return page.redirect(f"{PREFIX}/today")
            return page.redirect(f"{PREFIX}/consultations/{id}")

        handler.__name__ = f"consultation_{name}"
        router.add_route(f"{PREFIX}/consultations/{{id}}/{name}", handler, methods=["POST"])
        return handler

    step("accept", lambda f: [])
    step("decline", lambda f: [param("reason", f.get("reason") or "-")])
    step(
        "opinion",
        lambda f: [
            param("opinion", f.get("opinion", "")),
            *([param("diagnosis", f["diagnosis"])] if f.get("diagnosis") else []),
        ],
    )
    step(
        "refer",
        lambda f: [
            {"name": "direction", "valueCode": f.get("direction", "up")},
            param("target", {"reference": f"Organization/{f.get('target', '')}"}),
            param("reason", f.get("reason", "")),
        ],
    )

    @wb.page
    async def today(page: Page) -> Response:
        user = page.session.principal
        tasks = (
            await _tasks(
                page,
                {"owner": f"Organization/org-{user.facility}", "status": "requested,accepted,in-progress"},
            )
            if user.facility
            else []
        )
        day = date.today()
        appts = await page.api.search(
            "Appointment",
            {"date": [f"ge{day.isoformat()}", f"lt{(day + timedelta(days=1)).isoformat()}"], "_count": 100},
        )
        return page.render(
            "today.html",
            title=page.t("today"),
            tasks=tasks,
            fv=fv,
            local_time=local_time,
            appointments=[a for a in appts if a.get("resourceType") == "Appointment"],
        )

    router.add_route(f"{PREFIX}/consultations", listing, methods=["GET"])
    router.add_route(f"{PREFIX}/consultations", create, methods=["POST"])
    router.add_route(f"{PREFIX}/consultations/new", new, methods=["GET"])
    router.add_route(f"{PREFIX}/consultations/{{id}}", detail, methods=["GET"])
    router.add_route(f"{PREFIX}/today", today, methods=["GET"])


DICOM_JSON = "application/dicom+json"


def imaging_routes(router: APIRouter, wb: Workbench) -> None:
    """`/imaging/{study}`: the study's series through the DICOMweb proxy (QIDO-RS) with rendered
    first images (WADO-RS `/rendered`), every request under the user's token."""

    @wb.page
    async def viewer(page: Page, study: str) -> Response:
        try:
            series = (
                await page.api.raw(
                    "GET", f"/dicom-web/studies/{study}/series", absolute=True, accept=DICOM_JSON
                )
            ).json()
        except ApiError as exc:
            if exc.status == 404 and "dicom" not in exc.message.lower():
                return page.render(
                    "error.html",
                    status=404,
                    title=page.t("imaging_viewer"),
                    message=page.t("not_available", what="DICOMweb (Orthanc)"),
                )
            raise
        if not series:  # QIDO-RS answers are filtered: no series = refused or unknown; WADO-RS says which
            await page.api.raw(
                "GET", f"/dicom-web/studies/{study}/metadata", absolute=True, accept=DICOM_JSON
            )
        views = []
        for s in series:
            uid = (s.get("0020000E") or {}).get("Value", [""])[0]
            modality = (s.get("00080060") or {}).get("Value", [""])[0]
            instances = (
                await page.api.raw(
                    "GET",
                    f"/dicom-web/studies/{study}/series/{uid}/instances",
                    absolute=True,
                    accept=DICOM_JSON,
                )
            ).json()
            first = (instances[0].get("00080018") or {}).get("Value", [""])[0] if instances else ""
            views.append({"uid": uid, "modality": modality, "count": len(instances), "first": first})
        return page.render("imaging.html", title=page.t("imaging_viewer"), study=study, series=views)

    @wb.page
    async def rendered(page: Page, study: str, series: str, instance: str) -> Response:
        answer = await page.api.raw(
            "GET",
            f"/dicom-web/studies/{study}/series/{series}/instances/{instance}/rendered",
            absolute=True,
            accept="image/jpeg",  # one type: the Debian Orthanc DICOMweb plugin refuses Accept lists
        )
        return Response(
            answer.content,
            media_type=answer.headers.get("content-type", "image/jpeg"),
            headers={"Cache-Control": "private, max-age=300"},
        )

    @wb.page
    async def full_viewer(page: Page, study: str) -> Response:
        """The web viewer: the IHE Invoke Image Display entry called with the user's token (no
        redirect followed); the browser goes to the study-bound viewer session it names."""
        answer = await page.api.raw(
            "GET",
            "/viewer/IHEInvokeImageDisplay",
            params=[("requestType", "STUDY"), ("studyUID", study)],
            absolute=True,
        )
        target = urlsplit(answer.headers.get("location", ""))
        if answer.status_code != 303 or not target.path.startswith("/viewer/t/"):
            raise ApiError(502, f"the viewer entry answered {answer.status_code} without a viewer session")
        where = f"{target.path}?{target.query}" if target.query else target.path
        return RedirectResponse(where, status_code=303, headers={"Cache-Control": "no-store"})

    router.add_route(f"{PREFIX}/imaging/{{study}}", viewer, methods=["GET"])
    router.add_route(f"{PREFIX}/imaging/{{study}}/viewer", full_viewer, methods=["GET"])
    router.add_route(f"{PREFIX}/imaging/{{study}}/{{series}}/{{instance}}.img", rendered, methods=["GET"])


def telemed_routes(router: APIRouter, wb: Workbench) -> None:
    """All routes of this module."""
    booking_routes(router, wb)
    consultation_routes(router, wb)
    imaging_routes(router, wb)
