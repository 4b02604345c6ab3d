"""Retention: gc plans and applies policies, honours pins and live data, shrinks the
database, survives crashes and a full disk; usage; pin/unpin. Real stores, real files.

Data is made "old" by rewriting created_at through ``store.transaction()``; policies come
from ``agentkeep.open(..., config=...)`` (the flag layer) or the project's config.toml.
"""

from __future__ import annotations

import json
import os
import random
import signal
import string
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

import agentkeep
from agentkeep.config import RETENTION_KINDS, SETTINGS_BY_KEY, Config, parse_byte_size
from agentkeep.errors import InvalidInput, NotFound, StorageFull
from agentkeep.files import RESERVE_NAME, ensure_reserve
from agentkeep.ops.retention import apply_gc, pin, plan_gc, usage
from agentkeep.services.artifacts import object_path

from conftest import Cli, fill_disk, mounted_tmpfs, run_agentkeep

OLD = "2000-01-01T00:00:00.000Z"
OLDER = "1999-01-01T00:00:00.000Z"


# -- helpers ----------------------------------------------------------------------------


def recorded(
    store: agentkeep.Store, data: bytes = b"line\n" * 2000, *, seal: bool = True, end: bool = True
) -> tuple[int, int]:
    """A session with one stdout stream holding ``data``: (session id, stream id)."""
    session = store.start_session(source="test").item
    writer = store.open_stream(session.id, "stdout")
    writer.write(data)
    stream = writer.close()
    if end:
        store.end_session(session.id)
    if seal:
        store.seal_stream(stream.id)
    return session.id, stream.id


def age(store: agentkeep.Store, table: str, ids: list[int], when: str = OLD) -> None:
    with store.transaction() as tx:
        for ident in ids:
            tx.execute(f"UPDATE {table} SET created_at = ? WHERE id = ?", (when, ident))


@contextmanager
def policy(project: Path, **settings: Any) -> Iterator[agentkeep.Store]:
    """The store opened with retention settings: ``policy(p, streams__max_age_days=1)``."""
    overrides = {"retention." + k.replace("__", "."): v for k, v in settings.items()}
    with agentkeep.open(project, config=overrides) as opened:
        yield opened


def file_bytes(store_dir: Path) -> dict[str, int]:
    """Every stream and object file (relative path -> size)."""
    out = {}
    for top in ("streams", "objects"):
        for root, _, names in os.walk(store_dir / top):
            for name in names:
                path = Path(root) / name
                out[str(path.relative_to(store_dir))] = path.stat().st_size
    return out


def assert_no_row_without_file(store: agentkeep.Store) -> None:
    for stream in store.list_streams():
        assert (store.store_dir / stream.path).exists(), f"stream {stream.id} lost its file"
    for row in store._rows("SELECT sha256, encoding FROM objects"):
        assert object_path(store.store_dir, row[0], row[1]).exists(), f"object {row[0]} lost"
    assert store.check().ok


def event_count(store: agentkeep.Store, kind: str) -> int:
    return store._count("SELECT count(*) FROM events WHERE kind = ?", (kind,))


# -- configuration ----------------------------------------------------------------------


def test_every_kind_has_three_documented_settings_defaulting_to_no_limit() -> None:
    for kind in RETENTION_KINDS:
        for name in ("max_age_days", "max_total_bytes", "keep_last_sessions"):
            setting = SETTINGS_BY_KEY[f"retention.{kind}.{name}"]
            assert setting.default == 0
            assert len(setting.help) > 40


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (0, 0),
        (4096, 4096),
        ("4096", 4096),
        ("500MB", 500_000_000),
        ("2GiB", 2 * 1024**3),
        ("1.5 kib", 1536),
        ("10kb", 10_000),
        ("3 b", 3),
    ],
)
def test_byte_sizes_parse(raw: Any, expected: int) -> None:
    assert parse_byte_size(raw) == expected


@pytest.mark.parametrize("raw", ["", "MB", "-1", "5XB", "nan", "inf", True, 1.5, "1e30GB"])
def test_bad_byte_sizes_are_refused(raw: Any) -> None:
    with pytest.raises(ValueError):
        parse_byte_size(raw)


