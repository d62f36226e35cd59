"""FHIR R4B search (§3.1.1): parameter registry, index extraction, index tables, query parsing,
and execution over SQL (SQLite/PostgreSQL) and in memory.

Public API (other `ehr_store` modules import only from here):
- `get_registry(timezone) -> Registry`; `Registry.params_for(type) -> {code: SearchParamDef}`
  (code, type, url, documentation, targets, expression) for the CapabilityStatement.
- `extract_index(resource, registry) -> IndexEntries` (pure; no database).
- `write_index(session, type, id, entries, *, replace=True)`, `write_indexes(session, items)`,
  `delete_index(session, type, id)`: index rows in the caller's transaction.
- `parse_search(type | None, params, registry, *, strict, max_count) -> SearchQuery`.
- `execute_search(session, type | None, params, *, strict, settings, registry) -> SearchResult`,
  `matching_ids(session, type, params, *, settings, registry) -> Select` (an id subquery),
  `execute_count(session, type | None, params, *, settings, registry) -> int`.
- Code sets for `:in`/`:not-in`/`:below`/`:above` (`code_sets.py`): `CodeSet(key, label, codes)`,
  `make_code_set(label, codes)`, `CodeSetResolver = (kind, system, value) -> CodeSet`,
  `use_code_set_resolver(store, resolver)`, `write_code_set(conn, code_set)`; executors take
  `code_sets=CodeSets()` (the store's, holding its resolver).
- `MemoryIndex(settings, registry)`: `index(version, doc)`, `put`, `remove`,
  `search(current, type, params, *, strict)`, `count(current, type, params)`.

May import: sqlalchemy, sqlmodel, fhirpathpy, fhir.resources, pypinyin, the standard library, `ehr_store`
modules below `ehr_store.search` (errors, model, settings, tables).
"""

from ehr_store.search.code_sets import (
    CodeSet,
    CodeSetResolver,
    CodeSets,
    make_code_set,
    use_code_set_resolver,
    write_code_set,
)
from ehr_store.search.extract import (
    DateEntry,
    IndexEntries,
    NumberEntry,
    QuantityEntry,
    ReferenceEntry,
    StringEntry,
    TokenEntry,
    UriEntry,
    extract_index,
)
from ehr_store.search.memory import MemoryIndex
from ehr_store.search.parse import RESULT_PARAMS, parse_search
from ehr_store.search.query import Include, SearchQuery, SortKey
from ehr_store.search.registry import Registry, SearchParamDef, get_registry
from ehr_store.search.sql import execute_count, execute_search, matching_ids, run_query
from ehr_store.search.tables import (
    INDEX_TABLES,
    delete_index,
    delete_index_many,
    keys_condition,
    keys_params,
    write_index,
    write_indexes,
)
from ehr_store.search.values import normalize_string, parse_date_range

__all__ = [
    "INDEX_TABLES",
    "RESULT_PARAMS",
    "CodeSet",
    "CodeSetResolver",
    "CodeSets",
    "DateEntry",
    "Include",
    "IndexEntries",
    "MemoryIndex",
    "NumberEntry",
    "QuantityEntry",
    "ReferenceEntry",
    "Registry",
    "SearchParamDef",
    "SearchQuery",
    "SortKey",
    "StringEntry",
    "TokenEntry",
    "UriEntry",
    "delete_index",
    "delete_index_many",
    "execute_count",
    "execute_search",
    "extract_index",
    "get_registry",
    "keys_condition",
    "keys_params",
    "make_code_set",
    "matching_ids",
    "normalize_string",
    "parse_date_range",
    "parse_search",
    "run_query",
    "use_code_set_resolver",
    "write_code_set",
    "write_index",
    "write_indexes",
]
