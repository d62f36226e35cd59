"""Clinical reference content for the synthetic feed: diagnoses (ICD-10, with the notifiable
ones flagged), lab panels with local codes and reference ranges, vaccines (CVX), imaging
procedures and registration fees.

May import: the standard library only.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Diagnosis:
    """An ICD-10 diagnosis; `notifiable` when it is a 法定传染病 reported to the CDC."""

    code: str
    name: str
    notifiable: bool


DIAGNOSES: tuple[Diagnosis, ...] = (
    Diagnosis("A15.0", "肺结核", True),
    Diagnosis("B16.9", "急性乙型病毒性肝炎", True),
    Diagnosis("A09", "感染性腹泻", True),
    Diagnosis("A90", "登革热", True),
    Diagnosis("B05.9", "麻疹", True),
    Diagnosis("B01.9", "水痘", True),
    Diagnosis("A03.9", "细菌性痢疾", True),
    Diagnosis("J10.1", "流行性感冒", True),
    Diagnosis("I10", "原发性高血压", False),
    Diagnosis("E11.9", "2型糖尿病", False),
    Diagnosis("J06.9", "急性上呼吸道感染", False),
    Diagnosis("K29.7", "胃炎", False),
    Diagnosis("M54.5", "腰痛", False),
    Diagnosis("J18.9", "肺炎", False),
    Diagnosis("N39.0", "尿路感染", False),
    Diagnosis("I25.1", "冠状动脉粥样硬化性心脏病", False),
)
_DIAG_WEIGHTS = [0.6 if d.notifiable else 2.0 for d in DIAGNOSES]


def pick_diagnosis(rng: random.Random) -> Diagnosis:
    """A diagnosis; about one in six is notifiable."""
    return rng.choices(DIAGNOSES, weights=_DIAG_WEIGHTS)[0]


@dataclass(frozen=True, slots=True)
class Analyte:
    """A lab test: local code and name, LOINC, UCUM-style unit, reference range, typical spread."""

    code: str
    name: str
    loinc: str
    unit: str
    low: float
    high: float
    decimals: int


PANELS: dict[str, tuple[str, tuple[Analyte, ...]]] = {
    "CBC": ("血常规", (
        Analyte("HGB", "血红蛋白", "718-7", "g/L", 115, 175, 0),
        Analyte("WBC", "白细胞计数", "6690-2", "10*9/L", 3.5, 9.5, 1),
        Analyte("PLT", "血小板计数", "777-3", "10*9/L", 125, 350, 0),
        Analyte("RBC", "红细胞计数", "789-8", "10*12/L", 3.8, 5.8, 2),
    )),
    "BMP": ("肾功能电解质", (
        Analyte("GLU", "葡萄糖", "2345-7", "mmol/L", 3.9, 6.1, 1),
        Analyte("NA", "钠", "2951-2", "mmol/L", 137, 147, 0),
        Analyte("K", "钾", "2823-3", "mmol/L", 3.5, 5.3, 2),
        Analyte("CL", "氯", "2075-0", "mmol/L", 99, 110, 0),
        Analyte("CREA", "肌酐", "2160-0", "umol/L", 57, 111, 0),
        Analyte("BUN", "尿素氮", "3094-0", "mmol/L", 3.1, 8.0, 1),
    )),
    "A1C": ("糖化血红蛋白", (Analyte("HBA1C", "糖化血红蛋白", "4548-4", "%", 4.0, 6.0, 1),)),
}


def lab_value(rng: random.Random, analyte: Analyte) -> tuple[str, str]:
    """(value as sent in OBX-5, abnormal flag OBX-8 `N`/`H`/`L`); about 15 % abnormal."""
    span = analyte.high - analyte.low
    roll = rng.random()
    if roll < 0.08:
        value = analyte.high + span * rng.uniform(0.05, 0.6)
    elif roll < 0.15:
        value = max(analyte.low - span * rng.uniform(0.05, 0.4), analyte.low * 0.3)
    else:
        value = rng.uniform(analyte.low + span * 0.05, analyte.high - span * 0.05)
    text = f"{value:.{analyte.decimals}f}"
    number = float(text)
    flag = "H" if number > analyte.high else "L" if number < analyte.low else "N"
    return text, flag


@dataclass(frozen=True, slots=True)
class Vaccine:
    """A vaccine: CVX code, Chinese name, the short label used in the truth file."""

    cvx: str
    name: str
    label: str
    child: bool


VACCINES: tuple[Vaccine, ...] = (
    Vaccine("08", "乙肝疫苗", "HepB", True),
    Vaccine("20", "百白破疫苗", "DTaP", True),
    Vaccine("03", "麻腮风疫苗", "MMR", True),
    Vaccine("10", "脊灰灭活疫苗", "IPV", True),
    Vaccine("39", "乙脑疫苗", "JE", True),
    Vaccine("21", "水痘疫苗", "VAR", True),
    Vaccine("83", "甲肝疫苗", "HepA", True),
    Vaccine("141", "流感疫苗", "Flu", False),
    Vaccine("33", "23价肺炎球菌多糖疫苗", "PPSV23", False),
)

IMAGING: tuple[tuple[str, str, str], ...] = (
    ("DX-CHEST", "胸部正位片", "DX"),
    ("CT-HEAD", "头颅CT平扫", "CT"),
    ("US-ABD", "腹部超声", "US"),
    ("MR-LSPINE", "腰椎MRI平扫", "MR"),
)
"""(local procedure code, name, DICOM modality)."""

FEES: tuple[tuple[str, str, str], ...] = (
    ("110100001", "挂号费", "1.00"),
    ("110200001", "普通门诊诊查费", "10.00"),
    ("110200002", "副主任医师诊查费", "25.00"),
    ("120100001", "注射费", "5.50"),
)
"""(fee code, name, amount in CNY as sent)."""

DEPARTMENTS: tuple[str, ...] = ("内科", "外科", "儿科", "妇产科", "全科", "中医科")
