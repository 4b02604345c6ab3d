"""The PostgreSQL schema is SQLite's schema: the drift guard between the two backends.

A fresh SQLite store and a fresh PostgreSQL store (both made by ``agentkeep.init_store``,
so through the migration registry: PostgreSQL's ``backends/postgres/schema/0001_*.sql``
and the ``postgres`` slots of later migrations) are compared: every table exists on both,
with the same columns in the same order, the same types (INTEGER → bigint, REAL → double
precision, TEXT → text, BLOB → bytea), NOT NULL-ness, defaults, generated columns, primary
keys, UNIQUE constraints, foreign keys (with ON DELETE), number of CHECK constraints,
indexes (names, columns, uniqueness, partial or not) and triggers (names); ``meta`` has the
same keys and ``row_counts`` the same rows; the triggers do the same thing (the same plain
SQL on both moves ``row_counts`` alike), JSON is checked alike, and
``captures.search_text`` holds the same text.

How to fix a failure: a SQLite migration changed the schema (a table, a column, an index, a
trigger) and PostgreSQL did not follow. Give that migration's ``"postgres"`` slot in
``agentkeep.migrations.MIGRATIONS`` the same change in PostgreSQL's spelling (a new file in
``backends/postgres/schema/``; never edit a released script), following the type mapping
and the comments at the top of ``0001_baseline.sql``. An object only one backend has on
purpose goes into the allowances below, with its reason. Full-text search is each
backend's own and is not compared: objects named ``<table>_fts`` or ``<table>_fts_…``
(SQLite's FTS5 tables and triggers; PostgreSQL's side tables and triggers of
``0008_search.sql``) and SQLite's ``search_index``.
"""

from __future__ import annotations

import re
import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import agentkeep
from agentkeep import migrations
from agentkeep.store import COUNTED_TABLES

from conftest import skip_or_fail
from helpers import pg

psycopg = pytest.importorskip("psycopg")

# Read at import time: conftest's autouse fixture removes AGENTKEEP_* from each test's env.
PG_DSN = pg.PG_DSN or ""  # one reading of the test server (tests/helpers/pg.py)

# Full-text search: each backend's own (FTS5 on SQLite, 0008_search.sql on PostgreSQL).
SEARCH = re.compile(r"_fts(_|$)")
# SQLite objects PostgreSQL has not, and why.
SQLITE_ONLY_TABLES = {
    "search_index": "FTS5's catch-up watermark; PostgreSQL indexes in the writing transaction",
}
# PostgreSQL objects SQLite has not, and why.
PG_ONLY_TABLES = {
    "blobs": "sealed streams' and objects' bytes shared by a team (0001_blobs.sql); "
    "on SQLite the files are the truth",
    "blob_chunks": "their chunks",
}
PG_ONLY_TRIGGERS: dict[tuple[str, str], str] = {
    (table, f"{table}_counts_written"): "adds the transaction's row counts at COMMIT"
    for table in COUNTED_TABLES
}
PG_ONLY_TRIGGER_NAMES = {
    re.compile(r"_notify_followers$"): "NOTIFY wakes live followers (0001_follow.sql)",
}

SQLITE_TYPES = {"INTEGER": "bigint", "REAL": "double precision", "TEXT": "text", "BLOB": "bytea"}


# -- the two stores ----------------------------------------------------------------------------


@dataclass
class Pg:
    conn: Any  # psycopg.Connection, autocommit, search_path = the store's schema
    schema: str

    def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return list(self.conn.execute(sql, params).fetchall())


@pytest.fixture
def pg(tmp_path: Path) -> Iterator[Pg]:
    if not PG_DSN:
        skip_or_fail("no PostgreSQL: set AGENTKEEP_TEST_PG_DSN (scripts/postgres start)")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    root = tmp_path / "pg"
    root.mkdir()
    conn = psycopg.connect(PG_DSN, autocommit=True)
    try:
        agentkeep.init_store(root, url=f"{PG_DSN}{'&' if '?' in PG_DSN else '?'}schema={schema}")
        conn.execute(f'SET search_path TO "{schema}"')
        yield Pg(conn, schema)
    finally:
        try:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            conn.close()


