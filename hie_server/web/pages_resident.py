"""Home, resident search and the resident summary (居民电子健康档案首页), for doctors (and admins).

Search: `Patient?identifier=urn:oid:2.16.156.10011.1.3|<身份证号>`, `Patient?phone=`,
`Patient?phonetic=` (pinyin) or `Patient?name=`; source Patients that link to a resident record
in the same answer are folded into it. Summary: `Patient/{id}/$everything` with the user's token
(the API filters what this user may see), grouped into the summary's sections; lab trends as SVG.

May import: starlette/fastapi, `hie_server.web.*`.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from hie_server.web import fhirview as fv
from hie_server.web.charts import trend_svg
from hie_server.web.core import PREFIX, Page, Workbench

Json = dict[str, Any]
RESIDENT_ID = re.compile(r"^\d{17}[\dXx]$")
PHONE = re.compile(r"^\+?[\d\- ]{7,15}$")
MAX_TRENDS = 6


def search_params(q: str) -> dict[str, str]:
    """The Patient search for what a person typed (身份证号, phone, pinyin or name)."""
    q = q.strip()
    if RESIDENT_ID.match(q):
        return {"identifier": f"{fv.RESIDENT_ID_SYSTEM}|{q.upper()}"}
    if PHONE.match(q):
        return {"phone": re.sub(r"[\s\-]", "", q)}
    if q.isascii():
        return {"phonetic": q.lower().replace(" ", "")}
    return {"name": q}


def fold(patients: list[Json]) -> list[Json]:
    """Resident records first; a source Patient whose resident record is also listed is hidden."""
    ids = {p["id"] for p in patients}
    shown = []
    for p in patients:
        linked = [fv.ref_id(link.get("other")) for link in p.get("link", []) if link.get("type") == "refer"]
        if any(g in ids for g in linked):
            continue
        shown.append(p)
    return sorted(shown, key=lambda p: (not fv.is_golden(p), fv.name_of(p)))


def summary_sections(resources: list[Json], patient_id: str) -> dict[str, Any]:
    """Group a resident's `$everything` resources into the summary's sections."""
    by_type: dict[str, list[Json]] = defaultdict(list)
    for r in resources:
        by_type[str(r.get("resourceType"))].append(r)
    patients = by_type.get("Patient", [])
    main = next((p for p in patients if p.get("id") == patient_id), patients[0] if patients else {})
    sources = [p for p in patients if not fv.is_golden(p)]

    def newest(items: list[Json]) -> list[Json]:
        return sorted(items, key=fv.when, reverse=True)

    labs: dict[str, list[Json]] = defaultdict(list)
    for obs in by_type.get("Observation", []):
        if "valueQuantity" in obs or "valueString" in obs:
            labs[fv.code_key(obs.get("code"))].append(obs)
    lab_rows: list[dict[str, Any]] = []
    for key, items in labs.items():
        items = newest(items)
        lab_rows.append(
            {
                "key": key,
                "name": fv.code_text(items[0].get("code")),
                "latest": items[0],
                "count": len(items),
                "items": items,
            }
        )
    lab_rows.sort(key=lambda r: (-int(r["count"]), str(r["name"])))
    return {
        "patient": main,
        "sources": sources,
        "allergies": newest(by_type.get("AllergyIntolerance", [])),
        "problems": newest(by_type.get("Condition", [])),
        "visits": newest(by_type.get("Encounter", []))[:10],
        "labs": lab_rows,
        "immunisations": newest(by_type.get("Immunization", [])),
        "images": newest(by_type.get("ImagingStudy", [])),
        "reports": newest(by_type.get("DiagnosticReport", []))[:10],
        "appointments": newest(by_type.get("Appointment", []))[:10],
    }


def _trend(row: dict[str, Any]) -> str | None:
    points = []
    unit = ""
    low = high = None
    for obs in row["items"]:
        q = obs.get("valueQuantity") or {}
        at = fv.parse_when(fv.when(obs).replace(" ", "T"))
        if at is None or not isinstance(q.get("value"), int | float):
            continue
        points.append((at, float(q["value"])))
        unit = str(q.get("unit") or q.get("code") or unit)
        rr = (obs.get("referenceRange") or [{}])[0]
        low = (rr.get("low") or {}).get("value", low)
        high = (rr.get("high") or {}).get("value", high)
    if len(points) < 2:
        return None
    return trend_svg(row["name"], unit, sorted(points), low, high)


def resident_routes(router: APIRouter, wb: Workbench) -> None:
    """`/` (home), `/residents`, `/residents/{id}`."""

    @wb.page
    async def home(page: Page) -> Response:
        return page.render("home.html")

    @wb.page
    async def residents(page: Page) -> Response:
        q = page.request.query_params.get("q", "").strip()
        found: list[Json] | None = None
        if q:
            found = fold(await page.api.search("Patient", {**search_params(q), "_count": 30}))
        return page.render("residents.html", title=page.t("find_resident"), q=q, found=found, fv=fv)

    @wb.page
    async def summary(page: Page, id: str) -> Response:
        bundle = await page.api.get(f"Patient/{id}/$everything", {"_count": 1000})
        resources = [e["resource"] for e in bundle.get("entry", []) if isinstance(e.get("resource"), dict)]
        sections = summary_sections(resources, id)
        rows = [r for r in sections["labs"] if r["count"] >= 2][:MAX_TRENDS]
        charts = await run_in_threadpool(lambda: {r["key"]: _trend(r) for r in rows})
        return page.render(
            "summary.html", title=page.t("resident_summary"), pid=id, fv=fv, charts=charts, **sections
        )

    router.add_route(f"{PREFIX}/", home, methods=["GET"])
    router.add_route(f"{PREFIX}/residents", residents, methods=["GET"])
    router.add_route(f"{PREFIX}/residents/{{id}}", summary, methods=["GET"])
