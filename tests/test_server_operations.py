"""Background operations over HTTP (server/operations.py) against a real server: the gc
dry run and its confirmed apply, pins, export → download → import into another store,
progress, one operation of a kind at a time."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import agentkeep
from agentkeep.ops import retention
from agentkeep.ops.bundle_export import export_bundle
from agentkeep.ops.bundle_import import import_bundle
from agentkeep.server import operations

from conftest import git
from helpers.server import RunningServer, running_server
from helpers.views_seed import PAYLOAD, Seeded, seed

WAIT = 60.0  # a safety net for a loaded machine, never a budget


@pytest.fixture
def seeded(project: Path) -> Seeded:
    # Logs beyond 1 byte in all go: every log artifact is gc's to delete.
    (project / ".agentkeep" / "config.toml").write_text("[retention.log]\nmax_total_bytes = 1\n")
    return seed(project / ".agentkeep")


@pytest.fixture
def server(project: Path, seeded: Seeded) -> Iterator[RunningServer]:
    with running_server(project / ".agentkeep") as running:
        yield running


def start(server: RunningServer, body: dict[str, Any]) -> dict[str, Any]:
    response = httpx.post(
        server.url + "/api/v1/operations", json=body, headers=server.auth, timeout=30
    )
    assert response.status_code == 202, response.text
    started: dict[str, Any] = response.json()
    assert started["schema_version"] == 1 and started["kind"] == body["kind"]
    return started


def finished(server: RunningServer, op_id: str) -> dict[str, Any]:
    """The operation's state once it is no longer running (polled; WAIT is a safety net)."""
    deadline = time.monotonic() + WAIT
    while True:
        state: dict[str, Any] = httpx.get(f"{server.url}/api/v1/operations/{op_id}").json()
        if state["status"] != "running":
            return state
        assert time.monotonic() < deadline, state
        time.sleep(0.02)


def log_bytes(store_dir: Path) -> int:
    with agentkeep.open(store_dir) as store:
        groups = retention.usage(store, by="kind").groups
    return sum(group.bytes for group in groups if group.key == "log")


def test_gc_dry_run_deletes_nothing_and_its_confirmed_apply_frees_what_it_listed(
    server: RunningServer, project: Path, seeded: Seeded
) -> None:
    store_dir = project / ".agentkeep"
    before = log_bytes(store_dir)
    assert before > 0
    dry = finished(server, start(server, {"kind": "gc"})["id"])
    assert dry["status"] == "done", dry
    plan = dry["result"]
    assert plan["artifacts"] == 3 and plan["items_total"] == len(plan["items"]) >= 4
    assert plan["bytes"] > 0
    assert log_bytes(store_dir) == before  # a dry run

    # Applying needs the dry run it confirms.
    refused = httpx.post(
        server.url + "/api/v1/operations",
        json={"kind": "gc", "apply": True},
        headers=server.auth,
    )
    assert refused.status_code == 400 and refused.json()["code"] == "invalid_input"
    assert log_bytes(store_dir) == before

    applied = finished(
        server, start(server, {"kind": "gc", "apply": True, "plan": dry["id"]})["id"]
    )
    assert applied["status"] == "done", applied
    assert applied["result"]["plan"]["items_total"] == plan["items_total"]
    assert applied["result"]["file_bytes_reclaimed"] > 0
    assert applied["phase"] == "done" and applied["done"] == applied["total"] > 0
    assert log_bytes(store_dir) == 0
    with agentkeep.open(store_dir) as store:
        assert store.list_artifacts(kind="log") == []
    # An apply is no dry run to confirm.
    twice = httpx.post(
        server.url + "/api/v1/operations",
        json={"kind": "gc", "apply": True, "plan": applied["id"]},
        headers=server.auth,
    )
    assert twice.status_code == 400


