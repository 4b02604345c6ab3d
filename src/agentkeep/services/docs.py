"""Documents: files are the truth, the database indexes them (principle 1; issue 13).

**Where documents are.** Roots, each a directory of one-file-per-document:

- ``.agentkeep/docs/<namespace>/<name>.md|.json`` — documents written through agentkeep
  (the first directory is the namespace); meant for git unless the namespace is local;
- the project directories named in the ``docs.roots`` setting (``"docs"``, or
  ``"input/campaigns:campaigns"`` to name the namespace; by default a root's namespace is
  its last directory's name) — the user's own files, read one way into the index and never
  rewritten by indexing;
- spec files found by their layout (:mod:`agentkeep.services.specs`, namespace ``specs``).

A document's **ref** is ``namespace/name``: its path inside its namespace's directory,
without the extension. Its **etag** is the sha256 of the file's bytes.

**Writes through agentkeep** (:meth:`DocService.write_doc`, :meth:`remove_doc`,
:meth:`restore_doc`), all inside one write transaction (the writer lock serialises every
agentkeep writer of the store, so a check and the rename after it cannot interleave with
another agentkeep writer's):

1. fields and body pass the privacy boundary (fail closed): no secret reaches the file;
2. the namespace's schema validates the fields; its quotas (count, bytes) are checked;
3. an advisory lock held by another live process (:mod:`agentkeep.documents.leases`) refuses
   the write, and so does an ``expect`` etag that is not the file's current one
   (:class:`~agentkeep.errors.StaleWrite`, saying what changed); ``force`` skips both;
4. content the file holds that no version records (changed by another program) is stored as
   an ``outside`` version first, then the new content as a version (content-addressed
   objects, as artifacts): every content agentkeep replaces stays recoverable;
5. the new file is written temp → fsync → rename → fsync dir (``files.staged_file``);
6. the index rows and an event (``doc.created|edited|deleted|restored``) are written; commit.

A crash before step 5's rename changes nothing; after it and before the commit, the file
holds the new content and the index the old one, which the next rescan corrects (the file
wins). Nothing half-written is ever visible: readers see the old file or the new one.

**The index** (tables ``docs``, ``doc_links``, ``doc_chunks`` and their full-text index) is
derived: :meth:`DocService.refresh` re-reads the files whose size or mtime changed (and,
when they did, compares the content's hash) or that were modified less than 2 s before
they were last read (``RACY_NS``: a rewrite in the same timestamp tick keeps both), adds
new ones and drops vanished ones;
``refresh(rebuild=True)`` empties it and reads every file again. Index text from a user's
own files is redacted like everything else stored; the files themselves are never touched.
Reads (``list_docs``, ``get_doc``, search, context) call :meth:`refresh` first when the
store is writable, at most once a second per process (``docs.rescan_ms``).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from stat import S_ISLNK, S_ISREG
from typing import Any

from agentkeep._core import Json, Tx
from agentkeep.boundary import redact_json_text, redact_text
from agentkeep.config import parse_doc_roots
from agentkeep.documents import format as docformat
from agentkeep.documents.leases import Holder
from agentkeep.documents.schemas import Namespace, check_name, load_namespaces
from agentkeep.errors import Conflict, InvalidInput, NotFound, StaleWrite, StorageFull
from agentkeep.failpoints import failpoint
from agentkeep.files import (
    fsync_path,
    make_dirs,
    open_file,
    staged_file,
    translate_os_error,
    write_chunks,
)
from agentkeep.models import Doc, DocLock, DocVersion, Written
from agentkeep.record import Record
from agentkeep.services.base import Service
from agentkeep.timeutil import iso_utc, stamp

DOCS_DIR = "docs"  # inside .agentkeep/
ORIGINS = ("store", "project", "spec")
CHANGES = ("created", "edited", "outside", "deleted", "restored")
DEFAULT_LEASE_S = 300
INDEX_BATCH = 200  # files indexed per write transaction
MAX_DOC_BYTES = 8 * 1024 * 1024  # a larger file is indexed by name only
# A file modified less than this before it was read is "racily clean": a program that
# rewrites it within the same timestamp tick keeps its size and mtime, so the index records
# its mtime negated and the next rescan compares its content (_stat_mark).
RACY_NS = 2_000_000_000
MAX_INDEXED_FIELDS = 256 * 1024  # larger front matter: only the type is indexed
MAX_INDEXED_TAGS = 100
MAX_INDEXED_CHARS = 1000  # a title, type, tag, heading, link target or problem is cut there
_NAME_PART = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._ -]*$")
_NAMESPACE_DIR = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_LAST_REFRESH: dict[str, float] = {}  # store dir → monotonic time of this process's last


@dataclass(frozen=True)
class Root:
    """A directory of documents: ``namespace`` None means "the first directory below is
    the namespace" (the store's own ``docs/``)."""

    path: Path  # absolute
    namespace: str | None
    origin: str
    convention: str | None = None


@dataclass(frozen=True)
class Source:
    """One document file found under a root."""

    root: Root
    path: Path  # absolute
    rel: str  # relative to the project root, '/'-separated
    namespace: str
    name: str
    convention: str | None = None


@dataclass
class IndexReport(Record):
    """What a rescan did: files ``added``, ``updated`` (content changed), ``removed``
    (vanished), ``unchanged`` (stat or content the same), and the ``problems`` found."""

    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    files: int = 0
    rebuilt: bool = False
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class DocContent:
    """A document as read from its file (or a stored version): ``text`` is the whole file."""

    doc: Doc | None
    text: str
    fields: dict[str, Any]
    body: str
    etag: str
    version: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "doc": self.doc.to_dict() if self.doc else None,
            "fields": self.fields,
            "body": self.body,
            "text": self.text,
            "etag": self.etag,
            "version": self.version,
        }


def etag_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def split_ref(ref: str) -> tuple[str, str]:
    """``namespace/name`` → its parts, validated (InvalidInput otherwise)."""
    namespace, slash, name = ref.strip().strip("/").partition("/")
    if not slash or not name:
        raise InvalidInput(
            f"{ref!r} is not a document reference",
            hint="name a document as NAMESPACE/NAME, e.g. decisions/0001-storage",
        )
    check_name("namespace", namespace)
    for part in name.split("/"):
        if (
            part in ("", ".", "..")
            or not _NAME_PART.match(part)
            or part.endswith(" ")
            or ".tmp-" in part  # what a temp file's name holds: the index skips those
        ):
            raise InvalidInput(
                f"{ref!r} is not a valid document name",
                hint="use letters, digits, '.', '_', '-' and spaces, with '/' between "
                "directories (no '..')",
            )
    return namespace, name


