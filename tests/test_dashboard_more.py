"""The dashboard's Live, Activity, Search, Usage, Stats and Worktrees & agents views,
over HTTP against a real server: each renders seeded data, and stored hostile text
(``<script>``, ``onerror``, ``javascript:``) comes back escaped, never as markup."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from agentkeep.server.pages.search import highlighted

from helpers.server import RunningServer, running_server
from helpers.views_seed import JS_URL, ONERROR, SCRIPT, Seeded, seed

VIEWS = ("/live", "/activity", "/search?q=zebra", "/usage", "/stats", "/fleet")


@pytest.fixture
def seeded(project: Path) -> Seeded:
    return seed(project / ".agentkeep")


@pytest.fixture
def server(project: Path, seeded: Seeded) -> RunningServer:
    with running_server(project / ".agentkeep") as running:
        yield running  # type: ignore[misc]


def get(server: RunningServer, path: str) -> httpx.Response:
    return httpx.get(server.url + path, timeout=30)


def assert_inert(html: str) -> None:
    """No hostile markup survived: the payloads are there only as escaped text."""
    assert "<script>window.__pwned" not in html
    assert "<img src=x" not in html
    assert not re.search(r"<[^>]+\sonerror\s*=", html, re.I)
    assert not re.search(r"""href\s*=\s*["']?\s*javascript:""", html, re.I)
    # Every <script> element on the page is one of ours: a file from /static, or a JSON
    # data block.
    for tag in re.findall(r"<script\b[^>]*>", html):
        assert (
            re.search(r'src="[^"]*/static/[\w./-]+\.js"', tag) or 'type="application/json"' in tag
        ), tag


@pytest.mark.parametrize("path", VIEWS)
def test_each_view_renders_and_keeps_stored_text_inert(server: RunningServer, path: str) -> None:
    response = get(server, path)
    assert response.status_code == 200, response.text[:500]
    assert response.headers["content-type"].startswith("text/html")
    assert_inert(response.text)


def test_live_lists_running_sessions_with_their_latest_output(
    server: RunningServer, seeded: Seeded
) -> None:
    html = get(server, "/live").text
    assert f'id="session-{seeded.running}"' in html
    assert f'data-follow="/api/v1/sessions/{seeded.running}/follow' in html
    assert f'id="session-{seeded.ended}"' not in html  # ended: not live
    assert "first line &lt;script&gt;window.__pwned" in html
    assert 'data-stream="stdout" data-line="2"' in html


def test_activity_shows_the_day_grouped_by_hour_with_links(
    server: RunningServer, seeded: Seeded
) -> None:
    today = datetime.now(UTC).date()
    html = get(server, "/activity").text
    assert f'value="{today.isoformat()}"' in html
    assert f'href="/api/v1/tasks/{seeded.task}"' in html
    assert f'href="/sessions/{seeded.running}"' in html
    assert "deploy.done" in html
    assert re.search(r"<h2>\d\d:00</h2>", html)
    assert f"/activity?day={(today - timedelta(days=1)).isoformat()}" in html
    # Yesterday had nothing; its page says so and offers today as the next day.
    before = get(server, f"/activity?day={(today - timedelta(days=1)).isoformat()}").text
    assert "Nothing happened on" in before and f"/activity?day={today.isoformat()}" in before
    for day in ("yesterday", "9999-12-31", "0001-01-01"):
        bad = get(server, f"/activity?day={day}")
        assert bad.status_code == 400 and bad.json()["code"] == "invalid_input"


def test_search_finds_every_kind_and_highlights_only_after_escaping(
    server: RunningServer, seeded: Seeded
) -> None:
    html = get(server, "/search?q=zebra").text
    kinds = set(re.findall(r'<li class="hit" data-kind="(\w+)"', html))
    assert {"task", "note"} <= kinds, kinds
    assert "<mark>zebra</mark>" in html
    assert f'href="/api/v1/notes/{seeded.note}"' in html
    only_tasks = get(server, "/search?q=zebra&kind=task").text
    assert set(re.findall(r'data-kind="(\w+)"', only_tasks)) == {"task"}
    # A query the index refuses is explained on the page, not a server error.
    refused = get(server, "/search?q=" + "z" * 5000)
    assert refused.status_code == 200 and 'class="problem"' in refused.text


def test_highlighted_escapes_before_marking() -> None:
    out = str(highlighted("a \x02<b>x</b>\x03 « not a mark » \x02"))
    assert out == "a <mark>&lt;b&gt;x&lt;/b&gt;</mark> « not a mark » "


def test_usage_shows_bytes_by_area_kind_day_and_session(
    server: RunningServer, seeded: Seeded
) -> None:
    html = get(server, "/usage").text
    assert 'id="total-bytes"' in html
    assert re.search(r"<td>log</td><td data-bytes=\"[1-9]\d*\"", html)
    assert re.search(r'<script type="application/json" id="days-data">\{"bytes": true', html)
    assert f'data-session="{seeded.ended}" data-pinned="false"' in html


def test_stats_charts_sessions_tokens_by_day_agent_and_model(
    server: RunningServer, seeded: Seeded
) -> None:
    html = get(server, "/stats").text
    today = datetime.now(UTC).date().isoformat()
    assert f"<td>{today}</td><td>2</td>" in html
    assert "<td>model-a</td><td>1540</td>" in html
    assert "<td>model-b</td><td>590</td>" in html
    assert 'id="counts-data"' in html and f'"x": ["{today}"]' in html
    assert "builder &lt;script&gt;" in html
    # since= means what `agentkeep stats --since` means: 7d is a week ago, not a string
    # compared with ISO dates; junk is a 400.
    week = get(server, "/stats?since=7d")
    assert week.status_code == 200 and f"<td>{today}</td><td>2</td>" in week.text
    assert f"<td>{today}</td>" not in get(server, "/stats?since=2999-01-01").text
    assert get(server, "/stats?since=zzz").status_code == 400


def test_fleet_shows_leases_owners_and_dead_agents(server: RunningServer, seeded: Seeded) -> None:
    html = get(server, "/fleet").text
    assert f'<tr id="worktree-{seeded.worktree}" class="active">' in html
    assert "builder &lt;script&gt;window.__pwned" in html  # the lease owner, escaped
    assert f'<a href="#agent-{seeded.agent}">' in html  # the worktree's agent
    assert f'<tr id="agent-{seeded.dead_agent}" class="dead">' in html
    assert "1 dead agent." in html


def test_the_payloads_are_really_in_the_store(server: RunningServer, seeded: Seeded) -> None:
    """The inertness checks above mean something only if the hostile text is stored as
    is (escaped on output, not dropped on input)."""
    store = server.ctx.store()
    assert SCRIPT in store.get_task(seeded.task).title
    assert (
        ONERROR in store.get_note(seeded.note).body and JS_URL in store.get_note(seeded.note).body
    )


def test_static_files_of_the_views_are_served(server: RunningServer) -> None:
    for name in (
        "charts.js",
        "usage.js",
        "activity.js",
        "live-tail.js",
        "vendor/uPlot.iife.min.js",
    ):
        response = get(server, f"/static/{name}")
        assert response.status_code == 200, name
        assert "javascript" in response.headers["content-type"], name
