"""Collections: a project's own domains (campaigns, leads, rewards…) as documents.

A **collection** is a document namespace with a declared schema
(``.agentkeep/schemas/<name>/<type>.json``, :mod:`agentkeep.documents.schemas`); a
**record** is a document in it. There is no second store: the files (the namespace's root,
often a directory of the user's own input named in ``docs.roots``) are the truth, and
:mod:`agentkeep.services.docs` indexes them one way, re-reading only the files whose size
or mtime changed. This module is the thin layer on top:

- :meth:`CollectionService.declare` writes the schema file (atomic, inside the store) and,
  for ``root``, adds ``"<root>:<name>"`` to the project's ``docs.roots`` setting;
- :meth:`~CollectionService.collections` lists the declared namespaces with their types,
  record and invalid-record counts and where their files are;
- :meth:`~CollectionService.records` lists a collection's records, filtered with typed
  ``where`` conditions (:func:`parse_where`), sorted and limited.

**State snapshots** — a JSON file that its program rewrites in place (``state/session-3.json``)
— are records like any other: one file, one record, whose latest content is indexed. A
rewrite changes the file's mtime (and usually its size), so the rescan reads it again; a
rewrite within the same timestamp tick with the same size keeps both, which the index
catches by recording a file modified in the last 2 seconds as "racily clean" (its content
is compared on the next rescan; ``docs.RACY_NS``).

**Where conditions** are ``FIELD OP VALUE`` with OP one of ``=``, ``!=``, ``>``, ``>=``,
``<``, ``<=`` and ``~`` (contains, ignoring case). ``FIELD`` is a front-matter (or JSON)
field, dotted for nested ones (``owner.name``); when a record has no such field, the
record's own ``name``, ``ref``, ``type``, ``path`` and ``updated_at`` are used. The
comparison follows the JSON type of the record's value: numbers numerically, booleans as
``true``/``false``, text (ISO dates included) as text; a list matches when one of its items
does. A value that cannot be compared (``budget>abc`` on a number) matches nothing, and is
refused outright when the collection's schema declares the field a number or a boolean.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentkeep.boundary import redact_text
from agentkeep.config import Config, parse_doc_roots, set_in_file
from agentkeep.documents.schemas import NAME, NAMESPACE_FILE, SCHEMAS_DIR, Namespace, check_name
from agentkeep.errors import InvalidInput, NotFound
from agentkeep.files import make_dirs, staged_file, write_new_file
from agentkeep.record import Record
from agentkeep.services.base import Service

_CONDITION = re.compile(r"^\s*([A-Za-z_][\w.-]*)\s*(!=|>=|<=|=|>|<|~)\s*(.*?)\s*$", re.DOTALL)
_RECORD_ATTRIBUTES = ("name", "ref", "type", "path", "updated_at")
_TRUE = ("true", "yes", "1", "on")
_FALSE = ("false", "no", "0", "off")


@dataclass(frozen=True)
class Collection(Record):
    """A declared namespace: its ``types`` (schema files), how many ``records`` it holds and
    how many of them are ``invalid``, where its files are (``root``, relative to the
    project) and where its schemas are (``schemas``)."""

    name: str
    types: list[str]
    records: int
    invalid: int
    root: str
    schemas: str
    max_docs: int = 0
    max_bytes: int = 0


@dataclass(frozen=True)
class CollectionRecord(Record):
    """One record: a document of a collection. ``fields`` is its content (front matter or
    JSON object, as indexed: redacted); ``problems`` what its schema found wrong."""

    ref: str
    name: str
    path: str
    type: str | None
    valid: bool
    problems: list[str]
    fields: dict[str, Any]
    updated_at: str
    etag: str


@dataclass(frozen=True)
class Declared(Record):
    """What :meth:`CollectionService.declare` did: ``outcome`` is created, updated or
    already_exists; ``schema`` the schema file; ``root`` the directory added to
    ``docs.roots`` (None when none was given)."""

    collection: Collection
    outcome: str
    schema: str
    root: str | None = None
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "collection": self.collection.to_dict()}


@dataclass(frozen=True)
class Condition:
    """One ``where`` condition: ``field op value`` (see the module doc)."""

    field: str
    op: str
    value: str

    def __str__(self) -> str:
        return f"{self.field}{self.op}{self.value}"


def parse_where(conditions: Iterable[str | Condition]) -> list[Condition]:
    """``["status=active", "budget>1000"]`` → conditions; InvalidInput for a malformed one."""
    parsed: list[Condition] = []
    for item in conditions:
        if isinstance(item, Condition):
            parsed.append(item)
            continue
        match = _CONDITION.match(item)
        if match is None:
            raise InvalidInput(
                f"{item!r} is not a condition",
                hint="write FIELD=VALUE, FIELD!=VALUE, FIELD>N, FIELD>=N, FIELD<N, FIELD<=N or "
                "FIELD~TEXT (contains), e.g. status=active or budget>1000",
            )
        parsed.append(Condition(match.group(1), match.group(2), match.group(3)))
    return parsed


class CollectionService(Service):
    # -- declaring ---------------------------------------------------------------------------

    def declare(
        self,
        name: str,
        schema: Mapping[str, Any],
        *,
        type: str | None = None,
        root: str | None = None,
    ) -> Declared:
        """Declare collection ``name`` with the JSON Schema (Draft 2020-12) its records'
        fields must satisfy, as type ``type`` (default: the collection's name). The schema
        is written to ``.agentkeep/schemas/<name>/<type>.json`` (temp → fsync → rename);
        ``root``, a directory inside the project, is added to the ``docs.roots`` setting in
        the project's config.toml as ``"<root>:<name>"``, so its files are the records.
        Its records are validated again at once."""
        from jsonschema import Draft202012Validator
        from jsonschema.exceptions import SchemaError

        check_name("collection", name)
        doc_type = check_name("type", type or name)
        if not isinstance(schema, Mapping):
            raise InvalidInput("a collection's schema must be a JSON object (a JSON Schema)")
        try:
            Draft202012Validator.check_schema(dict(schema))
        except SchemaError as exc:
            raise InvalidInput(
                f"the schema of {name!r} is not a valid JSON Schema: {exc.message}",
                hint="see https://json-schema.org/draft/2020-12 (type, properties, required…)",
            ) from exc
        self._store.check_writable()
        if root is not None:
            self._check_root(root, name)  # before anything is written
        text = json.dumps(dict(schema), indent=2, ensure_ascii=False) + "\n"
        target, outcome = self.write_schema_file(name, f"{doc_type}.json", text, replace=True)
        added = None
        if root is not None:
            added = self._add_root(root, name)
            if added and outcome == "already_exists":
                outcome = "updated"
        if outcome != "already_exists":
            with self.transaction() as tx:
                tx.emit(
                    "collection",
                    None,
                    "collection.declared",
                    {"name": name, "type": doc_type, "root": root, "outcome": outcome},
                )
        report = self._store.docs.refresh(force_validate=True)
        problems = [p for p in report.problems if p.startswith(self._root_prefix(name))]
        return Declared(
            self.get(name),
            outcome,
            target.relative_to(self.root).as_posix(),
            root=root,
            problems=problems,
        )

    def write_schema_file(
        self, name: str, filename: str, text: str, *, replace: bool = False
    ) -> tuple[Path, str]:
        """Write ``.agentkeep/schemas/<name>/<filename>`` (a ``<type>.json`` or
        ``namespace.toml``) through the privacy boundary, temp → fsync → rename, private.
        Returns the file and the outcome: created, updated, already_exists, or — when it
        holds other content and not ``replace`` — conflict (the file is kept)."""
        check_name("collection", name)
        if filename != NAMESPACE_FILE and not (
            filename.endswith(".json") and NAME.match(filename[: -len(".json")])
        ):
            raise InvalidInput(f"{filename!r} is not a schema file name")
        directory = self.store_dir / SCHEMAS_DIR / name
        target = directory / filename
        data = redact_text(text)[0].encode("utf-8")
        try:
            current: bytes | None = target.read_bytes()
        except FileNotFoundError:
            current = None
        if current == data:
            return target, "already_exists"
        if current is not None and not replace:
            return target, "conflict"
        make_dirs(directory, within=self.store_dir)
        with staged_file(target) as tmp:
            write_new_file(tmp, data)
        return target, "created" if current is None else "updated"

    def _check_root(self, root: str, name: str) -> bool:
        """Whether ``root:name`` must be added to ``docs.roots`` (False: it is there);
        InvalidInput when ``root`` is outside the project or another namespace's."""
        wanted = f"{root.strip().rstrip('/')}:{name}"
        try:
            (path, namespace), *_ = parse_doc_roots([wanted])
        except ValueError as exc:
            raise InvalidInput(f"--root {root}: {exc}") from exc
        for item in parse_doc_roots([str(item) for item in self.config["docs.roots"]]):
            if item == (path, namespace):
                return False
            if item[0] == path:
                raise InvalidInput(
                    f"{path} is already the root of namespace {item[1] or Path(path).name!r}",
                    hint="edit docs.roots in .agentkeep/config.toml to change it",
                )
        return True

    def _add_root(self, root: str, name: str) -> bool:
        """Add ``root:name`` to the project's ``docs.roots``; False when it is there."""
        if not self._check_root(root, name):
            return False
        wanted = f"{root.strip().rstrip('/')}:{name}"
        current = [str(item) for item in self.config["docs.roots"]]
        set_in_file(self.store_dir / "config.toml", "docs.roots", ",".join([*current, wanted]))
        # This store reads the new root from now on (flags given at open are kept).
        flags = {v.key: v.value for v in self.config.values() if v.source == "flag"}
        self._store.config = Config.load(
            project_file=self.store_dir / "config.toml", overrides=flags
        )
        return True

    # -- reading -----------------------------------------------------------------------------

    def collections(self) -> list[Collection]:
        """Every declared collection (namespace with a schema directory), by name."""
        self._store.docs.refresh_if_due()
        counts = {
            row[0]: (int(row[1]), int(row[2] or 0))
            for row in self._rows(
                "SELECT namespace, count(*), "
                "sum(CASE WHEN problems <> '[]' THEN 1 ELSE 0 END) FROM docs GROUP BY namespace"
            )
        }
        return [
            self._collection(namespace, counts.get(namespace.name, (0, 0)))
            for namespace in self._store.docs.namespaces().values()
        ]

    def get(self, name: str) -> Collection:
        """Collection ``name``; NotFound when no schema declares it."""
        namespace = self._namespace(name)
        row = self._row(
            "SELECT count(*), sum(CASE WHEN problems <> '[]' THEN 1 ELSE 0 END) FROM docs "
            "WHERE namespace = ?",
            (name,),
        )
        counts = (int(row[0]), int(row[1] or 0)) if row else (0, 0)
        return self._collection(namespace, counts)

    def schemas(self, name: str) -> dict[str, Any]:
        """The collection's schemas as written: type → JSON Schema."""
        namespace = self._namespace(name)
        out: dict[str, Any] = {}
        for doc_type, path in sorted(namespace.types.items()):
            try:
                out[doc_type] = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise InvalidInput(f"{path} is not readable JSON: {exc}") from exc
        return out

    def records(
        self,
        name: str,
        *,
        where: Sequence[str | Condition] = (),
        sort: Sequence[str] | str | None = None,
        limit: int | None = None,
        invalid: bool | None = None,
    ) -> list[CollectionRecord]:
        """The records of collection ``name`` (files changed since the last rescan are read
        again first) that meet every ``where`` condition, sorted by ``sort`` (field names,
        ``-field`` for descending, records without the field last; default: by name), at
        most ``limit``. ``invalid`` True/False keeps only the records that fail/pass their
        schema."""
        namespace = self._namespace(name)
        conditions = parse_where(where)
        self._check_operands(namespace, conditions)
        self._store.docs.refresh_if_due()
        needles = [needle for c in conditions if (needle := _needle(c)) is not None]
        found = [
            record
            for record in self._read_records(namespace, invalid=invalid, needles=needles)
            if all(_meets(record, c) for c in conditions)
        ]
        keys = [sort] if isinstance(sort, str) else list(sort or [])
        for key in reversed([k.strip() for item in keys for k in item.split(",") if k.strip()]):
            found = _sorted(found, key)
        return found[:limit] if limit else found

    def validate(self, name: str) -> list[CollectionRecord]:
        """Read every file again and check each record against the collection's schemas
        (which may have changed); returns the invalid records."""
        namespace = self._namespace(name)
        self._store.docs.refresh(force_validate=True)
        return list(self._read_records(namespace, invalid=True))

    def _read_records(
        self, namespace: Namespace, *, invalid: bool | None = None, needles: Sequence[str] = ()
    ) -> Iterator[CollectionRecord]:
        """The indexed records, by name: only the columns a record shows (a listing of
        10k records parses one JSON column per row, not three), and none whose stored
        fields lack one of ``needles`` (:func:`_needle`: not parsed at all)."""
        sql = (
            "SELECT namespace, name, path, type, fields, problems, updated_at, etag FROM docs "
            "WHERE namespace = ?"
        )
        if invalid is not None:
            sql += " AND problems <> '[]'" if invalid else " AND problems = '[]'"
        implied = next(iter(namespace.types)) if len(namespace.types) == 1 else None
        for row in self._rows(sql + " ORDER BY name", (namespace.name,)):
            if needles and not all(needle in row["fields"] for needle in needles):
                continue
            problems = row["problems"]
            yield CollectionRecord(
                ref=f"{row['namespace']}/{row['name']}",
                name=row["name"],
                path=row["path"],
                type=row["type"] or implied,
                valid=problems == "[]",
                problems=[] if problems == "[]" else json.loads(problems),
                fields=json.loads(row["fields"]),
                updated_at=row["updated_at"],
                etag=row["etag"],
            )

    # -- helpers -----------------------------------------------------------------------------

    def _namespace(self, name: str) -> Namespace:
        check_name("collection", name)
        namespace = self._store.docs.namespaces().get(name)
        if namespace is None:
            raise NotFound(
                f"collection {name!r} is not declared",
                hint=f"`agentkeep collection declare {name} --schema FILE` declares it; "
                "`agentkeep collection ls` lists them",
            )
        return namespace

    def _root_of(self, name: str) -> str:
        for root in self._store.docs.roots()[1:]:
            if root.namespace == name:
                return root.path.relative_to(self.root).as_posix()
        return (self._store.docs.docs_dir / name).relative_to(self.root).as_posix()

    def _root_prefix(self, name: str) -> str:
        return self._root_of(name).rstrip("/") + "/"

    def _collection(self, namespace: Namespace, counts: tuple[int, int]) -> Collection:
        return Collection(
            name=namespace.name,
            types=sorted(namespace.types),
            records=counts[0],
            invalid=counts[1],
            root=self._root_of(namespace.name),
            schemas=f".agentkeep/{SCHEMAS_DIR}/{namespace.name}",
            max_docs=namespace.max_docs,
            max_bytes=namespace.max_bytes,
        )

    def _check_operands(self, namespace: Namespace, conditions: Sequence[Condition]) -> None:
        """Refuse a condition whose value cannot be of the type the schema declares."""
        if not conditions or not namespace.types:
            return
        declared: dict[str, set[str]] = {}
        for schema in self.schemas(namespace.name).values():
            properties = schema.get("properties") if isinstance(schema, dict) else None
            for key, spec in (properties or {}).items():
                kinds = spec.get("type") if isinstance(spec, dict) else None
                kinds = [kinds] if isinstance(kinds, str) else kinds or []
                declared.setdefault(key, set()).update(str(k) for k in kinds)
        for condition in conditions:
            kinds = declared.get(condition.field, set())
            if condition.op == "~" or not kinds or "string" in kinds:
                continue
            if kinds <= {"number", "integer"} and _number(condition.value) is None:
                raise InvalidInput(
                    f"{condition}: {condition.field} is a number in collection "
                    f"{namespace.name!r}, and {condition.value!r} is not"
                )
            if kinds == {"boolean"} and _boolean(condition.value) is None:
                raise InvalidInput(
                    f"{condition}: {condition.field} is true or false in collection "
                    f"{namespace.name!r}, not {condition.value!r}"
                )


# -- filtering and sorting -------------------------------------------------------------------


_MISSING = object()


def _value(record: CollectionRecord, name: str) -> Any:
    """The record's field ``name`` (dotted: nested), else its own attribute of that name."""
    current: Any = record.fields
    for part in name.split("."):
        if isinstance(current, Mapping) and part in current:
            current = current[part]
        else:
            current = _MISSING
            break
    if current is _MISSING and name in _RECORD_ATTRIBUTES:
        return getattr(record, name)
    return current


_PLAIN = re.compile(r"^[ !#-\[\]-~]+$")  # printable ASCII but '"' and '\\'


def _needle(condition: Condition) -> str | None:
    """A text that the stored JSON of every record meeting ``condition`` holds, to skip
    the others unparsed: for ``field=text`` where only a string (or a list holding one)
    can match, the JSON string ``"text"``, which no serializer escapes differently. None
    when no such text is sure (numbers, booleans, objects, record attributes, escapes)."""
    value = condition.value
    if (
        condition.op != "="
        or condition.field.split(".")[0] in _RECORD_ATTRIBUTES
        or not _PLAIN.match(value)
        or value.startswith(("{", "[", " "))
        or value.endswith(" ")
        or value == "null"
        or _number(value) is not None
        or _boolean(value) is not None
    ):
        return None
    return f'"{value}"'


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _boolean(text: str) -> bool | None:
    lowered = text.strip().lower()
    return True if lowered in _TRUE else False if lowered in _FALSE else None


def _compare(value: Any, op: str, text: str) -> bool:
    """Whether one (non-list) value meets ``op text``, compared by the value's JSON type."""
    if op == "~":
        shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        return text.lower() in shown.lower()
    expected: Any
    if value is None:
        return (text in ("", "null")) == (op == "=") if op in ("=", "!=") else False
    if isinstance(value, bool):
        expected = _boolean(text)
    elif isinstance(value, int | float):
        expected = _number(text)
    elif isinstance(value, str):
        expected = text
    else:  # an object: compared as its JSON text
        value, expected = json.dumps(value, sort_keys=True), text
    if expected is None:
        return op == "!="
    if op == "=":
        return bool(value == expected)
    if op == "!=":
        return bool(value != expected)
    if isinstance(value, bool):
        return False
    if op == ">":
        return bool(value > expected)
    if op == ">=":
        return bool(value >= expected)
    if op == "<":
        return bool(value < expected)
    return bool(value <= expected)


def _meets(record: CollectionRecord, condition: Condition) -> bool:
    value = _value(record, condition.field)
    if value is _MISSING:
        return condition.op == "!="
    if isinstance(value, list):
        if condition.op == "!=":
            return not any(_compare(item, "=", condition.value) for item in value)
        return any(_compare(item, condition.op, condition.value) for item in value)
    return _compare(value, condition.op, condition.value)


def _sort_key(value: Any) -> tuple[int, Any]:
    if isinstance(value, bool):
        return (0, value)
    if isinstance(value, int | float):
        return (1, value)
    if isinstance(value, str):
        return (2, value)
    return (3, json.dumps(value, sort_keys=True))


def _sorted(records: list[CollectionRecord], key: str) -> list[CollectionRecord]:
    """Stable sort by one key (``-key``: descending); records without it come last."""
    descending = key.startswith("-")
    name = key.lstrip("-+")
    if not name:
        raise InvalidInput(f"{key!r} is not a field to sort by")
    present = [(r, _value(r, name)) for r in records]
    missing = [r for r, v in present if v is _MISSING or v is None]
    kept = [(r, v) for r, v in present if v is not _MISSING and v is not None]
    kept.sort(key=lambda pair: _sort_key(pair[1]), reverse=descending)
    return [r for r, _ in kept] + missing
