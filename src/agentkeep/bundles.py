"""Backups, restores and portable bundles (issue 3, reliability.md R15).

**Backup** (:func:`backup`) — a directory holding a consistent snapshot of the store:

- the database, copied by SQLite's online backup API in one step (``backup_to``), so it
  is a state some commit left behind; writers keep writing (the writer lock is never held);
- the stream and object files *that snapshot* refers to. They are copied while holding the
  maintenance lock shared, taken *before* the snapshot, so ``gc`` (which unlinks files only
  under that lock, held exclusively) cannot delete a file the snapshot still names. Objects
  and sealed streams are immutable. A live or closed stream is copied up to the ``length``
  the snapshot records (every byte below it was durable when the row said so; the file
  may have grown since). If it was sealed meanwhile, its plain file is gone and the same
  prefix is read back from the sealed file;
- ``config.toml`` and ``.gitignore``, and last ``manifest.json``: the schema version and
  the size and sha256 of every file. A directory without a manifest is an unfinished backup.

Every file and directory is fsynced. **Restore** (:func:`restore`) verifies every hash
before touching anything, builds the new store beside the old one, moves an existing
store aside to ``.agentkeep.replaced-<time>`` (never deletes it), renames the new one into
place, and checks that it opens and passes ``check()``.

Restore also accepts the single-file backups agentkeep writes itself — ``db backup``'s
``backups/state-<time>.db`` and a migration's ``backups/state.db.pre-v<N>-<time>`` — which
hold the database only. The file must pass ``integrity_check`` and have a schema this code
reads. The new store gets that database and a copy of every other file of the current
store (streams, objects, backups, config, docs; immutable files are hard-linked when the
file system allows): the files the backup's rows name are normally still there, and files
newer than the backup become orphans that ``doctor --fix`` quarantines, never deletes.
The high-water mark is not carried over: restoring is the user's decision about which
state is the truth.

**Bundle** (:func:`export_bundle`, :func:`import_bundle`) — an uncompressed tar of
``records/<table>.jsonl`` (rows sorted by key, keys sorted, JSON columns as JSON values,
machine-local columns stripped), ``streams/<stream id>.log|.zst``,
``objects/<sha256>[.zst]`` (as stored; objects are already zstd) and, last,
``manifest.json`` (format and schema version, counts, sha256 and size of every member).
Exporting the same records twice gives the same member bytes. Live streams are exported up
to their recorded length with their status as it is; the importing store has no recorder
for them, so ``doctor`` treats such a session as interrupted.

Import treats a bundle as untrusted input: member names are checked against a fixed
pattern, every hash is verified, file contents are re-hashed and scanned by the redactor
(a file the redactor would change is refused: files are copied verbatim, never rewritten),
and every row goes through ``tx.insert`` (the redaction choke point). Files are published
before the one transaction that inserts every row commits (file before row). Merging is
idempotent: a record equal to an existing one (same key, same content once redacted,
machine-local fields ignored) is skipped; a record whose id is taken by different content
is inserted under a new id, every reference to it is remapped, and the conflict is
reported (and remembered as an idempotency key, so a second import finds it). Agents with
the same name, sessions with the same (source, external id), active worktrees with the
same path and streams with the same (session, name) are the same record: the existing one
is kept. Events are appended to this store's ledger: an event keeps its seq when that is
later than every seq here, otherwise it gets a new one; an event with the same content as
an existing one is skipped.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import secrets
import shutil
import sqlite3
import tarfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from agentkeep._core import Json, Tx
from agentkeep._version import __version__
from agentkeep.backends.sqlite.connection import backup_to, translate_error
from agentkeep.boundary import may_contain_secret, redact_json_text, redact_text
from agentkeep.errors import Conflict, Corrupt, InvalidInput, NotFound, SchemaTooNew
from agentkeep.files import (
    fsync_path,
    maintenance_lock,
    make_dirs,
    open_file,
    remove_quietly,
    staged_file,
    temp_path,
    translate_os_error,
    write_chunks,
    zstd,
)
from agentkeep.migrations import SCHEMA_VERSION
from agentkeep.models import Record
from agentkeep.paths import DB_NAME, STORE_DIRNAME
from agentkeep.services.artifacts import object_path, redacted_chunks
from agentkeep.services.streams import SealedReader, stream_file
from agentkeep.timeutil import file_stamp, utc_now

if TYPE_CHECKING:
    from agentkeep.backends.base import Row
    from agentkeep.store import Store

BACKUP_FORMAT = "agentkeep-backup"
BUNDLE_FORMAT = "agentkeep-bundle"
FORMAT_VERSION = 1
SNAPSHOT_DB = "state.snapshot.db"  # not "state.db": a backup is never a live database
MANIFEST = "manifest.json"
CHUNK = 1 << 20
MAX_MANIFEST_BYTES = 64 << 20
SIDE_FILES = ("config.toml", ".gitignore")


# -- results ------------------------------------------------------------------------------


@dataclass(frozen=True)
class BackupResult(Record):
    path: str
    schema_version: int
    created_at: str
    files: int
    bytes: int
    missing: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RestoreResult(Record):
    store_dir: str
    source: str
    replaced: str | None
    files: int
    check_ok: bool
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ExportResult(Record):
    path: str
    counts: dict[str, int]
    members: int
    bytes: int


@dataclass(frozen=True)
class ImportResult(Record):
    path: str
    outcome: str  # created | unchanged
    created: dict[str, int]
    unchanged: dict[str, int]
    conflicts: list[dict[str, Any]]
    events_renumbered: int
    files_written: int


# -- the tables a bundle carries ----------------------------------------------------------


@dataclass(frozen=True)
class Table:
    name: str
    key: tuple[str, ...]
    refs: Mapping[str, str]  # column -> referenced table
    json: tuple[str, ...] = ()
    local: tuple[str, ...] = ()  # machine-local columns: never exported, ignored on compare
    entity: str | None = None  # how events.entity names a row of this table


# In dependency order: a table comes after every table it refers to.
TABLES: tuple[Table, ...] = (
    Table("worktrees", ("id",), {}, entity="worktree"),
    Table("agents", ("id",), {"worktree_id": "worktrees"}, local=("pid", "host"), entity="agent"),
    Table("tasks", ("id",), {"parent_id": "tasks"}, json=("labels",), entity="task"),
    Table("task_deps", ("task_id", "depends_on"), {"task_id": "tasks", "depends_on": "tasks"}),
    Table(
        "sessions",
        ("id",),
        {"agent_id": "agents", "task_id": "tasks", "parent_id": "sessions"},
        json=("command",),
        local=("pid", "host"),
        entity="session",
    ),
    Table("streams", ("id",), {"session_id": "sessions"}, entity="stream"),
    Table("stream_index", ("stream_id", "offset"), {"stream_id": "streams"}),
    Table("objects", ("sha256",), {}),
    Table(
        "artifacts",
        ("id",),
        {"sha256": "objects", "session_id": "sessions", "task_id": "tasks", "agent_id": "agents"},
        json=("data",),
        entity="artifact",
    ),
    Table(
        "notes",
        ("id",),
        {"task_id": "tasks", "session_id": "sessions", "agent_id": "agents"},
        json=("data",),
        entity="note",
    ),
    Table(
        "metrics",
        ("id",),
        {"session_id": "sessions", "agent_id": "agents"},
        json=("labels",),
        entity="metric",
    ),
    # Transcripts and hook deliveries travel with their sessions. Import cursors do not:
    # they describe this machine's agent-tool files.
    Table("messages", ("id",), {"session_id": "sessions"}, json=("raw",)),
    Table(
        "captures",
        ("id",),
        {"session_id": "sessions", "artifact_id": "artifacts"},
        json=("payload",),
    ),
    Table("events", ("seq",), {"undoes": "events"}, json=("data",)),
)
BY_NAME = {t.name: t for t in TABLES}
ENTITY_TABLE = {t.entity: t.name for t in TABLES if t.entity}
# Events about records a bundle never carries (a store has its own project row).
LOCAL_ENTITIES = frozenset({"project", "integration"})
MEMBER_RE = re.compile(
    r"^(?:manifest\.json"
    r"|records/(?P<table>[a-z_]+)\.jsonl"
    r"|streams/(?P<stream>[1-9][0-9]{0,18})\.(?:log|zst)"
    r"|objects/(?P<sha>[0-9a-f]{64})(?:\.zst)?)$"
)


# -- small file helpers -------------------------------------------------------------------


def _sha256_file(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _write_durably(dest: Path, chunks: Iterable[bytes]) -> tuple[str, int]:
    """Write ``chunks`` to a new file ``dest`` and fsync it; returns (sha256, size)."""
    digest, size = hashlib.sha256(), 0
    try:
        fd = open_file(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL)  # 0600, never a link
        try:
            for chunk in chunks:
                digest.update(chunk)
                size += write_chunks(fd, (chunk,))
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise translate_os_error(exc, str(dest)) from exc
    return digest.hexdigest(), size


def _file_chunks(path: Path, limit: int | None = None) -> Iterator[bytes]:
    """The first ``limit`` bytes of a file (all of it when None); Corrupt if shorter."""
    with os.fdopen(open_file(path, os.O_RDONLY), "rb") as handle:
        yield from _handle_chunks(handle, limit, path)


def _handle_chunks(handle: BinaryIO, limit: int | None, path: Path) -> Iterator[bytes]:
    remaining = limit
    while remaining is None or remaining > 0:
        chunk = handle.read(CHUNK if remaining is None else min(CHUNK, remaining))
        if not chunk:
            break
        if remaining is not None:
            remaining -= len(chunk)
        yield chunk
    if remaining:
        raise Corrupt(f"{path} is shorter than the {limit} bytes the database records")


def _sealed_prefix(path: Path, length: int) -> Iterator[bytes]:
    reader = SealedReader(os.open(path, os.O_RDONLY))
    try:
        offset = 0
        while offset < length:
            chunk = reader.read(offset, min(CHUNK, length - offset))
            if not chunk:
                raise Corrupt(f"{path} holds fewer than the {length} bytes recorded")
            offset += len(chunk)
            yield chunk
    finally:
        reader.close()


@dataclass(frozen=True)
class StreamRef:
    id: int
    session_id: int
    name: str
    status: str
    path: str
    length: int


def stream_chunks(store_dir: Path, ref: StreamRef) -> Iterator[bytes]:
    """The bytes of a stream as a snapshot saw it: a sealed file whole; a live or closed
    one up to its recorded length — read back from the sealed file if it was sealed
    since (sealing unlinks the plain file only after its sealed twin is durable)."""
    path = store_dir / ref.path
    if ref.status == "sealed":
        yield from _file_chunks(path)
        return
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        sealed = store_dir / stream_file(ref.session_id, ref.name, sealed=True)
        yield from _sealed_prefix(sealed, ref.length)
        return
    with handle:
        yield from _handle_chunks(handle, ref.length, path)


def _fsync_dirs(directories: Iterable[Path]) -> None:
    for directory in sorted(set(directories), key=lambda p: len(p.parts), reverse=True):
        fsync_path(directory, directory=True)


def _json_line(value: Any) -> bytes:
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return text.encode("utf-8") + b"\n"


def _export_line(value: Any) -> bytes:
    """A record as a bundle line, through the privacy boundary: rows were redacted when
    they were written, but perhaps by an older agentkeep with fewer rules, and an export
    leaves the machine."""
    line = _json_line(value)
    if may_contain_secret(line.decode("utf-8", "replace")):
        line = _json_line(redact_json_text(value))
    return line


def _refuse_constant(constant: str) -> None:
    raise ValueError(f"{constant} is not valid JSON")


def _loads(data: bytes | str, what: str) -> Any:
    try:
        return json.loads(data, parse_constant=_refuse_constant)
    except (ValueError, RecursionError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{what} is not valid JSON ({exc})") from exc


# -- backup -------------------------------------------------------------------------------


def _backup_target(store: Store, dest: str | Path | None) -> Path:
    if dest is None:
        return store.store_dir / "backups" / f"snapshot-{file_stamp()}"
    target = Path(dest).expanduser().absolute()
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise InvalidInput(
            f"{target} exists and is not an empty directory",
            hint="name a new directory for the backup",
        )
    return target


def _snapshot_refs(db: Path) -> tuple[list[StreamRef], list[tuple[str, str]]]:
    """The streams and objects (sha256, encoding) a snapshot database refers to."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        streams = [
            StreamRef(*row)
            for row in conn.execute(
                "SELECT id, session_id, name, status, path, length FROM streams ORDER BY id"
            )
        ]
        objects = list(conn.execute("SELECT sha256, encoding FROM objects ORDER BY sha256"))
    finally:
        conn.close()
    return streams, objects


