"""Full-text search on SQLite: FTS5 (:class:`agentkeep.backends.base.Search`).

The indexes. Each indexed table ``<table>`` has an FTS5 table ``<table>_fts`` with external
content (``content="<table>"``, which is how Datasette finds it), tokenized by ``unicode61
remove_diacritics 2`` (case and diacritics ignored) with 2- and 3-character prefix indexes:
``messages_fts`` (text), ``notes_fts`` (body), ``tasks_fts`` (title, body), ``captures_fts``
(the generated ``search_text``), ``artifacts_fts`` (name). See ``docs/schema.md``. Triggers
keep each index in step with its rows in the same transaction — except transcript messages,
which an import stores by the hundred thousand: they are indexed *after* they are stored
(:meth:`SQLiteSearch.catch_up`, schema 8). ``search_index.indexed_to`` is the watermark:
every message at or below it is indexed (the triggers keep that part in step), none above it
is. :meth:`SQLiteSearch.catch_up` indexes the rows above it by ``INSERT … SELECT`` (a sixth
of what the same rows cost fed one per trigger call) and moves it; the search service calls
it, in transactions of ``CATCH_UP_ROWS`` (services/search.py), before each search of a
writable store, and an import at the end of each run (``import --watch``: each pass). A
search that cannot write first (a read-only store, or inside a caller's transaction) ranks
the rows above the watermark in a temporary index of their own (:meth:`SQLiteSearch.rank`),
so it never misses a message; their scores then come from that small index (they compare
only roughly with the others').

Queries (:func:`fts_query`). Every term is one quoted FTS5 string, so FTS5's operators
(``AND``, ``NEAR``, ``(``, ``:``, ``^``…) inside it are plain words, no input is a syntax
error, and FTS5 tokenizes it exactly like the indexed text; a prefix term gets a ``*``
after its closing quote. The terms are AND-ed.

Ranking and its cost. FTS5's ``ORDER BY rank`` computes bm25 for *every* matching row, so
one very common word or a 2–3 letter prefix — what a search box sends first — costs
hundreds of milliseconds on 200k messages. FTS5 streams matches in rowid order at almost
no cost, though, so each table's query ranks only its **newest** :data:`RANK_WINDOW`
matches (``ORDER BY rowid DESC LIMIT RANK_WINDOW`` inside, ``ORDER BY bm25`` outside).
A term with fewer matches than that — nearly every specific word — is ranked exactly as
FTS5 would; a broader one is ranked among its newest ``RANK_WINDOW`` matches, which is
what a search over an agent's history wants anyway. Snippets are computed only for the
final hits, in a second statement (:meth:`SQLiteSearch.snippets`). A ``session`` filter
narrows FTS5 to the rowid range of that session's messages (or captures). ``since`` is
checked on the joined row, and the index on ``at`` of messages and captures also narrows
FTS5 to the rowids of the window.

Scores are ``-bm25`` (higher is better; each table's score comes from its own index, so
they compare only roughly across tables). A task's title weighs twice its body.
"""

from __future__ import annotations

from collections.abc import Sequence

from agentkeep.backends.base import Connection, Indexed, Row, SearchTerm
from agentkeep.backends.indexed import row_filters
from agentkeep.backends.sqlite.migrate import MIGRATOR

RANK_WINDOW = 5000  # each table ranks (bm25) only its newest RANK_WINDOW matches
# Tables indexed after their rows are stored: the watermark's name in ``search_index``.
DEFERRED = ("messages",)
# The unindexed rows' own index: a temporary table (per connection), found by its bare name.
_TAIL = "{table}_tail_fts"

# The bm25() call of each indexed table: column weights in the FTS table's column order.
_RANK = {
    "messages": "bm25(messages_fts)",
    "notes": "bm25(notes_fts)",
    "tasks": "bm25(tasks_fts, 2.0, 1.0)",  # title, body
    "captures": "bm25(captures_fts)",
    "artifacts": "bm25(artifacts_fts)",
    "doc_chunks": "bm25(doc_chunks_fts, 2.0, 1.0)",  # heading, text
}
# Tables whose rows are found by a rowid range for a session or a time window (an index
# on session_id and on at makes that range cheap to find).
_SPANNED = ("messages", "captures")


