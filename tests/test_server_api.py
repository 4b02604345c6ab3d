"""The HTTP API (/api/v1) against a real server on a free port and a temp store."""

from __future__ import annotations

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
    if isinstance(payload, bytes):
        response = http.request(method, path, content=payload)
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