def backup(store: Store, dest: str | Path | None = None) -> BackupResult:
    """Write a consistent snapshot of the store (database, streams, objects) to ``dest``.

    Default: ``.agentkeep/backups/snapshot-<UTC time>/``. Refuses a non-empty ``dest``.
    Never takes the writer lock; holds the maintenance lock shared from before the
    database snapshot until every file it names is copied.
    """
    target = _backup_target(store, dest)
    make_dirs(target, within=store.store_dir if dest is None else None)
    files: dict[str, dict[str, Any]] = {}
    missing: list[str] = []
    dirs = {target}
    with maintenance_lock(store.store_dir, shared=True):
        backup_to(store._conn, target / SNAPSHOT_DB)
        files[SNAPSHOT_DB] = _entry(*_sha256_file(target / SNAPSHOT_DB))
        streams, objects = _snapshot_refs(target / SNAPSHOT_DB)
        for ref in streams:
            _copy_into(
                target,
                ref.path,
                lambda r=ref: stream_chunks(store.store_dir, r),
                files,
                missing,
                dirs,
            )
        for sha, encoding in objects:
            source = object_path(store.store_dir, sha, encoding)
            relative = source.relative_to(store.store_dir).as_posix()
            _copy_into(target, relative, lambda s=source: _file_chunks(s), files, missing, dirs)
    for name in SIDE_FILES:
        if (store.store_dir / name).is_file():
            _copy_into(
                target, name, lambda n=name: _file_chunks(store.store_dir / n), files, missing, dirs
            )
    created_at = utc_now()
    schema = _snapshot_schema(target / SNAPSHOT_DB)
    manifest = {
        "format": BACKUP_FORMAT,
        "format_version": FORMAT_VERSION,
        "schema_version": schema,
        "created_at": created_at,
        "agentkeep_version": __version__,
        "database": SNAPSHOT_DB,
        "files": dict(sorted(files.items())),
        "missing": missing,
    }
    _write_manifest(target, manifest)
    _fsync_dirs(dirs)
    return BackupResult(
        path=str(target),
        schema_version=schema,
        created_at=created_at,
        files=len(files),
        bytes=sum(f["size"] for f in files.values()),
        missing=missing,
    )


