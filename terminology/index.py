"""The terminology index: every CodeSystem, ValueSet and ConceptMap, in memory, read-only.

Built from stored resources (`TerminologyIndex.from_resources`) and replaced as a whole
when terminology resources change; all operations are pure functions over it. Two code
systems are resolved by rule rather than by enumeration: Chinese ICD-10 editions
(`urn:oid:2.16.156.10011.2.3.3.11`, rolled up to WHO ICD-10) and UCUM (grammar).

May import: the standard library, `terminology.canonical`, `terminology.codesystem`,
`terminology.conceptmap`, `terminology.icd10`, `terminology.ucum`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from terminology import icd10, ucum
from terminology.canonical import DEFAULT_SENDER, ICD10, ICD10_CN, UCUM
from terminology.codesystem import CodeSystemIndex, Concept
from terminology.conceptmap import ConceptMapIndex

Json = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Resolved:
    """A code found in a code system: its system/version, display, and the concept
    (for rule-based systems, the concept it rolls up to, with `note` saying so)."""

    system: str
    version: str | None
    code: str
    display: str | None
    concept: Concept | None
    codesystem: CodeSystemIndex | None
    note: str | None = None


@dataclass
class TerminologyIndex:
    """All terminology resources by canonical URL (latest version wins when not asked)."""

    code_systems: dict[str, dict[str | None, CodeSystemIndex]] = field(default_factory=dict)
    value_sets: dict[str, dict[str | None, Json]] = field(default_factory=dict)
    concept_maps: dict[str, ConceptMapIndex] = field(default_factory=dict)
    by_sender: dict[str, ConceptMapIndex] = field(default_factory=dict)
    expansions: dict[tuple[str, str | None], Any] = field(default_factory=dict)

    @classmethod
    def from_resources(cls, resources: Iterable[Json]) -> TerminologyIndex:
        """Index CodeSystem, ValueSet and ConceptMap documents; other types are ignored."""
        index = cls()
        for resource in resources:
            index.add(resource)
        return index

    def add(self, resource: Json) -> None:
        """Add (or replace, same url and version) one terminology resource."""
        kind = resource.get("resourceType")
        if kind == "CodeSystem" and resource.get("url"):
            cs = CodeSystemIndex.from_resource(resource)
            self.code_systems.setdefault(cs.url, {})[cs.version] = cs
        elif kind == "ValueSet" and resource.get("url"):
            self.value_sets.setdefault(resource["url"], {})[resource.get("version")] = resource
        elif kind == "ConceptMap" and resource.get("url"):
            cm = ConceptMapIndex.from_resource(resource)
            self.concept_maps[cm.url] = cm
            if cm.sender:
                self.by_sender[cm.sender] = cm
        self.expansions.clear()

    def codesystem(self, url: str, version: str | None = None) -> CodeSystemIndex | None:
        """The CodeSystem with this url (and version; the newest when None)."""
        versions = self.code_systems.get(url)
        if not versions:
            return None
        if version is not None:
            return versions.get(version)
        return versions[max(versions, key=_version_key)]

    def valueset(self, url: str, version: str | None = None) -> Json | None:
        """The ValueSet resource with this url (and version; the newest when None)."""
        versions = self.value_sets.get(url)
        if not versions:
            return None
        if version is not None:
            return versions.get(version)
        return versions[max(versions, key=_version_key)]

    def knows_system(self, system: str) -> bool:
        """True when codes of `system` can be resolved here."""
        return system in (ICD10_CN, UCUM) or system in self.code_systems

    def resolve(self, system: str, code: str, version: str | None = None) -> Resolved | None:
        """Find `code` in `system`; None when the system or the code is unknown."""
        if system == ICD10_CN:
            return self._resolve_icd10_cn(code)
        if system == UCUM:
            if not ucum.is_valid_unit(code):
                return None
            return Resolved(UCUM, None, code, code, None, None)
        cs = self.codesystem(system, version)
        if cs is None:
            return None
        concept = cs.find(code)
        if concept is None:
            return None
        return Resolved(cs.url, cs.version, concept.code, concept.display, concept, cs)

    def _resolve_icd10_cn(self, code: str) -> Resolved | None:
        rolled = icd10.rollup(code)
        who = self.codesystem(ICD10)
        if rolled is None or who is None:
            return None
        concept = who.find(rolled.who_code)
        if concept is None:
            return None
        note = None if rolled.exact else f"{code} refines WHO ICD-10 {rolled.who_code}"
        return Resolved(ICD10_CN, "2.0", code, concept.display, concept, who, note)

    def maps_for(self, sender: str) -> list[ConceptMapIndex]:
        """The sender's own ConceptMap then the regional default, those that exist."""
        maps = [self.by_sender.get(sender), self.by_sender.get(DEFAULT_SENDER)]
        return [m for m in maps if m is not None]


def _version_key(version: str | None) -> tuple[int, ...]:
    if version is None:
        return (-1,)
    parts = []
    for piece in version.replace("-", ".").split("."):
        parts.append(int(piece) if piece.isdigit() else 0)
    return tuple(parts)
