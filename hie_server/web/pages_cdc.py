"""Disease-control pages (疾病监测): notifiable cases by county and ISO week with the epidemic
curve, overdue reports, the case extract to download (identified or de-identified as the API
decides from the user's roles) and the ILI share trend — all from the surveillance endpoints
(`$surveillance-counts`, `$surveillance-overdue`, `$surveillance-cases`, `$ili-share`) called with
the user's token. The curve is drawn here from the counts, with the page's language in its labels.

May import: starlette/fastapi, orjson, `hie_server.web.*`.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from datetime import date, timedelta
from functools import lru_cache
from typing import Any

import orjson
from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from hie_server.web.api import ApiError
from hie_server.web.charts import bars_svg, epicurve_svg
from hie_server.web.core import PREFIX, Page, Workbench

Json = dict[str, Any]


def period(page: Page) -> dict[str, str]:
    """`from`/`to` (default: the last 12 weeks), `county`, `disease` from the query string."""
    q = page.request.query_params
    end = q.get("to") or date.today().isoformat()
    start = q.get("from") or (date.fromisoformat(end) - timedelta(weeks=12)).isoformat()
    out = {"from": start, "to": end}
    for key in ("county", "disease"):
        if q.get(key):
            out[key] = q[key]
    return out


def pivot(rows: list[Json]) -> tuple[list[str], list[tuple[str, str, dict[str, int], int]]]:
    """Counts as a table: weeks as columns, one row per (county, disease), with totals."""
    weeks = sorted({str(r["week"]) for r in rows})
    cells: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
    for r in rows:
        key = (str(r["county"]), str(r.get("disease_name") or r.get("disease_code")))
        cells[key][str(r["week"])] = cells[key].get(str(r["week"]), 0) + int(r["cases"])
    table = [(county, disease, c, sum(c.values())) for (county, disease), c in sorted(cells.items())]
    return weeks, table


def ili_chart(rows: list[Json], title: str, ylabel: str) -> str | None:
    if not rows:
        return None
    weeks = sorted({str(r["week"]) for r in rows})
    series: dict[str, list[float]] = {}
    for county in sorted({str(r["county"]) for r in rows}):
        by_week = {str(r["week"]): float(r.get("ili_share") or 0) for r in rows if str(r["county"]) == county}
        series[county] = [by_week.get(w, 0.0) for w in weeks]
    return bars_svg(title, weeks, series, ylabel, percent=True)


def epidemic_curve(rows: list[Json], title: str, ylabel: str) -> str:
    """The epidemic curve (cases per ISO week stacked by disease) from `$surveillance-counts` rows."""
    weeks = sorted({str(r["week"]) for r in rows})
    series: dict[str, list[int]] = {}
    for r in rows:
        name = str(r.get("disease_name") or r.get("disease_code"))
        series.setdefault(name, [0] * len(weeks))[weeks.index(str(r["week"]))] += int(r["cases"])
    return epicurve_svg(title, weeks, series, ylabel)


@lru_cache(maxsize=32)
def _charts(counts: bytes, ili: bytes, labels: tuple[str, str, str]) -> tuple[str, str | None]:
    """The epidemic curve and the ILI chart of the endpoints' answers (SVG, ~0.15 s CPU with
    matplotlib at 12 weeks), kept for the last answers: a dashboard seen again unchanged (the
    endpoints' own results are cached until a write) is not drawn again."""
    curve = epidemic_curve(orjson.loads(counts), labels[0], labels[1])
    return curve, ili_chart(orjson.loads(ili), labels[2], "%")


async def _get(page: Page, path: str, params: dict[str, str]) -> bytes:
    return (await page.api.raw("GET", path, params=list(params.items()))).content


def cdc_routes(router: APIRouter, wb: Workbench) -> None:
    """`/cdc` (dashboard) and `/cdc/extract` (download)."""

    @wb.page
    async def dashboard(page: Page) -> Response:
        params = period(page)
        # the three reports run at once (each endpoint works in a thread of its own; at 1M
        # resources they take 0.2-0.6 s each, mostly inside the database)
        answers = await asyncio.gather(
            _get(page, "$surveillance-counts", params),
            _get(page, "$surveillance-overdue", {**params, "_format": "ndjson"}),
            _get(page, "$ili-share", {k: v for k, v in params.items() if k != "disease"}),
            return_exceptions=True,
        )
        for answer in answers:
            if isinstance(answer, ApiError) and answer.status in (404, 405):
                return page.render(
                    "error.html",
                    status=501,
                    title=page.t("disease_control"),
                    message=page.t("not_available", what="$surveillance-counts"),
                )
            if isinstance(answer, BaseException):
                raise answer
        counts_body, overdue_body, ili_body = (a for a in answers if isinstance(a, bytes))
        counts = orjson.loads(counts_body)
        labels = (page.t("epidemic_curve"), page.t("count"), page.t("ili_trend"))
        curve, chart = await run_in_threadpool(_charts, counts_body, ili_body, labels)
        overdue = [orjson.loads(line) for line in overdue_body.splitlines() if line]
        ili = orjson.loads(ili_body)
        weeks, table = pivot(counts)
        user = page.session.principal
        identified = user.is_admin or user.has("cdc-identified")
        return page.render(
            "cdc.html",
            title=page.t("disease_control"),
            params=params,
            weeks=weeks,
            table=table,
            curve=curve,
            overdue=overdue,
            ili=ili,
            ili_chart=chart,
            identified=identified,
        )

    @wb.page
    async def extract(page: Page) -> Response:
        params = period(page)
        answer = await page.api.raw(
            "GET", "$surveillance-cases", params=list({**params, "_format": "csv"}.items())
        )
        kind = "identified" if answer.headers.get("x-identified") == "true" else "deidentified"
        name = f"cases-{kind}-{params['from']}-{params['to']}.csv"
        return Response(
            answer.content,
            media_type="text/csv; charset=utf-8",
            headers={
                "Content-Disposition": f'attachment; filename="{name}"',
                "Cache-Control": "no-store",
                "X-Identified": "true" if kind == "identified" else "false",
            },
        )

    router.add_route(f"{PREFIX}/cdc", dashboard, methods=["GET"])
    router.add_route(f"{PREFIX}/cdc/extract", extract, methods=["GET"])
