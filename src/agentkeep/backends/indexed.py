"""A table whose text a backend keeps a full-text index of (the search service declares
them; :class:`agentkeep.backends.base.Search` takes them). Apart from
:mod:`agentkeep.backends.base`, which every command imports, so that building the dataclass
is left to the commands that search; ``agentkeep.backends.base.Indexed`` still names it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agentkeep.backends.base import Connection


@dataclass(frozen=True)
class Indexed:
    """A table whose text the backend keeps a full-text index of. Which columns are
    indexed, and their weights, belong to the schema (``docs/schema.md``)."""

    table: str
    at: str  # the time column a ``since`` filter compares with
    has_session: bool  # rows carry ``session_id`` (a ``session`` filter applies)


def row_filters(
    conn: Connection,
    source: Indexed,
    session: int | None,
    since: str | None,
    *,
    key: str,
    span: bool,
    bound: str = "id",
) -> tuple[list[str], list[Any]] | None:
    """The WHERE terms and parameters of a search's ``session`` and ``since`` filters, over
    the index's row key ``key`` and the source table aliased ``t``; None when no row can
    match. With ``span`` (messages and captures), the key is first limited to the id range
    :func:`id_span` finds, so the index seeks to it instead of walking every newer match."""
    where: list[str] = []
    params: list[Any] = []
    if span and (session is not None or since is not None):
        found = id_span(conn, source, session, since, bound=bound)
        if found is None:
            return None
        where.append(f"{key} BETWEEN ? AND ?")
        params += list(found)
    if session is not None:
        where.append("t.session_id = ?")
        params.append(session)
    if since is not None:
        where.append(f"t.{source.at} >= ?")
        params.append(since)
    return where, params


def id_span(
    conn: Connection, source: Indexed, session: int | None, since: str | None, *, bound: str
) -> tuple[int, int] | None:
    """An id range holding every row of ``session`` or made at or after ``since``; None:
    there is none. A session's rows lie in one range (usually contiguous). For ``since``
    the range is found by the index on ``at`` (it holds every row of the window even when
    rows were not stored in time order, as a spooled hook delivery may be). ``bound`` is the
    expression minimised and maximised (PostgreSQL's is ``id + 0``: its min/max shortcut
    would walk the primary key from one end until a row passes the filter)."""
    bounds = f"SELECT min({bound}), max({bound}) FROM {source.table}"
    if session is not None:
        row = conn.execute(f"{bounds} WHERE session_id = ?", (session,)).fetchone()
    else:
        row = conn.execute(f"{bounds} WHERE at >= ?", (since,)).fetchone()
    if row is None or row[0] is None:
        return None
    return int(row[0]), int(row[1])
