"""hie_server.bulk: FHIR Bulk Data Access v2.0 export (system, Patient and Group level) and the
cohort Groups used as export scopes.

Public API: `BulkSettings`, `BulkExporter` (jobs, worker thread, files), `ExportRequest`,
`parse_kickoff`, `CohortSpec`, `build_cohort`, `group_county`, `patient_county`, `age_on`.
Routes: `hie_server.operations.bulk.bulk_module(exporter)`.

May import: the standard library, orjson, `ehr_store`, `terminology`, `hie_server.auth`.
"""

from hie_server.bulk.cohorts import CohortSpec, age_on, build_cohort, group_county, patient_county
from hie_server.bulk.exporter import BulkExporter
from hie_server.bulk.request import ExportRequest, parse_instant, parse_kickoff
from hie_server.bulk.settings import BulkSettings

__all__ = [
    "BulkExporter",
    "BulkSettings",
    "CohortSpec",
    "ExportRequest",
    "age_on",
    "build_cohort",
    "group_county",
    "parse_instant",
    "parse_kickoff",
    "patient_county",
]
