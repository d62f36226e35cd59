"""Bulk load of a population register (residents.csv) to seed resident records.

Each valid row becomes a source Patient `Patient/reg-<身份证号>` (identifier in the register's
system and the 身份证号 system) linked through the normal EMPI path, so later feeds match it.
Re-importing a row updates the same Patient (idempotent). Rows are checked before anything
is written; bad rows are reported with their line number and skipped, never half-written.

Columns (header row; English or Chinese names): resident_id/身份证号, name/姓名, sex/性别,
birth_date/出生日期, phone/电话, address/地址.

May import: the standard library, `ehr_store` (errors, repository, resident_id), `ehr_store.empi.*`.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TextIO

from ehr_store.empi.service import EmpiService
from ehr_store.repository import Store
from ehr_store.resident_id import RESIDENT_ID_SYSTEM, parse_resident_id

REGISTER_SYSTEM = "urn:qingyuan-hie:population-register"
_HEADERS = {
    "身份证号": "resident_id",
    "姓名": "name",
    "性别": "sex",
    "出生日期": "birth_date",
    "电话": "phone",
    "地址": "address",
}
_SEX = {
    "男": "male",
    "m": "male",
    "male": "male",
    "1": "male",
    "女": "female",
    "f": "female",
    "female": "female",
    "2": "female",
}
_TOWN = re.compile(r"([^省市区县]{1,12}?(?:镇|乡|街道))")
_VILLAGE = re.compile(r"(?:镇|乡|街道)([^镇乡]{1,12}?(?:村|社区|居委会))")


@dataclass
class ImportReport:
    """Outcome: `imported` rows, `errors` as (line number, message)."""

    imported: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)


def row_to_patient(row: dict[str, str]) -> dict[str, Any]:
    """One register row → a source Patient. Raises: ValueError (with the reason)."""
    row = {_HEADERS.get(k.strip(), k.strip()): (v or "").strip() for k, v in row.items() if k}
    rid = parse_resident_id(row.get("resident_id", ""))
    if not rid.valid:
        raise ValueError(f"身份证号 invalid: {rid.reason}")
    name = row.get("name", "")
    if not name:
        raise ValueError("name is empty")
    birth = row.get("birth_date", "").replace("/", "-")
    if birth and len(birth) == 8 and birth.isdigit():
        birth = f"{birth[:4]}-{birth[4:6]}-{birth[6:]}"
    if birth and rid.birth_date is not None and birth != rid.birth_date.isoformat():
        raise ValueError(f"birth date {birth} differs from the one in the 身份证号")
    sex = _SEX.get(row.get("sex", "").lower(), rid.sex)
    patient: dict[str, Any] = {
        "resourceType": "Patient",
        "identifier": [
            {"system": REGISTER_SYSTEM, "value": rid.value},
            {"system": RESIDENT_ID_SYSTEM, "value": rid.value},
        ],
        "name": [
            {"use": "official", "text": name, "family": name[:1], "given": [name[1:]] if name[1:] else []}
        ],
        "gender": sex,
        "birthDate": birth or (rid.birth_date.isoformat() if rid.birth_date else None),
    }
    if row.get("phone"):
        patient["telecom"] = [{"system": "phone", "value": row["phone"]}]
    address = row.get("address", "")
    if address:
        line = [m.group(1) for m in (_VILLAGE.search(address), _TOWN.search(address)) if m]
        patient["address"] = [{"use": "home", "text": address, "line": line, "district": rid.area_code}]
    return {k: v for k, v in patient.items() if v is not None}


def read_rows(stream: TextIO) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row) pairs of a CSV with a header row."""
    reader = csv.DictReader(stream)
    for row in reader:
        yield reader.line_num, row


def import_residents(
    store: Store,
    service: EmpiService,
    rows: Iterable[tuple[int, dict[str, str]]],
    *,
    batch: int = 200,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import register rows in units of work of `batch` rows (each committed on its own).

    `progress(n)` is called after each committed batch with the rows it handled.
    Raises: DomainError from the store (the failing batch is rolled back; earlier ones stay).
    """
    report = ImportReport()
    pending: list[dict[str, Any]] = []

    def flush() -> None:
        if not pending:
            return
        with store.unit_of_work(write=True) as uow:
            for patient in pending:
                pid = f"reg-{patient['identifier'][0]['value']}"
                service.write_source_patient(uow.resources, {**patient, "id": pid})  # one version, linked
            uow.commit()
        report.imported += len(pending)
        if progress is not None:
            progress(len(pending))
        pending.clear()

    for line, row in rows:
        try:
            pending.append(row_to_patient(row))
        except ValueError as exc:
            report.errors.append((line, str(exc)))
            if progress is not None:
                progress(1)
        if len(pending) >= batch:
            flush()
    flush()
    return report
