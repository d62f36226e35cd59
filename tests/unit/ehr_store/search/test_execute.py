"""Search execution with the same expectations on memory, SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from search_backends import SearchBackend
from search_samples import MRN_SYSTEM, RESIDENT_ID_SYSTEM, encounter, observation, patient

from ehr_store.errors import InvalidInput

ZHANG_ID = "441802198507140025"
LI_ID = "44180219900203001X"


@pytest.fixture
def db(search_backend: SearchBackend) -> SearchBackend:
    search_backend.load(
        {"resourceType": "Organization", "id": "org1", "name": "清远市人民医院", "active": True},
        patient(
            "p1",
            family="张",
            given="三",
            resident_id=ZHANG_ID,
            mrn="MRN-0001",
            birth_date="1985-07-14",
            phone="13800001234",
            managingOrganization={"reference": "Organization/org1"},
        ),
        patient(
            "p2",
            family="李",
            given="四",
            resident_id=LI_ID,
            gender="male",
            birth_date="1990-02-03",
            city="英德市",
        ),
        patient(
            "p3",
            family="Müller",
            given="Zoë",
            birth_date="1970-01-01",
            meta={
                "tag": [{"system": "urn:hie:tag", "code": "golden"}],
                "profile": ["http://hie.example/fhir/StructureDefinition/cn-patient"],
            },
        ),
        encounter(
            "e1", subject="Patient/p1", start="2026-03-01T09:00:00+08:00", end="2026-03-01T10:30:00+08:00"
        ),
        encounter("e2", subject="Patient/p2", start="2026-03-02T08:00:00+08:00"),
        observation("o1", subject="Patient/p1", code="718-7", value="1.50", encounter="Encounter/e1"),
        observation(
            "o2", subject="Patient/p1", code="718-7", value="13.2", effective="2026-02-01T10:00:00+08:00"
        ),
        observation(
            "o3",
            subject="Patient/p2",
            code="2345-7",
            value="5.4",
            unit="mmol/L",
            effective="2026-03-02T08:00:00+08:00",
            display="Glucose",
        ),
        observation("o4", subject="Group/g1", code="718-7", effective="2026-03-03"),
        {
            "resourceType": "Provenance",
            "id": "pv1",
            "target": [{"reference": "Observation/o1"}],
            "recorded": "2026-03-01T10:05:00+08:00",
            "agent": [{"who": {"reference": "Organization/org1"}}],
        },
    )
    return search_backend


def ids(db: SearchBackend, rtype: str | None, *params: tuple[str, str]) -> list[str]:
    return db.ids(rtype, list(params))


def test_identifier_with_and_without_system(db: SearchBackend) -> None:
    assert ids(db, "Patient", ("identifier", ZHANG_ID)) == ["p1"]
    assert ids(db, "Patient", ("identifier", f"{RESIDENT_ID_SYSTEM}|{LI_ID}")) == ["p2"]
    assert ids(db, "Patient", ("identifier", f"{MRN_SYSTEM}|{ZHANG_ID}")) == []
    assert ids(db, "Patient", ("identifier", f"{MRN_SYSTEM}|")) == ["p1"]
    assert ids(db, "Patient", ("identifier", f"|{ZHANG_ID}")) == []
    assert ids(db, "Patient", ("identifier:text", "居民")) == ["p1", "p2"]


def test_strings_chinese_and_accents(db: SearchBackend) -> None:
    assert ids(db, "Patient", ("name", "张三")) == ["p1"]
    assert ids(db, "Patient", ("name", "张")) == ["p1"]
    assert ids(db, "Patient", ("family", "muller")) == ["p3"]
    assert ids(db, "Patient", ("name:contains", "ll")) == ["p3"]
    assert ids(db, "Patient", ("name:exact", "Müller")) == ["p3"]
    assert ids(db, "Patient", ("name:exact", "müller")) == []
    assert ids(db, "Patient", ("address-city", "英德")) == ["p2"]
    assert ids(db, "Patient", ("name", "张,李")) == ["p1", "p2"]
    assert ids(db, "Patient", ("phonetic", "zhang san")) == ["p1"]
    assert ids(db, "Patient", ("phonetic", "li")) == ["p2"]


def test_dates_by_precision(db: SearchBackend) -> None:
    assert ids(db, "Patient", ("birthdate", "1985")) == ["p1"]
    assert ids(db, "Patient", ("birthdate", "1985-07-14")) == ["p1"]
    assert ids(db, "Patient", ("birthdate", "ge1985-07-14")) == ["p1", "p2"]
    assert ids(db, "Patient", ("birthdate", "lt1985")) == ["p3"]
    assert ids(db, "Patient", ("birthdate", "ne1985-07")) == ["p2", "p3"]
    assert ids(db, "Encounter", ("date", "2026-03-01")) == ["e1"]
    assert ids(db, "Encounter", ("date", "ge2026-06-01")) == ["e2"]  # still open
    assert ids(db, "Encounter", ("date", "sa2026-03-01")) == ["e2"]
    assert ids(db, "Encounter", ("date", "eb2026-03-02")) == ["e1"]
    assert ids(db, "Observation", ("date", "2026-03"), ("date", "lt2026-03-03")) == ["o1", "o3"]


def test_target_query_subject_code_date(db: SearchBackend) -> None:
    found = ids(
        db,
        "Observation",
        ("subject", "Patient/p1"),
        ("code", "http://loinc.org|718-7"),
        ("date", "ge2026-02-15"),
    )
    assert found == ["o1"]
    assert ids(db, "Observation", ("subject", "p1"), ("code", "718-7")) == ["o1", "o2"]
    assert ids(db, "Observation", ("patient", "p1"), ("date", "ap2026-02-01")) == [
        "o1",
        "o2",
    ]  # ±10 % of the gap to now
    assert ids(db, "Observation", ("patient", "p1"), ("date", "ap2016-02-01")) == []
    assert ids(db, "Observation", ("subject:Group", "g1")) == ["o4"]


def test_quantities(db: SearchBackend) -> None:
    assert ids(db, "Observation", ("value-quantity", "1.5")) == ["o1"]
    assert ids(db, "Observation", ("value-quantity", "1.50")) == ["o1"]
    assert ids(db, "Observation", ("value-quantity", "1.500")) == []
    assert ids(db, "Observation", ("value-quantity", "gt5")) == ["o2", "o3"]
    assert ids(db, "Observation", ("value-quantity", "le5.4")) == ["o1", "o3"]
    assert ids(db, "Observation", ("value-quantity", "ap5")) == ["o3"]
    assert ids(db, "Observation", ("value-quantity", "5.4|http://unitsofmeasure.org|mmol/L")) == ["o3"]
    assert ids(db, "Observation", ("value-quantity", "5.4||g/dL")) == []


def test_token_modifiers(db: SearchBackend) -> None:
    assert ids(db, "Observation", ("code:not", "718-7")) == ["o3"]
    assert ids(db, "Observation", ("code:text", "gluc")) == ["o3"]
    assert ids(db, "Observation", ("code:text", "蛋白")) == ["o1", "o2", "o3", "o4"]
    assert ids(db, "Observation", ("value-quantity:missing", "true")) == ["o4"]
    assert ids(db, "Patient", ("phone:missing", "false")) == ["p1"]
    assert ids(db, "Patient", ("gender", "male")) == ["p2"]
    assert ids(db, "Patient", ("deceased", "false")) == ["p1", "p2", "p3"]


def test_meta_parameters_and_uri(db: SearchBackend) -> None:
    assert ids(db, "Patient", ("_tag", "urn:hie:tag|golden")) == ["p3"]
    assert ids(db, "Patient", ("_profile", "http://hie.example/fhir/StructureDefinition/cn-patient")) == [
        "p3"
    ]
    assert ids(db, "Patient", ("_profile:below", "http://hie.example/fhir/")) == ["p3"]
    assert ids(db, "Patient", ("_id", "p1,p3")) == ["p1", "p3"]
    assert ids(db, "Patient", ("_id:not", "p1")) == ["p2", "p3"]
    assert ids(db, "Patient", ("_lastUpdated", "gt2026-03-01T00:03:30Z")) == ["p3"]
    assert ids(db, "Patient", ("_lastUpdated", "2026-03-01")) == ["p1", "p2", "p3"]


def test_chained_and_reverse_chained(db: SearchBackend) -> None:
    assert ids(db, "Observation", ("subject:Patient.identifier", f"{RESIDENT_ID_SYSTEM}|{LI_ID}")) == ["o3"]
    assert ids(db, "Observation", ("subject.name", "张")) == ["o1", "o2"]
    assert ids(db, "Observation", ("subject:Patient.organization.name", "清远")) == ["o1", "o2"]
    assert ids(db, "Patient", ("_has:Observation:patient:code", "2345-7")) == ["p2"]
    assert ids(
        db, "Patient", ("_has:Observation:subject:_has:Provenance:target:agent", "Organization/org1")
    ) == ["p1"]


def test_includes(db: SearchBackend) -> None:
    result = db.search(
        "Observation",
        [
            ("_id", "o1"),
            ("_include", "Observation:subject"),
            ("_include", "Observation:encounter"),
            ("_revinclude", "Provenance:target"),
        ],
    )
    assert [m.id for m in result.matches] == ["o1"]
    assert sorted(r.reference for r in result.included) == ["Encounter/e1", "Patient/p1", "Provenance/pv1"]
    plain = db.search(
        "Observation",
        [("_id", "o1"), ("_include", "Observation:encounter"), ("_include", "Encounter:subject")],
    )
    assert [r.reference for r in plain.included] == ["Encounter/e1"]
    iterate = db.search(
        "Observation",
        [("_id", "o1"), ("_include", "Observation:encounter"), ("_include:iterate", "Encounter:subject")],
    )
    assert sorted(r.reference for r in iterate.included) == ["Encounter/e1", "Patient/p1"]
    typed = db.search("Observation", [("code", "718-7"), ("_include", "Observation:subject:Group")])
    assert typed.included == []  # Group/g1 is not stored
    rev = db.search("Patient", [("_id", "p1"), ("_revinclude", "Observation:patient")])
    assert sorted(r.id for r in rev.included) == ["o1", "o2"]


def test_sort_paging_total(db: SearchBackend) -> None:
    assert ids(db, "Observation", ("_sort", "-date")) == ["o4", "o3", "o1", "o2"]
    assert ids(db, "Observation", ("_sort", "date")) == ["o2", "o1", "o3", "o4"]
    assert ids(db, "Patient", ("_sort", "-birthdate")) == ["p2", "p1", "p3"]
    assert ids(db, "Observation", ("_sort", "subject,-date")) == ["o4", "o1", "o2", "o3"]
    assert ids(db, "Observation", ("_sort", "-_lastUpdated")) == ["o4", "o3", "o2", "o1"]
    assert ids(db, "Observation", ("value-quantity:missing", "false"), ("_sort", "-value-quantity")) == [
        "o2",
        "o3",
        "o1",
    ]
    page1 = db.search("Observation", [("_count", "2"), ("_total", "accurate")])
    assert [m.id for m in page1.matches] == ["o1", "o2"] and page1.has_more and page1.total == 4
    page2 = db.search("Observation", [("_count", "2"), ("_offset", "2")])
    assert [m.id for m in page2.matches] == ["o3", "o4"] and not page2.has_more and page2.total is None
    counted = db.search("Observation", [("code", "718-7"), ("_summary", "count")])
    assert counted.total == 3 and counted.matches == []
    assert db.count("Observation", [("code", "718-7"), ("_count", "1")]) == 3


def test_system_search(db: SearchBackend) -> None:
    assert sorted(m.reference for m in db.search(None, [("_id", "p1,o1")]).matches) == [
        "Observation/o1",
        "Patient/p1",
    ]
    assert ids(db, None, ("_type", "Patient"), ("_tag", "urn:hie:tag|golden")) == ["p3"]
    assert len(db.search(None, [("_type", "Patient,Encounter")]).matches) == 5


def test_deleted_resources_never_match(db: SearchBackend) -> None:
    db.delete("Patient", "p2")
    assert ids(db, "Patient", ("identifier", LI_ID)) == []
    assert ids(db, "Patient", ("gender:missing", "false")) == ["p1", "p3"]
    assert ids(db, "Observation", ("subject:Patient.identifier", LI_ID)) == []
    assert db.search("Observation", [("_id", "o3"), ("_include", "Observation:subject")]).included == []
    db.delete("Observation", "o1")
    assert ids(db, "Patient", ("_has:Observation:patient:code", "718-7")) == ["p1"]
    assert ids(db, "Observation", ("code", "718-7")) == ["o2", "o4"]


def test_unknown_parameters_and_bad_values(db: SearchBackend) -> None:
    lenient = db.search("Patient", [("shoe-size", "42"), ("gender", "male")])
    assert [m.id for m in lenient.matches] == ["p2"] and lenient.warnings[0].expression == ("shoe-size",)
    with pytest.raises(InvalidInput):
        db.search("Patient", [("shoe-size", "42")], strict=True)
    with pytest.raises(InvalidInput) as err:
        db.search("Patient", [("birthdate", "notadate")])
    assert err.value.issues[0].expression == ("birthdate",)


def test_content_is_served_as_stored(db: SearchBackend) -> None:
    (match,) = db.search("Observation", [("_id", "o1")]).matches
    assert b"1.50" in match.content and match.version_id == 1


def test_reference_identifier_and_uri_above_below(db: SearchBackend) -> None:
    db.load(
        observation("o5", subject="Patient/p1", code="718-7",
                    performer=[{"type": "Practitioner",
                                "identifier": {"system": "urn:oid:1.2.156.1", "value": "DOC-0042"}}]),
        {"resourceType": "ValueSet", "id": "vs1", "status": "active",
         "url": "http://hie.example/fhir/ValueSet/gender"},
    )  # fmt: skip
    assert ids(db, "Observation", ("performer:identifier", "urn:oid:1.2.156.1|DOC-0042")) == ["o5"]
    assert ids(db, "Observation", ("performer:identifier", "DOC-0042")) == ["o5"]
    assert ids(db, "Observation", ("performer:identifier", "urn:other|DOC-0042")) == []
    assert ids(db, "ValueSet", ("url", "http://hie.example/fhir/ValueSet/gender")) == ["vs1"]
    assert ids(db, "ValueSet", ("url:below", "http://hie.example/fhir")) == ["vs1"]
    assert ids(db, "ValueSet", ("url:above", "http://hie.example/fhir/ValueSet/gender/v2")) == ["vs1"]
    assert ids(db, "ValueSet", ("url:above", "http://hie.example/fhir")) == []


def test_include_wildcards(db: SearchBackend) -> None:
    for value in ("Observation:*", "*"):
        result = db.search("Observation", [("_id", "o1"), ("_include", value)])
        assert sorted(r.reference for r in result.included) == ["Encounter/e1", "Patient/p1"], value


def test_over_long_values_are_cut_to_the_columns(search_backend: SearchBackend) -> None:
    long_name = "长" * 300
    search_backend.load(patient("px", family=long_name, given="一", mrn="M" * 300))
    assert search_backend.ids("Patient", [("family", "长" * 10)]) == ["px"]
    assert search_backend.ids("Patient", [("identifier", "M" * 300)]) == ["px"]  # both cut to 255