def _entry(sha256: str, size: int) -> dict[str, Any]:
    return {"sha256": sha256, "size": size}


def _copy_into(
    target: Path,
    relative: str,
    chunks: Any,
    files: dict[str, dict[str, Any]],
    missing: list[str],
    dirs: set[Path],
) -> None:
    """Copy one file into the backup; a file the store lacks is listed as missing."""
    dest = target / relative
    make_dirs(dest.parent)
    dirs.add(dest.parent)
    try:
        files[relative] = _entry(*_write_durably(dest, chunks()))
    except (FileNotFoundError, Corrupt):
        remove_quietly(dest)
        missing.append(relative)


def _snapshot_schema(db: Path) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    finally:
        conn.close()
    return int(row[0]) if row else 0


def _write_manifest(directory: Path, manifest: dict[str, Any]) -> None:
    data = json.dumps(manifest, indent=2, sort_keys=True).encode("utf-8") + b"\n"
    with staged_file(directory / MANIFEST) as tmp:
        _write_durably(tmp, [data])


# -- restore ------------------------------------------------------------------------------


def read_backup_manifest(source: Path) -> dict[str, Any]:
    """The verified manifest of a backup directory: every file present with its hash."""
    path = source / MANIFEST
    if not path.is_file():
        raise InvalidInput(
            f"{source} is not a complete agentkeep backup (no {MANIFEST})",
            hint="an interrupted backup has no manifest; use another backup",
        )
    manifest = _loads(path.read_bytes(), str(path))
    if not isinstance(manifest, dict) or manifest.get("format") != BACKUP_FORMAT:
        raise InvalidInput(f"{source} is not an agentkeep backup")
    _check_versions(manifest, str(source))
    files = manifest.get("files")
    if not isinstance(files, dict) or SNAPSHOT_DB not in files:
        raise Corrupt(f"the manifest of {source} lists no database")
    for relative, expected in sorted(files.items()):
        _check_relative(relative, source)
        try:
            got = _entry(*_sha256_file(source / relative))
        except FileNotFoundError:
            raise Corrupt(f"backup file {relative} is missing from {source}") from None
        if got != expected:
            raise Corrupt(
                f"backup file {relative} does not match its hash in the manifest",
                hint="the backup is damaged; use another one",
            )
    return manifest


def _check_relative(relative: str, source: Path) -> None:
    parts = Path(relative).parts
    if not parts or Path(relative).is_absolute() or ".." in parts:
        raise Corrupt(f"the manifest of {source} names an unsafe path {relative!r}")


def _check_versions(manifest: Mapping[str, Any], what: str) -> None:
    version, schema = manifest.get("format_version"), manifest.get("schema_version")
    if not isinstance(version, int) or not isinstance(schema, int):
        raise InvalidInput(f"{what} has no valid format or schema version")
    if version > FORMAT_VERSION or schema > SCHEMA_VERSION:
        raise SchemaTooNew(
            f"{what} was written by a newer agentkeep (format {version}, schema {schema}); "
            f"this one reads format {FORMAT_VERSION}, schema {SCHEMA_VERSION}",
            hint="upgrade agentkeep (pip install -U agentkeep)",
        )


def store_dir_for(target: str | Path) -> Path:
    """The store directory to restore into: ``target`` itself if it is named .agentkeep,
    otherwise ``target/.agentkeep``."""
    path = Path(target).expanduser().absolute()
    return path if path.name == STORE_DIRNAME else path / STORE_DIRNAME


def restore(source: str | Path, target: str | Path, *, force: bool = False) -> RestoreResult:
    """Restore the backup directory ``source`` as the store at ``target`` (a project root
    or its .agentkeep directory).

    Hashes are verified first. A store holding a database is replaced only with ``force``,
    and then moved aside to ``.agentkeep.replaced-<time>`` beside it, never deleted. The
    new store is assembled in a temp directory and renamed into place, so a crash leaves
    either the old store or the new one (plus a leftover temp directory).
    """
    src = Path(source).expanduser().absolute()
    store_dir = store_dir_for(target)
    if src.is_file():
        return _restore_database_file(src, store_dir, force=force)
    manifest = read_backup_manifest(src)

    def assemble(staging: Path) -> int:
        _assemble(src, manifest, staging)
        return len(manifest["files"])

    return _swap_in(src, store_dir, assemble, force=force)


def _swap_in(
    src: Path, store_dir: Path, assemble: Callable[[Path], int], *, force: bool
) -> RestoreResult:
    """The one way a restore replaces a store: ``assemble`` fills a temp directory beside
    it (returning how many files it holds), the old store is moved aside (never deleted),
    and the temp directory is renamed into place; a failure removes only our own copy."""
    if (store_dir / DB_NAME).exists() and not force:
        raise Conflict(
            f"{store_dir} already holds a store",
            hint="pass --force to move it aside (to .agentkeep.replaced-<time>) and restore",
        )
    if not store_dir.parent.is_dir():
        raise InvalidInput(f"{store_dir.parent} is not a directory")
    staging = store_dir.with_name(f"{STORE_DIRNAME}.restoring-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        files = assemble(staging)
        replaced = _move_aside(store_dir)
        os.rename(staging, store_dir)
        fsync_path(store_dir.parent, directory=True)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)  # our own unfinished copy
        raise translate_os_error(exc, str(store_dir)) from exc
    except sqlite3.Error as exc:  # a damaged backup database
        shutil.rmtree(staging, ignore_errors=True)
        raise translate_error(exc, src) from exc
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return _check_restored(store_dir, src, replaced, files)


def _assemble(src: Path, manifest: Mapping[str, Any], staging: Path) -> None:
    """Build the restored store directory: files copied and fsynced, database copied by
    SQLite (never by a file copy) and put back in WAL mode."""
    make_dirs(staging)
    dirs = {staging}
    for relative in sorted(manifest["files"]):
        if relative == SNAPSHOT_DB:
            continue
        dest = staging / relative
        make_dirs(dest.parent)
        dirs.add(dest.parent)
        _write_durably(dest, _file_chunks(src / relative))
    gitignore = staging / ".gitignore"
    if not gitignore.exists():
        from agentkeep.store import GITIGNORE

        _write_durably(gitignore, [GITIGNORE.encode("utf-8")])
    tmp = temp_path(staging / "restored.db")
    source = sqlite3.connect(f"file:{src / SNAPSHOT_DB}?mode=ro", uri=True)
    try:
        dest_conn = sqlite3.connect(str(tmp), isolation_level=None)
        try:
            os.chmod(tmp, 0o600)  # private before the first page is written
            source.backup(dest_conn, pages=-1)
            dest_conn.execute("PRAGMA journal_mode=WAL")
        finally:
            dest_conn.close()  # a clean close checkpoints and removes the -wal
    finally:
        source.close()
    fsync_path(tmp)
    os.replace(tmp, staging / DB_NAME)
    _fsync_dirs(dirs)


