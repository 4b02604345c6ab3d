"""Artifacts: content-addressed objects (diffs, logs, files, bundles, spilled payloads).

The protocol (principle 6 of docs/design.md; crash-tested by the failpoints named here):

1. The input is read in chunks through the redactor (a secret split across chunks is still
   found), hashed (sha256 of the redacted, uncompressed bytes) and written to a temp file —
   zstd-compressed alongside, kept only if it saves more than ~10%.
2. Inside the write transaction (under the writer lock): if the object already exists, the
   temp file is dropped (deduplication); otherwise it is published — fsync, rename to
   ``objects/sha256/<2 hex>/<sha256>[.zst]``, fsync the directory — and its row inserted.
3. The artifact row commits. Only now does anything refer to the file.

On a backend whose database is shared between machines (PostgreSQL), step 2 also stores
the published file's bytes in the database (``backend.blobs``, idempotent by content) in
the same transaction; a machine that lacks an object's file fetches it from there into
its own ``objects/`` (verified) before reading it (:meth:`ArtifactService.object_file`).

Deletion (``gc``) runs the other way: rows deleted and committed, then files unlinked,
all under the writer lock, so a concurrent add of the same content cannot publish a file
between gc's commit and its unlink. A crash anywhere leaves no row without its file; at
worst an orphan file, which ``doctor --fix`` removes.
"""

from __future__ import annotations

import codecs
import contextlib
import hashlib
import io
import mimetypes
import os
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from agentkeep._core import Json, Tx, check_identifier, limit_clause
from agentkeep.errors import AgentkeepError, InvalidInput, NotFound, StorageError
from agentkeep.failpoints import failpoint
from agentkeep.files import (
    READ_ONLY_FILE,
    compressor,
    make_dirs,
    open_file,
    publish,
    remove_quietly,
    temp_path,
    translate_os_error,
    write_chunks,
    zstd,
)
from agentkeep.models import Artifact, Record, Written
from agentkeep.services.base import Service

if TYPE_CHECKING:
    from agentkeep.backends.base import Backend, Blobs, Connection

KINDS = ("diff", "log", "file", "bundle", "payload")
OBJECTS_DIR = Path("objects") / "sha256"
CHUNK = 1 << 20
# Compressed bytes are kept only when they are at most this share of the original.
KEEP_COMPRESSED_RATIO = 0.9
SPILL_BYTES = 64 * 1024
PREVIEW_CHARS = 2000

_SELECT = (
    "SELECT a.*, o.encoding AS encoding, o.stored_bytes AS stored_bytes "
    "FROM artifacts a JOIN objects o ON o.sha256 = a.sha256"
)


def object_path(store_dir: Path, sha256: str, encoding: str) -> Path:
    suffix = ".zst" if encoding == "zstd" else ""
    return store_dir / OBJECTS_DIR / sha256[:2] / f"{sha256}{suffix}"


def blob_name(sha256: str, encoding: str = "zstd", *, stream: bool = False) -> str:
    """The shared name of an object's file (``objects/<sha256>[.zst]``) or of a sealed
    stream's (``streams/<sha256>.zst``) in :class:`~agentkeep.backends.base.Blobs`."""
    if stream:
        return f"streams/{sha256}.zst"
    return f"objects/{sha256}{'.zst' if encoding == 'zstd' else ''}"


def fetch_blob(backend: Backend, conn: Connection, store_dir: Path, name: str, final: Path) -> bool:
    """Fetch the shared bytes named ``name`` into the local file ``final`` (verified, then
    published like any file of the store); False when the backend shares no such bytes."""
    if not backend.blobs.shared:
        return False
    make_dirs(final.parent, within=store_dir)
    tmp = temp_path(final)
    if not backend.blobs.fetch(conn, name, tmp):
        return False
    publish(tmp, final)
    return True


@dataclass(frozen=True)
class Verification(Record):
    id: int
    sha256: str
    ok: bool
    problem: str | None


@dataclass(frozen=True)
class Spill:
    """What a large payload became: a preview to keep in the row, and where the rest is."""

    text: str
    artifact_id: int | None


@dataclass
class _Staged:
    """A redacted, hashed object waiting in temp files for its transaction."""

    sha256: str
    size: int
    raw_tmp: Path
    zst_tmp: Path | None
    zst_size: int
    redactions: dict[str, int]
    binary: bool

    @property
    def encoding(self) -> str:
        return "zstd" if self.zst_tmp is not None else "identity"

    @property
    def stored_bytes(self) -> int:
        return self.zst_size if self.zst_tmp is not None else self.size

    def discard(self) -> None:
        remove_quietly(self.raw_tmp)
        if self.zst_tmp is not None:
            remove_quietly(self.zst_tmp)


