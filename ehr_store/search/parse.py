"""Parse search parameters (name[:modifier], value) pairs into a `SearchQuery`.

FHIR R4B search §3.1.1: modifiers (§3.1.1.5), prefixes (§3.1.1.5.1), escaping `\\,` `\\|` `\\$`
(§3.1.1.5.10), comma = OR, repeated parameter = AND, chaining (§3.1.1.5.11), reverse chaining
`_has` (§3.1.1.5.12), result parameters (§3.1.1.6). Unknown parameters give a warning issue
(lenient) or InvalidInput (strict); bad values always give InvalidInput naming the parameter.

May import: the standard library, `ehr_store.errors`, `ehr_store.search.{registry,query,values,values_parse}`.
"""

from __future__ import annotations

from collections.abc import Sequence

from ehr_store.errors import InvalidInput, Issue
from ehr_store.search.query import (
    Chain,
    Criterion,
    Filter,
    Has,
    Include,
    SearchQuery,
    SortKey,
)
from ehr_store.search.registry import Registry, SearchParamDef
from ehr_store.search.values_parse import parse_values

__all__ = ["DEFAULT_MAX_COUNT", "RESULT_PARAMS", "parse_search"]

DEFAULT_MAX_COUNT = 1000
RESULT_PARAMS = frozenset(
    {
        "_count",
        "_offset",
        "_sort",
        "_include",
        "_revinclude",
        "_total",
        "_summary",
        "_elements",
        "_type",
        "_format",
        "_pretty",
        "_contained",
        "_containedType",
    }
)
_MODIFIERS = {
    "string": {"exact", "contains", "missing"},
    "token": {"text", "not", "missing", "in", "not-in", "below", "above"},
    "reference": {"missing", "identifier"},
    "date": {"missing"},
    "number": {"missing"},
    "quantity": {"missing"},
    "uri": {"below", "above", "missing", "exact"},
}
_MAX_CHAIN = 4


def parse_search(
    resource_type: str | None,
    params: Sequence[tuple[str, str]],
    registry: Registry,
    *,
    strict: bool = False,
    max_count: int = DEFAULT_MAX_COUNT,
) -> SearchQuery:
    """Parse `params` ((name including modifier, raw value) pairs) for a type or system search.

    Returns a SearchQuery; under lenient handling unknown parameters are listed in
    `warnings`. Raises: InvalidInput (bad value, bad modifier, unknown resource type, or an
    unknown parameter when `strict`), with the parameter name in `expression`.
    """
    if resource_type is not None and not registry.is_known_type(resource_type):
        raise InvalidInput(f"unknown resource type {resource_type!r}", expression=(resource_type,))
    types = _types(resource_type, params, registry)
    query = SearchQuery(resource_type=resource_type, types=types)
    for name, value in params:
        base = name.split(":", 1)[0]
        if base in RESULT_PARAMS:
            _result_param(query, name, value, registry, max_count)
            continue
        try:
            criterion = _criterion(resource_type, types, name, value, registry, 0)
        except _Unknown as exc:
            issue = Issue("warning" if not strict else "error", "not-supported", str(exc), (name,))
            if strict:
                raise InvalidInput(issues=[issue]) from None
            query.warnings.append(issue)
            continue
        query.criteria.append(criterion)
    return query


class _Unknown(Exception):
    """A parameter this server does not know (warning when lenient)."""


def _types(
    resource_type: str | None, params: Sequence[tuple[str, str]], registry: Registry
) -> tuple[str, ...]:
    if resource_type is not None:
        return (resource_type,)
    wanted = [t.strip() for n, v in params if n == "_type" for t in v.split(",") if t.strip()]
    for t in wanted:
        if not registry.is_known_type(t):
            raise InvalidInput(f"_type names an unknown resource type {t!r}", expression=("_type",))
    return tuple(dict.fromkeys(wanted)) or tuple(sorted(registry.resource_types))


def _param(types: tuple[str, ...], code: str, registry: Registry) -> SearchParamDef:
    """The definition of `code` valid on every type in `types`."""
    found = [registry.get(t, code) for t in types]
    first = found[0]
    if first is None or any(p is None or p.type != first.type for p in found):
        where = types[0] if len(types) == 1 else "every type searched"
        raise _Unknown(f"unknown search parameter {code!r} for {where}")
    if first.type in ("composite", "special") or (first.path is None and code not in ("_id", "_lastUpdated")):
        raise _Unknown(f"search parameter {code!r} ({first.type}) is not supported")
    return first


def _criterion(
    resource_type: str | None, types: tuple[str, ...], name: str, value: str, registry: Registry, depth: int
) -> Criterion:
    if depth > _MAX_CHAIN:
        raise InvalidInput(f"chain too deep in {name!r}", expression=(name,))
    if name.startswith("_has:"):
        return _has(resource_type, types, name, value, registry, depth)
    head, dot, rest = name.partition(".")
    code, _, modifier = head.partition(":")
    param = _param(types, code, registry)
    if dot:
        return _chain(resource_type, param, modifier or None, rest, value, registry, depth, name)
    mod = modifier or None
    if mod is not None and mod not in _MODIFIERS.get(param.type, set()):
        if param.type == "reference" and registry.is_known_type(mod):
            if param.targets and mod not in param.targets:
                raise InvalidInput(f"{code} cannot refer to {mod}", expression=(name,))
        else:
            raise InvalidInput(
                f"modifier :{mod} is not supported on {param.type} parameter {code!r}", expression=(name,)
            )
    values = parse_values(param, mod, value, registry.tz, name)
    return Filter(resource_type, param, mod, values)


