"""Search for the in-memory store: index entries kept per resource, queries evaluated in
Python with the same semantics as the SQL executor (FHIR R4B search §3.1.1).

`MemoryIndex` is fed by the memory store on every write (`index`/`put`/`remove`) and
searched over the store's current versions.

May import: the standard library, `ehr_store.{errors,model,settings}`, `ehr_store.search.*`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ehr_store.model import SearchResult, StoredResource
from ehr_store.search.code_sets import CodeSets
from ehr_store.search.entries import IndexEntries, fit_entry
from ehr_store.search.extract import extract_index
from ehr_store.search.memory_match import date_matches, entry_matches, sort_value
from ehr_store.search.parse import parse_search
from ehr_store.search.query import Chain, Criterion, DateValue, Filter, Has, SearchQuery
from ehr_store.search.registry import Registry, get_registry
from ehr_store.settings import StoreSettings

__all__ = ["MemoryIndex"]

Key = tuple[str, str]
_MAX_ITERATE = 3


class MemoryIndex:
    """Index entries of current resources by (resource_type, id), grouped by parameter."""

    def __init__(self, settings: StoreSettings | None = None, registry: Registry | None = None) -> None:
        self.settings = settings or StoreSettings()
        self.registry = registry or get_registry(self.settings.default_timezone)
        self._by_key: dict[Key, dict[str, list[Any]]] = {}
        self._memo: dict[tuple[Criterion, str], set[str]] = {}
        self._has_memo: dict[Has, set[Key]] = {}
        self.code_sets = CodeSets()  # resolver for :in/:not-in/:below/:above (code_sets.py)

    def put(self, resource_type: str, id: str, entries: IndexEntries) -> None:
        """Replace the entries of one resource."""
        grouped: dict[str, list[Any]] = {}
        for _, items in entries.kinds():
            for entry in items:
                grouped.setdefault(entry.param, []).append(fit_entry(entry))
        self._by_key[(resource_type, id)] = grouped

    def remove(self, resource_type: str, id: str) -> None:
        """Forget one resource's entries (deletion)."""
        self._by_key.pop((resource_type, id), None)

    def index(self, version: StoredResource, doc: dict[str, Any] | None) -> None:
        """Index a written version: extract from `doc`, or remove for a deletion (`doc` None)."""
        if version.deleted or doc is None:
            self.remove(version.resource_type, version.id)
        else:
            self.put(version.resource_type, version.id, extract_index(doc, self.registry))

    def search(
        self,
        current: Mapping[Key, StoredResource],
        resource_type: str | None,
        params: Sequence[tuple[str, str]],
        *,
        strict: bool = False,
    ) -> SearchResult:
        """Run a search over `current` (the store's current versions by key).

        Raises: InvalidInput (bad value; unknown parameter when `strict`).
        """
        query = parse_search(
            resource_type, params, self.registry, strict=strict, max_count=self.settings.max_page_size
        )
        return self.run(current, query)

    def count(
        self,
        current: Mapping[Key, StoredResource],
        resource_type: str | None,
        params: Sequence[tuple[str, str]],
    ) -> int:
        """Number of matches, ignoring paging. Raises: InvalidInput."""
        query = parse_search(resource_type, params, self.registry, max_count=self.settings.max_page_size)
        return len(self._matching(current, query))

    def run(self, current: Mapping[Key, StoredResource], query: SearchQuery) -> SearchResult:
        """Execute a parsed query."""
        found = self._matching(current, query)
        total = len(found) if query.total != "none" or query.count_only else None
        page = self.settings.default_page_size if query.count is None else query.count
        if query.count_only or page == 0:
            return SearchResult(matches=[], total=total, warnings=list(query.warnings))
        ordered = self._sorted(found, current, query)
        window = ordered[query.offset : query.offset + page]
        matches = [current[k] for k in window]
        included = self._includes(current, query, matches) if query.includes else []
        return SearchResult(
            matches=matches,
            included=included,
            total=total,
            has_more=len(ordered) > query.offset + page,
            warnings=list(query.warnings),
        )

    def _live(self, current: Mapping[Key, StoredResource], types: Iterable[str]) -> list[Key]:
        wanted = set(types)
        return [k for k, v in current.items() if k[0] in wanted and not v.deleted]

    def _matching(self, current: Mapping[Key, StoredResource], query: SearchQuery) -> list[Key]:
        self._memo = {}
        self._has_memo = {}
        query = self.code_sets.bind(query)
        keys = self._live(current, query.types)
        for criterion in query.criteria:
            keys = [k for k in keys if self._matches(current, criterion, k)]
        return keys

    def _ids(self, current: Mapping[Key, StoredResource], c: Criterion, rtype: str) -> set[str]:
        found = self._memo.get((c, rtype))
        if found is None:
            found = {k[1] for k in self._live(current, (rtype,)) if self._matches(current, c, k)}
            self._memo[(c, rtype)] = found
        return found

    def _matches(self, current: Mapping[Key, StoredResource], c: Criterion, key: Key) -> bool:
        entries = self._by_key.get(key, {})
        if isinstance(c, Chain):
            refs = entries.get(c.param.code, ())
            return any(
                any(r.target_type == t and r.target_id in self._ids(current, inner, t) for r in refs)
                for t, inner in c.targets
            )
        if isinstance(c, Has):
            return key in self._has_targets(current, c)
        return self._filter(current, c, key, entries)

    def _has_targets(self, current: Mapping[Key, StoredResource], c: Has) -> set[Key]:
        """(type, id) of everything that matching `c.source_type` resources refer to via `c.ref_param`."""
        found = self._has_memo.get(c)
        if found is None:
            found = {
                (r.target_type, r.target_id)
                for sid in self._ids(current, c.inner, c.source_type)
                for r in self._by_key.get((c.source_type, sid), {}).get(c.ref_param.code, ())
                if r.target_id is not None
            }
            self._has_memo[c] = found
        return found

    def _filter(
        self, current: Mapping[Key, StoredResource], f: Filter, key: Key, entries: dict[str, list[Any]]
    ) -> bool:
        if f.param.code == "_id":
            if f.modifier == "missing":
                return f.values[0] is False
            hit = any(getattr(v, "code", None) == key[1] for v in f.values)
            return not hit if f.modifier == "not" else hit
        if f.param.code == "_lastUpdated":
            lu = current[key].last_updated
            return any(date_matches(lu, lu, v) for v in f.values if isinstance(v, DateValue))
        items = entries.get(f.param.code, [])
        if f.modifier == "missing":
            return (not items) if f.values[0] is True else bool(items)
        hit = any(entry_matches(e, f.modifier, v) for e in items for v in f.values)
        return not hit if f.modifier in ("not", "not-in") else hit

    def _sorted(
        self, keys: list[Key], current: Mapping[Key, StoredResource], query: SearchQuery
    ) -> list[Key]:
        ordered = sorted(keys)
        for sk in reversed(query.sort):
            code = sk.param.code

            def value(k: Key, code: str = code, kind: str = sk.param.type, desc: bool = sk.descending) -> Any:
                if code == "_id":
                    return k[1]
                if code == "_lastUpdated":
                    return current[k].last_updated
                return sort_value(self._by_key.get(k, {}).get(code, []), kind, desc)

            present = [k for k in ordered if value(k) is not None]
            missing = [k for k in ordered if value(k) is None]
            ordered = sorted(present, key=value, reverse=sk.descending) + missing
        return ordered

    def _includes(
        self, current: Mapping[Key, StoredResource], query: SearchQuery, matches: list[StoredResource]
    ) -> list[StoredResource]:
        seen = {(m.resource_type, m.id) for m in matches}
        included: list[StoredResource] = []
        frontier: list[Key] = sorted(seen)
        for round_no in range(_MAX_ITERATE + 1):
            found: list[Key] = []
            for inc in query.includes:
                if round_no > 0 and not inc.iterate:
                    continue
                for key in self._include_keys(current, inc, frontier):
                    stored = current.get(key)
                    if key not in seen and stored is not None and not stored.deleted:
                        seen.add(key)
                        found.append(key)
            if not found:
                break
            included.extend(current[k] for k in sorted(found))
            frontier = found
        return included

    def _include_keys(
        self, current: Mapping[Key, StoredResource], inc: Any, frontier: list[Key]
    ) -> list[Key]:
        out: list[Key] = []
        if inc.reverse:
            targets = set(frontier)
            for key in self._live(current, (inc.source_type,)):
                for code, items in self._by_key.get(key, {}).items():
                    if inc.param not in (None, code):
                        continue
                    if any(
                        getattr(r, "target_id", None) and (r.target_type, r.target_id) in targets
                        for r in items
                    ):
                        out.append(key)
            return out
        for key in frontier:
            if inc.source_type not in (key[0], "*"):
                continue
            for code, items in self._by_key.get(key, {}).items():
                if inc.param not in (None, code):
                    continue
                out.extend(
                    (r.target_type, r.target_id)
                    for r in items
                    if getattr(r, "target_id", None)
                    and r.target_type
                    and inc.target_type in (None, r.target_type)
                    and hasattr(r, "identifier_value")
                )
        return out
