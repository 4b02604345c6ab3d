"""What backups and bundles are made of: their formats, the tables a bundle carries, and
the file helpers both write and read with (hashing, durable writes, stream prefixes)."""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from agentkeep.errors import Corrupt, InvalidInput, SchemaTooNew
from agentkeep.files import (
    fsync_path,
    open_file,
    translate_os_error,
    write_chunks,
)
from agentkeep.migrations import SCHEMA_VERSION
from agentkeep.services.streams import SealedReader, stream_file

BACKUP_FORMAT = "agentkeep-backup"
BUNDLE_FORMAT = "agentkeep-bundle"
# 1: records, streams and objects. 2 (issue 13): + documents and collection schemas
# (records/documents.jsonl, documents/<sha256>, schemas/<namespace>/<file>; see
# ops/bundle_docs.py). A version-1 bundle imports as it always did.
FORMAT_VERSION = 2
SNAPSHOT_DB = "state.snapshot.db"  # not "state.db": a backup is never a live database
MANIFEST = "manifest.json"
CHUNK = 1 << 20
MAX_MANIFEST_BYTES = 64 << 20
SIDE_FILES = ("config.toml", ".gitignore")

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
    r"|objects/(?P<sha>[0-9a-f]{64})(?:\.zst)?"
    r"|documents/(?P<doc>[0-9a-f]{64})"
    r"|schemas/[a-z0-9][a-z0-9._-]{0,63}/(?:[a-z0-9][a-z0-9._-]{0,63}\.json|namespace\.toml))$"
)


# -- small file helpers -------------------------------------------------------------------


def sha256_file(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def write_durably(dest: Path, chunks: Iterable[bytes]) -> tuple[str, int]:
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


def file_chunks(path: Path, limit: int | None = None) -> Iterator[bytes]:
    """The first ``limit`` bytes of a file (all of it when None); Corrupt if shorter."""
    with os.fdopen(open_file(path, os.O_RDONLY), "rb") as handle:
        yield from handle_chunks(handle, limit, path)


def handle_chunks(handle: BinaryIO, limit: int | None, path: Path) -> Iterator[bytes]:
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
        yield from file_chunks(path)
        return
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        sealed = store_dir / stream_file(ref.session_id, ref.name, sealed=True)
        yield from _sealed_prefix(sealed, ref.length)
        return
    with handle:
        yield from handle_chunks(handle, ref.length, path)


def fsync_dirs(directories: Iterable[Path]) -> None:
    for directory in sorted(set(directories), key=lambda p: len(p.parts), reverse=True):
        fsync_path(directory, directory=True)


def json_line(value: Any) -> bytes:
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return text.encode("utf-8") + b"\n"


def _refuse_constant(constant: str) -> None:
    raise ValueError(f"{constant} is not valid JSON")


def loads_json(data: bytes | str, what: str) -> Any:
    try:
        return json.loads(data, parse_constant=_refuse_constant)
    except (ValueError, RecursionError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{what} is not valid JSON ({exc})") from exc


def entry(sha256: str, size: int) -> dict[str, Any]:
    return {"sha256": sha256, "size": size}


def check_versions(manifest: Mapping[str, Any], what: str) -> None:
    version, schema = manifest.get("format_version"), manifest.get("schema_version")
    if not isinstance(version, int) or not isinstance(schema, int):
        raise InvalidInput(f"{what} has no valid format or schema version")
    if version > FORMAT_VERSION or schema > SCHEMA_VERSION:
        raise SchemaTooNew(
            f"{what} was written by a newer agentkeep (format {version}, schema {schema}); "
            f"this one reads format {FORMAT_VERSION}, schema {SCHEMA_VERSION}",
            hint="upgrade agentkeep (pip install -U agentkeep)",
        )


Key = Any  # an id, a sha256, or a tuple for composite keys


def row_key(table: Table, row: Mapping[str, Any]) -> Key:
    return row[table.key[0]] if len(table.key) == 1 else tuple(row[k] for k in table.key)
