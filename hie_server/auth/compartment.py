"""Which residents and which facility a FHIR resource belongs to (pure, no store).

- `patient_refs(resource)`: ids of the Patients whose compartment holds the resource, from the
  FHIR R4B Patient CompartmentDefinition (the elements behind its search parameters), e.g.
  `Observation.subject`, `AllergyIntolerance.patient`, `Appointment.participant.actor`.
- `resource_facility(resource)`: the sending facility, from `meta.source`
  (`urn:qyhie:facility:<CODE>`, set by HL7 ingestion), else `managingOrganization`/
  `serviceProvider` = `Organization/org-<CODE>`.
- `in_patient_compartment(type)`: whether a type can belong to a resident at all.

May import: the standard library, `ehr_store.search` data files (read, not imported as code).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from functools import cache
from importlib.resources import files
from typing import Any

Json = dict[str, Any]
FACILITY_SOURCE = "urn:qyhie:facility:"
_ORG_PREFIX = "Organization/org-"
_PATH = re.compile(r"^([A-Za-z]+(?:\.[A-Za-z]+)*)")


def _data(name: str) -> Any:
    return json.loads((files("ehr_store.search") / "data" / name).read_text(encoding="utf-8"))


@cache
def compartment_paths() -> dict[str, tuple[tuple[str, ...], ...]]:
    """{resource type: element paths (as tuples) whose references put it in a Patient's compartment}."""
    definition = _data("compartmentdefinition-patient.json")
    params = _data("search-parameters.json")
    entries = params.get("entry", params) if isinstance(params, dict) else params
    expressions: dict[tuple[str, str], str] = {}
    for entry in entries:
        sp = entry.get("resource", entry)
        for base in sp.get("base", []):
            expressions[(base, sp.get("code", ""))] = sp.get("expression", "")
    result: dict[str, tuple[tuple[str, ...], ...]] = {"Patient": (("link", "other"),)}
    for item in definition["resource"]:
        rtype = item["code"]
        paths: list[tuple[str, ...]] = []
        for param in item.get("param", []):
            if param == "{def}":
                continue
            for part in expressions.get((rtype, param), "").split("|"):
                part = part.strip().strip("()")
                if not part.startswith(f"{rtype}."):
                    continue
                match = _PATH.match(part[len(rtype) + 1 :].replace(".where", " ").replace(".ofType", " "))
                if match:
                    path = tuple(match.group(1).split("."))
                    if path not in paths:
                        paths.append(path)
        if paths and rtype != "Patient":
            result[rtype] = tuple(paths)
    return result


DIRECTORY_TYPES = frozenset(
    {
        "Schedule",
        "Slot",
        "PractitionerRole",
        "Practitioner",
        "Organization",
        "Location",
        "HealthcareService",
        "Endpoint",
    }
)
"""Regional directory data (号源, who works where): visible to every clinician when it names no resident."""


def in_patient_compartment(resource_type: str) -> bool:
    """True when resources of this type can belong to a resident (FHIR R4B Patient compartment)."""
    return resource_type in compartment_paths()


def _walk(node: Any, path: tuple[str, ...]) -> Iterator[Any]:
    if isinstance(node, list):
        for item in node:
            yield from _walk(item, path)
        return
    if not path:
        yield node
        return
    if isinstance(node, dict) and path[0] in node:
        yield from _walk(node[path[0]], path[1:])


def _patient_ids(values: Iterable[Any]) -> Iterator[str]:
    for value in values:
        if isinstance(value, dict):
            ref = str(value.get("reference", ""))
            if ref.startswith("Patient/"):
                yield ref.split("/", 2)[1]


def patient_refs(resource: Json) -> frozenset[str]:
    """Ids of the Patients whose compartment holds `resource` (a Patient: itself and its links)."""
    rtype = str(resource.get("resourceType", ""))
    ids = set()
    if rtype == "Patient" and resource.get("id"):
        ids.add(str(resource["id"]))
    for path in compartment_paths().get(rtype, ()):
        ids.update(_patient_ids(_walk(resource, path)))
    return frozenset(ids)


def own_patient_id(resource: Json) -> frozenset[str]:
    """For a Patient: just itself; otherwise the same as `patient_refs`."""
    if resource.get("resourceType") == "Patient" and resource.get("id"):
        return frozenset({str(resource["id"])})
    return patient_refs(resource)


def facility_of_source(source: str | None) -> str | None:
    """`urn:qyhie:facility:QYRMYY` -> `QYRMYY` (None for any other `meta.source`)."""
    if source and source.startswith(FACILITY_SOURCE):
        code = source[len(FACILITY_SOURCE) :].split("#", 1)[0].split(":", 1)[0]
        return code or None
    return None


def resource_facility(resource: Json) -> str | None:
    """The facility a resource came from (see module docstring), or None."""
    found = facility_of_source(str((resource.get("meta") or {}).get("source") or ""))
    if found:
        return found
    for element in ("managingOrganization", "serviceProvider"):
        ref = str((resource.get(element) or {}).get("reference", ""))
        if ref.startswith(_ORG_PREFIX):
            return ref[len(_ORG_PREFIX) :]
    return None


def facility_of_reference(ref: str) -> str | None:
    """`Organization/org-X` -> X; `Practitioner/X-prac-…`/`PractitionerRole/X-…` -> X; else None."""
    if ref.startswith(_ORG_PREFIX):
        return ref[len(_ORG_PREFIX) :]
    kind, _, rid = ref.partition("/")
    if kind in ("Practitioner", "PractitionerRole") and "-" in rid:
        return rid.split("-", 1)[0]
    return None
