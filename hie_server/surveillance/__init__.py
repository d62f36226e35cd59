"""hie_server.surveillance: notifiable-disease surveillance for disease control (疾控).

Cases (传染病报告卡-shaped `CaseRecord`s) recomputed on demand from stored Conditions and
positive pathogen tests, reporting deadlines and overdue cases, identified/de-identified
extracts (CSV with BOM, NDJSON), weekly counts, epidemic-curve charts, ILI share, vaccination
coverage. Routes: `hie_server.operations.surveillance`; CLI: `hie surveillance`.

Public API: `SurveillanceService` (`prepare()` builds or catches up its read model),
`ReadModelWarmup` (the `hie serve` background service running it), `SurveillanceSettings`,
`CaseRecord`, `Disease`, `DiseaseCatalogue`, `Deidentifier`, `age_band`, `IDENTIFYING_FIELDS`,
`REPORT_TASK`, `TASK_SYSTEM`, `report_task`.

May import: the standard library, orjson, matplotlib, `ehr_store`, `terminology`,
`hie_server.bulk` (cohort helpers).
"""

from hie_server.surveillance.cases import REPORT_TASK, TASK_SYSTEM, CaseRecord, report_task
from hie_server.surveillance.diseases import Disease, DiseaseCatalogue
from hie_server.surveillance.extract import IDENTIFYING_FIELDS, Deidentifier, age_band
from hie_server.surveillance.service import ReadModelWarmup, SurveillanceService
from hie_server.surveillance.settings import SurveillanceSettings

__all__ = [
    "IDENTIFYING_FIELDS",
    "REPORT_TASK",
    "TASK_SYSTEM",
    "CaseRecord",
    "Deidentifier",
    "Disease",
    "DiseaseCatalogue",
    "ReadModelWarmup",
    "SurveillanceService",
    "SurveillanceSettings",
    "age_band",
    "report_task",
]
