"""Retention: what ``agentkeep gc`` deletes, where the bytes are, and pins.

Nothing is deleted unless the user wrote a policy (principle 7 of docs/design.md). Policies live in
``config.toml`` per kind — ``streams`` and the artifact kinds — as ``retention.<kind>.*``
(config.py). The rules, in order:

1. **Protected, whatever a policy says:** a pinned session's streams and the artifacts
   attached to it; a pinned artifact; a stream that is not sealed or whose session is still
   ``running`` (live); the data of the newest ``keep_last_sessions`` sessions that have data
   of that kind.
2. ``max_age_days``: an unprotected item created longer ago than that is deleted.
3. ``max_total_bytes``: the unprotected items of the kind are deleted oldest first until
   the kind occupies at most that many bytes (protected items count towards the total but
   are never deleted). An artifact kind occupies the on-disk bytes of the distinct objects
   its artifacts refer to.
4. An object (its row and its file) goes only when no artifact row refers to it any more;
   its bytes are counted once.

:func:`plan_gc` lists exactly what :func:`apply_gc` deletes (the dry run). ``apply_gc``
recomputes the plan under the exclusive maintenance lock and the writer lock, so nothing
can change in between, and never deletes an item the given plan did not list.

Deletion order (the artifact protocol run backwards): rows deleted and their events
written in one transaction, COMMIT, then the files unlinked, all under the writer lock (so
a concurrent add of the same content cannot publish a file between the commit and the
unlink). A crash after the commit leaves orphan files only — which ``doctor --fix``
removes — never a row without its file. Then the backend's ``reclaim`` (SQLite: an
incremental vacuum and a WAL checkpoint) returns the freed pages to the file system. The
reserve file (files.py) is released first, so gc has room for its transaction on a full
disk, and recreated last.
Failpoints: ``gc:after_rows_deleted`` (after the commit), ``gc:mid_unlink``.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentkeep.config import RETENTION_KINDS, Config
from agentkeep.errors import Conflict, InvalidInput, NotFound
from agentkeep.failpoints import failpoint
from agentkeep.files import (
    PRIVATE_DIR,
    PRIVATE_FILE,
    ensure_reserve,
    file_size,
    fsync_path,
    maintenance_lock,
    make_dirs,
    release_reserve,
    translate_os_error,
    write_new_file,
)
from agentkeep.models import Outcome, Record
from agentkeep.ops.verified import Verified
from agentkeep.services.artifacts import blob_name, object_path
from agentkeep.timeutil import file_stamp, iso_utc

if TYPE_CHECKING:
    from agentkeep._core import Tx
    from agentkeep.backends.base import Row, Snapshot
    from agentkeep.store import Store

GROUPINGS = ("session", "kind", "agent", "day")
PIN_ENTITIES = {"session": "sessions", "artifact": "artifacts"}


# -- policies ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Policy(Record):
    """The retention settings of one kind; 0 means no limit."""

    kind: str
    max_age_days: int
    max_total_bytes: int
    keep_last_sessions: int

    @property
    def deletes_anything(self) -> bool:
        return bool(self.max_age_days or self.max_total_bytes)


def policies(config: Config) -> dict[str, Policy]:
    """Every kind's policy from the resolved settings (defaults: no limits)."""
    return {
        kind: Policy(
            kind,
            config[f"retention.{kind}.max_age_days"],
            config[f"retention.{kind}.max_total_bytes"],
            config[f"retention.{kind}.keep_last_sessions"],
        )
        for kind in RETENTION_KINDS
    }


# -- the plan ---------------------------------------------------------------------------


@dataclass(frozen=True)
class GcItem(Record):
    """One thing gc deletes. ``bytes`` are the on-disk bytes its file frees (an artifact
    row frees none itself: its object's file does, once nothing refers to it)."""

    what: str  # stream | artifact | object
    id: int | str  # stream or artifact id; an object's sha256
    session_id: int | None
    kind: str  # "streams", an artifact kind, or "object"
    path: str | None  # the file, relative to the store directory
    bytes: int
    created_at: str
    reason: str


