"""A local OpenID issuer for tests: RSA/EC keys made here, served over real HTTP.

`served_issuer()` serves `/.well-known/openid-configuration` and `/certs` on 127.0.0.1 from a
ThreadingHTTPServer; `issuer.rotate()` replaces the signing key; `issuer.token(**claims)` signs.
Used by the `local_issuer` fixture (tests/unit/hie_server/auth/conftest.py) and the integration
tests that need tokens without Keycloak (import it with `tests/` on `sys.path`).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm


@dataclass
class LocalIssuer:
    url: str = ""
    keys: list[tuple[str, Any, str]] = field(default_factory=list)  # (kid, private key, alg)
    requests: list[str] = field(default_factory=list)

    @property
    def issuer(self) -> str:
        return f"{self.url}/realms/test"

    def add_key(self, alg: str = "RS256") -> str:
        kid = uuid.uuid4().hex[:12]
        key = (
            rsa.generate_private_key(public_exponent=65537, key_size=2048)
            if alg == "RS256"
            else ec.generate_private_key(ec.SECP256R1())
        )
        self.keys.insert(0, (kid, key, alg))
        return kid

    def rotate(self) -> str:
        kid = self.add_key()
        del self.keys[1:]
        return kid

    def jwks(self) -> dict[str, Any]:
        out = []
        for kid, key, alg in self.keys:
            algo = RSAAlgorithm if alg == "RS256" else ECAlgorithm
            jwk = json.loads(algo.to_jwk(key.public_key()))
            out.append({**jwk, "kid": kid, "alg": alg, "use": "sig"})
        return {"keys": out}

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        base = {
            "iss": self.issuer,
            "aud": "hie-api",
            "sub": "u-1",
            "azp": "hie-cli",
            "typ": "Bearer",
            "iat": now,
            "exp": now + 300,
            "preferred_username": "doctor.ttwsy",
            "realm_access": {"roles": ["township-doctor"]},
            "facility": "TTWSY",
            "county": "441821",
            "scope": "openid profile",
        }
        base.update(overrides)
        return {k: v for k, v in base.items() if v is not None}

    def token(self, kid: str | None = None, **overrides: Any) -> str:
        kid_, key, alg = next(k for k in self.keys if kid in (None, k[0]))
        return jwt.encode(self.claims(**overrides), key, algorithm=alg, headers={"kid": kid_})


@contextmanager
def served_issuer() -> Iterator[LocalIssuer]:
    """A LocalIssuer with one RS256 key, served until the block ends."""
    state = LocalIssuer()
    state.add_key()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.requests.append(self.path)
            if self.path.endswith("/.well-known/openid-configuration"):
                body = {
                    "issuer": state.issuer,
                    "jwks_uri": f"{state.issuer}/certs",
                    "token_endpoint": f"{state.issuer}/token",
                }
            elif self.path.endswith("/certs"):
                body = state.jwks()
            else:
                self.send_response(404)
                self.end_headers()
                return
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
