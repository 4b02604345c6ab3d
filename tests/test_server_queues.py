"""Work queues over the HTTP API (/api/v1/queues) against a real server on a temp store:
put (idempotent, delayed), take (one item for one caller, null when nothing is ready),
ack and nack with the attempt that holds it (409 once it does not), listings, and the
write rules of every other route."""

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
    return found


def test_put_take_ack_nack_and_listings(http: httpx.Client, store: agentkeep.Store) -> None:
    assert ok(http.get("/queues"))["rows"] == []
    refused(http.get("/queues/builds/items"), 404, "not_found")
    key = {"Idempotency-Key": "build-1"}
    first = ok(http.post("/queues/builds/items", json={"body": "make all"}, headers=key), 201)
    assert first["outcome"] == "created" and first["item"]["state"] == "ready"
    again = ok(http.post("/queues/builds/items", json={"body": "make all"}, headers=key))
    assert again["outcome"] == "already_exists" and again["item"]["id"] == first["item"]["id"]
    ok(http.post("/queues/builds/items", json={"body": "make docs"}), 201)
    later = ok(http.post("/queues/builds/items", json={"body": "later", "delay": 3600}), 201)
    assert later["item"]["state"] == "delayed"

    summary = ok(http.get("/queues"))["rows"]
    assert [(q["queue"], q["ready"], q["delayed"]) for q in summary] == [("builds", 2, 1)]
    listed = ok(http.get("/queues/builds/items", params={"state": "ready"}))["rows"]
    assert [i["body"] for i in listed] == ["make all", "make docs"]

    taken = ok(http.post("/queues/builds/take", json={"lease": 60}))["item"]
    assert (taken["body"], taken["state"], taken["attempts"]) == ("make all", "taken", 1)
    assert taken["holder"] is None  # a caller elsewhere: only the lease brings it back
    shown = ok(http.get(f"/queues/builds/items/{taken['id']}"))
    assert shown["state"] == "taken" and shown["schema_version"] == 1
    refused(
        http.post(f"/queues/builds/items/{taken['id']}/ack", json={"attempt": 2}), 409, "conflict"
    )
    acked = ok(http.post(f"/queues/builds/items/{taken['id']}/ack", json={"attempt": 1}))
    assert acked["outcome"] == "updated" and acked["item"]["state"] == "done"
    refused(http.post(f"/queues/builds/items/{taken['id']}/ack", json={}), 409, "conflict")

    second = ok(http.post("/queues/builds/take", json={}))["item"]
    back = ok(
        http.post(
            f"/queues/builds/items/{second['id']}/nack",
            json={"max_attempts": 1, "reason": "flaky"},
        )
    )
    assert back["item"]["state"] == "failed"
    assert ok(http.post("/queues/builds/take", json={}))["item"] is None  # only a delayed one
    assert [i.state for i in store.queues.items("builds")] == ["delayed", "failed", "done"]

    for bad in ({"lease": 0}, {"lease": -1}, {"lease": 1e12}, {"lease": "x"}, {"x": 1}):
        refused(http.post("/queues/builds/take", json=bad), 400, "invalid_input")
    refused(
        http.post("/queues/builds/items", json={"body": "x", "delay": -1}), 400, "invalid_input"
    )
    refused(http.post("/queues/builds/items", json={}), 400, "invalid_input")
    refused(http.post("/queues/Bad Name/items", json={"body": "x"}), 400, "invalid_input")
    refused(http.get("/queues/builds/items/not-an-id"), 400, "invalid_input")
    refused(http.get("/queues/builds/items", params={"state": "gone"}), 400, "invalid_input")


def test_racing_takers_each_get_a_different_item_or_none(
    http: httpx.Client, server: RunningServer, store: agentkeep.Store
) -> None:
    for n in range(3):
        store.queues.put("jobs", f"job {n}")
    got: list[Any] = []
    barrier = threading.Barrier(6)

    def take() -> None:
        with httpx.Client(base_url=server.url + "/api/v1", headers=server.auth, timeout=60) as c:
            barrier.wait()
            got.append(c.post("/queues/jobs/take", json={}).json()["item"])

    threads = [threading.Thread(target=take) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    items = [item for item in got if item is not None]
    assert sorted(i["body"] for i in items) == ["job 0", "job 1", "job 2"]
    assert got.count(None) == 3


def test_queue_writes_need_the_token(server: RunningServer, store: agentkeep.Store) -> None:
    url = server.url + "/api/v1/queues/q"
    assert httpx.post(url + "/items", json={"body": "x"}).status_code == 401
    assert httpx.post(url + "/take", json={}).status_code == 401
    assert store.queues.list_queues() == []
    assert httpx.get(server.url + "/api/v1/queues").status_code == 200


SCRIPT = "<script>window.__pwned=1</script>"


def test_queues_page_lists_queues_and_items_as_text(
    server: RunningServer, store: agentkeep.Store
) -> None:
    def page(path: str, **params: Any) -> httpx.Response:
        return httpx.get(server.url + path, params=params, timeout=30)

    assert "No queue yet" in page("/queues").text
    store.queues.put("builds", f"make {SCRIPT}")
    store.queues.put("builds", "make docs")
    store.queues.put("builds", "later", delay=3600)
    taken = store.queues.take("builds", lease=60)
    assert taken is not None
    store.queues.put("deploys", "ship")

    listing = page("/queues")
    assert listing.status_code == 200 and 'href="/queues"' in listing.text  # in the nav
    assert 'href="/queues/builds"' in listing.text and 'href="/queues/deploys"' in listing.text
    builds = page("/queues/builds").text
    assert SCRIPT not in builds and "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in builds
    assert f'data-item="{taken.id}" class="taken"' in builds and "a lease until" in builds
    assert builds.count("<tr data-item=") == 3
    ready = page("/queues/builds", state="ready").text
    assert ready.count("<tr data-item=") == 1 and "make docs" in ready
    assert page("/queues/builds", state="gone").status_code == 400
    assert page("/queues/Bad%20Name").status_code == 400
    assert page("/queues/nothing").status_code == 404
