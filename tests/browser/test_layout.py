"""What a person sees when stored text is long: a 5,000-character title (with and
without spaces) is cut to a few lines on the board, the sessions list, a transcript and
search, and never widens the page past the window."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import agentkeep
from browser.conftest import screenshot

from helpers.server import RunningServer

LONG_WORD = "x" * 5000  # no break opportunity at all
LONG_WORDS = ("word " * 1000).strip()


def fits(page: Any) -> None:
    """Nothing is wider than the window (no sideways scrolling of the whole page)."""
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.evaluate("window.innerWidth"), width


def height(page: Any, selector: str) -> float:
    box = page.locator(selector).first.bounding_box()
    assert box is not None
    return float(box["height"])


def test_a_5000_character_title_does_not_break_the_layout(
    new_page: Any, server: RunningServer, project: Path
) -> None:
    with agentkeep.open(project) as store:
        word = store.add_task(LONG_WORD, labels=["long"]).item
        words = store.add_task(LONG_WORDS).item
        session = store.start_session(source="run", title=LONG_WORD, task_id=word.id).item
        store.start_session(source="run", title=LONG_WORDS)
    page = new_page()
    page.goto(server.url + "/")
    page.wait_for_selector("html[data-live='open']", state="attached")
    fits(page)
    for task in (word, words):
        assert page.locator(f"#task-{task.id} .title").text_content() == task.title  # all there
        assert height(page, f"#task-{task.id}") < 250  # cut to a few lines
    screenshot(page, "board-long-title")

    page.goto(server.url + "/sessions")
    fits(page)
    rows = page.locator("table.sessions tbody tr").all()
    assert len(rows) == 2  # both long-titled sessions are listed: the loop checks something
    for row in rows:
        box = row.bounding_box()
        assert box is not None and box["height"] < 120
    screenshot(page, "sessions-long-title")

    page.goto(f"{server.url}/sessions/{session.id}")
    fits(page)
    assert height(page, "h1") < 150

    page.goto(server.url + "/search?q=word")
    page.wait_for_selector("ol.hits li.hit")
    fits(page)
    screenshot(page, "search-long-title")
