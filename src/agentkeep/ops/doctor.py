"""``agentkeep doctor``: check the database and the files ↔ rows invariants; repair what
is safe to repair.

Invariants checked (principle 6 of docs/design.md; docs/design.md "Bulk bytes: streams and
artifacts"):

- the database passes ``quick_check`` and ``foreign_key_check``;
- every ``objects`` row has its file, which decompresses to its size and sha256; every
  file under ``objects/`` has its row (otherwise it is an *orphan*: a crash between publish
  and commit, or between gc's commit and its unlink);
- every ``streams`` row has its file (a sealed one matches its sha256; a plain one holds at
  least the recorded ``length``); every file under ``streams/`` is some row's ``path``;
- no session is ``running`` with a recorder that died on this host, and no stream of a
  session that is over is left unsealed;
- no temp file (``files.temp_path`` names) outlives the process that created it;
- nothing in the store is a symbolic link, or readable by other users (docs/design.md
  "Permissions and links"); ``--fix`` makes it private, links are for a person to remove;
- the document index matches the document files (a file not indexed, changed since, or
  gone); ``--fix`` rescans them (the index is derived: the files win).

Read-only unless ``fix`` (but for doctor's own record of the files it verified, see
:class:`Verified`). Repairs only ever move aside files nothing refers to, seal streams
whose writer is provably gone, and end sessions whose recorder is provably dead. A row
whose file is missing is never deleted: it is reported (an error) with a hint. A temp file
of a live process, or a stream of a live recorder, is never touched. Repairs run under
the maintenance lock (exclusive, like gc), and object orphans are listed and removed under
the writer lock, so no concurrent add can be between publishing a file and committing its
row while doctor looks. Without ``fix``, a write committing at that instant can appear as
an orphan once; a second run does not report it.

Orphans are only ever *proven* against a healthy database (principle 10 of docs/design.md): with
``fix``, the full ``integrity_check`` (not only ``quick_check``) and ``foreign_key_check``
must pass, the schema must be this code's, and the high-water mark must show no rollback
and no known damage. Otherwise nothing is repaired: rows from a damaged or rolled-back
database are no ground for removing files. Even then an orphan is not deleted but moved to
``.agentkeep/quarantine/<time>/`` under its relative path (the files of a store restored
from an older backup are orphans of that backup); doctor reports what the quarantine holds,
and the user deletes it. Temp files of dead processes are deleted (their names prove what
they are). Corruption found here is recorded in the mark, so writes are refused until the
user restores or accepts the database. Cost: the database check (``quick_check``, O(pages))
plus re-hashing the objects and sealed streams that are new or changed since doctor last
verified them; ``full`` (``doctor --full``) re-hashes every one and runs the full
``integrity_check``: O(stored bytes), and counts the messages the full-text index should
hold (those at or below its watermark, schema 8) against those it holds.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentkeep.errors import AgentkeepError, Conflict, Corrupt, RollbackDetected
from agentkeep.files import (
    HOST,
    maintenance_lock,
    pid_alive,
    remove_quietly,
    temp_owner,
)
from agentkeep.migrations import SCHEMA_VERSION
from agentkeep.models import Record
from agentkeep.ops.verified import Verified
from agentkeep.services.artifacts import OBJECTS_DIR, blob_name, object_path, verify_object
from agentkeep.services.streams import (
    STREAMS_DIR,
    being_sealed,
    stream_file,
    verify_sealed_file,
)
from agentkeep.timeutil import file_stamp

if TYPE_CHECKING:
    from agentkeep.backends.base import Row
    from agentkeep.store import Store

HOOK_LOG = "hook-errors.log"
QUARANTINE_DIR = "quarantine"
DATABASE_CHECKS = frozenset({"database", "rollback", "foreign-keys"})
TEMP_DIRS = (str(OBJECTS_DIR.parts[0]), STREAMS_DIR, "backups")
VERIFIED_NAME = "doctor-verified.json"  # what doctor verified (ops/verified.py)
RESTORE_HINT = "restore it from a backup (`agentkeep restore`), or re-add the content"
STREAM_HINT = "restore it from a backup (`agentkeep restore`); the row is kept as a record"
DB_HINT = (
    "restore the newest good backup: `agentkeep restore .agentkeep/backups/<backup> --force` "
    "(the damaged store is moved aside, never deleted)"
)
ROLLBACK_HINT = (
    "restore a backup (`agentkeep restore .agentkeep/backups/<backup> --force`), or accept "
    "the database as it is now (`agentkeep db accept`)"
)


@dataclass(frozen=True)
class Finding(Record):
    """One thing doctor noticed. ``severity``: ``error`` needs a person, ``warning`` is
    what ``--fix`` repairs, ``info`` is no problem. ``fixed`` is true once repaired."""

    check: str
    severity: str
    subject: str
    message: str
    fixed: bool = False
    hint: str | None = None

    @property
    def problem(self) -> bool:
        """Whether this finding still needs attention."""
        return self.severity != "info" and not self.fixed


@dataclass(frozen=True)
class Report(Record):
    """Everything doctor found. ``ok``: no problem remains (after repairs, with fix)."""

    ok: bool
    fix: bool
    findings: list[Finding] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "fix": self.fix,
            "findings": [finding.to_dict() for finding in self.findings],
        }

    @property
    def problems(self) -> list[Finding]:
        return [finding for finding in self.findings if finding.problem]

    @property
    def database_damaged(self) -> bool:
        """Whether the database itself is damaged or lost commits (the CLI exits 8)."""
        return any(f.problem and f.check in DATABASE_CHECKS for f in self.findings)


class _Findings(list[Finding]):
    def add(
        self,
        check: str,
        severity: str,
        subject: str,
        message: str,
        *,
        fixed: bool = False,
        hint: str | None = None,
    ) -> None:
        self.append(Finding(check, severity, subject, message, fixed, hint))


def diagnose(store: Store, *, full: bool = False) -> Report:
    """Check everything; change nothing (but doctor's own record of verified files)."""
    return doctor(store, fix=False, full=full)


def repair(store: Store, *, full: bool = False) -> Report:
    """Check everything and repair what is safe to repair (see the module docstring)."""
    return doctor(store, fix=True, full=full)


def doctor(store: Store, *, fix: bool = False, full: bool = False) -> Report:
    """Check the store; with ``fix``, repair what is safe. ``full`` re-hashes every file
    (otherwise a file unchanged since doctor last verified it is not read again) and runs
    the full ``integrity_check``, as ``fix`` always does."""
    found = _Findings()
    verified = Verified(store.store_dir / VERIFIED_NAME, full=full)
    try:
        database_ok = _check_database(store, found, verified, full=fix or full)
    except Corrupt as exc:
        store.maintenance.note_damage(exc)
        found.add("database", "error", "state.db", exc.message, hint=DB_HINT)
        database_ok = False
    fixing = fix and database_ok and store.writable
    if fix and not fixing:
        found.add(
            "repairs",
            "info",
            "store",
            "no repairs attempted: the database itself failed its checks"
            if not database_ok
            else "no repairs attempted: the store is not writable",
        )
    lock = maintenance_lock(store.store_dir) if fixing else contextlib.nullcontext()
    try:
        with lock:
            _check_temp_files(store, found, fix=fixing)
            _check_unfinished_sessions(store, found, fix=fixing)
            _check_stream_files(store, found, verified, fix=fixing)
            _check_object_files(store, found, verified, fix=fixing)
    except Corrupt as exc:  # a damaged page met while reading rows
        store.maintenance.note_damage(exc)
        found.add("database", "error", "state.db", exc.message, hint=DB_HINT)
    _check_journal(store, found)
    _check_quarantine(store, found)
    _check_hook_log(store, found)
    _check_spool(store, found, fix=fixing)
    _check_privacy(store, found, fix=fix)
    if database_ok:  # an older schema has no document index; a damaged one is reported
        _check_docs(store, found, fix=fixing)
        _check_mail(store, found, fix=fixing)
    verified.save()
    return Report(ok=not any(f.problem for f in found), fix=fix, findings=list(found))


# -- database -----------------------------------------------------------------------------


def _check_database(store: Store, found: _Findings, verified: Verified, *, full: bool) -> bool:
    """The database is healthy enough to prove orphans against: the high-water mark shows
    no rollback or known damage, ``quick_check`` (``integrity_check`` when ``full``) and
    ``foreign_key_check`` pass, and the schema is this code's. Returns whether it is.

    Unless ``full``, the page checks are skipped when the database file and its WAL are
    exactly as they were when they last passed (no commit since: see :class:`Verified`)."""
    ok = True
    problem = store.integrity_problem()
    if isinstance(problem, RollbackDetected):
        ok = False
        found.add("rollback", "error", "state.db", problem.message, hint=ROLLBACK_HINT)
    elif problem is not None:
        ok = False
        found.add("database", "error", "state.db", problem.message, hint=DB_HINT)
    check = "integrity_check" if full else "quick_check"
    files = store.db_files
    if not full and files and verified.unchanged("database", *files):
        result, broken = ["ok"], []
    else:
        result = store.maintenance.integrity(full=full)
        broken = store.maintenance.foreign_key_violations()
        if result == ["ok"] and not broken and files:
            verified.record("database", *files)
    if result != ["ok"]:
        ok = False
        message = f"{check}: " + "; ".join(result[:5])
        store.maintenance.note_damage(Corrupt(message))
        if problem is None or isinstance(problem, RollbackDetected):
            found.add("database", "error", "state.db", message, hint=DB_HINT)
    for row in broken:
        ok = False
        found.add(
            "foreign-keys",
            "error",
            f"{row[0]} row {row[1]}",
            f"references a missing {row[2]} row",
            hint=DB_HINT,
        )
    if full and result == ["ok"]:
        # Messages stored but not indexed yet (above the watermark) are not a problem.
        gap = store.maintenance.search_index_gap()
        if gap:
            found.add(
                "search-index",
                "error",
                "messages_fts",
                f"messages missing from the full-text index: {gap}"
                if gap > 0
                else f"rows in the full-text index for no message: {-gap}",
                hint=DB_HINT,
            )
    version = store.schema_status().db_schema_version
    if version != SCHEMA_VERSION:
        ok = False
        found.add(
            "schema",
            "info",
            "state.db",
            f"schema version {version}, this agentkeep's is {SCHEMA_VERSION}",
            hint="`agentkeep db migrate` (or any write) migrates it",
        )
    return ok


# -- temp files ---------------------------------------------------------------------------


def _files_under(directory: Path) -> Iterator[Path]:
    """Every regular file below ``directory`` (nothing if it does not exist)."""
    for root, _, names in os.walk(directory):
        for name in names:
            path = Path(root) / name
            if path.is_file() and not path.is_symlink():
                yield path


# SQLite's side files of a temp database (a backup copy killed mid-write leaves its hot
# rollback journal): they belong to the temp file and go with it.
SQLITE_SIDE_SUFFIXES = ("-journal", "-wal", "-shm")


def _temp_owner(path: Path) -> int | None:
    owner = temp_owner(path)
    if owner is None:
        for suffix in SQLITE_SIDE_SUFFIXES:
            if path.name.endswith(suffix):
                return temp_owner(path.with_name(path.name.removesuffix(suffix)))
    return owner


def _temp_files(store_dir: Path) -> Iterator[tuple[Path, int]]:
    for name in TEMP_DIRS:
        for path in _files_under(store_dir / name):
            owner = _temp_owner(path)
            if owner is not None:
                yield path, owner
    for path in store_dir.iterdir():  # e.g. the reserve file's temp
        owner = _temp_owner(path)
        if owner is not None and path.is_file():
            yield path, owner


def _check_temp_files(store: Store, found: _Findings, *, fix: bool) -> None:
    """Temp files of dead processes are a crash's leftovers (removed by fix); those of a
    live process are a write in progress (never touched)."""
    for path, owner in sorted(_temp_files(store.store_dir)):
        subject = _relative(store, path)
        if pid_alive(owner):
            found.add("temp-file", "info", subject, f"being written by live process {owner}")
            continue
        if fix:
            remove_quietly(path)
        found.add(
            "temp-file",
            "warning",
            subject,
            f"left by process {owner}, which is gone" + ("; removed" if fix else ""),
            fixed=fix and not path.exists(),
            hint=None if fix else "`agentkeep doctor --fix` removes it",
        )


# -- sessions and unsealed streams --------------------------------------------------------


def _recorder_state(session: Any) -> str:
    """``over`` (not running), ``alive``, ``dead`` (its recorder pid is gone on this
    host) or ``unknown`` (no recorder pid, or another host: nothing to conclude)."""
    if session["status"] != "running":
        return "over"
    if session["pid"] is None or session["host"] != HOST:
        return "unknown"
    return "alive" if pid_alive(int(session["pid"])) else "dead"


def _check_unfinished_sessions(store: Store, found: _Findings, *, fix: bool) -> None:
    """Running sessions whose recorder died, and unsealed streams of sessions that are
    over. Fix seals their streams (a live one as abandoned), then ends a dead session as
    ``interrupted``. Either order of crash in between converges on the next run."""
    sessions = _read(
        store,
        "SELECT id, status, pid, host FROM sessions WHERE status = 'running' "
        "OR id IN (SELECT session_id FROM streams WHERE status != 'sealed') ORDER BY id",
    )
    shared = store.artifacts.bytes_shared
    for session in sessions:
        state = _recorder_state(session)
        if state in ("alive", "unknown"):
            continue
        if shared and session["host"] not in (None, HOST):
            continue  # recorded on another machine, which alone has its unsealed files
        if state == "over" and being_sealed(store.store_dir, session["id"]):
            continue  # `run` exited and its sealer is at work (it holds the lock)
        streams = _read(
            store,
            "SELECT * FROM streams WHERE session_id = ? AND status != 'sealed' ORDER BY id",
            (session["id"],),
        )
        for stream in streams:
            _unsealed_stream(store, found, stream, fix=fix)
        if state == "dead":
            _dead_session(store, found, session, fix=fix)


def _dead_session(store: Store, found: _Findings, session: Any, *, fix: bool) -> None:
    fixed = False
    if fix:
        with contextlib.suppress(Conflict):  # ended meanwhile: fine either way
            store.end_session(session["id"], status="interrupted")
        fixed = True
    found.add(
        "dead-session",
        "warning",
        f"session {session['id']}",
        f"still running, but its recorder (pid {session['pid']}) is gone"
        + ("; marked interrupted" if fixed else ""),
        fixed=fixed,
        hint=None if fix else "`agentkeep doctor --fix` marks it interrupted",
    )


def _unsealed_stream(store: Store, found: _Findings, stream: Any, *, fix: bool) -> None:
    """Seal a stream nobody writes any more. A ``.zst`` beside it is what a seal that
    crashed before its commit published: removed first, then the stream is sealed again."""
    subject = f"stream {stream['id']} ({stream['path']})"
    sealed = store.store_dir / stream_file(stream["session_id"], stream["name"], sealed=True)
    if sealed.exists():
        if fix:
            remove_quietly(sealed)
        found.add(
            "orphan-file",
            "warning",
            _relative(store, sealed),
            "sealed copy of an unsealed stream (a seal was interrupted)"
            + ("; removed" if fix else ""),
            fixed=fix and not sealed.exists(),
        )
    plain = store.store_dir / stream["path"]
    if not plain.exists() and stream["length"] > 0:
        return  # a missing file with recorded bytes: _check_stream_files reports it
    if not fix:
        found.add(
            "unsealed-stream",
            "warning",
            subject,
            f"{stream['status']}, but nobody writes it any more",
            hint="`agentkeep doctor --fix` seals it",
        )
        return
    try:
        if not plain.exists():  # the recorder died before creating it; nothing was lost
            plain.touch()
        store.seal_stream(stream["id"], abandoned=True)
    except (AgentkeepError, OSError) as exc:
        message = exc.message if isinstance(exc, AgentkeepError) else str(exc)
        found.add("unsealed-stream", "error", subject, f"could not seal it: {message}")
        return
    found.add("unsealed-stream", "warning", subject, "was left unsealed; sealed", fixed=True)


# -- stream files -------------------------------------------------------------------------


def _check_stream_files(store: Store, found: _Findings, verified: Verified, *, fix: bool) -> None:
    """Files under streams/ against the rows. Files are listed *before* rows are read: a
    stream's file is created only after its row commits, so a listed file's row is seen."""
    directory = store.store_dir / STREAMS_DIR
    files = {path for path in _files_under(directory) if _temp_owner(path) is None}
    rows = _read(store, "SELECT * FROM streams ORDER BY id")
    referenced = {store.store_dir / row["path"] for row in rows}
    # A .zst beside an unsealed stream: a seal in progress, or _unsealed_stream's business.
    referenced |= {
        store.store_dir / stream_file(row["session_id"], row["name"], sealed=True)
        for row in rows
        if row["status"] != "sealed"
    }
    for path in sorted(files - referenced):
        _orphan(store, found, path, fix=fix)
    shared = _shared(store, [_stream_blob(row) for row in rows if row["status"] == "sealed"])
    for row in rows:
        _check_stream_row(store, found, verified, row, shared, fix=fix)


def _stream_blob(row: Any) -> str:
    return blob_name(row["sha256"], stream=True)


def _shared(store: Store, names: list[str]) -> set[str] | None:
    """Which of ``names`` the database holds, on a backend that shares sealed streams'
    and objects' bytes between machines (None on one that does not: SQLite)."""
    return store.artifacts.shared_bytes(names) if store.artifacts.bytes_shared else None


def _recorded_elsewhere(store: Store, stream: Any) -> bool:
    """Whether the stream's session was recorded on another host (a shared backend)."""
    rows = _read(store, "SELECT host FROM sessions WHERE id = ?", (stream["session_id"],))
    return bool(rows) and rows[0]["host"] not in (None, HOST)


def _check_shared(
    store: Store,
    found: _Findings,
    subject: str,
    name: str,
    path: Path,
    shared: set[str] | None,
    *,
    fix: bool,
) -> None:
    """A file whose bytes teammates must be able to fetch: stored in the database?
    ``--fix`` stores them from this machine's (verified) file."""
    if shared is None or name in shared:
        return
    if fix:
        with store.transaction() as tx:
            store.artifacts.share_bytes(tx, name, path)
    found.add(
        "unshared",
        "error",
        subject,
        "its bytes are only on this machine, not in the shared database"
        + ("; stored there from this file" if fix else ""),
        fixed=fix,
        hint=None if fix else "`agentkeep doctor --fix` on this machine stores them",
    )


def _check_stream_row(
    store: Store,
    found: _Findings,
    verified: Verified,
    row: Any,
    shared: set[str] | None = None,
    *,
    fix: bool = False,
) -> None:
    path = store.store_dir / row["path"]
    if not path.exists():
        now = _read(store, "SELECT * FROM streams WHERE id = ?", (row["id"],))
        if not now:
            return  # deleted meanwhile (gc)
        row = now[0]
        path = store.store_dir / row["path"]  # sealed meanwhile: the path changed
    subject = f"stream {row['id']} ({row['path']})"
    sealed = row["status"] == "sealed"
    if not path.exists():
        if row["status"] != "sealed" and row["length"] == 0:
            return  # nothing recorded yet, and the writer creates the file after the row
        if sealed and shared is not None and _stream_blob(row) in shared:
            return  # sealed elsewhere: fetched (and its digest checked) when read
        if not sealed and shared is not None and _recorded_elsewhere(store, row):
            return  # live or closed on another machine: its file is there until sealed
        found.add(
            "missing-file",
            "error",
            subject,
            f"the file is missing ({row['length']} bytes recorded)",
            hint=STREAM_HINT,
        )
    elif row["status"] == "sealed":
        key = f"stream:{row['sha256']}:{row['length']}"
        if verified.unchanged(key, path):
            _check_shared(store, found, subject, _stream_blob(row), path, shared, fix=fix)
            return
        problem = verify_sealed_file(path, row["sha256"], row["length"])
        if problem is not None:
            found.add("hash-mismatch", "error", subject, problem, hint=STREAM_HINT)
        else:
            verified.record(key, path)
            _check_shared(store, found, subject, _stream_blob(row), path, shared, fix=fix)
    elif path.stat().st_size < row["length"]:
        found.add(
            "truncated",
            "error",
            subject,
            f"holds {path.stat().st_size} bytes, {row['length']} were recorded",
            hint=STREAM_HINT,
        )


# -- object files -------------------------------------------------------------------------


def _check_object_files(store: Store, found: _Findings, verified: Verified, *, fix: bool) -> None:
    """Orphans under the writer lock when fixing (publish and commit of an add happen
    inside one write transaction, so under the lock no file is between the two); then
    every row's file re-hashed, outside the lock."""
    directory = store.store_dir / OBJECTS_DIR
    with store.maintenance.writer_lock() if fix else contextlib.nullcontext():
        files = {path for path in _files_under(directory) if _temp_owner(path) is None}
        rows = _read(store, "SELECT sha256, encoding, size FROM objects ORDER BY sha256")
        expected = {object_path(store.store_dir, r["sha256"], r["encoding"]) for r in rows}
        for path in sorted(files - expected):
            _orphan(store, found, path, fix=fix)
    shared = _shared(store, [blob_name(r["sha256"], r["encoding"]) for r in rows])
    for row in rows:
        _check_object_row(store, found, verified, row, shared, fix=fix)


def _check_object_row(
    store: Store,
    found: _Findings,
    verified: Verified,
    row: Any,
    shared: set[str] | None = None,
    *,
    fix: bool = False,
) -> None:
    path = object_path(store.store_dir, row["sha256"], row["encoding"])
    name = blob_name(row["sha256"], row["encoding"])
    subject = f"object {row['sha256'][:12]}"
    if shared is not None and name in shared and not path.exists():
        return  # stored elsewhere: fetched (and its digest checked) when read
    key = f"object:{row['sha256']}:{row['size']}"
    if verified.unchanged(key, path):
        _check_shared(store, found, subject, name, path, shared, fix=fix)
        return
    ok, problem = verify_object(store.store_dir, row["sha256"], row["encoding"], row["size"])
    if ok:
        verified.record(key, path)
        _check_shared(store, found, subject, name, path, shared, fix=fix)
        return
    with store.maintenance.snapshot() as read:
        current = read.one("SELECT encoding FROM objects WHERE sha256 = ?", (row["sha256"],))
        if current is None or current["encoding"] != row["encoding"]:
            return  # collected or replaced meanwhile
        users = read.scalar("SELECT count(*) FROM artifacts WHERE sha256 = ?", (row["sha256"],))
    subject = f"object {row['sha256'][:12]} ({users} artifact(s))"
    check = "missing-file" if problem == "file missing" else "hash-mismatch"
    found.add(check, "error", subject, problem or "unreadable", hint=RESTORE_HINT)


# -- shared -------------------------------------------------------------------------------


def _orphan(store: Store, found: _Findings, path: Path, *, fix: bool) -> None:
    """A file no row refers to: reported; moved to the quarantine by fix."""
    size = _size(path)
    moved = _quarantine(store, path) if fix else None
    found.add(
        "orphan-file",
        "warning",
        _relative(store, path),
        f"no row refers to it ({size} bytes)"
        + (f"; moved to {_relative(store, moved)}" if moved else ""),
        fixed=moved is not None,
        hint=None if fix else "`agentkeep doctor --fix` moves it to .agentkeep/quarantine/",
    )


_QUARANTINE_RUN: dict[Path, Path] = {}


def _quarantine(store: Store, path: Path) -> Path | None:
    """Move ``path`` to ``quarantine/<time of this run>/<its relative path>``."""
    run = _QUARANTINE_RUN.setdefault(
        store.store_dir, store.store_dir / QUARANTINE_DIR / file_stamp()
    )
    dest = run / _relative(store, path)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.rename(path, dest)
    except OSError:
        return None
    return dest


def _check_journal(store: Store, found: _Findings) -> None:
    """A rollback journal beside the WAL-mode database. Opening the store already let
    SQLite roll a hot one back (which deletes it), so one still here is a leftover SQLite
    ignores; only SQLite may remove it (invariant 7 of docs/design.md), which it does the
    next time the database leaves WAL mode. Reported, never deleted by hand. (A database
    on a server has no files here.)"""
    if not store.db_files:
        return
    journal = store.db_path.with_name(store.db_path.name + "-journal")
    if journal.exists():
        found.add(
            "journal",
            "warning",
            journal.name,
            f"a rollback journal ({_size(journal)} bytes) is left beside the database",
            hint="open the store once as a user who can write it (SQLite rolls it back); "
            "if it stays, `agentkeep db check` and keep a backup before removing it",
        )


def _check_quarantine(store: Store, found: _Findings) -> None:
    """What earlier repairs moved aside (info: the user decides when to delete it)."""
    _QUARANTINE_RUN.pop(store.store_dir, None)
    files = list(_files_under(store.store_dir / QUARANTINE_DIR))
    if files:
        found.add(
            "quarantine",
            "info",
            QUARANTINE_DIR,
            f"{len(files)} file(s), {sum(_size(p) for p in files)} bytes that no row "
            "referred to, moved aside by `doctor --fix`",
            hint=f"delete .agentkeep/{QUARANTINE_DIR}/ once nothing is missing",
        )


def _check_hook_log(store: Store, found: _Findings) -> None:
    """The hook never fails the agent; it logs its failures here instead (info only)."""
    from agentkeep import hooklog

    try:
        lines = hooklog.read_lines(store.store_dir)  # redacted again on the way out
    except OSError as exc:
        found.add("hook-errors", "info", HOOK_LOG, f"unreadable: {exc.strerror}")
        return
    if not lines:
        return
    last = lines[-1]
    found.add(
        "hook-errors",
        "info",
        HOOK_LOG,
        f"{len(lines)} hook failure(s) logged; the last: {last[:200]}",
        hint=f"read .agentkeep/{HOOK_LOG}; delete it once dealt with",
    )


# -- the hook spool ---------------------------------------------------------------------


def _check_spool(store: Store, found: _Findings, *, fix: bool) -> None:
    """Hook deliveries waiting in the spool longer than ``spool.GRACE_S`` (fix drains
    them), quarantined records, and deliveries the hook logged as lost (a full disk)."""
    from agentkeep import spool

    store_dir = str(store.store_dir)
    state = spool.status(store_dir)
    if state.waiting and fix:
        store.drain_spool()
        before = state.waiting
        state = spool.status(store_dir)
        if state.waiting < before:
            found.add(
                "spool",
                "warning",
                spool.SPOOL_DIR,
                f"{before - state.waiting} hook delivery(ies) were waiting in the spool; stored",
                fixed=True,
            )
    if state.waiting and state.oldest is not None:
        age = max(0.0, time.time() - state.oldest)
        late = age > spool.GRACE_S
        found.add(
            "spool",
            "warning" if late else "info",
            spool.SPOOL_DIR,
            f"{state.waiting} hook delivery(ies) waiting to be stored, the oldest for {age:.0f} s",
            hint="`agentkeep doctor --fix` stores them; if they stay, another process holds "
            f"the writer lock or the store cannot be written: read .agentkeep/{HOOK_LOG}"
            if late
            else None,
        )
    if state.quarantined:
        found.add(
            "spool-quarantine",
            "error",
            spool.QUARANTINE_DIR,
            f"{state.quarantined} spooled hook delivery(ies) could not be stored and were "
            "moved aside",
            hint=f"each .reason file in .agentkeep/{spool.QUARANTINE_DIR}/ says why; the "
            "records hold redacted JSON. Delete them once dealt with",
        )
    lost = _lost_deliveries(store.store_dir)
    if lost:
        found.add(
            "lost-delivery",
            "error",
            HOOK_LOG,
            f"{lost} hook delivery(ies) could be written neither to the store nor to the spool",
            hint="free disk space; `agentkeep import` recovers what the agents' own histories "
            f"still hold. Delete .agentkeep/{HOOK_LOG} once dealt with",
        )


def _lost_deliveries(store_dir: Path) -> int:
    from agentkeep import hooklog
    from agentkeep.hook import LOST

    try:  # through hooklog: no link followed, no FIFO blocked on
        lines = hooklog.read_lines(store_dir)
    except OSError:
        return 0
    return sum(1 for line in lines if LOST in line)


# -- documents --------------------------------------------------------------------------


def _check_docs(store: Store, found: _Findings, *, fix: bool) -> None:
    """Document files ↔ their index (services/docs.py). The index is derived, so the
    repair is a rescan: the files win."""
    drift = store.docs.check_index()
    if drift and fix:
        store.docs.refresh()
    left = set(store.docs.check_index()) if drift and fix else set(drift)
    for problem in drift:
        found.add(
            "docs",
            "warning",
            "document index",
            problem,
            fixed=problem not in left,
            hint="`agentkeep doctor --fix` (or `agentkeep doc reindex`) re-reads the files",
        )


def _check_mail(store: Store, found: _Findings, *, fix: bool) -> None:
    """Messages' delivery markers ↔ their index (services/messages.py): a send cut short
    is delivered, stale rows are rewritten, by a rescan of the mail directories."""
    drift = store.mail.check()
    if drift and fix:
        store.mail.refresh()
    left = set(store.mail.check()) if drift and fix else set(drift)
    for problem in drift:
        found.add(
            "mail",
            "warning",
            "message deliveries",
            problem,
            fixed=problem not in left,
            hint="`agentkeep doctor --fix` (or `agentkeep msg reindex`) re-reads the mailboxes",
        )


def _check_privacy(store: Store, found: _Findings, *, fix: bool) -> None:
    """Links inside the store (never followed, so writers refuse them) and, when the store
    directory lets other users in, every path they can read. ``fix`` makes the whole store
    private (dirs 0700, files 0600/0400). Inside a 0700 directory a file's own mode
    exposes nothing, so it is tightened by ``fix`` without being reported."""
    from agentkeep.files import store_problems, tighten_store, tightened_on_open

    on_open = tightened_on_open(store.store_dir)  # a writable open fixed these already
    links, exposed = store_problems(store.store_dir)
    for link in links:
        found.add(
            "links",
            "error",
            link,
            "is a symbolic link; agentkeep refuses to write through links in its store",
            hint=f"remove it (a cloned repository may have brought it): rm .agentkeep/{link}",
        )
    changed = set(tighten_store(store.store_dir, deep=True)) if fix else set()
    if "." in on_open:
        found.add(
            "permissions",
            "warning",
            ".agentkeep",
            f"other users could read the store; {len(on_open)} path(s) were made private"
            " when it was opened for writing",
            fixed=True,
        )
    if "." not in exposed:
        return
    shown = ", ".join(exposed[:5]) + (f" and {len(exposed) - 5} more" if len(exposed) > 5 else "")
    found.add(
        "permissions",
        "warning",
        ".agentkeep",
        f"other users can read the store: {len(exposed)} path(s) are open to them ({shown})"
        + ("; made private" if fix else ""),
        fixed=fix and set(exposed) <= changed,
        hint=None if fix else "`agentkeep doctor --fix` makes the store private (0700/0600)",
    )


def _read(store: Store, sql: str, params: Sequence[Any] = ()) -> list[Row]:
    """The rows of one query, read in a snapshot of their own: doctor never holds a read
    transaction across file checks or the repairs it writes."""
    with store.maintenance.snapshot() as read:
        return read.rows(sql, params)


def _relative(store: Store, path: Path) -> str:
    try:
        return str(path.relative_to(store.store_dir))
    except ValueError:
        return str(path)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0
