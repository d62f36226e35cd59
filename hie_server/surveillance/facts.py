"""The surveillance read model on SQL stores (`ehr_store.IndexAggregates` facts and projection):
one small row per Encounter and per Condition, and every Patient's home county, kept beside the
store and refreshed from its changes before each computation (`refresh`), so the dashboard's
cases and ILI share group a few thousand small rows instead of reading the search index or the
JSON of every resource of the period.

- `ENCOUNTER_FACTS` (Encounter, `date` range = `period`): subject = the Patient id of `subject`
  (the reference without `Patient/`, as the paged path reads it), code = `class.code`.
- `CONDITION_FACTS` (Condition, `recorded-date` range): link = the Encounter id of `encounter`,
  code = the first ICD-10 coding (WHO or Chinese edition; it decides the disease, as in
  `cases.find_candidates`), codes = every ICD-10 coding (any of them makes an ILI visit).
- `REPORT_FACTS` (Task): for a 网络直报 Task (code `nndrs-report`) link = `focus.reference`
  (e.g. `Condition/x`), code = `status`; other Tasks: a row of nulls.
- `COUNTY_PROJECTION`: a Patient's home county (`hie_server.bulk.cohorts.patient_county`).

Which codes are notifiable or ILI is decided here from the catalogue at each computation (the
read model stores codes, not diseases, so a terminology or settings change needs no rebuild).
The first refresh derives every Encounter, Condition, Task and Patient (~10 s at 1M resources on
SQLite): `hie surveillance refresh`, or `hie serve` in the background at start.

May import: the standard library, `ehr_store`, `terminology`, `hie_server.bulk`,
`hie_server.surveillance.*`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import date
from typing import Any

from ehr_store import Fact, IndexAggregates
from hie_server.bulk.cohorts import patient_county
from hie_server.surveillance.cases import ICD10_SYSTEMS, REPORT_TASK, TASK_SYSTEM, _icd10
from hie_server.surveillance.diseases import DiseaseCatalogue
from hie_server.surveillance.stats import iso_week, share_rows

Json = dict[str, Any]
ENCOUNTER_FACTS = "surveillance-encounter"
CONDITION_FACTS = "surveillance-condition"
REPORT_FACTS = "surveillance-report"
COUNTY_PROJECTION = "patient-county"
"""Read-model name of a Patient's home county (`patient_county`)."""
OUTPATIENT = "AMB"


def _reference(doc: Json, element: str, prefix: str) -> str | None:
    return str((doc.get(element) or {}).get("reference", "")).removeprefix(prefix) or None


def encounter_fact(doc: Json) -> Fact:
    """The fact row of an Encounter (module docstring)."""
    code = (doc.get("class") or {}).get("code")
    return Fact(subject=_reference(doc, "subject", "Patient/"), code=str(code) if code else None)


def condition_fact(doc: Json) -> Fact:
    """The fact row of a Condition (module docstring)."""
    codes = tuple(
        str(c["code"])
        for c in (doc.get("code") or {}).get("coding", [])
        if c.get("system") in ICD10_SYSTEMS and c.get("code")
    )
    return Fact(
        subject=_reference(doc, "subject", "Patient/"),
        link=_reference(doc, "encounter", "Encounter/"),
        code=_icd10(doc),
        codes=codes,
    )


def report_fact(doc: Json) -> Fact:
    """The fact row of a Task (module docstring)."""
    codings = (doc.get("code") or {}).get("coding", [])
    if not any(c.get("system") == TASK_SYSTEM and c.get("code") == REPORT_TASK for c in codings):
        return Fact()
    status = doc.get("status")
    return Fact(link=_reference(doc, "focus", ""), code=str(status) if status else None)


def refresh(
    aggregates: IndexAggregates, *, cases: bool = True, visits: bool = True, full: bool = False
) -> int:
    """Bring the read model up to date: Condition facts, with `cases` the report Task facts, with
    `visits` (for the ILI share) Encounter facts and the county projection; `full`: re-check every
    resource by version (`ehr_store.read_model`). Returns the rows re-derived.
    Raises: Unavailable, Conflict."""
    done = aggregates.refresh_facts(CONDITION_FACTS, "Condition", "recorded-date", condition_fact, full=full)
    if cases:
        done += aggregates.refresh_facts(REPORT_FACTS, "Task", None, report_fact, full=full)
    if visits:
        done += aggregates.refresh_facts(ENCOUNTER_FACTS, "Encounter", "date", encounter_fact, full=full)
        done += aggregates.refresh_projection(COUNTY_PROJECTION, "Patient", patient_county, full=full)
    return done


def notifiable_condition_ids(
    aggregates: IndexAggregates, catalogue: DiseaseCatalogue, start: date, end: date
) -> list[str]:
    """Ids of the Conditions recorded in [start, end] whose first ICD-10 code is notifiable, in
    the search's id order (call `refresh` first). Raises: Unavailable."""
    codes = {code for code, _, _ in aggregates.fact_codes(CONDITION_FACTS, start, end) if code}
    notifiable = sorted(c for c in codes if catalogue.for_icd10(c) is not None)
    return aggregates.fact_ids(CONDITION_FACTS, start, end, notifiable)


def report_task_ids(aggregates: IndexAggregates, sources: Sequence[str]) -> list[str]:
    """Ids of the completed report Tasks whose focus is one of `sources` (`Condition/x`,
    `Observation/y`; call `refresh` first). Raises: Unavailable."""
    return aggregates.fact_links(REPORT_FACTS, sources, "completed")


def ili_share(
    aggregates: IndexAggregates,
    catalogue: DiseaseCatalogue,
    start: date,
    end: date,
    county: str | None = None,
) -> list[dict[str, Any]]:
    """`stats.ili_share` from the read model (same rows; call `refresh` first): outpatient
    Encounter facts of the period counted per hour and home county in SQL, flagged when an ILI
    Condition fact of the period links to them; only the code combinations and the counts reach
    Python. Raises: Unavailable."""
    stored = {codes for _, codes, _ in aggregates.fact_codes(CONDITION_FACTS, start, end) if codes}
    ili_codes = sorted(s for s in stored if any(catalogue.ili(c) for c in Fact.split(s)))
    rows = aggregates.fact_hourly(
        ENCOUNTER_FACTS,
        start,
        end,
        code=OUTPATIENT,
        projection=(COUNTY_PROJECTION, "Patient"),
        flag=(CONDITION_FACTS, ili_codes),
    )
    totals: Counter[tuple[str, str]] = Counter()
    ili: Counter[tuple[str, str]] = Counter()
    for row in rows:
        where = row.group or "unknown"
        if county and not where.startswith(county):
            continue
        totals[(iso_week(row.hour), where)] += row.total
        ili[(iso_week(row.hour), where)] += row.flagged
    return share_rows(totals, ili)
