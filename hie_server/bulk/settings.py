"""`BulkSettings`: where export files go, how long they live, page and file sizes.

Env: `HIE_BULK__DIRECTORY`, `HIE_BULK__EXPIRE_MINUTES`, ... (section `bulk` of HieSettings).

May import: pydantic.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class BulkSettings(BaseModel):
    """FHIR Bulk Data export settings.

    `directory`: export files, one sub-directory per job. `expire_minutes`: files and the job
    record are removed this long after completion (the manifest's `Expires`).
    `page_bytes`: target size of one keyset page read from the store. `file_max_resources`:
    a type's output is split into files of at most this many resources. `retry_after_seconds`:
    the `Retry-After` of an in-progress status answer. `settle_seconds`: the worker starts
    reading this long after kick-off, so writes stamped before `transactionTime` have committed.
    """

    model_config = ConfigDict(frozen=True)

    directory: str = "var/bulk"
    expire_minutes: int = Field(default=24 * 60, ge=1)
    page_bytes: int = Field(default=4 * 1024 * 1024, ge=64 * 1024)
    file_max_resources: int = Field(default=500_000, ge=1)
    retry_after_seconds: int = Field(default=2, ge=1)
    settle_seconds: float = Field(default=0.2, ge=0)
    max_jobs_per_owner: int = Field(default=5, ge=1)
