"""The dashboard's frame loads in a real Chromium."""

from __future__ import annotations

from typing import Any

from browser.conftest import screenshot

from helpers.server import RunningServer


def test_the_stylesheet_is_served_and_a_page_renders(new_page: Any, server: RunningServer) -> None:
    page = new_page()
    response = page.goto(server.url + "/static/app.css")
    assert response is not None and response.status == 200
    assert "text/css" in response.headers["content-type"]
    # The dashboard itself, not a page the test wrote: the frame's navigation and the
    # board's heading, styled by that stylesheet.
    response = page.goto(server.url + "/")
    assert response is not None and response.status == 200
    nav = page.locator("nav.top")
    assert nav.locator(".brand").text_content() == "agentkeep"
    links = nav.locator("a")
    assert links.count() >= 2
    assert nav.locator('a[href="/"][aria-current="page"]').count() == 1
    assert nav.locator('a[href="/sessions"]').count() == 1
    assert page.locator("main h1").text_content() == "Board"
    assert page.evaluate("document.styleSheets.length") >= 1
    screenshot(page, "frame")
