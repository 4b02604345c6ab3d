"""The layers of docs/design.md, executable: what may import what, and where SQLite lives.

* Every SQLite construct — ``import sqlite3``, PRAGMAs, FTS5 (``MATCH``, ``bm25()``,
  ``snippet()``), JSON functions, ``lastrowid``, scalar two-argument ``min()``/``max()``,
  ``INSERT OR IGNORE/REPLACE``, ``data_version``, ``dbstat``, ``sqlite_master``,
  ``executescript``, ``WITHOUT ROWID`` — is written under ``backends/sqlite/``. The layers
  above write portable SQL and call the backend (``backends/base.py``) for the rest.
* ``backends/`` depends on nothing above it; ``cli/`` never reaches the backend or a
  store's private attributes; operations use public service and maintenance APIs only.

Known exceptions are listed with their reason in ``ALLOWED``; an entry that no longer
matches anything fails too, so the list only shrinks.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "agentkeep"
BACKEND = "backends/sqlite/"

# (construct, pattern over the text of string literals in code)
SQL_CONSTRUCTS = [
    ("PRAGMA", re.compile(r"\bPRAGMA\b", re.I)),
    ("FTS5 MATCH", re.compile(r"\bMATCH\s+\?")),
    ("bm25()", re.compile(r"\bbm25\s*\(", re.I)),
    ("snippet()", re.compile(r"\bsnippet\s*\(", re.I)),
    ("json_each()", re.compile(r"\bjson_each\s*\(", re.I)),
    ("json_extract()", re.compile(r"\bjson_extract\s*\(", re.I)),
    ("INSERT OR", re.compile(r"\bINSERT\s+OR\s+(IGNORE|REPLACE)\b", re.I)),
    ("data_version", re.compile(r"\bdata_version\b", re.I)),
    ("dbstat", re.compile(r"\bdbstat\b", re.I)),
    ("sqlite_master", re.compile(r"\bsqlite_(master|schema)\b", re.I)),
    ("WITHOUT ROWID", re.compile(r"\bWITHOUT\s+ROWID\b", re.I)),
    # scalar min/max take two or more arguments; the aggregates take one
    ("scalar min()/max()", re.compile(r"\b(min|max)\((?:[^()]|\([^()]*\))*,", re.I)),
]
# constructs whose pattern could match ordinary text: counted only in SQL-looking strings
NEED_SQL_CONTEXT = {"FTS5 MATCH", "scalar min()/max()"}
SQL_WORDS = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE|CREATE|PRAGMA|WHERE|SET)\b")
ATTRIBUTES = {"lastrowid": "lastrowid", "executescript": "executescript"}

# path (relative to src/agentkeep) -> {construct: why it may stay there}
ALLOWED: dict[str, dict[str, str]] = {
    "config.py": {
        "PRAGMA": "a setting's help text names the statement it costs (user documentation)",
        "data_version": "the same help text",
    },
    "importers/opencode.py": {
        "import sqlite3": "reads OpenCode's own database, a foreign file, not the store",
        "PRAGMA": "opens that foreign database read-only (query_only)",
    },
}


def _allowed(rel: str) -> set[str]:
    return set(ALLOWED.get(rel, {}))


def _modules() -> Iterator[tuple[str, ast.Module]]:
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        yield rel, ast.parse(path.read_text(encoding="utf-8"), filename=rel)


def _docstrings(tree: ast.Module) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def sqlite_constructs(tree: ast.Module) -> set[str]:
    """The SQLite-only constructs a module's code uses (docstrings and comments aside)."""
    found = set()
    docs = _docstrings(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if "sqlite3" in names or (
                isinstance(node, ast.ImportFrom) and node.module == "sqlite3"
            ):
                found.add("import sqlite3")
        elif isinstance(node, ast.Attribute) and node.attr in ATTRIBUTES:
            found.add(ATTRIBUTES[node.attr])
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and id(node) in docs:
            continue
        if isinstance(node, ast.JoinedStr):
            text = " {} ".join(str(v.value) for v in node.values if isinstance(v, ast.Constant))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value
        else:
            continue
        sql = SQL_WORDS.search(text) is not None
        for name, pattern in SQL_CONSTRUCTS:
            if (sql or name not in NEED_SQL_CONTEXT) and pattern.search(text):
                found.add(name)
    return found


def violations() -> dict[str, set[str]]:
    out = {}
    for rel, tree in _modules():
        if rel.startswith(BACKEND):
            continue
        found = sqlite_constructs(tree)
        if found:
            out[rel] = found
    return out


def test_sqlite_lives_in_the_sqlite_backend() -> None:
    found = violations()
    unexpected = {
        rel: sorted(c for c in constructs if c not in _allowed(rel))
        for rel, constructs in found.items()
    }
    unexpected = {rel: c for rel, c in unexpected.items() if c}
    assert not unexpected, (
        "SQLite constructs outside backends/sqlite/ (move them behind backends/base.py): "
        + "; ".join(f"{rel}: {', '.join(c)}" for rel, c in sorted(unexpected.items()))
    )


def test_the_allowed_list_only_shrinks() -> None:
    found = violations()
    listed = {rel: _allowed(rel) for rel in ALLOWED}
    stale = [
        f"{rel}: {construct}"
        for rel, constructs in listed.items()
        for construct in sorted(constructs)
        if construct not in found.get(rel, set())
    ]
    assert not stale, f"remove these ALLOWED entries, nothing uses them now: {stale}"


def test_the_rule_catches_a_violation(tmp_path: Path) -> None:
    """The checker itself: each construct, planted in a module, is found."""
    planted = {
        "import sqlite3": "import sqlite3\n",
        "PRAGMA": 'conn.execute("PRAGMA integrity_check")\n',
        "FTS5 MATCH": 'conn.execute("SELECT rowid FROM notes_fts WHERE notes_fts MATCH ?")\n',
        "json_each()": 'q = "SELECT 1 FROM json_each(tasks.labels) WHERE value = ?"\n',
        "lastrowid": 'row_id = conn.execute("INSERT INTO t (a) VALUES (?)", (1,)).lastrowid\n',
        "scalar min()/max()": 'q = f"UPDATE s SET a = max(a, ?) WHERE id = {x}"\n',
        "INSERT OR": 'q = "INSERT OR IGNORE INTO t (a) VALUES (?)"\n',
    }
    for construct, code in planted.items():
        assert construct in sqlite_constructs(ast.parse(code)), construct
    portable = 'q = "SELECT max(seq) FROM events WHERE at >= ? ON CONFLICT DO NOTHING"\n'
    assert sqlite_constructs(ast.parse(portable)) == set()


# -- imports between layers -------------------------------------------------------------

LAYER_RULES = [
    # (modules under, may not import, why)
    (
        "backends/",
        ("agentkeep.services", "agentkeep.store", "agentkeep.cli", "agentkeep.ops"),
        "a backend depends on nothing above it",
    ),
    (
        "services/",
        ("agentkeep.cli", "agentkeep.backends.sqlite", "sqlite3"),
        "services are below every adapter and reach the backend through backends/base.py",
    ),
    ("cli/", ("agentkeep.backends", "sqlite3"), "the CLI is a shell over the store's API"),
    (
        "server/",
        ("agentkeep.backends", "sqlite3", "agentkeep.cli"),
        "the server is a shell over the store's API, like the CLI and beside it",
    ),
    (
        "mcp/",
        ("agentkeep.backends", "sqlite3", "agentkeep.cli", "agentkeep.server.app"),
        "the MCP tools are a shell over the store's API; serve mounts them, not the reverse",
    ),
    (
        "ops/",
        ("agentkeep.backends.sqlite.connection", "agentkeep.cli", "sqlite3"),
        "operations use public service and maintenance APIs (store.maintenance); a backup's "
        "own database file is read through backends.sqlite.maintenance's file functions",
    ),
]


def _imports(tree: ast.Module) -> Iterator[str]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module


@pytest.mark.parametrize("under,forbidden,why", LAYER_RULES, ids=[r[0] for r in LAYER_RULES])
def test_layer_imports(under: str, forbidden: tuple[str, ...], why: str) -> None:
    bad = [
        f"{rel} imports {name}"
        for rel, tree in _modules()
        if rel.startswith(under)
        for name in _imports(tree)
        if any(name == f or name.startswith(f + ".") for f in forbidden)
    ]
    assert not bad, f"{why}: {bad}"


SQL_STATEMENT = re.compile(
    r"^\s*(SELECT\b.*\bFROM\b|INSERT\s+INTO\b|UPDATE\s+\w+\s+SET\b|DELETE\s+FROM\b"
    r"|CREATE\s+(TABLE|INDEX|VIEW)\b|WITH\s+\w+\s+AS\b)",
    re.I | re.S,
)


def sql_literals(tree: ast.Module) -> set[int]:
    """Lines of string literals (docstrings aside) that start like an SQL statement."""
    docs = _docstrings(tree)
    return {
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docs
        and SQL_STATEMENT.match(node.value)
    }


def test_adapters_write_no_sql() -> None:
    """The CLI, the server and the MCP tools call the store; SQL is the services' and the
    backend's (docs/design.md, Layers)."""
    bad = [
        f"{rel}:{line}"
        for rel, tree in _modules()
        if rel.startswith(("cli/", "server/", "mcp/"))
        for line in sorted(sql_literals(tree))
    ]
    assert not bad, bad
    assert sql_literals(ast.parse('q = "SELECT id FROM tasks"\n')) == {1}
    assert sql_literals(ast.parse('h = "Delete (default: only show what)."\n')) == set()


def test_no_private_store_attributes_outside_the_store() -> None:
    """Only the store and its services touch ``store._conn`` and friends; operations, the
    CLI and capture use the public API (and ``store.maintenance``)."""
    inside = ("store.py", "_core.py", "services/")
    users = set()
    for rel, tree in _modules():
        if rel.startswith(inside):
            continue
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and isinstance(node.value, ast.Name)
                and node.value.id == "store"
            ):
                users.add(f"{rel}:{node.lineno} store.{node.attr}")
    assert not users, sorted(users)
