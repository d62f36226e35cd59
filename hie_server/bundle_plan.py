"""Parse and resolve batch/transaction Bundle entries before anything is written.

Set-based: every conditional criterion (`ifNoneExist`, conditional PUT/DELETE URLs,
conditional references like `Patient?identifier=x`) is searched once, deduplicated, and
every `fullUrl` gets its `Type/id` up front; then references are rewritten in one pass
(FHIR R4B http §3.1.0.11.2 transaction processing rules, §3.1.0.11.3 ids and references).

May import: `ehr_store`, `hie_server.context`, `hie_server.interactions`.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from ehr_store import InvalidInput, PreconditionFailed, ResourceRepository, StoredResource, json_loads
from hie_server.context import check_id, check_type, parse_version
from hie_server.interactions import find_matches

Json = dict[str, Any]
Criteria = tuple[tuple[str, str], ...]
METHOD_ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "PATCH": 2, "GET": 3, "HEAD": 3}


@dataclass
class Entry:
    """One Bundle.entry request, parsed. `target_id` is filled in by `resolve`."""

    index: int
    method: str
    resource_type: str
    id: str | None = None
    version: int | None = None
    query: Criteria | None = None
    full_url: str | None = None
    resource: Json | None = None
    if_none_exist: Criteria | None = None
    if_match: int | None = None
    target_id: str | None = None
    existing: StoredResource | None = None
    skip: bool = False


@dataclass
class Plan:
    """Entries in processing order with every id and reference resolved."""

    entries: list[Entry]
    ids: dict[str, str] = field(default_factory=dict)


def _criteria(query: str) -> Criteria:
    return tuple((k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k)


_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def _split_url(url: str, base: str) -> tuple[list[str], Criteria | None]:
    if url.startswith(base + "/"):
        url = url[len(base) + 1 :]
    path, sep, query = url.lstrip("/").partition("?")
    parts = [p for p in path.split("/") if p]
    return parts, (_criteria(query) if sep else None)


def _patch_document(resource: Json | None, where: str) -> Json:
    """A PATCH entry's JSON Patch, carried as a Binary (FHIR R4B http §3.1.0.7)."""
    if not resource or resource.get("resourceType") != "Binary":
        raise InvalidInput(f"{where}: a PATCH entry carries a Binary holding a JSON Patch")
    if resource.get("contentType") != "application/json-patch+json":
        raise InvalidInput(f"{where}: only application/json-patch+json patches are supported")
    try:
        return {"operations": json_loads(base64.b64decode(str(resource.get("data", "")), validate=True))}
    except (binascii.Error, ValueError):
        raise InvalidInput(f"{where}: Binary.data is not base64") from None


def parse_entry(index: int, raw: Any, base: str) -> Entry:
    """Parse `Bundle.entry[index]`. Raises: InvalidInput, NotFound (unknown type)."""
    where = f"Bundle.entry[{index}]"
    request = raw.get("request") if isinstance(raw, dict) else None
    if not isinstance(request, dict) or not isinstance(request.get("url"), str):
        raise InvalidInput(
            f"{where}: request.method and request.url are required", expression=(f"{where}.request",)
        )
    method = str(request.get("method", "")).upper()
    if method not in METHOD_ORDER:
        raise InvalidInput(
            f"{where}: request.method {method!r} is not supported", expression=(f"{where}.request.method",)
        )
    parts, query = _split_url(request["url"], base)
    if not parts or len(parts) not in (1, 2, 4) or (len(parts) == 4 and parts[2] != "_history"):
        raise InvalidInput(f"{where}: request.url {request['url']!r} is not Type, Type/id or Type?criteria")
    full_url = raw.get("fullUrl")
    if isinstance(full_url, str) and full_url.startswith("urn:uuid:") and not _UUID.match(full_url[9:]):
        raise InvalidInput(
            f"{where}: fullUrl {full_url[:60]!r} is not a urn:uuid with a UUID (RFC 4122)",
            expression=(f"{where}.fullUrl",),
        )
    entry = Entry(index, method, check_type(parts[0]), query=query, full_url=full_url)
    if len(parts) >= 2:
        entry.id = check_id(parts[1])
    if len(parts) == 4:
        entry.version = parse_version(parts[3], "version id")
    resource = raw.get("resource")
    entry.resource = resource if isinstance(resource, dict) else None
    if request.get("ifNoneExist"):
        entry.if_none_exist = _criteria(str(request["ifNoneExist"]))
    if request.get("ifMatch"):
        entry.if_match = parse_version(str(request["ifMatch"]), "ifMatch")
    _check_shape(entry, where)
    return entry


def check_unique_full_urls(entries: list[Entry]) -> None:
    """bdl-7: a fullUrl names one entry of a Bundle (FHIR R4B Bundle invariants).

    Raises: InvalidInput naming the second entry with a repeated fullUrl.
    """
    seen: dict[str, int] = {}
    for entry in entries:
        if entry.full_url is None:
            continue
        if entry.full_url in seen:
            where = f"Bundle.entry[{entry.index}]"
            first = seen[entry.full_url]
            raise InvalidInput(
                f"{where}: fullUrl {entry.full_url[:60]!r} is already used by Bundle.entry[{first}] (bdl-7)",
                expression=(f"{where}.fullUrl",),
            )
        seen[entry.full_url] = entry.index