def test_policy_from_the_project_config_file(project: Path) -> None:
    config_file = project / ".agentkeep" / "config.toml"
    config_file.write_text('[retention.log]\nmax_total_bytes = "1MiB"\nmax_age_days = 7\n')
    loaded = Config.load(project_file=config_file)
    assert loaded["retention.log.max_total_bytes"] == 1024 * 1024
    assert loaded["retention.log.max_age_days"] == 7
    config_file.write_text('[retention.log]\nmax_total_bytes = "lots"\n')
    with pytest.raises(InvalidInput, match=r"retention\.log\.max_total_bytes"):
        Config.load(project_file=config_file)


# -- planning and applying --------------------------------------------------------------


def test_without_a_policy_nothing_is_deleted(store: agentkeep.Store, cli: Cli) -> None:
    _, stream_id = recorded(store)
    artifact = store.add_artifact(b"old log", kind="log").item
    age(store, "streams", [stream_id])
    age(store, "artifacts", [artifact.id])
    assert plan_gc(store).items == []
    assert apply_gc(store).files_deleted == 0
    assert store.get_stream(stream_id) and store.get_artifact(artifact.id)
    result = cli("gc")
    assert result.exit_code == 0 and "no retention policy is set" in result.stdout


def test_dry_run_equals_apply_reclaims_what_it_reports_and_second_apply_is_a_noop(
    project: Path, store: agentkeep.Store
) -> None:
    old_session, old_stream = recorded(store, os.urandom(50_000))
    _, new_stream = recorded(store, os.urandom(40_000))
    old_log = store.add_artifact(os.urandom(30_000), kind="log", name="old.log").item
    new_log = store.add_artifact(os.urandom(20_000), kind="log", name="new.log").item
    age(store, "streams", [old_stream])
    age(store, "artifacts", [old_log.id])

    with policy(project, streams__max_age_days=30, log__max_age_days=30) as gcs:
        plan = plan_gc(gcs)
        before = file_bytes(gcs.store_dir)
        result = apply_gc(gcs)
        after = file_bytes(gcs.store_dir)
        assert result.plan.items == plan.items
        assert {(i.what, i.id) for i in plan.items} == {
            ("stream", old_stream),
            ("artifact", old_log.id),
            ("object", old_log.sha256),
        }
        assert all(i.reason == "older than 30 days" for i in plan.items if i.what != "object")
        gone = set(before) - set(after)
        assert sum(before[path] for path in gone) == plan.bytes == result.file_bytes_reclaimed
        assert set(after) <= set(before) and len(gone) == result.files_deleted == 2
        assert result.bytes_reclaimed >= result.file_bytes_reclaimed
        # Sessions stay: only their bytes go.
        assert gcs.get_session(old_session).id == old_session
        with pytest.raises(NotFound):
            gcs.get_stream(old_stream)
        assert gcs.get_stream(new_stream).status == "sealed"
        assert gcs.read_artifact(new_log.id)
        for kind in ("stream.deleted", "artifact.deleted", "object.deleted"):
            assert event_count(gcs, kind) == 1
        assert_no_row_without_file(gcs)

        again = apply_gc(gcs)
        assert again.plan.items == [] and again.files_deleted == 0
        assert file_bytes(gcs.store_dir) == after
        assert event_count(gcs, "stream.deleted") == 1


def test_apply_reports_progress_item_by_item(project: Path, store: agentkeep.Store) -> None:
    streams = [recorded(store, os.urandom(5_000))[1] for _ in range(5)]
    age(store, "streams", streams)
    seen: list[tuple[int, int, str]] = []
    with policy(project, streams__max_age_days=30) as gcs:
        result = apply_gc(
            gcs, progress=lambda done, total, phase: seen.append((done, total, phase))
        )
    assert result.files_deleted == 5
    assert [s for s in seen if s[2] == "rows"] == [(n, 5, "rows") for n in range(6)]
    assert [s for s in seen if s[2] == "files"] == [(n, 5, "files") for n in range(6)]
    assert seen[-2:] == [(0, 1, "reclaim"), (1, 1, "reclaim")]
    seen.clear()
    with policy(project, streams__max_age_days=30) as gcs:
        apply_gc(gcs, progress=lambda *step: seen.append(step))
    assert seen == []  # nothing left to delete, nothing reported


