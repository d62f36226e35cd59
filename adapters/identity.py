"""The identity hook protocol ingestion calls after writing source Patients.

Implemented by `ehr_store.empi.EmpiService`; the composition root passes it to
`IngestService(identity_hooks=...)`. Both calls run inside the message's unit of work,
so linking commits (or rolls back) together with the message. Hooks that also implement
`SourcePatientWriter.write_source_patient` write the source Patients themselves (the writer
then skips `on_source_patient` for them).

May import: the standard library, `ehr_store` (public API).
"""

from __future__ import annotations

from typing import Any, Protocol

from ehr_store import ResourceRepository, StoredResource


class IdentityHooks(Protocol):
    """EMPI callbacks (see `ehr_store.empi`)."""

    def on_source_patient(self, repo: ResourceRepository, stored_patient: StoredResource) -> None:
        """After a source Patient (one facility MRN) was created or updated."""
        ...

    def on_merge(self, repo: ResourceRepository, survivor: StoredResource, merged: StoredResource) -> None:
        """After ADT^A40 merged `merged` (MRG-1) into `survivor` (PID-3) within one facility."""
        ...


class SourcePatientWriter(Protocol):
    """Optional addition to `IdentityHooks`: write a source Patient together with its linking."""

    def write_source_patient(self, repo: ResourceRepository, patient: dict[str, Any]) -> StoredResource:
        """Write `patient` (update-as-create, as merged by the writer) with its identity links
        in one version; returns the stored version (what `repo.update` would)."""
        ...
