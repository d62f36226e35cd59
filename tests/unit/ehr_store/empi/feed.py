"""Test-local reader of the sample feed: PID segments → minimal FHIR Patients (not the hl7 mapping).

Reads `feed-small/truth.jsonl` in order and yields, per message with a PID, the facility,
MRN, the truth `person`, the message type, any MRG-1 MRN, and a Patient dict shaped like
the hl7 helper's mapping (identifier MR + 身份证号 system, name, birthDate, gender, telecom,
address with district = PID-11.9). Stdlib only.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ehr_store.resident_id import RESIDENT_ID_SYSTEM

_SEGMENT = re.compile(r"\r\n|\r|\n")


def samples_dir() -> Path:
    """`HIE_SAMPLES_DIR` or `<repo>/../shared/samples`."""
    env = os.environ.get("HIE_SAMPLES_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[4] / ".." / "shared" / "samples"


@dataclass
class FeedRecord:
    facility: str
    mrn: str
    person: str
    message_type: str
    merged_mrn: str | None
    patient: dict[str, Any]


def _decode(raw: bytes) -> str:
    header = raw.split(b"\r", 1)[0].split(b"|")
    charset = header[17].decode("ascii", "replace") if len(header) > 17 else ""
    return raw.decode("gb18030" if "GB" in charset.upper() else "utf-8")


def _date(value: str) -> str | None:
    if len(value) >= 8 and value[:8].isdigit():
        return f"{value[:4]}-{value[4:6]}-{value[6:8]}"
    return None


def patient_from_pid(pid: str, facility: str) -> dict[str, Any]:
    f = pid.split("|") + [""] * 20
    identifiers: list[dict[str, Any]] = []
    for rep in f[3].split("~"):
        c = rep.split("^") + [""] * 6
        if c[4] == "MR":
            identifiers.append({"system": f"urn:qingyuan-hie:mrn:{c[3]}", "value": c[0]})
        elif c[0]:
            identifiers.append({"system": RESIDENT_ID_SYSTEM, "value": c[0]})
    n = f[5].split("^") + [""] * 2
    a = f[11].split("^") + [""] * 10
    patient: dict[str, Any] = {"resourceType": "Patient", "identifier": identifiers}
    patient["name"] = [{"use": "official", "family": n[0], "given": [n[1]] if n[1] else []}]
    if _date(f[7]):
        patient["birthDate"] = _date(f[7])
    patient["gender"] = {"M": "male", "F": "female"}.get(f[8], "unknown")
    phone = f[13].split("^")[-1]
    if phone:
        patient["telecom"] = [{"system": "phone", "value": phone}]
    patient["address"] = [
        {"use": "home", "line": [a[0], a[1]], "city": a[2], "state": a[3], "district": a[8]}
    ]
    return patient


def read_feed(name: str = "feed-small") -> Iterator[FeedRecord]:
    base = samples_dir() / name
    with (base / "truth.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            t = json.loads(line)
            if "person" not in t:
                continue
            segments = _SEGMENT.split(_decode((base / t["file"]).read_bytes()))
            pid = next((s for s in segments if s.startswith("PID|")), None)
            mrg = next((s for s in segments if s.startswith("MRG|")), None)
            if pid is None:
                continue
            mrn = pid.split("|")[3].split("~")[0].split("^")[0]
            merged = mrg.split("|")[1].split("^")[0] if mrg else None
            yield FeedRecord(
                t["facility"], mrn, t["person"], t["type"], merged, patient_from_pid(pid, t["facility"])
            )
