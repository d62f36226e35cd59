"""adapters: HL7 v2 in (MLLP and HTTP), decoding, parsing, mapping to FHIR, acknowledgements.

Public API (import from here): `IngestService` (raw message → ACK, error queue, replay),
`IngestResult`, `IdentityHooks` (the EMPI protocol), `MessageHook`/`MessageRecord` (the
per-message hook run in the outcome's unit of work, e.g. for audit), the settings sections `IngestSettings`,
`FacilitySettings`, `MllpSettings`, the MLLP transport `MllpServer`, `MllpClient`,
`MllpError`, and `read_ack`, `split_batch` for senders. The HTTP router lives in
`adapters.http` (`hl7v2_router`), the only module here importing fastapi; the synthetic
feed generator in `adapters.synth`.

May import: `ehr_store` (public API), the standard library, hl7apy (only in
`adapters.hl7v2.parse` and ACK building), fastapi (only in the HTTP ingest router).
"""

from adapters.hl7v2.ack import AckInfo, read_ack
from adapters.hl7v2.batch import split_batch
from adapters.hl7v2.charset import python_codec
from adapters.identity import IdentityHooks
from adapters.ingest import IngestService
from adapters.mllp.client import MllpClient, MllpError
from adapters.mllp.server import MllpServer
from adapters.outcome import Accepted, IngestResult, MessageHook, MessageRecord
from adapters.settings import FacilitySettings, IngestSettings, MllpSettings

__all__ = [
    "Accepted",
    "AckInfo",
    "FacilitySettings",
    "IdentityHooks",
    "IngestResult",
    "IngestService",
    "IngestSettings",
    "MessageHook",
    "MessageRecord",
    "MllpClient",
    "MllpError",
    "MllpServer",
    "MllpSettings",
    "python_codec",
    "read_ack",
    "split_batch",
]