def test_pinned_and_live_data_is_never_deleted(project: Path, store: agentkeep.Store) -> None:
    pinned_session, pinned_stream = recorded(store)
    _, plain_stream = recorded(store)
    running_session, live_stream = recorded(store, seal=False, end=False)
    closed_stream = recorded(store, seal=False)[1]  # ended, closed but not sealed
    on_pinned = store.add_artifact(b"attached", kind="log", session_id=pinned_session).item
    pinned_artifact = store.add_artifact(b"keep me", kind="log").item
    loose = store.add_artifact(b"expendable", kind="log").item
    age(store, "streams", [pinned_stream, plain_stream, live_stream, closed_stream])
    age(store, "artifacts", [on_pinned.id, pinned_artifact.id, loose.id])
    assert pin(store, "session", pinned_session).outcome == "updated"
    assert pin(store, "artifact", pinned_artifact.id).outcome == "updated"

    with policy(project, streams__max_age_days=1, log__max_age_days=1) as gcs:
        result = apply_gc(gcs)
        deleted = {(i.what, i.id) for i in result.plan.items}
        assert deleted == {("stream", plain_stream), ("artifact", loose.id)} | {
            ("object", loose.sha256)
        }
        for stream_id in (pinned_stream, live_stream, closed_stream):
            assert gcs.get_stream(stream_id)
        assert gcs.read_artifact(on_pinned.id) == b"attached"
        assert gcs.read_artifact(pinned_artifact.id) == b"keep me"
        assert gcs.get_session(running_session).status == "running"

        # A sealed stream of a session still running is live too.
        gcs.seal_stream(live_stream, abandoned=True)
        assert plan_gc(gcs).items == []
        # Unpinning hands the data back to the policy.
        assert pin(gcs, "session", pinned_session, False).outcome == "updated"
        assert pin(gcs, "session", pinned_session, False).outcome == "unchanged"
        assert {(i.what, i.id) for i in plan_gc(gcs).items} == {
            ("stream", pinned_stream),
            ("artifact", on_pinned.id),
            ("object", on_pinned.sha256),
        }
        assert_no_row_without_file(gcs)


def test_a_shared_object_survives_until_its_last_artifact_goes(
    project: Path, store: agentkeep.Store
) -> None:
    first = store.add_artifact(b"same bytes " * 500, kind="log", name="a").item
    second = store.add_artifact(b"same bytes " * 500, kind="file", name="b").item
    assert first.sha256 == second.sha256
    path = object_path(store.store_dir, first.sha256, first.encoding)
    age(store, "artifacts", [first.id])
    with policy(project, log__max_age_days=1, file__max_age_days=1) as gcs:
        result = apply_gc(gcs)
        assert [(i.what, i.id) for i in result.plan.items] == [("artifact", first.id)]
        assert result.plan.bytes == 0 and path.exists()
        assert gcs.read_artifact(second.id) == b"same bytes " * 500
        age(gcs, "artifacts", [second.id])
        result = apply_gc(gcs)
        assert [i.what for i in result.plan.items] == ["artifact", "object"]
        assert result.plan.bytes == result.file_bytes_reclaimed > 0
        assert not path.exists()
        assert_no_row_without_file(gcs)


def test_max_total_bytes_deletes_oldest_first_and_keep_last_sessions_protects(
    project: Path, store: agentkeep.Store
) -> None:
    sessions = [store.start_session(source="test").item.id for _ in range(5)]
    artifacts = [
        store.add_artifact(os.urandom(10_000), kind="file", session_id=sid).item.id
        for sid in sessions
    ]
    for index, artifact_id in enumerate(artifacts):  # oldest first, by created_at
        age(store, "artifacts", [artifact_id], f"2001-01-0{index + 1}T00:00:00.000Z")
    with policy(project, file__max_total_bytes=25_000) as gcs:
        plan = plan_gc(gcs)
        assert [i.id for i in plan.items if i.what == "artifact"] == artifacts[:3]
        assert "over max_total_bytes" in plan.items[0].reason
    with policy(project, file__max_total_bytes="25KB", file__keep_last_sessions=4) as gcs:
        # The 4 newest sessions keep theirs; only the oldest may go, leaving 40 KB > 25 KB.
        plan = plan_gc(gcs)
        assert [i.id for i in plan.items if i.what == "artifact"] == artifacts[:1]
        apply_gc(gcs)
        assert [a.id for a in gcs.list_artifacts(limit=0)] != []
        assert plan_gc(gcs).items == []


