"""Pure mapping of a split HL7 v2 message to FHIR R4B resources (HL7 v2-to-FHIR IG).

`map_message(ctx)` → `Mapped`: no I/O, deterministic ids, so the same message always gives
the same resources and an update message updates, never duplicates. One module per
message family; `MappingContext` carries the sender's configuration.

May import: the standard library, `adapters.hl7v2.*` (not `parse`: no hl7apy here).
"""

from __future__ import annotations

from collections.abc import Callable

from adapters.hl7v2.errors import (
    REQUIRED_FIELD_MISSING,
    UNSUPPORTED_EVENT_CODE,
    UNSUPPORTED_MESSAGE_TYPE,
    UNSUPPORTED_PROCESSING_ID,
    UNSUPPORTED_VERSION_ID,
    ErrLocation,
    Hl7ContentError,
    Hl7Rejection,
)
from adapters.hl7v2.mapping.adt import ADT_EVENTS, map_adt, map_merge
from adapters.hl7v2.mapping.codes import CodeTables, load_code_tables
from adapters.hl7v2.mapping.common import provenance
from adapters.hl7v2.mapping.context import Mapped, MappedResource, MappingContext
from adapters.hl7v2.mapping.dft import map_dft
from adapters.hl7v2.mapping.mdm import map_mdm
from adapters.hl7v2.mapping.orders import map_order
from adapters.hl7v2.mapping.oru import map_oru
from adapters.hl7v2.mapping.siu import SIU_EVENTS, map_siu
from adapters.hl7v2.mapping.vxu import map_vxu

__all__ = [
    "SUPPORTED",
    "CodeTables",
    "Mapped",
    "MappedResource",
    "MappingContext",
    "check_header",
    "load_code_tables",
    "map_message",
]

SUPPORTED_VERSIONS = ("2.3", "2.3.1", "2.4", "2.5", "2.5.1", "2.6", "2.7", "2.7.1", "2.8")

_Mapper = Callable[[MappingContext, str], Mapped]
SUPPORTED: dict[str, dict[str, _Mapper]] = {
    "ADT": {**{e: map_adt for e in ADT_EVENTS}, "A40": lambda ctx, _e: map_merge(ctx)},
    "ORU": {"R01": lambda ctx, _e: map_oru(ctx)},
    "ORM": {"O01": lambda ctx, _e: map_order(ctx)},
    "OML": {"O21": lambda ctx, _e: map_order(ctx)},
    "VXU": {"V04": lambda ctx, _e: map_vxu(ctx)},
    "MDM": {e: (lambda ctx, _e: map_mdm(ctx)) for e in ("T01", "T02", "T04", "T06", "T08", "T10")},
    "SIU": {e: map_siu for e in SIU_EVENTS},
    "DFT": {"P03": lambda ctx, _e: map_dft(ctx)},
}


def check_header(message_type: str, event: str, version: str, processing_id: str) -> _Mapper:
    """The mapper for MSH-9/MSH-12/MSH-11, or the rejection the ACK must carry.

    Raises: Hl7ContentError 101 (MSH-9 empty); Hl7Rejection 200 (type), 201 (event),
    203 (MSH-12 version), 202 (MSH-11 not P/D/T). HL7 v2.5 §2.9.2 / Table 0357.
    """
    if not message_type:
        raise Hl7ContentError(
            REQUIRED_FIELD_MISSING, "MSH-9 (message type) is required", ErrLocation("MSH", 1, 9)
        )
    if version not in SUPPORTED_VERSIONS:
        raise Hl7Rejection(
            UNSUPPORTED_VERSION_ID,
            f"MSH-12 version {version!r} is not supported (supported: {', '.join(SUPPORTED_VERSIONS)})",
            ErrLocation("MSH", 1, 12),
        )
    if processing_id and processing_id[:1] not in ("P", "D", "T"):
        raise Hl7Rejection(
            UNSUPPORTED_PROCESSING_ID,
            f"MSH-11 processing id {processing_id!r} is not supported",
            ErrLocation("MSH", 1, 11),
        )
    events = SUPPORTED.get(message_type)
    if events is None:
        raise Hl7Rejection(
            UNSUPPORTED_MESSAGE_TYPE,
            f"message type {message_type!r} is not supported",
            ErrLocation("MSH", 1, 9, None, 1),
        )
    mapper = events.get(event)
    if mapper is None:
        raise Hl7Rejection(
            UNSUPPORTED_EVENT_CODE,
            f"event {message_type}^{event} is not supported",
            ErrLocation("MSH", 1, 9, None, 2),
        )
    return mapper


def map_message(ctx: MappingContext) -> Mapped:
    """Map one split message to FHIR resources, with a Provenance for the message.

    Raises: Hl7ContentError (100–103, located), Hl7Rejection (200–203).
    """
    msh = ctx.message.msh
    mapper = check_header(msh.get(9, 1), msh.get(9, 2), msh.get(12, 1), msh.get(11, 1))
    mapped = mapper(ctx, msh.get(9, 2))
    provenance(ctx, mapped)
    return mapped
