"""Telemedicine error kinds (subclasses of `ehr_store` domain errors; no HTTP here).

May import: `ehr_store`.
"""

from __future__ import annotations

from dataclasses import dataclass

from ehr_store import Conflict, Unprocessable


@dataclass
class SlotUnavailable(Conflict):
    """The slot is fully booked, closed (停诊) or in the past: HTTP 409 with an OperationOutcome."""


@dataclass
class RetryBooking(Conflict):
    """Another unit of work changed what this one read (slot version, booking id): run it again."""


@dataclass
class WorkflowError(Unprocessable):
    """A state change that the workflow does not allow (e.g. fulfilling a cancelled appointment)."""
