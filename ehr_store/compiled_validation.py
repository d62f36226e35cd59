"""A compiled R4B validator: fhir.resources' element structure checked in one pass in Rust.

`fhir.resources` validates a resource by building one pydantic model per element, each
through Python wrappers and Python validators (~20 nested models a resource, 70-160 us a
resource here). The *same* model metadata, compiled once per resource type into a single
pydantic-core schema of typed dicts, checks element names (unknown elements refused),
JSON types, cardinality (arrays, required complex elements) and the primitive formats
(fhir_core's own primitive schemas: id, code, uri, date, dateTime, instant, decimal...) in
one call; one Python walk over the document then checks what fhir.resources checks in
Python per element:

- choice elements `nnn[x]`: at most one of the types, exactly one when required
  (FHIR R4B formats §1.14.0.6 "Choice");
- required primitives: present as a value or as `_name` with an extension
  (FHIR R4B extensibility §2.17.0.3 "special case");
- a primitive's `_name` holds an id, an extension or a comment;
- required bindings of `code` elements (FHIR R4B terminologies §4.1.5.1): the allowed codes
  are passed in by `ehr_store.validation`, which owns them.

`check(resource, resource_type, codes)` answers only valid / not valid: when it says "not
valid", `ehr_store.validation` runs fhir.resources for the precise issues. Anything this
module cannot compile (an unexpected annotation) makes the type fall back to fhir.resources
for every document (`compiled(...)` is None). Contained resources, Bundle entries and
Parameters resources are validated by the compiled validator of their own resourceType.

May import: fhir.resources (and its fhir_core base), pydantic, pydantic_core, the standard
library.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache, lru_cache
from typing import Any

import fhir_core.types as fhir_types
from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.resource import Resource
from pydantic import TypeAdapter
from pydantic_core import CoreSchema, PydanticCustomError, SchemaValidator, ValidationError
from pydantic_core import core_schema as cs

__all__ = ["COMPILED_TYPES", "CodeTable", "check", "compiled", "explain"]

Json = dict[str, Any]
CodeTable = Callable[[type], dict[str, tuple[str, frozenset[str]]]]
"""model class -> {field name: (JSON name, allowed codes)} (see `ehr_store.validation`)."""


class _Unsupported(Exception):
    """An annotation this compiler does not know: the type is left to fhir.resources."""


@dataclass
class _Shape:
    """What the Python walk checks in one element of a model class (JSON names)."""

    children: dict[str, tuple[type | None, bool]] = field(default_factory=dict)
    """JSON name -> (complex child model, or None for any resource; is an array)."""
    choices: list[tuple[tuple[str, ...], bool]] = field(default_factory=list)
    required_primitives: list[tuple[str, str | None]] = field(default_factory=list)
    codes: dict[str, frozenset[str]] = field(default_factory=dict)
    extension: bool = False


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """(inner annotation, is an array) of an Optional/List annotation (a property is never
    null in FHIR JSON, so Optional only says it may be absent)."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) != 1:  # e.g. fhir_comments: str | list[str]
            if any(_model_of(a) is not None for a in args):
                raise _Unsupported(str(annotation))
            return typing.Union[tuple(args)], False  # noqa: UP007
        annotation = args[0]
    if typing.get_origin(annotation) in (list, typing.List):  # noqa: UP006
        (item,) = typing.get_args(annotation)
        return item, True
    return annotation, False


def _model_of(annotation: Any) -> type | None:
    """The model class behind a fhir.resources complex type (`abc.HumanNameType`), else None."""
    klass = getattr(annotation, "get_model_klass", None)
    return klass() if callable(klass) and isinstance(annotation, type) else None


def _is_any_resource(model: type) -> bool:
    """An element typed `Resource` (contained, Bundle.entry.resource, Parameters...resource)."""
    return issubclass(model, Resource) and model.__name__ in ("Resource", "DomainResource")


