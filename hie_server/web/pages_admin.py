"""Administration pages (hie-admin): feeds (messages per facility per day, the error queue with
replay), the EMPI review queue (side-by-side, link or keep separate), unmapped local codes with a
form to map them, and the audit search — over the admin operations (`hie_server.web.admin_ops`)
and `AuditEvent` search, called with the user's token.

May import: starlette/fastapi, `hie_server.web.*`.
"""

from __future__ import annotations

import base64
from collections import defaultdict
from typing import Any

from fastapi import APIRouter
from starlette.responses import Response

from hie_server.web import fhirview as fv
from hie_server.web.api import ApiError, param
from hie_server.web.core import PREFIX, Page, Workbench

Json = dict[str, Any]


def parts(parameters: Json, name: str) -> list[Json]:
    """The `part`s of each parameter `name` as flat dicts (value[x] unwrapped)."""
    out = []
    for p in parameters.get("parameter", []):
        if p.get("name") != name:
            continue
        out.append(
            {
                q["name"]: next((v for k, v in q.items() if k.startswith("value")), None)
                for q in p.get("part", [])
            }
        )
    return out


def side_by_side(source: Json, candidate: Json, item: Json) -> list[tuple[str, str, str, str]]:
    """Rows (field, incoming, candidate, agreement level) for the review page."""
    rows = [
        ("name", fv.name_of, "level-given"),
        ("gender", lambda p: str(p.get("gender", "")), "level-sex"),
        ("birth_date", lambda p: str(p.get("birthDate", "")), "level-birth_date"),
        ("resident_id", fv.resident_id, "level-resident_id"),
        ("phone", fv.phone, "level-phone"),
        ("address", fv.address, "level-address"),
        ("registered_at", fv.facility_of, ""),
    ]
    levels = {
        **item,
        "level-given": "/".join(str(item[k]) for k in ("level-family", "level-given") if item.get(k)),
    }
    return [(label, get(source), get(candidate), str(levels.get(level) or "")) for label, get, level in rows]


async def _read(page: Page, reference: str) -> Json:
    try:
        return await page.api.get(reference)
    except ApiError:
        return {"id": reference}


def admin_routes(router: APIRouter, wb: Workbench) -> None:
    """`/admin/feeds`, `/admin/errors/{id}/replay`, `/admin/empi`, `/admin/terminology`, `/admin/audit`."""

    @wb.page
    async def feeds(page: Page) -> Response:
        days = int(page.request.query_params.get("days", "7"))
        stats = parts(await page.api.get("$feed-stats", {"days": days}), "day")
        dates = sorted({str(s["date"]) for s in stats}, reverse=True)
        table: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
        for s in stats:
            cell = table[str(s["facility"])][str(s["date"])]
            cell[0] += int(s["count"])
            if s["status"] in ("error", "rejected", "received"):
                cell[1] += int(s["count"])
        errors = parts(await page.api.get("$ingest-errors", {"_count": 50}), "message")
        return page.render(
            "admin_feeds.html",
            title=page.t("feeds"),
            dates=dates,
            table=dict(table),
            errors=errors,
            days=days,
        )

    @wb.page
    async def replay(page: Page, id: str) -> Response:
        result = await page.api.operation("$ingest-replay", param("message", int(id)))
        values = {
            p["name"]: next((v for k, v in p.items() if k.startswith("value")), None)
            for p in result.get("parameter", [])
        }
        kind = "ok" if values.get("status") == "processed" else "error"
        page.flash(
            kind,
            f"{page.t('replayed')} #{id}: {values.get('status')} {values.get('ackCode')} "
            f"{values.get('error') or ''}".strip(),
        )
        return page.redirect(f"{PREFIX}/admin/feeds")

    @wb.page
    async def empi(page: Page) -> Response:
        items = parts(await page.api.get("$empi-review", {"_count": 20}), "item")
        reviews = []
        for item in items:
            source, candidate = (
                await _read(page, str(item["source"])),
                await _read(page, str(item["candidate"])),
            )
            reviews.append({"item": item, "rows": side_by_side(source, candidate, item)})
        return page.render("admin_empi.html", title=page.t("empi_review"), reviews=reviews)

    @wb.page
    async def decide(page: Page, id: str) -> Response:
        form = await page.form()
        decision = str(form.get("decision", ""))
        await page.api.operation("$empi-review-decide", param("item", int(id)), param("decision", decision))
        page.flash("ok", f"{page.t('decided')} #{id}: {page.t(decision)}")
        return page.redirect(f"{PREFIX}/admin/empi")

    @wb.page
    async def terminology(page: Page) -> Response:
        sender = page.request.query_params.get("sender") or None
        codes = parts(await page.api.get("$unmapped-codes", {"sender": sender}), "code")
        return page.render(
            "admin_terminology.html", title=page.t("terminology"), codes=codes, sender=sender or ""
        )

    @wb.page
    async def map_code(page: Page) -> Response:
        f = await page.form()
        result = await page.api.operation(
            "$map-local-code",
            *[
                param(name, f.get(name, ""))
                for name in (
                    "sender",
                    "system",
                    "code",
                    "display",
                    "targetSystem",
                    "targetCode",
                    "targetDisplay",
                )
            ],
        )
        updated = next(
            (p.get("valueInteger") for p in result.get("parameter", []) if p["name"] == "updated"), 0
        )
        page.flash("ok", page.t("mapped_ok", n=updated))
        return page.redirect(f"{PREFIX}/admin/terminology")

    @wb.page
    async def audit(page: Page) -> Response:
        q = page.request.query_params
        keys = ("patient", "agent-name", "date", "outcome", "subtype", "policy")
        params = {k: q.get(k) for k in keys if q.get(k)}
        events = await page.api.search("AuditEvent", {**params, "_sort": "-date", "_count": 50})
        rows = []
        for e in events:
            agent = next((a for a in e.get("agent", []) if a.get("requestor")), (e.get("agent") or [{}])[0])
            query = next((x for x in e.get("entity", []) if x.get("query")), None)
            path = ""
            if query:
                try:
                    path = base64.b64decode(query["query"]).decode("utf-8", "replace")
                except ValueError:
                    path = ""
            patients = [
                str((x.get("what") or {}).get("reference", ""))
                for x in e.get("entity", [])
                if str((x.get("what") or {}).get("reference", "")).startswith("Patient/")
            ]
            rows.append(
                {
                    "recorded": fv.short(str(e.get("recorded", ""))),
                    "who": (agent.get("who") or {}).get("display") or agent.get("name") or "",
                    "action": e.get("action"),
                    "subtype": ", ".join(str(s.get("code")) for s in e.get("subtype", [])),
                    "outcome": e.get("outcome"),
                    "desc": e.get("outcomeDesc", ""),
                    "path": path[:160],
                    "patients": patients[:3],
                }
            )
        return page.render("admin_audit.html", title=page.t("audit_search"), rows=rows, q=q, keys=keys)

    router.add_route(f"{PREFIX}/admin/feeds", feeds, methods=["GET"])
    router.add_route(f"{PREFIX}/admin/errors/{{id:int}}/replay", replay, methods=["POST"])
    router.add_route(f"{PREFIX}/admin/empi", empi, methods=["GET"])
    router.add_route(f"{PREFIX}/admin/empi/{{id:int}}", decide, methods=["POST"])
    router.add_route(f"{PREFIX}/admin/terminology", terminology, methods=["GET"])
    router.add_route(f"{PREFIX}/admin/terminology", map_code, methods=["POST"])
    router.add_route(f"{PREFIX}/admin/audit", audit, methods=["GET"])