def fts_query(terms: Sequence[SearchTerm]) -> str | None:
    """The FTS5 MATCH expression for the parsed terms of a query, or None for none."""
    quoted = [
        '"' + term.text.replace('"', '""') + '"' + ("*" if term.prefix else "") for term in terms
    ]
    return " ".join(quoted) if quoted else None


class SQLiteSearch:
    def behind(self, conn: Connection) -> bool:
        """Whether a table indexed after capture has rows its index does not hold yet (two
        lookups of one row each)."""
        return any(_unindexed(conn, table) is not None for table in DEFERRED)

    def catch_up(self, conn: Connection, *, rows: int | None = None) -> int:
        """Index the rows stored above the watermark — the next ``rows`` of them, or all —
        and move it past them; call inside a write transaction (the watermark is read
        under the write lock, so two catch-ups never index a row twice). Returns how many
        rows were indexed."""
        done = 0
        for table in DEFERRED:
            span = _unindexed(conn, table)
            if span is None:
                continue
            low, high = span
            if rows is not None:
                last = conn.execute(
                    f"SELECT max(id) FROM (SELECT id FROM {table} WHERE id > ?"
                    " ORDER BY id LIMIT ?)",
                    (low, rows),
                ).fetchone()
                high = min(high, int(last[0]))
            fts, column = f"{table}_fts", _COLUMN[table]
            done += conn.execute(
                f"INSERT INTO {fts} (rowid, {column}) SELECT id, {column} FROM {table}"
                f" WHERE id > ? AND id <= ? AND {column} IS NOT NULL",
                (low, high),
            ).rowcount
            conn.execute("UPDATE search_index SET indexed_to = ? WHERE name = ?", (high, table))
        return done

    def rank(
        self,
        conn: Connection,
        source: Indexed,
        terms: Sequence[SearchTerm],
        *,
        session: int | None,
        since: str | None,
        limit: int,
    ) -> list[tuple[int, float]]:
        """(rowid, -bm25) of the best ``limit`` among the newest RANK_WINDOW matches (and,
        when the index is behind, among the unindexed rows: see the module doc)."""
        fts = _fts(source)
        expression = fts_query(terms)
        if expression is None:
            return []
        found = self._rank(conn, source, fts, expression, session, since, limit)
        tail = _tail(conn, source.table)
        if tail is not None:
            found += self._rank(conn, source, tail, expression, session, since, limit)
            # A catch-up elsewhere may have indexed a row since: keep it once.
            found = sorted(dict(found).items(), key=lambda hit: (-hit[1], -hit[0]))[:limit]
        return found

    def _rank(
        self,
        conn: Connection,
        source: Indexed,
        fts: str,
        expression: str,
        session: int | None,
        since: str | None,
        limit: int,
    ) -> list[tuple[int, float]]:
        rank = _RANK[source.table].replace(f"({_fts(source)}", f"({fts}")
        join = ""
        if session is not None or since is not None:
            # CROSS JOIN keeps FTS5 the outer loop: driven from the other table, each row
            # would open its own FTS5 cursor, and bm25 recounts a common term every time.
            join = f" CROSS JOIN {source.table} t ON t.id = f.rowid"
        filters = row_filters(
            conn, source, session, since, key="f.rowid", span=source.table in _SPANNED
        )
        if filters is None:
            return []
        where, params = [f"{fts} MATCH ?", *filters[0]], [expression, *filters[1]]
        sql = (
            f"SELECT rowid, r FROM (SELECT f.rowid AS rowid, {rank} AS r"
            f" FROM {fts} f{join} WHERE {' AND '.join(where)}"
            f" ORDER BY f.rowid DESC LIMIT {RANK_WINDOW}) ORDER BY r, rowid DESC LIMIT {limit}"
        )
        return [(int(row[0]), -float(row[1])) for row in conn.execute(sql, params).fetchall()]

    def snippets(
        self,
        conn: Connection,
        source: Indexed,
        terms: Sequence[SearchTerm],
        ids: Sequence[int],
        *,
        columns: Sequence[str],
        marks: tuple[str, str],
        ellipsis: str,
        tokens: int,
    ) -> list[Row]:
        expression = fts_query(terms)
        if expression is None or not ids:
            return []

        def from_index(fts: str, wanted: Sequence[int], where: str = "") -> list[Row]:
            snippet = f"snippet({fts}, -1, ?, ?, ?, {int(tokens)})"
            marks_sql = ", ".join("?" for _ in wanted)
            sql = (
                f"SELECT f.rowid, {snippet}, {', '.join(columns)}"
                f" FROM {fts} f JOIN {source.table} t ON t.id = f.rowid"
                f" WHERE {fts} MATCH ? AND f.rowid IN ({marks_sql}){where}"
            )
            found: list[Row] = conn.execute(sql, [*marks, ellipsis, expression, *wanted]).fetchall()
            return found

        rows = from_index(_fts(source), ids)
        if len(rows) < len(ids) and source.table in DEFERRED:
            # Rows rank() found in the unindexed tail (or changed since: then nowhere).
            tail = _TAIL.format(table=source.table)
            if conn.execute("SELECT 1 FROM temp.sqlite_master WHERE name = ?", (tail,)).fetchone():
                missing = sorted(set(ids) - {int(row[0]) for row in rows})
                # only rows still above the watermark: an older search's index is stale
                above = (
                    " AND f.rowid > (SELECT indexed_to FROM search_index"
                    f" WHERE name = '{source.table}')"
                )
                rows += from_index(tail, missing, above)
        return rows


