"""The identity hook protocol ingestion calls after writing source Patients.

Implemented by `ehr_store.empi.EmpiService`; the composition root passes it to
`IngestService(identity_hooks=...)`. Both calls run inside the message's unit of work,
so linking commits (or rolls back) together with the message.

May import: the standard library, `ehr_store` (public API).
"""

from __future__ import annotations

from typing import Protocol

from ehr_store import ResourceRepository, StoredResource


class IdentityHooks(Protocol):
    """EMPI callbacks (see `ehr_store.empi`)."""

    def on_source_patient(self, repo: ResourceRepository, stored_patient: StoredResource) -> None:
        """After a source Patient (one facility MRN) was created or updated."""
        ...

    def on_merge(self, repo: ResourceRepository, survivor: StoredResource, merged: StoredResource) -> None:
        """After ADT^A40 merged `merged` (MRG-1) into `survivor` (PID-3) within one facility."""
        ...