def test_a_plan_never_grows_between_dry_run_and_apply(
    project: Path, store: agentkeep.Store
) -> None:
    first = store.add_artifact(b"one", kind="log").item
    age(store, "artifacts", [first.id])
    with policy(project, log__max_age_days=1) as gcs:
        seen = plan_gc(gcs)
        later = gcs.add_artifact(b"two", kind="log").item
        age(gcs, "artifacts", [later.id])
        result = apply_gc(gcs, seen)
        assert {i.id for i in result.plan.items if i.what == "artifact"} == {first.id}
        assert gcs.read_artifact(later.id) == b"two"


def test_archive_keeps_files_and_rows_before_deleting(
    project: Path, store: agentkeep.Store, tmp_path: Path
) -> None:
    _, stream_id = recorded(store, b"archived output\n" * 100)
    artifact = store.add_artifact(b"archived artifact", kind="log").item
    age(store, "streams", [stream_id])
    age(store, "artifacts", [artifact.id])
    stream = store.get_stream(stream_id)
    sealed = (store.store_dir / stream.path).read_bytes()
    with policy(project, streams__max_age_days=1, log__max_age_days=1) as gcs:
        result = apply_gc(gcs, archive_dir=tmp_path / "archive")
    assert result.archive is not None
    archive = Path(result.archive)
    assert (archive / stream.path).read_bytes() == sealed
    records = [json.loads(line) for line in (archive / "records.jsonl").read_text().splitlines()]
    assert sorted(r["what"] for r in records) == ["artifact", "object", "stream"]
    assert {r["row"].get("id") for r in records if r["what"] == "stream"} == {stream_id}
    obj = next(r for r in records if r["what"] == "object")["row"]
    assert (archive / object_path(Path(), obj["sha256"], obj["encoding"])).exists()


def test_deleting_many_rows_shrinks_the_database_file(
    project: Path, store: agentkeep.Store
) -> None:
    # Letters at random: PostgreSQL compresses a long value, and "y" * 6000 took a few
    # dozen bytes there (SQLite stores it whole).
    filler = "".join(random.Random(300).choices(string.ascii_lowercase + " ", k=6000))
    ids = [
        store.add_artifact(f"{n}".encode(), kind="payload", data={"preview": filler}).item.id
        for n in range(300)
    ]
    age(store, "artifacts", ids)
    store.maintenance.checkpoint()
    before = store.schema_status()
    size_before = store.status().db_bytes
    with policy(project, payload__max_age_days=1) as gcs:
        result = apply_gc(gcs)
    with agentkeep.open(project) as reopened:
        after = reopened.schema_status()
        assert_no_row_without_file(reopened)
        size_after = reopened.status().db_bytes
    assert result.plan.artifacts == 300
    assert after.freelist_count == 0
    # The artifact rows held ~1.8 MB; the pages are returned, not kept on the free list.
    assert after.page_count * after.page_size < before.page_count * before.page_size - 1_000_000
    assert size_after < size_before - 1_000_000
    assert result.db_bytes_reclaimed > 1_000_000


# -- crashes ----------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("point", ["gc:after_rows_deleted", "gc:mid_unlink"])
def test_a_crash_during_gc_leaves_orphan_files_never_rows_without_files(
    project: Path, store: agentkeep.Store, point: str
) -> None:
    streams = [recorded(store, os.urandom(5000))[1] for _ in range(3)]
    artifacts = [store.add_artifact(os.urandom(5000), kind="log").item for _ in range(3)]
    age(store, "streams", streams)
    age(store, "artifacts", [a.id for a in artifacts])
    config = project / ".agentkeep" / "config.toml"
    with config.open("a") as settings:  # after the store's own (a PostgreSQL store's URL)
        settings.write("[retention.streams]\nmax_age_days = 1\n[retention.log]\nmax_age_days = 1\n")
    before = file_bytes(store.store_dir)
    done = run_agentkeep("gc", "--apply", cwd=project, env={"AGENTKEEP_FAILPOINT": point})
    assert done.returncode == -signal.SIGKILL, done.stderr
    with agentkeep.open(project) as reopened:
        assert reopened.list_streams() == [] and reopened.list_artifacts(limit=0) == []
        assert_no_row_without_file(reopened)
        left = file_bytes(reopened.store_dir)
        # Rows committed first: every file still there is an orphan for doctor.
        assert set(left) <= set(before)
        expected_left = 6 if point == "gc:after_rows_deleted" else 5
        assert len(left) == expected_left
        assert plan_gc(reopened).items == []
    assert not (project / ".agentkeep" / RESERVE_NAME).exists()  # released, not recreated
    again = run_agentkeep("gc", "--apply", "--json", cwd=project)
    assert again.returncode == 0 and json.loads(again.stdout)["plan"]["items"] == []
    assert (project / ".agentkeep" / RESERVE_NAME).exists()
    # The orphans are doctor's to remove.
    fixed = run_agentkeep("doctor", "--fix", cwd=project)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert file_bytes(project / ".agentkeep") == {}