def test_a_pinned_session_keeps_its_artifacts_from_gc(
    server: RunningServer, project: Path, seeded: Seeded
) -> None:
    url = f"{server.url}/api/v1/sessions/{seeded.ended}/pin"
    pinned = httpx.post(url, json={"pinned": True}, headers=server.auth)
    assert pinned.status_code == 200, pinned.text
    assert pinned.json() == {
        "schema_version": 1,
        "outcome": "updated",
        "pin": {"entity": "session", "id": seeded.ended, "pinned": True, "outcome": "updated"},
    }
    again = httpx.post(url, json={"pinned": True}, headers=server.auth).json()
    assert again["outcome"] == "unchanged"
    dry = finished(server, start(server, {"kind": "gc"})["id"])
    assert dry["result"]["items_total"] == 0
    httpx.post(url, json={"pinned": False}, headers=server.auth).raise_for_status()
    dry = finished(server, start(server, {"kind": "gc"})["id"])
    assert dry["result"]["artifacts"] == 3
    missing = httpx.post(
        f"{server.url}/api/v1/sessions/999999/pin", json={"pinned": True}, headers=server.auth
    )
    assert missing.status_code == 404


def records(store_dir: Path) -> dict[str, Any]:
    with agentkeep.open(store_dir) as store:
        return {
            "tasks": sorted((t.title, t.status, tuple(t.labels)) for t in store.list_tasks()),
            "notes": sorted((n.kind, n.body) for n in store.list_notes()),
            "sessions": sorted(
                (s.title or "", s.model or "", s.input_tokens) for s in store.list_sessions()
            ),
            "artifacts": sorted(
                (a.name or "", store.read_artifact(a.id)) for a in store.list_artifacts()
            ),
            "lines": sorted(
                line.text for s in store.list_sessions() for line in store.session_lines(s.id)
            ),
        }


def test_export_download_and_import_into_another_store_gives_the_same_records(
    server: RunningServer, tmp_path: Path
) -> None:
    exported = finished(server, start(server, {"kind": "export", "all": True})["id"])
    assert exported["status"] == "done", exported
    assert exported["done"] == exported["total"] > 0 and exported["phase"] == "done"
    download = httpx.get(server.url + exported["download"], timeout=60)
    assert download.status_code == 200
    assert download.headers["content-type"] == "application/x-tar"
    assert download.headers["content-disposition"].startswith("attachment")
    assert int(download.headers["content-length"]) == exported["result"]["bytes"]
    bundle = download.content

    other = tmp_path / "other"
    other.mkdir()
    git(other, "init", "-q", "-b", "main")
    agentkeep.init_store(other)
    with running_server(other / ".agentkeep") as second:
        response = httpx.post(
            second.url + "/api/v1/operations/import",
            content=bundle,
            headers={**second.auth, "Content-Type": "application/x-tar"},
            timeout=60,
        )
        assert response.status_code == 202, response.text
        imported = finished(second, response.json()["id"])
    assert imported["status"] == "done", imported
    assert imported["result"]["outcome"] == "created"
    assert imported["done"] == imported["total"]
    source = records(server.ctx.store_dir)
    assert records(other / ".agentkeep") == source
    assert any(PAYLOAD in body for _, body in source["notes"])


def test_an_import_of_a_broken_bundle_fails_and_writes_nothing(
    server: RunningServer, project: Path
) -> None:
    before = records(project / ".agentkeep")
    response = httpx.post(
        server.url + "/api/v1/operations/import",
        content=b"not a tar at all" * 100,
        headers={**server.auth, "Content-Type": "application/x-tar"},
    )
    assert response.status_code == 202
    state = finished(server, response.json()["id"])
    assert state["status"] == "failed" and state["error"]["code"] in ("invalid_input", "corrupt")
    assert records(project / ".agentkeep") == before


def test_backup_runs_in_the_background_and_reports_its_files(
    server: RunningServer, project: Path
) -> None:
    state = finished(server, start(server, {"kind": "backup"})["id"])
    assert state["status"] == "done", state
    assert state["phase"] == "done" and state["done"] == state["total"] > 0
    assert Path(state["result"]["path"]).is_dir()
    assert Path(state["result"]["path"]).parent == project / ".agentkeep" / "backups"


