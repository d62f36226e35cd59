"""Disease-control endpoints (root router under the FHIR base, so `_format=csv` and images are
not refused by FHIR JSON negotiation; the auth middleware guards them as `surveillance`):

- `GET [base]/$surveillance-cases?from=YYYY-MM-DD&to=…[&county=441802][&disease=B13|肺结核]
  [&_format=csv|ndjson][&shiftDates=true]` → case extract (CSV: UTF-8 with BOM).
- `GET [base]/$surveillance-overdue?…[&at=instant]` → cases not reported by their deadline.
- `GET [base]/$surveillance-counts?…[&_format=json|csv]` → counts by ISO week × county × disease.
- `GET [base]/$epidemic-curve?…[&_format=png|svg]` → the epidemic curve chart.
- `GET [base]/$ili-share?from=…&to=…[&county=]` → ILI share of outpatient visits per week/county.
- `GET [base]/$vaccination-coverage[?county=]` → coverage per county and vaccine.

Who sees what: hie-admin (and the local operator without an identity provider) everything,
identified; CDC staff their `county` claim (`4418` = the whole city; asking for another county
is refused), identified only with the `cdc-identified` role, else de-identified.

May import: fastapi/starlette, `ehr_store`, `hie_server.*`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from ehr_store import Forbidden, InvalidInput
from hie_server.auth.principal import CITY_COUNTY, IDENTIFIED_ROLE, Principal
from hie_server.bulk import parse_instant
from hie_server.capability import FhirOperation
from hie_server.operations.bulk import principal_of
from hie_server.surveillance import SurveillanceService

CSV = "text/csv; charset=utf-8"
NDJSON = "application/x-ndjson; charset=utf-8"
JSON = "application/json"
OPERATION_DEF = "http://qingyuan-hie.cn/fhir/OperationDefinition"
NAMES = (
    "surveillance-cases",
    "surveillance-overdue",
    "surveillance-counts",
    "epidemic-curve",
    "ili-share",
    "vaccination-coverage",
)
OPERATIONS = tuple(FhirOperation(name, f"{OPERATION_DEF}/{name}") for name in NAMES)
"""The system-level operations `build_router` serves, for the CapabilityStatement."""


def _date(value: str | None, name: str) -> date:
    if not value:
        raise InvalidInput(f"{name} (YYYY-MM-DD) is required", expression=(name,))
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"{name}={value!r} is not a date YYYY-MM-DD", expression=(name,)) from None


def scope(p: Principal, county: str | None) -> tuple[str | None, bool]:
    """(county filter, identified) for the caller. Raises: Forbidden (other county, no CDC role)."""
    if p.is_admin:
        return county, True
    if not p.has("cdc-staff") or not p.county:
        raise Forbidden("access refused by rule 'cdc-extract': surveillance extracts are for CDC staff")
    if p.county != CITY_COUNTY:
        if county and not county.startswith(p.county):
            raise Forbidden(f"access refused by rule 'cdc-county': county {county} is outside your county")
        county = county or p.county
    return county, p.has(IDENTIFIED_ROLE)


def table_csv(rows: Sequence[dict[str, Any]]) -> bytes:
    """A list of flat dicts as CSV with a UTF-8 BOM (header from the first row)."""
    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\r\n")
        writer.writeheader()
        writer.writerows(rows)
    return buffer.getvalue().encode("utf-8-sig")


def _table(rows: Sequence[dict[str, Any]], fmt: str) -> Response:
    if fmt == "csv":
        return Response(table_csv(rows), media_type=CSV)
    if fmt not in ("json", ""):
        raise InvalidInput("_format must be json or csv", expression=("_format",))
    return Response(orjson.dumps(list(rows)), media_type=JSON)


def build_router(service: SurveillanceService, base_path: str) -> APIRouter:
    """The routes above, mounted at `base_path` (e.g. `/fhir`)."""
    router = APIRouter()
    base = base_path.rstrip("/")

    def period(request: Request) -> tuple[date, date, str | None, bool, str | None]:
        q = request.query_params
        county, identified = scope(principal_of(request), q.get("county"))
        return _date(q.get("from"), "from"), _date(q.get("to"), "to"), county, identified, q.get("disease")

    @router.get(f"{base}/$surveillance-cases")
    async def cases(request: Request) -> Response:
        start, end, county, identified, disease = period(request)
        fmt = request.query_params.get("_format", "csv")
        if fmt not in ("csv", "ndjson"):
            raise InvalidInput("_format must be csv or ndjson", expression=("_format",))
        shift = request.query_params.get("shiftDates", "false") == "true"
        found = await run_in_threadpool(service.cases, start, end, county=county, disease=disease)
        body = service.extract(
            found, "csv" if fmt == "csv" else "ndjson", identified=identified, shift_dates=shift
        )
        return Response(
            body,
            media_type=CSV if fmt == "csv" else NDJSON,
            headers={"X-Identified": "true" if identified else "false"},
        )

    @router.get(f"{base}/$surveillance-overdue")
    async def overdue(request: Request) -> Response:
        start, end, county, identified, disease = period(request)
        at = request.query_params.get("at")
        now = parse_instant(at, "at") if at else datetime.now(UTC)
        found = await run_in_threadpool(service.cases, start, end, county=county, disease=disease)
        late = service.overdue(found, now)
        fmt = request.query_params.get("_format", "ndjson")
        body = service.extract(late, "csv" if fmt == "csv" else "ndjson", identified=identified, now=now)
        return Response(body, media_type=CSV if fmt == "csv" else NDJSON)

    @router.get(f"{base}/$surveillance-counts")
    async def counts(request: Request) -> Response:
        start, end, county, _, disease = period(request)
        found = await run_in_threadpool(service.cases, start, end, county=county, disease=disease)
        return _table(service.counts(found), request.query_params.get("_format", "json"))

    @router.get(f"{base}/$epidemic-curve")
    async def curve(request: Request) -> Response:
        start, end, county, _, disease = period(request)
        fmt = request.query_params.get("_format", "png")
        if fmt not in ("png", "svg"):
            raise InvalidInput("_format must be png or svg", expression=("_format",))
        found = await run_in_threadpool(service.cases, start, end, county=county, disease=disease)
        title = f"Notifiable cases {start}..{end}" + (f", county {county}" if county else "")
        image = await run_in_threadpool(service.curve, found, fmt, title)
        return Response(image, media_type="image/png" if fmt == "png" else "image/svg+xml")

    @router.get(f"{base}/$ili-share")
    async def ili(request: Request) -> Response:
        start, end, county, _, _ = period(request)
        rows = await run_in_threadpool(service.ili, start, end, county)
        return _table(rows, request.query_params.get("_format", "json"))

    @router.get(f"{base}/$vaccination-coverage")
    async def coverage(request: Request) -> Response:
        county, _ = scope(principal_of(request), request.query_params.get("county"))
        rows = await run_in_threadpool(service.coverage, county)
        return _table(rows, request.query_params.get("_format", "json"))

    return router
