"""Parse one search parameter's raw value (an OR list) into typed query values.

Escaping (FHIR R4B search §3.1.1.5.10): `\\,` `\\|` `\\$` `\\\\` stand for the characters;
an unescaped `,` separates OR-ed values and `|` separates token/quantity parts. Prefixes
(§3.1.1.5.1) apply to number, date and quantity values.

May import: the standard library, `ehr_store.errors`, `ehr_store.search.{registry,query,values,extract}`.
"""

from __future__ import annotations

from datetime import tzinfo
from typing import Literal

from ehr_store.errors import InvalidInput
from ehr_store.search.entries import fit
from ehr_store.search.extract import parse_reference
from ehr_store.search.query import (
    CodeSetValue,
    DateValue,
    NumberValue,
    Prefix,
    QuantityValue,
    ReferenceValue,
    StringValue,
    TokenValue,
    UriValue,
    Value,
)
from ehr_store.search.registry import SearchParamDef
from ehr_store.search.values import decimal_range, normalize_string, parse_date_range, to_decimal

__all__ = ["PREFIXES", "parse_values", "split_escaped"]

PREFIXES: frozenset[str] = frozenset({"eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap"})


def split_escaped(text: str, sep: str) -> list[str]:
    """Split on unescaped `sep`, keeping escapes (undone by `_unescape`)."""
    parts, current, i = [], [], 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            current.append(text[i : i + 2])
            i += 2
            continue
        if ch == sep:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    parts.append("".join(current))
    return parts


def _unescape(text: str) -> str:
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text) and text[i + 1] in ",|$\\":
            out.append(text[i + 1])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def parse_values(
    param: SearchParamDef, modifier: str | None, raw: str, tz: tzinfo, name: str
) -> tuple[Value, ...]:
    """The OR-ed values of `name=raw` for `param`.

    Raises: InvalidInput naming `name` when a value does not parse for the parameter type.
    """
    if modifier == "missing":
        if raw not in ("true", "false"):
            raise InvalidInput(f"{name} takes true or false, not {raw!r}", expression=(name,))
        return (raw == "true",)
    values: list[Value] = []
    for part in split_escaped(raw, ","):
        if part == "":
            continue
        try:
            values.append(_one(param, modifier, part, tz))
        except ValueError as exc:
            raise InvalidInput(
                f"invalid value {_unescape(part)!r} for {name}: {exc}", expression=(name,)
            ) from None
    if not values:
        raise InvalidInput(f"{name} has no value", expression=(name,))
    return tuple(values)


def _one(param: SearchParamDef, modifier: str | None, part: str, tz: tzinfo) -> Value:
    kind = param.type
    if kind == "token" or (kind == "reference" and modifier == "identifier"):
        if modifier == "text":
            return TokenValue(None, None, normalize_string(_unescape(part)))
        if modifier in ("in", "not-in", "below", "above"):
            return _code_set(modifier, part)
        return _token(part)
    if kind == "string":
        text = _unescape(part)
        return StringValue(fit("value", text if modifier == "exact" else normalize_string(text)))
    if kind == "uri":
        return UriValue(_unescape(part))
    if kind == "reference":
        return _reference(_unescape(part), modifier)
    prefix, rest = _prefix(part)
    if kind == "date":
        start, end = parse_date_range(_unescape(rest), tz)
        return DateValue(prefix, start, end)
    if kind == "number":
        number = to_decimal(_unescape(rest))
        if number is None:
            raise ValueError("not a number")
        return NumberValue(prefix, number, *decimal_range(number))
    if kind == "quantity":
        return _quantity(prefix, rest)
    raise ValueError(f"parameter type {kind} is not searchable")


def _prefix(part: str) -> tuple[Prefix, str]:
    head = part[:2]
    if head in PREFIXES and len(part) > 2 and not part[2].isalpha():
        return head, part[2:]  # type: ignore[return-value]
    return "eq", part


def _token(part: str) -> TokenValue:
    pieces = split_escaped(part, "|")
    if len(pieces) == 1:
        return TokenValue(None, fit("code", _unescape(pieces[0])))
    if len(pieces) != 2:
        raise ValueError("a token is code, system|code, |code or system|")
    system, code = fit("system", _unescape(pieces[0])), fit("code", _unescape(pieces[1]))
    if not system and not code:
        raise ValueError("a token needs a system or a code")
    return TokenValue(system, code or None)


def _code_set(modifier: str, part: str) -> CodeSetValue:
    """`:in`/`:not-in` take a ValueSet canonical url (`url|version` allowed); `:below`/`:above`
    take `system|code` (FHIR R4B search §3.1.1.5.5)."""
    if modifier in ("in", "not-in"):
        url = _unescape(part)
        if not url.strip():
            raise ValueError("a ValueSet url is needed")
        return CodeSetValue("in", None, url)
    pieces = split_escaped(part, "|")
    if len(pieces) != 2 or not pieces[0] or not pieces[1]:
        raise ValueError(f":{modifier} needs system|code (a hierarchical code system and one of its codes)")
    kind: Literal["below", "above"] = "below" if modifier == "below" else "above"
    return CodeSetValue(kind, _unescape(pieces[0]), _unescape(pieces[1]))


def _reference(text: str, type_modifier: str | None) -> ReferenceValue:
    if "/" not in text:
        return ReferenceValue(type_modifier, text)
    target_type, target_id, url = parse_reference(text)
    if target_type is None and url is None:
        raise ValueError("a reference is id, Type/id or an absolute url")
    if type_modifier and target_type and target_type != type_modifier:
        raise ValueError(f"reference type {target_type} does not match :{type_modifier}")
    return ReferenceValue(target_type, target_id, url)


def _quantity(prefix: Prefix, rest: str) -> QuantityValue:
    pieces = split_escaped(rest, "|")
    if len(pieces) not in (1, 3):
        raise ValueError("a quantity is number, or number|system|code")
    number = to_decimal(_unescape(pieces[0]))
    if number is None:
        raise ValueError("not a number")
    system = _unescape(pieces[1]) or None if len(pieces) == 3 else None
    code = _unescape(pieces[2]) or None if len(pieces) == 3 else None
    return QuantityValue(prefix, number, *decimal_range(number), system, code)
