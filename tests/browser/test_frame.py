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
    page.set_content("<p id=x>ok</p>")
    assert page.text_content("#x") == "ok"
    screenshot(page, "frame")
