"""Namespaces and their declared types: JSON Schemas the project keeps as files.

``.agentkeep/schemas/<namespace>/`` declares a namespace: each ``<type>.json`` in it is a
JSON Schema (Draft 2020-12) that the fields of a document of that type must satisfy, and
an optional ``namespace.toml`` sets its quotas and whether it is machine-local::

    # .agentkeep/schemas/campaigns/namespace.toml
    max_docs = 500          # documents in the namespace (0: no limit)
    max_bytes = "20MB"      # their total size on disk (0: no limit)
    local = false           # true: machine-local (not meant for git)

A namespace with no schema accepts any document (its ``type`` is free text); one that
declares types refuses a write whose type is not declared or whose fields fail the schema
(a document with no ``type`` in a namespace of one declared type is of that type),
and indexing a user's own file that fails reports the problems instead (a file is never
refused for being indexed). Schemas are files, so they are versioned with the project.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentkeep.config import parse_byte_size
from agentkeep.errors import InvalidInput

SCHEMAS_DIR = "schemas"
NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
NAMESPACE_FILE = "namespace.toml"
_VALIDATORS: dict[tuple[str, int, int], Any] = {}


def check_name(what: str, name: str) -> str:
    """``name`` if it is a valid namespace or type name, else InvalidInput."""
    if not isinstance(name, str) or not NAME.match(name) or name.endswith("."):
        raise InvalidInput(
            f"{what} {name!r} is not a valid name",
            hint="use lower-case letters, digits, '.', '_' or '-' (at most 64), "
            "starting with a letter or digit",
        )
    return name


@dataclass(frozen=True)
class Namespace:
    name: str
    types: dict[str, Path] = field(default_factory=dict)  # type → its schema file
    max_docs: int = 0
    max_bytes: int = 0
    local: bool = False
    error: str | None = None  # why its namespace.toml could not be read

    def validate(self, doc_type: str | None, fields: dict[str, Any]) -> list[str]:
        """What is wrong with a document of ``doc_type`` holding ``fields`` ([] if nothing)."""
        if self.error:
            return [self.error]
        if not self.types:
            return []
        if doc_type is None and len(self.types) == 1:
            doc_type = next(iter(self.types))  # a collection's records need not repeat it
        if doc_type is None:
            return [
                f"namespace {self.name!r} needs a type (one of: {', '.join(sorted(self.types))})"
            ]
        schema = self.types.get(doc_type)
        if schema is None:
            return [
                f"type {doc_type!r} is not declared in namespace {self.name!r} "
                f"(declared: {', '.join(sorted(self.types))})"
            ]
        validator = _validator(schema)
        problems = []
        for error in sorted(validator.iter_errors(fields), key=lambda e: list(e.absolute_path)):
            where = "/".join(str(part) for part in error.absolute_path) or "(document)"
            problems.append(f"{where}: {error.message}")
        return problems


def _validator(path: Path) -> Any:
    stat = path.stat()
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    found = _VALIDATORS.get(key)
    if found is None:
        from jsonschema import Draft202012Validator
        from jsonschema.exceptions import SchemaError

        try:
            schema = json.loads(path.read_text(encoding="utf-8"))
            Draft202012Validator.check_schema(schema)
        except (ValueError, SchemaError) as exc:
            message = str(exc).splitlines()[0]
            raise InvalidInput(
                f"the schema {path.name} of namespace {path.parent.name!r} is not a valid "
                f"JSON Schema: {message}",
                hint=f"fix {path}",
            ) from exc
        found = Draft202012Validator(schema)
        _VALIDATORS[key] = found
    return found


def load_namespaces(store_dir: Path) -> dict[str, Namespace]:
    """Every namespace declared under ``<store>/schemas/``."""
    base = store_dir / SCHEMAS_DIR
    found: dict[str, Namespace] = {}
    try:
        entries = sorted(base.iterdir())
    except OSError:
        return found
    for directory in entries:
        if not directory.is_dir() or not NAME.match(directory.name):
            continue
        types = {
            schema.name[: -len(".json")]: schema
            for schema in sorted(directory.glob("*.json"))
            if NAME.match(schema.name[: -len(".json")])
        }
        manifest = directory / NAMESPACE_FILE
        try:
            settings = tomllib.loads(manifest.read_text(encoding="utf-8"))
            found[directory.name] = Namespace(
                directory.name,
                types,
                max_docs=int(settings.get("max_docs", 0)),
                max_bytes=parse_byte_size(settings.get("max_bytes", 0)),
                local=bool(settings.get("local", False)),
            )
        except FileNotFoundError:
            found[directory.name] = Namespace(directory.name, types)
        except (OSError, TypeError, ValueError) as exc:
            # One broken namespace.toml must not break every read of the other namespaces:
            # its namespace refuses writes and its documents carry the reason as a problem.
            found[directory.name] = Namespace(
                directory.name, types, error=f"{manifest} is not valid: {exc}"
            )
    return found
