"""``agentkeep export``: a portable bundle of chosen records and their files.

A bundle is an uncompressed tar of ``records/<table>.jsonl`` (rows sorted by key, keys
sorted, JSON columns as JSON values, machine-local columns stripped),
``streams/<stream id>.log|.zst``, ``objects/<sha256>[.zst]`` (as stored; objects are
already zstd), documents and their schemas (format 2: :mod:`agentkeep.ops.bundle_docs`)
and, last, ``manifest.json`` (format and schema version, counts, sha256 and
size of every member); see :mod:`agentkeep.ops.bundle_format`. Exporting the same records
twice gives the same member bytes. Live streams are exported up to their recorded length
with their status as it is; the importing store has no recorder for them, so ``doctor``
treats such a session as interrupted.

Memory is bounded by one batch of rows, not by the store (issue 10, "Scale"): records are
read in one read snapshot (``store.maintenance.snapshot()``) and written ``EXPORT_BATCH``
rows at a time to a spool file beside the bundle (a tar member's size comes before its
bytes), then copied into the tar. ``--all`` streams every table in key order; a selection
(``--session``/``--task``) holds only the keys of the rows it chose.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from agentkeep._version import __version__
from agentkeep.boundary import may_contain_secret, redact_json_text
from agentkeep.errors import Corrupt, InvalidInput
from agentkeep.files import (
    maintenance_lock,
    open_file,
    staged_file,
)
from agentkeep.migrations import SCHEMA_VERSION
from agentkeep.models import Record
from agentkeep.ops.bundle_docs import DOCUMENTS, export_documents
from agentkeep.ops.bundle_format import (
    BUNDLE_FORMAT,
    BY_NAME,
    CHUNK,
    ENTITY_TABLE,
    FORMAT_VERSION,
    LOCAL_ENTITIES,
    MANIFEST,
    TABLES,
    Key,
    StreamRef,
    Table,
    entry,
    file_chunks,
    json_line,
    row_key,
    stream_chunks,
)
from agentkeep.timeutil import utc_now

if TYPE_CHECKING:
    from agentkeep.backends.base import Row, Snapshot
    from agentkeep.store import Store

EXPORT_BATCH = 1000  # rows read, redacted and written at a time: the bound on memory
REF_BATCH = 1000  # stream and object references read back at a time


@dataclass(frozen=True)
class ExportResult(Record):
    path: str
    counts: dict[str, int]
    members: int
    bytes: int


def export_bundle(
    store: Store,
    out_path: str | Path,
    *,
    session_ids: Sequence[int] = (),
    task_ids: Sequence[int] = (),
    all: bool = False,
    namespaces: Sequence[str] = (),
    progress: Callable[[int, int, str], None] | None = None,
) -> ExportResult:
    """Write a portable bundle of the chosen records and their files to ``out_path``.

    Rows are read in one read snapshot (a consistent view); files are copied after it,
    under the maintenance lock (shared), taken before that read, so gc cannot remove them
    meanwhile. The bundle is written to a temp name and published atomically; an existing
    file is never overwritten. Memory: one batch of rows (``EXPORT_BATCH``), plus, for a
    selection, the keys it chose. ``progress(done, total, phase)`` is called as the tables
    (phase ``records``) and then the stream and object files (phase ``files``) are written.
    Documents (``namespaces``, or every one with ``all``) and their schemas are read from
    their files last (:mod:`agentkeep.ops.bundle_docs`).
    """
    report = progress or _no_progress
    if not all and not session_ids and not task_ids and not namespaces:
        raise InvalidInput(
            "choose what to export", hint="pass --session ID, --task ID, --namespace NS or --all"
        )
    out = Path(out_path).expanduser().absolute()
    if out.exists():
        raise InvalidInput(f"{out} already exists", hint="choose a new file name")
    if not out.parent.is_dir():
        raise InvalidInput(f"{out.parent} is not a directory")
    project = store.project()
    selection = {
        "all": all,
        "sessions": sorted(session_ids),
        "tasks": sorted(task_ids),
        "namespaces": sorted(set(namespaces)),
    }
    with (
        maintenance_lock(store.store_dir, shared=True),
        staged_file(out) as tmp,
        _Spool(out.parent) as spool,
        os.fdopen(open_file(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL), "wb") as raw,
        tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar,
    ):
        writer = _BundleWriter(tar)
        with store.maintenance.snapshot() as read:
            source: _Rows = (
                _Everything(read) if all else _select(store, read, session_ids, task_ids)
            )
            counts = {}
            report(0, len(TABLES), "records")
            for done, spec in enumerate(TABLES, 1):
                counts[spec.name] = spool.add_table(writer, spec, source.rows(spec))
                report(done, len(TABLES), "records")
        # The snapshot is over: files are copied with no read transaction held.
        files, copied = counts.get("streams", 0) + counts.get("objects", 0), 0
        report(0, files, "files")
        for ref in spool.streams():
            sealed = ref.status == "sealed"
            if sealed:
                store.streams.sealed_file(ref.id)  # sealed on another machine: fetch it
            size = (store.store_dir / ref.path).stat().st_size if sealed else ref.length
            member = f"streams/{ref.id}.{'zst' if sealed else 'log'}"
            writer.add_chunks(member, size, stream_chunks(store.store_dir, ref))
            copied += 1
            report(copied, files, "files")
        for sha, encoding in spool.objects():
            path = store.artifacts.object_file(sha, encoding)  # fetched if not here
            writer.add_chunks(f"objects/{path.name}", path.stat().st_size, file_chunks(path))
            copied += 1
            report(copied, files, "files")
        documents = export_documents(store, namespaces=namespaces, all=all)
        for sha, content in sorted(documents.contents.items()):
            writer.add_bytes(f"documents/{sha}", content)
        for member, data in sorted(documents.schemas.items()):
            writer.add_bytes(member, data)
        if documents.entries:
            writer.add_bytes(DOCUMENTS, b"".join(e.line() for e in documents.entries))
        counts["documents"] = len(documents.entries)
        counts["schemas"] = len(documents.schemas)
        manifest = {
            "format": BUNDLE_FORMAT,
            "format_version": FORMAT_VERSION,
            "schema_version": SCHEMA_VERSION,
            "created_at": utc_now(),
            "agentkeep_version": __version__,
            "source": {"project_uid": project.uid, "project_name": project.name},
            "selection": selection,
            "counts": counts,
            "members": dict(sorted(writer.members.items())),
        }
        writer.add_bytes(MANIFEST, _export_line(manifest))
    return ExportResult(
        path=str(out), counts=counts, members=len(writer.members), bytes=out.stat().st_size
    )  # publish() fsynced the file


def _no_progress(done: int, total: int, phase: str) -> None:
    pass


# -- which rows ---------------------------------------------------------------------------


class _Rows:
    """The rows a bundle carries, table by table, in key order."""

    def rows(self, spec: Table) -> Iterator[Mapping[str, Any]]:
        raise NotImplementedError


class _Everything(_Rows):
    """``--all``: every row, streamed from the snapshot ``EXPORT_BATCH`` at a time."""

    def __init__(self, read: Snapshot) -> None:
        self.read = read

    def rows(self, spec: Table) -> Iterator[Mapping[str, Any]]:
        columns = ", ".join(self.read.columns(spec.name))
        where = _events_of_carried_rows() if spec.name == "events" else "1 = 1"
        sql = f"SELECT {columns} FROM {spec.name} WHERE {where} ORDER BY {', '.join(spec.key)}"
        for batch in self.read.batches(sql, size=EXPORT_BATCH):
            for row in batch:
                yield _as_dict(row)


def _events_of_carried_rows() -> str:
    """The events a full bundle carries: those about a row it carries (so an import can
    map them) and those about no row a bundle knows of; not those about this store's own
    project and integrations, nor about rows deleted since (gc)."""
    known = ", ".join(f"'{e}'" for e in sorted({*ENTITY_TABLE, *LOCAL_ENTITIES}))
    about = " OR ".join(
        f"(entity = '{entity}' AND EXISTS (SELECT 1 FROM {table} r WHERE r.id = events.entity_id))"
        for entity, table in sorted(ENTITY_TABLE.items())
    )
    return f"(entity NOT IN ({known}) OR {about})"


class _Selection(_Rows):
    """Rows chosen for export (``--session``/``--task``), by table and key."""

    def __init__(self, read: Snapshot) -> None:
        self.read = read
        self.chosen: dict[str, dict[Key, dict[str, Any]]] = {t.name: {} for t in TABLES}

    def rows(self, spec: Table) -> Iterator[Mapping[str, Any]]:
        chosen = self.chosen[spec.name]
        return (chosen[key] for key in sorted(chosen))

    def fetch(self, table: str, where: str, values: Iterable[Any] = ()) -> None:
        """Add the rows of ``table`` matching ``where`` (``?`` bound to each value in
        chunks; with no ``?`` the condition is used as is)."""
        spec = BY_NAME[table]
        order = ", ".join(spec.key)
        stored = ", ".join(self.read.columns(table))
        if "?" not in where:
            self._add(
                spec, self.read.rows(f"SELECT {stored} FROM {table} WHERE {where} ORDER BY {order}")
            )
            return
        items = sorted(set(values), key=str)
        for start in range(0, len(items), 500):
            part = items[start : start + 500]
            marks = ", ".join("?" for _ in part)
            sql = f"SELECT {stored} FROM {table} WHERE {where.replace('?', f'({marks})')}"
            self._add(spec, self.read.rows(sql, part * where.count("?")))

    def _add(self, spec: Table, rows: Iterable[Row]) -> None:
        for row in rows:
            values = _as_dict(row)
            self.chosen[spec.name][row_key(spec, values)] = values

    def ids(self, table: str) -> set[Key]:
        return set(self.chosen[table])

    def close_over_references(self) -> None:
        """Add every row a chosen row refers to (parents only, not their children)."""
        while True:
            wanted: dict[str, set[Any]] = {}
            for spec in TABLES:
                for row in self.chosen[spec.name].values():
                    for column, ref in spec.refs.items():
                        value = row.get(column)
                        if ref != "events" and value is not None and value not in self.chosen[ref]:
                            wanted.setdefault(ref, set()).add(value)
            if not wanted:
                return
            for ref, values in wanted.items():
                before = len(self.chosen[ref])
                self.fetch(ref, f"{BY_NAME[ref].key[0]} IN ?", values)
                if len(self.chosen[ref]) == before:
                    raise Corrupt(f"{ref} rows {sorted(values)[:5]} are referenced but missing")


def _as_dict(row: Row) -> dict[str, Any]:
    return dict(row)


def _select(
    store: Store, read: Snapshot, session_ids: Sequence[int], task_ids: Sequence[int]
) -> _Selection:
    for ident in session_ids:
        store.get_session(ident)  # NotFound with a hint
    for ident in task_ids:
        store.get_task(ident)
    sel = _Selection(read)
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
    for spec in TABLES:
        if spec.entity and sel.chosen[spec.name]:
            where = f"entity = '{spec.entity}' AND entity_id IN ?"
            sel.fetch("events", where, sel.ids(spec.name))
    return sel


# -- writing ------------------------------------------------------------------------------


def _export_row(spec: Table, row: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in row.items() if k not in spec.local}
    for column in spec.json:
        if isinstance(out.get(column), str):
            out[column] = json.loads(out[column])
    return out


def _export_line(value: Any) -> bytes:
    """A record as a bundle line, through the privacy boundary: rows were redacted when
    they were written, but perhaps by an older agentkeep with fewer rules, and an export
    leaves the machine."""
    line = json_line(value)
    if may_contain_secret(line.decode("utf-8", "replace")):
        line = json_line(redact_json_text(value))
    return line


class _Spool:
    """Unnamed private temp files beside the bundle: a table's lines wait in one until the
    table is complete (a tar member's size comes before its bytes), and the streams and
    objects to copy wait in two more until the snapshot is closed."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def __enter__(self) -> _Spool:
        self._streams = tempfile.TemporaryFile(dir=self.directory)
        self._objects = tempfile.TemporaryFile(dir=self.directory)
        return self

    def __exit__(self, *exc: object) -> None:
        self._streams.close()
        self._objects.close()

    def add_table(
        self, writer: _BundleWriter, spec: Table, rows: Iterator[Mapping[str, Any]]
    ) -> int:
        """Write ``records/<table>.jsonl`` into the bundle; returns how many rows."""
        count = 0
        with tempfile.TemporaryFile(dir=self.directory) as lines:
            for row in rows:
                lines.write(_export_line(_export_row(spec, row)))
                count += 1
                if spec.name == "streams":
                    ref = [row[c] for c in ("id", "session_id", "name", "status", "path", "length")]
                    self._streams.write(json_line(ref))
                elif spec.name == "objects":
                    self._objects.write(json_line([row["sha256"], row["encoding"]]))
            size = lines.tell()
            lines.seek(0)
            writer.add_chunks(f"records/{spec.name}.jsonl", size, _read_chunks(lines))
        return count

    def streams(self) -> Iterator[StreamRef]:
        for values in _read_lines(self._streams):
            yield StreamRef(*values)

    def objects(self) -> Iterator[tuple[str, str]]:
        for sha, encoding in _read_lines(self._objects):
            yield str(sha), str(encoding)


def _read_chunks(handle: BinaryIO) -> Iterator[bytes]:
    while chunk := handle.read(CHUNK):
        yield chunk


def _read_lines(handle: BinaryIO) -> Iterator[Any]:
    handle.seek(0)
    for line in handle:
        yield json.loads(line)


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
        self.members[name] = entry(hashlib.sha256(data).hexdigest(), len(data))

    def add_chunks(self, name: str, size: int, chunks: Iterator[bytes]) -> None:
        reader = _HashingReader(chunks)
        self.tar.addfile(_tar_info(name, size), io.BufferedReader(reader))
        self.members[name] = entry(reader.digest.hexdigest(), size)
