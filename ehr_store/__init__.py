"""ehr_store: storage of FHIR R4B resources, search indexes, message archive (and later EMPI).

The bottom layer: imports nothing from the other project packages. Other packages use
only what this module re-exports.
"""

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
from ehr_store.model import HistoryPage, SearchResult, StoredResource
from ehr_store.repository import (
    ArchivedMessage,
    ArchiveStatus,
    MessageArchive,
    ResourceRepository,
    SearchParams,
    Store,
    UnitOfWork,
)
from ehr_store.settings import StoreSettings

__all__ = [
    "ArchiveStatus",
    "ArchivedMessage",
    "Conflict",
    "DomainError",
    "Forbidden",
    "Gone",
    "HistoryPage",
    "InvalidInput",
    "Issue",
    "MessageArchive",
    "NotFound",
    "NotSupported",
    "PreconditionFailed",
    "ResourceRepository",
    "SearchParams",
    "SearchResult",
    "Store",
    "StoreSettings",
    "StoredResource",
    "TooCostly",
    "Unauthenticated",
    "Unavailable",
    "UnitOfWork",
    "Unprocessable",
    "VersionConflict",
]
