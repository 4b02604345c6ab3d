"""``agentkeep db copy --to TARGET``: the whole store into another backend, verified.

TARGET is a PostgreSQL URL (``postgresql://…?schema=NAME``) or a project directory (its
``.agentkeep/`` gets a SQLite store). The destination must be empty — a new directory, a
schema that does not exist or holds a new store with no records — or hold an unfinished
copy of this same store, which the copy then finishes (resume). Anything else is refused.

How it copies:

* The source is read inside one read snapshot (``store.maintenance.snapshot()``): every
  table as of one moment, while writers keep writing.
* Tables go in dependency order (:data:`TABLES`: a table after every table it refers
  to), each in key order, ``COPY_BATCH`` rows per write transaction of the destination
  (keyset pagination: ``WHERE key > last ORDER BY key``). Each transaction also records
  the last key it copied in the destination's ``meta`` (``copy.<table>``), so a kill at
  any point loses at most the batch in flight, and a rerun starts after the last one
  committed: no row twice, none missing. Rows keep their ids; a reference to a later row
  of the same table (a task's parent created after it) is stored as NULL and set once the
  table is complete, in the transaction that marks it done.
* Derived data is not copied: row counts, the full-text index and its watermark are the
  destination's own, kept by its triggers as rows arrive and by a search catch-up at the
  end; generated columns (``captures.search_text``) are computed again. PostgreSQL's
  identities are moved past the ids copied (:mod:`agentkeep.backends.postgres.identities`).
* Values are copied as they are stored, not passed through the redactor again: they
  passed it when they were first written, and a copy is verified to be the same bytes
  (as ``db backup`` copies a file).
* Files: into a directory, stream files and artifact objects are copied (file before row,
  tmp → fsync → rename). Into PostgreSQL, sealed streams' and objects' bytes go into its
  shared storage (:func:`_share_files`); live streams stay files until they are sealed.
* Verification: per table, the row count and a hash of the rows, computed the same way on
  both sides (:func:`table_digest`), must match the source's snapshot; a mismatch raises
  :class:`~agentkeep.errors.Corrupt` naming the tables.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentkeep.errors import Conflict, Corrupt, InvalidInput, StorageError
from agentkeep.failpoints import failpoint
from agentkeep.migrations import SCHEMA_VERSION
from agentkeep.record import Record
from agentkeep.timeutil import utc_now

if TYPE_CHECKING:
    from agentkeep.backends.base import Row, Snapshot
    from agentkeep.store import Store

COPY_BATCH = 1000  # rows per write transaction of the destination (and in memory at once)


@dataclass(frozen=True)
class CopiedTable:
    name: str
    key: tuple[str, ...]
    self_ref: str | None = None  # a column referring to this table's own (single) key


# In dependency order: every table a row refers to comes first.
TABLES: tuple[CopiedTable, ...] = (
    CopiedTable("projects", ("id",)),
    CopiedTable("worktrees", ("id",)),
    CopiedTable("agents", ("id",)),
    CopiedTable("tasks", ("id",), "parent_id"),
    CopiedTable("task_deps", ("task_id", "depends_on")),
    CopiedTable("sessions", ("id",), "parent_id"),
    CopiedTable("streams", ("id",)),
    CopiedTable("stream_index", ("stream_id", "offset")),
    CopiedTable("stream_marks", ("stream_id", "offset")),
    CopiedTable("objects", ("sha256",)),
    CopiedTable("artifacts", ("id",)),
    CopiedTable("notes", ("id",)),
    CopiedTable("metrics", ("id",)),
    CopiedTable("messages", ("id",)),
    CopiedTable("captures", ("id",)),
    CopiedTable("events", ("seq",), "undoes"),
    CopiedTable("idempotency_keys", ("key",)),
    CopiedTable("redactions", ("id",)),
    CopiedTable("integrations", ("id",)),
    CopiedTable("import_cursors", ("id",)),
    CopiedTable("pending_titles", ("source", "leaf")),
    CopiedTable("doc_versions", ("id",)),
    CopiedTable("doc_locks", ("path",)),
)
# The store's other tables hold what the destination derives itself: its schema version
# and migrations (meta, where the copy's progress goes too), its row counts and its
# full-text index with its watermark (search_index; SQLite's *_fts tables).
# Documents' index (docs, their links, chunks, vectors and messages' deliveries) is derived
# from the files: the destination reads them itself on its first rescan (services/docs.py).
DERIVED = frozenset(
    {
        "meta",
        "row_counts",
        "search_index",
        "docs",
        "doc_links",
        "doc_chunks",
        "doc_vectors",
        "deliveries",
    }
)
# A PostgreSQL store's shared copies of its files (issue 12, "Bulk bytes for teams"): they
# travel as files (_share_files), not as rows.
SHARED_BYTES = frozenset({"blobs", "blob_chunks"})

PROGRESS = "copy."  # meta keys: copy.source, copy.<table>, copy.finished_at
DONE = "done"


@dataclass(frozen=True)
class TableResult(Record):
    table: str
    rows: int  # in the source's snapshot, and in the destination after the copy
    copied: int  # rows this run inserted (less than rows when it resumed)
    hash: str  # table_digest() of the rows: the same on both sides


@dataclass(frozen=True)
class CopyResult(Record):
    source: str
    destination: str
    backend: str  # the destination's ("sqlite", "postgres")
    outcome: str  # "copied", "resumed" (an unfinished copy was finished), "already_copied"
    rows: int
    copied: int
    files: int  # stream and object files copied by this run
    file_bytes: int
    files_left: int  # files a PostgreSQL destination does not hold: live streams, missing
    files_missing: int  # files the source's rows name but its directory lacks
    missing: list[str]  # the first MISSING_SHOWN of them, relative to the store directory
    verified: bool
    tables: list[dict[str, Any]]


MISSING_SHOWN = 100  # missing files named in the result (files_missing counts them all)

Progress = Callable[[str, int, int], None]  # (table, rows done, rows in the table)


def copy_store(
    store: Store,
    target: str,
    *,
    batch: int = COPY_BATCH,
    progress: Progress | None = None,
) -> CopyResult:
    """Copy every record of ``store`` into ``target`` (see the module docstring)."""
    if batch < 1:
        raise InvalidInput("the batch size must be at least 1")
    with store.maintenance.snapshot() as source:
        version = source.scalar("SELECT value FROM meta WHERE key = 'schema_version'")
        if version != SCHEMA_VERSION:  # checked before a destination is made
            raise Conflict(
                f"the store at {store.db_path} has schema {version}; this agentkeep copies "
                f"schema {SCHEMA_VERSION} only",
                hint="run `agentkeep db migrate` on it first (or use the agentkeep that wrote it)",
            )
        with _destination(store, target) as dest:
            return _copy(store, dest, source, batch, progress)


def _copy(
    store: Store, dest: Store, source: Snapshot, batch: int, progress: Progress | None
) -> CopyResult:
    """Claim ``dest``, copy what is not there yet, derive, verify."""
    identity = _identity(source)
    outcome = _claim(dest, identity, str(store.db_path))
    copier = _Copier(store, dest, source, batch, progress)
    if outcome != "already_copied":
        for table in TABLES:
            copier.copy_table(table)
        copier.finish()
    tables = _verify(source, dest, str(dest.db_path))
    if outcome != "already_copied":
        _set_progress(dest, {f"{PROGRESS}finished_at": utc_now()})
    return CopyResult(
        source=str(store.db_path),
        destination=str(dest.db_path),
        backend=dest.backend.name,
        outcome=outcome,
        rows=sum(t.rows for t in tables),
        copied=sum(copier.copied.values()),
        files=copier.files,
        file_bytes=copier.file_bytes,
        files_left=copier.files_left,
        files_missing=copier.missing_count,
        missing=copier.missing,
        verified=True,
        tables=[
            TableResult(t.table, t.rows, copier.copied.get(t.table, 0), t.hash).to_dict()
            for t in tables
        ],
    )


# -- the destination ---------------------------------------------------------------------


@contextlib.contextmanager
def _destination(store: Store, target: str) -> Iterator[Store]:
    """The destination opened as a store (created when new), closed afterwards."""
    from agentkeep.backends.postgres.url import check_storable, is_url
    from agentkeep.store import open as open_store

    if is_url(target):
        check_storable(target)  # the password comes from PGPASSWORD or ~/.pgpass
        # A store on PostgreSQL has a project directory for its spool and live files; the
        # copy writes neither, so a private empty one serves while it runs.
        scratch = Path(tempfile.mkdtemp(prefix="agentkeep-copy-"))
        try:
            dest = open_store(scratch, create=True, url=target)
            try:
                _refuse_same(store, dest)
                yield dest
            finally:
                dest.close()
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return
    dest = open_store(_directory_store(Path(target)), create=True, url="")
    try:
        _refuse_same(store, dest)
        _settle_directory(store, dest)
        yield dest
    finally:
        dest.close()


def _directory_store(target: Path) -> Path:
    """The ``.agentkeep`` directory of the project directory ``target``, made (empty) when
    there is none; Conflict when it holds files but no database (a project whose store is
    on a server, or the remains of one): a SQLite store is never made among them."""
    from agentkeep.files import PRIVATE_DIR
    from agentkeep.paths import DB_NAME, STORE_DIRNAME

    root = target.expanduser().absolute()
    store_dir = root if root.name == STORE_DIRNAME else root / STORE_DIRNAME
    if (store_dir / DB_NAME).exists():
        return store_dir
    if store_dir.is_dir() and any(store_dir.iterdir()):
        raise Conflict(
            f"{store_dir} holds files but no SQLite store (a project whose store is on a "
            "server, or what is left of one)",
            hint="copy into a new directory",
        )
    if not store_dir.parent.parent.is_dir() or store_dir.parent.is_file():
        raise InvalidInput(f"cannot make a project directory at {store_dir.parent}")
    try:
        store_dir.parent.mkdir(exist_ok=True)
        store_dir.mkdir(exist_ok=True, mode=PRIVATE_DIR)
    except OSError as exc:
        raise InvalidInput(f"cannot create {store_dir}: {exc.strerror}") from exc
    return store_dir


def _settle_directory(store: Store, dest: Store) -> None:
    """The new SQLite store's config (the source's settings, without a server URL) and
    .gitignore, as `agentkeep init` writes them; kept when they exist (a resumed copy)."""
    from agentkeep.config import default_config_toml, set_in_file
    from agentkeep.files import ensure_reserve, write_new_file
    from agentkeep.store import GITIGNORE

    config = store.store_dir / "config.toml"
    try:
        text = config.read_bytes() if config.is_file() else default_config_toml().encode()
        wrote = write_new_file(dest.store_dir / "config.toml", text)
        write_new_file(dest.store_dir / ".gitignore", GITIGNORE.encode("utf-8"))
    except OSError as exc:
        raise InvalidInput(f"cannot write to {dest.store_dir}: {exc.strerror}") from exc
    if wrote and store.config["store.url"]:
        set_in_file(dest.store_dir / "config.toml", "store.url", "")  # the copy is on SQLite
    ensure_reserve(dest.store_dir)  # as init: lets gc work on a full disk


def _refuse_same(store: Store, dest: Store) -> None:
    if str(dest.db_path) == str(store.db_path):
        raise InvalidInput(
            f"the destination {dest.db_path} is the store being copied",
            hint="copy to another directory, database or schema",
        )


def _identity(source: Snapshot) -> str:
    """What names the source store across runs: when its database was created and its
    project's uid (neither changes; a store moved to another path keeps both)."""
    created = source.one("SELECT value FROM meta WHERE key = 'created_at'")
    project = source.one("SELECT uid FROM projects ORDER BY id LIMIT 1")
    return json.dumps(
        {
            "created_at": None if created is None else created[0],
            "project": None if project is None else project[0],
        },
        sort_keys=True,
    )


