"""Per-sender normalisation tables for local codes (HL7 v2-to-FHIR IG: CWE → CodeableConcept
with the local coding kept and the standard one added).

Tables are JSON: ``{sender: {table: {local code: {system, code, display}}}}`` with ``*``
for any sender; the shipped default lives in `adapters/hl7v2/data/local-codes.json` and a
deployment can point `IngestSettings.code_tables` at its own file.

May import: the standard library.
"""

from __future__ import annotations

import copy
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

Json = dict[str, Any]
DEFAULT_TABLES = Path(__file__).resolve().parents[1] / "data" / "local-codes.json"


class CodeTables:
    """Lookups of a sender's local codes; immutable after loading."""

    def __init__(self, tables: dict[str, dict[str, dict[str, Json]]]) -> None:
        self._tables = {k: v for k, v in tables.items() if not k.startswith("_")}

    def lookup(self, sender: str, table: str, code: str) -> Json | None:
        """The standard coding for `code` in `table` for `sender` (own table first, then ``*``)."""
        for key in (sender, "*"):
            found = self._tables.get(key, {}).get(table, {}).get(code)
            if found is not None:
                return dict(found)
        return None

    def normalise(self, concept: Json | None, sender: str, table: str) -> Json | None:
        """A copy of `concept` with the standard coding appended after the local one(s)."""
        if not concept:
            return concept
        out = copy.deepcopy(concept)
        codings: list[Json] = out.get("coding", [])
        have = {(x.get("system"), x.get("code")) for x in codings}
        for coding in list(codings):
            std = self.lookup(sender, table, str(coding.get("code", "")))
            if std and (std.get("system"), std.get("code")) not in have:
                codings.append(std)
                have.add((std.get("system"), std.get("code")))
        return out


@lru_cache(maxsize=8)
def load_code_tables(path: Path | None = None) -> CodeTables:
    """Load tables from `path` (default: the shipped file). Raises: OSError, ValueError."""
    data = json.loads((path or DEFAULT_TABLES).read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path}: code tables must be a JSON object")
    return CodeTables(data)
