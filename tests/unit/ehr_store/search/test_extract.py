"""Index extraction per parameter type, from real-looking resources (no database)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from search_samples import LOINC, RESIDENT_ID_SYSTEM, UCUM, encounter, observation, patient

from ehr_store.search import (
    DateEntry,
    QuantityEntry,
    ReferenceEntry,
    StringEntry,
    TokenEntry,
    UriEntry,
    extract_index,
    get_registry,
)
from ehr_store.search.values import MAX_DT

REG = get_registry()


def test_patient_identifier_resident_id_token() -> None:
    res = patient("p1", family="张", given="三", resident_id="441802198507140025", mrn="MRN-0001")
    tokens = [t for t in extract_index(res, REG).token if t.param == "identifier"]
    assert TokenEntry("identifier", RESIDENT_ID_SYSTEM, "441802198507140025", "居民身份证") in tokens
    assert any(t.code == "MRN-0001" and t.text == "mrn" for t in tokens)


def test_chinese_name_parts_and_joined_name() -> None:
    res = patient("p1", family="欧阳", given="娜娜")
    names = {s.value for s in extract_index(res, REG).string if s.param == "name"}
    assert {"欧阳", "娜娜", "欧阳娜娜"} <= names
    family = [s for s in extract_index(res, REG).string if s.param == "family"]
    assert family == [StringEntry("family", "欧阳", "欧阳")]


def test_phonetic_adds_toneless_pinyin_for_chinese_names() -> None:
    res = patient("p1", family="张", given="三")
    phonetic = {s.value for s in extract_index(res, REG).string if s.param == "phonetic"}
    assert {"张三", "zhangsan", "zhang san", "zhang", "san"} <= phonetic


def test_a_megabyte_long_name_is_indexed_by_its_head_only() -> None:
    """Only INDEXED_CHARS of a value and PINYIN_CHARS of a name's pinyin are looked at (the
    columns keep 255): pypinyin over a whole 1,000,000-character name took 19 s in the write."""
    from ehr_store.search.extract import INDEXED_CHARS, PINYIN_CHARS

    res = patient("p1", family="林" * 1_000_000, given="红")
    strings = extract_index(res, REG).string
    assert strings and all(len(s.exact) <= INDEXED_CHARS for s in strings)
    pinyin = [s.value for s in strings if s.param == "phonetic" and s.value.startswith("lin")]
    assert "lin" * PINYIN_CHARS in pinyin
    assert max(len(v) for v in pinyin if " " not in v) == 3 * PINYIN_CHARS


def test_western_name_is_normalised_without_accents_and_case() -> None:
    res = patient("p2", family="Müller", given="Zoë")
    strings = extract_index(res, REG).string
    assert StringEntry("family", "muller", "Müller") in strings
    assert any(s.param == "name" and s.value == "muller zoe" for s in strings)


def test_address_parts_and_city() -> None:
    entries = extract_index(patient("p1", family="李", given="四", city="清远市"), REG).string
    assert StringEntry("address-city", "清远市", "清远市") in entries
    assert StringEntry("address", "连江路18号", "连江路18号") in entries
    assert StringEntry("address-postalcode", "511500", "511500") in entries


def test_birthdate_is_the_whole_local_day_in_utc() -> None:
    dates = [
        d
        for d in extract_index(patient("p1", family="王", given="五", birth_date="1985-07-14"), REG).date
        if d.param == "birthdate"
    ]
    assert dates == [
        DateEntry(
            "birthdate",
            datetime(1985, 7, 13, 16, tzinfo=UTC),
            datetime(1985, 7, 14, 15, 59, 59, 999999, tzinfo=UTC),
        )
    ]


def test_observation_quantity_keeps_precision_range() -> None:
    res = observation("o1", subject="Patient/p1", code="718-7", value="1.50")
    q = [e for e in extract_index(res, REG).quantity if e.param == "value-quantity"]
    assert q == [
        QuantityEntry(
            "value-quantity", Decimal("1.50"), Decimal("1.495"), Decimal("1.505"), UCUM, "g/dL", "g/dL"
        )
    ]


def test_observation_code_token_and_text() -> None:
    tokens = [
        t
        for t in extract_index(observation("o1", subject="Patient/p1", code="718-7"), REG).token
        if t.param == "code"
    ]
    assert TokenEntry("code", LOINC, "718-7", "hemoglobin") in tokens
    assert TokenEntry("code", None, None, "血红蛋白") in tokens


def test_observation_subject_and_patient_references() -> None:
    refs = extract_index(observation("o1", subject="Patient/p1", code="718-7", encounter="Encounter/e1"), REG)
    assert ReferenceEntry("subject", "Patient", "p1", None, None, None) in refs.reference
    assert ReferenceEntry("patient", "Patient", "p1", None, None, None) in refs.reference
    assert ReferenceEntry("encounter", "Encounter", "e1", None, None, None) in refs.reference


def test_where_resolve_is_patient_excludes_group_subjects() -> None:
    refs = extract_index(observation("o2", subject="Group/g1", code="718-7"), REG).reference
    assert [r.param for r in refs] == ["subject"]


def test_reference_by_identifier_and_absolute_url() -> None:
    res = observation(
        "o3",
        subject="http://other.example/fhir/Patient/77",
        code="718-7",
        performer=[{"identifier": {"system": "urn:oid:1.2.3", "value": "DOC-9"}, "type": "Practitioner"}],
    )
    refs = extract_index(res, REG).reference
    assert (
        ReferenceEntry("subject", "Patient", "77", "http://other.example/fhir/Patient/77", None, None) in refs
    )
    assert ReferenceEntry("performer", "Practitioner", None, None, "urn:oid:1.2.3", "DOC-9") in refs


def test_encounter_period_and_open_period() -> None:
    done = extract_index(
        encounter(
            "e1", subject="Patient/p1", start="2026-03-01T09:00:00+08:00", end="2026-03-01T10:30:00+08:00"
        ),
        REG,
    ).date
    assert (
        DateEntry(
            "date", datetime(2026, 3, 1, 1, tzinfo=UTC), datetime(2026, 3, 1, 2, 30, 0, 999999, tzinfo=UTC)
        )
        in done
    )
    ongoing = extract_index(encounter("e2", subject="Patient/p1", start="2026-03-02"), REG).date
    assert [(d.start, d.end) for d in ongoing if d.param == "date"] == [
        (datetime(2026, 3, 1, 16, tzinfo=UTC), MAX_DT)
    ]


def test_timing_events_and_bounds() -> None:
    res = {
        "resourceType": "MedicationRequest",
        "id": "m1",
        "status": "active",
        "intent": "order",
        "subject": {"reference": "Patient/p1"},
        "medicationCodeableConcept": {"coding": [{"system": "urn:oid:2.16.156.10011.2.3.2", "code": "X01"}]},
        "dosageInstruction": [
            {
                "timing": {
                    "event": ["2026-03-01T08:00:00"],
                    "repeat": {"boundsPeriod": {"start": "2026-03-01", "end": "2026-03-07"}},
                }
            }
        ],
    }
    entries = extract_index(res, REG)
    dates = [d for d in entries.date if d.param == "date"]  # MedicationRequest-date: timing.event only
    assert dates == [
        DateEntry(
            "date", datetime(2026, 3, 1, 0, tzinfo=UTC), datetime(2026, 3, 1, 0, 0, 0, 999999, tzinfo=UTC)
        )
    ]
    assert TokenEntry("code", "urn:oid:2.16.156.10011.2.3.2", "X01", None) in entries.token
    obs = observation("o1", subject="Patient/p1", code="718-7")
    del obs["effectiveDateTime"]
    obs["effectiveTiming"] = res["dosageInstruction"][0]["timing"]  # type: ignore[index]
    timing = [d for d in extract_index(obs, REG).date if d.param == "date"]
    assert (
        DateEntry(
            "date",
            datetime(2026, 2, 28, 16, tzinfo=UTC),
            datetime(2026, 3, 7, 15, 59, 59, 999999, tzinfo=UTC),
        )
        in timing
    )
    assert len(timing) == 2


def test_choice_and_boolean_tokens_and_deceased() -> None:
    alive = extract_index(patient("p1", family="赵", given="六", active=True), REG).token
    assert TokenEntry("active", None, "true", None) in alive
    assert TokenEntry("deceased", None, "false", None) in alive
    dead = extract_index(patient("p2", family="赵", given="七", deceasedDateTime="2026-01-02"), REG).token
    assert TokenEntry("deceased", None, "true", None) in dead


def test_phone_and_meta_tag_profile_source() -> None:
    res = patient(
        "p1",
        family="钱",
        given="八",
        phone="13800001234",
        meta={
            "tag": [{"system": "urn:hie:tag", "code": "golden"}],
            "profile": ["http://hl7.org/fhir/StructureDefinition/Patient"],
            "source": "urn:hie:facility:qyrmyy",
        },
    )
    entries = extract_index(res, REG)
    assert TokenEntry("phone", "phone", "13800001234", None) in entries.token
    assert TokenEntry("_tag", "urn:hie:tag", "golden", None) in entries.token
    assert UriEntry("_profile", "http://hl7.org/fhir/StructureDefinition/Patient") in entries.uri
    assert UriEntry("_source", "urn:hie:facility:qyrmyy") in entries.uri


def test_unusable_values_index_nothing() -> None:
    res = {"resourceType": "Patient", "id": "x", "birthDate": "not-a-date", "name": [{"family": "   "}]}
    entries = extract_index(res, REG)
    assert entries.date == [] and entries.string == []
