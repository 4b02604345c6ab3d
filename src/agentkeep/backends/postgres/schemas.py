"""Whole store schemas moved on the server: what ``agentkeep restore --force`` does to a
store on PostgreSQL (docs/team.md "Backups and restore").

A restore copies the backup into a *staging* schema beside the store's
(:func:`staging_name`), then :func:`swap_in` renames, in one transaction under the store's
writer lock, the store's schema aside (``<schema>_replaced_<time>``) and the staging schema
to the store's name. PostgreSQL's DDL is transactional, so a crash leaves either the old
schema in place (and the staging schema, which the next restore of the same backup resumes)
or the new one: never a store half copied under the store's name. Nothing is dropped.

Names, not OIDs, tie a session to its store: the connections set ``search_path`` to the
schema's name and never prepare statements, so another process's next statement after the
swap reads the restored store. The swap first locks every table of the old schema
(``ACCESS EXCLUSIVE``): it waits for the transactions reading them to end, and statements
that arrive meanwhile wait and then resolve the name again. The functions created with
``SET search_path FROM CURRENT`` captured a schema's *name*; the swap sets each schema's
functions to its new name, so the moved-aside store's triggers keep counting its own rows.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import psycopg

from agentkeep.backends.postgres.connection import connect, translate_error
from agentkeep.backends.postgres.url import _join, split_url

_MAX_NAME = 63  # PostgreSQL's identifier limit


def with_schema(url: str, schema: str) -> str:
    """``url`` naming the store schema ``schema`` instead of its own."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "schema"]
    query.append(("schema", schema))
    return _join(parts.scheme, parts.netloc, parts.path, urlencode(query))


def _suffixed(schema: str, suffix: str) -> str:
    return schema[: _MAX_NAME - len(suffix)] + suffix


def staging_name(schema: str, backup_digest: str) -> str:
    """The staging schema a restore of the backup whose database hashes to
    ``backup_digest`` copies into: the same name every time, so a rerun resumes it."""
    return _suffixed(schema, f"_restoring_{backup_digest[:12]}")


def replaced_name(schema: str, stamp: str) -> str:
    return _suffixed(schema, f"_replaced_{stamp}")


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def schema_exists(url: str) -> bool:
    """Whether the store schema ``url`` names exists (holding a store or not)."""
    conn = connect(url)
    try:
        row = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = ?", (conn.schema,))
        return row.fetchone() is not None
    finally:
        conn.close()


def swap_in(url: str, staging: str, aside: str) -> str | None:
    """Put the schema ``staging`` in the place of the store ``url`` names, moving that
    one (if any) to ``aside``; one transaction under the store's writer lock. Returns
    the moved-aside schema's name (None when there was none)."""
    _, schema = split_url(url)
    conn = connect(url)
    try:
        conn.lock_writers()  # no write transaction of the store is in flight
        try:
            raw = conn.raw
            try:
                with raw.transaction():
                    raw.execute("SET LOCAL lock_timeout = 0")  # wait out readers
                    exists = raw.execute(
                        "SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)
                    ).fetchone()
                    tables = raw.execute(
                        "SELECT quote_ident(tablename) FROM pg_tables WHERE schemaname = %s"
                        " ORDER BY tablename",
                        (schema,),
                    ).fetchall()
                    if tables:
                        raw.execute(
                            f"LOCK TABLE {', '.join(f'{_ident(schema)}.{t[0]}' for t in tables)}"
                            " IN ACCESS EXCLUSIVE MODE"
                        )
                    if exists:
                        raw.execute(f"ALTER SCHEMA {_ident(schema)} RENAME TO {_ident(aside)}")
                        _retarget_functions(raw, aside)
                    raw.execute(f"ALTER SCHEMA {_ident(staging)} RENAME TO {_ident(schema)}")
                    _retarget_functions(raw, schema)
            except psycopg.Error as exc:
                raise translate_error(exc, url) from exc
        finally:
            conn.unlock_writers()
    finally:
        conn.close()
    return aside if exists else None


def _retarget_functions(raw: psycopg.Connection[Any], schema: str) -> None:
    """Every function of ``schema`` that sets its own search_path finds ``schema``."""
    rows = raw.execute(
        "SELECT p.oid::regprocedure::text FROM pg_proc p"
        " JOIN pg_namespace n ON n.oid = p.pronamespace"
        " WHERE n.nspname = %s AND EXISTS"
        " (SELECT 1 FROM unnest(p.proconfig) c WHERE c LIKE 'search\\_path=%%')",
        (schema,),
    ).fetchall()
    for (signature,) in rows:
        raw.execute(f"ALTER FUNCTION {signature} SET search_path = {_ident(schema)}")