# Files of a store that are not carried into a store restored from a database file: the
# live database and SQLite's side files, locks, the high-water mark and the disk reserve.
_NOT_CARRIED = frozenset(
    {
        DB_NAME,
        f"{DB_NAME}-wal",
        f"{DB_NAME}-shm",
        f"{DB_NAME}-journal",
        f"{DB_NAME}.lock",
        "maintenance.lock",
        "high-water-mark",
        "reserve",
    }
)
_IMMUTABLE_DIRS = ("objects", "backups")


def check_database_file(path: Path) -> int:
    """A single-file backup's schema version, once it passes ``integrity_check`` and this
    code can read it; Corrupt or InvalidInput otherwise."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            integrity = [row[0] for row in conn.execute("PRAGMA integrity_check")]
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        if getattr(exc, "sqlite_errorname", "").startswith("SQLITE_CORRUPT"):
            raise Corrupt(
                f"the backup {path} is damaged ({exc})", hint="use another backup"
            ) from exc
        raise InvalidInput(
            f"{path} is not an agentkeep backup ({exc})",
            hint="pass a backup directory (`agentkeep backup`) or a database file from "
            ".agentkeep/backups/",
        ) from exc
    if integrity != ["ok"]:
        raise Corrupt(
            f"the backup {path} is damaged: " + "; ".join(integrity[:3]),
            hint="use another backup",
        )
    if row is None:
        raise InvalidInput(f"{path} is not an agentkeep database (no schema version)")
    schema = int(row[0])
    _check_versions({"format_version": FORMAT_VERSION, "schema_version": schema}, str(path))
    return schema


def _restore_database_file(src: Path, store_dir: Path, *, force: bool) -> RestoreResult:
    check_database_file(src)

    def assemble(staging: Path) -> int:
        files = _carry_files(store_dir, staging)
        _install_database(src, staging)
        return files + 1

    return _swap_in(src, store_dir, assemble, force=force)


def _carry_files(store_dir: Path, staging: Path) -> int:
    """Copy (or hard-link, for immutable files) every file of the current store but the
    ones in ``_NOT_CARRIED`` and temp files into ``staging``; returns how many."""
    make_dirs(staging)
    dirs = {staging}
    count = 0
    if store_dir.is_dir():
        for root, dirnames, names in os.walk(store_dir):
            here = Path(root)
            dirnames[:] = [d for d in dirnames if not (here / d).is_symlink()]
            relative_dir = here.relative_to(store_dir)
            for name in names:
                source = here / name
                relative = relative_dir / name
                if (
                    (relative_dir == Path(".") and name in _NOT_CARRIED)
                    or ".tmp-" in name
                    or source.is_symlink()
                    or not source.is_file()
                ):
                    continue
                dest = staging / relative
                make_dirs(dest.parent)
                dirs.add(dest.parent)
                immutable = relative.parts[0] in _IMMUTABLE_DIRS or name.endswith(".zst")
                try:
                    if not immutable:
                        raise OSError("copy")
                    os.link(source, dest)
                except OSError:
                    _write_durably(dest, _file_chunks(source))
                count += 1
    gitignore = staging / ".gitignore"
    if not gitignore.exists():
        from agentkeep.store import GITIGNORE

        _write_durably(gitignore, [GITIGNORE.encode("utf-8")])
    _fsync_dirs(dirs)
    return count


def _install_database(src: Path, staging: Path) -> None:
    """Copy the database file ``src`` into ``staging`` through SQLite, in WAL mode."""
    tmp = temp_path(staging / "restored.db")
    source = sqlite3.connect(f"file:{src}?mode=ro", uri=True)
    try:
        dest_conn = sqlite3.connect(str(tmp), isolation_level=None)
        try:
            source.backup(dest_conn, pages=-1)
            dest_conn.execute("PRAGMA journal_mode=WAL")
        finally:
            dest_conn.close()
    finally:
        source.close()
    fsync_path(tmp)
    os.replace(tmp, staging / DB_NAME)
    fsync_path(staging, directory=True)


def _move_aside(store_dir: Path) -> Path | None:
    if not store_dir.exists():
        return None
    aside = store_dir.with_name(f"{STORE_DIRNAME}.replaced-{file_stamp()}")
    os.rename(store_dir, aside)
    fsync_path(store_dir.parent, directory=True)
    return aside


def _check_restored(store_dir: Path, src: Path, replaced: Path | None, files: int) -> RestoreResult:
    import agentkeep

    with agentkeep.open(store_dir) as restored:
        report = restored.check()
        problems = list(report.problems) + _missing_files(restored)
        project = restored.project()
    with contextlib.suppress(Exception):  # the registry is a convenience, not the store
        from agentkeep.registry import register_project

        register_project(store_dir.parent, uid=project.uid, name=project.name)
    return RestoreResult(
        store_dir=str(store_dir),
        source=str(src),
        replaced=None if replaced is None else str(replaced),
        files=files,
        check_ok=not problems,
        problems=problems,
    )


def _missing_files(store: Store) -> list[str]:
    problems = []
    for row in store._rows("SELECT path FROM streams"):
        if not (store.store_dir / row[0]).exists():
            problems.append(f"stream file {row[0]} is missing")
    for row in store._rows("SELECT sha256, encoding FROM objects"):
        if not object_path(store.store_dir, row[0], row[1]).exists():
            problems.append(f"object file {row[0][:12]} is missing")
    return problems


# -- export -------------------------------------------------------------------------------


Key = Any  # an id, a sha256, or a tuple for composite keys


def _key(table: Table, row: Mapping[str, Any]) -> Key:
    return row[table.key[0]] if len(table.key) == 1 else tuple(row[k] for k in table.key)


class _Selection:
    """Rows chosen for export, by table and key, read inside one read transaction."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.rows: dict[str, dict[Key, dict[str, Any]]] = {t.name: {} for t in TABLES}

    def fetch(self, table: str, where: str, values: Iterable[Any] = ()) -> None:
        """Add the rows of ``table`` matching ``where`` (``?`` bound to each value in
        chunks; with no ``?`` the condition is used as is)."""
        spec = BY_NAME[table]
        order = ", ".join(spec.key)
        # The stored columns only: not generated ones (captures.search_text is derived).
        stored = ", ".join(row[1] for row in self.store._rows(f"PRAGMA table_info({table})"))
        if "?" not in where:
            rows = self.store._rows(f"SELECT {stored} FROM {table} WHERE {where} ORDER BY {order}")
            self._add(spec, rows)
            return
        items = sorted(set(values), key=str)
        for start in range(0, len(items), 500):
            part = items[start : start + 500]
            marks = ", ".join("?" for _ in part)
            sql = f"SELECT {stored} FROM {table} WHERE {where.replace('?', f'({marks})')}"
            self._add(spec, self.store._rows(sql, part * where.count("?")))

    def _add(self, spec: Table, rows: Iterable[Row]) -> None:
        for row in rows:
            values = dict(row)
            self.rows[spec.name][_key(spec, values)] = values

    def ids(self, table: str) -> set[Key]:
        return set(self.rows[table])

    def close_over_references(self) -> None:
        """Add every row a chosen row refers to (parents only, not their children)."""
        while True:
            wanted: dict[str, set[Any]] = {}
            for spec in TABLES:
                for row in self.rows[spec.name].values():
                    for column, ref in spec.refs.items():
                        value = row.get(column)
                        if ref != "events" and value is not None and value not in self.rows[ref]:
                            wanted.setdefault(ref, set()).add(value)
            if not wanted:
                return
            for ref, values in wanted.items():
                before = len(self.rows[ref])
                self.fetch(ref, f"{BY_NAME[ref].key[0]} IN ?", values)
                if len(self.rows[ref]) == before:
                    raise Corrupt(f"{ref} rows {sorted(values)[:5]} are referenced but missing")


