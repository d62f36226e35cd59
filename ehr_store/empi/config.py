"""EMPI settings: matching rules, Fellegi–Sunter weights and thresholds from a TOML file.

The defaults ship as package data (`ehr_store/empi/data/empi.toml`); an operator may point
`EmpiSettings.rules_file` (env `HIE_EMPI__RULES_FILE`) at a copy with other numbers. Nothing
is read at import time: `load_rules()` reads the file when a service is built.

May import: pydantic, the standard library.
"""

from __future__ import annotations

import math
import tomllib
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

BlockingKeyName = Literal[
    "resident_id",
    "phone",
    "family_birth_date",
    "given_birth_date",
    "name_birth_year",
    "family_birth_month_county",
]


class Level(BaseModel):
    """One agreement level: m = P(level | match), u = P(level | non-match); weight = log2(m/u)."""

    model_config = ConfigDict(frozen=True)

    m: float = Field(gt=0, le=1)
    u: float = Field(gt=0, le=1)

    @property
    def weight(self) -> float:
        """Fellegi–Sunter log-likelihood ratio in bits."""
        return math.log2(self.m / self.u)


class Thresholds(BaseModel):
    """`upper`: auto-link at or above; `lower`: review queue at or above (below: separate)."""

    model_config = ConfigDict(frozen=True)

    upper: float
    lower: float

    @model_validator(mode="after")
    def _ordered(self) -> Thresholds:
        if self.lower > self.upper:
            raise ValueError("thresholds.lower must not exceed thresholds.upper")
        return self


class Rules(BaseModel):
    """Deterministic rules and candidate limits."""

    model_config = ConfigDict(frozen=True)

    resident_id_links: bool = True
    conflicting_resident_id_blocks: bool = True
    max_candidates_per_key: int = Field(default=200, ge=1)
    review_top: int = Field(default=3, ge=1)
    conflicting_mrn_blocks: bool = True
    """Two different MRNs of the same facility (same MRN system) never auto-link: a facility
    registers a person once; its own duplicates are joined by ADT^A40 or a reviewer."""
    corroboration: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    """field -> agreement levels that corroborate a probabilistic auto-link. When not empty,
    a score >= upper links only if at least one of these levels was reached (e.g. phone
    `same`, address `village`); otherwise the pair goes to review. Name + birth date + sex
    alone never auto-link."""


class Blocking(BaseModel):
    """Which blocking keys records are filed under (see `ehr_store.empi.blocking`)."""

    model_config = ConfigDict(frozen=True)

    keys: tuple[BlockingKeyName, ...]


class NameRules(BaseModel):
    """Name comparison knobs."""

    model_config = ConfigDict(frozen=True)

    homophone_min_ratio: float = Field(default=0.5, ge=0, le=1)
    surname_equivalents: tuple[tuple[str, str], ...] = ()
    """Surname pairs scored as homophones though their Mandarin pinyin differs (黄/王 in
    Cantonese-accented speech)."""
    surname_share: dict[str, float] = Field(default_factory=dict)
    """Surname -> share of the population (0-1). An exact surname agreement weighs
    log2(m / max(u, share)): agreeing on 陈 (10 %) is weaker evidence than on 骆."""
    single_given_u: float | None = Field(default=None, gt=0, le=1)
    """u of an exact agreement on a one-character given name (伟, 娜: a few hundred
    characters shared by a third of the population), used when larger than the field's u."""

    def equivalent_surnames(self) -> frozenset[tuple[str, str]]:
        """Both orders of every configured pair."""
        return frozenset(self.surname_equivalents) | frozenset((b, a) for a, b in self.surname_equivalents)


FIELD_LEVELS: dict[str, tuple[str, ...]] = {
    "family": ("exact", "homophone", "different"),
    "given": ("exact", "homophone", "similar", "different"),
    "birth_date": ("exact", "transposed", "year_off", "same_month", "different"),
    "sex": ("same", "different"),
    "phone": ("same", "different"),
    "address": ("village", "town", "county", "different"),
}
"""Agreement levels each comparator can return (and the config must weigh)."""


class MatchRules(BaseModel):
    """The whole rules file, validated: every comparator level has m and u."""

    model_config = ConfigDict(frozen=True)

    thresholds: Thresholds
    rules: Rules = Field(default_factory=Rules)
    blocking: Blocking
    name: NameRules = Field(default_factory=NameRules)
    fields: dict[str, dict[str, Level]]

    @field_validator("fields")
    @classmethod
    def _complete(cls, value: dict[str, dict[str, Level]]) -> dict[str, dict[str, Level]]:
        for field, levels in FIELD_LEVELS.items():
            missing = set(levels) - set(value.get(field, {}))
            if missing:
                raise ValueError(f"fields.{field} lacks levels {sorted(missing)}")
        return value

    def weight(self, field: str, level: str) -> float:
        """Weight (bits) of `level` for `field`. Raises: KeyError for an unknown pair."""
        return self.fields[field][level].weight

    def name_weight(self, field: str, level: str, value: str) -> float:
        """Frequency-aware weight (bits) of a `family`/`given` level for the name `value`:
        an `exact` agreement on a common name uses u = max(u, name share) (Winkler's
        frequency-based matching). Raises: KeyError for an unknown pair."""
        lv = self.fields[field][level]
        if level != "exact":
            return lv.weight
        share = 0.0
        if field == "family":
            share = self.name.surname_share.get(value, 0.0)
        elif field == "given" and len(value) == 1 and self.name.single_given_u is not None:
            share = self.name.single_given_u
        return math.log2(lv.m / max(lv.u, share))


class EmpiSettings(BaseModel):
    """EMPI settings section (composed into HieSettings as `empi`). Env: `HIE_EMPI__RULES_FILE`."""

    model_config = ConfigDict(frozen=True)

    rules_file: Path | None = Field(
        default=None, description="TOML rules file; the packaged ehr_store/empi/data/empi.toml when unset"
    )
    match_default_count: int = Field(default=10, ge=1, description="Patient/$match `count` when absent")


def _read_rules(path: Path | None) -> MatchRules:
    if path is None:
        text = resources.files("ehr_store.empi").joinpath("data/empi.toml").read_text("utf-8")
    else:
        text = path.read_text("utf-8")
    return MatchRules.model_validate(tomllib.loads(text))


@lru_cache(maxsize=8)
def _cached_rules(path: Path | None) -> MatchRules:
    return _read_rules(path)


def load_rules(settings: EmpiSettings | None = None) -> MatchRules:
    """Read and validate the rules file named by `settings` (packaged defaults when None).

    Raises: OSError (unreadable file), tomllib.TOMLDecodeError, pydantic.ValidationError.
    """
    return _cached_rules(settings.rules_file if settings is not None else None)
