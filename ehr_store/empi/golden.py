"""The golden Patient (resident record): best-known demographics from its source Patients.

Pure functions over Patient dicts. A golden Patient carries the tag
`EMPI_TAG_SYSTEM|golden`, every identifier of its sources — the resident's own (valid
身份证号s in canonical form, invalid ones left out) in `identifier`, the facility-assigned
ones (MRNs…) in `SOURCE_IDENTIFIER_EXT` extensions, so that `Patient?identifier=<MRN>` finds
exactly the source Patient of that MRN (INTERFACES.md) — `link.type = seealso` to each
source, and keeps `replaces` links from earlier merges of resident records. Sources link
back with `link.type = refer` (INTERFACES.md data conventions).

May import: the standard library, `ehr_store.resident_id`, `ehr_store.empi.features`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from ehr_store.empi.features import resident_ids_of
from ehr_store.resident_id import RESIDENT_ID_SYSTEM, parse_resident_id

EMPI_TAG_SYSTEM = "http://qingyuan-hie.cn/fhir/CodeSystem/empi"
"""meta.tag system marking EMPI-made resources (code `golden`)."""

SOURCE_IDENTIFIER_EXT = "http://qingyuan-hie.cn/fhir/StructureDefinition/source-identifier"
"""Golden Patient extension (valueIdentifier, repeating): an identifier a facility assigned
to one of the resident's source Patients (not searchable as `Patient.identifier`)."""

GOLDEN_TAG = {"system": EMPI_TAG_SYSTEM, "code": "golden", "display": "resident record (golden Patient)"}

Json = dict[str, Any]


def is_golden(patient: Json) -> bool:
    """True when the Patient is an EMPI golden record (by its meta.tag)."""
    tags = patient.get("meta", {}).get("tag", [])
    return any(t.get("system") == EMPI_TAG_SYSTEM and t.get("code") == "golden" for t in tags)


def link_targets(patient: Json, link_type: str) -> list[str]:
    """Ids of Patients referenced by `Patient.link` entries of `link_type` (`Patient/<id>` only)."""
    ids: list[str] = []
    for link in patient.get("link", []):
        ref = str(link.get("other", {}).get("reference", ""))
        if link.get("type") == link_type and ref.startswith("Patient/"):
            ids.append(ref.split("/", 1)[1].split("/_history", 1)[0])
    return ids


def with_link(patient: Json, link_type: str, target_id: str | None, *, replace_type: bool) -> Json:
    """Copy of `patient` with a `link` of `link_type` to `Patient/<target_id>`.

    `replace_type`: drop existing links of that type first; `target_id` None only drops.
    Other links stay as they were. The input is not modified.
    """
    links = [dict(link) for link in patient.get("link", [])]
    if replace_type:
        links = [link for link in links if link.get("type") != link_type]
    ref = f"Patient/{target_id}" if target_id else None
    if ref and not any(
        link.get("type") == link_type and link.get("other", {}).get("reference") == ref for link in links
    ):
        links.append({"other": {"reference": ref}, "type": link_type})
    result = {k: v for k, v in patient.items() if k != "link"}
    if links:
        result["link"] = links
    return result


def _most_common(values: Sequence[Any]) -> Any:
    """Most frequent value; ties go to the latest (values are ordered oldest first)."""
    if not values:
        return None
    counts = Counter(repr(v) for v in values)
    best = max(counts.values())
    return next(v for v in reversed(values) if counts[repr(v)] == best)


def _is_resident_id_type(ident: Json) -> bool:
    codings = ident.get("type", {}).get("coding", [])
    return any(coding.get("code") == "NNCHN" for coding in codings)


def _identifiers(sources: Sequence[Json]) -> list[Json]:
    seen: set[tuple[str, str]] = set()
    result: list[Json] = []
    for source in sources:
        valid, _ = resident_ids_of(source)
        for ident in source.get("identifier", []):
            system, value = str(ident.get("system", "")), str(ident.get("value", ""))
            if system != RESIDENT_ID_SYSTEM and _is_resident_id_type(ident):
                continue  # a 身份证号 flagged invalid by ingestion: never carried to the resident
            if system == RESIDENT_ID_SYSTEM:
                rid = parse_resident_id(value)
                if not rid.valid or rid.value not in valid:
                    continue
                ident = {**ident, "value": rid.value}
                value = rid.value
            if value and (system, value) not in seen:
                seen.add((system, value))
                result.append({k: v for k, v in ident.items() if k != "id"})
    return result


_NAME_PARTS = ("use", "text", "family", "_family", "given", "_given")


def compose_golden(golden_id: str, sources: Sequence[Json], *, replaces: Sequence[str] = ()) -> Json:
    """The golden Patient for `sources` (oldest first). Best-known values:
    name/address/gender/birthDate = most frequent among sources (ties: latest); a valid
    身份证号 overrides birthDate and gender with what the number encodes (GB 11643);
    telecom = union (latest first); identifiers = union.
    """
    golden: Json = {"resourceType": "Patient", "id": golden_id, "meta": {"tag": [GOLDEN_TAG]}}
    golden["active"] = bool(sources)
    idents = _identifiers(sources)
    own = [i for i in idents if i.get("system") == RESIDENT_ID_SYSTEM]
    if own:
        golden["identifier"] = own
    assigned = [{"url": SOURCE_IDENTIFIER_EXT, "valueIdentifier": i} for i in idents if i not in own]
    if assigned:
        golden["extension"] = assigned
    names = [s["name"][0] for s in sources if s.get("name")]
    best_name = _most_common(
        # with their `_family`/`_given` extensions: a null in `given` stands for the extension
        # at its position (FHIR R4B JSON §2.6.2.3) and is invalid without it
        [{k: v for k, v in n.items() if k in _NAME_PARTS} for n in names]
    )
    if best_name:
        golden["name"] = [best_name]
    phones: list[Json] = []
    for source in reversed(sources):
        for telecom in source.get("telecom", []):
            entry = {k: v for k, v in telecom.items() if k in ("system", "value", "_value", "use")}
            if entry and entry not in phones:
                phones.append(entry)
    if phones:
        golden["telecom"] = phones
    gender = _most_common([s["gender"] for s in sources if s.get("gender")])
    birth = _most_common([s["birthDate"] for s in sources if s.get("birthDate")])
    rids = [rid for s in sources for rid in resident_ids_of(s)[0]]
    if rids:
        parsed = parse_resident_id(_most_common(rids))
        gender = parsed.sex
        birth = parsed.birth_date.isoformat() if parsed.birth_date else birth
    if gender:
        golden["gender"] = gender
    if birth:
        golden["birthDate"] = birth
    addresses = [s["address"][0] for s in sources if s.get("address")]
    address = _most_common([{k: v for k, v in a.items() if k != "id"} for a in addresses])
    if address:
        golden["address"] = [address]
    links = [{"other": {"reference": f"Patient/{sid}"}, "type": "seealso"} for sid in _ids(sources)]
    links += [{"other": {"reference": f"Patient/{gid}"}, "type": "replaces"} for gid in replaces]
    if links:
        golden["link"] = links
    return golden


def _ids(sources: Sequence[Json]) -> list[str]:
    return [str(s["id"]) for s in sources if s.get("id")]