@dataclass(frozen=True)
class GcPlan(Record):
    """Exactly what ``apply_gc`` would delete now. ``now`` is the time the age limits were
    measured from; ``policies`` are the kinds with a limit set."""

    now: str
    items: list[GcItem]
    streams: int
    artifacts: int
    objects: int
    bytes: int
    policies: list[Policy] = field(default_factory=list)

    def keys(self) -> set[tuple[str, int | str]]:
        return {(item.what, item.id) for item in self.items}

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = _deep(super().to_dict())
        return out


@dataclass
class _Candidate:
    what: str  # stream | artifact
    id: int
    session_id: int | None
    kind: str
    created_at: str
    path: str | None
    bytes: int  # stream: file size; artifact: 0 (its object carries the bytes)
    sha256: str | None  # artifact: its object
    protected: bool


def plan_gc(store: Store, *, now: datetime | None = None) -> GcPlan:
    """What the retention policies delete now (read-only: this is the dry run).

    Invariants: no pinned or live item and nothing of the ``keep_last_sessions`` newest
    sessions is listed; an object is listed only when every artifact referring to it is.
    """
    moment = now or datetime.now(UTC)
    active = [p for p in policies(store.config).values() if p.deletes_anything]
    if not active:
        return _plan(iso_utc(moment), [], active)
    with store.maintenance.snapshot() as read:  # one consistent view of every table
        shared = store.artifacts.bytes_shared
        objects = _object_files(store.store_dir, read, shared=shared)
        items: list[GcItem] = []
        for policy in active:
            doomed: dict[tuple[str, int], str] = {}  # (what, id) -> reason
            candidates = _candidates(store.store_dir, read, policy, shared=shared)
            _expire_by_age(candidates, policy, moment, doomed)
            _expire_by_size(candidates, policy, objects, doomed)
            items += [
                _item(c, doomed[(c.what, c.id)]) for c in candidates if (c.what, c.id) in doomed
            ]
        items.sort(key=lambda item: (item.created_at, item.what, str(item.id)))
        gone = {int(item.id) for item in items if item.what == "artifact"}
        items += _unreferenced_objects(read, gone, objects)
    return _plan(iso_utc(moment), items, active)


