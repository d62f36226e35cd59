"""The terminology service as HL7 v2 ingestion uses it (issue 5 "In ingestion"):
`FeedCoding` implements the mapping's `CodeTranslation` over one terminology `Translator`
(one per message), and `persist_unmapped` counts the codes no map covered, per sender, in
the unit of work that writes the messages' resources.

Every coded element keeps its coding as sent (system given the terminology's URI:
`BASE/CodeSystem/local/<sender>/<CWE-3>` for local codes, the 国家临床版 OID for Chinese
ICD-10 codes) and gets the standard codings the sender's ConceptMap, the regional default
map or the ICD-10 roll-up give.

May import: the standard library, `terminology` (public API), `ehr_store` (public API).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from ehr_store import ResourceRepository
from terminology import (
    MemoryUnmappedLog,
    TerminologyService,
    Translator,
    UnmappedLog,
    is_valid_unit,
    source_system,
)

Json = dict[str, Any]
log = logging.getLogger(__name__)


class FeedCoding:
    """`CodeTranslation` (adapters.hl7v2.mapping.context) for one message from `sender` (MSH-4.1)."""

    def __init__(self, translator: Translator, sender: str) -> None:
        self.translator = translator
        self.sender = sender

    @property
    def log(self) -> UnmappedLog:
        """The unmapped codes this message brought."""
        return self.translator.log

    def translate(self, system: str | None, code: str, display: str | None) -> tuple[str | None, list[Json]]:
        """(system URI for the coding as sent, standard codings to add) — see
        `terminology.Translator.translate_coding`. A sender id the terminology cannot use
        in a canonical URL (not A-Z a-z 0-9 _ . -) leaves the coding as mapped."""
        code = code.strip()
        if not code:
            return None, []
        try:
            origin = source_system(self.sender, system, code)
            return origin, self.translator.translate_coding(self.sender, system, code, display)
        except ValueError:
            return None, []

    def ucum(self, unit: str) -> bool:
        """True when `unit` is valid UCUM (terminology's UCUM grammar)."""
        return is_valid_unit(unit)


def feed_coding(service: TerminologyService, sender: str | None) -> FeedCoding | None:
    """A `FeedCoding` for one message, or None when the message names no sender."""
    if not sender:
        return None
    return FeedCoding(service.translator(), sender)


def persist_unmapped(service: TerminologyService, repo: ResourceRepository, logs: Iterable[Any]) -> int:
    """Merge the unmapped-code logs of several messages and store the counts through `repo`
    (the caller's unit of work commits them with the resources). Returns records written.
    Raises: the repository's errors (the caller rolls back)."""
    merged = MemoryUnmappedLog()
    for one in logs:
        if one is None:
            continue
        for item in one.list():
            merged.add(item)
    if not len(merged):
        return 0
    return service.persist_unmapped(repo, merged)