class DocService(Service):
    # -- where documents are -------------------------------------------------------------

    @property
    def docs_dir(self) -> Path:
        return self.store_dir / DOCS_DIR

    def namespaces(self) -> dict[str, Namespace]:
        """The namespaces the project declares (``.agentkeep/schemas/<namespace>/``)."""
        return load_namespaces(self.store_dir)

    _namespace_cache: dict[str, Namespace] | None = None  # during a rescan: read once

    def namespace(self, name: str) -> Namespace:
        known = self._namespace_cache if self._namespace_cache is not None else self.namespaces()
        return known.get(name) or Namespace(name)

    def roots(self) -> list[Root]:
        """Every root documents are read from, the store's own first."""
        roots = [Root(self.docs_dir, None, "store")]
        roots.append(Root(self.store_dir / "mail" / "messages", "mail", "store"))  # messages.py
        for path, namespace in parse_doc_roots(self.config["docs.roots"]):
            absolute = self.root / path
            roots.append(Root(absolute, namespace or absolute.name, "project"))
        return roots

    def sources(self) -> Iterator[Source]:
        """Every document file under the roots (a path is the first root's that holds it),
        then the spec files found by their layouts."""
        seen: set[str] = set()
        for root in self.roots():
            for source in self._walk(root):
                if source.rel not in seen:
                    seen.add(source.rel)
                    yield source
        for source in self._spec_sources():
            if source.rel not in seen:
                seen.add(source.rel)
                yield source

    def _spec_sources(self) -> Iterable[Source]:
        """Spec files found by their layouts (services/specs.py)."""
        from agentkeep.services.specs import spec_sources

        return spec_sources(self)

    def source_for(self, root: Root, path: Path, *, convention: str | None = None) -> Source | None:
        """The :class:`Source` of a file under ``root``, or None when it is not a document
        there (a hidden or temp file, an unknown suffix, no namespace)."""
        try:
            inside = path.relative_to(root.path)
        except ValueError:
            return None
        parts = inside.parts
        if not parts or any(part.startswith(".") for part in parts) or ".tmp-" in path.name:
            return None
        if path.suffix.lower() not in docformat.SUFFIXES:
            return None
        if root.namespace is None:
            if len(parts) < 2 or not _NAMESPACE_DIR.match(parts[0]):
                return None
            namespace, name_parts = parts[0], parts[1:]
        else:
            namespace, name_parts = root.namespace, parts
        name = "/".join((*name_parts[:-1], Path(name_parts[-1]).stem))
        rel = path.relative_to(self.root).as_posix()
        return Source(root, path, rel, namespace, name, convention or root.convention)

    def _walk(self, root: Root) -> Iterator[Source]:
        """:meth:`source_for` of every file under ``root``, computed on strings: a rescan
        of an unchanged tree is this walk and a stat per file, so it is kept cheap (Path
        arithmetic per file cost more than the stat)."""
        if not root.path.is_dir():
            return
        top = str(root.path)
        try:
            base = root.path.relative_to(self.root).as_posix()
        except ValueError:  # not inside the project: the general (slower) way
            for directory, dirnames, filenames in os.walk(top):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                for filename in sorted(filenames):
                    found = self.source_for(root, Path(directory) / filename)
                    if found is not None:
                        yield found
            return
        for directory, dirnames, filenames in os.walk(top):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            inside = directory[len(top) + 1 :].replace(os.sep, "/")
            folders = inside.split("/") if inside else []
            if root.namespace is None:
                if not folders or not _NAMESPACE_DIR.match(folders[0]):
                    continue
                namespace, prefix = folders[0], "/".join(folders[1:])
            else:
                namespace, prefix = root.namespace, inside
            for filename in sorted(filenames):
                stem, dot, extension = filename.rpartition(".")
                if (
                    not dot
                    or not stem
                    or filename.startswith(".")
                    or ".tmp-" in filename
                    or f".{extension.lower()}" not in docformat.SUFFIXES
                ):
                    continue
                rel_inside = f"{inside}/{filename}" if inside else filename
                yield Source(
                    root,
                    Path(directory, filename),
                    f"{base}/{rel_inside}" if base != "." else rel_inside,
                    namespace,
                    f"{prefix}/{stem}" if prefix else stem,
                    root.convention,
                )

    def locate(self, ref: str, *, fmt: str | None = None) -> Source:
        """The file of document ``ref`` (``namespace/name`` or a path relative to the
        project), whether it exists or not. A new ``namespace/name`` goes under the
        store's ``docs/`` (or the project root that holds that namespace)."""
        row = self._find_row(ref)
        if row is not None:
            root = self._root_of(row["path"]) or Root(self.docs_dir, None, "store")
            found = self.source_for(root, self.root / row["path"], convention=row["convention"])
            if found is not None:
                return found
        if _looks_like_path(ref):
            path = (self.root / ref).resolve() if not os.path.isabs(ref) else Path(ref)
            for root in self.roots():
                found = self.source_for(root, path)
                if found is not None:
                    return found
            raise InvalidInput(
                f"{ref} is not under a document root",
                hint="documents live in .agentkeep/docs/<namespace>/ or a directory of the "
                "docs.roots setting",
            )
        namespace, name = split_ref(ref)
        suffix = ".json" if fmt == "json" else ".md"
        for root in self.roots()[1:]:
            if root.namespace == namespace:
                return Source(
                    root,
                    root.path / f"{name}{suffix}",
                    (root.path / f"{name}{suffix}").relative_to(self.root).as_posix(),
                    namespace,
                    name,
                )
        path = self.docs_dir / namespace / f"{name}{suffix}"
        root = Root(self.docs_dir, None, "store")
        return Source(root, path, path.relative_to(self.root).as_posix(), namespace, name)

    def _root_of(self, rel: str) -> Root | None:
        path = self.root / rel
        for root in self.roots():
            if root.path in path.parents:
                return root
        for source in self._spec_sources():
            if source.rel == rel:
                return source.root
        return None

    # -- reading ---------------------------------------------------------------------------

    def _find_row(self, ref: str) -> Any:
        ref = ref.strip()
        if _looks_like_path(ref):
            rel = _relative(self.root, ref)
            return self._row("SELECT * FROM docs WHERE path = ?", (rel,))
        namespace, _, name = ref.strip("/").partition("/")
        return self._row("SELECT * FROM docs WHERE namespace = ? AND name = ?", (namespace, name))

    def get_doc(self, ref: str, *, refresh: bool = True) -> Doc:
        """The indexed document ``ref`` (``namespace/name`` or its path); NotFound."""
        if refresh:
            self.refresh_if_due()
        row = self._find_row(ref)
        if row is None:
            raise NotFound(
                f"document {ref} does not exist", hint="`agentkeep doc ls` lists the documents"
            )
        return doc_from_row(row)

    def read_doc(self, ref: str, *, version: int | None = None) -> DocContent:
        """A document's content: its file now, or the stored ``version`` (an id from
        :meth:`history`)."""
        if version is not None:
            return self._read_version(ref, version)
        doc = self.get_doc(ref)
        try:
            data = (self.root / doc.path).read_bytes()
        except FileNotFoundError as exc:
            raise NotFound(f"document {ref}'s file {doc.path} is gone") from exc
        text = data.decode("utf-8", "replace")
        parsed = docformat.parse(text, Path(doc.path).suffix)
        return DocContent(doc, text, parsed.fields, parsed.body, etag_of(data))

    def _read_version(self, ref: str, version: int) -> DocContent:
        row = self._row("SELECT * FROM doc_versions WHERE id = ?", (version,))
        path = self._path_of(ref)
        if row is None or row["path"] != path:
            raise NotFound(
                f"document {ref} has no version {version}",
                hint=f"`agentkeep doc history {ref}` lists its versions",
            )
        if row["sha256"] is None:
            raise NotFound(f"version {version} of {ref} is its deletion: it has no content")
        data = self._store.artifacts.object_bytes(row["sha256"])
        text = data.decode("utf-8", "replace")
        parsed = docformat.parse(text, Path(path).suffix)
        doc_row = self._row("SELECT * FROM docs WHERE path = ?", (path,))
        return DocContent(
            doc_from_row(doc_row) if doc_row else None,
            text,
            parsed.fields,
            parsed.body,
            row["etag"] or etag_of(data),
            version,
        )

    def _path_of(self, ref: str) -> str:
        """The path (relative to the project) ``ref`` names, indexed or not (a deleted
        document's path is found in its history)."""
        row = self._find_row(ref)
        if row is not None:
            return str(row["path"])
        if _looks_like_path(ref):
            return _relative(self.root, ref)
        new = self.locate(ref).rel  # where a new document of that ref would go
        stem = new.rsplit(".", 1)[0]
        suffixes = docformat.MARKDOWN_SUFFIXES + docformat.JSON_SUFFIXES
        marks = ", ".join("?" for _ in suffixes)
        row = self._row(
            f"SELECT path FROM doc_versions WHERE path IN ({marks}) ORDER BY id DESC LIMIT 1",
            [stem + suffix for suffix in suffixes],
        )
        return str(row[0]) if row is not None else new

    def list_docs(
        self,
        *,
        namespace: str | None = None,
        type: str | None = None,
        tag: str | None = None,
        where: Mapping[str, str] | None = None,
        origin: str | None = None,
        problems: bool | None = None,
        limit: int | None = None,
        refresh: bool = True,
    ) -> list[Doc]:
        """Indexed documents by ref. ``where`` keeps those whose front matter field equals
        the text given (a list field: holds it)."""
        if refresh:
            self.refresh_if_due()
        clauses: list[str] = []
        params: list[Any] = []
        for column, value in (("namespace", namespace), ("type", type), ("origin", origin)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        if problems is not None:
            clauses.append("problems <> '[]'" if problems else "problems = '[]'")
        sql = "SELECT * FROM docs"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY namespace, name"
        docs = [doc_from_row(row) for row in self._rows(sql, params)]
        if tag is not None:
            docs = [doc for doc in docs if tag in doc.tags]
        for key, expected in (where or {}).items():
            docs = [doc for doc in docs if _field_matches(doc.fields.get(key), expected)]
        return docs[:limit] if limit is not None else docs

    def links(self, ref: str) -> list[dict[str, Any]]:
        """The document's links: ``relation``, ``target`` as written, and ``ref``/``path``
        of the document it resolves to (None when none does)."""
        doc = self.get_doc(ref)
        rows = self._rows(
            "SELECT relation, target FROM doc_links WHERE doc_id = ? ORDER BY relation, target",
            (doc.id,),
        )
        return [
            {"relation": row[0], "target": row[1], **self._resolved(row[1], doc)} for row in rows
        ]

    def backlinks(self, ref: str) -> list[dict[str, Any]]:
        """The documents that link to ``ref`` (by its ref, its name or its path)."""
        doc = self.get_doc(ref)
        names = {doc.ref, doc.path, doc.name, doc.title or doc.ref, Path(doc.path).stem}
        marks = ", ".join("?" for _ in names)
        rows = self._rows(
            "SELECT d.*, l.relation AS relation FROM doc_links l JOIN docs d ON d.id = l.doc_id "
            f"WHERE l.target IN ({marks}) ORDER BY d.namespace, d.name",
            sorted(names),
        )
        return [
            {"relation": row["relation"], "ref": _ref(row), "path": row["path"]} for row in rows
        ]

    def _resolved(self, target: str, source: Doc) -> dict[str, Any]:
        candidates = [target]
        if "/" not in target:
            candidates.append(f"{source.namespace}/{target}")
        for candidate in candidates:
            row = self._find_row(candidate) if "/" in candidate else None
            if row is not None:
                return {"ref": _ref(row), "path": row["path"]}
        row = self._row("SELECT * FROM docs WHERE title = ? ORDER BY id LIMIT 1", (target,))
        if row is not None:
            return {"ref": _ref(row), "path": row["path"]}
        return {"ref": None, "path": None}

    def history(self, ref: str) -> list[DocVersion]:
        """Every recorded version of a document, oldest first (deleted documents too)."""
        path = self._path_of(ref)
        rows = self._rows("SELECT * FROM doc_versions WHERE path = ? ORDER BY id", (path,))
        if not rows and self._find_row(ref) is None:
            raise NotFound(f"document {ref} has no history")
        return [DocVersion.from_row(row) for row in rows]

    def validate(self, ref: str | None = None) -> list[Doc]:
        """Re-check documents (one, or all) against their namespaces' schemas after a
        rescan; returns those with problems."""
        self.refresh(force_validate=True)
        docs = [self.get_doc(ref, refresh=False)] if ref else self.list_docs(refresh=False)
        return [doc for doc in docs if doc.problems]

    # -- locks -------------------------------------------------------------------------------

    def lock(
        self, ref: str, *, lease_s: float = DEFAULT_LEASE_S, holder: Holder | None = None
    ) -> DocLock:
        """Take (or renew) the advisory lock on a document for ``lease_s`` seconds.

        Refused (Conflict) while another holder has it: a holder on this machine keeps it
        as long as its process runs (its lease is renewed by taking it again); a dead one's
        lock is taken over at once; a holder on another machine keeps it until its lease
        expires."""
        if not 0 < lease_s <= 7 * 86400:
            raise InvalidInput("a lease is from 1 second to 7 days")
        holder = holder or Holder.me()
        path = self._path_of(ref)
        with self.transaction() as tx:
            current = tx.one("SELECT * FROM doc_locks WHERE path = ?", (path,))
            if current is not None and current["holder"] != str(holder):
                if not _lock_reclaimable(current, tx.now):
                    raise _locked(ref, current)
                tx.execute("DELETE FROM doc_locks WHERE path = ?", (path,))
                tx.emit(
                    "doc", None, "doc.lock_reclaimed", {"path": path, "holder": current["holder"]}
                )
                current = None
            expires = _later(tx.now, lease_s)
            if current is None:
                tx.execute(
                    "INSERT INTO doc_locks (path, holder, owner, acquired_at, expires_at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (path, str(holder), tx.actor, tx.now, expires),
                )
                tx.emit("doc", None, "doc.locked", {"path": path, "holder": str(holder)})
            else:
                tx.execute("UPDATE doc_locks SET expires_at = ? WHERE path = ?", (expires, path))
            row = tx.one("SELECT * FROM doc_locks WHERE path = ?", (path,))
            assert row is not None  # written just above, in this transaction
            lock: DocLock = DocLock.from_row(row)
            return lock

    def unlock(self, ref: str, *, holder: Holder | None = None, force: bool = False) -> bool:
        """Release the lock (only its holder may, unless ``force``); False if none was held."""
        holder = holder or Holder.me()
        path = self._path_of(ref)
        with self.transaction() as tx:
            current = tx.one("SELECT * FROM doc_locks WHERE path = ?", (path,))
            if current is None:
                return False
            if current["holder"] != str(holder) and not force:
                raise _locked(ref, current, hint="only its holder releases it; --force does")
            tx.execute("DELETE FROM doc_locks WHERE path = ?", (path,))
            tx.emit("doc", None, "doc.unlocked", {"path": path, "holder": current["holder"]})
            return True

    def locks(self) -> list[DocLock]:
        return [DocLock.from_row(r) for r in self._rows("SELECT * FROM doc_locks ORDER BY path")]

    def _check_lock(self, tx: Tx, ref: str, path: str, holder: Holder | None) -> None:
        current = tx.one("SELECT * FROM doc_locks WHERE path = ?", (path,))
        if current is None:
            return
        text = current["holder"]
        mine = text == str(holder) if holder else Holder.parse(text).is_me_or_parent()
        if mine:
            return
        if _lock_reclaimable(current, tx.now):
            tx.execute("DELETE FROM doc_locks WHERE path = ?", (path,))
            tx.emit("doc", None, "doc.lock_reclaimed", {"path": path, "holder": text})
            return
        raise _locked(ref, current)

    # -- writing -----------------------------------------------------------------------------

    def write_doc(
        self,
        ref: str,
        *,
        body: str | None = None,
        fields: Mapping[str, Any] | None = None,
        text: str | None = None,
        fmt: str | None = None,
        expect: str | None = None,
        create: bool | None = None,
        force: bool = False,
        holder: Holder | None = None,
    ) -> Written[Doc]:
        """Write document ``ref`` with ``fields`` and ``body`` (None: keep the current
        ones), or the file's whole ``text`` (as another store had it: a bundle's). ``expect``:
        the etag the caller read (a different current content is a
        :class:`~agentkeep.errors.StaleWrite`). ``create`` True: only if it does not exist
        (the same content again is ``already_exists``); False: only if it exists.
        ``force`` overrides ``expect`` and another holder's lock. Returns ``created``,
        ``updated`` or ``unchanged``."""
        if text is not None and (body is not None or fields is not None):
            raise InvalidInput("give a document's whole text, or its fields and body, not both")
        source = self.locate(ref, fmt=fmt)
        self._store.check_writable()
        namespace = self.namespace(source.namespace)
        suffix = source.path.suffix.lower()
        fmt = docformat.format_of(suffix)
        merging = text is None and (fields is None or body is None)
        self._refuse_link(source)
        self._save_outside(source)
        with self.transaction() as tx:
            current = read_document_file(source.path)
            old: docformat.Parsed | None = None
            if current is not None:
                old = docformat.parse(_decoded(current, ref, strict=merging), suffix)
                if create:
                    new_text, _ = self._render(old, fields, body, fmt, text)
                    if new_text.encode() == current:
                        return Written(self._index_one(tx, source, quiet=True), "already_exists")
                    raise Conflict(
                        f"document {source.namespace}/{source.name} already exists",
                        hint=f"`agentkeep doc edit {source.namespace}/{source.name}` changes it",
                    )
            elif create is False:
                raise NotFound(f"document {ref} does not exist")
            if not force:
                self._check_lock(tx, ref, source.rel, holder)
                current_etag = etag_of(current) if current is not None else None
                if expect is not None and expect != current_etag:
                    raise _stale(ref, expect, current_etag, old, current, self._version(expect))
            text, redacted = self._render(old, fields, body, fmt, text)
            parsed = docformat.parse(text, suffix)
            problems = namespace.validate(parsed.type, parsed.fields) + parsed.problems
            if problems:
                raise InvalidInput(
                    f"document {source.namespace}/{source.name} is not valid: "
                    + "; ".join(problems[:5]),
                    hint=f"the schemas of namespace {source.namespace!r} are in "
                    f".agentkeep/schemas/{source.namespace}/",
                )
            data = text.encode("utf-8")
            if current == data:
                return Written(self._index_one(tx, source, quiet=True), "unchanged")
            self._check_quota(tx, namespace, source.rel, len(data))
            if current is not None:
                self._keep_outside(tx, source.rel, current)
            self._add_version(tx, source.rel, data, "edited" if current is not None else "created")
            self._publish(source.path, data)
            doc = self._index_one(tx, source, quiet=True)
            for part, counts in redacted.items():
                tx.boundary.add(part, counts)
            tx.record_redactions("docs", doc.id)
            tx.emit(
                "doc",
                doc.id,
                "doc.edited" if current is not None else "doc.created",
                {"ref": doc.ref, "path": doc.path, "etag": doc.etag, "type": doc.type},
            )
            failpoint("doc:before_commit")
        return Written(doc, "updated" if current is not None else "created")

    def _render(
        self,
        old: docformat.Parsed | None,
        fields: Mapping[str, Any] | None,
        body: str | None,
        fmt: str,
        text: str | None = None,
    ) -> tuple[str, dict[str, dict[str, int]]]:
        """The new file text: the given text, or the given fields and body (else the old
        ones), redacted; and what was redacted, by part ("text", "fields", "body"), for
        the audit."""
        if text is not None:
            clean_text, text_counts = redact_text(text)
            return clean_text, {"text": text_counts}
        new_fields = dict(fields) if fields is not None else dict(old.fields if old else {})
        new_body = body if body is not None else (old.body if old else "")
        plain_fields = docformat.plain(new_fields)
        clean_fields = redact_json_text(plain_fields)
        clean_body, body_counts = redact_text(new_body)
        counts = {"body": body_counts}
        if clean_fields != plain_fields:  # rare: count by rule only when something was
            counts["fields"] = redact_text(json.dumps(plain_fields, ensure_ascii=False))[1]
        front = old.front if old else "yaml"
        return docformat.render(clean_fields, clean_body, fmt, front=front), counts

    def remove_doc(
        self,
        ref: str,
        *,
        expect: str | None = None,
        force: bool = False,
        holder: Holder | None = None,
    ) -> Doc:
        """Delete a document's file, recoverably: its content is kept as a version
        (``doc restore`` brings it back) and the deletion is recorded and an event."""
        self.refresh_if_due()
        source = self.locate(ref)
        self._store.check_writable()
        self._refuse_link(source)
        self._save_outside(source)
        with self.transaction() as tx:
            current = read_document_file(source.path)
            if current is None:
                if tx.one("SELECT 1 FROM docs WHERE path = ?", (source.rel,)) is None:
                    raise NotFound(
                        f"document {ref} does not exist",
                        hint="`agentkeep doc ls` lists the documents",
                    )
                raise NotFound(f"document {ref}'s file is already gone")
            # The file is the truth: one written since the last rescan (or changed by
            # another program) is indexed as it is now, then removed.
            row = tx.one("SELECT * FROM docs WHERE path = ?", (source.rel,))
            if row is None or row["etag"] != etag_of(current):
                doc = self._index_one(tx, source, quiet=True)
            else:
                doc = doc_from_row(row)
            if not force:
                self._check_lock(tx, ref, source.rel, holder)
                if expect is not None and expect != etag_of(current):
                    old = docformat.parse(current.decode("utf-8", "replace"), source.path.suffix)
                    raise _stale(ref, expect, etag_of(current), old, current, self._version(expect))
            self._keep_outside(tx, source.rel, current)
            tx.insert(
                "doc_versions",
                {
                    "path": source.rel,
                    "sha256": None,
                    "etag": None,
                    "size": 0,
                    "change": "deleted",
                    "actor": tx.actor,
                    "created_at": tx.now,
                },
            )
            tx.execute("DELETE FROM doc_locks WHERE path = ?", (source.rel,))
            tx.execute("DELETE FROM docs WHERE id = ?", (doc.id,))
            tx.emit(
                "doc", doc.id, "doc.deleted", {"ref": doc.ref, "path": doc.path, "etag": doc.etag}
            )
            try:
                os.unlink(source.path)
                failpoint("doc:after_unlink")
                fsync_path(source.path.parent, directory=True)
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise translate_os_error(exc, str(source.path)) from exc
        return doc

    def restore_doc(
        self, ref: str, *, version: int | None = None, force: bool = False
    ) -> Written[Doc]:
        """Bring back a version of a document (by default the last content it had before
        it was deleted or last changed) as its current content: a new version."""
        path = self._path_of(ref)
        rows = self._rows(
            "SELECT * FROM doc_versions WHERE path = ? AND sha256 IS NOT NULL ORDER BY id DESC",
            (path,),
        )
        if version is not None:
            rows = [row for row in rows if row["id"] == version]
        if not rows:
            raise NotFound(
                f"document {ref} has no stored version{f' {version}' if version else ''}",
                hint=f"`agentkeep doc history {ref}` lists them",
            )
        data = self._store.artifacts.object_bytes(rows[0]["sha256"])
        root = self._root_of(path) or Root(self.docs_dir, None, "store")
        source = self.source_for(root, self.root / path)
        if source is None:
            raise InvalidInput(f"{path} is no longer under a document root")
        self._store.check_writable()
        self._refuse_link(source)
        self._save_outside(source)
        with self.transaction() as tx:
            current = read_document_file(source.path)
            if current is not None and not force:
                self._check_lock(tx, ref, source.rel, None)
            if current == data:
                return Written(self._index_one(tx, source, quiet=True), "unchanged")
            if current is not None:
                self._keep_outside(tx, source.rel, current)
            self._add_version(tx, source.rel, data, "restored")
            make_dirs(
                source.path.parent,
                within=self.root if source.root.origin != "store" else self.store_dir,
            )
            self._publish(source.path, data)
            doc = self._index_one(tx, source, quiet=True)
            tx.emit(
                "doc",
                doc.id,
                "doc.restored",
                {"ref": doc.ref, "path": doc.path, "etag": doc.etag, "version": rows[0]["id"]},
            )
        return Written(doc, "updated" if current is not None else "created")

    def _publish(self, path: Path, data: bytes) -> None:
        within = self.store_dir if self.store_dir in path.parents else self.root
        make_dirs(path.parent, within=within)
        if within == self.store_dir:
            self._prepare_store_docs(path)
        self._write_file(path, data, within=within)
        failpoint("doc:after_rename")

    @staticmethod
    def _write_file(path: Path, data: bytes, *, within: Path) -> None:
        """``data`` as the file ``path``: temp → fsync → rename → fsync dir, private."""
        with staged_file(path) as tmp:
            fd = open_file(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, within=within)
            try:
                write_chunks(fd, [data])
            finally:
                os.close(fd)
            failpoint("doc:before_rename")

    def _prepare_store_docs(self, path: Path) -> None:
        """Before a document is written under ``.agentkeep/docs/``: a store made before
        documents existed gets the .gitignore that lets docs/ and schemas/ into git, and a
        machine-local namespace's directory a .gitignore that keeps it out."""
        from agentkeep.store import GITIGNORE, OLD_GITIGNORES

        gitignore = self.store_dir / ".gitignore"
        try:
            if gitignore.read_text(encoding="utf-8") in OLD_GITIGNORES:
                self._write_file(gitignore, GITIGNORE.encode(), within=self.store_dir)
        except FileNotFoundError:
            pass
        parts = path.relative_to(self.docs_dir).parts
        if len(parts) > 1 and self.namespace(parts[0]).local:
            local = self.docs_dir / parts[0] / ".gitignore"
            if not local.exists():
                with staged_file(local) as tmp:
                    tmp.write_text(
                        "# a machine-local namespace (namespace.toml: local = true)\n*\n"
                    )

    def _add_version(self, tx: Tx, rel: str, data: bytes, change: str) -> None:
        from agentkeep.services.artifacts import commit_object, stage_object

        staged = stage_object(self.store_dir, [data])
        try:
            commit_object(tx, self.store_dir, staged, self.backend.blobs)
        finally:
            staged.discard()
        tx.insert(
            "doc_versions",
            {
                "path": rel,
                "sha256": staged.sha256,
                "etag": etag_of(data),
                "size": len(data),
                "change": change,
                "actor": tx.actor,
                "created_at": tx.now,
            },
        )

    def _version(self, etag: str) -> docformat.Parsed | None:
        """The content a document had at ``etag``, when a version recorded it (to say
        what changed since); None otherwise."""
        row = self._row(
            "SELECT path, sha256 FROM doc_versions WHERE etag = ? AND sha256 IS NOT NULL "
            "ORDER BY id DESC LIMIT 1",
            (etag,),
        )
        if row is None:
            return None
        try:
            data = self._store.artifacts.object_bytes(row["sha256"])
        except NotFound:
            return None
        return docformat.parse(data.decode("utf-8", "replace"), Path(row["path"]).suffix)

    def _save_outside(self, source: Source) -> None:
        """Before a write replaces or removes a file: commit its current content as an
        ``outside`` version, in a transaction of its own, when no version records it
        (another program wrote it). Inside the replacing transaction it would be rolled
        back by a crash after the rename or unlink, and the content lost with it."""
        current = read_document_file(source.path)
        if current is None:
            return
        last = self._row(
            "SELECT etag FROM doc_versions WHERE path = ? ORDER BY id DESC LIMIT 1",
            (source.rel,),
        )
        if last is not None and last[0] == etag_of(current):
            return
        with self.transaction() as tx:
            self._keep_outside(tx, source.rel, current)
        failpoint("doc:after_outside_version")

    def _keep_outside(self, tx: Tx, rel: str, current: bytes) -> None:
        """Store the file's current content as an ``outside`` version when no version
        records it (another program wrote it), so replacing it loses nothing."""
        etag = etag_of(current)
        last = tx.one(
            "SELECT etag FROM doc_versions WHERE path = ? ORDER BY id DESC LIMIT 1", (rel,)
        )
        if last is None or last[0] != etag:
            self._add_version(tx, rel, current, "outside")

    def _check_quota(self, tx: Tx, namespace: Namespace, rel: str, size: int) -> None:
        if not (namespace.max_docs or namespace.max_bytes):
            return
        row = tx.one(
            "SELECT count(*), coalesce(sum(size), 0) FROM docs WHERE namespace = ? AND path <> ?",
            (namespace.name, rel),
        )
        count, total = (int(row[0]), int(row[1])) if row else (0, 0)
        if namespace.max_docs and count + 1 > namespace.max_docs:
            raise StorageFull(
                f"namespace {namespace.name!r} is at its quota of {namespace.max_docs:,} documents",
                hint=f"raise max_docs in .agentkeep/schemas/{namespace.name}/namespace.toml "
                "or remove documents",
            )
        if namespace.max_bytes and total + size > namespace.max_bytes:
            raise StorageFull(
                f"namespace {namespace.name!r} would hold {total + size:,} bytes, over its "
                f"quota of {namespace.max_bytes:,}",
                hint=f"raise max_bytes in .agentkeep/schemas/{namespace.name}/namespace.toml "
                "or remove documents",
            )

    # -- the index ---------------------------------------------------------------------------

    def refresh_if_due(self) -> IndexReport | None:
        """:meth:`refresh`, unless this process did one less than ``docs.rescan_ms`` ago
        or the store is read-only (then the index is read as it is)."""
        if not self.writable or self._conn.in_transaction:
            return None
        key = str(self.store_dir)
        interval = int(self.config["docs.rescan_ms"]) / 1000
        last = _LAST_REFRESH.get(key)
        if last is not None and time.monotonic() - last < interval:
            return None
        return self.refresh()

    def refresh(
        self,
        *,
        rebuild: bool = False,
        force_validate: bool = False,
        progress: Callable[[int, int], None] | None = None,
    ) -> IndexReport:
        """Bring the index up to date with the files (see the module doc); ``rebuild``
        empties it and reads every file again."""
        self._store.check_writable()
        self._namespace_cache = self.namespaces()
        try:
            return self._refresh(rebuild, force_validate, progress)
        finally:
            self._namespace_cache = None

    def _refresh(
        self, rebuild: bool, force_validate: bool, progress: Callable[[int, int], None] | None
    ) -> IndexReport:
        report = IndexReport(rebuilt=rebuild)
        # The index is read before the walk: a document another writer adds meanwhile is
        # then either walked or not known, never taken for a vanished one. A rebuild
        # re-indexes every file in place and drops the rows no file matched, so readers
        # never see an empty index while it runs.
        known = {
            row["path"]: row
            for row in self._rows("SELECT id, path, size, mtime_ns, etag FROM docs")
        }
        sources = list(self.sources())
        report.files = len(sources)
        todo: list[tuple[Source, os.stat_result]] = []
        for source in sources:
            stat = self._file_stat(source)
            if stat is None:
                continue
            row = known.pop(source.rel, None)
            if (
                row is not None
                and not rebuild
                and not force_validate
                and row["size"] == stat.st_size
                and row["mtime_ns"] == stat.st_mtime_ns
            ):
                report.unchanged += 1
                continue
            todo.append((source, stat))
        gone = list(known.values())
        done = 0
        for start in range(0, max(len(todo), 1), INDEX_BATCH):
            batch = todo[start : start + INDEX_BATCH]
            if not batch and not gone:
                break
            with self.transaction() as tx:
                for source, _stat in batch:
                    outcome = self._index_source(tx, source, rebuild=rebuild)
                    if outcome == "added":
                        report.added += 1
                    elif outcome == "updated":
                        report.updated += 1
                    else:
                        report.unchanged += 1
                if start == 0:
                    for row in gone:
                        if os.path.lexists(self.root / row["path"]):
                            continue  # written meanwhile: the next rescan reads it
                        tx.execute("DELETE FROM docs WHERE id = ?", (row["id"],))
                        tx.emit("doc", row["id"], "doc.vanished", {"path": row["path"]})
                        report.removed += 1
            done += len(batch)
            if progress:
                progress(done, len(todo))
        if rebuild:
            with self.transaction() as tx:
                tx.emit("doc", None, "doc.reindexed", report.to_dict())
            self._store.mail.refresh(rebuild=True, complete=False)  # deliveries: from the boxes
        _LAST_REFRESH[str(self.store_dir)] = time.monotonic()
        report.problems = [
            f"{row['path']}: {problem}"
            for row in self._rows("SELECT path, problems FROM docs WHERE problems <> '[]'")
            for problem in json.loads(row["problems"])
        ]
        return report

    def index_file(self, tx: Tx, path: Path) -> Doc:
        """Index the file ``path`` (under a root) inside ``tx``, without an event: for a
        service that writes documents of its own (messages) in its own transaction."""
        for root in self.roots():
            source = self.source_for(root, path)
            if source is not None:
                return self._index_one(tx, source, quiet=True)
        raise InvalidInput(f"{path} is not under a document root")

    def _index_one(self, tx: Tx, source: Source, *, quiet: bool) -> Doc:
        self._index_source(tx, source, quiet=quiet)
        row = tx.one("SELECT * FROM docs WHERE path = ?", (source.rel,))
        if row is None:
            raise NotFound(f"document {source.rel} vanished while it was written")
        return doc_from_row(row)

    def _index_source(
        self, tx: Tx, source: Source, *, rebuild: bool = False, quiet: bool = False
    ) -> str:
        """Index one file inside ``tx``: "added", "updated" or "unchanged" (the content
        is the indexed one: only its stat is refreshed)."""
        too_big = False
        path = self._followed(source)
        try:
            stat = os.lstat(path) if path is not None else None
            data = read_document_file(path, limit=MAX_DOC_BYTES) if path is not None else None
            if data is None and stat and S_ISREG(stat.st_mode) and stat.st_size > MAX_DOC_BYTES:
                data, too_big = b"", True
        except OSError:
            data = None
        existing = tx.one("SELECT id, etag FROM docs WHERE path = ?", (source.rel,))
        if data is None:
            if existing is not None:
                tx.execute("DELETE FROM docs WHERE id = ?", (existing["id"],))
            return "unchanged"
        etag = (_file_etag(path) if path else None) if too_big else etag_of(data)
        if etag is None or stat is None:
            return "unchanged"
        updated_at = stamp(stat.st_mtime)
        if existing is not None and existing["etag"] == etag and not rebuild:
            tx.execute(
                "UPDATE docs SET size = ?, mtime_ns = ?, updated_at = ? WHERE id = ?",
                (stat.st_size, _stat_mark(stat), updated_at, existing["id"]),
            )
            self._revalidate(tx, existing["id"], source)
            return "unchanged"
        # Never refused for its content (a user's own file): NUL bytes and bytes that are
        # not UTF-8 are replaced, over-long parts are cut or left out with a problem. The
        # texts are redacted where they are bound (the transaction's boundary), once.
        text = data.decode("utf-8", "replace").replace("\x00", "\ufffd")
        parsed = docformat.parse(text, source.path.suffix)
        namespace = self.namespace(source.namespace)
        try:
            problems = namespace.validate(parsed.type, parsed.fields) + parsed.problems
        except InvalidInput as exc:
            problems = [exc.message]
        if too_big:
            problems = [
                f"it is {stat.st_size:,} bytes, over the {MAX_DOC_BYTES:,} a document may "
                "hold: indexed by name only"
            ]
        fields = parsed.fields
        size = len(json.dumps(fields, ensure_ascii=False, default=str).encode())
        if size > MAX_INDEXED_FIELDS:
            fields = {"type": parsed.type} if parsed.type else {}
            problems.append(
                f"its fields are {size:,} bytes, over the {MAX_INDEXED_FIELDS:,} the index "
                "holds: only its type is indexed"
            )
        values = {
            "path": source.rel,
            "namespace": source.namespace,
            "name": source.name,
            "origin": source.root.origin,
            "format": parsed.format,
            "type": _clip(parsed.type),
            "title": _clip(parsed.title(Path(source.name).name)),
            "convention": source.convention,
            "fields": Json(fields),
            "tags": Json([_clip(tag) for tag in parsed.tags()[:MAX_INDEXED_TAGS]]),
            "problems": Json([_clip(problem) for problem in problems]),
            "etag": etag,
            "size": stat.st_size,
            "mtime_ns": _stat_mark(stat),
            "updated_at": updated_at,
            "indexed_at": tx.now,
        }
        clash = tx.one(
            "SELECT path FROM docs WHERE namespace = ? AND name = ? AND path <> ?",
            (source.namespace, source.name, source.rel),
        )
        if clash is not None:  # a.md beside a.json: the first indexed keeps the name
            values["name"] = f"{source.name}{source.path.suffix}"
        if existing is None:
            doc_id = tx.insert("docs", values)
            outcome = "added"
        else:
            doc_id = int(existing["id"])
            tx.update("docs", doc_id, values)
            tx.execute("DELETE FROM doc_links WHERE doc_id = ?", (doc_id,))
            tx.execute("DELETE FROM doc_chunks WHERE doc_id = ?", (doc_id,))
            outcome = "updated"
        for relation, target in docformat.links(parsed.fields, parsed.body):
            tx.execute(
                "INSERT INTO doc_links (doc_id, relation, target) VALUES (?, ?, ?) "
                "ON CONFLICT (doc_id, relation, target) DO NOTHING",
                (doc_id, _clip(relation), _clip(target)),
            )
        for chunk in docformat.chunks(parsed):
            tx.execute(
                "INSERT INTO doc_chunks (doc_id, position, heading, level, text, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (doc_id, chunk.position, _clip(chunk.heading), chunk.level, chunk.text, updated_at),
            )
        if not quiet and not rebuild:
            tx.emit(
                "doc",
                doc_id,
                "doc.changed",
                {"path": source.rel, "etag": etag, "change": outcome, "by": "outside"},
            )
        return outcome

    def _revalidate(self, tx: Tx, doc_id: int, source: Source) -> None:
        """Re-check an unchanged document against its namespace's schema (it may have
        changed): only the problems column is rewritten."""
        row = tx.one("SELECT type, fields, format, problems FROM docs WHERE id = ?", (doc_id,))
        if row is None or row["format"] == "text":
            return
        try:
            problems = self.namespace(source.namespace).validate(
                row["type"], json.loads(row["fields"])
            )
        except InvalidInput as exc:
            problems = [exc.message]
        old = [p for p in json.loads(row["problems"]) if "front matter" in p or "JSON" in p]
        if sorted(old + problems) != sorted(json.loads(row["problems"])):
            tx.execute(
                "UPDATE docs SET problems = ? WHERE id = ?", (json.dumps(old + problems), doc_id)
            )

    def _followed(self, source: Source) -> Path | None:
        """The file a document is read from: its own path; for a symbolic link in a
        project directory (CLAUDE.md → AGENTS.md), the link's target when that is a
        regular file inside the project; None for any other link (never one inside the
        store, never one leading out of the project)."""
        if not os.path.islink(source.path):
            return source.path
        if source.root.origin == "store":
            return None
        target = Path(os.path.realpath(source.path))
        root = Path(os.path.realpath(self.root))
        if root not in target.parents or not target.is_file():
            return None
        return target

    def _file_stat(self, source: Source) -> os.stat_result | None:
        """The stat of the regular file a document is read from, or None (one lstat for
        the usual file: the rescan of an unchanged tree is this and the walk)."""
        try:
            stat: os.stat_result | None = os.lstat(source.path)
            if stat is not None and S_ISLNK(stat.st_mode):
                path = self._followed(source)
                stat = os.stat(path) if path is not None else None
        except OSError:
            return None
        return stat if stat is not None and S_ISREG(stat.st_mode) else None

    def _refuse_link(self, source: Source) -> None:
        """A write through a symbolic link would replace the link with a file."""
        if os.path.islink(source.path):
            target = os.readlink(source.path)
            raise InvalidInput(
                f"{source.rel} is a symbolic link (to {target}); agentkeep does not write "
                "through links",
                hint="write the document the link points to",
            )

    def check_index(self) -> list[str]:
        """What differs between the files and the index (for ``doctor``), read-only: a
        file not indexed, an indexed file that is gone, or one whose content changed."""
        found: list[str] = []
        known = {row["path"]: row for row in self._rows("SELECT path, etag, size FROM docs")}
        for source in self.sources():
            path = self._followed(source)
            if path is None:
                continue  # a link that is no document
            row = known.pop(source.rel, None)
            if row is None:
                found.append(f"{source.rel} is not indexed")
                continue
            data = read_document_file(path, limit=MAX_DOC_BYTES)
            etag = etag_of(data) if data is not None else _file_etag(path)
            if etag is not None and etag != row["etag"]:
                found.append(f"{source.rel} changed since it was indexed")
        found += [f"{path} is indexed but its file is gone" for path in sorted(known)]
        return found


# -- helpers ---------------------------------------------------------------------------------


def doc_from_row(row: Any) -> Doc:
    values = {key: row[key] for key in row.keys()}  # noqa: SIM118 (a Row is no dict)
    values["ref"] = f"{values['namespace']}/{values['name']}"
    for name in Doc.JSON_FIELDS:
        if isinstance(values[name], str):
            values[name] = json.loads(values[name])
    return Doc(**{key: values[key] for key in _DOC_FIELDS})


_DOC_FIELDS = (
    "id",
    "ref",
    "path",
    "namespace",
    "name",
    "origin",
    "format",
    "type",
    "title",
    "convention",
    "fields",
    "tags",
    "problems",
    "etag",
    "size",
    "updated_at",
    "indexed_at",
)


def _ref(row: Any) -> str:
    return f"{row['namespace']}/{row['name']}"


def _looks_like_path(ref: str) -> bool:
    return Path(ref).suffix.lower() in docformat.SUFFIXES or ref.startswith(("./", "/"))


def _relative(root: Path, ref: str) -> str:
    path = Path(ref)
    if path.is_absolute():
        try:
            return path.resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            return path.as_posix()
    return Path(os.path.normpath(ref)).as_posix()


def _stat_mark(stat: os.stat_result) -> int:
    """The ``mtime_ns`` the index records for a file just read: its mtime, or, while the
    file is racily clean (modified less than ``RACY_NS`` ago, or in the future), its mtime
    negated, which no stat matches, so the next rescan compares its content (as git does
    for racily clean entries). A state snapshot rewritten in place within one timestamp
    tick with the same size is picked up; a file older than that is trusted by its stat."""
    if time.time_ns() - stat.st_mtime_ns < RACY_NS:
        return -stat.st_mtime_ns
    return stat.st_mtime_ns


def read_document_file(path: Path, *, limit: int | None = None) -> bytes | None:
    """The file's bytes, or None when it does not exist, is a symbolic link (never
    followed: a link in a documents directory would bring a file from elsewhere into the
    index, the versions and bundles), or is larger than ``limit``."""
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return None
        raise
    try:
        with os.fdopen(fd, "rb") as handle:
            data = handle.read() if limit is None else handle.read(limit + 1)
    except IsADirectoryError:
        return None
    if limit is not None and len(data) > limit:
        return None
    return data


def _file_etag(path: Path) -> str | None:
    """The sha256 of a (large) regular file's bytes, read in chunks without following a
    link; None when it is gone or not a regular file."""
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW)
    except OSError:
        return None
    digest = hashlib.sha256()
    with os.fdopen(fd, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _decoded(data: bytes, ref: str, *, strict: bool) -> str:
    """A file's text. ``strict``: a file that is not UTF-8 is refused rather than decoded
    with replacement characters, which a write keeping its fields or body would save."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if strict:
            raise InvalidInput(
                f"document {ref} is not UTF-8 text: editing its fields or body would damage it",
                hint="replace its whole content (`--body`/`--file`) or fix its encoding",
            ) from exc
        return data.decode("utf-8", "replace")


def _clip(text: str | None) -> str | None:
    if text is None or len(text) <= MAX_INDEXED_CHARS:
        return text
    return text[: MAX_INDEXED_CHARS - 1] + "…"


def _field_matches(value: Any, expected: str) -> bool:
    if isinstance(value, list):
        return any(_field_matches(item, expected) for item in value)
    if isinstance(value, bool):
        return expected.lower() == str(value).lower()
    if value is None:
        return expected in ("", "null")
    return str(value) == expected


def _later(now: str, seconds: float) -> str:
    moment = datetime.fromisoformat(now.replace("Z", "+00:00")) + timedelta(seconds=seconds)
    return iso_utc(moment)


def _lock_reclaimable(row: Any, now: str) -> bool:
    """A lock may be taken over when its holder is known dead (this host), or, for a
    holder on another host (whose life cannot be checked), when its lease has expired."""
    try:
        alive = Holder.parse(row["holder"]).alive()
    except ValueError:
        alive = None
    if alive is not None:
        return not alive
    return str(row["expires_at"]) <= now


def _locked(ref: str, row: Any, *, hint: str | None = None) -> Conflict:
    try:
        running = Holder.parse(row["holder"]).alive()
    except ValueError:
        running = None
    # A holder on this host keeps its lock while it runs, whatever its lease says.
    until = "while it runs" if running else f"until {row['expires_at']}"
    return Conflict(
        f"document {ref} is locked by {row['holder']} ({row['owner']}) {until}",
        hint=hint or "wait for it, or pass --force to write anyway",
    )


_MISSING = object()


def _stale(
    ref: str,
    expected: str,
    current_etag: str | None,
    old: docformat.Parsed | None,
    current: bytes | None,
    then: docformat.Parsed | None = None,
) -> StaleWrite:
    """The refusal of a write that started from ``expected``; ``then`` is that version's
    content when a version recorded it, so the refusal says what changed: the fields
    added, removed or changed (names only: values may be long) and whether the text did."""
    details: dict[str, Any] = {"expected_etag": expected, "current_etag": current_etag}
    if current is None:
        message = f"document {ref} was deleted since version {expected[:12]}"
    else:
        now = (current_etag or "?")[:12]
        message = f"document {ref} changed since version {expected[:12]} (now {now})"
        if old is not None:
            details["fields"] = sorted(old.fields)
        if old is not None and then is not None:
            changed = sorted(
                key
                for key in set(old.fields) | set(then.fields)
                if old.fields.get(key, _MISSING) != then.fields.get(key, _MISSING)
            )
            details["changed_fields"] = changed
            details["body_changed"] = old.body != then.body
            what = [f"fields {', '.join(changed)}"] if changed else []
            what += ["its text"] if old.body != then.body else []
            if what:
                message += f": {' and '.join(what)} changed"
    return StaleWrite(
        message,
        hint="read it again (`agentkeep doc show`), merge, and write with the new --if-match; "
        "or --force to overwrite",
        details=details,
    )
