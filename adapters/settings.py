"""Settings sections of the adapters package (composed into `HieSettings` as `mllp` and `ingest`).

May import: pydantic, the standard library.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class MllpSettings(BaseModel):
    """MLLP listener (HL7 v2.5 Appendix C). Env: `HIE_MLLP__PORT`, `HIE_MLLP__TLS_CERT`, ..."""

    model_config = ConfigDict(frozen=True)

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=2575, ge=0, le=65535)
    max_frame_bytes: int = Field(default=10 * 1024 * 1024, ge=1024, description="largest accepted message")
    batch_max: int = Field(default=64, ge=1, description="messages from different connections per commit")
    writers: int = Field(default=1, ge=1, description="concurrent batches (1 for SQLite's single writer)")
    processes: int = Field(
        default=1,
        ge=1,
        le=64,
        description="listener processes sharing the port (SO_REUSEPORT), each with its own writer; "
        "more than 1 needs PostgreSQL",
    )
    batch_wait_ms: float = Field(default=3.0, ge=0, description="longest wait for other connections' frames")
    idle_timeout_s: float = Field(default=600.0, gt=0, description="close a connection silent this long")
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = Field(default=None, description="CA bundle: client certificates required")


class FacilitySettings(BaseModel):
    """What the exchange knows about one sending facility (keyed by MSH-4.1)."""

    model_config = ConfigDict(frozen=True)

    name: str | None = None
    charset: str | None = Field(default=None, description="used when MSH-18 is empty or wrong (e.g. GB18030)")
    assume_offset: str | None = Field(
        default=None, description="UTC offset (+08:00) for times this sender sends without one"
    )
    mrn_system: str | None = Field(default=None, description="Identifier.system of its MRNs")
    conformance_check: bool = Field(
        default=False, description="check its messages' structure with hl7apy (slow)"
    )


class IngestSettings(BaseModel):
    """HL7 v2 ingestion. Env: `HIE_INGEST__DEFAULT_ASSUME_OFFSET=+08:00`, ..."""

    model_config = ConfigDict(frozen=True)

    facilities: dict[str, FacilitySettings] = Field(default_factory=dict)
    default_charset: str | None = Field(default=None, description="fallback when MSH-18 is empty or wrong")
    default_assume_offset: str | None = Field(
        default=None, description="offset for times without one from senders with no own setting"
    )
    code_tables: Path | None = Field(
        default=None, description="JSON per-sender local code normalisation tables (default: shipped)"
    )
    application: str = "QYHIE"
    facility: str = "QYWJJ"

    def facility_settings(self, facility: str | None) -> FacilitySettings:
        """The settings of a sending facility (defaults when not registered)."""
        found = self.facilities.get(facility or "")
        if found is not None:
            return found
        return FacilitySettings(charset=self.default_charset, assume_offset=self.default_assume_offset)

    def charset_for(self, facility: str | None) -> str | None:
        return self.facility_settings(facility).charset or self.default_charset

    def offset_for(self, facility: str | None) -> str | None:
        return self.facility_settings(facility).assume_offset or self.default_assume_offset