def _select(
    store: Store, session_ids: Sequence[int], task_ids: Sequence[int], everything: bool
) -> _Selection:
    sel = _Selection(store)
    if everything:
        for spec in TABLES[:-1]:
            sel.fetch(spec.name, "1")
    else:
        _select_roots(sel, session_ids, task_ids)
    _select_events(sel, everything)
    return sel


def _select_roots(sel: _Selection, session_ids: Sequence[int], task_ids: Sequence[int]) -> None:
    for noun, ids in (("session", session_ids), ("task", task_ids)):
        for ident in ids:
            sel.store._record(noun, ident)  # NotFound with a hint
    sel.fetch("tasks", "id IN ?", task_ids)
    sel.fetch("sessions", "id IN ?", session_ids)
    sel.fetch("sessions", "task_id IN ?", task_ids)
    sessions = sel.ids("sessions")
    sel.fetch("streams", "session_id IN ?", sessions)
    sel.fetch("stream_index", "stream_id IN ?", sel.ids("streams"))
    for table in ("notes", "artifacts"):
        sel.fetch(table, "session_id IN ?", sessions)
        sel.fetch(table, "task_id IN ?", task_ids)
    for table in ("metrics", "messages", "captures"):
        sel.fetch(table, "session_id IN ?", sessions)
    sel.fetch("task_deps", "task_id IN ? OR depends_on IN ?", task_ids)
    sel.close_over_references()


def _select_events(sel: _Selection, everything: bool) -> None:
    for spec in TABLES:
        if spec.entity and sel.rows[spec.name]:
            where = f"entity = '{spec.entity}' AND entity_id IN ?"
            sel.fetch("events", where, sel.ids(spec.name))
    if everything:
        known = ", ".join(f"'{e}'" for e in sorted({*ENTITY_TABLE, *LOCAL_ENTITIES}))
        sel.fetch("events", f"entity NOT IN ({known})")


def _export_row(spec: Table, row: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in row.items() if k not in spec.local}
    for column in spec.json:
        if isinstance(out.get(column), str):
            out[column] = json.loads(out[column])
    return out