def test_progress_is_visible_while_running_and_one_operation_of_a_kind_runs_at_a_time(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    reached = threading.Event()

    def slow_backup(ops: Any, store: Any, op: Any, progress: Any) -> dict[str, Any]:
        progress(0, 3, "files")
        reached.set()
        assert release.wait(WAIT)
        progress(3, 3, "files")
        return {"files": 3}

    monkeypatch.setitem(operations.RUNNERS, "backup", slow_backup)
    first = start(server, {"kind": "backup"})
    assert reached.wait(WAIT)
    running = httpx.get(f"{server.url}/api/v1/operations/{first['id']}").json()
    assert (running["status"], running["phase"], running["done"], running["total"]) == (
        "running",
        "files",
        0,
        3,
    )
    second = httpx.post(
        server.url + "/api/v1/operations", json={"kind": "backup"}, headers=server.auth
    )
    assert second.status_code == 409 and second.json()["code"] == "conflict"
    # Another kind is not held up.
    other = finished(server, start(server, {"kind": "gc"})["id"])
    assert other["status"] == "done"
    listed = httpx.get(server.url + "/api/v1/operations").json()
    assert [row["id"] for row in listed["rows"]][:2] == [other["id"], first["id"]]
    release.set()
    done = finished(server, first["id"])
    assert (done["status"], done["done"], done["total"]) == ("done", 3, 3)


def test_bad_requests_are_refused_in_the_cli_shapes(server: RunningServer) -> None:
    post = server.url + "/api/v1/operations"
    unknown = httpx.post(post, json={"kind": "rm -rf"}, headers=server.auth)
    assert unknown.status_code == 400 and unknown.json()["code"] == "invalid_input"
    no_kind = httpx.post(post, json={}, headers=server.auth)
    assert no_kind.status_code == 400
    bad_ids = httpx.post(post, json={"kind": "export", "sessions": "1,2"}, headers=server.auth)
    assert bad_ids.status_code == 400 and bad_ids.json()["code"] == "invalid_input"
    as_json = httpx.post(post, json={"kind": "import"}, headers=server.auth)
    assert as_json.status_code == 400 and "/api/v1/operations/import" in as_json.json()["hint"]
    empty = httpx.post(
        post + "/import",
        content=b"",
        headers={**server.auth, "Content-Type": "application/x-tar"},
    )
    assert empty.status_code == 400
    assert httpx.get(server.url + "/api/v1/operations/nope").status_code == 404
    gc = finished(server, start(server, {"kind": "gc"})["id"])
    assert httpx.get(f"{server.url}/api/v1/operations/{gc['id']}/download").status_code == 404


@pytest.mark.parametrize("which", ["export", "import", "backup", "gc"])
def test_the_ops_report_progress_from_zero_to_total(
    project: Path, seeded: Seeded, tmp_path: Path, which: str
) -> None:
    seen: list[tuple[int, int, str]] = []

    def progress(done: int, total: int, phase: str) -> None:
        seen.append((done, total, phase))

    with agentkeep.open(project) as store:
        bundle = tmp_path / "b.tar"
        if which == "export":
            export_bundle(store, bundle, all=True, progress=progress)
        elif which == "backup":
            store_backup = tmp_path / "backup"
            from agentkeep.ops.backup import backup

            backup(store, store_backup, progress=progress)
        elif which == "gc":
            # The runner the server uses for an apply, with a real plan and store.
            plan = retention.plan_gc(store)
            assert len(plan.items) >= 4
            op = operations.Operation("t", "gc", {"apply": True}, plan=plan)
            operations.RUNNERS["gc"](None, store, op, progress)  # type: ignore[arg-type]
        else:
            export_bundle(store, bundle, all=True)
    if which == "import":
        other = tmp_path / "other"
        other.mkdir()
        git(other, "init", "-q", "-b", "main")
        agentkeep.init_store(other)
        with agentkeep.open(other) as target:
            import_bundle(target, bundle, progress=progress)
    phases: dict[str, list[tuple[int, int]]] = {}
    for done, total, phase in seen:
        phases.setdefault(phase, []).append((done, total))
    assert phases, seen
    for phase, steps in phases.items():
        total = steps[0][1]
        assert total > 0, phase
        assert steps[0][0] == 0 and steps[-1] == (total, total), (phase, steps)
        assert all(t == total for _, t in steps), (phase, steps)
        assert [d for d, _ in steps] == sorted(d for d, _ in steps), (phase, steps)
    if which == "gc":  # not only 0 then N: each row and each file as it goes
        assert [d for d, _ in phases["rows"]] == list(range(phases["rows"][0][1] + 1))
        assert [d for d, _ in phases["files"]] == list(range(phases["files"][0][1] + 1))


def test_starting_an_operation_needs_the_token(server: RunningServer) -> None:
    post = server.url + "/api/v1/operations"
    assert httpx.post(post, json={"kind": "backup"}).status_code == 401
    wrong = {"Authorization": "Bearer " + "x" * 43}
    assert httpx.post(post, json={"kind": "gc"}, headers=wrong).status_code == 403
    upload = httpx.post(
        post + "/import", content=b"bundle", headers={"Content-Type": "application/x-tar"}
    )
    assert upload.status_code == 401
    pin = httpx.post(f"{server.url}/api/v1/sessions/1/pin", json={"pinned": True})
    assert pin.status_code == 401
    assert httpx.get(post).json()["rows"] == []  # nothing started


# -- stopping the server with an operation running ----------------------------------------


def _blocking_backup(
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[threading.Event, threading.Event, list[operations.Operation]]:
    """A backup runner that starts, then waits for ``release``; ``begun`` once it runs."""
    begun, release = threading.Event(), threading.Event()
    ran: list[operations.Operation] = []

    def runner(ops: Any, store: Any, op: operations.Operation, progress: Any) -> dict[str, Any]:
        ran.append(op)
        progress(1, 3, "copying")
        begun.set()
        assert release.wait(WAIT)
        return {}

    monkeypatch.setitem(operations.RUNNERS, "backup", runner)
    return begun, release, ran


def test_stopping_waits_for_a_running_operation(
    project: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    begun, release, ran = _blocking_backup(monkeypatch)
    shutdown = operations.Operations.shutdown
    at_close: list[str] = []

    def releasing_shutdown(self: operations.Operations, grace: float | None = None) -> Any:
        release.set()  # the operation ends once the server has begun to stop
        return shutdown(self, WAIT)

    monkeypatch.setattr(operations.Operations, "shutdown", releasing_shutdown)
    with running_server(project / ".agentkeep") as server:
        close = server.ctx.close
        monkeypatch.setattr(server.ctx, "close", lambda: (at_close.append(ran[0].status), close()))
        start(server, {"kind": "backup"})
        assert begun.wait(WAIT)
    assert at_close == ["done"]  # it finished before the server closed its stores
    assert "abandoned" not in caplog.text


def test_stopping_logs_an_operation_it_abandons(
    project: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    begun, release, ran = _blocking_backup(monkeypatch)
    monkeypatch.setattr(operations, "SHUTDOWN_GRACE_SECONDS", 0.0)  # give up at once
    try:
        with (
            caplog.at_level("WARNING", logger="agentkeep.server"),
            running_server(project / ".agentkeep") as server,
        ):
            op_id = start(server, {"kind": "backup"})["id"]
            assert begun.wait(WAIT)
        abandoned = [r.getMessage() for r in caplog.records if "abandoned" in r.getMessage()]
        assert len(abandoned) == 1 and f"operation {op_id} (backup)" in abandoned[0]
        assert "copying at 1 of 3" in abandoned[0]
        assert ran[0].status == "running"
    finally:
        release.set()
