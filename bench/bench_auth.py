"""Auth + audit overhead per request: p50/p95 of the same requests with and without the
authentication/access-rule/audit middleware, on SQLite (a temp file) through the ASGI app.

Usage: `python bench/bench_auth.py [N] [--backend sqlite|memory]`.
Tokens are RS256, signed with a key made here and served from a local JWKS endpoint over real
HTTP (fetched once; the hot path never fetches). Scenarios: `admin read` (verify + audit),
`doctor read` (verify + resident rules: Patient links, referrals, consents + audit),
`doctor search` (10 Observations with `_include`, filtered per entry + audit). Synthetic data.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "unit" / "hie_server" / "auth"))

from auth_world import observation, seed  # noqa: E402

from ehr_store import MemoryStore, SqlStore, Store, StoreSettings, upgrade_schema  # noqa: E402
from hie_server.app import create_app  # noqa: E402
from hie_server.auth import AuditSettings, AuthSettings  # noqa: E402
from hie_server.settings import HieSettings  # noqa: E402

DOCTOR = {"preferred_username": "doctor.ttwsy", "realm_access": {"roles": ["township-doctor"]}}
ADMIN = {"preferred_username": "admin", "realm_access": {"roles": ["hie-admin"]}, "facility": None}
SCENARIOS = {
    "admin read": (ADMIN, "/fhir/Patient/TTWSY-A", {}),
    "doctor read": (DOCTOR, "/fhir/Patient/TTWSY-A", {}),
    "doctor search": (
        DOCTOR,
        "/fhir/Observation",
        {"subject": "Patient/TTWSY-A", "_include": "Observation:subject"},
    ),
}


def open_store(backend: str, tmp: Path) -> Store:
    if backend == "memory":
        store: Store = MemoryStore(StoreSettings(database_url="memory://"))
    else:
        url = f"sqlite:///{tmp / 'bench.db'}"
        upgrade_schema(url)
        store = SqlStore(StoreSettings(database_url=url))
    seed(store)
    with store.unit_of_work(write=True) as uow:
        for i in range(8):
            uow.resources.update("Observation", f"obs-A-{i}", observation(f"obs-A-{i}", "TTWSY", "TTWSY-A"))
        uow.commit()
    return store


async def timings(app: Any, url: str, params: dict[str, str], headers: dict[str, str], n: int) -> list[float]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        for _ in range(20):  # warm-up (JWKS fetch, caches)
            assert (await client.get(url, params=params, headers=headers)).status_code == 200
        out = []
        for _ in range(n):
            t0 = time.perf_counter()
            r = await client.get(url, params=params, headers=headers)
            out.append((time.perf_counter() - t0) * 1000)
            assert r.status_code == 200
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("n", nargs="?", type=int, default=300)
    parser.add_argument("--backend", default="sqlite", choices=["sqlite", "memory"])
    args = parser.parse_args()
    from conftest import LocalIssuer  # the local JWKS issuer of the auth unit tests

    issuer, server = start_issuer(LocalIssuer)
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(args.backend, Path(tmp))
        plain = create_app(HieSettings(), store)
        guarded = create_app(
            HieSettings(auth=AuthSettings(issuer=issuer.issuer), audit=AuditSettings(enabled=True)), store
        )
        print(f"backend {args.backend}, {args.n} requests per scenario (ms per request, in-process ASGI)")
        for name, (claims, url, params) in SCENARIOS.items():
            token = issuer.token(**claims, exp=int(time.time()) + 3600)
            base = asyncio.run(timings(plain, url, params, {}, args.n))
            auth = asyncio.run(timings(guarded, url, params, {"Authorization": f"Bearer {token}"}, args.n))
            p50, p95 = statistics.median(auth) - statistics.median(base), _p95(auth) - _p95(base)
            print(
                f"{name:14s} without {statistics.median(base):6.2f}  with {statistics.median(auth):6.2f}  "
                f"overhead p50 {p50:5.2f}  p95 {p95:5.2f}"
            )
        guarded.state.audit_writer.close()
        print(f"audit events written: {guarded.state.audit_writer.written}")
        store.close()
    server.shutdown()


def _p95(values: list[float]) -> float:
    return sorted(values)[int(len(values) * 0.95)]


def start_issuer(cls: Any) -> tuple[Any, Any]:
    """A LocalIssuer served over HTTP on 127.0.0.1 (same handler as the unit tests' fixture)."""
    import conftest

    generator = conftest.local_issuer.__wrapped__()  # type: ignore[attr-defined]
    issuer = next(generator)
    return issuer, _Stopper(generator)


class _Stopper:
    def __init__(self, generator: Any) -> None:
        self.generator = generator

    def shutdown(self) -> None:
        for _ in self.generator:
            pass


if __name__ == "__main__":
    main()