class _HashingReader(io.RawIOBase):
    """A file object over chunks that hashes what is read (tar members are streamed)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = b""
        self.digest = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._buffer:
            try:
                self._buffer = next(self._chunks)
            except StopIteration:
                return 0
        size = min(len(buffer), len(self._buffer))
        buffer[:size] = self._buffer[:size]
        self.digest.update(self._buffer[:size])
        self._buffer = self._buffer[size:]
        return size


def _tar_info(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, 0, 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


class _BundleWriter:
    def __init__(self, tar: tarfile.TarFile) -> None:
        self.tar = tar
        self.members: dict[str, dict[str, Any]] = {}

    def add_bytes(self, name: str, data: bytes) -> None:
        self.tar.addfile(_tar_info(name, len(data)), io.BytesIO(data))
        self.members[name] = _entry(hashlib.sha256(data).hexdigest(), len(data))

    def add_chunks(self, name: str, size: int, chunks: Iterator[bytes]) -> None:
        reader = _HashingReader(chunks)
        self.tar.addfile(_tar_info(name, size), io.BufferedReader(reader))
        self.members[name] = _entry(reader.digest.hexdigest(), size)


def export_bundle(
    store: Store,
    out_path: str | Path,
    *,
    session_ids: Sequence[int] = (),
    task_ids: Sequence[int] = (),
    all: bool = False,
) -> ExportResult:
    """Write a portable bundle of the chosen records and their files to ``out_path``.

    Rows are read in one read transaction (a consistent view); files are copied under the
    maintenance lock (shared), taken before that read, so gc cannot remove them meanwhile.
    The bundle is written to a temp name and published atomically; an existing file is
    never overwritten.
    """
    if not all and not session_ids and not task_ids:
        raise InvalidInput("choose what to export", hint="pass --session ID, --task ID or --all")
    out = Path(out_path).expanduser().absolute()
    if out.exists():
        raise InvalidInput(f"{out} already exists", hint="choose a new file name")
    if not out.parent.is_dir():
        raise InvalidInput(f"{out.parent} is not a directory")
    project = store.project()
    with maintenance_lock(store.store_dir, shared=True):
        store._conn.execute("BEGIN")
        try:
            sel = _select(store, session_ids, task_ids, all)
        finally:
            store._conn.execute("COMMIT")
        with staged_file(out) as tmp:
            members = _write_bundle(
                store,
                tmp,
                sel,
                project.uid,
                project.name,
                {"all": all, "sessions": sorted(session_ids), "tasks": sorted(task_ids)},
            )
    return ExportResult(
        path=str(out),
        counts={t.name: len(sel.rows[t.name]) for t in TABLES},
        members=len(members),
        bytes=out.stat().st_size,
    )


def _write_bundle(
    store: Store,
    tmp: Path,
    sel: _Selection,
    uid: str,
    name: str,
    selection: dict[str, Any],
) -> dict[str, dict[str, Any]]:
    with (
        os.fdopen(open_file(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL), "wb") as raw,
        tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar,
    ):
        writer = _BundleWriter(tar)
        for spec in TABLES:
            rows = [sel.rows[spec.name][k] for k in sorted(sel.rows[spec.name])]
            data = b"".join(_export_line(_export_row(spec, row)) for row in rows)
            writer.add_bytes(f"records/{spec.name}.jsonl", data)
        for sid in sorted(sel.rows["streams"]):
            row = sel.rows["streams"][sid]
            ref = StreamRef(
                sid, row["session_id"], row["name"], row["status"], row["path"], row["length"]
            )
            sealed = ref.status == "sealed"
            size = (store.store_dir / ref.path).stat().st_size if sealed else ref.length
            member = f"streams/{sid}.{'zst' if sealed else 'log'}"
            writer.add_chunks(member, size, stream_chunks(store.store_dir, ref))
        for sha in sorted(sel.rows["objects"]):
            row = sel.rows["objects"][sha]
            path = object_path(store.store_dir, sha, row["encoding"])
            member = f"objects/{path.name}"
            writer.add_chunks(member, path.stat().st_size, _file_chunks(path))
        manifest = {
            "format": BUNDLE_FORMAT,
            "format_version": FORMAT_VERSION,
            "schema_version": SCHEMA_VERSION,
            "created_at": utc_now(),
            "agentkeep_version": __version__,
            "source": {"project_uid": uid, "project_name": name},
            "selection": selection,
            "counts": {t.name: len(sel.rows[t.name]) for t in TABLES},
            "members": dict(sorted(writer.members.items())),
        }
        writer.add_bytes(MANIFEST, _export_line(manifest))
    return writer.members  # publish() fsyncs the file


# -- reading a bundle ---------------------------------------------------------------------


class Bundle:
    """An open, verified bundle: manifest checked, every member's hash checked, records
    parsed. Raises InvalidInput / Corrupt / SchemaTooNew for anything else."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.tar = tarfile.open(path, "r:")  # noqa: SIM115 - closed by close()
        except FileNotFoundError:
            raise NotFound(f"{path} does not exist") from None
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise InvalidInput(
                f"{path} is not an agentkeep bundle (not a tar file: {exc})"
            ) from exc
        try:
            self._load()
        except BaseException:
            self.tar.close()
            raise

    def close(self) -> None:
        self.tar.close()

    def _load(self) -> None:
        try:
            members = self.tar.getmembers()
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise Corrupt(f"{self.path} is truncated or damaged ({exc})") from exc
        self.members: dict[str, tarfile.TarInfo] = {}
        for member in members:
            if not member.isreg() or not MEMBER_RE.match(member.name):
                raise InvalidInput(f"{self.path} holds an unexpected member {member.name!r}")
            if member.name in self.members:
                raise InvalidInput(f"{self.path} holds {member.name!r} twice")
            self.members[member.name] = member
        if MANIFEST not in self.members:
            raise InvalidInput(
                f"{self.path} is not a complete agentkeep bundle (no {MANIFEST})",
                hint="the file is not a bundle, or it was cut short",
            )
        if self.members[MANIFEST].size > MAX_MANIFEST_BYTES:
            raise InvalidInput(f"the manifest of {self.path} is too large")
        self.manifest = _loads(self.read(MANIFEST), f"the manifest of {self.path}")
        if not isinstance(self.manifest, dict) or self.manifest.get("format") != BUNDLE_FORMAT:
            raise InvalidInput(f"{self.path} is not an agentkeep bundle")
        _check_versions(self.manifest, str(self.path))
        self._verify_members()
        self.records = {spec.name: self._records(spec) for spec in TABLES}

    def read(self, name: str) -> bytes:
        return b"".join(self.chunks(name))

    def chunks(self, name: str) -> Iterator[bytes]:
        try:
            handle = self.tar.extractfile(self.members[name])
            assert handle is not None
            with handle:
                while chunk := handle.read(CHUNK):
                    yield chunk
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise Corrupt(f"{self.path} is truncated or damaged at {name} ({exc})") from exc

    def plain_chunks(self, name: str) -> Iterator[bytes]:
        """A member's content, decompressed if it is zstd."""
        if not name.endswith(".zst"):
            yield from self.chunks(name)
            return
        module = zstd()
        try:
            handle = self.tar.extractfile(self.members[name])
            assert handle is not None
            with handle, module.ZstdFile(handle, "rb") as plain:
                while chunk := plain.read(CHUNK):
                    yield chunk
        except (module.ZstdError, tarfile.TarError, OSError, EOFError) as exc:
            raise Corrupt(f"{name} in {self.path} is damaged ({exc})") from exc

    def _verify_members(self) -> None:
        listed = self.manifest.get("members")
        if not isinstance(listed, dict):
            raise InvalidInput(f"the manifest of {self.path} lists no members")
        actual = set(self.members) - {MANIFEST}
        if set(listed) != actual:
            extra, lacking = sorted(actual - set(listed)), sorted(set(listed) - actual)
            raise Corrupt(
                f"{self.path} does not match its manifest (extra {extra[:3]}, "
                f"missing {lacking[:3]})"
            )
        for name in sorted(actual):
            digest, size = hashlib.sha256(), 0
            for chunk in self.chunks(name):
                digest.update(chunk)
                size += len(chunk)
            if listed[name] != _entry(digest.hexdigest(), size):
                raise Corrupt(
                    f"{name} in {self.path} does not match its hash in the manifest",
                    hint="the bundle was changed or damaged after it was written",
                )

    def _records(self, spec: Table) -> list[dict[str, Any]]:
        name = f"records/{spec.name}.jsonl"
        if name not in self.members:
            return []
        out = []
        for number, line in enumerate(self.read(name).split(b"\n"), 1):
            if not line:
                continue
            record = _loads(line, f"{name} line {number}")
            if not isinstance(record, dict) or any(record.get(k) is None for k in spec.key):
                raise InvalidInput(f"{name} line {number} is not a {spec.name} record")
            out.append(record)
        return out


def _check_file_member(bundle: Bundle, name: str, sha256: str | None, length: int) -> None:
    """Re-derive a file member's content hash and length, and refuse content the redactor
    would change (files are copied verbatim, so they must already be clean)."""
    digest, size = hashlib.sha256(), 0
    counts: dict[str, int] = {}

    def hashed() -> Iterator[bytes]:
        nonlocal size
        for chunk in bundle.plain_chunks(name):
            digest.update(chunk)
            size += len(chunk)
            yield chunk

    for _ in redacted_chunks(hashed(), counts):
        pass
    if size != length or (sha256 is not None and digest.hexdigest() != sha256):
        raise Corrupt(f"{name} in {bundle.path} does not match its record (hash or length)")
    if counts:
        raise InvalidInput(
            f"{name} in {bundle.path} holds text the redactor would remove "
            f"({', '.join(sorted(counts))})",
            hint="files are imported verbatim, so they must already be redacted",
        )


# -- import -------------------------------------------------------------------------------


def import_bundle(store: Store, path: str | Path) -> ImportResult:
    """Merge a bundle into the store, idempotently (see the module docstring).

    Everything is verified before anything is written. Then, holding the writer lock, one
    transaction publishes the needed files and inserts every row, with a
    ``bundle.imported`` event; it commits only if all of it succeeded.
    """
    bundle = Bundle(Path(path).expanduser().absolute())
    try:
        members = _file_members(bundle)
        for name, (sha256, length) in members.items():
            _check_file_member(bundle, name, sha256, length)
        project_id = store.project().id
        with store.transaction() as tx:
            importer = _Importer(store, tx, bundle, members)
            importer.run()
            result = importer.result()
            if result.outcome == "created":
                tx.emit(
                    "project",
                    project_id,
                    "bundle.imported",
                    {
                        "file": bundle.path.name,
                        "source": bundle.manifest.get("source"),
                        "created": result.created,
                        "conflicts": result.conflicts[:100],
                    },
                )
        return result
    finally:
        bundle.close()


