"""JSON in and out with exact decimals (FHIR R4B json §2.6.2: decimals keep their precision).

`loads` parses numbers with a fraction or exponent as `decimal.Decimal` (so `1.50` stays
`1.50`), integers as `int`. `dumps` writes compact UTF-8 JSON with each Decimal written
exactly as `str(Decimal)` gives it (the digits received). Parsing uses the standard
library's C scanner; writing uses orjson with `orjson.Fragment` for decimals.

Nesting is limited to `MAX_DEPTH` (100) levels of objects and arrays, far beyond any FHIR
resource: deeper documents are refused as InvalidInput before anything recursive (the
parser, pydantic validation, orjson's writer, FHIRPath) can hit Python's recursion limit.

May import: orjson, the standard library, `ehr_store.errors`.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import orjson

from ehr_store.errors import InvalidInput

__all__ = ["MAX_DEPTH", "check_depth", "dumps", "loads", "loads_resource"]

_decoder = json.JSONDecoder(parse_float=Decimal)
MAX_DEPTH = 100
_LEAVES = frozenset({str, int, float, bool, type(None), Decimal})


def _too_deep() -> InvalidInput:
    return InvalidInput(f"JSON nested too deeply: more than {MAX_DEPTH} levels of objects and arrays")


def check_depth(value: Any) -> None:
    """Refuse a parsed JSON value nested more than `MAX_DEPTH` objects/arrays deep (the
    outermost object is level 1). Iterative, level by level: O(containers).

    Raises: InvalidInput ("JSON nested too deeply").
    """
    level = [value] if isinstance(value, dict | list) else []
    depth = 0
    while level:
        depth += 1
        if depth > MAX_DEPTH:
            raise _too_deep()
        deeper: list[Any] = []
        add = deeper.append
        for node in level:
            for child in node.values() if isinstance(node, dict) else node:
                kind = type(child)  # exact types first: 4x faster than isinstance on every leaf
                if kind is dict or kind is list or (kind not in _LEAVES and isinstance(child, dict | list)):
                    add(child)
        level = deeper


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    """Parse JSON text (UTF-8 bytes or str) keeping decimals exact.

    Returns dicts, lists, str, int, Decimal, bool, None.
    Raises: InvalidInput (not UTF-8, not JSON with the position in diagnostics, or nested
    more than `MAX_DEPTH` levels).
    """
    if isinstance(data, bytes | bytearray | memoryview):
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidInput(f"body is not UTF-8: {exc}") from None
    else:
        text = data
    if text.startswith("\ufeff"):
        text = text[1:]
    try:
        value = _decoder.decode(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise _too_deep() from None
    if text.count("{") + text.count("[") > MAX_DEPTH:  # fewer brackets cannot nest deeper
        check_depth(value)
    return value


def loads_resource(data: bytes | bytearray | memoryview | str) -> dict[str, Any]:
    """Parse a FHIR resource: a JSON object with a string `resourceType`.

    Raises: InvalidInput (not JSON, not an object, no resourceType).
    """
    value = loads(data)
    if not isinstance(value, dict):
        raise InvalidInput("a FHIR resource must be a JSON object")
    if not isinstance(value.get("resourceType"), str):
        raise InvalidInput("the JSON object has no resourceType", expression=("resourceType",))
    return value


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise TypeError(f"{value} is not a JSON number")
        return orjson.Fragment(str(value))
    raise TypeError(f"type {type(value).__name__} is not JSON serialisable")


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON bytes; Decimals written as received (`Decimal("1.50")` → `1.50`).

    Raises: TypeError for values JSON cannot hold (NaN/Infinity decimals, sets, objects).
    """
    return orjson.dumps(value, default=_default)