def _chain(
    resource_type: str | None,
    param: SearchParamDef,
    modifier: str | None,
    rest: str,
    value: str,
    registry: Registry,
    depth: int,
    name: str,
) -> Chain:
    if param.type != "reference":
        raise InvalidInput(
            f"{param.code} is not a reference parameter and cannot be chained", expression=(name,)
        )
    if modifier is not None and (
        not registry.is_known_type(modifier) or (param.targets and modifier not in param.targets)
    ):
        raise InvalidInput(f"{param.code} cannot refer to :{modifier} in chain {name!r}", expression=(name,))
    candidates = [modifier] if modifier else [t for t in param.targets if registry.is_known_type(t)]
    targets: list[tuple[str, Criterion]] = []
    for target in candidates:
        try:
            targets.append((target, _criterion(target, (target,), rest, value, registry, depth + 1)))
        except _Unknown:
            continue
    if not targets:
        raise _Unknown(f"chained parameter {rest!r} is not known on the targets of {param.code}")
    return Chain(resource_type, param, tuple(targets))


def _has(
    resource_type: str | None, types: tuple[str, ...], name: str, value: str, registry: Registry, depth: int
) -> Has:
    parts = name.split(":", 3)
    if len(parts) != 4 or not all(parts[1:]):
        raise InvalidInput(
            f"_has needs the form _has:Type:reference:parameter, got {name!r}", expression=(name,)
        )
    _, source, ref_code, inner_name = parts
    if not registry.is_known_type(source):
        raise InvalidInput(f"unknown resource type {source!r} in {name!r}", expression=(name,))
    ref = registry.get(source, ref_code)
    if ref is None or ref.type != "reference":
        raise InvalidInput(f"{ref_code!r} is not a reference parameter of {source}", expression=(name,))
    inner = _criterion(source, (source,), inner_name, value, registry, depth + 1)
    return Has(resource_type, source, ref, inner)


def _result_param(query: SearchQuery, name: str, value: str, registry: Registry, max_count: int) -> None:
    base, _, modifier = name.partition(":")
    if base == "_count":
        query.count = min(_int(name, value), max_count)
    elif base == "_offset":
        query.offset = _int(name, value)
    elif base == "_total":
        if value not in ("none", "accurate", "estimate"):
            raise InvalidInput(
                f"_total must be none, accurate or estimate, not {value!r}", expression=(name,)
            )
        query.total = value  # type: ignore[assignment]
    elif base == "_summary":
        if value not in ("true", "false", "text", "data", "count"):
            raise InvalidInput(
                f"_summary must be true, text, data, count or false, not {value!r}", expression=(name,)
            )
        query.summary = value
    elif base == "_elements":
        query.elements = tuple(e.strip() for e in value.split(",") if e.strip())
    elif base == "_sort":
        query.sort = [
            _sort_key(query.types, key.strip(), registry) for key in value.split(",") if key.strip()
        ]
    elif base in ("_include", "_revinclude"):
        if modifier not in ("", "iterate", "recurse"):
            raise InvalidInput(f"modifier :{modifier} is not supported on {base}", expression=(name,))
        query.includes.append(
            _include(query.types, value, base == "_revinclude", bool(modifier), registry, name)
        )


def _int(name: str, value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise InvalidInput(f"{name} must be a whole number, not {value!r}", expression=(name,)) from None
    if number < 0:
        raise InvalidInput(f"{name} must not be negative", expression=(name,))
    return number


def _sort_key(types: tuple[str, ...], key: str, registry: Registry) -> SortKey:
    descending = key.startswith("-")
    code = key[1:] if descending else key
    try:
        param = _param(types, code, registry)
    except _Unknown as exc:
        raise InvalidInput(f"cannot sort by {code!r}: {exc}", expression=("_sort",)) from None
    return SortKey(param, descending)


def _include(
    types: tuple[str, ...], value: str, reverse: bool, iterate: bool, registry: Registry, name: str
) -> Include:
    parts = value.split(":")
    if value == "*":
        return Include(types[0] if len(types) == 1 else "*", None, None, reverse, iterate)
    if len(parts) not in (2, 3) or not registry.is_known_type(parts[0]):
        raise InvalidInput(f"{name} needs Type:parameter[:targetType], got {value!r}", expression=(name,))
    source, code = parts[0], parts[1]
    target = parts[2] if len(parts) == 3 else None
    if code != "*":
        param = registry.get(source, code)
        if param is None or param.type != "reference":
            raise InvalidInput(f"{code!r} is not a reference parameter of {source}", expression=(name,))
    if target is not None and not registry.is_known_type(target):
        raise InvalidInput(f"unknown target type {target!r} in {name}", expression=(name,))
    return Include(source, None if code == "*" else code, target, reverse, iterate)