def _claim(dest: Store, identity: str, label: str) -> str:
    """Whether the copy is new, resumes, or was finished; Conflict for other data."""
    with dest.transaction() as tx:
        row = tx.one("SELECT value FROM meta WHERE key = ?", (f"{PROGRESS}source",))
        if row is not None:
            recorded = json.loads(row[0])
            if recorded.get("identity") != identity:
                raise Conflict(
                    f"{dest.db_path} holds a copy of another store ({recorded.get('from')})",
                    hint="copy into an empty directory, database or schema",
                )
            finished = tx.one("SELECT 1 FROM meta WHERE key = ?", (f"{PROGRESS}finished_at",))
            return "already_copied" if finished is not None else "resumed"
        for table in TABLES:
            if tx.one(f"SELECT 1 FROM {table.name} LIMIT 1") is not None:
                raise Conflict(
                    f"{dest.db_path} is not empty: its table {table.name} holds records",
                    hint="copy into an empty directory, database or schema; a copy only "
                    "resumes into an unfinished copy of the same store",
                )
        _upsert(
            tx.conn,
            {f"{PROGRESS}source": json.dumps({"identity": identity, "from": label})},
        )
    return "copied"


def _upsert(conn: Any, values: dict[str, str]) -> None:
    conn.executemany(
        "INSERT INTO meta (key, value) VALUES (?, ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        list(values.items()),
    )


