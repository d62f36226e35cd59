"""A consultation as the WS/T 483.19 会诊记录 (consultation record) data set, JSON-shaped.

`consultation_record(repo, sr_id)` gathers the consultation ServiceRequest, the resident's
golden Patient, the Task (its version history gives the timestamp of every state change),
the consultation Appointment (video link), the Consent, the opinion Composition and the
Communications, and returns a JSON object whose top-level keys are the data set's sections
(文档头 header: 患者, 申请方/受邀方; body: 会诊原因, 会诊目的, 病历摘要/共享资料, 会诊意见,
诊断, 会诊时间, plus the platform's 状态记录 timeline). The field mapping is documented in
docs/telemedicine.md; data element codes are given only for the identity elements (WS 363
DE02.01.030.00 身份证件号码, DE02.01.039.00 姓名, DE02.01.040.00 性别代码).

May import: the standard library, `ehr_store`, `telemedicine.*`.
"""

from __future__ import annotations

from typing import Any

from ehr_store import ResourceRepository
from telemedicine.fhir import CONSULTATION, EXT_VIRTUAL_SERVICE, PARTICIPANT_ROLE, Json, load
from telemedicine.publish import search_all

RESIDENT_ID = "urn:oid:2.16.156.10011.1.3"
SEX = {
    "male": ("1", "男性"),
    "female": ("2", "女性"),
    "other": ("9", "未说明的性别"),
    "unknown": ("0", "未知的性别"),
}


def _name(patient: Json) -> str:
    n = (patient.get("name") or [{}])[0]
    return str(n.get("text") or f"{n.get('family', '')}{''.join(n.get('given', []))}")


def _section_text(composition: Json, title: str) -> str | None:
    import re

    for section in composition.get("section", []):
        if section.get("title") == title:
            div = str((section.get("text") or {}).get("div", ""))
            return re.sub(r"<[^>]+>", "\n", div.replace("<br/>", "\n")).strip() or None
    return None


def _video(appointment: Json) -> str | None:
    for ext in appointment.get("extension", []):
        if ext.get("url") == EXT_VIRTUAL_SERVICE:
            for sub in ext.get("extension", []):
                if sub.get("url") == "addressUrl":
                    return str(sub.get("valueUrl"))
    return None


def _party(appointment: Json | None, role: str, fallback: str | None) -> str | None:
    for p in (appointment or {}).get("participant", []):
        codes = {
            c.get("code")
            for t in p.get("type", [])
            for c in t.get("coding", [])
            if c.get("system") == PARTICIPANT_ROLE
        }
        if role in codes:
            return str(p["actor"].get("reference"))
    return fallback


def consultation_record(repo: ResourceRepository, sr_id: str) -> Json:
    """The 会诊记录 data set of one consultation (module docstring). Raises: NotFound, Unprocessable
    (not a consultation ServiceRequest)."""
    from ehr_store import Unprocessable

    sr = load(repo.read("ServiceRequest", sr_id))
    codes = {c.get("code") for cat in sr.get("category", []) for c in cat.get("coding", [])}
    if CONSULTATION["code"] not in codes:
        raise Unprocessable(f"ServiceRequest/{sr_id} is not a consultation request")
    patient_id = str(sr["subject"]["reference"]).split("/")[-1]
    patient = load(repo.read("Patient", patient_id))
    tasks = repo.search("Task", [("focus", f"ServiceRequest/{sr_id}"), ("_count", "1")]).matches
    timeline: list[dict[str, Any]] = []
    if tasks:
        for version in reversed(repo.history("Task", tasks[0].id, count=200).entries):
            if not version.deleted:
                timeline.append(
                    {"状态": load(version).get("status"), "时间": load(version).get("lastModified")}
                )
    appointments = [
        load(a) for a in search_all(repo, "Appointment", [("based-on", f"ServiceRequest/{sr_id}")])
    ]
    appointment = appointments[-1] if appointments else None
    opinions = [
        load(c)
        for c in repo.search(
            "Composition", [("subject", sr["subject"]["reference"]), ("_count", "100")]
        ).matches
        if any(
            d.get("reference") == f"ServiceRequest/{sr_id}"
            for e in load_events(c)
            for d in e.get("detail", [])
        )
    ]
    opinion = opinions[-1] if opinions else {}
    notices = search_all(repo, "Communication", [("based-on", f"ServiceRequest/{sr_id}")])
    resident_id = next(
        (i.get("value") for i in patient.get("identifier", []) if i.get("system") == RESIDENT_ID), None
    )
    sex = SEX.get(str(patient.get("gender")), (None, None))
    shared = [
        r["reference"]
        for r in sr.get("supportingInfo", [])
        if not str(r.get("reference", "")).startswith("Consent/")
    ]
    consent = next(
        (
            r["reference"]
            for r in sr.get("supportingInfo", [])
            if str(r.get("reference", "")).startswith("Consent/")
        ),
        None,
    )
    return {
        "dataSet": "WS/T 483.19 会诊记录",
        "文档标识": f"ServiceRequest/{sr_id}",
        "患者": {
            "身份证件号码 (DE02.01.030.00)": resident_id,
            "姓名 (DE02.01.039.00)": _name(patient),
            "性别代码 (DE02.01.040.00)": sex[0],
            "性别": sex[1],
            "出生日期": patient.get("birthDate"),
            "患者标识": f"Patient/{patient_id}",
        },
        "会诊申请": {
            "申请医疗机构/医师": _party(
                appointment, "inviting", (sr.get("requester") or {}).get("reference")
            ),
            "申请日期时间": sr.get("authoredOn"),
            "会诊类型": "远程会诊",
            "紧急程度": sr.get("priority"),
            "会诊原因": "; ".join(str(r.get("text")) for r in sr.get("reasonCode", [])) or None,
            "会诊目的": "; ".join(str(n.get("text")) for n in sr.get("note", [])) or None,
            "病历摘要/共享资料": shared,
            "知情同意": consent,
        },
        "受邀方": {
            "会诊所在医疗机构": _party(
                appointment, "invited", next((p["reference"] for p in sr.get("performer", [])), None)
            ),
            "会诊医师": [a.get("reference") for a in opinion.get("author", [])],
        },
        "会诊安排": {
            "会诊日期时间": (appointment or {}).get("start"),
            "结束时间": (appointment or {}).get("end"),
            "视频会议链接": _video(appointment) if appointment else None,
        },
        "会诊意见": _section_text(opinion, "会诊意见"),
        "诊断": _section_text(opinion, "诊断"),
        "会诊意见日期时间": opinion.get("date"),
        "状态记录": timeline,
        "通知记录": [
            {
                "事件": (load(c).get("category") or [{}])[0].get("coding", [{}])[0].get("code"),
                "时间": load(c).get("sent"),
                "接收方": [r.get("reference") for r in load(c).get("recipient", [])],
            }
            for c in notices
        ],
        "会诊状态": sr.get("status"),
    }


def load_events(stored: Any) -> list[Json]:
    """`Composition.event` of a stored Composition."""
    events: list[Json] = load(stored).get("event", [])
    return events
