"""Compiled FHIRPath for search-parameter expressions: a fast subset with a fhirpathpy fallback.

The SearchParameter expressions of FHIR R4B (search §3.1.1.4) are nearly all simple paths:
`Type.a.b`, `x.ofType(T)` / `x as T`, `x.where(resolve() is T)`, `x.where(system='phone')`,
joined by `|`. Those compile (once) into steps over the JSON dicts, with choice elements
(`value[x]`) and element types taken from the `fhir.resources` R4B models. Evaluating one
compiled path costs a few dict lookups; fhirpathpy costs about 40 µs per expression, so it is
used only for expressions outside the subset (e.g. `Patient.deceased.exists() and ...`).

Each result is a `(value, fhir_type)` pair; `fhir_type` is the element's FHIR type name
(`CodeableConcept`, `dateTime`, ...) or None when unknown (fallback results).

May import: fhirpathpy, the standard library, `ehr_store.search.fhir_schema`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ehr_store.search.fhir_schema import element_keys

__all__ = ["CompiledPath", "Node", "Unsupported", "compile_expression", "reference_type"]

Node = tuple[Any, str | None]
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_WHERE_RESOLVE = re.compile(r"where\(resolve\(\) is ([A-Za-z]+)\)")
_WHERE_EQ = re.compile(r"where\(([A-Za-z_]+)\s*=\s*'([^']*)'\)")
_TYPE_CALL = re.compile(r"(?:ofType|as)\(([A-Za-z]+)\)")
_EXISTS_NOT_FALSE = re.compile(r"([A-Za-z.]+)\.exists\(\) and ([A-Za-z.]+) != false")
_AS_INFIX = re.compile(r"\s+as\s+([A-Za-z]+)")


class Unsupported(ValueError):
    """An expression outside the compiled subset (evaluated with fhirpathpy instead)."""


@dataclass(frozen=True, slots=True)
class _Field:
    keys: tuple[tuple[str, str | None], ...]  # (json key, FHIR type of that key)


@dataclass(frozen=True, slots=True)
class _WhereResolve:
    types: frozenset[str]


@dataclass(frozen=True, slots=True)
class _WhereEq:
    name: str
    literal: str


_Step = _Field | _WhereResolve | _WhereEq


class CompiledPath:
    """A compiled expression: `evaluate(resource) -> list[(value, fhir_type)]`.

    `first_keys` are the top-level JSON keys any result needs (empty: always evaluate).
    """

    __slots__ = ("_chains", "_fallback", "expression", "first_keys", "uses_fhirpathpy")

    def __init__(
        self,
        expression: str,
        chains: list[list[_Step]] | None,
        fallback: Callable[[dict[str, Any]], list[Any]] | None,
        *,
        uses_fhirpathpy: bool = False,
    ) -> None:
        self.expression = expression
        self.uses_fhirpathpy = uses_fhirpathpy
        self._chains = chains or []
        self._fallback = fallback
        keys: set[str] = set()
        for chain in self._chains:
            if chain and isinstance(chain[0], _Field):
                keys.update(k for k, _ in chain[0].keys)
            else:
                keys.clear()
                break
        self.first_keys = frozenset(keys) if fallback is None else frozenset()

    def evaluate(self, resource: dict[str, Any]) -> list[Node]:
        """Values the expression selects in `resource` (a FHIR JSON dict)."""
        if self._fallback is not None:
            try:
                return [(v, None) for v in self._fallback(resource)]
            except Exception:  # fhirpathpy raises many kinds; an unevaluable value indexes nothing
                return []
        out: list[Node] = []
        for chain in self._chains:
            out.extend(_run(chain, resource))
        return out


def _run(chain: list[_Step], resource: dict[str, Any]) -> list[Node]:
    nodes: list[Node] = [(resource, None)]
    for step in chain:
        if isinstance(step, _Field):
            found: list[Node] = []
            for node, _ in nodes:
                if type(node) is not dict:
                    continue
                for key, typ in step.keys:
                    value = node.get(key)
                    if value is None:
                        continue
                    if type(value) is list:
                        found.extend((item, typ) for item in value)
                    else:
                        found.append((value, typ))
            nodes = found
        elif isinstance(step, _WhereResolve):
            nodes = [n for n in nodes if reference_type(n[0]) in step.types]
        else:
            nodes = [n for n in nodes if type(n[0]) is dict and n[0].get(step.name) == step.literal]
        if not nodes:
            return nodes
    return nodes


def reference_type(value: Any) -> str | None:
    """Target type of a Reference JSON object (`Patient/1`, absolute url, or `type`), else None."""
    if type(value) is not dict:
        return None
    ref = value.get("reference")
    if isinstance(ref, str) and "/" in ref:
        parts = ref.split("/")
        if len(parts) >= 4 and parts[-2] == "_history":
            return parts[-4]
        return parts[-2]
    typ = value.get("type")
    return typ if isinstance(typ, str) else None


def compile_expression(expression: str, resource_type: str) -> CompiledPath:
    """Compile `expression` (already narrowed to `resource_type`'s parts) once.

    Raises: nothing for unsupported syntax (it falls back to fhirpathpy); ValueError if even
    fhirpathpy cannot parse it.
    """
    exists = _EXISTS_NOT_FALSE.fullmatch(expression.strip())
    try:
        if exists and exists.group(1) == exists.group(2):
            inner = CompiledPath(expression, [_compile_part(exists.group(1), resource_type)], None)
            return CompiledPath(
                expression, None, lambda r: [any(v is not False for v, _ in inner.evaluate(r))]
            )
        chains = [_compile_part(part.strip(), resource_type) for part in _split(expression)]
        return CompiledPath(expression, chains, None)
    except Unsupported:
        return CompiledPath(expression, None, _fhirpathpy(expression), uses_fhirpathpy=True)


def _fhirpathpy(expression: str) -> Callable[[dict[str, Any]], list[Any]]:
    from fhirpathpy import compile as fp_compile
    from fhirpathpy.models import models

    fn: Callable[..., Any] = fp_compile(expression, models["r4"])

    def run(resource: dict[str, Any]) -> list[Any]:
        result = fn(resource)
        return list(result) if isinstance(result, list) else [result]

    return run


def _split(expression: str) -> list[str]:
    parts, depth, quote, start = [], 0, False, 0
    for i, ch in enumerate(expression):
        if ch == "'":
            quote = not quote
        elif not quote and ch == "(":
            depth += 1
        elif not quote and ch == ")":
            depth -= 1
        elif not quote and ch == "|" and depth == 0:
            parts.append(expression[start:i])
            start = i + 1
    parts.append(expression[start:])
    return parts


def _compile_part(part: str, resource_type: str) -> list[_Step]:
    text = _AS_INFIX.sub(lambda m: f".ofType({m.group(1)})", part)
    while text.startswith("(") and _matching(text, 0) == len(text) - 1:
        text = text[1:-1].strip()
    if text.startswith("("):
        end = _matching(text, 0)
        inner, rest = text[1:end], text[end + 1 :]
        if rest and not rest.startswith("."):
            raise Unsupported(part)
        return _compile_part(inner, resource_type) + _steps_after(inner, rest, resource_type)
    return _compile_simple(text, resource_type)


def _steps_after(inner: str, rest: str, resource_type: str) -> list[_Step]:
    if not rest:
        return []
    owner = _result_type(_compile_part(inner, resource_type))
    steps: list[_Step] = []
    _compile_steps(rest[1:], owner, steps)
    return steps


def _matching(text: str, start: int) -> int:
    depth = 0
    for i in range(start, len(text)):
        if text[i] == "(":
            depth += 1
        elif text[i] == ")":
            depth -= 1
            if depth == 0:
                return i
    raise Unsupported(text)


def _compile_simple(text: str, resource_type: str) -> list[_Step]:
    head, _, rest = text.partition(".")
    if head not in (resource_type, "Resource", "DomainResource") or not rest:
        raise Unsupported(text)
    steps: list[_Step] = []
    _compile_steps(rest, resource_type, steps)
    return steps


def _compile_steps(rest: str, owner: str | None, steps: list[_Step]) -> None:
    pos = 0
    current: list[tuple[str, str | None]] = [("", owner)]
    while pos < len(rest):
        if rest[pos] == ".":
            pos += 1
        m = _WHERE_RESOLVE.match(rest, pos) or _WHERE_EQ.match(rest, pos) or _TYPE_CALL.match(rest, pos)
        if m and m.re is _WHERE_RESOLVE:
            steps.append(_WhereResolve(frozenset({m.group(1)})))
        elif m and m.re is _WHERE_EQ:
            steps.append(_WhereEq(m.group(1), m.group(2)))
        elif m:
            wanted = m.group(1).lower()
            last = steps[-1] if steps else None
            if not isinstance(last, _Field):
                raise Unsupported(rest)
            keys = tuple(k for k in last.keys if (k[1] or "").lower() == wanted)
            steps[-1] = _Field(keys)
            current = list(keys)
        else:
            m = _IDENT.match(rest, pos)
            if m is None or rest[m.end() : m.end() + 1] not in ("", "."):
                raise Unsupported(rest)
            keys_list: list[tuple[str, str | None]] = []
            for _, typ in current:
                keys_list.extend(element_keys(typ, m.group(0)))
            if not keys_list:
                raise Unsupported(rest)
            steps.append(_Field(tuple(dict.fromkeys(keys_list))))
            current = keys_list
        pos = m.end()


def _result_type(steps: list[_Step]) -> str | None:
    for step in reversed(steps):
        if isinstance(step, _Field):
            kinds = {t for _, t in step.keys}
            return kinds.pop() if len(kinds) == 1 else None
    return None
