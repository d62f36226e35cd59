"""Ranking resident records for one record's features (pure, no database).

`rank_candidates` turns the candidates a blocking lookup found into one `GoldenScore` per
resident record, best first; `EmpiService.rank` does the lookup.

May import: the standard library, `ehr_store.empi.{config,features,index,scoring}`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ehr_store.empi.config import MatchRules
from ehr_store.empi.features import Features
from ehr_store.empi.index import Candidate
from ehr_store.empi.scoring import Comparison, Decision, Rule, decide, score


@dataclass(frozen=True, slots=True)
class GoldenScore:
    """Best comparison of a record with one resident record (over its source Patients)."""

    golden_id: str
    comparison: Comparison
    decision: Decision
    rule: Rule
    best_source_id: str


def rank_candidates(
    features: Features, found: Iterable[Candidate], rules: MatchRules, *, exclude: str | None = None
) -> list[GoldenScore]:
    """One entry per resident record among `found` (source `exclude` left out), best first.

    Per golden: a shared valid 身份证号 wins, else the highest score among its sources; a
    resident one of whose sources conflicts (身份证号, or another MRN of the same facility)
    is at most reviewed.
    """
    best: dict[str, GoldenScore] = {}
    conflicted: set[str] = set()
    mrn_conflicted: set[str] = set()
    for cand in found:
        if cand.source_id == exclude:
            continue
        comparison = score(features, cand.features, rules)
        if comparison.resident_id_conflict:
            conflicted.add(cand.golden_id)
        if comparison.mrn_conflict and rules.rules.conflicting_mrn_blocks:
            mrn_conflicted.add(cand.golden_id)
        decision, rule = decide(comparison, rules)
        entry = GoldenScore(cand.golden_id, comparison, decision, rule, cand.source_id)
        prev = best.get(cand.golden_id)
        if prev is None or _better(entry, prev):
            best[cand.golden_id] = entry
    ranked: list[GoldenScore] = []
    for entry in best.values():
        blocked: Rule | None = (
            "resident_id_conflict"
            if entry.golden_id in conflicted
            else "mrn_conflict"
            if entry.golden_id in mrn_conflicted
            else None
        )  # one source of the resident conflicts: the whole resident is at most reviewed
        if blocked is not None and entry.rule != "resident_id":
            demoted: Decision = (
                "review" if entry.comparison.score >= rules.thresholds.lower else "separate"
            )
            entry = GoldenScore(entry.golden_id, entry.comparison, demoted, blocked, entry.best_source_id)
        ranked.append(entry)
    ranked.sort(key=lambda e: (e.rule != "resident_id", -e.comparison.score, e.golden_id))
    return ranked



def _better(a: GoldenScore, b: GoldenScore) -> bool:
    if (a.rule == "resident_id") != (b.rule == "resident_id"):
        return a.rule == "resident_id"
    return a.comparison.score > b.comparison.score
