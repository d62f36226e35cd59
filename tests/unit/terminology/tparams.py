"""Building input Parameters and reading output Parameters in the terminology tests."""

from __future__ import annotations

from typing import Any

Json = dict[str, Any]


def params(**values: Any) -> Json:
    """A Parameters resource: str -> valueString/valueUri/valueCode as the spec types them,
    int -> valueInteger, bool -> valueBoolean, dict -> valueCoding (or resource for `valueSet`)."""
    kinds = {
        "system": "Uri",
        "url": "Uri",
        "targetsystem": "Uri",
        "code": "Code",
        "codeA": "Code",
        "codeB": "Code",
        "displayLanguage": "Code",
    }
    out = []
    for name, value in values.items():
        if isinstance(value, bool):
            out.append({"name": name, "valueBoolean": value})
        elif isinstance(value, int):
            out.append({"name": name, "valueInteger": value})
        elif isinstance(value, dict) and value.get("resourceType"):
            out.append({"name": name, "resource": value})
        elif isinstance(value, dict):
            key = "valueCodeableConcept" if name == "codeableConcept" else "valueCoding"
            out.append({"name": name, key: value})
        else:
            out.append({"name": name, f"value{kinds.get(name, 'String')}": value})
    return {"resourceType": "Parameters", "parameter": out}


def get(parameters: Json, name: str) -> Any:
    """First value of a parameter in an output Parameters resource (parts as a dict)."""
    for p in parameters["parameter"]:
        if p["name"] == name:
            if "part" in p:
                return {q["name"]: next(v for k, v in q.items() if k.startswith("value")) for q in p["part"]}
            return next(v for k, v in p.items() if k.startswith("value"))
    return None


def all_of(parameters: Json, name: str) -> list[Any]:
    """Every value (parts as dicts) of a parameter name."""
    found = []
    for p in parameters["parameter"]:
        if p["name"] == name:
            found.append(get({"parameter": [p]}, name))
    return found