def _set_progress(dest: Store, values: dict[str, str]) -> None:
    with dest.transaction() as tx:
        _upsert(tx.conn, values)


# -- copying -----------------------------------------------------------------------------


def _quoted(name: str) -> str:
    return f'"{name}"'  # "offset" is reserved on PostgreSQL; double quotes work on both


class _Copier:
    def __init__(
        self,
        store: Store,
        dest: Store,
        source: Snapshot,
        batch: int,
        progress: Progress | None,
    ) -> None:
        self.store = store
        self.dest = dest
        self.source = source
        self.batch = batch
        self.progress = progress
        self.copied: dict[str, int] = {}
        self.files = 0
        self.file_bytes = 0
        self.files_left = 0
        self.missing: list[str] = []
        self.missing_count = 0
        self.into_directory = dest.backend.name == "sqlite"

    def copy_table(self, table: CopiedTable) -> None:
        columns = self.source.columns(table.name)
        with self.dest.maintenance.snapshot() as dest_read:
            theirs = dest_read.columns(table.name)
            state = dest_read.one("SELECT value FROM meta WHERE key = ?", (_key(table),))
        if sorted(theirs) != sorted(columns):
            raise Conflict(
                f"the table {table.name} has other columns in {self.dest.db_path}",
                hint="both stores must be at the same schema version",
            )
        after = None if state is None else json.loads(state[0])
        if after == DONE:
            return
        total = self.source.scalar(f"SELECT count(*) FROM {table.name}")
        keys = ", ".join(_quoted(k) for k in table.key)
        where = ""
        params: list[Any] = []
        if after is not None:
            where = f" WHERE ({keys}) > ({', '.join('?' for _ in table.key)})"
            if len(table.key) == 1:
                where = f" WHERE {keys} > ?"
            params = list(after)
        select = (
            f"SELECT {', '.join(_quoted(c) for c in columns)} FROM {table.name}"
            f"{where} ORDER BY {keys}"
        )
        insert = (
            f"INSERT INTO {table.name} ({', '.join(_quoted(c) for c in columns)}) "
            f"VALUES ({', '.join('?' for _ in columns)})"
        )
        key_at = [columns.index(k) for k in table.key]
        ref_at = None if table.self_ref is None else columns.index(table.self_ref)
        done = 0 if after is None else _done_before(self.source, table, keys, params)
        copied = 0
        for rows in self.source.batches(select, params, size=self.batch):
            values = [list(row) for row in rows]
            if ref_at is not None:
                own = key_at[0]
                for row in values:  # a reference to a row not copied yet: set at the end
                    if row[ref_at] is not None and row[ref_at] > row[own]:
                        row[ref_at] = None
            self._files(table.name, rows, columns)
            last = [values[-1][i] for i in key_at]
            with self.dest.transaction() as tx:
                try:
                    tx.conn.executemany(insert, values)
                except (InvalidInput, StorageError) as exc:  # a value the destination refuses
                    first = [values[0][i] for i in key_at]
                    raise type(exc)(
                        f"cannot copy {table.name} (the batch from key {first}) into "
                        f"{self.dest.db_path}: {exc.message}",
                        hint=exc.hint,
                    ) from exc
                failpoint("copy:before_commit")
                _upsert(tx.conn, {_key(table): json.dumps(last)})
            failpoint("copy:batch")
            copied += len(values)
            done += len(values)
            if self.progress is not None:
                self.progress(table.name, done, total)
        with self.dest.transaction() as tx:
            if ref_at is not None:
                self._forward_references(tx.conn, table)
            _upsert(tx.conn, {_key(table): json.dumps(DONE)})
        failpoint("copy:table")
        self.copied[table.name] = copied

    def _forward_references(self, conn: Any, table: CopiedTable) -> None:
        key, ref = _quoted(table.key[0]), _quoted(str(table.self_ref))
        for rows in self.source.batches(
            f"SELECT {key}, {ref} FROM {table.name} WHERE {ref} > {key} ORDER BY {key}",
            size=self.batch,
        ):
            conn.executemany(
                f"UPDATE {table.name} SET {ref} = ? WHERE {key} = ?",
                [(row[1], row[0]) for row in rows],
            )

    def finish(self) -> None:
        """What the destination derives: identities past the copied ids, its search index."""
        with self.dest.transaction() as tx:
            if self.dest.backend.name == "postgres":
                from agentkeep.backends.postgres.identities import move_identities_past_rows

                move_identities_past_rows(tx.conn)
        self.dest.catch_up_search()

    # -- files -------------------------------------------------------------------------

    def _files(self, table: str, rows: Sequence[Row], columns: Sequence[str]) -> None:
        """The files a batch of streams or objects rows names, before the rows commit."""
        if table not in ("streams", "objects"):
            return
        if not self.into_directory:
            named = [dict(zip(columns, row, strict=True)) for row in rows]  # any row type
            self.files_left += _share_files(self.store, self.dest, table, named)
            return
        for row in rows:
            if table == "streams":
                self._copy_stream(row)
            else:
                self._copy_object(row)

    def _copy_stream(self, row: Row) -> None:
        from agentkeep.ops.bundle_format import StreamRef, stream_chunks
        from agentkeep.services.streams import stream_file

        ref = StreamRef(
            int(row["id"]),
            int(row["session_id"]),
            str(row["name"]),
            str(row["status"]),
            str(row["path"]),
            int(row["length"]),
        )
        source_dir = self.store.store_dir
        sealed_twin = stream_file(ref.session_id, ref.name, sealed=True)
        if not (source_dir / ref.path).exists() and not (
            ref.status != "sealed" and (source_dir / sealed_twin).exists()
        ):
            self._missing(ref.path)
            return
        self._publish(ref.path, stream_chunks(source_dir, ref), sealed=False)

    def _copy_object(self, row: Row) -> None:
        from agentkeep.ops.bundle_format import file_chunks
        from agentkeep.services.artifacts import object_path

        sha, encoding = str(row["sha256"]), str(row["encoding"])
        path = object_path(self.store.store_dir, sha, encoding)
        relative = path.relative_to(self.store.store_dir).as_posix()
        if not path.exists():
            self._missing(relative)
            return
        self._publish(relative, file_chunks(path), sealed=True)

    def _missing(self, relative: str) -> None:
        """A file the source's row names but its directory does not hold (written on
        another machine of a team, or lost): the row is copied, the file reported."""
        self.missing_count += 1
        if len(self.missing) < MISSING_SHOWN:
            self.missing.append(relative)

    def _publish(self, relative: str, chunks: Iterator[bytes], *, sealed: bool) -> None:
        from agentkeep.files import make_dirs, staged_file
        from agentkeep.ops.bundle_format import write_durably

        store_dir = self.dest.store_dir
        final = store_dir / relative
        make_dirs(final.parent, within=store_dir)
        with staged_file(final) as tmp:
            _, size = write_durably(tmp, chunks)
            if sealed or final.suffix == ".zst":
                os.chmod(tmp, 0o400)  # immutable files are read-only, like their originals
        failpoint("copy:file")
        self.files += 1
        self.file_bytes += size


