"""Server-side sessions of the workbench: the browser holds only an opaque random cookie;
tokens, the signed-in user and the CSRF token live here, in memory of the server process
(a restart signs everyone out, as the break-glass windows are per process too).

May import: the standard library, `hie_server.auth` (Principal), `hie_server.web.oidc`.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field

from hie_server.auth import Principal
from hie_server.web.oidc import PkceStart, Tokens

COOKIE = "hie_wb"
PENDING_SECONDS = 600


@dataclass
class Session:
    """One signed-in browser. `tokens` None: the loopback local operator (no identity provider)."""

    id: str
    principal: Principal
    tokens: Tokens | None
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    last_seen: float = field(default_factory=time.monotonic)
    flash: list[tuple[str, str]] = field(default_factory=list)


class SessionStore:
    """Sessions by cookie value, idle-expiring after `idle_seconds`; pending sign-ins by `state`."""

    def __init__(self, idle_seconds: float) -> None:
        self.idle = idle_seconds
        self._sessions: dict[str, Session] = {}
        self._pending: dict[str, tuple[float, PkceStart]] = {}
        self._lock = threading.Lock()

    def create(self, principal: Principal, tokens: Tokens | None) -> Session:
        """A new session with a fresh 256-bit id (never reuses the pre-login cookie: no fixation)."""
        session = Session(secrets.token_urlsafe(32), principal, tokens)
        with self._lock:
            self._expire()
            self._sessions[session.id] = session
        return session

    def get(self, session_id: str | None) -> Session | None:
        """The live session for a cookie value (touching it), or None."""
        if not session_id:
            return None
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                return None
            now = time.monotonic()
            if now - session.last_seen > self.idle:
                del self._sessions[session_id]
                return None
            session.last_seen = now
            return session

    def drop(self, session_id: str) -> Session | None:
        """Remove a session (logout); returns it."""
        with self._lock:
            return self._sessions.pop(session_id, None)

    def remember(self, pending: PkceStart) -> None:
        """Keep a started sign-in until its callback (at most `PENDING_SECONDS`)."""
        with self._lock:
            self._expire()
            self._pending[pending.state] = (time.monotonic(), pending)

    def take(self, state: str) -> PkceStart | None:
        """The pending sign-in of `state`, once (a replayed callback finds nothing)."""
        with self._lock:
            found = self._pending.pop(state, None)
        if found is None or time.monotonic() - found[0] > PENDING_SECONDS:
            return None
        return found[1]

    def _expire(self) -> None:
        now = time.monotonic()
        for key in [k for k, s in self._sessions.items() if now - s.last_seen > self.idle]:
            del self._sessions[key]
        for key in [k for k, (t, _) in self._pending.items() if now - t > PENDING_SECONDS]:
            del self._pending[key]
