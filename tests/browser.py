"""A real headless Chromium for the workbench tests (fixture helper, no pytest import).

Debian's `chromium` (`/usr/bin/chromium`, or `HIE_CHROMIUM`) driven by Playwright for Python;
`playwright install` is never needed. Screenshots go to `test-artifacts/workbench/` (gitignored;
`HIE_TEST_ARTIFACTS` moves it).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, BrowserContext, Page, Playwright, expect

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(os.environ.get("HIE_TEST_ARTIFACTS", REPO / "test-artifacts")) / "workbench"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
PHONE = {"width": 360, "height": 740}
DESKTOP = {"width": 1280, "height": 860}


class ChromiumUnavailable(RuntimeError):
    """No Chromium binary (install Debian's `chromium`)."""


def chromium_path() -> str:
    """`HIE_CHROMIUM`, else /usr/bin/chromium, else `chromium` on PATH. Raises: ChromiumUnavailable."""
    for candidate in (os.environ.get("HIE_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium")):
        if candidate and Path(candidate).exists():
            return candidate
    raise ChromiumUnavailable("no chromium binary: apt-get install chromium (and fonts-noto-cjk)")


def launch(playwright: Playwright) -> Browser:
    """Headless Chromium with the flags CI needs (no sandbox as root, no GPU, no background traffic)."""
    return playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS, headless=True)


def new_context(browser: Browser, phone: bool = False, **kw: Any) -> BrowserContext:
    """A fresh browser profile (no cookies), desktop or 360-px phone sized, Chinese locale."""
    return browser.new_context(
        viewport=PHONE if phone else DESKTOP,
        locale="zh-CN",
        accept_downloads=True,
        is_mobile=phone,
        has_touch=phone,
        **kw,
    )


def sign_in(context: BrowserContext, base_url: str, username: str, password: str) -> Page:
    """Open the workbench, sign in on the Keycloak login page, return the page at the home screen."""
    page = context.new_page()
    page.goto(f"{base_url}/workbench/")
    try:
        page.locator("#username").wait_for(timeout=20_000)
    except Exception:
        shot(page, f"sign-in-failed-{username}")
        (ARTIFACTS / f"sign-in-failed-{username}.html").write_text(page.content(), encoding="utf-8")
        raise
    page.locator("#username").fill(username)
    page.locator("#password").fill(password)
    page.locator("#kc-login").click()
    page.wait_for_url(f"{base_url}/workbench/**")
    expect(page.locator(".who .user")).to_contain_text(username)
    return page


def shot(page: Page, name: str, full_page: bool = True) -> Path:
    """Save a screenshot `test-artifacts/workbench/<name>.png` and return its path."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


class keep_evidence:
    """`with keep_evidence(page, "name"):` — on an exception, save a screenshot and the HTML of
    the page as `failed-<name>` artefacts, then let the exception through."""

    def __init__(self, page: Page, name: str) -> None:
        self.page, self.name = page, name

    def __enter__(self) -> Page:
        return self.page

    def __exit__(self, kind: object, value: object, tb: object) -> None:
        if kind is not None:
            try:
                shot(self.page, f"failed-{self.name}")
                (ARTIFACTS / f"failed-{self.name}.html").write_text(self.page.content(), encoding="utf-8")
            except Exception:
                pass
