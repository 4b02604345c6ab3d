"""The sessions views in a real Chromium: the list and its search, a transcript with its
tool calls folded, failures marked and a subagent nested, the direct-from-store view whose
text is the stored text exactly, and hostile transcript text inert."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import agentkeep
from browser.conftest import screenshot
from browser.test_board import IMG, JS_URL, SCRIPT, assert_inert, watch_dialogs

from helpers.server import RunningServer


def recorded_session(project: Path) -> tuple[int, int]:
    """A session with a prompt, thinking, a response, a failing tool call, a successful one,
    a subagent spawned by an Agent call, and every payload in the texts and tool output.
    Returns (session id, subagent session id)."""
    with agentkeep.open(project) as store, store.transaction() as tx:
        w = store.capture_writer(tx)
        sid = w.session("claude", "browser-1", title="Fix the login", model="claude-sonnet-5")
        child = w.session("claude", "browser-1:agent-sub1", parent_id=sid, title="explore")
        seq = iter(range(1, 1000))

        def add(session: int, role: str, kind: str, text: str | None, **extra: Any) -> None:
            n = next(seq)
            w.message(session, seq=n, external_id=f"e{n}", role=role, kind=kind, text=text, **extra)

        add(sid, "user", "text", f"Fix it. {SCRIPT} {IMG} [click]({JS_URL}) <{JS_URL}>")
        add(sid, "assistant", "thinking", f"Let me think {IMG}", message_key="m1")
        add(sid, "assistant", "text", "I'll **run the tests**.", message_key="m1")
        add(
            sid,
            "assistant",
            "tool_use",
            json.dumps({"command": f"pytest -q # {SCRIPT}"}),
            tool_name="Bash",
            tool_use_id="call-1",
            message_key="m1",
        )
        add(sid, "user", "tool_result", f"1 failed {IMG}", tool_use_id="call-1", is_error=True)
        add(
            sid,
            "assistant",
            "tool_use",
            json.dumps({"file_path": "src/login.py"}),
            tool_name="Read",
            tool_use_id="call-2",
            message_key="m2",
        )
        add(sid, "user", "tool_result", "def login(): ...", tool_use_id="call-2")
        add(
            sid,
            "assistant",
            "tool_use",
            json.dumps({"description": "explore", "prompt": "look around"}),
            tool_name="Agent",
            tool_use_id="call-3",
            message_key="m3",
        )
        add(sid, "user", "tool_result", "agentId: agent-sub1 finished", tool_use_id="call-3")
        add(child, "user", "text", f"subagent prompt {SCRIPT}")
        add(child, "assistant", "text", "subagent answer")
    return sid, child


def test_the_list_and_its_search(new_page: Any, server: RunningServer, project: Path) -> None:
    sid, child = recorded_session(project)
    page = new_page()
    dialogs = watch_dialogs(page)
    page.goto(server.url + "/sessions")
    assert page.locator(f"a[href='/sessions/{sid}']").count() >= 1
    assert page.locator(f"a[href='/sessions/{child}']").count() >= 1
    screenshot(page, "sessions")
    page.fill("input[name=q]", "subagent answer")
    page.click("form.filters button[type=submit]")
    page.wait_for_selector(".hit mark")
    assert page.locator(f".hit a[href='/sessions/{child}']").count() == 1
    assert_inert(page, dialogs)
    screenshot(page, "sessions-search")


def test_a_transcript_folds_its_tool_calls(
    new_page: Any, server: RunningServer, project: Path
) -> None:
    sid, child = recorded_session(project)
    page = new_page()
    dialogs = watch_dialogs(page)
    page.goto(f"{server.url}/sessions/{sid}")
    tools = page.locator(".transcript details.tool")
    assert tools.count() == 3
    output = page.locator(".transcript details.tool.failed .tool-output").first
    assert not output.is_visible()  # folded
    assert page.locator(".transcript details.tool.failed").count() == 1
    assert "✗" in (page.locator("details.tool.failed > summary").text_content() or "")
    page.locator("details.tool.failed > summary").click()
    output.wait_for(state="visible")
    assert output.text_content() == f"1 failed {IMG}"
    thinking = page.locator("details.thinking").first
    assert thinking.evaluate("el => el.open") is False
    nested = page.locator("details.tool details.subagent")
    assert nested.count() == 1
    assert nested.locator(f"a[href='/sessions/{child}']").count() == 1
    assert page.locator("strong", has_text="run the tests").count() == 1  # Markdown rendered
    page.click("button[data-fold=open]")
    assert page.locator(".nested .turn", has_text="subagent answer").is_visible()
    assert "tool calls" in (page.locator(".counters").text_content() or "")
    assert page.locator(".resume").text_content()
    assert_inert(page, dialogs)
    screenshot(page, "transcript")


def test_direct_from_store_is_the_stored_text(
    new_page: Any, server: RunningServer, project: Path
) -> None:
    text = f"CRLF\r\nCR\ronly\x01\x02\x1b[31mred\x1b[0m\x7f\x85\u2028\t{SCRIPT}&amp;\n\nend\n"
    sid, _ = recorded_session(project)
    with agentkeep.open(project) as store:
        with store.transaction() as tx:
            store.capture_writer(tx).message(
                sid, seq=5000, external_id="raw", role="assistant", kind="text", text="\n" + text
            )
        stored = {e.id: e.text for e in store.transcript(sid).entries if e.text is not None}
    assert "\n" + text in stored.values()
    page = new_page()
    dialogs = watch_dialogs(page)
    page.goto(f"{server.url}/sessions/{sid}/raw")
    shown = page.eval_on_selector_all(
        "pre.raw", "els => els.map(el => [Number(el.dataset.entryId), el.textContent])"
    )
    assert {entry_id: content for entry_id, content in shown} == stored
    assert_inert(page, dialogs)
    screenshot(page, "transcript-raw")


def test_the_list_pages_to_older_sessions(
    new_page: Any, server: RunningServer, project: Path, monkeypatch: Any
) -> None:
    from agentkeep.server.pages import sessions as sessions_page

    monkeypatch.setattr(sessions_page, "LIST_LIMIT", 5)  # the server runs in this process
    with agentkeep.open(project) as store:
        ids = [store.start_session(source="run", title=f"run {n}").item.id for n in range(7)]
    page = new_page()
    page.goto(server.url + "/sessions")
    assert page.locator("table.sessions tbody tr").count() == 5
    with page.expect_navigation():
        page.click("nav.pager a[rel=next]")
    rows = page.locator("table.sessions tbody td:first-child a")
    assert [int(text) for text in rows.all_text_contents()] == sorted(ids, reverse=True)[5:]
    assert page.locator("nav.pager a[rel=next]").count() == 0
    screenshot(page, "sessions-older")
    with page.expect_navigation():
        page.click("nav.pager a[rel=first]")
    assert page.locator("table.sessions tbody tr").count() == 5
