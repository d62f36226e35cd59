"""Notifications: a Communication per state change, delivered to webhooks (rest-hook) after commit.

`communication(event, text, ...)` builds the FHIR Communication recorded in the same unit of
work as the state change (who was told what, when). After the commit, `Dispatcher.dispatch`
POSTs each Communication (FHIR JSON) to the configured `webhook_url` and to the endpoint of
every active `Subscription` (FHIR R4B §2.46 Subscription, channel `rest-hook`) whose
`criteria` is `Communication` or `Communication?name=value&…` matching on `category`,
`recipient`, `subject`, `based-on` (one value or comma-separated alternatives). Delivery
runs on a small thread pool with `webhook_retries` attempts and exponential backoff; a
delivery that keeps failing is logged (warning) and counted in `Dispatcher.failed`.

May import: the standard library, httpx, `ehr_store`, `telemedicine.*`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import parse_qsl

import httpx

from ehr_store import Store, json_dumps
from telemedicine.fhir import EVENT_SYSTEM, Json, instant, load, now_utc
from telemedicine.settings import TelemedicineSettings

log = logging.getLogger("telemedicine.notify")
FHIR_JSON = "application/fhir+json"


def communication(
    event: str,
    text: str,
    *,
    subject: str | None,
    about: Sequence[str],
    recipients: Iterable[str],
    sender: str | None = None,
) -> Json:
    """A completed Communication (FHIR R4B §8.5) for one state change `event` (code in
    `EVENT_SYSTEM`, e.g. `appointment-booked`), with `text` as payload."""
    doc: Json = {
        "resourceType": "Communication",
        "status": "completed",
        "category": [{"coding": [{"system": EVENT_SYSTEM, "code": event}]}],
        "sent": instant(now_utc()),
        "payload": [{"contentString": text}],
    }
    if subject:
        doc["subject"] = {"reference": subject}
    if about:
        doc["basedOn"] = [{"reference": r} for r in about]
    people = sorted({r for r in recipients if r})
    if people:
        doc["recipient"] = [{"reference": r} for r in people]
    if sender:
        doc["sender"] = {"reference": sender}
    return doc


def _refs(doc: Json, element: str) -> set[str]:
    value = doc.get(element)
    items = value if isinstance(value, list) else [value] if isinstance(value, dict) else []
    return {str(i.get("reference", "")) for i in items if isinstance(i, dict)}


def criteria_match(criteria: str, doc: Json) -> bool:
    """Whether a Communication matches a Subscription `criteria` (see module docstring)."""
    rtype, _, query = criteria.strip().partition("?")
    if rtype != "Communication":
        return False
    for name, value in parse_qsl(query, keep_blank_values=True):
        wanted = {v for v in value.split(",") if v}
        if name == "category":
            codes = {c.get("code") for cat in doc.get("category", []) for c in cat.get("coding", [])}
            codes |= {f"{EVENT_SYSTEM}|{c}" for c in codes}
            ok = bool(codes & wanted)
        elif name in ("recipient", "subject", "based-on"):
            ok = bool(_refs(doc, {"based-on": "basedOn"}.get(name, name)) & wanted)
        else:
            return False  # an unsupported parameter never matches (nothing sent by mistake)
        if not ok:
            return False
    return True


@dataclass(frozen=True)
class Target:
    """One place to deliver to."""

    url: str
    headers: tuple[tuple[str, str], ...] = ()
    with_payload: bool = True


class Dispatcher:
    """After-commit delivery of Communications (module docstring). `close()` waits for pending
    deliveries; `wait_idle(timeout)` is for tests and the CLI."""

    def __init__(self, settings: TelemedicineSettings, store: Store | None = None) -> None:
        self.settings = settings
        self.store = store
        self.delivered = 0
        self.failed = 0
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="tm-webhook")
        self._pending: set[Future[None]] = set()
        self._lock = threading.Lock()

    def targets(self, doc: Json) -> list[Target]:
        """The configured webhook and the matching active rest-hook Subscriptions."""
        out = [Target(self.settings.webhook_url)] if self.settings.webhook_url else []
        if self.store is None:
            return out
        with self.store.unit_of_work() as uow:
            found = uow.resources.search("Subscription", [("status", "active"), ("_count", "1000")])
        for stored in found.matches:
            sub = load(stored)
            channel = sub.get("channel") or {}
            if channel.get("type") != "rest-hook" or not channel.get("endpoint"):
                continue
            if not criteria_match(str(sub.get("criteria", "")), doc):
                continue
            headers = tuple(
                (k.strip(), v.strip())
                for h in channel.get("header", [])
                for k, _, v in [str(h).partition(":")]
            )
            out.append(Target(str(channel["endpoint"]), headers, bool(channel.get("payload"))))
        return out

    def dispatch(self, communications: Iterable[Json]) -> None:
        """Queue delivery of committed Communications (returns at once)."""
        for doc in communications:
            future = self._pool.submit(self._deliver_all, doc)
            with self._lock:
                self._pending.add(future)
            future.add_done_callback(self._done)

    def _done(self, future: Future[None]) -> None:
        with self._lock:
            self._pending.discard(future)

    def _deliver_all(self, doc: Json) -> None:
        try:
            targets = self.targets(doc)
        except Exception:
            log.exception("cannot list webhook targets")
            return
        for target in targets:
            self._deliver(target, doc)

    def _deliver(self, target: Target, doc: Json) -> None:
        body = json_dumps(doc) if target.with_payload else b""
        headers = {"Content-Type": FHIR_JSON, **dict(target.headers)}
        delay = self.settings.webhook_backoff_seconds
        for attempt in range(1, self.settings.webhook_retries + 1):
            try:
                response = httpx.post(
                    target.url, content=body, headers=headers, timeout=self.settings.webhook_timeout_seconds
                )
                if response.status_code < 300:
                    with self._lock:
                        self.delivered += 1
                    return
                problem = f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                problem = type(exc).__name__
            if attempt < self.settings.webhook_retries:
                time.sleep(delay)
                delay *= 2
        with self._lock:
            self.failed += 1
        log.warning(
            "webhook delivery to %s failed after %d attempts (%s)",
            target.url,
            self.settings.webhook_retries,
            problem,
        )

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Wait until no delivery is pending; True when idle within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if not self._pending:
                    return True
            time.sleep(0.02)
        return False

    def close(self) -> None:
        """Finish pending deliveries and stop the pool."""
        self._pool.shutdown(wait=True)
