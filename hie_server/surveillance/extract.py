"""Case extracts: identified or de-identified rows, as CSV (UTF-8 with BOM, Chinese headers,
so Excel opens it with the text intact) or NDJSON (English keys, one case per line).

De-identified rows (everyone without the identified role): no name, 身份证号, phone, village,
birth date or Patient id; the case and the person get keyed pseudonyms (HMAC-SHA256 with
`SurveillanceSettings.pseudonym_key`); age as a 5-year band (85+); place only to the township;
optionally every date of a person shifted by the same ±1..N days (`shift_dates`).

May import: the standard library, `hie_server.surveillance.*`.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from hie_server.surveillance.cases import CHINA, CaseRecord
from hie_server.surveillance.settings import SurveillanceSettings

SEX = {"male": "男", "female": "女", "other": "其他", "unknown": "未知"}
_CASE_COLUMNS = (  # the disease and report columns both extracts end with
    ("disease_name", "疾病名称"),
    ("disease_code", "疾病编码"),
    ("disease_class", "传染病类别"),
    ("classification", "病例分类"),
    ("icd10", "ICD-10"),
    ("onset_date", "发病日期"),
    ("diagnosis_time", "诊断时间"),
    ("deadline", "报告时限"),
    ("reported_at", "报告时间"),
    ("overdue", "是否超时"),
    ("facility_name", "报告单位"),
    ("facility", "报告单位编码"),
)
IDENTIFIED_COLUMNS = (
    ("case_id", "卡片编号"),
    ("name", "患者姓名"),
    ("resident_id", "有效证件号"),
    ("sex", "性别"),
    ("birth_date", "出生日期"),
    ("age", "年龄"),
    ("phone", "联系电话"),
    ("occupation", "职业"),
    ("county", "现住址县区"),
    ("township", "乡镇街道"),
    ("village", "村居"),
    *_CASE_COLUMNS,
)
DEIDENTIFIED_COLUMNS = (
    ("case_id", "卡片编号(假名)"),
    ("person", "人员编号(假名)"),
    ("sex", "性别"),
    ("age_band", "年龄段"),
    ("occupation", "职业"),
    ("county", "现住址县区"),
    ("township", "乡镇街道"),
    *_CASE_COLUMNS,
)
IDENTIFYING_FIELDS = ("name", "resident_id", "phone", "village", "birth_date", "patient_id")
_PROCESS_KEY = secrets.token_bytes(32)


def age_band(age: int | None) -> str | None:
    """5-year band `0-4`, `5-9`, … `80-84`, `85+` (None when unknown)."""
    if age is None:
        return None
    if age >= 85:
        return "85+"
    low = age // 5 * 5
    return f"{low}-{low + 4}"


class Deidentifier:
    """Keyed pseudonyms and per-person date shifts (see module docstring)."""

    def __init__(self, settings: SurveillanceSettings, *, shift_dates: bool = False) -> None:
        self.key = settings.pseudonym_key.encode() if settings.pseudonym_key else _PROCESS_KEY
        self.max_shift = settings.date_shift_days
        self.shift_dates = shift_dates

    def pseudonym(self, value: str) -> str:
        """16 hex characters of HMAC-SHA256(key, value)."""
        return hmac.new(self.key, value.encode("utf-8"), hashlib.sha256).hexdigest()[:16]

    def shift(self, person: str) -> timedelta:
        """The person's date shift (±1..max days), zero unless shifting was asked for."""
        if not self.shift_dates:
            return timedelta(0)
        h = int(self.pseudonym("shift:" + person), 16) % (2 * self.max_shift)
        return timedelta(days=h - self.max_shift if h < self.max_shift else h - self.max_shift + 1)


def _text(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(CHINA).isoformat(timespec="minutes")
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def case_row(case: CaseRecord, now: datetime, deid: Deidentifier | None) -> dict[str, Any]:
    """One case as a dict of the extract's fields (identified when `deid` is None)."""
    row: dict[str, Any] = {name: getattr(case, name, None) for name, _ in IDENTIFIED_COLUMNS}
    row["overdue"] = case.overdue(now)
    row["sex"] = SEX.get(case.sex or "", case.sex)
    if deid is None:
        return {k: _text(v) for k, v in row.items()}
    shift = deid.shift(case.patient_id)
    out = {k: row.get(k) for k, _ in DEIDENTIFIED_COLUMNS}
    out.update(
        case_id=deid.pseudonym(case.case_id),
        person=deid.pseudonym("person:" + case.patient_id),
        age_band=age_band(case.age),
    )
    for key in ("onset_date", "diagnosis_time", "deadline", "reported_at"):
        value = out.get(key)
        if value is not None:
            out[key] = value + shift
    return {k: _text(v) for k, v in out.items()}


def to_csv(rows: Iterable[dict[str, Any]], *, identified: bool) -> bytes:
    """CSV with a UTF-8 BOM and Chinese headers (Excel-friendly), booleans as 是/否."""
    columns = IDENTIFIED_COLUMNS if identified else DEIDENTIFIED_COLUMNS
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([title for _, title in columns])
    for row in rows:
        writer.writerow(
            [
                "是" if (v := row.get(k)) is True else "否" if v is False else "" if v is None else v
                for k, _ in columns
            ]
        )
    return buffer.getvalue().encode("utf-8-sig")


def to_ndjson(rows: Iterable[dict[str, Any]]) -> bytes:
    """One JSON object per line (UTF-8, Chinese kept as is)."""
    return b"".join(json.dumps(r, ensure_ascii=False).encode("utf-8") + b"\n" for r in rows)