def _chunks_of(source: bytes | str | Path | BinaryIO) -> Iterator[bytes]:
    if isinstance(source, str):
        source = source.encode("utf-8")
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
        for start in range(0, len(data), CHUNK):
            yield data[start : start + CHUNK]
        return
    if isinstance(source, Path):
        try:
            handle: BinaryIO = source.open("rb")
        except OSError as exc:
            raise InvalidInput(f"cannot read {source}: {exc.strerror}") from exc
        with handle:
            yield from _read_all(handle)
        return
    yield from _read_all(source)


def _read_all(handle: BinaryIO) -> Iterator[bytes]:
    while chunk := handle.read(CHUNK):
        yield chunk


def redacted_chunks(chunks: Iterable[bytes], counts: dict[str, int]) -> Iterator[bytes]:
    """Bytes through the stream redactor. Invalid UTF-8 passes through unchanged
    (surrogateescape), so binary content round-trips while any text inside is redacted."""
    from agentkeep.boundary import stream_redactor

    decoder = codecs.getincrementaldecoder("utf-8")("surrogateescape")
    redactor = stream_redactor()
    try:
        for chunk in chunks:
            out = redactor.feed(decoder.decode(chunk))
            if out:
                yield out.encode("utf-8", "surrogateescape")
        out = redactor.feed(decoder.decode(b"", final=True)) + redactor.flush()
    except AgentkeepError:
        raise
    except Exception as exc:  # fail closed: nothing of this input is stored
        from agentkeep.errors import RedactionFailed

        raise RedactionFailed("the redactor failed, so the artifact was not stored") from exc
    if out:
        yield out.encode("utf-8", "surrogateescape")
    for rule, count in redactor.counts.items():
        counts[rule] = counts.get(rule, 0) + count


def stage_object(store_dir: Path, chunks: Iterable[bytes], *, compress: bool = True) -> _Staged:
    """Step 1 of the protocol: redact, hash and write ``chunks`` to temp files."""
    base = store_dir / OBJECTS_DIR
    make_dirs(base, within=store_dir)
    raw_tmp = temp_path(base / "object")
    zst_tmp = temp_path(base / "object.zst") if compress else None
    digest = hashlib.sha256()
    counts: dict[str, int] = {}
    size = zst_size = 0
    binary = False
    fds: list[int] = []
    try:
        raw_fd = open_file(raw_tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode=READ_ONLY_FILE)
        fds.append(raw_fd)
        zst_fd = -1
        squeezer = None
        if zst_tmp is not None:
            zst_fd = open_file(zst_tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode=READ_ONLY_FILE)
            fds.append(zst_fd)
            squeezer = compressor()
        for chunk in redacted_chunks(chunks, counts):
            if size < 8192 and b"\x00" in chunk[:8192]:
                binary = True
            digest.update(chunk)
            size += write_chunks(raw_fd, (chunk,))
            if squeezer is not None:
                zst_size += write_chunks(zst_fd, (squeezer.compress(chunk),))
        if squeezer is not None:
            zst_size += write_chunks(zst_fd, (squeezer.flush(),))
    except BaseException as exc:
        _close_all(fds)
        for tmp in (raw_tmp, zst_tmp):
            if tmp is not None:
                remove_quietly(tmp)
        if isinstance(exc, OSError):
            raise translate_os_error(exc, "an artifact") from exc
        raise
    _close_all(fds)
    if zst_tmp is not None and zst_size > KEEP_COMPRESSED_RATIO * size:
        remove_quietly(zst_tmp)
        zst_tmp = None
    return _Staged(digest.hexdigest(), size, raw_tmp, zst_tmp, zst_size, counts, binary)


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)
    fds.clear()


