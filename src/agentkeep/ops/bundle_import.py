"""``agentkeep import-bundle``: merge a bundle into the store, idempotently.

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
an existing one is skipped. Documents and collection schemas (format 2) are written after
the records commit, through the documents' write path (:mod:`agentkeep.ops.bundle_docs`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tarfile
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentkeep._core import Json, Tx
from agentkeep.boundary import redact_json_text, redact_text
from agentkeep.errors import Corrupt, InvalidInput, NotFound
from agentkeep.files import (
    make_dirs,
    staged_file,
    zstd,
)
from agentkeep.models import Record
from agentkeep.ops.bundle_docs import DOCUMENTS, DocEntry, import_documents, parse_entries
from agentkeep.ops.bundle_format import (
    BUNDLE_FORMAT,
    CHUNK,
    ENTITY_TABLE,
    LOCAL_ENTITIES,
    MANIFEST,
    MAX_MANIFEST_BYTES,
    MEMBER_RE,
    TABLES,
    Table,
    check_versions,
    entry,
    loads_json,
    row_key,
    write_durably,
)
from agentkeep.services.artifacts import blob_name, object_path, redacted_chunks
from agentkeep.services.streams import stream_file

if TYPE_CHECKING:
    from agentkeep.store import Store


@dataclass(frozen=True)
class ImportResult(Record):
    path: str
    outcome: str  # created | unchanged
    created: dict[str, int]
    unchanged: dict[str, int]
    conflicts: list[dict[str, Any]]
    events_renumbered: int
    files_written: int


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
        self.manifest = loads_json(self.read(MANIFEST), f"the manifest of {self.path}")
        if not isinstance(self.manifest, dict) or self.manifest.get("format") != BUNDLE_FORMAT:
            raise InvalidInput(f"{self.path} is not an agentkeep bundle")
        check_versions(self.manifest, str(self.path))
        self._verify_members()
        self.records = {spec.name: self._records(spec) for spec in TABLES}
        self.documents: list[DocEntry] = []
        if DOCUMENTS in self.members:
            self.documents = parse_entries(self.read(DOCUMENTS), DOCUMENTS)
        for doc in self.documents:
            if doc.member not in self.members or self.members[doc.member].size != doc.size:
                raise Corrupt(f"{self.path} lacks the content of document {doc.ref}")
        self.schemas = [name for name in sorted(self.members) if name.startswith("schemas/")]

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
            if listed[name] != entry(digest.hexdigest(), size):
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
            record = loads_json(line, f"{name} line {number}")
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


def import_bundle(
    store: Store, path: str | Path, *, progress: Callable[[int, int, str], None] | None = None
) -> ImportResult:
    """Merge a bundle into the store, idempotently (see the module docstring).

    Everything is verified before anything is written. Then, holding the writer lock, one
    transaction publishes the needed files and inserts every row, with a
    ``bundle.imported`` event; it commits only if all of it succeeded.
    ``progress(done, total, phase)`` is called as the files are verified (phase
    ``verify``) and as each table is imported (phase ``records``).
    """
    bundle = Bundle(Path(path).expanduser().absolute())
    try:
        members = _file_members(bundle)
        if progress is not None:
            progress(0, len(members), "verify")
        for done, (name, (sha256, length)) in enumerate(members.items(), 1):
            _check_file_member(bundle, name, sha256, length)
            if progress is not None:
                progress(done, len(members), "verify")
        project_id = store.project().id
        with store.maintenance.snapshot() as read:
            columns = {t.name: set(read.columns(t.name)) for t in TABLES}
        with store.transaction() as tx:
            importer = _Importer(store, tx, bundle, members, columns)
            importer.run(progress)
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
        # Its messages are indexed for search now, as an import's are (schema 8).
        store.catch_up_search()
        if bundle.documents or bundle.schemas:  # format 2: through the documents' write path
            docs = import_documents(store, bundle.documents, bundle.schemas, bundle.read)
            created = {**result.created, **docs.created}
            result = replace(
                result,
                outcome="created" if sum(created.values()) else "unchanged",
                created=created,
                unchanged={**result.unchanged, **docs.unchanged},
                conflicts=[*result.conflicts, *docs.conflicts],
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
        self,
        store: Store,
        tx: Tx,
        bundle: Bundle,
        members: Mapping[str, tuple[str | None, int]],
        columns: Mapping[str, set[str]],
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
        self.columns = columns

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

    def run(self, progress: Callable[[int, int, str], None] | None = None) -> None:
        for done, spec in enumerate(TABLES):
            if progress is not None:
                progress(done, len(TABLES), "records")
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
        if progress is not None:
            progress(len(TABLES), len(TABLES), "records")

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
        where = f"bundle {spec.name} {row_key(spec, record)}"
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
        new = self.tx.insert(spec.name, row)
        if key is not None and self.tx.conn.dialect.name == "postgres":
            # An explicit id leaves PostgreSQL's identity behind (SQLite's moves on its
            # own): the next insert without one must not be handed this id.
            from agentkeep.backends.postgres.identities import move_identity_past

            move_identity_past(self.tx.conn, spec.name, spec.key[0], int(key))
        return new

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
        if sealed and values.get("sha256"):  # shared with the other machines (PostgreSQL)
            final = self.store.store_dir / relative
            self.store.artifacts.share_bytes(
                self.tx, blob_name(str(values["sha256"]), stream=True), final
            )

    def _publish(self, member: str, relative: str) -> None:
        final = self.store.store_dir / relative
        make_dirs(final.parent, within=self.store.store_dir)
        with staged_file(final) as tmp:
            got = entry(*write_durably(tmp, self.bundle.chunks(member)))
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
        self.store.artifacts.share_bytes(self.tx, blob_name(sha, encoding), final)
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
        # Events are never deleted, so the newest seq is the highest ever given.
        last = self.tx.one("SELECT max(seq) FROM events")
        keep = last is None or last[0] is None or old > int(last[0])
        new = self._insert(spec, values, old if keep else None)
        self.map["events"][old] = new
        self.created[spec.name] += 1
        self.renumbered += new != old

    def _same_event(self, spec: Table, values: Mapping[str, Any]) -> int | None:
        clean = _redacted(spec, values)
        rows = self.tx.conn.execute(
            "SELECT seq, data, undoes FROM events WHERE kind = ? AND at = ? AND actor = ? "
            f"AND entity = ? AND {self.tx.conn.dialect.same('entity_id', '?')}",
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
