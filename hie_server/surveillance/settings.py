"""`SurveillanceSettings`: notifiable-disease rules that are policy rather than terminology.

Env: `HIE_SURVEILLANCE__PSEUDONYM_KEY`, ... (section `surveillance` of HieSettings).

May import: pydantic.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class SurveillanceSettings(BaseModel):
    """Rules for recognising and reporting notifiable cases.

    `managed_as_class_a`: ICD-10 codes/prefixes of 乙类 diseases managed as 甲类 (传染病防治法
    第四条: 传染性非典型肺炎 U04, 肺炭疽 A22.1): 2-hour deadline like 甲类.
    `monitored`: locally monitored diseases outside the 甲/乙/丙 list (其他法定管理以及重点监测
    传染病), ICD-10 prefix → "code|name" (水痘 B01 → Q01).
    `pathogen_loinc`: LOINC tests whose positive result is a case of a disease (notifiable code).
    `ili_icd10`: diagnoses counted as influenza-like illness (a diagnosis proxy: triage
    temperature is not sent by the feeds). `pseudonym_key`: HMAC key of de-identified case and
    person ids (a random key per process when unset: pseudonyms then differ after a restart).
    `date_shift_days`: the largest shift (±days, per person) of de-identified dates on request.
    """

    model_config = ConfigDict(frozen=True)

    deadline_class_a_hours: int = Field(default=2, ge=1)
    deadline_other_hours: int = Field(default=24, ge=1)
    managed_as_class_a: tuple[str, ...] = ("U04", "A22.1")
    monitored: dict[str, str] = Field(default_factory=lambda: {"B01": "Q01|水痘"})
    pathogen_loinc: dict[str, str] = Field(
        default_factory=lambda: {
            "94500-6": "B27",  # SARS-CoV-2 RNA [Presence] in Respiratory specimen by NAA
            "5195-3": "B03",  # Hepatitis B virus surface Ag [Presence] in Serum
            "5196-1": "B03",  # Hepatitis B virus surface Ag [Presence] in Serum by Immunoassay
            "92142-9": "C01",  # Influenza virus A RNA [Presence] in Respiratory specimen by NAA
            "80382-5": "C01",  # Influenza virus A Ag [Presence] in Upper respiratory specimen
            "11545-1": "B13",  # Microscopic observation in Specimen by Acid fast stain (TB)
        }
    )
    ili_icd10: tuple[str, ...] = ("J09", "J10", "J11", "J00", "J02", "J06")
    pseudonym_key: str | None = None
    date_shift_days: int = Field(default=14, ge=1, le=365)
