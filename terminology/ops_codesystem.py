"""CodeSystem operations: `$lookup`, `$validate-code`, `$subsumes` (FHIR R4B CodeSystem §4.8.14-16).

Each takes the operation's input (a Parameters resource, or `parameters.In` built from a
query string) and returns a Parameters resource as in the specification's examples.
Pure functions over a `TerminologyIndex`.

May import: the standard library, `ehr_store` (errors), `terminology.canonical`,
`terminology.icd10`, `terminology.index`, `terminology.parameters`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ehr_store import InvalidInput, NotFound
from terminology import icd10
from terminology.canonical import ICD10, ICD10_CN, UCUM
from terminology.index import Resolved, TerminologyIndex
from terminology.parameters import In, out, p, part

Json = dict[str, Any]


def as_in(request: Json | In | None) -> In:
    """Accept a Parameters resource, an `In`, or None (no parameters)."""
    return request if isinstance(request, In) else In(request)


def system_of(index: TerminologyIndex, resource_id: str | None, given: str | None) -> str | None:
    """The code system URL: from the instance id (`CodeSystem/[id]/$op`) or the `system`/`url` input.

    Raises: NotFound (unknown CodeSystem id).
    """
    if resource_id is None:
        return given
    for versions in index.code_systems.values():
        for cs in versions.values():
            if cs.resource_id == resource_id:
                return cs.url
    raise NotFound(f"CodeSystem/{resource_id} is not known")


def coding_in(
    inp: In,
    *,
    system_name: str = "system",
    code_name: str = "code",
    coding_name: str = "coding",
    system: str | None = None,
) -> tuple[str | None, str | None, str | None, str | None]:
    """(system, code, version, display) from `coding`, or from `system`+`code`(+`version`, `display`)."""
    coding: Mapping[str, Any] | None = inp.mapping(coding_name)
    if coding is not None:
        return coding.get("system"), coding.get("code"), coding.get("version"), coding.get("display")
    concept = inp.mapping("codeableConcept") if coding_name == "coding" else None
    if concept is not None:
        first = (concept.get("coding") or [{}])[0]
        return first.get("system"), first.get("code"), first.get("version"), first.get("display")
    return system or inp.text(system_name), inp.text(code_name), inp.text("version"), inp.text("display")


def lookup(index: TerminologyIndex, request: Json | In | None, *, resource_id: str | None = None) -> Json:
    """`CodeSystem/$lookup`: name, version, display, designations and properties of a code.

    In: system+code (or coding), version, displayLanguage, property*. Out: Parameters
    (name, version, display, designation*(language, use, value), property*(code, value)).
    Raises: InvalidInput (no code/system), NotFound (unknown system or code).
    FHIR R4B CodeSystem §4.8.14 ($lookup).
    """
    inp = as_in(request)
    system, code, version, _ = coding_in(inp, system=system_of(index, resource_id, None))
    if not system or not code:
        raise InvalidInput("$lookup needs system and code, or coding", expression=("code",))
    found = index.resolve(system, code, version)
    if found is None:
        what = "code system" if not index.knows_system(system) else "code"
        raise NotFound(f"{what} not found: {system}|{code}", expression=("code",))
    language = inp.text("displayLanguage")
    wanted = {str(v) for v in inp.all("property")}
    return out(
        p("name", "String", _name(found)),
        p("version", "String", found.version),
        p(
            "display",
            "String",
            found.concept.display_in(language) if found.concept and system != ICD10_CN else found.display,
        ),
        *_designations(found),
        *_properties(index, found, wanted),
    )


def _name(found: Resolved) -> str:
    if found.system == UCUM:
        return "UCUM"
    if found.system == ICD10_CN:
        return "ICD10CN"
    cs = found.codesystem
    return (cs.name or cs.title or cs.url) if cs else found.system


def _designations(found: Resolved) -> list[Json]:
    if found.concept is None or found.system == ICD10_CN:
        return []
    return [
        part(
            "designation",
            p("language", "Code", d.language),
            p("use", "Coding", d.use),
            p("value", "String", d.value),
        )
        for d in found.concept.designations
    ]


def _properties(index: TerminologyIndex, found: Resolved, wanted: set[str]) -> list[Json]:
    if found.system == ICD10_CN:
        rolled = icd10.rollup(found.code)
        who = {"system": ICD10, "code": rolled.who_code, "display": found.display} if rolled else None
        return [part("property", p("code", "Code", "icd10-who"), p("value", "Coding", who))]
    if found.concept is None or found.codesystem is None:
        return []
    props = [
        part("property", p("code", "Code", name), {"name": "value", key: value})
        for name, key, value in found.concept.properties
        if not wanted or name in wanted
    ]
    if "child" in wanted:
        props += [
            part("property", p("code", "Code", "child"), p("value", "Code", child))
            for child in found.codesystem.children.get(found.code, [])
        ]
    return props


def validate_code(
    index: TerminologyIndex, request: Json | In | None, *, resource_id: str | None = None
) -> Json:
    """`CodeSystem/$validate-code`: is the code in the code system (and is the display right)?

    In: url+code (or coding / codeableConcept), version, display. Out: Parameters
    (result, message when false or when informative, display).
    Raises: InvalidInput (no code or url). FHIR R4B CodeSystem §4.8.15.
    """
    inp = as_in(request)
    url = system_of(index, resource_id, inp.text("url"))
    system, code, version, display = coding_in(inp, system_name="url", system=url)
    if not system or not code:
        raise InvalidInput("$validate-code needs url and code, or coding", expression=("code",))
    return validation_result(index, system, code, version, display)


def validation_result(
    index: TerminologyIndex, system: str, code: str, version: str | None, display: str | None
) -> Json:
    """Parameters (result, message, display) for one code against its code system."""
    if not index.knows_system(system):
        return out(
            p("result", "Boolean", False), p("message", "String", f"code system {system} is not known")
        )
    found = index.resolve(system, code, version)
    if found is None:
        return out(p("result", "Boolean", False), p("message", "String", f"code {code} is not in {system}"))
    if display and not _display_matches(found, display):
        return out(
            p("result", "Boolean", False),
            p(
                "message",
                "String",
                f"display {display!r} does not match {found.display!r} for {system}|{code}",
            ),
            p("display", "String", found.display),
        )
    return out(
        p("result", "Boolean", True),
        p("message", "String", found.note),
        p("display", "String", found.display),
    )


def _display_matches(found: Resolved, display: str) -> bool:
    if found.system == ICD10_CN or found.system == UCUM:
        return True  # the sender's own Chinese edition display is authoritative there
    options = {found.display or ""}
    if found.concept:
        options |= {d.value for d in found.concept.designations}
    return display.strip().lower() in {o.lower() for o in options}


def subsumes(index: TerminologyIndex, request: Json | In | None, *, resource_id: str | None = None) -> Json:
    """`CodeSystem/$subsumes`: relation of codeA to codeB in a hierarchical system (ICD-10).

    In: system + codeA + codeB (or codingA/codingB), version. Out: Parameters (outcome:
    equivalent | subsumes | subsumed-by | not-subsumed). Chinese-edition ICD-10 codes are
    compared through their WHO roll-up. Raises: InvalidInput, NotFound.
    FHIR R4B CodeSystem §4.8.16.
    """
    inp = as_in(request)
    system = system_of(index, resource_id, inp.text("system"))
    sys_a, code_a, _, _ = coding_in(inp, code_name="codeA", coding_name="codingA", system=system)
    sys_b, code_b, _, _ = coding_in(inp, code_name="codeB", coding_name="codingB", system=system)
    if not code_a or not code_b or not sys_a or not sys_b:
        raise InvalidInput(
            "$subsumes needs system, codeA and codeB (or codingA and codingB)", expression=("codeA",)
        )
    if sys_a != sys_b:
        raise InvalidInput("codingA and codingB must be from the same code system", expression=("codingB",))
    found_a = index.resolve(sys_a, code_a, inp.text("version"))
    found_b = index.resolve(sys_b, code_b, inp.text("version"))
    for found, code in ((found_a, code_a), (found_b, code_b)):
        if found is None or found.codesystem is None or found.concept is None:
            raise NotFound(f"code {code} is not in a hierarchical code system {sys_a}", expression=("codeA",))
    assert found_a is not None and found_b is not None and found_a.codesystem is not None
    assert found_a.concept is not None and found_b.concept is not None
    outcome = found_a.codesystem.subsumes(found_a.concept.code, found_b.concept.code)
    if sys_a == ICD10_CN and outcome == "equivalent" and found_a.code != found_b.code:
        outcome = _cn_refinement(found_a, found_b)
    return out(p("outcome", "Code", outcome))


def _cn_refinement(a: Resolved, b: Resolved) -> str:
    """Two Chinese-edition codes rolling up to the same WHO code: the WHO code, or the
    shorter code that the other extends (`E11.900` vs `E11.900x001`), subsumes."""
    exact_a = a.note is None or b.code.startswith(a.code)
    exact_b = b.note is None or a.code.startswith(b.code)
    if exact_a and not exact_b:
        return "subsumes"
    if exact_b and not exact_a:
        return "subsumed-by"
    return "not-subsumed"
