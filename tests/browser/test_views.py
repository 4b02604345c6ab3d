"""Live, Activity, Search, Usage & retention, Stats and Worktrees & agents in a real
Chromium: each view loads with seeded data (hostile text included), draws its chart or
table, fires no dialog, leaves no global a payload would set, and is saved as a
screenshot."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import agentkeep
from browser.conftest import screenshot

from helpers.server import RunningServer, running_server
from helpers.views_seed import ONERROR, SCRIPT, Seeded, seed


@pytest.fixture
def seeded(project: Path) -> Seeded:
    (project / ".agentkeep" / "config.toml").write_text("[retention.log]\nmax_total_bytes = 1\n")
    return seed(project / ".agentkeep")


@pytest.fixture
def server(project: Path, seeded: Seeded) -> Iterator[RunningServer]:
    """The browser conftest's server, started after the seeding."""
    with running_server(project / ".agentkeep") as running:
        yield running


class Watched:
    """A page with its dialogs and script errors recorded."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        page.on("dialog", self._dialog)
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        # A refused script, style or connection (the strict CSP) shows up on the console.
        page.on(
            "console",
            lambda message: (
                self.errors.append(message.text)
                if "Content Security Policy" in message.text
                else None
            ),
        )

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def inert(self) -> None:
        assert self.dialogs == []
        assert self.page.evaluate("typeof window.__pwned") == "undefined"
        assert self.errors == []


def open_view(new_page: Any, server: RunningServer, path: str) -> Watched:
    watched = Watched(new_page())
    response = watched.page.goto(server.url + path)
    assert response is not None and response.status == 200
    return watched


def test_stats_draws_its_charts(new_page: Any, server: RunningServer) -> None:
    view = open_view(new_page, server, "/stats")
    view.page.wait_for_selector("#chart-counts[data-rendered='1'] canvas")
    view.page.wait_for_selector("#chart-tokens[data-rendered='1'] canvas")
    assert view.page.locator("#models tbody tr").count() == 2
    assert "<script>" in view.page.text_content("#agents")  # shown as text
    view.inert()
    screenshot(view.page, "stats")


def test_usage_charts_and_gc_with_confirmation(
    new_page: Any, server: RunningServer, project: Path
) -> None:
    view = open_view(new_page, server, "/usage")
    page = view.page
    page.wait_for_selector("#chart-days[data-rendered='1'] canvas")
    assert page.locator("#kinds tbody tr").count() >= 1
    page.click("#gc-dry-run")
    page.wait_for_selector("#gc-plan:not([hidden])")
    assert "Would delete" in page.text_content("#gc-summary")
    assert page.locator("#gc-items tbody tr").count() >= 4
    assert page.is_disabled("#gc-apply")  # not before the confirmation
    screenshot(page, "usage")
    page.check("#gc-confirm")
    page.click("#gc-apply")
    page.wait_for_selector("#gc-result:not([hidden])")
    assert "Deleted" in page.text_content("#gc-result")
    with agentkeep.open(project) as store:
        assert store.list_artifacts(kind="log") == []
    view.inert()


def test_usage_pins_and_exports(new_page: Any, server: RunningServer, seeded: Seeded) -> None:
    view = open_view(new_page, server, "/usage")
    page = view.page
    pin = page.locator(f"button.pin[data-session='{seeded.ended}']")
    pin.click()
    page.wait_for_selector(f"button.pin[data-session='{seeded.ended}'][data-pinned='true']")
    assert server.ctx.store().get_session(seeded.ended).pinned
    page.click("#export")
    page.wait_for_selector("#export-download:not([hidden])")
    with page.expect_download() as download:
        page.click("#export-download")
    bundle = Path(download.value.path())
    assert bundle.stat().st_size > 0
    assert page.get_attribute("#progress", "data-status") == "done"
    # The bundle back in through the import form: everything in it is already here.
    page.set_input_files("#import-file", str(bundle))
    page.click("#import-form button")
    page.wait_for_selector("#progress-text:has-text('imported')")
    assert page.text_content("#progress-text") == "imported: unchanged"
    view.inert()


def test_search_highlights_matches_as_text(new_page: Any, server: RunningServer) -> None:
    view = open_view(new_page, server, "/search?q=zebra")
    page = view.page
    page.wait_for_selector("ol.hits li.hit")
    marks = page.locator("ol.hits mark")
    assert marks.count() >= 2 and marks.first.text_content().lower() == "zebra"
    assert page.locator("ol.hits img, ol.hits script").count() == 0
    assert "<script>" in page.text_content("ol.hits")
    view.inert()
    screenshot(page, "search")


def test_the_live_tail_survives_a_refused_reconnect(
    new_page: Any, server: RunningServer, seeded: Seeded
) -> None:
    """The log tail goes through live.js: a tail the server refuses (503, as while it
    starts) is opened again, and the lines written meanwhile arrive."""
    page = new_page()
    refused: list[str] = []

    def refuse_once(route: Any) -> None:
        if not refused:
            refused.append(route.request.url)
            route.fulfill(status=503, content_type="application/json", body="{}")
        else:
            route.continue_()

    page.route(f"**/sessions/{seeded.running}/follow*", refuse_once)
    response = page.goto(server.url + "/live")
    assert response is not None and response.status == 200
    section = f"#session-{seeded.running}"
    with agentkeep.open(server.ctx.store_dir) as store:
        writer = store.open_stream(seeded.running, "stderr")
        writer.write(b"after the refusal\n")
        writer.commit_progress()
    page.wait_for_selector(f"{section} pre.log span.line[data-stream='stderr']")
    assert len(refused) == 1  # the first tail was refused; the line came through another
    assert page.locator(f"{section} pre.log span.line").count() == 3  # no line twice
    page.wait_for_selector(f"{section} .live-state[data-state='following']")


def test_activity_timeline_and_day_picker(new_page: Any, server: RunningServer) -> None:
    view = open_view(new_page, server, "/activity")
    page = view.page
    assert page.locator("ol.timeline li.event").count() >= 10
    screenshot(page, "activity")
    with page.expect_navigation():
        page.click("a[rel=prev]")
    assert page.locator("p.empty").count() == 1
    view.inert()


def test_activity_of_today_adds_new_events_as_they_happen(
    new_page: Any, server: RunningServer, project: Path
) -> None:
    view = open_view(new_page, server, "/activity")
    page = view.page
    page.wait_for_selector("html[data-live='open']", state="attached")
    before = page.locator("ol.timeline li.event").count()
    with agentkeep.open(project) as store:
        task = store.add_task(f"later {SCRIPT}").item
        custom = store.record_event(
            "deploy.finished", entity=f"ship {ONERROR}", data={"note": SCRIPT}, actor=ONERROR
        ).item
    page.wait_for_selector(f"li.event[data-seq='{custom.seq}']")
    added = page.locator(f"li.event[data-seq='{custom.seq}']")
    assert added.locator(".kind").text_content() == "deploy.finished"
    assert ONERROR in (added.text_content() or "")  # shown as text
    created = page.locator("li.event:has(.kind:text-is('task.created')) a").last
    assert created.get_attribute("href") == f"/api/v1/tasks/{task.id}"
    assert page.locator("ol.timeline li.event").count() == before + 2
    assert page.locator("#event-count").text_content() == f"{before + 2} events"
    # In sequence order, the newest last.
    seqs = [
        int(s) for s in page.eval_on_selector_all("li.event", "all => all.map(e => e.dataset.seq)")
    ]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert page.locator("ol.timeline img").count() == 0
    view.inert()
    screenshot(page, "activity-live")


def test_fleet_marks_dead_agents_and_leases(
    new_page: Any, server: RunningServer, seeded: Seeded
) -> None:
    view = open_view(new_page, server, "/fleet")
    page = view.page
    assert page.locator(f"#agent-{seeded.dead_agent} .badge.bad").text_content() == "dead"
    assert "<script>" in page.text_content(f"#worktree-{seeded.worktree}")
    view.inert()
    screenshot(page, "fleet")


def test_live_shows_a_running_session_and_follows_its_output(
    new_page: Any, server: RunningServer, seeded: Seeded
) -> None:
    view = open_view(new_page, server, "/live")
    page = view.page
    section = f"#session-{seeded.running}"
    assert page.locator(f"{section} pre.log span.line").count() == 2
    # A line written after the page rendered arrives through the log tail.
    with agentkeep.open(server.ctx.store_dir) as store:
        writer = store.open_stream(seeded.running, "stderr")
        writer.write(b"third line <b>bold?</b>\n")
        writer.commit_progress()
    page.wait_for_selector(f"{section} pre.log span.line[data-stream='stderr']")
    assert page.text_content(f"{section} span.line[data-stream='stderr']") == (
        "third line <b>bold?</b>\n"
    )
    view.inert()
    screenshot(page, "live")
    # A session that starts now shows up on the page, its output with it.
    with agentkeep.open(server.ctx.store_dir) as store:
        fresh = store.start_session(title="fresh").item
        writer = store.open_stream(fresh.id, "stdout")
        writer.write(b"hello from the new one\n")
        writer.commit_progress()
    page.wait_for_selector(f"#session-{fresh.id} pre.log span.line")
    assert "hello from the new one" in page.text_content(f"#session-{fresh.id} pre.log")
    view.inert()