def commit_object(tx: Tx, store_dir: Path, staged: _Staged, blobs: Blobs) -> None:
    """Step 2, inside ``tx``: publish the staged file unless the object exists; insert its
    row; share its bytes (``blobs``: nothing on a local backend). Consumes the temp files
    either way."""
    try:
        row = tx.one("SELECT encoding FROM objects WHERE sha256 = ?", (staged.sha256,))
        if row is not None:
            stored = object_path(store_dir, staged.sha256, row[0])
            if stored.exists():
                blobs.put(tx.conn, blob_name(staged.sha256, row[0]), stored)
                return  # deduplicated
        final = object_path(store_dir, staged.sha256, staged.encoding)
        make_dirs(final.parent, within=store_dir)
        if staged.zst_tmp is not None:
            publish(staged.zst_tmp, final)
        else:
            publish(staged.raw_tmp, final)
        if row is None:
            tx.insert(
                "objects",
                {
                    "sha256": staged.sha256,
                    "size": staged.size,
                    "stored_bytes": staged.stored_bytes,
                    "encoding": staged.encoding,
                    "created_at": tx.now,
                },
            )
        elif row[0] != staged.encoding:  # the row's file was lost; this one replaces it
            tx.execute(
                "UPDATE objects SET encoding = ?, stored_bytes = ? WHERE sha256 = ?",
                (staged.encoding, staged.stored_bytes, staged.sha256),
            )
        blobs.put(tx.conn, blob_name(staged.sha256, staged.encoding), final)
    finally:
        staged.discard()


def read_object(store_dir: Path, sha256: str, encoding: str) -> Iterator[bytes]:
    """The uncompressed bytes of an object, in chunks."""
    path = object_path(store_dir, sha256, encoding)
    try:
        handle = os.fdopen(open_file(path, os.O_RDONLY, within=store_dir), "rb")
    except FileNotFoundError as exc:
        raise NotFound(
            f"the file of object {sha256[:12]} is missing ({path.name})",
            hint="run `agentkeep doctor` to check the store",
        ) from exc
    with handle:
        if encoding == "zstd":
            reader: BinaryIO = zstd().ZstdFile(handle, "rb")
            with reader:
                yield from _read_all(reader)
        else:
            yield from _read_all(handle)


def content_type_for(name: str | None, kind: str, *, binary: bool) -> str:
    if kind == "diff":
        return "text/x-diff"
    guessed = mimetypes.guess_type(name)[0] if name else None
    if guessed:
        return guessed
    return "application/octet-stream" if binary else "text/plain; charset=utf-8"