def _share_files(store: Store, dest: Store, table: str, rows: Sequence[dict[str, Any]]) -> int:
    """Put the bytes of a batch's sealed streams and artifact objects into the PostgreSQL
    destination's shared storage (its :class:`~agentkeep.backends.base.Blobs`), in a
    transaction before the batch's rows (file first, then row, as into a directory), so that
    every machine can read them. Stored by name, once: a resumed copy skips what is there.
    Live streams stay files until they are sealed (on the machine writing them). Returns
    how many files of ``rows`` the destination does not hold: live streams, and files the
    source directory lacks (counted again in ``files_missing`` by the verification)."""
    from agentkeep.services.artifacts import blob_name, object_path

    if not dest.artifacts.bytes_shared:
        return len(rows)
    wanted: list[tuple[str, Path]] = []
    left = 0
    for row in rows:
        if table == "objects":
            sha, encoding = row["sha256"], row["encoding"]
            wanted.append((blob_name(sha, encoding), object_path(store.store_dir, sha, encoding)))
        elif row["status"] == "sealed" and row["sha256"]:
            wanted.append((blob_name(row["sha256"], stream=True), store.store_dir / row["path"]))
        else:
            left += 1  # a live stream: its file is the truth until it is sealed
    have = dest.artifacts.shared_bytes([name for name, _ in wanted])
    todo = [(name, path) for name, path in wanted if name not in have]
    present = [(name, path) for name, path in todo if path.is_file()]
    left += len(todo) - len(present)
    if present:
        with dest.transaction() as tx:
            for name, path in present:
                dest.artifacts.share_bytes(tx, name, path)
                failpoint("copy:file")
    return left