def _deep(value: Any) -> Any:
    """Records nested in a record's fields, as plain JSON-ready values."""
    if isinstance(value, Record):
        return _deep(value.to_dict())
    if isinstance(value, dict):
        return {key: _deep(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_deep(item) for item in value]
    return value


def _plan(now: str, items: list[GcItem], active: list[Policy]) -> GcPlan:
    def count(what: str) -> int:
        return sum(1 for item in items if item.what == what)

    total = sum(item.bytes for item in items)
    return GcPlan(now, items, count("stream"), count("artifact"), count("object"), total, active)


def _item(candidate: _Candidate, reason: str) -> GcItem:
    return GcItem(
        candidate.what,
        candidate.id,
        candidate.session_id,
        candidate.kind,
        candidate.path,
        candidate.bytes,
        candidate.created_at,
        reason,
    )


def _kept_sessions(read: Snapshot, policy: Policy) -> set[int]:
    """The newest ``keep_last_sessions`` sessions that have data of the policy's kind."""
    if not policy.keep_last_sessions:
        return set()
    if policy.kind == "streams":
        where = "EXISTS (SELECT 1 FROM streams st WHERE st.session_id = s.id)"
        params: tuple[Any, ...] = ()
    else:
        where = "EXISTS (SELECT 1 FROM artifacts a WHERE a.session_id = s.id AND a.kind = ?)"
        params = (policy.kind,)
    rows = read.rows(
        f"SELECT s.id FROM sessions s WHERE {where} ORDER BY s.started_at DESC, s.id DESC LIMIT ?",
        (*params, policy.keep_last_sessions),
    )
    return {row[0] for row in rows}


def _candidates(
    store_dir: Path, read: Snapshot, policy: Policy, *, shared: bool
) -> list[_Candidate]:
    """Every item of the policy's kind, oldest first, with its protection decided.
    ``shared``: sealed streams' bytes are in the database too (PostgreSQL), and a stream
    sealed on another machine counts its stored bytes, although this one has no file."""
    kept = _kept_sessions(read, policy)
    if policy.kind == "streams":
        rows = read.rows(
            "SELECT st.id, st.session_id, st.status, st.path, st.created_at, st.stored_bytes, "
            "s.status AS session_status, s.pinned AS session_pinned "
            "FROM streams st JOIN sessions s ON s.id = st.session_id "
            "ORDER BY st.created_at, st.id"
        )
        return [
            _Candidate(
                "stream",
                row["id"],
                row["session_id"],
                "streams",
                row["created_at"],
                row["path"],
                file_size(store_dir / row["path"])
                or (row["stored_bytes"] if shared and row["status"] == "sealed" else 0),
                None,
                bool(
                    row["status"] != "sealed"
                    or row["session_status"] == "running"
                    or row["session_pinned"]
                    or row["session_id"] in kept
                ),
            )
            for row in rows
        ]
    rows = read.rows(
        "SELECT a.id, a.session_id, a.sha256, a.created_at, a.pinned, "
        "coalesce(s.pinned, 0) AS session_pinned "
        "FROM artifacts a LEFT JOIN sessions s ON s.id = a.session_id "
        "WHERE a.kind = ? ORDER BY a.created_at, a.id",
        (policy.kind,),
    )
    return [
        _Candidate(
            "artifact",
            row["id"],
            row["session_id"],
            policy.kind,
            row["created_at"],
            None,
            0,
            row["sha256"],
            bool(row["pinned"] or row["session_pinned"] or row["session_id"] in kept),
        )
        for row in rows
    ]


def _expire_by_age(
    candidates: list[_Candidate],
    policy: Policy,
    moment: datetime,
    doomed: dict[tuple[str, int], str],
) -> None:
    if not policy.max_age_days:
        return
    cutoff = iso_utc(moment - timedelta(days=policy.max_age_days))
    reason = f"older than {policy.max_age_days} day{'s' if policy.max_age_days != 1 else ''}"
    for candidate in candidates:
        if not candidate.protected and candidate.created_at < cutoff:
            doomed.setdefault((candidate.what, candidate.id), reason)


def _expire_by_size(
    candidates: list[_Candidate],
    policy: Policy,
    objects: dict[str, tuple[str, int]],
    doomed: dict[tuple[str, int], str],
) -> None:
    """Delete the oldest unprotected items until the kind fits in ``max_total_bytes``.

    Items already doomed by age no longer count. An artifact kind's bytes are those of the
    distinct objects its remaining artifacts refer to.
    """
    limit = policy.max_total_bytes
    if not limit:
        return
    remaining = [c for c in candidates if (c.what, c.id) not in doomed]
    refs: dict[str, int] = {}
    for candidate in remaining:
        if candidate.sha256 is not None:
            refs[candidate.sha256] = refs.get(candidate.sha256, 0) + 1

    def object_bytes(sha: str) -> int:
        return objects.get(sha, ("", 0))[1]

    total = sum(c.bytes for c in remaining) + sum(object_bytes(sha) for sha in refs)
    reason = f"{policy.kind} over max_total_bytes {human_bytes(limit)} (oldest first)"
    for candidate in remaining:
        if total <= limit:
            return
        if candidate.protected:
            continue
        doomed[(candidate.what, candidate.id)] = reason
        total -= candidate.bytes
        if candidate.sha256 is not None:
            refs[candidate.sha256] -= 1
            if refs[candidate.sha256] == 0:
                total -= object_bytes(candidate.sha256)


def _object_files(store_dir: Path, read: Snapshot, *, shared: bool) -> dict[str, tuple[str, int]]:
    """sha256 -> (file path relative to the store dir, its size on disk — or, ``shared``
    (PostgreSQL), its stored size when this machine has no copy)."""
    out = {}
    for row in read.rows("SELECT sha256, encoding, stored_bytes FROM objects"):
        path = object_path(store_dir, row[0], row[1])
        size = file_size(path) or (row[2] if shared else 0)
        out[row[0]] = (str(path.relative_to(store_dir)), size)
    return out


def _unreferenced_objects(
    read: Snapshot, gone: set[int], objects: dict[str, tuple[str, int]]
) -> list[GcItem]:
    """The objects whose every referring artifact is in ``gone``."""
    if not gone:
        return []
    refs: dict[str, list[int]] = {}
    for row in read.rows("SELECT sha256, id FROM artifacts"):
        refs.setdefault(row[0], []).append(row[1])
    # A document's versions keep their objects (services/docs.py): never planned here.
    versions = {row[0] for row in read.rows("SELECT DISTINCT sha256 FROM doc_versions")}
    items = []
    for sha, ids in sorted(refs.items()):
        if not set(ids) <= gone or sha in versions:
            continue
        created = read.one("SELECT created_at FROM objects WHERE sha256 = ?", (sha,))
        path, size = objects.get(sha, (None, 0))
        items.append(
            GcItem(
                "object",
                sha,
                None,
                "object",
                path,
                size,
                created[0] if created else "",
                "no artifact refers to it any more",
            )
        )
    return items


def _restrict(store: Store, fresh: GcPlan, seen: GcPlan) -> GcPlan:
    """The fresh plan's streams and artifacts that ``seen`` (the dry run) also listed, plus
    the objects those deletions leave unreferenced."""
    keys = seen.keys()
    kept = [i for i in fresh.items if i.what != "object" and (i.what, i.id) in keys]
    if len(kept) == fresh.streams + fresh.artifacts:
        return fresh
    gone = {int(i.id) for i in kept if i.what == "artifact"}
    with store.maintenance.snapshot() as read:
        files = _object_files(store.store_dir, read, shared=store.artifacts.bytes_shared)
        objects = _unreferenced_objects(read, gone, files)
    return _plan(fresh.now, kept + objects, fresh.policies)


# -- applying it ------------------------------------------------------------------------


@dataclass(frozen=True)
class GcResult(Record):
    """What ``apply_gc`` did. ``bytes_reclaimed`` = file bytes freed + database shrink."""

    plan: GcPlan
    files_deleted: int
    file_bytes_reclaimed: int
    db_bytes_before: int
    db_bytes_after: int
    db_bytes_reclaimed: int
    bytes_reclaimed: int
    archive: str | None
    reserve: bool  # whether the reserve file exists again afterwards

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = _deep(super().to_dict())
        return out


def apply_gc(
    store: Store,
    plan: GcPlan | None = None,
    *,
    archive_dir: str | Path | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> GcResult:
    """Delete what the policies say, never more than ``plan`` listed (when given).

    Holds the exclusive maintenance lock (backups and exports never see a file vanish)
    and the writer lock throughout. Rows first, commit, then files, then the vacuum.
    ``progress(done, total, phase)`` is called as it goes: ``rows`` (items deleted),
    ``files`` (files unlinked) and ``reclaim`` (the vacuum, 0 then 1), each from 0 to its
    total (a phase with nothing to do is not reported).
    """
    report = progress or _no_progress
    moment = datetime.fromisoformat(plan.now) if plan is not None else None
    store_dir = store.store_dir
    with maintenance_lock(store_dir):
        try:
            with store.maintenance.writer_lock():
                fresh = plan_gc(store, now=moment)
                todo = fresh if plan is None else _restrict(store, fresh, plan)
                db_before = _db_bytes(store)
                archived = None
                files = freed = 0
                if todo.items:
                    release_reserve(store_dir)
                    if archive_dir is not None:
                        archived = str(_archive(store, todo, Path(archive_dir)))
                    _delete_rows(store, todo, report)
                    failpoint("gc:after_rows_deleted")
                    files, freed = _unlink_files(store_dir, todo, report)
                    report(0, 1, "reclaim")
                    store.maintenance.reclaim()  # the freed pages go back to the file system
                    report(1, 1, "reclaim")
                db_after = _db_bytes(store)
        finally:
            reserve = ensure_reserve(store_dir)
    shrink = max(0, db_before - db_after)
    return GcResult(
        todo, files, freed, db_before, db_after, shrink, freed + shrink, archived, reserve
    )


def _no_progress(done: int, total: int, phase: str) -> None:
    pass


def _delete_rows(store: Store, plan: GcPlan, progress: Callable[[int, int, str], None]) -> None:
    """One transaction: every row of the plan and its event. Re-checks in SQL that a
    stream is sealed and an object unreferenced, so a wrong plan cannot break the
    invariants."""
    total = len(plan.items)
    progress(0, total, "rows")
    with store.transaction() as tx:
        for deleted, item in enumerate(plan.items, 1):
            data = {**_event_fields(_row_data(tx.one, item)), "reason": item.reason}
            if item.what == "stream":
                done = tx.execute(
                    "DELETE FROM streams WHERE id = ? AND status = 'sealed'", (item.id,)
                )
            elif item.what == "artifact":
                # A hook capture keeps its preview when its spilled payload expires.
                tx.execute(
                    "UPDATE captures SET artifact_id = NULL WHERE artifact_id = ?", (item.id,)
                )
                done = tx.execute("DELETE FROM artifacts WHERE id = ?", (item.id,))
            else:
                done = tx.execute(
                    "DELETE FROM objects WHERE sha256 = ? AND NOT EXISTS "
                    "(SELECT 1 FROM artifacts WHERE sha256 = objects.sha256) AND NOT EXISTS "
                    "(SELECT 1 FROM doc_versions WHERE sha256 = objects.sha256)",
                    (item.id,),
                )
            if done.rowcount != 1:
                raise Conflict(f"{item.what} {item.id} changed while gc was planning; retry")
            _unshare(store, tx, item, data)
            entity_id = item.id if isinstance(item.id, int) else None
            tx.emit(item.what, entity_id, f"{item.what}.deleted", data)
            progress(deleted, total, "rows")


def _unshare(store: Store, tx: Tx, item: GcItem, row: dict[str, Any]) -> None:
    """Delete the shared bytes (PostgreSQL) of a deleted object or sealed stream, in the
    transaction that deletes its row; a sealed stream's only when no other stream has the
    same bytes (its name is its content)."""
    if not store.artifacts.bytes_shared or item.what == "artifact" or not row.get("sha256"):
        return
    if item.what == "object":
        store.artifacts.unshare_bytes(tx, [blob_name(row["sha256"], row["encoding"])])
    elif not tx.one("SELECT 1 FROM streams WHERE sha256 = ? LIMIT 1", (row["sha256"],)):
        store.artifacts.unshare_bytes(tx, [blob_name(row["sha256"], stream=True)])


# What a deletion event keeps of the row: identity and sizes, not bulk fields (an
# artifact's data may hold a 2 kB preview; the archive keeps whole rows).
_EVENT_FIELDS = (
    "id",
    "session_id",
    "task_id",
    "agent_id",
    "name",
    "kind",
    "path",
    "sha256",
    "size",
    "length",
    "stored_bytes",
    "encoding",
    "created_at",
)


def _event_fields(row: dict[str, Any]) -> dict[str, Any]:
    return {key: row[key] for key in _EVENT_FIELDS if key in row}


def _row_data(one: Callable[[str, Sequence[Any]], Row | None], item: GcItem) -> dict[str, Any]:
    """The row an item stands for, read with ``one`` (a snapshot's or a transaction's)."""
    if item.what == "object":
        row = one("SELECT * FROM objects WHERE sha256 = ?", (item.id,))
    else:
        table = "streams" if item.what == "stream" else "artifacts"
        row = one(f"SELECT * FROM {table} WHERE id = ?", (item.id,))
    return dict(row) if row is not None else {}


def _unlink_files(
    store_dir: Path, plan: GcPlan, progress: Callable[[int, int, str], None]
) -> tuple[int, int]:
    """Unlink the plan's files (their rows are already gone); returns (files, bytes)."""
    files = freed = 0
    paths = [item.path for item in plan.items if item.path is not None]
    if paths:
        progress(0, len(paths), "files")
    for done, relative in enumerate(paths, 1):
        size = _unlink(store_dir / relative)
        if size is not None:
            files += 1
            freed += size
            failpoint("gc:mid_unlink")
        progress(done, len(paths), "files")
    return files, freed


def _unlink(path: Path) -> int | None:
    """Unlink one file: its size, or None if it was already gone."""
    size = file_size(path)
    try:
        path.unlink()
    except FileNotFoundError:
        return None
    except OSError as exc:  # the row is gone: an orphan for doctor, not an error here
        if not path.exists():
            return None
        raise translate_os_error(exc, str(path)) from exc
    return size


def _db_bytes(store: Store) -> int:
    return sum(store.maintenance.file_bytes())


def _archive(store: Store, plan: GcPlan, archive_dir: Path) -> Path:
    """Copy the plan's files and rows to ``archive_dir/gc-<time>/`` before anything is
    deleted: ``records.jsonl`` (one ``{"what", "reason", "row"}`` per item) plus each file
    at its path relative to the store directory. Published by one rename, so a crash
    leaves no half archive under the final name."""
    final = archive_dir.expanduser().absolute() / f"gc-{file_stamp()}"
    tmp = final.with_name(final.name + f".tmp-{os.getpid()}")
    try:
        make_dirs(tmp)
        with store.maintenance.snapshot() as read:
            rows = [_row_data(read.one, item) for item in plan.items]
        lines = []
        for item, row in zip(plan.items, rows, strict=True):
            lines.append(json.dumps({"what": item.what, "reason": item.reason, "row": row}))
            if item.path is not None and (store.store_dir / item.path).exists():
                target = tmp / item.path
                target.parent.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
                shutil.copyfile(store.store_dir / item.path, target)
                os.chmod(target, PRIVATE_FILE)  # archives are as private as the store
                fsync_path(target)
        records = tmp / "records.jsonl"
        write_new_file(records, ("\n".join(lines) + "\n").encode("utf-8"))
        fsync_path(records)
        os.replace(tmp, final)
        fsync_path(final.parent, directory=True)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise translate_os_error(exc, f"the archive {final}") from exc
    return final


# -- usage ------------------------------------------------------------------------------


@dataclass(frozen=True)
class UsageArea(Record):
    """One place bytes live: ``database``, ``wal``, ``streams (live)``, …"""

    name: str
    bytes: int
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class UsageGroup(Record):
    """Stream and artifact bytes of one session, kind, agent or day (on disk; a shared
    object is counted once, for the oldest artifact that refers to it)."""

    key: str
    streams: int
    artifacts: int
    bytes: int
    items: int


@dataclass(frozen=True)
class Usage(Record):
    total_bytes: int
    areas: list[UsageArea]
    tables: dict[str, int]  # bytes per table (indexes included) when dbstat is available
    by: str | None = None
    groups: list[UsageGroup] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = _deep(super().to_dict())
        return out


USAGE_CACHE = "usage-tables.json"  # bytes per table, while the database is unchanged


def usage(store: Store, *, by: str | None = None, full: bool = False) -> Usage:
    """Where the store's bytes are: database (per table when SQLite has ``dbstat``), WAL,
    streams (live/sealed, raw vs stored), objects, reserve, backups; grouped by ``by``.

    The bytes per table cost a read of every page; they are kept (``usage-tables.json``)
    and given again while the database file and its WAL are unchanged (no commit since:
    still exact). ``full`` measures them again whatever the record says."""
    if by is not None and by not in GROUPINGS:
        raise InvalidInput(f"cannot group usage by {by!r}", hint=f"use one of {GROUPINGS}")
    tables = _table_bytes(store, full=full)
    with store.maintenance.snapshot() as read:
        areas = [_database_area(store, tables), _wal_area(store), *_stream_areas(read)]
        areas += [_objects_area(read), _file_area("reserve", store.store_dir / "reserve")]
        areas.append(_dir_area("backups", store.store_dir / "backups"))
        groups = _groups(read, by) if by else []
    return Usage(sum(a.bytes for a in areas), areas, tables, by, groups)


def _table_bytes(store: Store, *, full: bool) -> dict[str, int]:
    record = Verified(store.store_dir / USAGE_CACHE, full=full)
    files = store.db_files
    kept = record.value("tables", *files) if files else None
    if isinstance(kept, dict):  # kept as JSON with sorted keys: largest first again
        sizes = ((str(name), int(size)) for name, size in kept.items())
        return dict(sorted(sizes, key=lambda item: (-item[1], item[0])))
    tables = store.maintenance.table_bytes()
    if files:
        record.record("tables", *files, value=tables)
    record.save()
    return tables


def _database_area(store: Store, tables: dict[str, int]) -> UsageArea:
    page_size, pages, free = store.maintenance.pages()
    detail = {
        "file_bytes": store.maintenance.file_bytes()[0],
        "page_size": page_size,
        "pages": pages,
        "free_pages": free,
        "per_table": bool(tables),
    }
    return UsageArea("database", page_size * pages, detail)


def _wal_area(store: Store) -> UsageArea:
    return UsageArea("wal", store.maintenance.file_bytes()[1])


def _stream_areas(read: Snapshot) -> list[UsageArea]:
    areas = []
    for name, where in (("streams (live)", "!="), ("streams (sealed)", "=")):
        row = read.one(
            "SELECT count(*), coalesce(sum(length), 0), coalesce(sum(CASE WHEN status = "
            f"'sealed' THEN stored_bytes ELSE length END), 0) FROM streams WHERE status {where} "
            "'sealed'"
        )
        count, raw, stored = (row[0], row[1], row[2]) if row else (0, 0, 0)
        areas.append(UsageArea(name, stored, {"count": count, "raw_bytes": raw}))
    return areas


def _objects_area(read: Snapshot) -> UsageArea:
    row = read.one(
        "SELECT count(*), coalesce(sum(size), 0), coalesce(sum(stored_bytes), 0) FROM objects"
    )
    count, raw, stored = (row[0], row[1], row[2]) if row else (0, 0, 0)
    artifacts = read.scalar("SELECT count(*) FROM artifacts")
    return UsageArea("objects", stored, {"count": count, "raw_bytes": raw, "artifacts": artifacts})


def _file_area(name: str, path: Path) -> UsageArea:
    return UsageArea(name, file_size(path))


def _dir_area(name: str, path: Path) -> UsageArea:
    total = count = 0
    for root, _, names in os.walk(path):
        for entry in names:
            total += file_size(Path(root) / entry)
            count += 1
    return UsageArea(name, total, {"files": count})


# The SQL expression naming each group; {kind} and {created} are filled in per table.
_GROUP_KEYS = {
    "session": "coalesce('session ' || s.id, 'no session')",
    "kind": "{kind}",
    "agent": "coalesce(ag.name, 'agent ' || {agent}, 'no agent')",
    "day": "substr({created}, 1, 10)",
}


def _groups(read: Snapshot, by: str) -> list[UsageGroup]:
    totals: dict[str, list[int]] = {}  # key -> [streams, artifacts, items]
    for key, size in _stream_holdings(read, by):
        entry = totals.setdefault(key, [0, 0, 0])
        entry[0] += size
        entry[2] += 1
    for key, size in _artifact_holdings(read, by):
        entry = totals.setdefault(key, [0, 0, 0])
        entry[1] += size
        entry[2] += 1
    groups = [UsageGroup(k, v[0], v[1], v[0] + v[1], v[2]) for k, v in totals.items()]
    return sorted(groups, key=lambda g: (-g.bytes, g.key))


def _stream_holdings(read: Snapshot, by: str) -> Iterable[tuple[str, int]]:
    key = _GROUP_KEYS[by].format(kind="'streams'", created="st.created_at", agent="s.agent_id")
    rows = read.rows(
        f"SELECT {key} AS key, CASE WHEN st.status = 'sealed' THEN st.stored_bytes "
        "ELSE st.length END AS bytes FROM streams st "
        "JOIN sessions s ON s.id = st.session_id LEFT JOIN agents ag ON ag.id = s.agent_id"
    )
    return [(row["key"], int(row["bytes"])) for row in rows]


def _artifact_holdings(read: Snapshot, by: str) -> Iterable[tuple[str, int]]:
    """Each artifact with its object's bytes if it is the object's oldest artifact, else 0."""
    agent = "coalesce(a.agent_id, s.agent_id)"
    key = _GROUP_KEYS[by].format(kind="a.kind", created="a.created_at", agent=agent)
    rows = read.rows(
        f"SELECT {key} AS key, CASE WHEN a.id = (SELECT min(id) FROM artifacts f "
        "WHERE f.sha256 = a.sha256) THEN o.stored_bytes ELSE 0 END AS bytes "
        "FROM artifacts a JOIN objects o ON o.sha256 = a.sha256 "
        "LEFT JOIN sessions s ON s.id = a.session_id "
        "LEFT JOIN agents ag ON ag.id = coalesce(a.agent_id, s.agent_id)"
    )
    return [(row["key"], int(row["bytes"])) for row in rows]


# -- pins -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PinResult(Record):
    entity: str  # session | artifact
    id: int
    pinned: bool
    outcome: Outcome  # updated | unchanged


def pin(store: Store, entity: str, ident: int, pinned: bool = True) -> PinResult:
    """Pin (or unpin) a session or an artifact: gc never deletes what is pinned; a pinned
    session protects its streams and the artifacts attached to it. Emits
    ``<entity>.pinned`` / ``<entity>.unpinned`` when the value changes."""
    table = PIN_ENTITIES.get(entity)
    if table is None:
        raise InvalidInput(f"cannot pin a {entity}", hint=f"pin one of: {', '.join(PIN_ENTITIES)}")
    with store.transaction() as tx:
        row = tx.one(f"SELECT pinned FROM {table} WHERE id = ?", (ident,))
        if row is None:
            raise NotFound(f"{entity} {ident} does not exist")
        if bool(row[0]) == pinned:
            return PinResult(entity, ident, pinned, "unchanged")
        tx.update(table, ident, {"pinned": int(pinned)})
        kind = f"{entity}.{'pinned' if pinned else 'unpinned'}"
        tx.emit(entity, ident, kind, {"pinned": [bool(row[0]), pinned]})
    return PinResult(entity, ident, pinned, "updated")


def human_bytes(size: int) -> str:
    """``1.5 MiB``-style text for people (JSON output carries plain integers)."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"  # pragma: no cover


__all__ = [
    "GcItem",
    "GcPlan",
    "GcResult",
    "PinResult",
    "Policy",
    "Usage",
    "UsageArea",
    "UsageGroup",
    "apply_gc",
    "human_bytes",
    "pin",
    "plan_gc",
    "policies",
    "usage",
]
