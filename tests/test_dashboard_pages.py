"""The board and the sessions pages over a real server: status codes, what they show,
the dashboard.columns setting, and hostile stored text escaped (never markup)."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import agentkeep
from agentkeep.config import SETTINGS_BY_KEY
from agentkeep.server.pages import board, sessions
from agentkeep.services import tasks as task_service

from helpers.server import RunningServer, running_server

SCRIPT = "<script>window.pwned=1</script>"
IMG = "<img src=x onerror=window.pwned=2>"
JS_LINK = "[click me](javascript:window.pwned=3)"


@pytest.fixture
def server(project: Path) -> Iterator[RunningServer]:
    with running_server(project / ".agentkeep") as running:
        yield running


def get(server: RunningServer, path: str, **params: Any) -> httpx.Response:
    return httpx.get(server.url + path, params=params, timeout=30)


def hostile_session(store: agentkeep.Store) -> int:
    """A session whose transcript holds every payload: in a prompt, a response, a
    thinking block, a failing tool call's input and output, and a subagent."""
    with store.transaction() as tx:
        w = store.capture_writer(tx)
        sid = w.session("claude", "hostile-1", title=f"title {SCRIPT}")
        child = w.session("claude", "hostile-1:agent-x", parent_id=sid)
        seq = iter(range(1, 1000))

        def add(session: int, role: str, kind: str, text: str | None, **extra: Any) -> None:
            n = next(seq)
            w.message(session, seq=n, external_id=f"e{n}", role=role, kind=kind, text=text, **extra)

        add(sid, "user", "text", f"please {SCRIPT} and {IMG} and {JS_LINK} <https://ok.example/>")
        add(sid, "assistant", "thinking", f"thinking about {IMG}")
        add(sid, "assistant", "text", f"Sure. {SCRIPT}\n\n[fine](https://example.com/a)")
        add(
            sid,
            "assistant",
            "tool_use",
            json.dumps({"command": f"echo '{SCRIPT}'"}),
            tool_name="Bash",
            tool_use_id="t1",
        )
        add(sid, "user", "tool_result", f"boom {IMG}", tool_use_id="t1", is_error=True)
        add(
            sid,
            "assistant",
            "tool_use",
            json.dumps({"description": "look around", "prompt": "go"}),
            tool_name="Agent",
            tool_use_id="t2",
        )
        add(sid, "user", "tool_result", "agentId: agent-x done", tool_use_id="t2")
        add(child, "user", "text", f"child says {SCRIPT}")
    return sid


def test_board_shows_columns_cards_and_their_facts(
    project: Path, store: agentkeep.Store, server: RunningServer
) -> None:
    first = store.add_task("Write the parser", priority=1, labels=["parser", "p1"]).item
    second = store.add_task("Ship it", depends_on=[first.id]).item
    store.claim_task(first.id, "alice")
    (project / "wt-alice").mkdir()
    worktree = store.add_worktree(project / "wt-alice", branch="alice-parser").item
    store.lease_worktree(worktree.id, "alice")
    session = store.start_session(source="run", task_id=first.id).item
    store.add_note("handoff", "parser half done; tests next", task_id=first.id, author="alice")
    page = get(server, "/")
    assert page.status_code == 200
    assert "text/html" in page.headers["content-type"]
    body = page.text
    for name in ("Open", "In progress", "Blocked", "Done", "Cancelled"):
        assert f"<h2>{name} " in body
    card = _card(body, first.id)
    assert 'data-status="in_progress"' in card
    assert "Write the parser" in card and "P1" in card
    assert '<li class="label">parser</li>' in card
    assert "alice" in card and "alice-parser" in card
    assert f'href="/sessions/{session.id}"' in card
    assert "parser half done; tests next" in card
    assert f'href="#task-{first.id}"' in _card(body, second.id)
    assert "(in progress)" in _card(body, second.id)  # what it waits for, and how far
    assert 'class="claim"' in _card(body, second.id)  # open: it can be claimed
    fragment = get(server, f"/board/cards/{first.id}")
    assert fragment.status_code == 200
    assert fragment.text.lstrip().startswith("<article") and "<html" not in fragment.text
    assert 'data-shown="1"' in fragment.text
    assert get(server, "/board/cards/999999").status_code == 404