# -- a full disk ------------------------------------------------------------------------


@pytest.mark.slow
def test_gc_works_on_a_full_disk(tmp_path: Path) -> None:
    with mounted_tmpfs(tmp_path / "disk") as disk:
        agentkeep.init_store(disk)
        store_dir = disk / ".agentkeep"
        assert ensure_reserve(store_dir)
        with agentkeep.open(disk) as store:
            added = []
            with pytest.raises(StorageFull):
                for _ in range(100):
                    added.append(store.add_artifact(os.urandom(256 * 1024), kind="file").item)
            assert added, "the disk filled before a single artifact fit"
            age(store, "artifacts", [a.id for a in added[: len(added) // 2]])
            # Another program takes the last bytes; an empty WAL must grow to write at all.
            store._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            fill_disk(disk / "filler")
            with pytest.raises(StorageFull):
                store.add_artifact(b"tiny", kind="file")
            free_before = os.statvfs(disk).f_bavail
        with agentkeep.open(disk, config={"retention.file.max_age_days": 1}) as store:
            result = apply_gc(store)
            assert result.plan.artifacts == len(added) // 2
            # The stored sizes, not 256 KiB each: text inside a binary file is redacted
            # (docs/design.md), and random bytes now and then hold something shaped like
            # `key=<10+ word characters>`, stored as a marker of another length.
            aged = added[: len(added) // 2]
            assert result.file_bytes_reclaimed >= sum(a.stored_bytes for a in aged)
            assert os.statvfs(disk).f_bavail > free_before
            assert_no_row_without_file(store)
            assert result.reserve  # recreated once space was back
            written = store.add_artifact(os.urandom(256 * 1024), kind="file").item
            assert store.verify_artifact(written.id).ok


_LIMITED_GC = """
import os, resource, signal, sys
import agentkeep
from agentkeep.errors import StorageFull
from agentkeep.ops.retention import apply_gc
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
limit = int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
with agentkeep.open(sys.argv[1], config={"retention.file.max_age_days": 1}) as store:
    try:
        store.add_artifact(os.urandom(2 * limit), kind="file")
        print("stored")
    except StorageFull:
        print("full")
    result = apply_gc(store)
    print(result.plan.artifacts, result.file_bytes_reclaimed)
    store.add_artifact(os.urandom(limit // 4), kind="file")
    print("written")
"""


@pytest.mark.slow
def test_gc_under_a_file_size_limit(project: Path, store: agentkeep.Store) -> None:
    """The unprivileged stand-in for a full disk: RLIMIT_FSIZE makes big writes fail with
    EFBIG (StorageFull) while gc's own small writes still fit."""
    old = [store.add_artifact(os.urandom(100_000), kind="file").item for _ in range(3)]
    age(store, "artifacts", [a.id for a in old])
    store.maintenance.checkpoint()
    limit = max(store.status().db_bytes * 2, 1024 * 1024)
    done = subprocess.run(
        [sys.executable, "-c", _LIMITED_GC, str(project), str(limit)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:3] == [
        "full",
        f"3 {sum(a.stored_bytes for a in old)}",
        "written",
    ]
    assert_no_row_without_file(store)


# -- a random schedule ------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(4))
def test_random_schedule_keeps_the_invariants(project: Path, seed: int) -> None:
    """add / pin / unpin / expire / gc in a random order: after every gc no row lacks its
    file, everything pinned (or of a pinned session) is intact, and a second gc is a no-op."""
    rng = random.Random(seed)
    contents = [os.urandom(3000) for _ in range(4)]  # a small pool, so objects are shared
    with agentkeep.open(project) as store:
        for _ in range(40):
            step = rng.choice(["artifact", "artifact", "session", "pin", "expire", "gc"])
            artifacts = store.list_artifacts(limit=0)
            sessions = store.list_sessions(limit=0)
            if step == "artifact":
                session_id = rng.choice([None, *[s.id for s in sessions]])
                store.add_artifact(
                    rng.choice(contents),
                    kind=rng.choice(["log", "file"]),
                    name=f"n{rng.randrange(1000)}",
                    session_id=session_id,
                )
            elif step == "session":
                recorded(store, rng.choice(contents), seal=rng.random() < 0.8)
            elif step == "pin" and (artifacts or sessions):
                if sessions and rng.random() < 0.5:
                    pin(store, "session", rng.choice(sessions).id, rng.random() < 0.6)
                elif artifacts:
                    pin(store, "artifact", rng.choice(artifacts).id, rng.random() < 0.6)
            elif step == "expire" and artifacts:
                age(store, "artifacts", [rng.choice(artifacts).id])
                streams = store.list_streams()
                if streams:
                    age(store, "streams", [rng.choice(streams).id])
            elif step == "gc":
                _gc_and_check(project, rng)


def _gc_and_check(project: Path, rng: random.Random) -> None:
    settings = {
        "retention.streams.max_age_days": rng.choice([0, 1]),
        "retention.log.max_age_days": rng.choice([0, 1]),
        "retention.file.max_total_bytes": rng.choice([0, 5000, 10_000]),
        "retention.file.keep_last_sessions": rng.choice([0, 1]),
    }
    with agentkeep.open(project, config=settings) as store:
        pinned_sessions = {s.id for s in store.list_sessions(limit=0) if s.pinned}
        protected = {
            a.id
            for a in store.list_artifacts(limit=0)
            if a.pinned or a.session_id in pinned_sessions
        }
        kept_streams = {
            s.id
            for s in store.list_streams()
            if s.status != "sealed" or s.session_id in pinned_sessions
        }
        plan = plan_gc(store)
        result = apply_gc(store)
        assert result.plan.items == plan.items
        assert protected <= {a.id for a in store.list_artifacts(limit=0)}
        assert kept_streams <= {s.id for s in store.list_streams()}
        for artifact_id in protected:
            assert store.verify_artifact(artifact_id).ok
        assert_no_row_without_file(store)
        assert apply_gc(store).plan.items == []


# -- usage, pins and the CLI ------------------------------------------------------------


def test_usage_shows_where_the_bytes_are(store: agentkeep.Store) -> None:
    session_id, stream_id = recorded(store, b"hello world\n" * 5000)
    live_session, _ = recorded(store, b"still going\n", seal=False, end=False)
    store.add_artifact(os.urandom(7000), kind="log", session_id=session_id)
    report = usage(store)
    areas = {a.name: a for a in report.areas}
    assert set(areas) >= {"database", "wal", "streams (live)", "streams (sealed)", "objects"}
    sealed = areas["streams (sealed)"]
    assert sealed.detail["raw_bytes"] == 12 * 5000
    assert sealed.bytes == store.get_stream(stream_id).stored_bytes < 12 * 5000
    assert areas["streams (live)"].detail == {"count": 1, "raw_bytes": 12}
    assert areas["objects"].bytes == 7000
    assert report.total_bytes == sum(a.bytes for a in report.areas)
    if report.tables:  # dbstat is available in this SQLite
        assert {"events", "artifacts", "streams"} <= set(report.tables)
    by_session = {g.key: g for g in usage(store, by="session").groups}
    assert by_session[f"session {session_id}"].artifacts == 7000
    assert by_session[f"session {live_session}"].streams == 12
    by_kind = {g.key: g.bytes for g in usage(store, by="kind").groups}
    assert by_kind["log"] == 7000 and by_kind["streams"] == sealed.bytes + 12
    assert [g.key for g in usage(store, by="agent").groups] == ["no agent"]
    assert len(usage(store, by="day").groups) == 1
    with pytest.raises(InvalidInput):
        usage(store, by="color")


def test_pin_and_unpin_report_outcomes_and_emit_events(store: agentkeep.Store) -> None:
    artifact = store.add_artifact(b"x", kind="log").item
    assert pin(store, "artifact", artifact.id).outcome == "updated"
    assert pin(store, "artifact", artifact.id).outcome == "unchanged"
    assert store.get_artifact(artifact.id).pinned == 1
    assert pin(store, "artifact", artifact.id, False).outcome == "updated"
    assert event_count(store, "artifact.pinned") == 1
    assert event_count(store, "artifact.unpinned") == 1
    with pytest.raises(NotFound):
        pin(store, "session", 999)
    with pytest.raises(InvalidInput):
        pin(store, "task", 1)


def test_cli_gc_dry_run_prints_what_apply_deletes(project: Path, cli: Cli) -> None:
    with agentkeep.open(project) as store:
        _, stream_id = recorded(store)
        age(store, "streams", [stream_id])
    assert cli("config", "set", "retention.streams.max_age_days", "30").exit_code == 0
    dry = cli("gc")
    assert dry.exit_code == 0
    assert "older than 30 days" in dry.stdout and "would delete 1 stream" in dry.stdout
    planned = cli("gc", "--json").json()
    assert planned["applied"] is False and planned["streams"] == 1
    applied = cli("gc", "--apply", "--json").json()
    assert applied["applied"] is True
    assert applied["plan"]["items"] == planned["items"]
    assert applied["file_bytes_reclaimed"] == planned["bytes"] > 0
    assert "nothing to delete" in cli("gc", "--apply").stdout
    assert cli("gc", "--archive", "somewhere").exit_code == 2


def test_cli_usage_and_pin(project: Path, cli: Cli) -> None:
    with agentkeep.open(project) as store:
        session_id, _ = recorded(store)
    table = cli("usage", "--by", "session")
    assert table.exit_code == 0 and f"session {session_id}" in table.stdout
    report = cli("usage", "--json").json()
    assert report["schema_version"] == 1 and report["areas"][0]["name"] == "database"
    pinned = cli("pin", "session", str(session_id), "--json").json()
    assert pinned["outcome"] == "updated" and pinned["pin"]["pinned"] is True
    assert "already pinned" in cli("pin", "session", str(session_id)).stdout
    assert cli("unpin", "session", str(session_id)).stdout.startswith("updated")
    missing = cli("pin", "artifact", "99", "--json")
    assert missing.exit_code == 4 and "does not exist" in missing.error()["error"]


def test_usage_bar_chart_on_a_terminal() -> None:
    from agentkeep.cli.retention_cmds import render_usage

    report = {
        "total_bytes": 3072,
        "areas": [{"name": "database", "bytes": 2048}, {"name": "objects", "bytes": 1024}],
        "tables": {},
        "by": None,
        "groups": [],
    }
    bars = render_usage(report, bars=True).splitlines()
    full = next(line for line in bars if "database" in line)
    half = next(line for line in bars if "objects" in line)
    assert full.count("█") == 32 and half.count("█") == 16
    assert "█" not in render_usage(report, bars=False)


@pytest.mark.sqlite_only(
    "PostgreSQL's bytes per table are file sizes, measured every time (nothing kept); "
    "test_pg_maintenance checks them"
)
def test_usage_measures_the_tables_again_only_after_a_write(
    store: agentkeep.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bytes per table (a read of every page) are kept while the database is
    unchanged, so they are still exact; a commit, or full=True, measures them again.
    Counted at the maintenance API (the seam)."""
    from agentkeep.backends.sqlite.maintenance import SQLiteMaintenance
    from agentkeep.ops import verified

    monkeypatch.setattr(verified, "RACY_S", 0.0)
    measured: list[dict[str, int]] = []
    real = SQLiteMaintenance.table_bytes

    def counting(self: SQLiteMaintenance) -> dict[str, int]:
        measured.append(real(self))
        return measured[-1]

    monkeypatch.setattr(SQLiteMaintenance, "table_bytes", counting)
    first = usage(store).tables
    assert len(measured) == 1 and first == measured[0]
    assert list(first.values()) == sorted(first.values(), reverse=True)  # largest first
    kept = usage(store).tables  # nothing written: the kept figures, in the same order
    assert list(kept.items()) == list(first.items()) and len(measured) == 1
    for i in range(50):
        store.add_note("fact", f"{i} " + "x" * 2000)
    grown = usage(store).tables
    assert len(measured) == 2 and grown["notes"] > first.get("notes", 0)
    assert usage(store, full=True).tables == grown and len(measured) == 3
