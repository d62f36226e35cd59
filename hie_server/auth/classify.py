"""Classify an HTTP request into a FHIR interaction (`policy.Action`) and read HL7 v2 senders.

Pure functions over method, path and bytes (FHIR R4B http §3.1.0 URL patterns; HL7 v2.5 §2.14.9
MSH). No HTTP framework objects.

May import: the standard library, `hie_server.auth.policy`.
"""

from __future__ import annotations

import re

from hie_server.auth.policy import Action

_TYPE = re.compile(r"^[A-Z][A-Za-z]+$")
_SEGMENT_SPLIT = re.compile(rb"\r\n|\r|\n")
READ_OPERATIONS = frozenset(
    {
        "$everything",
        "$match",
        "$lookup",
        "$validate-code",
        "$subsumes",
        "$expand",
        "$translate",
        "$closure",
        "$meta",
        "$validate",
    }
)


BULK_OPERATIONS = frozenset({"$export", "$export-poll-status", "$export-file"})
"""FHIR Bulk Data v2.0 kick-off, status and file download (hie_server.bulk): interaction `bulk-export`."""
SURVEILLANCE_OPERATIONS = frozenset(
    {
        "$surveillance-cases",
        "$surveillance-overdue",
        "$surveillance-counts",
        "$epidemic-curve",
        "$ili-share",
        "$vaccination-coverage",
    }
)
"""Disease-control extracts (hie_server.surveillance): interaction `surveillance`."""


def classify(method: str, path: str) -> Action:
    """The Action of `method` on `path` relative to the FHIR base ('' = the base itself)."""
    parts = [p for p in path.strip("/").split("/") if p]
    method = method.upper()
    if not parts:
        if method == "POST":
            return Action("transaction", None, level="system")
        return Action("search", None, level="system")
    head = parts[0]
    if head == "metadata" or head == ".well-known":
        return Action("capabilities", None, level="system")
    if head == "_history":
        return Action("history", None, level="system")
    if head == "_search":
        return Action("search", None, level="system")
    if head.startswith("$"):
        return _operation(method, None, None, head, "system")
    rtype = head if _TYPE.match(head) else None
    if len(parts) == 1:
        return Action(
            {
                "GET": "search",
                "HEAD": "search",
                "POST": "create",
                "PUT": "update",
                "DELETE": "delete",
                "PATCH": "patch",
            }.get(method, "search"),
            rtype,
        )
    second = parts[1]
    if len(parts) == 2 and second == "_search":
        return Action("search", rtype)
    if len(parts) == 2 and second == "_history":
        return Action("history", rtype)
    if second.startswith("$"):
        return _operation(method, rtype, None, second, "type")
    rid = second
    if len(parts) == 2:
        return Action(
            {"GET": "read", "HEAD": "read", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(
                method, "read"
            ),
            rtype,
            rid,
            "instance",
        )
    third = parts[2]
    if third == "_history":
        return Action("vread" if len(parts) > 3 else "history", rtype, rid, "instance")
    if third.startswith("$"):
        return _operation(method, rtype, rid, third, "instance")
    return Action("read", rtype, rid, "instance")


def _operation(method: str, rtype: str | None, rid: str | None, name: str, level: str) -> Action:
    if name == "$everything":
        return Action("everything", rtype, rid, level, name)
    if name in BULK_OPERATIONS:
        return Action("bulk-export", rtype, rid, level, name)
    if name in SURVEILLANCE_OPERATIONS:
        return Action("surveillance", rtype, rid, level, name)
    kind = "operation-read" if name in READ_OPERATIONS or method == "GET" else "operation-write"
    return Action(kind, rtype, rid, level, name)


def hl7_sending_facilities(body: bytes) -> list[str]:
    """MSH-4 (Sending Facility, first component) of every MSH segment in an ER7 body.

    Reads the raw bytes (ASCII-safe: the field separator is MSH's 4th byte; a facility code is
    ASCII), so it works before charset decoding. Returns '' for an MSH without MSH-4.
    """
    found = []
    for segment in _SEGMENT_SPLIT.split(body):
        segment = segment.lstrip(b"\x0b\x1c ")
        if not segment.startswith(b"MSH") or len(segment) < 8:
            continue
        sep = segment[3:4]
        fields = segment.split(sep)
        component = fields[1][:1] if len(fields) > 1 and fields[1] else b"^"
        msh4 = fields[3] if len(fields) > 3 else b""
        found.append(msh4.split(component, 1)[0].decode("ascii", "replace").strip())
    return found