def _card(body: str, task_id: int) -> str:
    match = re.search(rf'<article class="card[^"]*" id="task-{task_id}".*?</article>', body, re.S)
    assert match, f"no card for task {task_id}"
    return match.group(0)


def test_columns_follow_the_setting(project: Path, server: RunningServer) -> None:
    with agentkeep.open(project) as store:
        kept = store.add_task("in progress").item
        hidden = store.add_task("cancelled one").item
        store.claim_task(kept.id, "bob")
        store.update_task(hidden.id, status="cancelled")
    (project / ".agentkeep" / "config.toml").write_text(
        '[dashboard]\ncolumns = "in_progress=Doing,open=To do"\n'
    )
    body = get(server, "/").text
    assert body.index("<h2>Doing ") < body.index("<h2>To do ")
    assert "<h2>Done " not in body
    assert f'id="task-{kept.id}"' in body and f'id="task-{hidden.id}"' not in body
    assert 'data-shown="0"' in get(server, f"/board/cards/{hidden.id}").text


def test_the_columns_setting_is_checked() -> None:
    parse = SETTINGS_BY_KEY["dashboard.columns"].parse
    assert parse(SETTINGS_BY_KEY["dashboard.columns"].default)
    for bad in ("open", "open=", "nope=X", "open=A,open=B", ""):
        with pytest.raises(ValueError):
            parse(bad)
    # The setting's statuses are the tasks' (config.py keeps its own copy).
    default = SETTINGS_BY_KEY["dashboard.columns"].default
    assert [s for s, _ in board.columns(default)] == list(task_service.STATUSES)


def test_hostile_task_text_is_escaped_on_the_board(
    store: agentkeep.Store, server: RunningServer
) -> None:
    task = store.add_task(f"title {SCRIPT}", labels=[IMG]).item
    store.claim_task(task.id, f"agent{IMG}")
    store.add_note("handoff", f"note {SCRIPT} {JS_LINK}", task_id=task.id)
    for path in ("/", f"/board/cards/{task.id}"):
        body = get(server, path).text
        assert "<script>window" not in body and "<img src=x" not in body
        assert html.escape(SCRIPT, quote=False) in body
        assert "javascript:" not in body.replace(html.escape(JS_LINK, quote=False), "")


def test_sessions_list_filters_and_search(store: agentkeep.Store, server: RunningServer) -> None:
    sid = hostile_session(store)
    other = store.start_session(source="run", title="a plain run").item
    listing = get(server, "/sessions")
    assert listing.status_code == 200
    assert (
        f'href="/sessions/{sid}"' in listing.text and f'href="/sessions/{other.id}"' in listing.text
    )
    only_run = get(server, "/sessions", source="run").text
    assert f'href="/sessions/{other.id}"' in only_run and f'href="/sessions/{sid}"' not in only_run
    found = get(server, "/sessions", q="child says")
    assert found.status_code == 200
    assert "<mark>child</mark>" in found.text and "<mark>says</mark>" in found.text
    assert "<script>window" not in found.text
    assert get(server, "/sessions", since="not a time").status_code == 400
    assert get(server, "/sessions", agent="nobody").status_code == 404
    assert get(server, "/sessions", status="sleeping").status_code == 400


@pytest.mark.parametrize("agent", ["\u00b2", "\uff11", "9" * 5000, str(2**63)])
def test_sessions_agent_filter_refuses_odd_digits(server: RunningServer, agent: str) -> None:
    """``str.isdigit`` takes a superscript two, a fullwidth one or a 5,000-digit number;
    each is a 400 with the page, not a 500."""
    answer = get(server, "/sessions", agent=agent)
    assert answer.status_code == 400
    assert "whole number" in answer.text


