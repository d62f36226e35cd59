"""ehr_store: storage of FHIR R4B resources, search indexes, message archive (and later EMPI).

The bottom layer: imports nothing from the other project packages. Other packages use
only what this module re-exports.
"""

from ehr_store.aggregates import Fact, HourlyCount, IndexAggregates
from ehr_store.conditional import conditional_create, conditional_delete, conditional_update, parse_criteria
from ehr_store.errors import (
    Conflict,
    DomainError,
    Forbidden,
    Gone,
    InvalidInput,
    Issue,
    NotFound,
    NotSupported,
    PreconditionFailed,
    TooCostly,
    Unauthenticated,
    Unavailable,
    Unprocessable,
    VersionConflict,
)
from ehr_store.export import (
    ExportJob,
    ExportJobStore,
    ExportRow,
    ResourceMatcher,
    export_jobs,
    stream_snapshot,
)
from ehr_store.factory import open_store
from ehr_store.jsonio import dumps as json_dumps
from ehr_store.jsonio import loads as json_loads
from ehr_store.jsonio import loads_resource as json_loads_resource
from ehr_store.memory import MemoryStore
from ehr_store.model import HistoryMethod, HistoryPage, SearchResult, StoredResource
from ehr_store.repository import (
    ArchivedMessage,
    ArchiveStatus,
    IncomingMessage,
    MessageArchive,
    MessageOutcome,
    ResourceRepository,
    SearchParams,
    Store,
    UnitOfWork,
)
from ehr_store.schema import check_schema, current_revision, head_revision, upgrade_schema
from ehr_store.search import CodeSet, CodeSetResolver, make_code_set, use_code_set_resolver
from ehr_store.settings import StoreSettings
from ehr_store.sql import SqlStore
from ehr_store.validation import check_id, check_resource_type, validate_resource, validate_with_models
from ehr_store.versioning import format_instant

__all__ = [
    "ArchiveStatus",
    "ArchivedMessage",
    "CodeSet",
    "CodeSetResolver",
    "Conflict",
    "DomainError",
    "ExportJob",
    "ExportJobStore",
    "ExportRow",
    "Fact",
    "Forbidden",
    "Gone",
    "HistoryMethod",
    "HistoryPage",
    "HourlyCount",
    "IncomingMessage",
    "IndexAggregates",
    "InvalidInput",
    "Issue",
    "MemoryStore",
    "MessageArchive",
    "MessageOutcome",
    "NotFound",
    "NotSupported",
    "PreconditionFailed",
    "ResourceMatcher",
    "ResourceRepository",
    "SearchParams",
    "SearchResult",
    "SqlStore",
    "Store",
    "StoreSettings",
    "StoredResource",
    "TooCostly",
    "Unauthenticated",
    "Unavailable",
    "UnitOfWork",
    "Unprocessable",
    "VersionConflict",
    "check_id",
    "check_resource_type",
    "check_schema",
    "conditional_create",
    "conditional_delete",
    "conditional_update",
    "current_revision",
    "export_jobs",
    "format_instant",
    "head_revision",
    "json_dumps",
    "json_loads",
    "json_loads_resource",
    "make_code_set",
    "open_store",
    "parse_criteria",
    "stream_snapshot",
    "upgrade_schema",
    "use_code_set_resolver",
    "validate_resource",
    "validate_with_models",
]
