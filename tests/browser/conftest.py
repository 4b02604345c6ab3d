"""Fixtures of the browser tests: one headless Debian Chromium for the browser tests (Playwright for
Python drives ``/usr/bin/chromium``; a browser download is never attempted), a real server
on the test's store, pages already holding the dashboard's token cookie, and screenshots
saved for a person to look at (``$AGENTKEEP_SCREENSHOTS``, default ``test-screenshots/``
at the repository root, ignored by git).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO, skip_or_fail
from helpers.server import RunningServer, running_server

CHROMIUM = Path("/usr/bin/chromium")
# The flags the machine's probe found necessary: without the background-networking ones
# Chromium floods the closed network with refused connections.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(os.environ.get("AGENTKEEP_SCREENSHOTS") or REPO / "test-screenshots")
TOKEN_COOKIE = "agentkeep_token"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="package")
def chromium() -> Iterator[Any]:
    # Package scope, not session: Playwright's sync API keeps an event loop running in the
    # main thread until it stops, and later tests that run asyncio (the MCP client) must
    # find none.
    if not CHROMIUM.exists():
        skip_or_fail("Debian's chromium is not installed (scripts/setup --dev installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def server(project: Path) -> Iterator[RunningServer]:
    """A real server on the test project's store."""
    with running_server(project / ".agentkeep") as running:
        yield running


@pytest.fixture
def new_page(chromium: Any, server: RunningServer) -> Iterator[Any]:
    """``new_page()`` -> a page in a fresh browser context that holds the dashboard's token
    cookie (as after the one-time ``/?token=`` bootstrap); each call is a separate tab of a
    separate profile, so two pages are two clients."""
    contexts: list[Any] = []

    def make() -> Any:
        context = chromium.new_context(viewport={"width": 1280, "height": 860})
        context.add_cookies(
            [
                {
                    "name": TOKEN_COOKIE,
                    "value": server.token,
                    "url": server.url,
                    "httpOnly": True,
                    "sameSite": "Strict",
                }
            ]
        )
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(20_000)  # a safety net on a loaded machine, not a budget
        return page

    yield make
    for context in contexts:
        context.close()


def screenshot(page: Any, name: str) -> Path:
    """Save a full-page screenshot as ``SCREENSHOTS/name.png`` and return its path."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
