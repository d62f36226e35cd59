"""The workbench served by a real `hie serve` (uvicorn + h11), without an identity provider:
what a user of the README's `make demo` gets at /workbench/. TestClient does not run the HTTP
protocol layer, so a header h11 refuses (e.g. a value ending in white space) only shows here.
"""

from __future__ import annotations

from pathlib import Path

import httpx
from e2e_harness import start_server


def test_workbench_pages_over_real_http(tmp_path: Path) -> None:
    server = start_server(tmp_path, {})
    try:
        origin = server.base.removesuffix("/fhir")
        with httpx.Client(follow_redirects=True, timeout=30) as client:
            page = client.get(f"{origin}/workbench/")
            assert page.status_code == 200, server.log_tail()
            assert "text/html" in page.headers["content-type"]
            csp = page.headers["content-security-policy"]
            assert csp == csp.strip() and "form-action 'self'" in csp
            assert "<html" in page.text.lower() and "居民" in page.text
        assert "LocalProtocolError" not in server.log_tail()
    finally:
        server.stop()