def git_diff(rev: str, cwd: Path) -> bytes:
    """The working tree's diff against ``rev``, untracked (not ignored) files included.

    Read-only: no index or object of the repository is touched (untracked files are
    diffed against /dev/null one by one instead of being added to a temporary index).
    """
    if rev.startswith("-"):
        raise InvalidInput(f"{rev!r} is not a revision")

    def git(*args: str, ok: tuple[int, ...] = (0,)) -> bytes:
        try:
            done = subprocess.run(
                ["git", *args], cwd=cwd, capture_output=True, check=False, timeout=300
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise StorageError(f"could not run git: {exc}") from exc
        if done.returncode not in ok:
            message = done.stderr.decode("utf-8", "replace").strip().splitlines()
            raise InvalidInput(
                f"git {args[0]} failed: {message[-1] if message else done.returncode}",
                hint="run it inside a git worktree with a valid revision",
            )
        return done.stdout

    git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    parts = [git("diff", "--binary", rev, "--")]
    untracked = git("ls-files", "--others", "--exclude-standard", "-z").split(b"\0")
    for name in sorted(path for path in untracked if path):
        parts.append(
            git("diff", "--binary", "--no-index", "--", "/dev/null", os.fsdecode(name), ok=(0, 1))
        )
    return b"".join(parts)


class ArtifactService(Service):
    def add_artifact(
        self,
        source: bytes | str | Path | BinaryIO,
        *,
        kind: str = "file",
        name: str | None = None,
        content_type: str | None = None,
        session_id: int | None = None,
        task_id: int | None = None,
        agent_id: int | None = None,
        data: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Written[Artifact]:
        """Store bytes (or a file, or a binary stream) as an artifact.

        The content is redacted, content-addressed and deduplicated; the same content with
        the same kind, name and attachments is reported ``already_exists``.
        """
        if kind not in KINDS:
            raise InvalidInput(
                f"unknown artifact kind {kind!r}", hint=f"use one of: {', '.join(KINDS)}"
            )
        if name is not None and not name.strip():
            raise InvalidInput("an artifact name must not be empty")
        if name is None and isinstance(source, Path):
            name = source.name
        check_identifier("the idempotency key", idempotency_key)
        self._require(session_id=session_id, task_id=task_id, agent_id=agent_id)
        self._store.check_writable()
        staged = stage_object(self.store_dir, _chunks_of(source))
        try:
            with self.transaction() as tx:
                existing = tx.existing_for_key(idempotency_key, "artifact")
                if existing is not None:
                    return Written(self.get_artifact(existing), "already_exists")
                same_as = tx.conn.dialect.same
                same = tx.one(
                    "SELECT id FROM artifacts WHERE sha256 = ? AND kind = ?"
                    f" AND {same_as('name', '?')} AND {same_as('session_id', '?')}"
                    f" AND {same_as('task_id', '?')} AND {same_as('agent_id', '?')}",
                    (staged.sha256, kind, name, session_id, task_id, agent_id),
                )
                commit_object(tx, self.store_dir, staged, self.backend.blobs)
                if same is not None:
                    return Written(self.get_artifact(same[0]), "already_exists")
                tx.add_redactions("content", staged.redactions)
                artifact_id = tx.insert(
                    "artifacts",
                    {
                        "sha256": staged.sha256,
                        "kind": kind,
                        "name": name,
                        "content_type": content_type
                        or content_type_for(name, kind, binary=staged.binary),
                        "size": staged.size,
                        "session_id": session_id,
                        "task_id": task_id,
                        "agent_id": agent_id,
                        "data": Json(data or {}),
                        "created_at": tx.now,
                    },
                )
                tx.remember_key(idempotency_key, "artifact", artifact_id)
                artifact = self.get_artifact(artifact_id)
                tx.emit("artifact", artifact_id, "artifact.added", artifact.to_dict())
                failpoint("artifact:before_commit")
            failpoint("artifact:after_commit")
            return Written(artifact, "created")
        finally:
            staged.discard()

    def add_git_diff(
        self,
        rev: str = "HEAD",
        *,
        cwd: str | Path | None = None,
        name: str | None = None,
        session_id: int | None = None,
        task_id: int | None = None,
        agent_id: int | None = None,
    ) -> Written[Artifact]:
        """Store the working tree's diff against ``rev`` (untracked files included)."""
        where = Path(cwd) if cwd is not None else Path.cwd()
        patch = git_diff(rev, where)
        return self.add_artifact(
            patch,
            kind="diff",
            name=name or f"diff-{rev}.patch",
            session_id=session_id,
            task_id=task_id,
            agent_id=agent_id,
            data={"rev": rev},
        )

    def spill_payload(
        self,
        text: str,
        *,
        limit: int = SPILL_BYTES,
        preview_chars: int = PREVIEW_CHARS,
        name: str | None = None,
        session_id: int | None = None,
        agent_id: int | None = None,
        data: dict[str, Any] | None = None,
    ) -> Spill:
        """Keep ``text`` inline if it is at most ``limit`` bytes; otherwise store it as a
        ``payload`` artifact and return a preview that names it."""
        encoded = text.encode("utf-8", "surrogateescape")
        if len(encoded) <= limit:
            return Spill(text, None)
        written = self.add_artifact(
            encoded,
            kind="payload",
            name=name,
            session_id=session_id,
            agent_id=agent_id,
            data=data,
        )
        artifact = written.item
        from agentkeep.boundary import redact_text

        preview = redact_text(text)[0][:preview_chars]  # cut after redacting
        note = f"\n… [{artifact.size:,} bytes in all; `agentkeep artifacts cat {artifact.id}`]"
        return Spill(preview + note, artifact.id)

    def get_artifact(self, artifact_id: int) -> Artifact:
        row = self._row(f"{_SELECT} WHERE a.id = ?", (artifact_id,))
        if row is None:
            row = self._record("artifact", artifact_id)  # raises NotFound with a hint
        return Artifact.from_row(row)  # type: ignore[no-any-return]

    def list_artifacts(
        self,
        *,
        kind: str | None = None,
        session_id: int | None = None,
        task_id: int | None = None,
        agent_id: int | None = None,
        limit: int | None = None,
        before_id: int | None = None,
    ) -> list[Artifact]:
        """Artifacts, newest first. ``before_id``: only those older than that one (keyset
        paging)."""
        if kind is not None and kind not in KINDS:
            raise InvalidInput(
                f"unknown artifact kind {kind!r}", hint=f"use one of: {', '.join(KINDS)}"
            )
        where, params = [], []
        for column, value in (
            ("a.kind", kind),
            ("a.session_id", session_id),
            ("a.task_id", task_id),
            ("a.agent_id", agent_id),
        ):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if before_id is not None:
            where.append("a.id < ?")
            params.append(before_id)
        sql = _SELECT + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY a.id DESC" + limit_clause(limit)
        return [Artifact.from_row(row) for row in self._rows(sql, params)]

    def object_file(self, sha256: str, encoding: str) -> Path:
        """The local file of an object. On a shared backend, a machine that does not have
        it fetches it first (verified); the file may still be missing (read_object says so)."""
        path = object_path(self.store_dir, sha256, encoding)
        if self.backend.blobs.shared and not path.exists():
            fetch_blob(self.backend, self._conn, self.store_dir, blob_name(sha256, encoding), path)
        return path

    # -- shared bytes (sealed streams' too), for the operations: gc, doctor, bundles ----

    @property
    def bytes_shared(self) -> bool:
        """Whether the backend shares sealed streams' and objects' bytes between machines
        (:class:`~agentkeep.backends.base.Blobs`); False on SQLite."""
        return self.backend.blobs.shared

    def share_bytes(self, tx: Tx, name: str, path: Path) -> bool:
        """Store the file at ``path`` as the shared bytes ``name`` (:func:`blob_name`),
        inside ``tx``; False when they were stored already (or the backend shares none)."""
        return self.backend.blobs.put(tx.conn, name, path)

    def unshare_bytes(self, tx: Tx, names: list[str]) -> int:
        """Delete the shared bytes ``names`` inside ``tx`` (no row may refer to them)."""
        return self.backend.blobs.delete(tx.conn, names)

    def shared_bytes(self, names: list[str]) -> set[str]:
        """Which of ``names`` the backend holds."""
        return self.backend.blobs.exists(self._conn, names)

    def artifact_chunks(self, artifact_id: int) -> Iterator[bytes]:
        """The artifact's bytes, decompressed, in chunks."""
        artifact = self.get_artifact(artifact_id)
        self.object_file(artifact.sha256, artifact.encoding)
        return read_object(self.store_dir, artifact.sha256, artifact.encoding)

    def object_bytes(self, sha256: str) -> bytes:
        """The (decompressed) bytes of a stored object, fetched from the shared storage
        when this machine lacks its file; NotFound when no object has that digest."""
        row = self._row("SELECT encoding FROM objects WHERE sha256 = ?", (sha256,))
        if row is None:
            raise NotFound(f"no stored object {sha256[:12]}")
        self.object_file(sha256, row[0])
        return b"".join(read_object(self.store_dir, sha256, row[0]))

    def read_artifact(self, artifact_id: int) -> bytes:
        return b"".join(self.artifact_chunks(artifact_id))

    def artifact_file(self, artifact_id: int) -> io.BufferedReader | BinaryIO:
        """A readable binary file of the artifact's (decompressed) bytes."""
        artifact = self.get_artifact(artifact_id)
        path = self.object_file(artifact.sha256, artifact.encoding)
        try:
            handle = os.fdopen(open_file(path, os.O_RDONLY, within=self.store_dir), "rb")
        except FileNotFoundError as exc:
            raise NotFound(f"the file of artifact {artifact_id} is missing") from exc
        if artifact.encoding == "zstd":
            return zstd().ZstdFile(handle, "rb")  # type: ignore[no-any-return]
        return handle

    def export_artifact(self, artifact_id: int, target: Path) -> int:
        """Write the artifact's bytes to ``target`` (atomically); returns the bytes written."""
        chunks = self.artifact_chunks(artifact_id)
        target = target.absolute()
        tmp = temp_path(target)
        try:
            fd = open_file(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
            try:
                written = write_chunks(fd, chunks)
            finally:
                os.close(fd)
            os.replace(tmp, target)
        except OSError as exc:
            remove_quietly(tmp)
            raise translate_os_error(exc, str(target)) from exc
        return written

    def verify_artifact(self, artifact_id: int) -> Verification:
        """Re-derive the sha256 of the artifact's object from its file."""
        artifact = self.get_artifact(artifact_id)
        self.object_file(artifact.sha256, artifact.encoding)
        return Verification(
            artifact.id,
            artifact.sha256,
            *verify_object(self.store_dir, artifact.sha256, artifact.encoding, artifact.size),
        )


def verify_object(
    store_dir: Path, sha256: str, encoding: str, size: int
) -> tuple[bool, str | None]:
    """(ok, problem): whether the object's file decompresses to ``size`` bytes hashing
    to ``sha256``."""
    digest = hashlib.sha256()
    total = 0
    try:
        for chunk in read_object(store_dir, sha256, encoding):
            digest.update(chunk)
            total += len(chunk)
    except NotFound:
        return False, "file missing"
    except Exception as exc:  # a damaged zstd frame, an unreadable file
        return False, f"unreadable: {exc}"
    if digest.hexdigest() != sha256:
        return False, "hash mismatch"
    if total != size:
        return False, f"size {total} != {size}"
    return True, None
