"""Writing resident records (golden Patients) and the links of source Patients through the
repository of the caller's unit of work (never committing).

`refresh_golden` recomputes a golden Patient from its current sources (`compose_golden`) and
writes it only when it changed; `set_refer` points a source at its golden Patient.

May import: the standard library, `ehr_store` (jsonio, repository), `ehr_store.empi.{golden,index}`.
"""

from __future__ import annotations

from typing import Any

from ehr_store.empi.golden import compose_golden, link_targets, with_link
from ehr_store.empi.index import EmpiIndex
from ehr_store.jsonio import loads_resource
from ehr_store.repository import ResourceRepository

Json = dict[str, Any]


def refresh_golden(
    repo: ResourceRepository, index: EmpiIndex, golden_id: str, *, successor: str | None = None
) -> None:
    """Recompute a golden Patient from its current sources (no new version if unchanged).
    Left without sources, it is retired: `active=false`, `link replaced-by → successor`
    (which gets `link replaces → golden_id`). Cost: one index query, one read of the golden
    Patient and its sources together, at most one write.
    """
    sources = index.sources_of(golden_id)
    found = repo.read_many([("Patient", golden_id), *(("Patient", s) for s in sources)])
    docs = sorted(
        (loads_resource(found[("Patient", s)].content) for s in sources if ("Patient", s) in found),
        key=lambda d: (d.get("meta", {}).get("lastUpdated", ""), d.get("id", "")),
    )
    current = found.get(("Patient", golden_id))
    previous = loads_resource(current.content) if current is not None else {}
    golden = compose_golden(golden_id, docs, replaces=link_targets(previous, "replaces"))
    if not docs:
        keep_to = successor or next(iter(link_targets(previous, "replaced-by")), None)
        golden = with_link(golden, "replaced-by", keep_to, replace_type=True)
        if successor:
            succ = read_patient(repo, successor)
            update_if_changed(repo, successor, with_link(succ, "replaces", golden_id, replace_type=False))
    update_if_changed(repo, golden_id, golden, current=previous)


def set_refer(repo: ResourceRepository, source_id: str, golden_id: str, doc: Json) -> None:
    """Give the stored source Patient `doc` its one `link refer → golden_id` (a new version
    only when that changes it)."""
    update_if_changed(repo, source_id, with_link(doc, "refer", golden_id, replace_type=True), current=doc)


def update_if_changed(repo: ResourceRepository, id: str, doc: Json, *, current: Json | None = None) -> None:
    """Write Patient `doc` (its meta.versionId/lastUpdated dropped) unless it equals `current`."""
    if current is not None and _strip_meta(current) == _strip_meta(doc):
        return
    body = {k: v for k, v in doc.items() if k != "meta"}
    tags = doc.get("meta", {}).get("tag")
    meta = {k: v for k, v in doc.get("meta", {}).items() if k not in ("versionId", "lastUpdated")}
    if tags or meta:
        body["meta"] = meta
    repo.update("Patient", id, body)


def read_patient(repo: ResourceRepository, patient_id: str) -> Json:
    """The current Patient as a dict. Raises: NotFound, Gone."""
    return loads_resource(repo.read("Patient", patient_id).content)


def _strip_meta(doc: Json) -> Json:
    meta = {k: v for k, v in doc.get("meta", {}).items() if k not in ("versionId", "lastUpdated")}
    return {**{k: v for k, v in doc.items() if k != "meta"}, "meta": meta}
