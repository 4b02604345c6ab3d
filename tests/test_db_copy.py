"""`agentkeep db copy --to URL|DIR` (issue 12, "Moving between backends") on real stores: a
real PostgreSQL, real files, a real copying process killed with SIGKILL at failpoints.

PostgreSQL comes from tests/helpers/pg.py (``pg_url``, ``pg_server``); without a server those
tests skip, and fail under ``AGENTKEEP_REQUIRE_ALL_TESTS=1``.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

import agentkeep
from agentkeep.errors import Conflict, Corrupt
from agentkeep.ops.copy import DERIVED, SHARED_BYTES, TABLES, copy_store

from conftest import Cli, git, run_agentkeep
from secretgen import generate

DESTINATIONS = ["sqlite", "postgres"]


def new_project(where: Path) -> Path:
    where.mkdir(parents=True)
    git(where, "init", "-q", "-b", "main")
    agentkeep.init_store(where)
    return where


def destination(kind: str, tmp_path: Path, name: str, request: pytest.FixtureRequest) -> str:
    """A place for a copy: a new project directory (SQLite) or a new schema (PostgreSQL)."""
    if kind == "sqlite":
        return str(tmp_path / name)
    return str(request.getfixturevalue("pg_url"))


def open_copy(target: str, project: Path) -> agentkeep.Store:
    """The store a copy made. A PostgreSQL copy is opened with the source's project
    directory, as a project that switched to it would be (its files stayed there)."""
    if target.startswith("postgresql"):
        return agentkeep.open(project, url=target)
    return agentkeep.open(target, url="")


# -- a store holding every noun ------------------------------------------------------------


def populate(store: agentkeep.Store) -> None:
    """Tasks (with a dependency, a parent, and a parent created after its child), notes,
    agents, worktrees, sessions with transcripts and hook captures, sealed and live
    streams, artifacts, metrics, integrations, idempotency keys, redactions, events."""
    wt = store.add_worktree(store.root / "wt-a", branch="feature-a").item
    agent = store.register_agent("builder", kind="claude", role="implementer").item
    epic = store.add_task("epic: rate limiting", labels=["epic"]).item
    child = store.add_task("limit the login route", parent_id=epic.id, labels=["api"]).item
    dep = store.add_task("measure the login latency", idempotency_key="k-measure").item
    store.add_dependency(child.id, dep.id)
    later = store.add_task("umbrella made afterwards").item
    store.update_task(epic.id, parent_id=later.id)  # a reference to a later row
    store.update_task(dep.id, status="done")
    store.claim_task(child.id, "builder")
    session = store.start_session(
        agent_id=agent.id, task_id=child.id, title="implement the limiter", command=["make"]
    ).item.id
    out = store.open_stream(session, "stdout")
    for i in range(120):
        out.write(f"compiling unit {i} of the limiter\n".encode())
    out.close()
    store.seal_stream(out.stream.id)
    err = store.open_stream(session, "stderr")
    err.write(b"warning: slow path taken\n")
    err.commit_progress()
    err.abandon()
    store.add_artifact(b"--- a/login.py\n+++ b/login.py\n" * 40, kind="diff", name="limiter.patch",
                       session_id=session)  # fmt: skip
    store.add_artifact(b"\x00\x01\x02 binary blob", kind="file", task_id=child.id)
    secret = generate()["github-classic"][0]
    store.add_note("handoff", f"the limiter uses a token bucket; token {secret} leaked",
                   session_id=session, task_id=child.id, data={"next": ["tests"]})  # fmt: skip
    store.add_note("decision", "buckets refill every second", agent_id=agent.id)
    store.record_metric("tokens", 1234.5, session_id=session, agent_id=agent.id,
                        labels={"model": "m1"})  # fmt: skip
    store.record_metric("cost_usd", 0.1 + 0.2, session_id=session)
    store.set_integration("tracker", kind="github", settings={"repo": "o/r"},
                          credential_ref="env:GH_TOKEN")  # fmt: skip
    with store.transaction() as tx:
        writer = store.capture_writer(tx)
        sid = writer.session("claude", "sess-copy-1", cwd=str(store.root))
        for seq, (role, text) in enumerate(
            [("user", "add a rate limiter"), ("assistant", "the limiter is a token bucket")], 1
        ):
            writer.message(sid, seq=seq, external_id=f"m{seq}", role=role, kind="text", text=text)
        writer.capture(
            source="claude",
            event="tool_post",
            dedupe_key="copy-capture-1",
            session_id=sid,
            payload={"tool_input": {"command": "pytest tests/test_limiter.py"}},
        )
    store.end_session(session, exit_code=0)
    store.lease_worktree(wt.id, "builder", ttl_seconds=600)
    store.catch_up_search()


def public_view(store: agentkeep.Store) -> dict[str, Any]:
    """What the public list methods return, as JSON."""
    view: dict[str, Any] = {
        "tasks": store.list_tasks(),
        "notes": store.list_notes(),
        "sessions": store.list_sessions(),
        "agents": store.list_agents(),
        "worktrees": store.list_worktrees(status=None),
        "metrics": store.list_metrics(),
        "artifacts": store.list_artifacts(),
        "events": store.events(),
        "streams": store.list_streams(),
        "integrations": store.list_integrations(),
    }
    out = {name: [r.to_dict() for r in rows] for name, rows in view.items()}
    out["transcripts"] = [store.session_record(s["id"]) for s in out["sessions"]]
    # What each search finds (ranking is the backend's own: the order may differ).
    records = ("message", "note", "task", "capture", "artifact")
    out["search"] = {
        word: sorted({(h.kind, h.id) for h in store.search(word, kinds=records, limit=100)})
        for word in ("limiter", "bucket", "rate", "pytest")
    }
    out["search"]["output"] = len(store.search("compiling", kinds=["output"], limit=200))
    return json.loads(json.dumps(out, sort_keys=True, default=str))


def hashes(result: Any) -> dict[str, tuple[int, str]]:
    return {t["table"]: (t["rows"], t["hash"]) for t in result.tables}


# -- round trip ----------------------------------------------------------------------------


@pytest.mark.sqlite_only("the round trip starts on SQLite; its second half copies from PostgreSQL")
def test_sqlite_to_postgres_to_sqlite_gives_the_same_records_and_hashes(
    store: agentkeep.Store, project: Path, tmp_path: Path, pg_url: str
) -> None:
    populate(store)
    original = public_view(store)
    there = copy_store(store, pg_url, batch=3)
    assert there.outcome == "copied" and there.verified and there.backend == "postgres"
    assert there.copied == there.rows > 40
    counts = {t["table"]: t["rows"] for t in there.tables}
    assert all(counts[name] > 0 for name in (
        "projects", "worktrees", "agents", "tasks", "task_deps", "sessions", "streams",
        "objects", "artifacts", "notes", "metrics", "messages", "captures", "events",
        "idempotency_keys", "redactions", "integrations",
    )), counts  # fmt: skip
    # Sealed streams' and objects' bytes went into PostgreSQL's shared storage; a live
    # stream stays a file of the machine writing it.
    live = [s for s in store.list_streams() if s.status != "sealed"]
    assert there.files_left == len(live) < len(store.list_streams())
    teammate = tmp_path / "teammate"  # another machine: none of the project's files
    teammate.mkdir()
    git(teammate, "init", "-q", "-b", "main")
    with agentkeep.open(teammate, url=pg_url) as theirs:
        for artifact in store.list_artifacts():
            assert theirs.read_artifact(artifact.id) == store.read_artifact(artifact.id)
        for stream in store.list_streams():
            if stream.status == "sealed":
                assert theirs.read_stream(stream.id, 0, stream.length) == store.read_stream(
                    stream.id, 0, stream.length
                )

    with open_copy(pg_url, project) as shared:
        assert public_view(shared) == original  # search included
        assert shared.check().ok, shared.check().problems
        # New rows get new ids: the identities moved past the copied ones.
        assert (
            shared.add_task("after the copy").item.id == max(t.id for t in store.list_tasks()) + 1
        )
        event = shared.record_event("copy.test", entity="task", entity_id=1).item
        assert event.seq == store.last_seq() + 2  # the new task's event came first
        back = copy_store(shared, str(tmp_path / "back"), batch=5)
    assert back.outcome == "copied" and back.backend == "sqlite"
    assert back.files == 4 and back.files_missing == 0
    with agentkeep.open(tmp_path / "back") as local:
        view = public_view(local)
        assert view["tasks"][-1]["title"] == "after the copy"
        view["tasks"].pop()
        view["events"] = view["events"][:-2]  # the task and the event added on PostgreSQL
        assert view == original
        assert local.check().ok
        for stream in store.list_streams():
            assert local.read_stream(stream.id, 0, stream.length) == store.read_stream(
                stream.id, 0, stream.length
            )
        for artifact in store.list_artifacts():
            assert local.read_artifact(artifact.id) == store.read_artifact(artifact.id)
            assert local.verify_artifact(artifact.id).ok
    # The same rows hash the same on both backends (tasks and events grew on PostgreSQL).
    mine, theirs = hashes(there), hashes(back)
    assert {k: v for k, v in mine.items() if k not in ("tasks", "events", "row_counts")} == {
        k: v for k, v in theirs.items() if k not in ("tasks", "events", "row_counts")
    }


def test_a_copy_into_a_directory_carries_the_files_and_search(
    store: agentkeep.Store, tmp_path: Path
) -> None:
    populate(store)
    original = public_view(store)
    result = copy_store(store, str(tmp_path / "mirror"), batch=4)
    assert result.files == 4 and result.file_bytes > 0
    with agentkeep.open(tmp_path / "mirror") as mirror:
        assert public_view(mirror) == original
        assert mirror.check().ok
        assert mirror.search("bucket")  # the index was rebuilt from the copied rows


# -- kill and resume -----------------------------------------------------------------------


# Each run counts from its own start: in batches of 3, the first kills land in the first
# tables, "copy:file" in the streams' files, the last ones in events.
KILLS = ["copy:batch:1", "copy:before_commit:3", "copy:table:2", "copy:file:1",
         "copy:file:2", "copy:batch:4", "copy:before_commit:6", "copy:batch:8"]  # fmt: skip


@pytest.mark.parametrize("kind", DESTINATIONS)
def test_a_copy_killed_at_any_point_finishes_when_run_again(
    kind: str,
    store: agentkeep.Store,
    project: Path,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    populate(store)
    original = public_view(store)
    target = destination(kind, tmp_path, "copy", request)
    reference = copy_store(store, str(tmp_path / "reference"), batch=3)
    command = ["--store", str(project), "db", "copy", "--to", target, "--batch", "3", "--json"]
    killed = 0
    for spec in KILLS:
        if kind == "postgres" and spec.startswith("copy:file"):
            continue  # no files are copied into PostgreSQL
        done = run_agentkeep(*command, cwd=project, env={"AGENTKEEP_FAILPOINT": spec})
        assert done.returncode == -9, (spec, done.returncode, done.stderr.decode())
        killed += 1
    assert killed >= 6
    finished = run_agentkeep(*command, cwd=project)
    assert finished.returncode == 0, finished.stderr.decode()
    result = json.loads(finished.stdout)
    assert result["outcome"] == "resumed" and result["verified"]
    assert 0 < result["copied"] < result["rows"]  # the killed runs had copied the rest
    assert hashes_of(result) == hashes(reference)
    with open_copy(target, project) as copy:
        assert public_view(copy) == original
    again = run_agentkeep(*command, cwd=project)
    assert again.returncode == 0 and json.loads(again.stdout)["outcome"] == "already_copied"


def hashes_of(result: dict[str, Any]) -> dict[str, tuple[int, str]]:
    return {t["table"]: (t["rows"], t["hash"]) for t in result["tables"]}


# -- refusals and verification -------------------------------------------------------------


@pytest.mark.parametrize("kind", DESTINATIONS)
def test_a_destination_holding_other_data_is_refused(
    kind: str,
    store: agentkeep.Store,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    store.add_task("ours")
    target = destination(kind, tmp_path, "theirs", request)
    other = new_project(tmp_path / "other")
    if kind == "postgres":
        with agentkeep.open(other, url=target, create=True) as theirs:
            theirs.add_task("somebody else's task")
    else:
        with agentkeep.open(new_project(Path(target))) as theirs:
            theirs.add_task("somebody else's task")
    with pytest.raises(Conflict, match="not empty: its table"):
        copy_store(store, target)
    with open_copy(target, other) as theirs:
        assert [t.title for t in theirs.list_tasks()] == ["somebody else's task"]

    # A copy of another store, even unfinished, is not resumed by this one either.
    elsewhere = destination(kind, tmp_path, "elsewhere", request) if kind == "sqlite" else None
    if elsewhere is not None:
        with agentkeep.open(other) as stranger:
            copy_store(stranger, elsewhere)
        with pytest.raises(Conflict, match="holds a copy of another store"):
            copy_store(store, elsewhere)
    result = Cli()("--store", str(store.root), "db", "copy", "--to", target, "--json")
    assert result.exit_code == 5, result.stderr
    assert "not empty" in result.error()["error"]


def test_the_destination_cannot_be_the_source(store: agentkeep.Store, project: Path) -> None:
    """Not its own directory: on SQLite that is the store itself; a project on a server
    has no database there, and no SQLite store is made beside its settings."""
    store.add_task("ours")
    config = (project / ".agentkeep" / "config.toml").read_bytes()
    result = Cli()("--store", str(project), "db", "copy", "--to", str(project), "--json")
    assert result.exit_code in (3, 5), result.stderr
    assert "is the store being copied" in result.stderr or "holds files but no" in result.stderr
    assert (project / ".agentkeep" / "config.toml").read_bytes() == config
    assert [t.title for t in store.list_tasks()] == ["ours"]


def test_a_copy_that_differs_from_its_source_fails_and_names_the_table(
    store: agentkeep.Store, project: Path, tmp_path: Path
) -> None:
    populate(store)
    target = tmp_path / "copy"
    copy_store(store, str(target))
    db = sqlite3.connect(target / ".agentkeep" / "state.db")
    db.execute("UPDATE notes SET body = 'changed behind its back' WHERE id = 1")
    db.commit()
    db.close()
    with pytest.raises(Corrupt, match=r"notes \(same 2 rows, different content\)"):
        copy_store(store, str(target))
    store.add_note("fact", "a note the copy lacks")
    result = Cli()("--store", str(project), "db", "copy", "--to", str(target), "--json")
    assert result.exit_code == 8
    assert "notes (3 rows in the source, 2 in the copy)" in result.error()["error"]


def test_every_table_is_copied_or_derived(tmp_path: Path, pg_url: Any, pg_server: Any) -> None:
    """A table a later migration adds must be named in TABLES or DERIVED, on both backends."""
    copied = {t.name for t in TABLES}
    assert not copied & DERIVED
    root = new_project(tmp_path / "p")
    db = sqlite3.connect(root / ".agentkeep" / "state.db")
    names = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    db.close()
    derived_here = {n for n in names if "_fts" in n or n.startswith("sqlite_")}
    assert names - derived_here - DERIVED == copied
    (tmp_path / "q").mkdir()
    agentkeep.open(tmp_path / "q", url=pg_url, create=True).close()
    with pg_server.connect() as conn:
        rows = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s", (pg_url.schema,)
        ).fetchall()
    pg_names = {r[0] for r in rows}
    assert {n for n in pg_names if "_fts" not in n} - DERIVED - SHARED_BYTES == copied


def test_cli_help_has_examples() -> None:
    result = Cli()("db", "copy", "--help")
    assert result.exit_code == 0
    assert "agentkeep db copy --to 'postgresql://" in result.stdout


# -- bundles across backends ---------------------------------------------------------------


def test_bundles_import_across_backends(
    store: agentkeep.Store, tmp_path: Path, pg_url: str
) -> None:
    from agentkeep.ops.bundle_export import export_bundle
    from agentkeep.ops.bundle_import import import_bundle

    populate(store)
    export_bundle(store, tmp_path / "all.tar", all=True)
    team = new_project_on(tmp_path / "team", pg_url)
    with agentkeep.open(team) as shared:
        shared.add_task("already on the team's board")  # takes id 1: the bundle's moves
        result = import_bundle(shared, tmp_path / "all.tar")
        assert result.outcome == "created"
        assert [(c["table"], c["old_id"]) for c in result.conflicts] == [("tasks", 1)]
        # Ids kept from the bundle moved the identities: new rows get free ids.
        added = shared.add_task("after the import").item
        assert added.id == 1 + max(t.id for t in shared.list_tasks() if t.id != added.id)
        assert shared.check().ok
        assert import_bundle(shared, tmp_path / "all.tar").outcome == "unchanged"
        for artifact in store.list_artifacts():
            assert shared.read_artifact(artifact.id) == store.read_artifact(artifact.id)
        sealed = next(s for s in store.list_streams() if s.status == "sealed")
        assert shared.read_stream(sealed.id) == store.read_stream(sealed.id)
        export_bundle(shared, tmp_path / "back.tar", all=True)
    with agentkeep.open(new_project(tmp_path / "back")) as local:
        assert import_bundle(local, tmp_path / "back.tar").outcome == "created"
        titles = sorted(t.title for t in local.list_tasks())
        assert titles == sorted(
            [t.title for t in store.list_tasks()]
            + ["already on the team's board", "after the import"]
        )
        assert local.check().ok


def new_project_on(where: Path, url: str) -> Path:
    where.mkdir(parents=True)
    git(where, "init", "-q", "-b", "main")
    agentkeep.init_store(where, url=url)
    return where


def test_a_source_at_an_older_schema_is_refused_before_a_destination_is_made(
    tmp_path: Path,
) -> None:
    from contract.backends import SqliteAdapter

    old = SqliteAdapter().create_at_version(tmp_path / "old", 7, tasks=["from before"])
    result = Cli()("--store", old.target, "db", "copy", "--to", str(tmp_path / "copy"))
    assert result.exit_code == 5 and "has schema 7" in result.stderr
    assert not (tmp_path / "copy").exists()


@pytest.mark.sqlite_only("writes NUL into the source by hand, which only SQLite text can hold")
def test_a_value_postgresql_cannot_hold_fails_naming_the_table(
    store: agentkeep.Store, project: Path, pg_url: str
) -> None:
    """SQLite text may hold NUL (written by hand); PostgreSQL text cannot: the copy stops
    with an error naming the table and batch, and a rerun after a fix resumes."""
    store.add_note("fact", "fine")
    bad = store.add_note("fact", "to be broken").item.id
    db = sqlite3.connect(project / ".agentkeep" / "state.db")
    db.execute("UPDATE notes SET body = 'a' || char(0) || 'b' WHERE id = ?", (bad,))
    db.commit()
    result = Cli()("--store", str(project), "db", "copy", "--to", pg_url, "--batch", "1", "--json")
    assert result.exit_code == 3, result.stderr
    assert f"cannot copy notes (the batch from key [{bad}])" in result.error()["error"]
    db.execute("UPDATE notes SET body = 'a b' WHERE id = ?", (bad,))
    db.commit()
    db.close()
    again = Cli()("--store", str(project), "db", "copy", "--to", pg_url, "--json")
    assert again.exit_code == 0, again.stderr
    assert again.json()["outcome"] == "resumed"