def _file_members(bundle: Bundle) -> dict[str, tuple[str | None, int]]:
    """member name -> (sha256 of the plain content or None, plain length), checked
    against the records that name them."""
    out: dict[str, tuple[str | None, int]] = {}
    for record in bundle.records["streams"]:
        sealed = record.get("status") == "sealed"
        name = f"streams/{record['id']}.{'zst' if sealed else 'log'}"
        if name not in bundle.members:
            raise Corrupt(f"{bundle.path} lacks the file of stream {record['id']}")
        out[name] = (record.get("sha256") if sealed else None, _int(record, "length"))
    for record in bundle.records["objects"]:
        sha = str(record["sha256"])
        zst = record.get("encoding") == "zstd"
        name = f"objects/{sha}{'.zst' if zst else ''}"
        if name not in bundle.members or not re.fullmatch(r"[0-9a-f]{64}", sha):
            raise Corrupt(f"{bundle.path} lacks the file of object {sha[:12]}")
        out[name] = (sha, _int(record, "size"))
    return out


def _int(record: Mapping[str, Any], column: str) -> int:
    value = record.get(column)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InvalidInput(f"a bundle record has an invalid {column}: {value!r}")
    return value


def _redacted(spec: Table, values: Mapping[str, Any]) -> dict[str, Any]:
    """What the choke point would store for ``values`` (used to compare with rows)."""
    out: dict[str, Any] = {}
    for column, value in values.items():
        if column in spec.json:
            out[column] = redact_json_text(value)
        elif isinstance(value, str):
            out[column] = redact_text(value)[0]
        else:
            out[column] = value
    return out


class _Importer:
    """Merges one verified bundle inside one transaction; ids are remapped as it goes."""

    def __init__(
        self, store: Store, tx: Tx, bundle: Bundle, members: Mapping[str, tuple[str | None, int]]
    ) -> None:
        self.store, self.tx, self.bundle, self.members = store, tx, bundle, members
        source = bundle.manifest.get("source") or {}
        self.source_uid = str(source.get("project_uid") or "unknown")
        self.map: dict[str, dict[Any, Any]] = {t.name: {} for t in TABLES}
        self.created: Counter[str] = Counter()
        self.unchanged: Counter[str] = Counter()
        self.conflicts: list[dict[str, Any]] = []
        self.renumbered = 0
        self.files = 0
        self.columns = {
            t.name: {row[1] for row in tx.conn.execute(f"PRAGMA table_info({t.name})")}
            for t in TABLES
        }

    def result(self) -> ImportResult:
        changed = sum(self.created.values()) > 0
        return ImportResult(
            path=str(self.bundle.path),
            outcome="created" if changed else "unchanged",
            created={t.name: self.created[t.name] for t in TABLES},
            unchanged={t.name: self.unchanged[t.name] for t in TABLES},
            conflicts=self.conflicts,
            events_renumbered=self.renumbered,
            files_written=self.files,
        )

    def run(self) -> None:
        for spec in TABLES:
            records = self.bundle.records[spec.name]
            for record in records:
                unknown = set(record) - self.columns[spec.name]
                if unknown:
                    raise InvalidInput(f"bundle {spec.name} record has unknown {sorted(unknown)}")
            if spec.name in ("tasks", "sessions"):
                records = _parents_first(records)
            handler = getattr(self, f"_import_{spec.name}", None)
            for record in records:
                if handler is not None:
                    handler(spec, record)
                else:
                    self._import_row(spec, record)

    # -- values and references ------------------------------------------------------------

    def _ref(self, table: str, old: Any, where: str) -> Any:
        try:
            return self.map[table][old]
        except KeyError:
            raise InvalidInput(
                f"{where} refers to {table} {old}, which the bundle does not contain"
            ) from None

    def _values(self, spec: Table, record: Mapping[str, Any]) -> dict[str, Any]:
        """The record's columns as they would be stored here: references remapped, key
        and machine-local columns dropped."""
        where = f"bundle {spec.name} {_key(spec, record)}"
        values = {k: v for k, v in record.items() if k not in spec.key and k not in spec.local}
        for column, ref in spec.refs.items():
            if values.get(column) is None:
                continue
            if ref == "events":
                values[column] = self.map["events"].get(values[column])
            else:
                values[column] = self._ref(ref, values[column], where)
        return values

    def _stored(self, spec: Table, key_column: str, key: Any) -> dict[str, Any] | None:
        row = self.tx.one(f"SELECT * FROM {spec.name} WHERE {key_column} = ?", (key,))
        if row is None:
            return None
        out = dict(row)
        for column in spec.json:
            if isinstance(out.get(column), str):
                out[column] = json.loads(out[column])
        return out

    def _same(self, spec: Table, key: Any, values: Mapping[str, Any]) -> bool:
        stored = self._stored(spec, spec.key[0], key)
        if stored is None:
            return False
        compared = [c for c in values if c != "path"]  # a stream's path is derived
        clean = _redacted(spec, values)
        return all(stored.get(c) == clean[c] for c in compared)

    def _insert(self, spec: Table, values: Mapping[str, Any], key: Any | None) -> Any:
        row = {spec.key[0]: key} if key is not None else {}
        for column, value in values.items():
            row[column] = Json(value) if column in spec.json else value
        return self.tx.insert(spec.name, row)

    # -- rows with an integer id ----------------------------------------------------------

    def _import_row(self, spec: Table, record: Mapping[str, Any]) -> None:
        old = _int(record, "id")
        values = self._values(spec, record)
        prior = self._prior(spec, old)
        target = old if prior is None else prior
        if self._same(spec, target, values):
            self._keep(spec, old, target)
            return
        natural = self._natural(spec, values)
        if natural is not None:
            self._keep(spec, old, natural)
            if not self._same(spec, natural, values):
                self._conflict(
                    spec,
                    old,
                    natural,
                    f"the existing record with the same {_NATURAL_KEYS[spec.name]} was kept",
                )
            return
        free = self.tx.one(f"SELECT 1 FROM {spec.name} WHERE id = ?", (old,)) is None
        self._before_insert(spec, record, values)
        new = self._insert(spec, values, old if free else None)
        self.map[spec.name][old] = new
        self.created[spec.name] += 1
        if new != old:
            self._conflict(spec, old, new, "id taken by a different record")
            self.tx.insert(
                "idempotency_keys",
                {
                    "key": self._key_for(spec, old),
                    "entity": spec.name,
                    "entity_id": new,
                    "created_at": self.tx.now,
                },
            )

    def _keep(self, spec: Table, old: Any, existing: Any) -> None:
        self.map[spec.name][old] = existing
        self.unchanged[spec.name] += 1

    def _conflict(self, spec: Table, old: Any, new: Any, reason: str) -> None:
        self.conflicts.append({"table": spec.name, "old_id": old, "new_id": new, "reason": reason})

    def _key_for(self, spec: Table, old: Any) -> str:
        return f"bundle:{self.source_uid}:{spec.name}:{old}"

    def _prior(self, spec: Table, old: Any) -> int | None:
        """The id an earlier import of this record was given, if it was remapped."""
        row = self.tx.one(
            "SELECT entity_id FROM idempotency_keys WHERE key = ?", (self._key_for(spec, old),)
        )
        return None if row is None else int(row[0])

    def _natural(self, spec: Table, values: Mapping[str, Any]) -> int | None:
        sql = _NATURAL_SQL.get(spec.name)
        if sql is None:
            return None
        params = [values.get(c) for c in _NATURAL_KEYS[spec.name].split(", ")]
        if spec.name == "sessions" and params[1] is None:
            return None
        if spec.name == "worktrees" and values.get("status", "active") != "active":
            return None
        row = self.tx.one(sql, params)
        return None if row is None else int(row[0])

    def _before_insert(
        self, spec: Table, record: Mapping[str, Any], values: dict[str, Any]
    ) -> None:
        """A new stream row gets its file first (published before the row commits)."""
        if spec.name != "streams":
            return
        sealed = values.get("status") == "sealed"
        relative = stream_file(int(values["session_id"]), str(values["name"]), sealed=sealed)
        values["path"] = relative
        self._publish(f"streams/{record['id']}.{'zst' if sealed else 'log'}", relative)

    def _publish(self, member: str, relative: str) -> None:
        final = self.store.store_dir / relative
        make_dirs(final.parent, within=self.store.store_dir)
        with staged_file(final) as tmp:
            got = _entry(*_write_durably(tmp, self.bundle.chunks(member)))
            if got != self.bundle.manifest["members"][member]:
                raise Corrupt(f"{member} in {self.bundle.path} changed while it was imported")
            if final.suffix == ".zst" or relative.startswith("objects/"):
                os.chmod(tmp, 0o400)  # immutable files are read-only, like their originals
        self.files += 1

    # -- tables with their own rules ------------------------------------------------------

    def _import_task_deps(self, spec: Table, record: Mapping[str, Any]) -> None:
        values = self._values(spec, record)
        values.update(
            task_id=self._ref("tasks", record["task_id"], "bundle task_deps"),
            depends_on=self._ref("tasks", record["depends_on"], "bundle task_deps"),
        )
        if self.tx.one(
            "SELECT 1 FROM task_deps WHERE task_id = ? AND depends_on = ?",
            (values["task_id"], values["depends_on"]),
        ):
            self.unchanged[spec.name] += 1
            return
        self.tx.insert("task_deps", values)
        self.created[spec.name] += 1

    def _import_stream_index(self, spec: Table, record: Mapping[str, Any]) -> None:
        stream = self._ref("streams", record["stream_id"], "bundle stream_index")
        offset, line = _int(record, "offset"), _int(record, "line")
        if self.tx.one(
            "SELECT 1 FROM stream_index WHERE stream_id = ? AND offset = ?", (stream, offset)
        ):
            self.unchanged[spec.name] += 1
            return
        self.tx.insert("stream_index", {"stream_id": stream, "offset": offset, "line": line})
        self.created[spec.name] += 1

    def _import_objects(self, spec: Table, record: Mapping[str, Any]) -> None:
        sha = str(record["sha256"])
        self.map["objects"][sha] = sha
        stored = self._stored(spec, "sha256", sha)
        if (
            stored is not None
            and object_path(self.store.store_dir, sha, stored["encoding"]).exists()
        ):
            self.unchanged[spec.name] += 1
            return
        encoding = "zstd" if record.get("encoding") == "zstd" else "identity"
        final = object_path(self.store.store_dir, sha, encoding)
        member = f"objects/{final.name}"
        if _int(record, "stored_bytes") != self.bundle.members[member].size:
            raise Corrupt(f"object {sha[:12]} in {self.bundle.path} has the wrong stored size")
        self._publish(member, final.relative_to(self.store.store_dir).as_posix())
        if stored is None:
            self.tx.insert("objects", {**self._values(spec, record), "sha256": sha})
        else:  # the row's file was lost here; the bundle's copy replaces it
            changes = {"encoding": encoding, "stored_bytes": record["stored_bytes"]}
            self.tx.update("objects", sha, changes, key="sha256")  # type: ignore[arg-type]
        self.created[spec.name] += 1

    def _import_events(self, spec: Table, record: Mapping[str, Any]) -> None:
        old = _int(record, "seq")
        values = self._values(spec, record)
        entity = values.get("entity")
        if entity in LOCAL_ENTITIES:
            raise InvalidInput(f"bundle event {old} is about a {entity}, which bundles never carry")
        table = ENTITY_TABLE.get(str(entity))
        if table is not None and values.get("entity_id") is not None:
            values["entity_id"] = self._ref(table, values["entity_id"], f"bundle event {old}")
        existing = self._same_event(spec, values)
        if existing is not None:
            self._keep(spec, old, existing)
            return
        last = self.tx.one("SELECT seq FROM sqlite_sequence WHERE name = 'events'")
        keep = last is None or old > int(last[0])
        new = self._insert(spec, values, old if keep else None)
        self.map["events"][old] = new
        self.created[spec.name] += 1
        self.renumbered += new != old

    def _same_event(self, spec: Table, values: Mapping[str, Any]) -> int | None:
        clean = _redacted(spec, values)
        rows = self.tx.conn.execute(
            "SELECT seq, data, undoes FROM events WHERE kind = ? AND at = ? AND actor = ? "
            "AND entity = ? AND entity_id IS ?",
            (
                clean.get("kind"),
                clean.get("at"),
                clean.get("actor"),
                clean.get("entity"),
                clean.get("entity_id"),
            ),
        ).fetchall()
        for row in rows:
            if json.loads(row[1]) == clean.get("data", {}) and row[2] == clean.get("undoes"):
                return int(row[0])
        return None


