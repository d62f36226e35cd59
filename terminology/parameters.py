"""Reading and writing FHIR Parameters resources (FHIR R4B Parameters §2.40.1).

May import: the standard library, `ehr_store` (errors).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ehr_store import InvalidInput

Json = dict[str, Any]


def _value(parameter: Json) -> Any:
    if "resource" in parameter:
        return parameter["resource"]
    for key, value in parameter.items():
        if key.startswith("value"):
            return value
    return None


class In:
    """Input parameters of an operation, from a Parameters resource or a query string."""

    def __init__(self, parameters: Json | None = None, query: Iterable[tuple[str, str]] = ()) -> None:
        """Raises: InvalidInput when `parameters` is not a Parameters resource."""
        self._values: dict[str, list[Any]] = {}
        if parameters is not None:
            if parameters.get("resourceType") != "Parameters":
                raise InvalidInput(
                    "the request body must be a Parameters resource", expression=("resourceType",)
                )
            for parameter in parameters.get("parameter", []):
                self._values.setdefault(parameter.get("name", ""), []).append(_value(parameter))
        for name, value in query:
            self._values.setdefault(name, []).append(value)

    def get(self, name: str) -> Any:
        """The first value of `name`, or None."""
        values = self._values.get(name)
        return values[0] if values else None

    def text(self, name: str) -> str | None:
        """The first value of `name` as a string (None when absent)."""
        value = self.get(name)
        if value is None:
            return None
        if not isinstance(value, (str, int, bool)):
            raise InvalidInput(f"parameter {name} must be a primitive value", expression=(name,))
        return str(value).lower() if isinstance(value, bool) else str(value)

    def integer(self, name: str, default: int) -> int:
        """The first value of `name` as a non-negative integer. Raises: InvalidInput."""
        value = self.get(name)
        if value is None:
            return default
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise InvalidInput(f"parameter {name} must be an integer", expression=(name,)) from None
        if number < 0:
            raise InvalidInput(f"parameter {name} must not be negative", expression=(name,))
        return number

    def flag(self, name: str, default: bool = False) -> bool:
        """The first value of `name` as a boolean (`true`/`false`). Raises: InvalidInput."""
        value = self.get(name)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("true", "false"):
            return str(value).lower() == "true"
        raise InvalidInput(f"parameter {name} must be true or false", expression=(name,))

    def all(self, name: str) -> list[Any]:
        """Every value of `name`."""
        return list(self._values.get(name, []))

    def mapping(self, name: str) -> Mapping[str, Any] | None:
        """The first value of `name` when it is a complex value (Coding, CodeableConcept, resource)."""
        value = self.get(name)
        if value is not None and not isinstance(value, dict):
            raise InvalidInput(f"parameter {name} must be a complex value", expression=(name,))
        return value


def out(*parameters: Json) -> Json:
    """A Parameters resource with the given `parameter` entries."""
    return {"resourceType": "Parameters", "parameter": [p for p in parameters if p]}


def p(name: str, kind: str, value: Any) -> Json:
    """One parameter `{"name": name, "value<Kind>": value}`; empty dict when value is None."""
    if value is None:
        return {}
    return {"name": name, f"value{kind}": value}


def part(name: str, *parts: Json) -> Json:
    """A parameter made of parts."""
    return {"name": name, "part": [x for x in parts if x]}
