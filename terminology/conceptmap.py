"""Per-sender ConceptMaps: index for `$translate`, and CSV import/export.

A sender's map (`BASE/ConceptMap/local-<SENDER>`, identifier system `SENDER_IDENTIFIER`)
maps the codes a facility sends (HL7 v2 CWE with coding system `L`, a field label such
as `HL70001`, or a URI) to standard codes. `local-default` applies to every sender
after its own map. The CSV form, one mapping a row, with a header:

    source_system,source_code,source_display,target_system,target_code,target_display,equivalence
    L,HGB,血红蛋白,http://loinc.org,718-7,Hemoglobin [Mass/volume] in Blood,equivalent

`source_system`/`target_system` are URIs or HL7 Table 0396 names (`LN`, `I10`) or local
labels (`L`), normalised by `canonical.normalize_system`. `equivalence` is a FHIR R4B
ConceptMapEquivalence (default `equivalent`); `unmatched` records a code reviewed as
having no standard equivalent. A row whose target_system, target_code and equivalence are all
empty is skipped on load (an unmapped code listed by the export, not filled in).

May import: the standard library, `terminology.canonical`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from terminology.canonical import DEFAULT_SENDER, SENDER_IDENTIFIER, conceptmap_url, normalize_system

Json = dict[str, Any]
COLUMNS = (
    "source_system",
    "source_code",
    "source_display",
    "target_system",
    "target_code",
    "target_display",
    "equivalence",
)
EQUIVALENCES = frozenset(
    {
        "relatedto",
        "equivalent",
        "equal",
        "wider",
        "subsumes",
        "narrower",
        "specializes",
        "inexact",
        "unmatched",
        "disjoint",
    }
)


@dataclass(frozen=True, slots=True)
class Target:
    """One translation target: system, code, display and FHIR R4B ConceptMapEquivalence."""

    system: str
    code: str | None
    display: str | None
    equivalence: str
    source_url: str | None = None

    def coding(self) -> Json:
        """The target as a FHIR Coding."""
        out: Json = {"system": self.system, "code": self.code}
        if self.display:
            out["display"] = self.display
        return out


@dataclass
class ConceptMapIndex:
    """Lookup (source system, source code) -> targets of one ConceptMap."""

    url: str
    version: str | None
    sender: str | None
    resource_id: str | None
    forward: dict[tuple[str, str], list[Target]] = field(default_factory=dict)
    reverse: dict[tuple[str, str], list[Target]] = field(default_factory=dict)
    displays: dict[tuple[str, str], str] = field(default_factory=dict)

    @classmethod
    def from_resource(cls, resource: Json) -> ConceptMapIndex:
        """Index a ConceptMap JSON document (FHIR R4B ConceptMap §4.10)."""
        ident = resource.get("identifier") or {}
        idents = ident if isinstance(ident, list) else [ident]  # R4B: 0..1; R5: 0..*
        sender = next((i.get("value") for i in idents if i.get("system") == SENDER_IDENTIFIER), None)
        index = cls(resource.get("url", ""), resource.get("version"), sender, resource.get("id"))
        for group in resource.get("group", []):
            source, target = group.get("source", ""), group.get("target", "")
            for element in group.get("element", []):
                code = element.get("code", "")
                if element.get("display"):
                    index.displays[(source, code)] = element["display"]
                for tgt in element.get("target", []):
                    eq = tgt.get("equivalence", "equivalent")
                    item = Target(target, tgt.get("code"), tgt.get("display"), eq, index.url)
                    index.forward.setdefault((source, code), []).append(item)
                    if tgt.get("code") and eq != "unmatched":
                        back = Target(source, code, element.get("display"), _inverse(eq), index.url)
                        index.reverse.setdefault((target, tgt["code"]), []).append(back)
        return index


def _inverse(equivalence: str) -> str:
    return {
        "wider": "narrower",
        "narrower": "wider",
        "subsumes": "specializes",
        "specializes": "subsumes",
    }.get(equivalence, equivalence)


def rows_from_csv(text: str) -> list[dict[str, str]]:
    """Parse mapping CSV text (UTF-8, optional BOM) into row dicts.

    Rows with no target at all (target_system, target_code and equivalence all empty — the
    unmapped codes `hie terminology export` lists for the administrator to fill in) are
    skipped: a code left unfilled stays unmapped.
    Raises: ValueError naming the line of the first bad row (missing columns, empty
    source code, half a target, unknown equivalence).
    """
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    missing = [
        c for c in ("source_code", "target_system", "target_code") if c not in (reader.fieldnames or [])
    ]
    if missing:
        raise ValueError(f"CSV header lacks {', '.join(missing)}; expected {','.join(COLUMNS)}")
    rows = []
    for line, raw in enumerate(reader, start=2):
        row = {c: (raw.get(c) or "").strip() for c in COLUMNS}
        if not (row["target_system"] or row["target_code"] or row["equivalence"]):
            continue  # listed for mapping, not filled in yet
        row["equivalence"] = row["equivalence"] or "equivalent"
        if not row["source_code"]:
            raise ValueError(f"line {line}: empty source_code")
        if row["equivalence"] not in EQUIVALENCES:
            raise ValueError(
                f"line {line}: equivalence {row['equivalence']!r} is not a ConceptMapEquivalence"
            )
        if row["equivalence"] != "unmatched" and not (row["target_code"] and row["target_system"]):
            raise ValueError(f"line {line}: target_system and target_code are required")
        rows.append(row)
    return rows


def conceptmap_from_rows(sender: str, rows: Iterable[dict[str, str]], *, version: str, date: str) -> Json:
    """Build the ConceptMap resource of `sender` from CSV rows (see module docstring).

    Rows with the same (source, target) system pair form one group; repeated source codes
    get several targets. Raises: ValueError for an unusable sender name.
    """
    url = conceptmap_url(sender)
    groups: dict[tuple[str, str], dict[str, Json]] = {}
    for row in rows:
        source = normalize_system(sender, row.get("source_system") or None)
        target = (
            normalize_system(sender, row.get("target_system") or None) if row.get("target_system") else ""
        )
        elements = groups.setdefault((source, target), {})
        element = elements.setdefault(row["source_code"], {"code": row["source_code"], "target": []})
        if row.get("source_display"):
            element["display"] = row["source_display"]
        tgt: Json = {"equivalence": row.get("equivalence") or "equivalent"}
        if row.get("target_code"):
            tgt["code"] = row["target_code"]
        if row.get("target_display"):
            tgt["display"] = row["target_display"]
        element["target"].append(tgt)
    title = "区域默认本地代码映射" if sender == DEFAULT_SENDER else f"{sender} 本地代码映射"
    return {
        "resourceType": "ConceptMap",
        "id": f"local-{sender}",
        "url": url,
        "identifier": {"system": SENDER_IDENTIFIER, "value": sender},
        "version": version,
        "name": f"Local{sender.replace('-', '_').replace('.', '_')}",
        "title": title,
        "status": "active",
        "date": date,
        "group": [
            {"source": s, "target": t, "element": list(elements.values())}
            if t
            else {"source": s, "element": list(elements.values())}
            for (s, t), elements in groups.items()
        ],
    }


def rows_from_conceptmap(resource: Json) -> list[dict[str, str]]:
    """The CSV rows of a ConceptMap (inverse of `conceptmap_from_rows`, systems as URIs)."""
    rows = []
    for group in resource.get("group", []):
        for element in group.get("element", []):
            for tgt in element.get("target", []):
                rows.append(
                    {
                        "source_system": group.get("source", ""),
                        "source_code": element.get("code", ""),
                        "source_display": element.get("display", ""),
                        "target_system": group.get("target", ""),
                        "target_code": tgt.get("code", ""),
                        "target_display": tgt.get("display", ""),
                        "equivalence": tgt.get("equivalence", "equivalent"),
                    }
                )
    return rows
