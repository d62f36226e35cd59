"""Element types from the `fhir.resources` R4B models, for compiling FHIRPath steps.

`element_keys(owner, name)` gives the JSON keys and FHIR types of an element: one key, or one
per type of a choice element (`value[x]` → `valueQuantity`, `valueString`, ...).

May import: fhir.resources, the standard library.
"""

from __future__ import annotations

import types
import typing
from functools import cache
from typing import Any

__all__ = ["element_keys"]


@cache
def element_keys(owner: str | None, name: str) -> tuple[tuple[str, str | None], ...]:
    """JSON keys (with FHIR types) for element `name` of type `owner`: one key, or one per
    choice type for a `[x]` element (`value` → `valueQuantity`, `valueString`, ...)."""
    if owner is None:
        return ((name, None),)
    fields = _model_fields(owner)
    if fields is None:
        return ((name, None),)
    for field_name in (name, f"{name}_fhir"):  # `class`, `for`: Python keywords in the models
        if field_name in fields:
            return ((name, _type_name(fields[field_name].annotation)),)
    return tuple(
        (key, _type_name(f.annotation))
        for key, f in fields.items()
        if not key.endswith("__ext") and (f.json_schema_extra or {}).get("one_of_many") == name
    )


@cache
def _model_fields(type_name: str) -> dict[str, Any] | None:
    from fhir.resources.R4B import get_fhir_model_class

    try:
        fields: dict[str, Any] = get_fhir_model_class(type_name).model_fields
    except (KeyError, ValueError, AttributeError, ImportError):
        return None
    return fields


_PY_TYPES = {bool: "boolean", int: "integer", str: "string", float: "decimal"}


def _type_name(annotation: Any) -> str | None:
    while True:
        origin = typing.get_origin(annotation)
        if origin in (typing.Union, types.UnionType, list):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            annotation = args[0] if args else None
        elif origin is typing.Annotated:
            marker = typing.get_args(annotation)[1] if len(typing.get_args(annotation)) > 1 else None
            marker_name = type(marker).__name__
            return marker_name[:1].lower() + marker_name[1:]
        else:
            break
    if annotation in _PY_TYPES:
        return _PY_TYPES[annotation]
    name: Any = getattr(annotation, "__name__", None)
    if isinstance(name, str) and name.endswith("Type"):
        return name[: -len("Type")]
    return name if isinstance(name, str) else None