def test_a_search_holding_nul_is_refused(server: RunningServer) -> None:
    """SQLite ends a MATCH string at U+0000 ("unterminated string"): refused, not a 500 —
    the Search view says why on its page (as for a too-short prefix), /sessions is a 400."""
    searched = get(server, "/search", q="ab\x00cd")
    assert searched.status_code == 200 and "NUL" in searched.text
    listed = get(server, "/sessions", q="ab\x00cd")
    assert listed.status_code == 400 and "NUL" in listed.text
    api = get(server, "/api/v1/search", q="ab\x00cd")
    assert api.status_code == 400 and api.json()["code"] == "invalid_input"


def test_transcript_folds_tools_nests_subagents_and_escapes(
    store: agentkeep.Store, server: RunningServer
) -> None:
    sid = hostile_session(store)
    page = get(server, f"/sessions/{sid}")
    assert page.status_code == 200
    body = page.text
    assert '<details class="entry tool failed">' in body  # the failing Bash call, folded
    assert '<details class="entry thinking">' in body
    assert '<details class="subagent">' in body and "child says" in body
    assert '<a href="https://example.com/a" rel="noopener noreferrer nofollow">fine</a>' in body
    assert "<script>window" not in body and "<img src=x" not in body
    assert 'href="javascript:' not in body
    assert "resumable" in body and "tool calls" in body
    assert get(server, "/sessions/999999").status_code == 404
    assert get(server, "/sessions/999999/raw").status_code == 404


def test_markdown_keeps_only_http_links() -> None:
    rendered = sessions.markdown(
        "[a](javascript:alert(1)) [b](data:text/html,x) [c](https://ok.example/) ![i](https://x/i.png)"
    )
    assert 'href="javascript' not in rendered and 'href="data' not in rendered
    assert 'href="https://ok.example/"' in rendered and "<img" not in rendered


def test_raw_view_holds_each_text_exactly(store: agentkeep.Store, server: RunningServer) -> None:
    text = "line\r\nCR\ronly\x01\x1b[31mred\x7f\x85\t<b>&amp;</b>\n\nend"
    with store.transaction() as tx:
        w = store.capture_writer(tx)
        sid = w.session("claude", "raw-1")
        w.message(sid, seq=1, external_id="e1", role="user", kind="text", text=text)
        w.message(sid, seq=2, external_id="e2", role="assistant", kind="text", text="\nleading")
    [stored, second] = store.transcript(sid).entries
    page = get(server, f"/sessions/{sid}/raw")
    assert page.status_code == 200
    assert "&#13;" in page.text and "<b>" not in page.text
    assert sessions.raw_text(stored.text) in page.text
    assert stored.text == text and second.text == "\nleading"


def test_vendored_files_match_their_record() -> None:
    import hashlib

    static = Path(sessions.__file__).parent.parent / "static"
    record = (static / "VENDORED.md").read_text()
    files = sorted((static / "vendor").iterdir())
    assert files
    for path in files:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        assert f"`vendor/{path.name}`" in record and digest in record, path.name


@pytest.mark.parametrize("policy", [None, "metadata"])
def test_every_kind_of_transcript_renders(
    store: agentkeep.Store, server: RunningServer, policy: str | None
) -> None:
    """An imported session (compaction, unknown lines, two subagents — one without a known
    call) and a session only hooks saw, full and metadata-only."""
    from test_transcripts import claude_session, hook_session

    parent, child = claude_session(store, policy=policy)
    hooked = hook_session(store, policy=policy)
    page = get(server, f"/sessions/{parent}").text
    assert page.count('<details class="subagent">') == 2  # one nested, one listed at the end
    assert '<details class="entry tool failed">' in page
    assert "compaction summary" in page or policy == "metadata"
    hooks = get(server, f"/sessions/{hooked}")
    assert hooks.status_code == 200
    assert "read from hook captures" in hooks.text
    assert '<details class="entry tool failed">' in hooks.text
    for sid in (parent, child, hooked):
        assert get(server, f"/sessions/{sid}/raw").status_code == 200
    if policy == "metadata":
        assert "captured as metadata only" in page and "(text not captured)" in page