_NO_CONTROL = r"^[^\x00-\x08\x0B\x0C\x0E-\x1F]*$"
"""FHIR R4B datatypes §2.24.0.1 string: no characters below U+0020 but tab, CR and LF."""
_NO_SPACE = r"^\S*$"
r"""uri, url, canonical, oid: no whitespace (the R4B regex `\S*`)."""
_URI_KINDS = (fhir_types.Uri, fhir_types.Url, fhir_types.Canonical, fhir_types.Oid)


@cache
def _primitive_schema(annotation: Any) -> CoreSchema:
    """fhir_core's schema of a primitive behind a check of the JSON value itself (FHIR R4B JSON
    §2.6.2: boolean is true/false, integer a number without fraction, decimal a number, the
    rest strings), in Rust: the models coerce `"true"`, `1` or `"5"` and store them as sent."""
    if annotation is bool:
        return cs.bool_schema(strict=True)
    schema = TypeAdapter(annotation).core_schema
    if typing.get_origin(annotation) is not typing.Annotated:
        return schema
    base, *metadata = typing.get_args(annotation)
    if base is bool:
        guard: CoreSchema = cs.bool_schema(strict=True)
    elif base is int:
        guard = cs.int_schema(strict=True)
    elif base is Decimal:
        guard = cs.union_schema(
            [cs.int_schema(strict=True), cs.float_schema(strict=True), cs.is_instance_schema(Decimal)]
        )
    else:  # strings in JSON: string, code, id, uri, markdown, xhtml, date/time types, base64Binary, uuid
        uri = any(isinstance(m, _URI_KINDS) for m in metadata)
        guard = cs.str_schema(strict=True, pattern=_NO_SPACE if uri else _NO_CONTROL)
    return cs.chain_schema([guard, schema])


def _any_resource(value: Any) -> Any:
    """A contained / Bundle / Parameters resource: checked by its own type's validator."""
    rtype = value.get("resourceType") if isinstance(value, dict) else None
    validator = compiled(rtype) if isinstance(rtype, str) else None
    if validator is None:
        raise PydanticCustomError("fhir_resource", "'{rtype}' is not an R4B resource type", {"rtype": rtype})
    validator.validate_python(value)
    return value


class _Compiler:
    def __init__(self) -> None:
        self.definitions: dict[str, CoreSchema] = {}

    def ref(self, model: type) -> CoreSchema:
        name = f"{model.__module__}.{model.__qualname__}"
        if name not in self.definitions:
            self.definitions[name] = cs.any_schema()  # placeholder while recursing
            self.definitions[name] = self.model(model, name)
        return cs.definition_reference_schema(name)

    def field(self, annotation: Any) -> CoreSchema:
        inner, array = _unwrap(annotation)
        model = _model_of(inner)
        if model is not None and _is_any_resource(model):
            item: CoreSchema = cs.no_info_plain_validator_function(_any_resource)
        elif model is not None:
            item = self.ref(model)
        else:
            item = _primitive_schema(inner)
            if array:  # primitive arrays keep nulls: placeholders lined up with `_name` (FHIR JSON §2.6.2)
                item = cs.nullable_schema(item)
        # never null for a property (FHIR R4B JSON §2.6.2: null only inside primitive arrays)
        return cs.list_schema(item) if array else item

    def model(self, model: type, name: str) -> CoreSchema:
        fields: dict[str, cs.TypedDictField] = {}
        for fname, info in model.model_fields.items():  # type: ignore[attr-defined]
            key = info.alias or fname
            fields[key] = cs.typed_dict_field(self.field(info.annotation), required=info.is_required())
        if issubclass(model, Resource):
            fields["resourceType"] = cs.typed_dict_field(
                cs.literal_schema([getattr(model, "__resource_type__", model.__name__)]),
                required=True,
            )
        return cs.typed_dict_schema(fields, extra_behavior="forbid", ref=name)


COMPILED_TYPES = 32
"""Compiled validators kept (least recently used dropped): each holds every datatype its
resource type reaches, ~1.1 MB a type (69 types: +78 MB RSS, 15 ms each to compile)."""


