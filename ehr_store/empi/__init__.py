"""ehr_store.empi: the EMPI (WS/T 790.6 居民注册服务) — matching, linking, resident records.

Public API for the other packages (import only from here):
- `EmpiService` (ingestion: `write_source_patient` writes a source Patient with its link in one
  version, `on_source_patient` links one already written, `on_merge`; link, unlink, merge, reviews),
- `match_bundle` (Patient/$match), `everything` (Patient/$everything),
- `EmpiSettings`, `load_rules`, `import_residents` (population register CSV),
- `refuse_golden_delete` / `refuse_golden_deleted` (no generic DELETE of a golden Patient).

May import: the standard library, pydantic, pypinyin, rapidfuzz, sqlalchemy/sqlmodel (tables,
sql_index), `ehr_store` modules.
"""

from ehr_store.empi.config import EmpiSettings, MatchRules, load_rules
from ehr_store.empi.features import Features, extract
from ehr_store.empi.golden import EMPI_TAG_SYSTEM, SOURCE_IDENTIFIER_EXT, is_golden
from ehr_store.empi.guard import refuse_golden_delete, refuse_golden_deleted
from ehr_store.empi.importer import ImportReport, import_residents, read_rows, row_to_patient
from ehr_store.empi.index import EmpiIndex, LinkRecord, ReviewItem
from ehr_store.empi.operations import EverythingPage, everything, match, match_bundle, record_patient_ids
from ehr_store.empi.ranking import GoldenScore
from ehr_store.empi.scoring import Comparison, decide, match_grade, score
from ehr_store.empi.service import EmpiService

__all__ = [
    "EMPI_TAG_SYSTEM",
    "SOURCE_IDENTIFIER_EXT",
    "Comparison",
    "EmpiIndex",
    "EmpiService",
    "EmpiSettings",
    "EverythingPage",
    "Features",
    "GoldenScore",
    "ImportReport",
    "LinkRecord",
    "MatchRules",
    "ReviewItem",
    "decide",
    "everything",
    "extract",
    "import_residents",
    "is_golden",
    "load_rules",
    "match",
    "match_bundle",
    "match_grade",
    "read_rows",
    "record_patient_ids",
    "refuse_golden_delete",
    "refuse_golden_deleted",
    "row_to_patient",
    "score",
]
