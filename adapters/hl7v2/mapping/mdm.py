"""MDM^T02 (and T01/T04/T06/T08/T10 with content) → DocumentReference (HL7 v2-to-FHIR IG
TXA → DocumentReference; OBX-5 TX/FT/ED → content attachment).

May import: the standard library, `adapters.hl7v2.*`, `adapters.hl7v2.mapping.*`.
"""

from __future__ import annotations

import base64
from typing import Any

from adapters.hl7v2 import datatypes as dt
from adapters.hl7v2.mapping.common import encounter, organization, patient, practitioner
from adapters.hl7v2.mapping.context import Mapped, MappingContext

Json = dict[str, Any]
_DOC_STATUS = {
    "AU": "final",
    "LA": "final",
    "DO": "final",
    "IP": "preliminary",
    "IN": "preliminary",
    "PA": "preliminary",
    "CA": "entered-in-error",
    "OB": "amended",
}


def map_mdm(ctx: MappingContext) -> Mapped:
    """MDM → Patient, Encounter, DocumentReference. Raises: Hl7ContentError 100/101/102."""
    out = Mapped()
    pid = ctx.segment("PID")
    assert pid is not None
    pat_id = patient(ctx, pid, out)
    enc_id = encounter(ctx, ctx.message.first("PV1"), f"Patient/{pat_id}", out)
    txa = ctx.segment("TXA")
    assert txa is not None
    number = txa.get(12) or txa.get(16) or txa.get(13)
    if not number:
        ctx.require(txa, 12, "unique document number")
    res: Json = {
        "resourceType": "DocumentReference",
        "id": dt.fhir_id(ctx.facility, "doc", number),
        "meta": ctx.meta(),
        "status": "entered-in-error" if txa.get(17) == "CA" else "current",
        "masterIdentifier": {"system": f"urn:qyhie:facility:{ctx.facility}:document", "value": number},
        "subject": {"reference": f"Patient/{pat_id}"},
        "custodian": {"reference": organization(ctx, out)},
    }
    doc_status = _DOC_STATUS.get(txa.get(17))
    if doc_status:
        res["docStatus"] = doc_status
    doc_type = ctx.concept(txa, 2, "document-type")
    if doc_type:
        res["type"] = doc_type
    when = ctx.instant(txa, 4) or ctx.instant(txa, 6)
    if when:
        res["date"] = when
    authors = [a for a in (practitioner(ctx, x, out) for x in ctx.all_components(txa, 9)) if a]
    if authors:
        res["author"] = authors
    if enc_id:
        res["context"] = {"encounter": [{"reference": f"Encounter/{enc_id}"}]}
    res["content"] = [{"attachment": a} for a in _attachments(ctx, txa.get(3))]
    out.add(res)
    return out


def _attachments(ctx: MappingContext, content_type: str) -> list[Json]:
    texts: list[str] = []
    found: list[Json] = []
    for obx in ctx.message.all("OBX"):
        vtype = obx.get(2).upper()
        if vtype == "ED":
            subtype, encoding, data = obx.get(5, 3), obx.get(5, 4), obx.get(5, 5)
            mime = {
                "PDF": "application/pdf",
                "JPEG": "image/jpeg",
                "PNG": "image/png",
                "HTML": "text/html",
                "RTF": "application/rtf",
            }.get(subtype.upper(), "application/octet-stream")
            if encoding.upper() == "BASE64":
                found.append({"contentType": mime, "data": data})
            else:
                found.append({"contentType": mime, "data": base64.b64encode(data.encode()).decode()})
        elif vtype in ("TX", "FT", "ST", "CE", "CWE"):
            reps = obx.values(5)
            texts.append("\n".join(reps))
    if texts:
        body = "\n".join(texts).encode("utf-8")
        mime = "text/html" if content_type.upper() == "HTML" else "text/plain"
        found.insert(
            0,
            {
                "contentType": f"{mime}; charset=utf-8",
                "language": "zh-CN",
                "data": base64.b64encode(body).decode(),
                "size": len(body),
            },
        )
    if not found:
        found.append({"contentType": "text/plain", "title": "no content sent"})
    return found
