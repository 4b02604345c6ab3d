"""The HTTP API (/api/v1) against a real server on a free port and a temp store."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import agentkeep

from helpers.server import RunningServer, running_server


@pytest.fixture
def server(project: Path) -> Iterator[RunningServer]:
    with running_server(project / ".agentkeep") as running:
        yield running


@pytest.fixture
def http(server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url + "/api/v1", headers=server.auth, timeout=30) as c:
        yield c


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def refused(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    found: dict[str, Any] = response.json()
    assert found["schema_version"] == 1 and found["code"] == code, found
    assert isinstance(found["error"], str)
    return found


# -- tasks ------------------------------------------------------------------------------


def test_task_add_show_list(http: httpx.Client) -> None:
    made = ok(
        http.post("/tasks", json={"title": "Fix login", "priority": 1, "labels": ["auth"]}), 201
    )
    assert made["schema_version"] == 1 and made["outcome"] == "created"
    task = made["task"]
    assert (task["title"], task["priority"], task["labels"], task["status"]) == (
        "Fix login",
        1,
        ["auth"],
        "open",
    )
    shown = ok(http.get(f"/tasks/{task['id']}"))
    assert shown == {"schema_version": 1, **task}
    listed = ok(http.get("/tasks", params={"label": "auth"}))
    assert listed == {"schema_version": 1, "rows": [task], "next": None}
    assert ok(http.get("/tasks", params={"status": ["done", "cancelled"]}))["rows"] == []
    assert [t["id"] for t in ok(http.get("/tasks/ready"))["rows"]] == [task["id"]]


def test_task_idempotency_key(http: httpx.Client) -> None:
    key = {"Idempotency-Key": "retry-1"}
    first = ok(http.post("/tasks", json={"title": "once"}, headers=key), 201)
    again = ok(http.post("/tasks", json={"title": "once"}, headers=key))
    assert again["outcome"] == "already_exists" and again["task"] == first["task"]
    assert len(ok(http.get("/tasks"))["rows"]) == 1


def test_patch_task(http: httpx.Client, store: agentkeep.Store) -> None:
    task = store.add_task("t", labels=["a"]).item
    moved = ok(http.patch(f"/tasks/{task.id}", json={"status": "in_progress", "assignee": "ann"}))
    assert moved["outcome"] == "updated"
    assert (moved["task"]["status"], moved["task"]["assignee"]) == ("in_progress", "ann")
    same = ok(http.patch(f"/tasks/{task.id}", json={"status": "in_progress"}))
    assert same["outcome"] == "unchanged"
    # compare-and-set: the board moves a card only from the column it saw
    lost = http.patch(f"/tasks/{task.id}", json={"status": "done", "expect_status": "open"})
    refused(lost, 409, "conflict")
    cleared = ok(http.patch(f"/tasks/{task.id}", json={"assignee": "", "labels": []}))
    assert cleared["task"]["assignee"] is None and cleared["task"]["labels"] == []
    refused(http.patch(f"/tasks/{task.id}", json={"status": "nope"}), 400, "invalid_input")
    done = ok(http.patch(f"/tasks/{task.id}", json={"status": "done"}))["task"]
    assert done["closed_at"] is not None
    # a closed task can only be reopened
    refused(http.patch(f"/tasks/{task.id}", json={"status": "blocked"}), 409, "conflict")
    assert store.get_task(task.id).status == "done"


def test_claim_one_winner(
    http: httpx.Client, server: RunningServer, store: agentkeep.Store
) -> None:
    task = store.add_task("contested").item
    results: list[int] = []
    barrier = threading.Barrier(6)

    def claim(who: str) -> None:
        with httpx.Client(base_url=server.url + "/api/v1", headers=server.auth, timeout=60) as c:
            barrier.wait()
            results.append(c.post(f"/tasks/{task.id}/claim", json={"assignee": who}).status_code)

    threads = [threading.Thread(target=claim, args=(f"agent-{i}",)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [200] + [409] * 5
    holder = store.get_task(task.id).assignee
    assert holder is not None
    retry = ok(http.post(f"/tasks/{task.id}/claim", json={"assignee": holder}))
    assert retry["outcome"] == "unchanged"


def test_claim_waits_on_dependencies_unless_forced(
    http: httpx.Client, store: agentkeep.Store
) -> None:
    first = store.add_task("first").item
    second = store.add_task("second", depends_on=[first.id]).item
    refused(http.post(f"/tasks/{second.id}/claim", json={"assignee": "a"}), 409, "conflict")
    forced = ok(http.post(f"/tasks/{second.id}/claim", json={"assignee": "a", "force": True}))
    assert forced["task"]["status"] == "in_progress"
    # with no assignee the server's actor claims it
    claimed = ok(http.post(f"/tasks/{first.id}/claim"))
    assert claimed["task"]["assignee"]


def test_close_and_dependencies(http: httpx.Client, store: agentkeep.Store) -> None:
    a, b = store.add_task("a").item, store.add_task("b").item
    added = ok(http.post(f"/tasks/{b.id}/dependencies/{a.id}"))
    assert added["task"]["depends_on"] == [a.id]
    refused(http.post(f"/tasks/{a.id}/dependencies/{b.id}"), 400, "invalid_input")  # a cycle
    removed = ok(http.delete(f"/tasks/{b.id}/dependencies/{a.id}"))
    assert removed["task"]["depends_on"] == []
    closed = ok(http.post(f"/tasks/{a.id}/close", json={"status": "cancelled"}))
    assert closed["task"]["status"] == "cancelled"
    assert ok(http.post(f"/tasks/{b.id}/close"))["task"]["status"] == "done"


@pytest.mark.parametrize(
    ("method", "path", "payload"),
    [
        ("POST", "/tasks", b"{not json"),
        ("POST", "/tasks", b"[1, 2]"),
        ("POST", "/tasks", {"title": 5}),
        ("POST", "/tasks", {"title": "x", "unknown": 1}),
        ("POST", "/tasks", {"title": "x", "priority": True}),
        ("POST", "/tasks", {"title": "x", "priority": 9}),
        ("POST", "/tasks", {"title": "x", "depends_on": [2**70]}),
        ("POST", "/tasks", {"title": "x", "labels": "one"}),
        ("POST", "/tasks", {}),
        ("POST", "/tasks", b'{"title": "\\ud800"}'),  # a lone surrogate
        ("POST", "/tasks", '{"title": "\u00e9"}'.encode("latin-1")),  # not UTF-8
        ("POST", "/tasks", b'{"title": 1e999}'),
        ("POST", "/tasks", b'{"title": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
        ("POST", "/tasks", {"title": "a\u0000b"}),
        ("PATCH", "/tasks/1", {"priority": "high"}),
        ("PATCH", "/tasks/abc", {}),
        ("PATCH", "/tasks/-1", {}),
        ("PATCH", "/tasks/99999999999999999999999", {}),
        ("POST", "/tasks/1/claim", {"force": "yes"}),
        ("POST", "/tasks/1/close", {"status": "open"}),
        ("GET", "/tasks?limit=-1", None),
        ("GET", "/tasks?limit=100000", None),
        ("GET", "/tasks?limit=ten", None),
        ("GET", "/tasks?cursor=!!!", None),
        ("GET", "/tasks?cursor=WzFd", None),  # [1]: not a task cursor
        ("GET", "/tasks?status=nope", None),
        ("GET", "/tasks/x1", None),
    ],
)
def test_bad_input_is_400(
    http: httpx.Client, store: agentkeep.Store, method: str, path: str, payload: Any
) -> None:
    store.add_task("exists")
    if isinstance(payload, bytes):  # declared JSON, so the API's parser (not the
        # middleware's content-type rule, 415) is what refuses it
        headers = {"Content-Type": "application/json"}
        response = http.request(method, path, content=payload, headers=headers)
    else:
        response = http.request(method, path, json=payload)
    refused(response, 400, "invalid_input")


def test_unknown_ids_are_404(http: httpx.Client) -> None:
    refused(http.get("/tasks/424242"), 404, "not_found")
    refused(http.patch("/tasks/424242", json={"title": "x"}), 404, "not_found")
    refused(http.post("/tasks/424242/claim"), 404, "not_found")
    refused(http.get("/notes/424242"), 404, "not_found")


# -- notes ------------------------------------------------------------------------------


def test_notes(http: httpx.Client, store: agentkeep.Store) -> None:
    task = store.add_task("t").item
    made = ok(
        http.post(
            "/notes",
            json={"kind": "handoff", "body": "next: tests", "task_id": task.id},
            headers={"Idempotency-Key": "h1"},
        ),
        201,
    )
    note = made["note"]
    again = ok(
        http.post(
            "/notes", json={"kind": "handoff", "body": "x"}, headers={"Idempotency-Key": "h1"}
        )
    )
    assert again["outcome"] == "already_exists" and again["note"]["id"] == note["id"]
    ok(http.post("/notes", json={"kind": "decision", "body": "use sqlite"}), 201)
    assert ok(http.get(f"/notes/{note['id']}")) == {"schema_version": 1, **note}
    assert [n["kind"] for n in ok(http.get("/notes"))["rows"]] == ["decision", "handoff"]
    assert ok(http.get("/notes", params={"task_id": task.id}))["rows"] == [note]
    assert ok(http.get("/notes/latest", params={"task_id": task.id}))["rows"] == [note]
    assert ok(http.get("/notes/latest", params={"kind": "fact"}))["rows"] == []
    refused(http.post("/notes", json={"kind": "rumour"}), 400, "invalid_input")
    refused(http.get("/notes/latest", params={"kind": "rumour"}), 400, "invalid_input")
    refused(
        http.post("/notes", json={"kind": "fact", "body": "b", "task_id": 999}), 404, "not_found"
    )


# -- paging -----------------------------------------------------------------------------


def _walk(http: httpx.Client, path: str, key: str, between: Any, size: int = 7) -> list[Any]:
    """Every row of a list, a page at a time, calling ``between()`` after each page."""
    seen: list[Any] = []
    cursor: str | None = None
    for _ in range(10_000):  # a ceiling: a cursor that never ends fails loudly
        params: dict[str, Any] = {"limit": size}
        if cursor is not None:
            params["cursor"] = cursor
        page = ok(http.get(path, params=params))
        assert len(page["rows"]) <= size
        seen += [row[key] for row in page["rows"]]
        cursor = page["next"]
        if cursor is None:
            return seen
        between()
    raise AssertionError("the pages never ended")


NOUNS = {
    # path, the row's key, how one more row is written
    "tasks": ("/tasks", "id", lambda s, i: s.add_task(f"t{i}", priority=i % 5)),
    "ready": ("/tasks/ready", "id", lambda s, i: s.add_task(f"r{i}", priority=(i * 3) % 5)),
    "notes": ("/notes", "id", lambda s, i: s.add_note("fact", f"n{i}")),
    "events": ("/events", "seq", lambda s, i: s.record_event("test.tick", data={"i": i})),
    "metrics": (
        "/metrics",
        "id",
        # the same `at` for many: the (at, id) key must still order them
        lambda s, i: s.record_metric("m", i, at=f"2026-01-0{1 + i % 3}T00:00:00Z"),
    ),
    "sessions": ("/sessions", "id", lambda s, i: s.start_session(title=f"s{i}")),
    "agents": ("/agents", "id", lambda s, i: s.register_agent(f"agent-{i}")),
    "artifacts": ("/artifacts", "id", lambda s, i: s.add_artifact(f"a{i}".encode(), name=f"{i}")),
    "worktrees": (
        "/worktrees",
        "id",
        lambda s, i: s.add_worktree(f"wt/{i}", branch=f"b{i}"),
    ),
}


@pytest.mark.parametrize("noun", sorted(NOUNS))
def test_pages_skip_and_repeat_nothing_while_rows_are_inserted(
    http: httpx.Client, store: agentkeep.Store, noun: str
) -> None:
    path, key, write = NOUNS[noun]
    for i in range(40):
        write(store, i)
    before = [row[key] for row in ok(http.get(path, params={"limit": 1000}))["rows"]]
    assert len(before) >= 40
    more = iter(range(40, 10_000))

    def insert() -> None:  # another writer, between every two pages
        for _ in range(3):
            write(store, next(more))

    walked = _walk(http, path, key, insert)
    assert len(walked) == len(set(walked)), "a row was repeated"
    assert set(before) <= set(walked), f"rows skipped: {sorted(set(before) - set(walked))}"
    # the order is the list's own: what was there is walked in the order it was listed
    assert [k for k in walked if k in set(before)] == before


def test_ndjson_pages_carry_the_cursor_in_headers(
    http: httpx.Client, store: agentkeep.Store
) -> None:
    for i in range(5):
        store.add_task(f"t{i}")
    response = http.get("/tasks", params={"_nl": 1, "limit": 2})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-ndjson")
    lines = [line for line in response.text.splitlines() if line]
    assert [json_id(line) for line in lines] == [1, 2]
    cursor = response.headers["x-next-cursor"]
    assert 'rel="next"' in response.headers["link"]
    rest = ok(http.get("/tasks", params={"cursor": cursor, "limit": 10}))
    assert [t["id"] for t in rest["rows"]] == [3, 4, 5] and rest["next"] is None


def json_id(line: str) -> int:
    import json

    return int(json.loads(line)["id"])


# -- sessions and transcripts -----------------------------------------------------------


def _conversation(store: agentkeep.Store, messages: int, *, child: bool = False) -> int:
    with store.transaction() as tx:
        w = store.capture_writer(tx)
        session = w.session("claude", "ext-1", started_at="2026-08-20T14:02:00.000Z")
        if child:  # a subagent: the transcript links it to the call that spawned it
            w.session("claude", "ext-1:agent-abcd", parent_id=session)
        for n in range(messages):
            w.message(
                session,
                seq=n,
                external_id=f"e{n}",
                role="user" if n % 2 == 0 else "assistant",
                kind="text",
                text=f"message {n}",
                at="2026-08-20T14:02:01.000Z",
            )
    return int(session)


@pytest.mark.parametrize("child", [False, True])
def test_transcript_in_chunks(http: httpx.Client, store: agentkeep.Store, child: bool) -> None:
    session_id = _conversation(store, 25, child=child)
    whole = store.transcript(session_id)
    texts: list[str] = []
    after: str | None = "0"
    chunks = 0
    while after is not None:
        chunk = ok(
            http.get(f"/sessions/{session_id}/transcript", params={"after": after, "limit": 10})
        )
        assert chunk["origin"] == "messages" and chunk["total"] == 25
        texts += [entry["text"] for entry in chunk["rows"]]
        after = chunk["next"]
        chunks += 1
    assert chunks == 3
    assert texts == [f"message {n}" for n in range(25)]
    assert texts == [entry.text for entry in whole.entries]
    assert len(chunk["children"]) == (1 if child else 0)
    shown = ok(http.get(f"/sessions/{session_id}"))
    assert shown["entries"] == 25 and "resume_reason" in shown
    for counter in ("input_tokens", "output_tokens", "prompts", "tool_calls", "failures", "turns"):
        assert counter in shown
    refused(http.get("/sessions/999/transcript"), 404, "not_found")


def test_transcript_ndjson_link_reaches_the_end(http: httpx.Client, store: agentkeep.Store) -> None:
    session_id = _conversation(store, 25)
    url: str | None = f"{http.base_url}sessions/{session_id}/transcript?limit=10&_nl=1"
    texts: list[str] = []
    for _ in range(10):  # a ceiling: a Link that loops fails here
        if url is None:
            break
        response = http.get(url)
        assert response.status_code == 200, response.text
        texts += [json.loads(line)["text"] for line in response.text.splitlines()]
        link = response.headers.get("link")
        url = link[1 : link.index(">")] if link else None
    assert url is None
    assert texts == [f"message {n}" for n in range(25)]


def test_sessions_start_and_end(http: httpx.Client) -> None:
    made = ok(http.post("/sessions", json={"title": "run", "command": ["make", "test"]}), 201)
    session = made["session"]
    assert session["status"] == "running" and session["command"] == ["make", "test"]
    ended = ok(
        http.post(f"/sessions/{session['id']}/end", json={"status": "failed", "exit_code": 2})
    )
    assert (ended["session"]["status"], ended["session"]["exit_code"]) == ("failed", 2)
    refused(http.post(f"/sessions/{session['id']}/end", json={}), 409, "conflict")
    listed = ok(http.get("/sessions", params={"status": "failed"}))["rows"]
    assert [s["id"] for s in listed] == [session["id"]]
    refused(http.get("/sessions", params={"status": "sleeping"}), 400, "invalid_input")


# -- events, metrics and the rest -------------------------------------------------------


def test_events_and_metrics(http: httpx.Client) -> None:
    made = ok(
        http.post(
            "/events",
            json={"kind": "deploy.finished", "data": {"env": "prod"}},
            headers={"Idempotency-Key": "deploy-7"},
        ),
        201,
    )
    event = made["event"]
    again = ok(
        http.post(
            "/events", json={"kind": "deploy.finished"}, headers={"Idempotency-Key": "deploy-7"}
        )
    )
    assert again["outcome"] == "already_exists" and again["event"]["seq"] == event["seq"]
    found = ok(http.get("/events", params={"kind": "deploy.*"}))["rows"]
    assert [e["seq"] for e in found] == [event["seq"]]
    after = ok(http.get("/events", params={"after": event["seq"]}))["rows"]
    assert after == []
    metric = ok(
        http.post("/metrics", json={"name": "tests.s", "value": 2.5, "labels": {"ci": "1"}}), 201
    )
    assert metric["metric"]["labels"] == {"ci": "1"}
    assert [m["value"] for m in ok(http.get("/metrics", params={"name": "tests.s"}))["rows"]] == [
        2.5
    ]
    refused(http.post("/metrics", json={"name": "x", "value": "1"}), 400, "invalid_input")
    huge = b'{"name": "x", "value": 1' + b"0" * 400 + b"}"
    headers = {"Content-Type": "application/json"}
    refused(http.post("/metrics", content=huge, headers=headers), 400, "invalid_input")
    refused(
        http.post("/metrics", json={"name": "x", "value": 1, "at": "yesterday"}),
        400,
        "invalid_input",
    )
    refused(
        http.post("/metrics", json={"name": "x", "value": 1, "labels": {"a": 1}}),
        400,
        "invalid_input",
    )


def test_store_wide_reads(http: httpx.Client, store: agentkeep.Store) -> None:
    store.add_task("find the rate limiter")
    agent = store.register_agent("builder").item
    hits = ok(http.get("/search", params={"q": "limiter"}))["rows"]
    assert [h["kind"] for h in hits] == ["task"]
    refused(http.get("/search"), 400, "invalid_input")
    refused(http.get("/search", params={"q": "x", "kind": "nope"}), 400, "invalid_input")
    assert ok(http.get(f"/agents/{agent.id}"))["name"] == "builder"
    assert ok(http.get("/agents/builder"))["id"] == agent.id
    refused(http.get("/agents/nobody"), 404, "not_found")
    assert ok(http.get("/status"))["counts"]["tasks"] == 1
    assert ok(http.get("/doctor"))["ok"] is True
    assert ok(http.get("/usage", params={"by": "kind"}))["by"] == "kind"
    refused(http.get("/stats", params={"by": "planet"}), 400, "invalid_input")
    assert ok(http.get("/stats", params={"by": "agent"}))["rows"] == []


# -- bytes: artifacts and stream logs ---------------------------------------------------

HOSTILE = b"<html><script>alert(document.cookie)</script><img src=x onerror=alert(1)></html>"


@pytest.mark.parametrize(
    ("stored", "served", "inline"),
    [
        ("text/html", "text/plain; charset=utf-8", True),
        ("text/html; charset=utf-8", "text/plain; charset=utf-8", True),
        ("image/svg+xml", "text/plain; charset=utf-8", True),
        ("application/xml", "text/plain; charset=utf-8", True),
        ("text/xml", "text/plain; charset=utf-8", True),
        ("application/xhtml+xml", "text/plain; charset=utf-8", True),
        ("text/javascript", "text/plain; charset=utf-8", True),
        ("application/javascript", "text/plain; charset=utf-8", True),
        ("text/plain", "text/plain; charset=utf-8", True),
        ("text/x-diff", "text/x-diff; charset=utf-8", True),
        ("application/json", "application/json", True),
        ("image/png", "image/png", False),
        ("application/pdf", "application/pdf", False),
        ("application/x-shockwave-flash", "application/octet-stream", False),
        ("video/mp4", "application/octet-stream", False),
        (None, "text/plain; charset=utf-8", True),  # the store guesses text/html from .html
        ("text/html\r\nX-Injected: 1", "application/octet-stream", False),
        ("nonsense", "application/octet-stream", False),
    ],
)
def test_artifact_content_never_runs_in_a_browser(
    http: httpx.Client, store: agentkeep.Store, stored: str | None, served: str, inline: bool
) -> None:
    artifact = store.add_artifact(HOSTILE, name='evil".html', content_type=stored).item
    response = http.get(f"/artifacts/{artifact.id}/content")
    assert response.status_code == 200
    assert response.content == HOSTILE  # the stored bytes, exactly
    assert response.headers["content-type"] == served
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in response.headers["content-security-policy"]
    assert "x-injected" not in response.headers
    disposition = response.headers.get("content-disposition", "")
    if inline:
        assert not disposition.startswith("attachment")
    else:
        assert disposition.startswith("attachment;")
        assert '"evil_.html"' in disposition  # no quote breaks out of the header
    assert response.headers["etag"] == f'"{artifact.sha256}"'


def test_artifact_ranges_and_etag(http: httpx.Client, store: agentkeep.Store) -> None:
    data = bytes(range(256)) * 1024  # 256 KiB, compressed when stored
    artifact = store.add_artifact(data, name="blob.bin").item
    url = f"/artifacts/{artifact.id}/content"
    whole = http.get(url)
    assert whole.content == data and whole.headers["accept-ranges"] == "bytes"
    etag = whole.headers["etag"]
    assert http.get(url, headers={"If-None-Match": etag}).status_code == 304
    part = http.get(url, headers={"Range": "bytes=100000-100099"})
    assert part.status_code == 206 and part.content == data[100000:100100]
    assert part.headers["content-range"] == f"bytes 100000-100099/{len(data)}"
    tail = http.get(url, headers={"Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.content == data[-10:]
    open_end = http.get(url, headers={"Range": f"bytes={len(data) - 5}-"})
    assert open_end.content == data[-5:]
    beyond = http.get(url, headers={"Range": f"bytes={len(data)}-"})
    assert beyond.status_code == 416
    assert beyond.headers["content-range"] == f"bytes */{len(data)}"
    # several ranges or a stale If-Range: the whole, as RFC 9110 allows
    assert http.get(url, headers={"Range": "bytes=0-1,5-6"}).content == data
    stale = http.get(url, headers={"Range": "bytes=0-1", "If-Range": '"other"'})
    assert stale.status_code == 200 and stale.content == data
    # last-pos before first-pos is no range at all: ignored, the whole is served
    backwards = http.get(url, headers={"Range": "bytes=5-3"})
    assert backwards.status_code == 200 and backwards.content == data
    huge_end = http.get(url, headers={"Range": "bytes=10-" + "9" * 30})
    assert huge_end.status_code == 206 and huge_end.content == data[10:]
    refused(http.get("/artifacts/4242/content"), 404, "not_found")
    # an empty artifact has no last bytes: 416, not 206 with "bytes 0--1/0"
    empty = store.add_artifact(b"", name="empty.bin").item
    none = http.get(f"/artifacts/{empty.id}/content", headers={"Range": "bytes=-5"})
    assert none.status_code == 416 and none.headers["content-range"] == "bytes */0"


def test_artifact_upload_streams_raw_bytes(http: httpx.Client, server: RunningServer) -> None:
    data = bytes(range(256)) * 8192  # 2 MiB, sent in pieces

    def pieces() -> Iterator[bytes]:
        for start in range(0, len(data), 100_000):
            yield data[start : start + 100_000]

    made = ok(
        http.post(
            "/artifacts",
            params={"name": "big.bin", "kind": "file"},
            content=pieces(),
            headers={"Content-Type": "application/octet-stream", "Idempotency-Key": "up-1"},
        ),
        201,
    )
    artifact = made["artifact"]
    assert (artifact["size"], artifact["name"], artifact["content_type"]) == (
        len(data),
        "big.bin",
        "application/octet-stream",
    )
    assert http.get(f"/artifacts/{artifact['id']}/content").content == data
    again = ok(
        http.post(
            "/artifacts",
            params={"name": "big.bin"},
            content=data,
            headers={"Idempotency-Key": "up-1"},
        )
    )
    assert again["outcome"] == "already_exists"
    refused(http.post("/artifacts", params={"kind": "movie"}, content=b"x"), 400, "invalid_input")


def _frames_read(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    from agentkeep.services import streams

    decompressed: list[int] = []
    real = streams.SealedReader._frame

    def counting(self: Any, index: int) -> bytes:
        if self._cache is None or self._cache[0] != index:
            decompressed.append(index)
        return real(self, index)

    monkeypatch.setattr(streams.SealedReader, "_frame", counting)
    return decompressed


def test_stream_log_range_decompresses_only_its_frames(
    http: httpx.Client, store: agentkeep.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agentkeep.services.streams import FRAME_BYTES

    line = b"".join(b"line %06d of a long build log\n" % i for i in range(1000))
    data = (line * (1 + 6 * FRAME_BYTES // len(line)))[: 6 * FRAME_BYTES + 123]
    session = store.start_session(title="build").item
    writer = store.open_stream(session.id, "stdout")
    for start in range(0, len(data), 1 << 20):
        writer.write(data[start : start + (1 << 20)])
    stream = store.seal_stream(writer.close().id)
    assert stream.status == "sealed"
    listed = ok(http.get(f"/sessions/{session.id}/streams"))["rows"]
    assert [s["id"] for s in listed] == [stream.id]

    decompressed = _frames_read(monkeypatch)
    start = 3 * FRAME_BYTES + 10  # inside the fourth frame, crossing into the fifth
    part = http.get(
        f"/streams/{stream.id}/log", headers={"Range": f"bytes={start}-{start + FRAME_BYTES}"}
    )
    assert part.status_code == 206
    assert part.content == data[start : start + FRAME_BYTES + 1]
    assert part.headers["content-type"] == "text/plain; charset=utf-8"
    assert part.headers["x-content-type-options"] == "nosniff"
    assert sorted(set(decompressed)) == [3, 4]  # of 7 frames

    decompressed.clear()
    whole = http.get(f"/streams/{stream.id}/log")
    assert whole.content == data and whole.headers["etag"] == f'"{stream.sha256}"'
    assert sorted(set(decompressed)) == list(range(7))


def test_live_stream_log_serves_its_durable_bytes(
    http: httpx.Client, store: agentkeep.Store
) -> None:
    session = store.start_session(title="running").item
    writer = store.open_stream(session.id, "stdout")
    writer.write(b"<script>alert(1)</script>\nstill going\n")
    writer.commit_progress()
    writer.write(b"not durable yet\n")
    stream = store.get_stream(writer.stream.id)
    assert stream.status == "live" and stream.length == 38
    response = http.get(f"/streams/{stream.id}/log")
    assert response.status_code == 200
    assert response.content == b"<script>alert(1)</script>\nstill going\n"
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert "etag" not in response.headers  # still growing
    writer.close()
    refused(http.get("/streams/999/log"), 404, "not_found")
