"""In-memory index of one CodeSystem resource: concepts, designations, properties, is-a hierarchy.

Built once from the stored resource (FHIR R4B CodeSystem §4.8) and read-only afterwards;
`$lookup`, `$validate-code`, `$subsumes` and `ValueSet/$expand` read it.

May import: the standard library.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

Json = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Designation:
    """CodeSystem.concept.designation: language, use (a Coding JSON or None), value."""

    language: str | None
    value: str
    use: Json | None = None


@dataclass(frozen=True, slots=True)
class Concept:
    """One concept: code, display, definition, designations and (code, value[x]) properties."""

    code: str
    display: str | None
    definition: str | None = None
    designations: tuple[Designation, ...] = ()
    properties: tuple[tuple[str, str, Any], ...] = ()
    """(property code, value[x] key such as `valueCode`, value)."""

    def property_values(self, name: str) -> list[Any]:
        """Values of property `name`, in order."""
        return [value for code, _, value in self.properties if code == name]

    def display_in(self, language: str | None) -> str | None:
        """Display for a language (`zh`, `zh-CN`, `en`): a designation in that language
        when the concept has one, else the concept's display."""
        if language:
            lang = language.lower().split("-")[0]
            for designation in self.designations:
                if designation.language and designation.language.lower().split("-")[0] == lang:
                    return designation.value
        return self.display


def _value(prop: Json) -> tuple[str, Any]:
    for key, value in prop.items():
        if key.startswith("value"):
            return key, value
    return "valueString", None


def _concepts(items: list[Json], parent: str | None) -> Iterator[tuple[Json, str | None]]:
    for item in items:
        yield item, parent
        yield from _concepts(item.get("concept", []), item.get("code"))


@dataclass
class CodeSystemIndex:
    """Concepts of one CodeSystem version keyed by code, with parent/child links.

    Hierarchy comes from nested `concept.concept` and from the `parent` property
    (FHIR R4B CodeSystem §4.8.7 concept properties).
    """

    url: str
    version: str | None
    name: str | None
    title: str | None
    content: str
    case_sensitive: bool
    resource_id: str | None
    language: str | None = None
    concepts: dict[str, Concept] = field(default_factory=dict)
    parents: dict[str, tuple[str, ...]] = field(default_factory=dict)
    children: dict[str, list[str]] = field(default_factory=dict)
    _folded: dict[str, str] = field(default_factory=dict)
    _descendants: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def from_resource(cls, resource: Json) -> CodeSystemIndex:
        """Index a CodeSystem JSON document. Raises: ValueError when `url` is missing."""
        if not resource.get("url"):
            raise ValueError("CodeSystem without url")
        index = cls(
            url=resource["url"],
            version=resource.get("version"),
            name=resource.get("name"),
            title=resource.get("title"),
            content=resource.get("content", "complete"),
            case_sensitive=bool(resource.get("caseSensitive", True)),
            resource_id=resource.get("id"),
            language=resource.get("language"),
        )
        for item, nested_parent in _concepts(resource.get("concept", []), None):
            index._add(item, nested_parent)
        return index

    def _add(self, item: Json, nested_parent: str | None) -> None:
        code = item["code"]
        props = tuple((p["code"], *_value(p)) for p in item.get("property", []))
        designations = tuple(
            Designation(d.get("language"), d["value"], d.get("use")) for d in item.get("designation", [])
        )
        concept = Concept(code, item.get("display"), item.get("definition"), designations, props)
        self.concepts[code] = concept
        self._folded[code.lower()] = code
        parents = [v for name, _, v in props if name == "parent"]
        if nested_parent:
            parents.append(nested_parent)
        if parents:
            self.parents[code] = tuple(dict.fromkeys(parents))
            for parent in self.parents[code]:
                self.children.setdefault(parent, []).append(code)

    def find(self, code: str) -> Concept | None:
        """The concept with this code (case-insensitively when the system is not case-sensitive)."""
        concept = self.concepts.get(code)
        if concept is None and not self.case_sensitive:
            folded = self._folded.get(code.lower())
            concept = self.concepts.get(folded) if folded else None
        return concept

    def ancestors(self, code: str) -> set[str]:
        """All transitive parents of `code` (not including it)."""
        seen: set[str] = set()
        stack = list(self.parents.get(code, ()))
        while stack:
            parent = stack.pop()
            if parent not in seen:
                seen.add(parent)
                stack.extend(self.parents.get(parent, ()))
        return seen

    def descendants(self, code: str) -> tuple[str, ...]:
        """All transitive children of `code` in depth-first code-system order (cached)."""
        cached = self._descendants.get(code)
        if cached is None:
            out: list[str] = []
            seen: set[str] = set()
            stack = list(reversed(self.children.get(code, [])))
            while stack:
                child = stack.pop()
                if child in seen:
                    continue
                seen.add(child)
                out.append(child)
                stack.extend(reversed(self.children.get(child, [])))
            cached = self._descendants[code] = tuple(out)
        return cached

    def subsumes(self, code_a: str, code_b: str) -> str:
        """FHIR R4B `$subsumes` outcome of A against B: equivalent | subsumes | subsumed-by | not-subsumed."""
        if code_a == code_b:
            return "equivalent"
        if code_a in self.ancestors(code_b):
            return "subsumes"
        if code_b in self.ancestors(code_a):
            return "subsumed-by"
        return "not-subsumed"
