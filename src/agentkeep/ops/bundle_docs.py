"""Documents in bundles (format version 2): the files of the exported namespaces and their
schemas, recreated in another project through the documents' write path.

A bundle carries, beside its records:

- ``records/documents.jsonl``: one line per document, sorted by namespace and name:
  ``namespace``, ``name``, ``suffix`` (``.md``, ``.json``…), ``origin`` and ``path`` where
  the source project had it, and the ``sha256`` and ``size`` of its content;
- ``documents/<sha256>``: each distinct content once — the file's text as it passed the
  privacy boundary on the way out (a user's own input file may hold a secret: the bundle
  never does);
- ``schemas/<namespace>/<type>.json`` and ``namespace.toml``: the collections' schemas.

What is exported: ``--namespace NS`` (repeatable) exports those namespaces' documents and
schemas; ``--all`` every document of the store (``.agentkeep/docs/``) and of the project's
``docs.roots`` directories, with every declared schema. Spec files found by their layout
(``AGENTS.md``, ``.kiro/``…) travel only when their namespace is named: they are the
repository's own files, which git carries. The files are read from disk, not from the
index (the files are the truth). Versions are not exported: the history of a document
belongs to the project that made it; the import starts each document's history with a
``created`` version.

Import (:func:`import_documents`) runs after the bundle's records are committed. Schemas
first: a schema file this project lacks is written (temp → fsync → rename); one it holds
with other content is kept and reported as a conflict. Then each document goes through
:meth:`~agentkeep.services.docs.DocService.write_doc` (the privacy boundary again, schema
validation, quota, atomic write, a version, an event, the index): into the project
directory that holds its namespace here (``docs.roots``), else ``.agentkeep/docs/<ns>/``.
A document already here with the same content is ``unchanged``; with other content it is
kept and reported (nothing is overwritten); one that its schema or quota refuses is
reported too. Importing the same bundle again changes nothing. A crash part-way leaves the
documents written so far; importing again completes it.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentkeep.boundary import redact_text
from agentkeep.documents import format as docformat
from agentkeep.documents.schemas import NAME, NAMESPACE_FILE, SCHEMAS_DIR
from agentkeep.errors import AgentkeepError, Conflict, InvalidInput, StorageFull
from agentkeep.ops.bundle_format import json_line, loads_json

if TYPE_CHECKING:
    from agentkeep.services.docs import Source
    from agentkeep.store import Store

DOCUMENTS = "records/documents.jsonl"
_SHA = re.compile(r"^[0-9a-f]{64}$")
_FIELDS = ("namespace", "name", "suffix", "origin", "path", "sha256", "size")


@dataclass(frozen=True)
class DocEntry:
    """One document of a bundle (a line of ``records/documents.jsonl``)."""

    namespace: str
    name: str
    suffix: str
    origin: str
    path: str
    sha256: str
    size: int

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def member(self) -> str:
        return f"documents/{self.sha256}"

    def line(self) -> bytes:
        return json_line({name: getattr(self, name) for name in _FIELDS})


@dataclass
class ExportedDocs:
    """What :func:`export_documents` chose: the entries, each distinct content by sha256,
    and the schema files (member name → bytes)."""

    entries: list[DocEntry] = field(default_factory=list)
    contents: dict[str, bytes] = field(default_factory=dict)
    schemas: dict[str, bytes] = field(default_factory=dict)
    namespaces: list[str] = field(default_factory=list)


# -- export -----------------------------------------------------------------------------------


def export_documents(store: Store, *, namespaces: Sequence[str] = (), all: bool) -> ExportedDocs:
    """The documents (and schemas) a bundle carries; nothing when neither ``all`` nor
    ``namespaces``. An unknown namespace is InvalidInput."""
    out = ExportedDocs()
    if not all and not namespaces:
        return out
    wanted = set(namespaces)
    declared = store.docs.namespaces()
    sources = [
        source
        for source in store.docs.sources()
        if (source.namespace in wanted) or (all and source.root.origin != "spec")
    ]
    found = {source.namespace for source in sources}
    unknown = sorted(wanted - found - set(declared))
    if unknown:
        raise InvalidInput(
            f"no namespace named {', '.join(unknown)}",
            hint="`agentkeep collection ls` lists the collections",
        )
    for source in sorted(sources, key=lambda s: (s.namespace, s.name, s.path.suffix)):
        data = _read(source)
        if data is None:
            continue  # vanished since it was listed
        content = redact_text(data.decode("utf-8", "replace"))[0].encode("utf-8")
        sha = hashlib.sha256(content).hexdigest()
        out.contents[sha] = content
        out.entries.append(
            DocEntry(
                source.namespace,
                source.name,
                source.path.suffix.lower(),
                source.root.origin,
                source.rel,
                sha,
                len(content),
            )
        )
    names = sorted(found | (set(declared) if all else wanted))
    out.namespaces = names
    for name in names:
        directory = store.store_dir / SCHEMAS_DIR / name
        if name not in declared or not directory.is_dir():
            continue
        for path in sorted(directory.iterdir()):
            if _schema_file(path.name) and path.is_file() and not path.is_symlink():
                text = path.read_bytes().decode("utf-8", "replace")
                out.schemas[f"schemas/{name}/{path.name}"] = redact_text(text)[0].encode("utf-8")
    return out


def _read(source: Source) -> bytes | None:
    from agentkeep.services.docs import read_document_file

    return read_document_file(source.path)  # a link is never followed out of the project


def _schema_file(name: str) -> bool:
    return name == NAMESPACE_FILE or (
        name.endswith(".json") and bool(NAME.match(name[: -len(".json")]))
    )


# -- import -----------------------------------------------------------------------------------


def parse_entries(data: bytes, where: str) -> list[DocEntry]:
    """The lines of ``records/documents.jsonl``, each checked (untrusted input)."""
    from agentkeep.services.docs import split_ref

    entries = []
    for number, line in enumerate(data.split(b"\n"), 1):
        if not line:
            continue
        record = loads_json(line, f"{where} line {number}")
        if not isinstance(record, dict) or set(record) != set(_FIELDS):
            raise InvalidInput(f"{where} line {number} is not a document record")
        entry = DocEntry(**{name: record[name] for name in _FIELDS})
        split_ref(entry.ref)  # InvalidInput for a bad namespace or name ('..' included)
        if (
            entry.suffix not in docformat.SUFFIXES
            or not isinstance(entry.sha256, str)
            or not _SHA.match(entry.sha256)
            or not isinstance(entry.size, int)
            or isinstance(entry.size, bool)
            or entry.size < 0
        ):
            raise InvalidInput(f"{where} line {number} is not a valid document record")
        entries.append(entry)
    return entries


@dataclass
class ImportedDocs:
    created: dict[str, int] = field(default_factory=lambda: {"documents": 0, "schemas": 0})
    unchanged: dict[str, int] = field(default_factory=lambda: {"documents": 0, "schemas": 0})
    conflicts: list[dict[str, Any]] = field(default_factory=list)


def import_documents(
    store: Store,
    entries: Sequence[DocEntry],
    schemas: Sequence[str],
    read: Callable[[str], bytes],
) -> ImportedDocs:
    """Write the bundle's schemas (their member names), then its documents, into
    ``store`` (see the module doc); ``read(member)`` gives a verified member's bytes."""
    result = ImportedDocs()
    for member in sorted(schemas):
        _, namespace, filename = member.split("/")
        data = read(member)
        _path, outcome = store.collections.write_schema_file(
            namespace, filename, data.decode("utf-8", "replace")
        )
        if outcome == "conflict":
            result.unchanged["schemas"] += 1
            result.conflicts.append(
                {
                    "table": "schemas",
                    "file": f".agentkeep/{SCHEMAS_DIR}/{namespace}/{filename}",
                    "reason": "this project's schema differs; it was kept",
                }
            )
        elif outcome == "already_exists":
            result.unchanged["schemas"] += 1
        else:
            result.created["schemas"] += 1
    for entry in entries:
        data = read(entry.member)
        rel = _destination(store, entry)
        try:
            written = store.docs.write_doc(rel, text=data.decode("utf-8", "replace"), create=True)
        except Conflict:
            result.unchanged["documents"] += 1
            result.conflicts.append(
                {
                    "table": "documents",
                    "ref": entry.ref,
                    "path": rel,
                    "reason": "a document with other content is here; it was kept",
                }
            )
            continue
        except (InvalidInput, StorageFull) as exc:
            result.conflicts.append(
                {"table": "documents", "ref": entry.ref, "path": rel, "reason": _reason(exc)}
            )
            continue
        if written.outcome == "created":
            result.created["documents"] += 1
        else:
            result.unchanged["documents"] += 1
    return result


def _reason(exc: AgentkeepError) -> str:
    return f"refused: {exc.message}"


def _destination(store: Store, entry: DocEntry) -> str:
    """Where ``entry`` goes here, relative to the project: the file its ref names here
    (the directory holding its namespace), with the suffix it had."""
    located = store.docs.locate(entry.ref, fmt="json" if entry.suffix == ".json" else None)
    path = located.path
    if path.suffix.lower() != entry.suffix:
        path = path.with_name(path.name[: -len(path.suffix)] + entry.suffix)
    return Path(os.path.relpath(path, store.root)).as_posix()
