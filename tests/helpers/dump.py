"""Every byte of text a store holds, for tests that assert a secret or a path is nowhere in
it: SQLite's ``iterdump()`` (every table, the FTS index's own tables included), or on
PostgreSQL every row of every table of the store's schema as text (the search index's
``tsvector`` columns included)."""

from __future__ import annotations

import agentkeep


def store_dump(store: agentkeep.Store) -> str:
    conn = store._conn
    raw = conn.raw
    if hasattr(raw, "iterdump"):
        return "\n".join(raw.iterdump())
    schema = conn.schema  # type: ignore[attr-defined]
    tables = raw.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = %s"
        " AND table_type = 'BASE TABLE' ORDER BY table_name",
        (schema,),
    ).fetchall()
    assert tables, f"no tables in schema {schema}"
    lines: list[str] = []
    for (table,) in tables:
        rows = raw.execute(f'SELECT t::text FROM "{schema}"."{table}" t').fetchall()
        lines.extend(f"{table}: {row}" for (row,) in rows)
    return "\n".join(lines)