_COLUMN = {"messages": "text"}  # the indexed column of each table in DEFERRED


def _unindexed(conn: Connection, table: str) -> tuple[int, int] | None:
    """(watermark, newest id) of ``table`` when rows above the watermark exist. A store of
    an older schema read before it is migrated (a read-only open) has no watermark: its
    triggers kept every row indexed."""
    if not MIGRATOR.table_exists(conn, "search_index"):
        return None
    row = conn.execute(
        f"SELECT indexed_to, (SELECT max(id) FROM {table}) FROM search_index WHERE name = ?",
        (table,),
    ).fetchone()
    if row is None or row[1] is None or int(row[1]) <= int(row[0]):
        return None
    return int(row[0]), int(row[1])


def _tail(conn: Connection, table: str) -> str | None:
    """The temporary index of ``table``'s rows above the watermark, filled from them now;
    None when the index is complete. A temporary table lives in the connection's own
    temporary database, so a read-only store can hold one. An import, a bundle import and
    a writable search index what they store, so only a search that cannot write while
    another process imports (or after a crash mid-import) meets such rows; it costs about
    what indexing them costs (0.25–0.65 s per 20 MB of transcripts). A read-only
    connection keeps its temporary index while nothing was committed to the store since
    (``PRAGMA data_version``) and the rows above the watermark are the same; any other
    search fills it again."""
    if table not in DEFERRED:
        return None
    tail = _TAIL.format(table=table)
    span = _unindexed(conn, table)
    if span is None:
        return None  # snippets() reads an earlier search's index only above the watermark
    state = f"{tail}_state"
    version = int(conn.execute("PRAGMA data_version").fetchone()[0])
    if conn.read_only:  # its own writes would not move data_version: only then reused
        conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS {state} (low, high, version)")
        kept = conn.execute(f"SELECT low, high, version FROM temp.{state}").fetchone()
        if kept is not None and tuple(kept) == (*span, version):
            return tail
        conn.execute(f"DELETE FROM temp.{state}")
    column = _COLUMN[table]
    conn.execute(
        f"CREATE VIRTUAL TABLE IF NOT EXISTS temp.{tail} USING fts5 ({column},"
        " prefix='2 3', tokenize='unicode61 remove_diacritics 2')"
    )
    conn.execute(f"DELETE FROM {tail}")
    conn.execute(
        f"INSERT INTO {tail} (rowid, {column}) SELECT id, {column} FROM {table}"
        f" WHERE id > ? AND {column} IS NOT NULL",
        (span[0],),
    )
    if conn.read_only:
        conn.execute(f"INSERT INTO temp.{state} VALUES (?, ?, ?)", (*span, version))
    return tail


def _fts(source: Indexed) -> str:
    if source.table not in _RANK:
        raise ValueError(f"{source.table} has no full-text index")
    return f"{source.table}_fts"


SEARCH = SQLiteSearch()