def _key(table: CopiedTable) -> str:
    return f"{PROGRESS}{table.name}"


def _done_before(source: Snapshot, table: CopiedTable, keys: str, after: list[Any]) -> int:
    """Rows at or before the recorded key (copied by an earlier run), for progress."""
    if len(table.key) == 1:
        where = f"{keys} <= ?"
    else:
        where = f"({keys}) <= ({', '.join('?' for _ in table.key)})"
    return source.scalar(f"SELECT count(*) FROM {table.name} WHERE {where}", after)


# -- verification ------------------------------------------------------------------------


@dataclass(frozen=True)
class Digest:
    table: str
    rows: int
    hash: str


def _canonical(value: Any) -> Any:
    """A stored value as both backends give it back: int, float (repr), text, bytes (hex)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return {"float": repr(value)}
    if isinstance(value, bytes | bytearray | memoryview):
        return {"bytes": bytes(value).hex()}
    raise InvalidInput(f"cannot compare a stored {type(value).__name__}")


def table_digest(read: Snapshot, name: str, columns: Sequence[str], *, batch: int) -> Digest:
    """The row count and a hash of ``name``'s rows (``columns``, in that order).

    Each row is normalised (:func:`_canonical`) and hashed with SHA-256; the table's hash
    is the sum of its rows' hashes modulo 2**256. The sum does not depend on the order the
    rows come in: text keys sort differently on the two backends (SQLite compares bytes,
    PostgreSQL its collation), and the same rows must give the same hash on both.
    """
    total, rows = 0, 0
    select = f"SELECT {', '.join(_quoted(c) for c in columns)} FROM {name}"
    for chunk in read.batches(select, size=batch):
        for row in chunk:
            line = json.dumps(
                [_canonical(v) for v in row], ensure_ascii=False, separators=(",", ":")
            )
            digest = hashlib.sha256(line.encode("utf-8", "surrogatepass")).digest()
            total += int.from_bytes(digest, "big")
            rows += 1
    return Digest(name, rows, f"{total % (1 << 256):064x}")


def _verify(source: Snapshot, dest: Store, where: str) -> list[Digest]:
    """Every table's digest in the source snapshot and in the destination: equal, or
    Corrupt naming the tables that differ."""
    ours: list[Digest] = []
    theirs: list[Digest] = []
    with dest.maintenance.snapshot() as read:
        for table in TABLES:
            columns = source.columns(table.name)
            ours.append(table_digest(source, table.name, columns, batch=COPY_BATCH))
            theirs.append(table_digest(read, table.name, columns, batch=COPY_BATCH))
    wrong = [
        f"{a.table} ({a.rows} rows in the source, {b.rows} in the copy)"
        if a.rows != b.rows
        else f"{a.table} (same {a.rows} rows, different content)"
        for a, b in zip(ours, theirs, strict=True)
        if a != b
    ]
    if wrong:
        raise Corrupt(
            f"the copy at {where} does not match the source: {'; '.join(wrong)}",
            hint="the source changed between runs of an interrupted copy, or the copy was "
            "written to meanwhile; copy again into an empty destination",
        )
    return ours
