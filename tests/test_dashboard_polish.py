"""The dashboard's gaps closed (polish-dash), over a real server: the event stream takes
several entities (the board's task and note events), the sessions list pages with the
API's keyset cursor."""

from __future__ import annotations

import html
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import agentkeep
from agentkeep.server.pages import sessions as sessions_page

from helpers.server import RunningServer, running_server


@pytest.fixture
def server(project: Path) -> Iterator[RunningServer]:
    with running_server(project / ".agentkeep") as running:
        yield running


def read_frames(response: httpx.Response, count: int) -> list[dict[str, Any]]:
    """The first ``count`` event frames of an SSE response: {"id", "event", "data"}.
    Fails (a safety net, not a budget) if they have not all come after a minute: the
    server's pings keep an idle stream from ever ending by itself."""
    deadline = time.monotonic() + 60
    frames: list[dict[str, Any]] = []
    frame: dict[str, Any] = {}
    for line in response.iter_lines():
        assert time.monotonic() < deadline, f"only {frames} came"
        if not line:
            if "data" in frame:
                frames.append(frame)
                if len(frames) == count:
                    return frames
            frame = {}
        elif not line.startswith(":"):
            field, _, value = line.partition(":")
            frame[field] = json.loads(value) if field == "data" else value.strip()
    return frames


def test_the_event_stream_takes_several_entities(project: Path, server: RunningServer) -> None:
    with agentkeep.open(project) as store:
        start = store.last_seq()
        task = store.add_task("Streamed").item
        store.start_session(source="run", task_id=task.id)  # a session event: left out
        store.add_note("handoff", "before the connection", task_id=task.id)
    url = f"{server.url}/api/v1/events/stream?entity=task&entity=note&after={start}"
    with httpx.stream("GET", url, timeout=30) as response:
        assert response.status_code == 200
        with agentkeep.open(project) as store:  # live, after the replay
            store.add_note("decision", "after the connection", task_id=task.id)
            store.update_task(task.id, priority=1)
        frames = read_frames(response, 4)
    kinds = [frame["event"] for frame in frames]
    assert kinds == ["task.created", "note.created", "note.created", "task.updated"]
    assert [frame["data"]["entity"] for frame in frames] == ["task", "note", "note", "task"]
    assert frames[1]["data"]["data"]["task_id"] == task.id
    seqs = [int(frame["id"]) for frame in frames]
    assert seqs == sorted(seqs) and len(set(seqs)) == 4


def test_one_entity_still_filters_the_stream(project: Path, server: RunningServer) -> None:
    with agentkeep.open(project) as store:
        start = store.last_seq()
        task = store.add_task("Only tasks").item
        store.add_note("handoff", "not for this stream", task_id=task.id)
        store.update_task(task.id, priority=1)
    url = f"{server.url}/api/v1/events/stream?entity=task&after={start}"
    with httpx.stream("GET", url, timeout=30) as response:
        frames = read_frames(response, 2)
    assert [frame["event"] for frame in frames] == ["task.created", "task.updated"]


SESSION_ROW = re.compile(r'<tr class="status-[a-z]+">\s*<td><a href="/sessions/(\d+)">')
OLDER = re.compile(r'<a href="([^"]+)" rel="next">older')


def test_the_sessions_list_pages_with_a_cursor(
    project: Path, server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sessions_page, "LIST_LIMIT", 4)  # the server runs in this process
    with agentkeep.open(project) as store:
        ids = [store.start_session(source="run", title=f"run {n}").item.id for n in range(10)]
        ended = ids[1::2]
        for session_id in ended:
            store.end_session(session_id, status="ended")
    seen: list[int] = []
    path: str | None = "/sessions"
    pages = 0
    while path is not None:
        response = httpx.get(server.url + path, timeout=30)
        assert response.status_code == 200
        shown = [int(found) for found in SESSION_ROW.findall(response.text)]
        assert 0 < len(shown) <= 4
        seen += shown
        older = OLDER.search(response.text)
        path = html.unescape(older.group(1)) if older else None
        pages += 1
        assert pages <= 10, "the older links go round in circles"
    assert seen == sorted(ids, reverse=True)  # each session once, newest first
    assert pages == 3
    # The filters stay on the older link.
    response = httpx.get(server.url + "/sessions", params={"status": "ended"}, timeout=30)
    older = OLDER.search(response.text)
    assert older is not None and "status=ended" in older.group(1)
    second = httpx.get(server.url + html.unescape(older.group(1)), timeout=30)
    assert [int(i) for i in SESSION_ROW.findall(second.text)] == sorted(ended, reverse=True)[4:]
    assert 'rel="first"' in second.text and OLDER.search(second.text) is None


def test_a_cursor_the_server_did_not_give_is_refused(server: RunningServer) -> None:
    response = httpx.get(server.url + "/sessions", params={"cursor": "nonsense!"}, timeout=30)
    assert response.status_code == 400
    assert "cursor is not one this server gave out" in response.text


def test_unnamed_frames_carry_every_kind_as_a_message(project: Path, server: RunningServer) -> None:
    with agentkeep.open(project) as store:
        start = store.last_seq()
        store.add_task("Named")
        store.record_event("deploy.finished", data={"ok": True})
    url = f"{server.url}/api/v1/events/stream?unnamed=1&after={start}"
    with httpx.stream("GET", url, timeout=30) as response:
        frames = read_frames(response, 2)
    assert ["event" in frame for frame in frames] == [False, False]  # browsers: "message"
    assert [frame["data"]["kind"] for frame in frames] == ["task.created", "deploy.finished"]
    assert [int(frame["id"]) for frame in frames] == [f["data"]["seq"] for f in frames]
