"""`TerminologyService` over a real store (memory, SQLite, PostgreSQL): loading content,
versioned ConceptMaps from CSV, persisted unmapped codes, remapping stored resources."""

from __future__ import annotations

from typing import Any

import pytest
from tparams import get, params

from ehr_store import Store
from terminology import MemoryUnmappedLog, TerminologyService, TerminologySettings, lookup
from terminology.canonical import BASE, LOINC

Json = dict[str, Any]
HEADER = "source_system,source_code,source_display,target_system,target_code,target_display,equivalence\n"
LOCAL_L = f"{BASE}/CodeSystem/local/QYRMYY/L"


def _observation(oid: str, code: str, display: str, system: str = LOCAL_L) -> Json:
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "code": {"coding": [{"system": system, "code": code, "display": display}], "text": display},
    }


def test_load_content_is_idempotent_and_indexed(store: Store) -> None:
    service = TerminologyService(store)
    first = service.load_content(senders=["QYRMYY", "default"])
    assert "CodeSystem/icd-10" in first.created and "ConceptMap/local-QYRMYY" in first.created
    assert "ConceptMap/local-LZRMYY" not in first.created
    again = service.load_content(senders=["QYRMYY", "default"])
    assert again.created == [] and again.updated == [] and len(again.unchanged) == len(first.created)
    index = service.index()
    assert (
        get(lookup(index, params(system=LOINC, code="4548-4", displayLanguage="zh")), "display")
        == "糖化血红蛋白"
    )
    codings = service.translator().translate_coding("QYRMYY", "L", "HGB", "血红蛋白")
    assert codings[0]["code"] == "718-7"


def test_conceptmap_csv_is_versioned(store: Store) -> None:
    service = TerminologyService(store)
    v1 = HEADER + "L,HGB,血红蛋白,LN,718-7,Hemoglobin [Mass/volume] in Blood,equivalent\n"
    resource, changed = service.load_conceptmap_csv("QYRMYY", v1)
    assert changed and resource["version"] == "1" and resource["url"] == f"{BASE}/ConceptMap/local-QYRMYY"
    assert resource["group"][0]["source"] == LOCAL_L and resource["group"][0]["target"] == LOINC
    unchanged, changed_again = service.load_conceptmap_csv("QYRMYY", v1)
    assert changed_again is False and unchanged["version"] == "1"
    v2 = v1 + "L,WBC,白细胞计数,LN,6690-2,,equivalent\n"
    resource2, changed2 = service.load_conceptmap_csv("QYRMYY", v2)
    assert changed2 and resource2["version"] == "2"
    with store.unit_of_work() as uow:
        assert uow.resources.history("ConceptMap", "local-QYRMYY").total == 2
    assert service.translator().translate_coding("QYRMYY", "L", "WBC", None)[0]["code"] == "6690-2"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("code,target\nA,B\n", "header"),
        (HEADER + ",,x,LN,718-7,,equivalent\n", "line 2: empty source_code"),
        (HEADER + "L,HGB,,LN,718-7,,same\n", "ConceptMapEquivalence"),
        (HEADER + "L,HGB,,LN,,,equivalent\n", "required"),
    ],
)
def test_bad_csv_writes_nothing(store: Store, text: str, message: str) -> None:
    service = TerminologyService(store)
    with pytest.raises(ValueError, match=message):
        service.load_conceptmap_csv("QYRMYY", text)
    with store.unit_of_work() as uow:
        assert uow.resources.history("ConceptMap").total == 0


def test_unmapped_codes_persist_and_remap_adds_standard_codings(store: Store) -> None:
    service = TerminologyService(store)
    service.load_conceptmap_csv("QYRMYY", HEADER + "L,HGB,血红蛋白,LN,718-7,,equivalent\n")
    for batch in range(2):
        translator = service.translator()
        assert translator.translate_coding("QYRMYY", "L", "DX-CHEST", "胸部正位片") == []
        assert translator.translate_coding("QYRMYY", "L", "UA", "尿常规") == []
        with store.unit_of_work() as uow:
            system = LOCAL_L if batch == 0 else "urn:qyhie:facility:QYRMYY:code"  # the HL7 mapping's form
            uow.resources.update(
                "Observation", f"o{batch}", _observation(f"o{batch}", "DX-CHEST", "胸部正位片", system)
            )
            service.persist_unmapped(uow.resources, translator.log)
            uow.commit()
    listed = {(u.code, u.count) for u in service.unmapped("QYRMYY")}
    assert listed == {("DX-CHEST", 2), ("UA", 2)}
    assert service.unmapped("LZRMYY") == []

    service.load_conceptmap_csv(
        "QYRMYY",
        HEADER
        + "L,HGB,血红蛋白,LN,718-7,,equivalent\n"
        + "L,DX-CHEST,胸部正位片,LN,24648-8,XR Chest PA,equivalent\n",
    )
    changed = service.remap("QYRMYY", ["Observation"])
    assert sorted(changed) == ["Observation/o0", "Observation/o1"]
    with store.unit_of_work() as uow:
        codings = uow.resources.read("Observation", "o0").as_dict()["code"]["coding"]
    assert [(c["system"], c["code"]) for c in codings] == [(LOCAL_L, "DX-CHEST"), (LOINC, "24648-8")]
    assert [u.code for u in service.unmapped("QYRMYY")] == ["UA"]
    assert service.remap("QYRMYY", ["Observation"]) == []


def test_memory_log_merges_counts() -> None:
    log = MemoryUnmappedLog()
    log.record("A", "s", "c", None)
    log.record("A", "s", "c", "显示", count=2)
    (item,) = log.list()
    assert (item.count, item.display, item.first_seen <= item.last_seen) == (3, "显示", True)


def test_load_content_keeps_an_administrators_map(store: Store) -> None:
    service = TerminologyService(store)
    service.load_conceptmap_csv("QYRMYY", HEADER + "L,HB,血红蛋白,LN,718-7,,equivalent\n")
    report = service.load_content(senders=["QYRMYY"])
    assert "ConceptMap/local-QYRMYY" in report.unchanged
    assert service.translator().translate_coding("QYRMYY", "L", "HB", None)[0]["code"] == "718-7"
    assert service.translator().translate_coding("QYRMYY", "L", "HGB", None) == []


def test_index_follows_conceptmap_edits_made_elsewhere(store: Store) -> None:
    reader = TerminologyService(store, TerminologySettings(check_seconds=0))
    writer = TerminologyService(store)
    assert reader.translator().translate_coding("QYRMYY", "L", "HGB", None) == []
    writer.load_conceptmap_csv("QYRMYY", HEADER + "L,HGB,血红蛋白,LN,718-7,,equivalent\n")
    assert reader.translator().translate_coding("QYRMYY", "L", "HGB", None)[0]["code"] == "718-7"