def _check_shape(entry: Entry, where: str) -> None:
    m = entry.method
    if m in ("POST", "PUT") and (
        entry.resource is None or entry.resource.get("resourceType") != entry.resource_type
    ):
        raise InvalidInput(
            f"{where}: {m} needs a {entry.resource_type} resource", expression=(f"{where}.resource",)
        )
    if m == "POST" and (entry.id or entry.query):
        raise InvalidInput(f"{where}: POST goes to the type URL; use ifNoneExist for conditional create")
    if m in ("PUT", "DELETE") and not entry.id and not entry.query:
        raise InvalidInput(f"{where}: {m} needs Type/id or Type?criteria")
    if m == "PATCH":
        if not entry.id:
            raise InvalidInput(f"{where}: PATCH needs Type/id")
        entry.resource = _patch_document(entry.resource, where)


def _conditional_reference(value: str) -> tuple[str, Criteria] | None:
    """`Patient?identifier=x` -> ("Patient", criteria); None for literal references."""
    path, sep, query = value.partition("?")
    if not sep or "/" in path or not path[:1].isupper():
        return None
    return path, _criteria(query)


def _rewrite(node: Any, replace: Callable[[str | None, str], str], key: str | None = None) -> Any:
    if isinstance(node, dict):
        return {k: _rewrite(v, replace, k) for k, v in node.items()}
    if isinstance(node, list):
        return [_rewrite(v, replace, key) for v in node]
    if isinstance(node, str):
        return replace(key, node)
    return node


class Resolver:
    """Runs each distinct conditional search once (strict) and remembers the matches."""

    def __init__(self, repo: ResourceRepository) -> None:
        self.repo = repo
        self.cache: dict[tuple[str, Criteria], list[StoredResource]] = {}

    def matches(self, resource_type: str, criteria: Criteria) -> list[StoredResource]:
        key = (resource_type, criteria)
        if key not in self.cache:
            self.cache[key] = find_matches(self.repo, resource_type, list(criteria))
        return self.cache[key]

    def one_or_none(self, resource_type: str, criteria: Criteria, where: str) -> StoredResource | None:
        found = self.matches(resource_type, criteria)
        if len(found) > 1:
            raise PreconditionFailed(f"{where}: criteria match more than one {resource_type}")
        return found[0] if found else None


def _assign(entry: Entry, resolver: Resolver) -> None:
    """Fill `target_id` (and `existing`/`skip`) for one entry from its URL and criteria."""
    where = f"Bundle.entry[{entry.index}]"
    rtype = entry.resource_type
    if entry.method == "POST":
        found = resolver.one_or_none(rtype, entry.if_none_exist, where) if entry.if_none_exist else None
        entry.existing, entry.skip = found, found is not None
        entry.target_id = found.id if found else str(uuid.uuid4())
    elif entry.method in ("PUT", "DELETE") and entry.query is not None:
        found = resolver.one_or_none(rtype, entry.query, where)
        body_id = (entry.resource or {}).get("id") if entry.method == "PUT" else None
        if found and body_id not in (None, found.id):
            raise InvalidInput(f"{where}: body id differs from the resource matched by the criteria")
        entry.target_id = found.id if found else (str(body_id) if body_id else None)
        if entry.target_id is None:
            entry.target_id = str(uuid.uuid4()) if entry.method == "PUT" else None
            entry.skip = entry.method == "DELETE"
    else:
        entry.target_id = entry.id


def resolve(entries: list[Entry], repo: ResourceRepository) -> Plan:
    """Resolve ids, conditional criteria and references of all entries; order them
    DELETE, POST, PUT/PATCH, GET. Raises: InvalidInput (same resource written twice),
    PreconditionFailed (criteria or a conditional reference not matching exactly one).
    """
    resolver = Resolver(repo)
    plan = Plan(sorted(entries, key=lambda e: (METHOD_ORDER[e.method], e.index)))
    written: set[str] = set()
    for entry in plan.entries:
        _assign(entry, resolver)
        if entry.method in ("POST", "PUT", "PATCH", "DELETE") and entry.target_id and not entry.skip:
            ref = f"{entry.resource_type}/{entry.target_id}"
            if ref in written:
                raise InvalidInput(f"Bundle.entry[{entry.index}]: {ref} is the target of more than one entry")
            written.add(ref)
        if entry.full_url and entry.target_id and entry.method in ("POST", "PUT"):
            plan.ids[entry.full_url] = f"{entry.resource_type}/{entry.target_id}"
    for entry in plan.entries:
        if entry.method in ("POST", "PUT") and entry.resource is not None:
            entry.resource = _rewrite_references(entry, plan, resolver)
    return plan


def _rewrite_references(entry: Entry, plan: Plan, resolver: Resolver) -> Json:
    where = f"Bundle.entry[{entry.index}]"

    def replace(key: str | None, value: str) -> str:
        if value in plan.ids:
            return plan.ids[value]
        if key == "reference" and (cond := _conditional_reference(value)) is not None:
            found = resolver.one_or_none(cond[0], cond[1], where)
            if found is None:
                raise PreconditionFailed(f"{where}: conditional reference {value} matches no resource")
            return found.reference
        if key == "reference" and value.startswith("urn:uuid:"):
            raise InvalidInput(f"{where}: reference {value} names no entry's fullUrl")
        return value

    resource: Json = _rewrite(entry.resource, replace)
    return resource
