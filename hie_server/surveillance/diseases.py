"""The notifiable-disease catalogue: ICD-10 code or LOINC test → disease, class and deadline.

Built from the terminology service's `notifiable-disease` CodeSystem (甲/乙/丙类, property
`icd10`: a WHO code, category or category range) plus `SurveillanceSettings` (乙类 managed as
甲类, locally monitored diseases, pathogen tests). Chinese-edition ICD-10 codes are rolled up
to WHO codes first (`terminology.rollup`: `A15.000x001` → A15.0, `A90` → A97.9).

May import: the standard library, `ehr_store` (errors), `terminology`, `hie_server.surveillance.settings`.
"""

from __future__ import annotations

from dataclasses import dataclass

from ehr_store import Unavailable
from hie_server.surveillance.settings import SurveillanceSettings
from terminology import TerminologyIndex, canonical, rollup

CLASS_A, CLASS_B, CLASS_C, OTHER = "甲类", "乙类", "丙类", "其他"


@dataclass(frozen=True, slots=True)
class Disease:
    """A notifiable disease: platform code (A01…C11, Q01), name, class, 2-hour rule."""

    code: str
    name: str
    disease_class: str
    managed_as_class_a: bool = False

    @property
    def class_label(self) -> str:
        """`甲类`, `乙类`, `丙类`, `其他`, or `乙类(按甲类管理)`."""
        return f"{self.disease_class}(按甲类管理)" if self.managed_as_class_a else self.disease_class

    def deadline_hours(self, settings: SurveillanceSettings) -> int:
        """Reporting deadline after diagnosis: 2 h for 甲类 and those managed as 甲类, else 24 h."""
        urgent = self.disease_class == CLASS_A or self.managed_as_class_a
        return settings.deadline_class_a_hours if urgent else settings.deadline_other_hours


def _in_spec(spec: str, who_code: str) -> bool:
    category = who_code[:3]
    if "-" in spec:
        start, end = spec.split("-", 1)
        return start <= category <= end
    return who_code == spec or who_code.startswith(spec + ".") or (len(spec) == 3 and category == spec)


class DiseaseCatalogue:
    """Lookups from ICD-10 codes and LOINC tests to notifiable diseases."""

    def __init__(self, diseases: list[tuple[Disease, list[str]]], settings: SurveillanceSettings) -> None:
        self.settings = settings
        self._specs = diseases
        self.by_code = {d.code: d for d, _ in diseases}
        self._cache: dict[str, Disease | None] = {}

    @classmethod
    def from_index(cls, index: TerminologyIndex, settings: SurveillanceSettings) -> DiseaseCatalogue:
        """Build from the terminology index. Raises: Unavailable (code system not loaded)."""
        system = index.codesystem(canonical.NOTIFIABLE)
        if system is None:
            raise Unavailable("the notifiable-disease code system is not loaded; run `hie db upgrade`")
        diseases: list[tuple[Disease, list[str]]] = []
        for concept in system.concepts.values():
            specs = [str(v) for v in concept.property_values("icd10")]
            classes = concept.property_values("class")
            if not specs or not classes:
                continue
            disease = Disease(concept.code, concept.display or concept.code, str(classes[0]))
            diseases.append((disease, specs))
        for prefix, value in settings.monitored.items():
            code, _, name = value.partition("|")
            diseases.append((Disease(code, name or code, OTHER), [prefix]))
        return cls(diseases, settings)

    def for_icd10(self, code: str) -> Disease | None:
        """The disease an ICD-10 code (WHO or Chinese edition) reports, or None."""
        if code in self._cache:
            return self._cache[code]
        rolled = rollup(code)
        who_code = rolled.who_code if rolled else code
        found = next((d for d, specs in self._specs if any(_in_spec(s, who_code) for s in specs)), None)
        if found is not None and any(_in_spec(p, who_code) for p in self.settings.managed_as_class_a):
            found = Disease(found.code, found.name, found.disease_class, managed_as_class_a=True)
        self._cache[code] = found
        return found

    def for_loinc(self, code: str) -> Disease | None:
        """The disease a positive result of this LOINC test reports, or None."""
        disease_code = self.settings.pathogen_loinc.get(code)
        return self.by_code.get(disease_code) if disease_code else None

    def ili(self, code: str) -> bool:
        """Whether an ICD-10 code counts as influenza-like illness (settings `ili_icd10`)."""
        return any(code.startswith(p) for p in self.settings.ili_icd10)