@lru_cache(maxsize=COMPILED_TYPES)
def compiled(resource_type: str) -> SchemaValidator | None:
    """The compiled validator of an R4B resource type (built on first use, ~15 ms), or None
    when the type is unknown or has an element this compiler cannot express (then
    fhir.resources decides)."""
    try:
        model = get_fhir_model_class(resource_type)
    except (KeyError, ValueError, AttributeError, ImportError):
        return None
    if not (isinstance(model, type) and issubclass(model, Resource)):
        return None
    compiler = _Compiler()
    try:
        top = compiler.ref(model)
        schema = cs.definitions_schema(top, list(compiler.definitions.values()))
        return SchemaValidator(schema)
    except (_Unsupported, TypeError, ValueError):
        return None


@lru_cache(maxsize=2048)
def _shape(model: type, codes: CodeTable) -> _Shape:
    shape = _Shape(extension=model.__name__ == "Extension")
    fields = model.model_fields  # type: ignore[attr-defined]
    alias = {name: (info.alias or name) for name, info in fields.items()}
    for name, info in fields.items():
        inner, array = _unwrap(info.annotation)
        child = _model_of(inner)
        if child is not None:
            shape.children[alias[name]] = (None if _is_any_resource(child) else child, array)
    instance = model.model_construct()  # type: ignore[attr-defined]
    for _prefix, names in instance.get_one_of_many_fields().items():
        extra = fields[names[0]].json_schema_extra or {}
        shape.choices.append((tuple(alias[n] for n in names), extra.get("one_of_many_required") is True))
    by_element = {(info.alias or name): name for name, info in fields.items()}
    for element, ext in instance.get_required_fields():
        fname = by_element.get(element, element)
        shape.required_primitives.append((alias.get(fname, element), alias.get(ext, ext) if ext else None))
    for _fname, (json_name, allowed) in codes(model).items():
        shape.codes[json_name] = allowed
    return shape


def _walk(node: Json, model: type, codes: CodeTable) -> str | None:
    """Why `node` (an element of `model`) is not valid, as "path: reason", or None."""
    if not node:
        return ": empty object (FHIR JSON: leave it out)"
    shape = _shape(model, codes)
    if shape.extension and ("extension" in node) == any(k.startswith("value") for k in node):
        return ": an extension has a value[x] or nested extensions, one of the two (ext-1)"
    for names, required in shape.choices:
        present = [n for n in names if node.get(n) is not None]
        if len(present) > 1:
            return f": one of {', '.join(present)} only (a choice element [x] takes one type)"
        if required and not present:
            return f": one of {', '.join(names)} is required"
    for key, ext in shape.required_primitives:
        if node.get(key) is None:
            extension = node.get(ext) if ext else None
            if not (isinstance(extension, dict) and extension.get("extension")):
                return f".{key}: required"
    for key, allowed in shape.codes.items():
        value = node.get(key)
        if value is None:
            continue
        for item in value if isinstance(value, list) else (value,):
            if item is not None and str(item) not in allowed:
                return f".{key}: {item!r} is not in the required value set ({' | '.join(sorted(allowed))})"
    children = shape.children
    for key, value in node.items():
        kind_of = type(value)
        valueless = key.startswith("_") and node.get(key[1:]) is None
        if kind_of is dict and valueless and not value.get("extension"):
            return f".{key}: a primitive without a value needs an extension (ele-1)"
        if (kind_of is list or kind_of is dict) and not value:
            return f".{key}: empty {'array' if kind_of is list else 'object'} (FHIR JSON: leave it out)"
        child = children.get(key)
        if child is None:
            if kind_of is list:
                problem = _primitive_array(node, key, value)
                if problem:
                    return f".{key}: {problem}"
            continue
        kind, array = child
        for i, item in enumerate(value if array else (value,)):
            if kind is None and key == "contained":
                problem = _contained(item)
                if problem:
                    return f".{key}[{i}]: {problem}"
            target = kind if kind is not None else get_fhir_model_class(item["resourceType"])
            problem = _walk(item, target, codes)
            if problem is not None:
                return f".{key}" + (f"[{i}]" if array else "") + problem
    return None


