"""Fellegi–Sunter scoring and the link decision (pure, no database).

`score(a, b, rules)` sums the log2(m/u) weight of each field's agreement level;
`decide(...)` applies the deterministic 身份证号 rules and the two thresholds.

May import: the standard library, `ehr_store.empi.{config,compare,features}`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from ehr_store.empi.compare import (
    compare_address,
    compare_birth_date,
    compare_family,
    compare_given,
    compare_phone,
    compare_sex,
)
from ehr_store.empi.config import MatchRules
from ehr_store.empi.features import Features

Decision = Literal["link", "review", "separate"]
Rule = Literal[
    "resident_id", "probabilistic", "resident_id_conflict", "mrn_conflict", "uncorroborated", "none"
]


@dataclass(frozen=True, slots=True)
class Comparison:
    """Outcome of comparing two records.

    `score`: total weight in bits; `levels`: field → agreement level (missing fields absent);
    `same_resident_id`: both carry the same valid 身份证号; `resident_id_conflict`: both carry
    valid 身份证号s and none is shared; `mrn_conflict`: both carry MRNs of one facility (same
    system) and none is shared; `corroborated`: a field independent of name and birth date
    reached a corroborating level (`rules.rules.corroboration`).
    """

    score: float
    levels: dict[str, str] = field(default_factory=dict)
    same_resident_id: bool = False
    resident_id_conflict: bool = False
    mrn_conflict: bool = False
    corroborated: bool = True


def score(a: Features, b: Features, rules: MatchRules) -> Comparison:
    """Compare two records field by field and sum the weights (Fellegi & Sunter 1969).

    A 身份证号 present on both sides also counts: a shared valid number scores the
    birth-date, sex and county agreement it implies (those fields are compared anyway).
    """
    levels: dict[str, str] = {}
    candidates = {
        "family": compare_family(a, b, equivalents=rules.name.equivalent_surnames()),
        "given": compare_given(a, b, min_ratio=rules.name.homophone_min_ratio),
        "birth_date": compare_birth_date(a.birth_date, b.birth_date),
        "sex": compare_sex(a.sex, b.sex),
        "phone": compare_phone(a.phones, b.phones),
        "address": compare_address(a, b),
    }
    total = 0.0
    for name, level in candidates.items():
        if level is not None:
            levels[name] = level
            if name in ("family", "given"):
                total += rules.name_weight(name, level, a.family if name == "family" else a.given)
            else:
                total += rules.weight(name, level)
    shared = bool(set(a.resident_ids) & set(b.resident_ids))
    conflict = bool(a.resident_ids and b.resident_ids and not shared)
    corroborating = rules.rules.corroboration
    corroborated = not corroborating or any(
        levels.get(name) in wanted for name, wanted in corroborating.items()
    )
    return Comparison(round(total, 3), levels, shared, conflict, mrn_conflict(a, b), corroborated)


def mrn_conflict(a: Features, b: Features) -> bool:
    """Both records carry an MRN of the same facility (MRN system) and share none: a facility
    registers one person once, so these are two people unless an ADT^A40 merge says otherwise."""
    if not a.mrns or not b.mrns or set(a.mrns) & set(b.mrns):
        return False
    systems_a = {m.rsplit("|", 1)[0] for m in a.mrns}
    return any(m.rsplit("|", 1)[0] in systems_a for m in b.mrns)


def decide(comparison: Comparison, rules: MatchRules) -> tuple[Decision, Rule]:
    """The link decision for one candidate.

    - same valid 身份证号 → ("link", "resident_id") when `rules.resident_id_links`;
    - conflicting valid 身份证号s → never "link": ("review", "resident_id_conflict") when
      the score reaches the lower threshold, else ("separate", "resident_id_conflict");
    - two different MRNs of one facility → never "link" ("mrn_conflict"), same as above;
    - score ≥ upper without a corroborating field (phone, address to the village: see
      `rules.rules.corroboration`) → ("review", "uncorroborated");
    - otherwise score ≥ upper → link, ≥ lower → review, else separate ("probabilistic").
    """
    if comparison.same_resident_id and rules.rules.resident_id_links:
        return "link", "resident_id"
    upper, lower = rules.thresholds.upper, rules.thresholds.lower
    if comparison.resident_id_conflict and rules.rules.conflicting_resident_id_blocks:
        return ("review" if comparison.score >= lower else "separate"), "resident_id_conflict"
    if comparison.mrn_conflict and rules.rules.conflicting_mrn_blocks:
        return ("review" if comparison.score >= lower else "separate"), "mrn_conflict"
    if comparison.score >= upper and not comparison.corroborated:
        return "review", "uncorroborated"
    if comparison.score >= upper:
        return "link", "probabilistic"
    if comparison.score >= lower:
        return "review", "probabilistic"
    return "separate", "probabilistic"


def match_grade(comparison: Comparison, rules: MatchRules) -> str:
    """FHIR match-grade (http://hl7.org/fhir/StructureDefinition/match-grade):
    `certain` (same valid 身份证号), `probable` (≥ upper), `possible` (≥ lower), `certainly-not`.
    """
    decision, rule = decide(comparison, rules)
    if rule == "resident_id":
        return "certain"
    if decision == "link":
        return "probable"
    if decision == "review":
        return "possible"
    return "certainly-not"


def normalised_score(comparison: Comparison, rules: MatchRules) -> float:
    """Score mapped to 0..1 for `Bundle.entry.search.score` (FHIR R4B $match): 1 for a shared
    valid 身份证号, else a logistic curve centred between the thresholds."""
    if comparison.same_resident_id:
        return 1.0
    mid = (rules.thresholds.upper + rules.thresholds.lower) / 2
    span = max(rules.thresholds.upper - rules.thresholds.lower, 1.0) / 4
    return round(1 / (1 + math.exp(-(comparison.score - mid) / span)), 4)