@pytest.fixture
def lite(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    root = tmp_path / "lite"
    root.mkdir()
    agentkeep.init_store(root)
    conn = sqlite3.connect(root / ".agentkeep" / "state.db", isolation_level=None)
    conn.execute("PRAGMA foreign_keys = ON")
    try:
        yield conn
    finally:
        conn.close()


# -- SQLite's schema, as data ------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    notnull: bool
    default: str | None
    generated: bool


@dataclass(frozen=True)
class Index:
    table: str
    columns: tuple[str, ...]
    unique: bool
    where: str | None


def lite_tables(lite: sqlite3.Connection) -> list[str]:
    return sorted(
        str(row[0])
        for row in lite.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        if not str(row[0]).startswith("sqlite_")
        and not SEARCH.search(str(row[0]))
        and str(row[0]) not in SQLITE_ONLY_TABLES
    )


def _lite_default(value: str | None) -> str | None:
    return None if value is None else value.strip()


def lite_columns(lite: sqlite3.Connection, table: str) -> list[Column]:
    # table_xinfo's hidden: 0 ordinary, 2 virtual generated, 3 stored generated.
    return [
        Column(
            str(r[1]),
            SQLITE_TYPES[str(r[2]).upper()],
            bool(r[3]) or bool(r[5]),  # a primary key column is never NULL in agentkeep's tables
            None if r[5] and str(r[2]).upper() == "INTEGER" else _lite_default(r[4]),
            int(r[6]) in (2, 3),
        )
        for r in lite.execute(f"PRAGMA table_xinfo({table})")
    ]


def lite_primary_key(lite: sqlite3.Connection, table: str) -> tuple[str, ...]:
    cols = [(int(r[5]), str(r[1])) for r in lite.execute(f"PRAGMA table_info({table})") if r[5]]
    return tuple(name for _, name in sorted(cols))


def lite_unique(lite: sqlite3.Connection, table: str) -> set[tuple[str, ...]]:
    found = set()
    for row in lite.execute(f"PRAGMA index_list({table})"):
        if row[3] == "u":
            found.add(tuple(str(r[2]) for r in lite.execute(f"PRAGMA index_info({row[1]})")))
    return found


def lite_foreign_keys(lite: sqlite3.Connection, table: str) -> set[tuple[str, str, str, str]]:
    return {
        (str(r[3]), str(r[2]), str(r[4]), str(r[6]).upper())
        for r in lite.execute(f"PRAGMA foreign_key_list({table})")
    }


def lite_checks(lite: sqlite3.Connection, table: str) -> int:
    """CHECK constraints of the table: those in its CREATE TABLE and those its columns
    gained by ALTER TABLE ADD COLUMN (SQLite writes them into the stored CREATE TABLE)."""
    sql = lite.execute("SELECT sql FROM sqlite_master WHERE name = ?", (table,)).fetchone()[0]
    return len(re.findall(r"\bCHECK\s*\(", str(sql), re.I))


def _norm_where(text: str | None) -> str | None:
    if text is None:
        return None
    text = re.sub(r"::\w+", "", text).replace("(", "").replace(")", "").replace("!=", "<>")
    return re.sub(r"\s+", " ", text).strip().lower()


def lite_indexes(lite: sqlite3.Connection) -> dict[str, Index]:
    """Named (explicit) indexes of the compared tables; FTS shadow tables have none."""
    tables = set(lite_tables(lite))
    found = {}
    for name, table, sql in lite.execute(
        "SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
    ):
        if table not in tables:
            continue
        columns = tuple(str(r[2]) for r in lite.execute(f"PRAGMA index_info({name})"))
        where = re.search(r"\bWHERE\b(.*)$", str(sql), re.I | re.S)
        found[str(name)] = Index(
            str(table),
            columns,
            str(sql).upper().startswith("CREATE UNIQUE"),
            _norm_where(where.group(1)) if where else None,
        )
    return found


def lite_triggers(lite: sqlite3.Connection) -> set[tuple[str, str]]:
    tables = set(lite_tables(lite))
    return {
        (str(table), str(name))
        for name, table in lite.execute(
            "SELECT name, tbl_name FROM sqlite_master WHERE type = 'trigger'"
        )
        if table in tables and not SEARCH.search(str(name))
    }


# -- PostgreSQL's schema, as data --------------------------------------------------------------


def pg_tables(pg: Pg) -> list[str]:
    rows = pg.rows(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = %s AND c.relkind IN ('r', 'p')",
        (pg.schema,),
    )
    names = (str(r[0]) for r in rows)
    return sorted(n for n in names if not SEARCH.search(n) and n not in PG_ONLY_TABLES)


def _pg_default(value: str | None) -> str | None:
    if value is None:
        return None
    # '[]'::text → '[]'; plain numbers stay as they are.
    return re.sub(r"::[a-z ]+$", "", value.strip())


def pg_columns(pg: Pg, table: str) -> list[Column]:
    rows = pg.rows(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,"
        "       CASE WHEN a.attgenerated = '' THEN pg_get_expr(d.adbin, d.adrelid) END,"
        "       a.attgenerated <> ''"
        "  FROM pg_attribute a"
        "  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum"
        " WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped"
        " ORDER BY a.attnum",
        (f'"{pg.schema}"."{table}"',),
    )
    return [Column(str(r[0]), str(r[1]), bool(r[2]), _pg_default(r[3]), bool(r[4])) for r in rows]


def _constraint_columns(pg: Pg, table: str, kind: str) -> list[tuple[Any, ...]]:
    return pg.rows(
        "SELECT c.conname,"
        "       array(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY k(num, pos)"
        "             JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.num"
        "             ORDER BY k.pos)::text[],"
        "       c.confrelid::regclass::text,"
        "       array(SELECT a.attname FROM unnest(c.confkey) WITH ORDINALITY k(num, pos)"
        "             JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.num"
        "             ORDER BY k.pos)::text[],"
        "       c.confdeltype"
        "  FROM pg_constraint c"
        " WHERE c.conrelid = %s::regclass AND c.contype = %s",
        (f'"{pg.schema}"."{table}"', kind),
    )


def pg_primary_key(pg: Pg, table: str) -> tuple[str, ...]:
    rows = _constraint_columns(pg, table, "p")
    return tuple(rows[0][1]) if rows else ()


def pg_unique(pg: Pg, table: str) -> set[tuple[str, ...]]:
    return {tuple(r[1]) for r in _constraint_columns(pg, table, "u")}


ON_DELETE = {"a": "NO ACTION", "r": "RESTRICT", "c": "CASCADE", "n": "SET NULL", "d": "SET DEFAULT"}


def pg_foreign_keys(pg: Pg, table: str) -> set[tuple[str, str, str, str]]:
    found = set()
    for _, columns, target, target_columns, on_delete in _constraint_columns(pg, table, "f"):
        assert len(columns) == 1, "agentkeep's foreign keys are single columns"
        found.add(
            (columns[0], target.split(".")[-1].strip('"'), target_columns[0], ON_DELETE[on_delete])
        )
    return found


def pg_checks(pg: Pg, table: str) -> int:
    return len(_constraint_columns(pg, table, "c"))


def pg_indexes(pg: Pg) -> dict[str, Index]:
    """Indexes that are not a constraint's (SQLite's named indexes)."""
    rows = pg.rows(
        "SELECT ic.relname, t.relname, i.indisunique, pg_get_expr(i.indpred, i.indrelid),"
        "       array(SELECT a.attname FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(num, pos)"
        "             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.num"
        "             ORDER BY k.pos)::text[]"
        "  FROM pg_index i"
        "  JOIN pg_class ic ON ic.oid = i.indexrelid"
        "  JOIN pg_class t ON t.oid = i.indrelid"
        "  JOIN pg_namespace n ON n.oid = t.relnamespace"
        " WHERE n.nspname = %s"
        "   AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)",
        (pg.schema,),
    )
    tables = set(pg_tables(pg))
    return {
        str(r[0]): Index(str(r[1]), tuple(r[4]), bool(r[2]), _norm_where(r[3]))
        for r in rows
        if str(r[1]) in tables
    }


def pg_triggers(pg: Pg) -> set[tuple[str, str]]:
    rows = pg.rows(
        "SELECT c.relname, t.tgname FROM pg_trigger t"
        "  JOIN pg_class c ON c.oid = t.tgrelid"
        "  JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = %s AND NOT t.tgisinternal",
        (pg.schema,),
    )
    tables = set(pg_tables(pg))
    return {
        (str(r[0]), str(r[1]))
        for r in rows
        if str(r[0]) in tables
        and not SEARCH.search(str(r[1]))
        and (str(r[0]), str(r[1])) not in PG_ONLY_TRIGGERS
        and not any(pattern.search(str(r[1])) for pattern in PG_ONLY_TRIGGER_NAMES)
    }


# -- the comparisons ---------------------------------------------------------------------------


def test_both_stores_are_at_this_schema_with_the_same_meta(
    lite: sqlite3.Connection, pg: Pg
) -> None:
    """Both stores were made by this code, at its newest schema; the version checks read
    the same ``meta`` keys on both."""
    lite_meta = dict(lite.execute("SELECT key, value FROM meta").fetchall())
    pg_meta = dict(pg.rows("SELECT key, value FROM meta"))
    assert int(lite_meta["schema_version"]) == migrations.SCHEMA_VERSION
    assert sorted(pg_meta) == sorted(lite_meta)
    for key in ("schema_version", "min_reader_version", "min_writer_version"):
        assert pg_meta[key] == lite_meta[key], key


def test_the_same_tables(lite: sqlite3.Connection, pg: Pg) -> None:
    assert pg_tables(pg) == lite_tables(lite)


def test_the_same_columns_in_the_same_order(lite: sqlite3.Connection, pg: Pg) -> None:
    for table in lite_tables(lite):
        assert pg_columns(pg, table) == lite_columns(lite, table), table


def test_the_same_keys_and_references(lite: sqlite3.Connection, pg: Pg) -> None:
    for table in lite_tables(lite):
        assert pg_primary_key(pg, table) == lite_primary_key(lite, table), table
        assert pg_unique(pg, table) == lite_unique(lite, table), table
        assert pg_foreign_keys(pg, table) == lite_foreign_keys(lite, table), table
        assert pg_checks(pg, table) == lite_checks(lite, table), table


def test_the_same_indexes(lite: sqlite3.Connection, pg: Pg) -> None:
    assert pg_indexes(pg) == lite_indexes(lite)


def test_the_same_triggers(lite: sqlite3.Connection, pg: Pg) -> None:
    assert pg_triggers(pg) == lite_triggers(lite)


# -- the same behaviour ------------------------------------------------------------------------


def both(lite: sqlite3.Connection, pg: Pg, *statements: str) -> None:
    """Run plain SQL (no parameters) on both stores, each statement in its own transaction."""
    for sql in statements:
        lite.execute(sql)
        pg.conn.execute(sql)


def counts(rows: list[tuple[Any, ...]] | list[Any]) -> dict[str, int]:
    return {str(r[0]): int(r[1]) for r in rows}


def actual_counts(query: Any) -> dict[str, int]:
    """What row_counts should say, counted."""
    found = {}
    for table in COUNTED_TABLES:
        found[table] = int(query(f"SELECT count(*) FROM {table}")[0][0])
    for status in ("open", "in_progress", "blocked", "done", "cancelled"):
        found[f"tasks.{status}"] = int(
            query(f"SELECT count(*) FROM tasks WHERE status = '{status}'")[0][0]
        )
    return found


def test_the_triggers_keep_row_counts_alike(lite: sqlite3.Connection, pg: Pg) -> None:
    """The same inserts, updates and deletes move row_counts the same way on both, and
    leave it equal to the rows counted (tasks per status too)."""
    lite_before = counts(lite.execute("SELECT name, n FROM row_counts").fetchall())
    pg_before = counts(pg.rows("SELECT name, n FROM row_counts"))
    assert pg_before == lite_before  # a new store: its project's creation event
    assert pg_before == actual_counts(pg.rows)
    both(
        lite,
        pg,
        "INSERT INTO worktrees (path, created_at, updated_at) VALUES ('../w', 't', 't')",
        "INSERT INTO agents (name, created_at, updated_at)"
        " VALUES ('a1', 't', 't'), ('a2', 't', 't')",
        "INSERT INTO tasks (title, created_at, updated_at)"
        " VALUES ('a', 't', 't'), ('b', 't', 't'), ('c', 't', 't')",
        "INSERT INTO tasks (title, status, created_at, updated_at)"
        " VALUES ('d', 'blocked', 't', 't')",
        "UPDATE tasks SET status = 'done' WHERE title = 'a'",
        "UPDATE tasks SET status = 'open' WHERE title = 'b'",  # no change of status
        "UPDATE tasks SET title = 'c2' WHERE title = 'c'",  # not the status
        "UPDATE tasks SET status = 'in_progress' WHERE title IN ('c2', 'd')",
        "UPDATE tasks SET status = 'cancelled', body = 'x' WHERE title = 'c2'",
        "DELETE FROM tasks WHERE title = 'b'",
        "INSERT INTO sessions (agent_id, started_at, source, external_id)"
        " SELECT id, 't', 'test', name FROM agents",
        "INSERT INTO notes (kind, body, created_at)"
        " VALUES ('fact', 'n1', 't'), ('fact', 'n2', 't')",
        "DELETE FROM notes WHERE body = 'n1'",
        "INSERT INTO metrics (name, value, at) VALUES ('m', 1.5, 't'), ('m', 2, 't')",
        "INSERT INTO integrations (name, kind, created_at, updated_at) VALUES ('i', 'k', 't', 't')",
        "INSERT INTO events (at, actor, entity, kind)"
        " VALUES ('t', 'x', 'e', 'k1'), ('t', 'x', 'e', 'k2')",
        "DELETE FROM events WHERE kind = 'k1'",
        "INSERT INTO redactions (at, rule, entity, field, count) VALUES ('t', 'r', 'e', 'f', 2)",
        "DELETE FROM agents WHERE name = 'nobody'",
        "DELETE FROM integrations",
    )
    lite_after = counts(lite.execute("SELECT name, n FROM row_counts").fetchall())
    pg_after = counts(pg.rows("SELECT name, n FROM row_counts"))
    moved = {name: pg_after[name] - pg_before[name] for name in pg_after}
    assert moved == {name: lite_after[name] - lite_before[name] for name in lite_after}
    assert pg_after == actual_counts(pg.rows)
    assert lite_after == actual_counts(lambda sql: lite.execute(sql).fetchall())
    assert moved["tasks"] == 3 and moved["tasks.in_progress"] == 1 and moved["events"] == 1


def test_the_triggers_work_under_any_search_path(pg: Pg) -> None:
    """pg_restore and other tools write with an empty search_path: the row_counts triggers
    still find their table (the one in the counted table's schema)."""
    pg.conn.execute("SET search_path TO ''")
    pg.conn.execute(
        f"INSERT INTO \"{pg.schema}\".tasks (title, created_at, updated_at) VALUES ('a', 't', 't')"
    )
    pg.conn.execute(f'SET search_path TO "{pg.schema}"')
    assert counts(
        pg.rows("SELECT name, n FROM row_counts WHERE name LIKE 'tasks%%' AND n > 0")
    ) == {
        "tasks": 1,
        "tasks.open": 1,
    }


# Deeper than SQLite's JSON parser goes (2,000 levels): SQLite refuses, PostgreSQL accepts.
# The difference is the safe way round: nothing SQLite stores is refused by PostgreSQL.
DEEP = "[" * 3000 + "]" * 3000
JSON_CASES = [
    '{"a":1}', "[]", "1", '"s"', "null", "true", "", " ", "nope", "{", '{"a":1,}', ' {"a":1} ',
    '{"a":1}{"b":2}', '"\\ud800"', '"\\u0000"', "01", "1.", ".5", "-0", "1e5", "+1", '"a\tb"',
    "NaN", "{'a':1}", "{a:1}", '"\\x41"', '"\\u00e9"', '"é"', "1 2", "[" * 999 + "]" * 999,
    '{"a":1,"a":2}', "1e999999", "/* c */ 1",
]  # fmt: skip


def test_json_is_checked_alike(lite: sqlite3.Connection, pg: Pg) -> None:
    for text in JSON_CASES:
        expected = bool(lite.execute("SELECT json_valid(?)", (text,)).fetchone()[0])
        assert pg.rows("SELECT agentkeep_is_json(%s)", (text,))[0][0] is expected, text
    assert pg.rows("SELECT agentkeep_is_json(%s)", (DEEP,))[0][0] is True
    assert pg.rows("SELECT agentkeep_is_json(NULL)")[0][0] is None  # as json_valid(NULL)
    with pytest.raises(psycopg.errors.CheckViolation):
        pg.conn.execute("INSERT INTO notes (kind, data, created_at) VALUES ('fact', '{', 't')")


PAYLOADS = [
    '{"prompt": "fix the build", "cwd": "/x"}',
    '{"tool_input": "ls -la", "tool_response": "total 0", "error": "exit 2"}',
    '{"last_assistant_message": "done", "last-assistant-message": "also",'
    ' "compact_summary": "sum", "message": "note"}',
    '{"input-messages": "one"}',
    '{"other": "nothing searchable"}',
    '{"prompt": ""}',
    '{"prompt": "caf\\u00e9 \\ud83d\\ude00"}',
    "[1, 2]",
    '"just a string"',
    None,
]


def test_capture_search_text_is_the_same(lite: sqlite3.Connection, pg: Pg) -> None:
    insert = "INSERT INTO captures (at, source, event, payload, dedupe_key) VALUES ('t', 's', 'e', "
    for i, payload in enumerate(PAYLOADS):
        lite.execute(insert + "?, ?)", (payload, f"k{i}"))
        pg.conn.execute(insert + "%s, %s)", (payload, f"k{i}"))
    lite_text = lite.execute("SELECT dedupe_key, search_text FROM captures ORDER BY id").fetchall()
    pg_text = pg.rows("SELECT dedupe_key, search_text FROM captures ORDER BY id")
    assert pg_text == lite_text
    assert pg_text[0] == ("k0", "fix the build\n")


def test_capture_search_text_never_refuses_a_delivery(pg: Pg) -> None:
    """Payloads jsonb cannot hold (\\u0000, lone surrogates, huge numbers, deep nesting)
    are stored; their search text keeps what can be read."""
    hostile = {
        '{"prompt": "a\\u0000b"}': "ab\n",
        '{"prompt": "x \\\\u0000 y"}': "x \\u0000 y\n",  # an escaped backslash, then u0000
        '{"prompt": "lone \\ud800 surrogate"}': "lone  surrogate\n",
        '{"prompt": "big", "n": 1e999999}': None,
        '{"prompt": "deep", "d": ' + DEEP + "}": "deep\n",
    }
    for i, (payload, text) in enumerate(hostile.items()):
        pg.conn.execute(
            "INSERT INTO captures (at, source, event, payload, dedupe_key)"
            " VALUES ('t', 's', 'e', %s, %s)",
            (payload, f"h{i}"),
        )
        row = pg.rows("SELECT payload, search_text FROM captures WHERE dedupe_key = %s", (f"h{i}",))
        assert row == [(payload, text)], payload


def test_ids_can_be_copied_in_and_the_identity_moved_past_them(pg: Pg) -> None:
    """`db copy` inserts the ids it copies (identities are BY DEFAULT), then moves each
    identity past them; the next insert takes the next id."""
    pg.conn.execute(
        "INSERT INTO events (seq, at, actor, entity, kind) VALUES (41, 't', 'x', 'e', 'k')"
    )
    pg.conn.execute("SELECT setval(pg_get_serial_sequence('events', 'seq'), max(seq)) FROM events")
    row = pg.rows(
        "INSERT INTO events (at, actor, entity, kind) VALUES ('t', 'x', 'e', 'k') RETURNING seq"
    )
    assert row == [(42,)]
    with pytest.raises(psycopg.errors.GeneratedAlways):
        pg.conn.execute(
            "INSERT INTO captures (at, source, event, dedupe_key, search_text)"
            " VALUES ('t', 's', 'e', 'k', 'copied')"
        )


def test_row_counts_are_exact_after_big_transactions_and_savepoints(pg: Pg) -> None:
    """The counters a transaction keeps reach row_counts at COMMIT, once; a rolled-back
    savepoint takes its part back, a rolled-back transaction all of it."""
    conn = pg.conn
    before = counts(pg.rows("SELECT name, n FROM row_counts"))
    with conn.transaction():
        conn.cursor().executemany(
            "INSERT INTO events (at, actor, entity, kind) VALUES ('t', 'x', 'e', %s)",
            [(f"k{i % 3}",) for i in range(3000)],
        )
        conn.execute("DELETE FROM events WHERE kind = 'k0'")
        conn.execute("INSERT INTO tasks (title, created_at, updated_at) VALUES ('a', 't', 't')")
        with pytest.raises(psycopg.errors.CheckViolation), conn.transaction():
            conn.execute("UPDATE tasks SET status = 'done'")
            conn.execute("INSERT INTO tasks (title, created_at, updated_at) VALUES ('b', 't', 't')")
            conn.execute("INSERT INTO events (at, actor, entity, kind) VALUES ('t', 'x', 'e', 'k')")
            conn.execute("INSERT INTO notes (kind, created_at) VALUES ('nonsense', 't')")
    with pytest.raises(psycopg.errors.CheckViolation), conn.transaction():
        conn.execute("INSERT INTO notes (kind, created_at) VALUES ('fact', 't')")
        conn.execute("INSERT INTO notes (kind, created_at) VALUES ('nonsense', 't')")
    with conn.transaction():
        conn.execute("UPDATE tasks SET status = 'blocked'")
        conn.execute("UPDATE tasks SET status = 'done'")
        conn.execute("INSERT INTO notes (kind, created_at) VALUES ('fact', 't')")
    kept = counts(pg.rows("SELECT name, n FROM row_counts"))
    assert kept == actual_counts(pg.rows)
    moved = {name: n - before[name] for name, n in kept.items() if n != before[name]}
    assert moved == {"events": 2000, "tasks": 1, "tasks.done": 1, "notes": 1}


def test_two_stores_written_in_one_transaction_keep_their_own_counts(
    pg: Pg, tmp_path: Path
) -> None:
    """Stores are schemas of one database; a transaction's counters are per table, so
    rows written to two stores at once are counted in each store's own row_counts."""
    other = f"t_{uuid.uuid4().hex[:12]}"
    root = tmp_path / "other"
    root.mkdir()
    try:
        agentkeep.init_store(root, url=f"{PG_DSN}{'&' if '?' in PG_DSN else '?'}schema={other}")
        before = {
            schema: counts(pg.rows(f'SELECT name, n FROM "{schema}".row_counts'))
            for schema in (pg.schema, other)
        }
        with pg.conn.transaction():
            for schema, n in ((pg.schema, 3), (other, 5)):
                pg.conn.cursor().executemany(
                    f'INSERT INTO "{schema}".events (at, actor, entity, kind)'
                    " VALUES ('t', 'x', 'e', 'k')",
                    [()] * n,
                )
        for schema, n in ((pg.schema, 3), (other, 5)):
            after = counts(pg.rows(f'SELECT name, n FROM "{schema}".row_counts'))
            assert after["events"] - before[schema]["events"] == n, schema
            assert after["events"] == pg.rows(f'SELECT count(*) FROM "{schema}".events')[0][0]
    finally:
        pg.conn.execute(f'DROP SCHEMA IF EXISTS "{other}" CASCADE')