_NATURAL_KEYS = {
    "agents": "name",
    "sessions": "source, external_id",
    "worktrees": "path",
    "streams": "session_id, name",
    "messages": "session_id, external_id",
    "captures": "dedupe_key",
}
_NATURAL_SQL = {
    "agents": "SELECT id FROM agents WHERE name = ?",
    "sessions": "SELECT id FROM sessions WHERE source = ? AND external_id = ?",
    "worktrees": "SELECT id FROM worktrees WHERE path = ? AND status = 'active'",
    "streams": "SELECT id FROM streams WHERE session_id = ? AND name = ?",
    "messages": "SELECT id FROM messages WHERE session_id = ? AND external_id = ?",
    "captures": "SELECT id FROM captures WHERE dedupe_key = ?",
}


def _parents_first(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tasks (or sessions) ordered so that a parent comes before its children."""
    by_id = {r["id"]: r for r in records}
    done: set[Any] = set()
    out: list[dict[str, Any]] = []

    def visit(record: dict[str, Any], depth: int = 0) -> None:
        if record["id"] in done:
            return
        if depth > len(records):
            raise InvalidInput("bundle records have a parent cycle")
        parent = by_id.get(record.get("parent_id"))
        if parent is not None:
            visit(parent, depth + 1)
        done.add(record["id"])
        out.append(record)

    for record in records:
        visit(record)
    return out


__all__ = [
    "BackupResult",
    "ExportResult",
    "ImportResult",
    "RestoreResult",
    "backup",
    "export_bundle",
    "import_bundle",
    "read_backup_manifest",
    "restore",
]
