"""Domain error kinds carrying FHIR issues; they know nothing of HTTP.

Every package raises these (or subclasses of them). `hie_server` owns the one
table mapping a kind to an HTTP status (looked up along the class MRO) and turns
the issues into an OperationOutcome (FHIR R4B §2.40 OperationOutcome).

May import: the standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Severity = Literal["fatal", "error", "warning", "information"]


@dataclass(frozen=True, slots=True)
class Issue:
    """One OperationOutcome.issue: severity, code (FHIR IssueType), diagnostics, expression."""

    severity: Severity
    code: str
    diagnostics: str
    expression: tuple[str, ...] = ()

    def to_fhir(self) -> dict[str, Any]:
        """Return the issue as a FHIR R4B `OperationOutcome.issue` JSON object."""
        out: dict[str, Any] = {"severity": self.severity, "code": self.code, "diagnostics": self.diagnostics}
        if self.expression:
            out["expression"] = list(self.expression)
        return out


@dataclass
class DomainError(Exception):
    """Base of all domain errors: one or more FHIR issues.

    Construct with a diagnostics string (``NotFound("Patient/1 is not known")``) or
    with explicit issues (``InvalidInput(issues=[...])``).
    """

    diagnostics: str = ""
    expression: tuple[str, ...] = ()
    issues: list[Issue] = field(default_factory=list)
    issue_code: str = "processing"

    def __post_init__(self) -> None:
        if not self.issues:
            self.issues = [Issue("error", self.issue_code, self.diagnostics, tuple(self.expression))]
        elif not self.diagnostics:
            self.diagnostics = "; ".join(i.diagnostics for i in self.issues)
        Exception.__init__(self, self.diagnostics)

    def __str__(self) -> str:
        return self.diagnostics




@dataclass
class InvalidInput(DomainError):
    """Input cannot be understood (unparseable JSON, bad parameter, wrong resourceType)."""

    issue_code: str = "invalid"


@dataclass
class Unprocessable(DomainError):
    """Input understood but violates a business rule or profile."""

    issue_code: str = "processing"


@dataclass
class NotFound(DomainError):
    """The thing asked for is not known."""

    issue_code: str = "not-found"


@dataclass
class Gone(DomainError):
    """The resource existed and was deleted; `version_id` is the deletion version when known."""

    issue_code: str = "deleted"
    version_id: int | None = None


@dataclass
class Conflict(DomainError):
    """The write conflicts with the current state (duplicate, taken slot, ...)."""

    issue_code: str = "conflict"


@dataclass
class PreconditionFailed(DomainError):
    """A precondition (If-Match, conditional criteria) did not hold."""

    issue_code: str = "conflict"


@dataclass
class Forbidden(DomainError):
    """The caller is known but a rule refuses the action."""

    issue_code: str = "forbidden"


@dataclass
class Unauthenticated(DomainError):
    """No valid credentials were presented."""

    issue_code: str = "login"


@dataclass
class NotSupported(DomainError):
    """The interaction, type, parameter or format is not supported."""

    issue_code: str = "not-supported"


@dataclass
class TooCostly(DomainError):
    """The request exceeds a configured limit (body size, bundle entries, page size)."""

    issue_code: str = "too-costly"


@dataclass
class Unavailable(DomainError):
    """A backing service (database, Orthanc, identity provider) is unavailable."""

    issue_code: str = "transient"


@dataclass
class VersionConflict(PreconditionFailed):
    """If-Match named a version that is not the current one."""


__all__ = [
    "Conflict",
    "DomainError",
    "Forbidden",
    "Gone",
    "InvalidInput",
    "Issue",
    "NotFound",
    "NotSupported",
    "PreconditionFailed",
    "Severity",
    "TooCostly",
    "Unauthenticated",
    "Unavailable",
    "Unprocessable",
    "VersionConflict",
]