def _contained(resource: Json) -> str | None:
    """FHIR R4B DomainResource invariants of a contained resource: dom-2 (no nested contained
    resources), dom-4 (no meta.versionId or meta.lastUpdated), dom-5 (no meta.security)."""
    if "contained" in resource:
        return "a contained resource cannot contain resources (dom-2)"
    meta = resource.get("meta")
    if isinstance(meta, dict) and ("versionId" in meta or "lastUpdated" in meta):
        return "a contained resource has no meta.versionId or meta.lastUpdated (dom-4)"
    if isinstance(meta, dict) and "security" in meta:
        return "a contained resource has no meta.security (dom-5)"
    return None


def _primitive_array(node: Json, key: str, values: list[Any]) -> str | None:
    """A primitive array and its `_key` extensions line up (FHIR R4B JSON §2.6.2.3): same
    length, and a null value only where the extension array has an element."""
    if key.startswith("_"):
        base = node.get(key[1:])
        if base is not None and (type(base) is not list or len(base) != len(values)):
            size = f"{len(base)} entries" if type(base) is list else "no array"
            return f"{len(values)} entries, {key[1:]} has {size}"
        for i, extension in enumerate(values):
            valueless = base is None or base[i] is None
            if valueless and type(extension) is dict and not extension.get("extension"):
                return "an entry without a value needs an extension (ele-1)"
        return None
    if None not in values:
        return None
    extensions = node.get("_" + key)
    if type(extensions) is not list or len(extensions) != len(values):
        return f"null entries need the same position in _{key}"
    if any(v is None and e is None for v, e in zip(values, extensions, strict=True)):
        return f"an entry null in both {key} and _{key}"
    return None


def check(resource: Json, resource_type: str, codes: CodeTable) -> bool | None:
    """True when `resource` (a JSON dict whose resourceType is `resource_type`) is a valid R4B
    resource as fhir.resources would judge it (plus the required bindings in `codes`); False
    when it is not; None when the type has no compiled validator (ask fhir.resources).
    Never raises."""
    validator = compiled(resource_type)
    if validator is None:
        return None
    try:
        validator.validate_python(resource)
    except ValidationError:
        return False
    try:
        return _walk(resource, get_fhir_model_class(resource_type), codes) is None
    except (KeyError, TypeError, AttributeError):
        return False


def explain(resource: Json, resource_type: str, codes: CodeTable) -> list[tuple[str, str]]:
    """Why `check` refused `resource`: (FHIRPath-like expression, message) pairs. Empty when
    it is valid or has no compiled validator."""
    validator = compiled(resource_type)
    if validator is None:
        return []
    try:
        validator.validate_python(resource)
    except ValidationError as exc:
        found: dict[str, str] = {}  # one message a location (a decimal's union gives three)
        for e in exc.errors(include_url=False):
            loc = tuple(e["loc"])
            if loc and loc[-1] in _DECIMAL_BRANCHES:
                found.setdefault(_location(resource_type, loc[:-1]), "must be a JSON number")
            else:
                found.setdefault(_location(resource_type, loc), _MESSAGES.get(e["type"], e["msg"]))
        return list(found.items())
    try:
        problem = _walk(resource, get_fhir_model_class(resource_type), codes)
    except (KeyError, TypeError, AttributeError) as exc:
        problem = f": {type(exc).__name__}"
    if problem is None:
        return []
    where, _, message = problem.partition(": ")
    return [(resource_type + where, message)]


_DECIMAL_BRANCHES = ("int", "float", "is-instance[Decimal]")
"""The branches of a decimal's JSON-number check, as pydantic-core names them in error locations."""
_MESSAGES = {
    "extra_forbidden": "unknown element",
    "dict_type": "must be a JSON object",
    "list_type": "must be a JSON array",
    "string_type": "must be a JSON string",
    "bool_type": "must be JSON true or false",
    "int_type": "must be a JSON integer",
    "missing": "required",
    "string_pattern_mismatch": "characters not allowed here (control characters; whitespace in a uri)",
}
"""pydantic-core error types, in FHIR JSON terms (the others keep pydantic's message)."""


def _location(resource_type: str, loc: tuple[int | str, ...]) -> str:
    out = resource_type
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif "[" not in part and " " not in part and not part.startswith(("function-", "chain")):
            out += f".{part}"
    return out
