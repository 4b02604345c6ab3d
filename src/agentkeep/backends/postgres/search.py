"""Full-text search on PostgreSQL: tsvector side tables and GIN
(:class:`agentkeep.backends.base.Search`).

The index (``schema/0008_search.sql``). Each indexed table ``<table>`` has a side table
``<table>_fts (id, words tsvector)`` with a GIN index, kept by a trigger on ``<table>`` in the
row's own transaction: ``messages_fts`` (text), ``notes_fts`` (body), ``tasks_fts`` (title
with weight A, body with weight B), ``captures_fts`` (the generated ``search_text``),
``artifacts_fts`` (name). Nothing is indexed after it is stored, so
:meth:`PostgresSearch.behind` is always False and :meth:`PostgresSearch.catch_up` does
nothing. The text is folded by the SQL function
``agentkeep_search_words`` (NFD, combining marks removed, lower case, every run of
characters that are not letters or digits a space) before ``to_tsvector('simple', …)``, so
PostgreSQL's lexemes are the project's tokens; a word longer than 2,047 bytes is not
indexed (a lexeme cannot be longer), and a text whose vector would pass 1 MB is indexed
from its beginning as far as it fits (the SQL file says more).

Queries. Each term goes through ``agentkeep_search_term`` — the same folding, then
``phraseto_tsquery('simple', …)``: its tokens in order, ``<->`` between them, the last one
``:*`` for a prefix. The database builds every lexeme, so nothing typed is tsquery syntax
(no input is an error), and documents and queries are folded by the same function. The
terms are AND-ed. A term of a task must hold within its title or within its body (FTS5
never matches a phrase across columns): each lexeme is restricted to weight A, or to B.
The query reaches the ranking statement as a literal, not a parameter, so PostgreSQL plans
each search for its own words (a prepared statement's generic plan would guess one
selectivity for every query, and a common word planned as a rare one costs a scan of
every match).

Ranking and its cost. ``ts_rank_cd`` reads the whole vector of every row it scores, so one
very common word or a 2–3 letter prefix would cost a scan of most of the table. As on
SQLite, each table ranks only its **newest** :data:`RANK_WINDOW` matches (``ORDER BY id
DESC LIMIT RANK_WINDOW`` inside, best score outside): PostgreSQL finds a common word's
newest matches by walking the side table's primary key backwards, checking each row, a
rarer word's through the GIN index (the planner chooses by the lexeme statistics ANALYZE
keeps: autovacuum keeps them current). Either way the cost is about the rows read: the
walk reads ``RANK_WINDOW`` ÷ (the share of rows matching), the GIN path every match. At
5,000, SQLite's window, a common word cost PostgreSQL 1.5–2.6× what it costs FTS5, whose
doclists hold no vectors; at 1,000 it is on a par (bench/README.md). A term with fewer
matches than the window is ranked exactly; a broader one among its newest
``RANK_WINDOW`` matches, which is what a search box over an agent's history wants first.
The score is ``ts_rank_cd`` (cover density: how often, and how close together, the terms
occur) with normalisation 1 (divided by 1 + the log of the text's length in words), title
weight 1.0 and body 0.5 for tasks; higher is better, ties go to the newer row. Not
``ts_rank``: with the same normalisation it puts "a flaky thing" above a nine-word text
saying flaky three times (bm25 does not). A ``session`` filter narrows the walk to the id
range of that session's messages (captures), ``since`` likewise through the index on
``at``.

Snippets (:meth:`PostgresSearch.snippets`) are cut here, from the row's text, rather than
by ``ts_headline``: it parses the original text with the default parser (an e-mail address
is one word to it) and does not fold diacritics, so it would miss matches the index found.
The text is folded character by character for matching (case, diacritics), the
best-matching window of about ``tokens`` words is chosen as FTS5's ``snippet()`` chooses it
(most distinct terms, then most matches), and each match is put between the marks. A
long text is matched 64k characters at a time, up to the first part holding a match (the
window is the best one there).
"""

from __future__ import annotations

import bisect
import re
import threading
import unicodedata
from collections.abc import Iterator, Sequence
from typing import Any

from agentkeep.backends.base import Connection, Indexed, Row, SearchTerm
from agentkeep.backends.indexed import row_filters

# Each table ranks (ts_rank_cd) only its newest RANK_WINDOW matches: 1,000, where SQLite
# ranks 5,000 — each row read costs PostgreSQL more (bench/README.md, issue 12).
RANK_WINDOW = 1000

# The text each indexed table is searched by, as SQL over the row ``t`` (a task: its title
# and its body, each a column of the snippet).
_TEXT = {
    "messages": ("t.text",),
    "notes": ("t.body",),
    "tasks": ("t.title", "t.body"),
    "captures": ("t.search_text",),
    "artifacts": ("t.name",),
    "doc_chunks": ("t.heading", "t.text"),
}
# Tables whose rows are found by an id range for a session or a time window (an index on
# session_id and on at makes that range cheap to find).
_SPANNED = ("messages", "captures")
# ts_rank_cd's weights for D, C, B, A: a task's title (A) weighs twice its body (B).
_WEIGHTS = "'{0.1, 0.2, 0.5, 1.0}'"
# What tsquery text from agentkeep_search_term may hold (lexemes are letters and digits):
# anything else is refused rather than put in a literal.
_SAFE_QUERY = re.compile(r"[^'\\%?;]*(?:'[^'\\%?;]*'[^'\\%?;]*)*")
_LEXEME = re.compile(r"'((?:[^']|'')*)'(:\*)?")


class _Hit:
    """A snippet row, ``(id, snippet, *columns)``, with the :class:`Row` protocol."""

    __slots__ = ("_values",)
    _KEYS = ("id", "snippet")

    def __init__(self, values: tuple[Any, ...]) -> None:
        self._values = values

    def __getitem__(self, key: Any, /) -> Any:
        if isinstance(key, str):
            return self._values[self._KEYS.index(key)]
        return self._values[key]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def keys(self) -> list[str]:
        return [*self._KEYS, *(f"column{i}" for i in range(len(self._values) - 2))]


class PostgresSearch:
    def behind(self, conn: Connection) -> bool:
        """Never: the triggers index every row in its own transaction."""
        return False

    def catch_up(self, conn: Connection, *, rows: int | None = None) -> int:
        return 0

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
        """(id, ts_rank_cd) of the best ``limit`` among the newest RANK_WINDOW matches."""
        fts = _fts(source)
        query = ts_query(conn, terms, columns=len(_TEXT[source.table]))
        if query is None:
            return []
        join = ""
        if session is not None or since is not None:
            join = f" JOIN {source.table} t ON t.id = f.id"
        filters = row_filters(
            conn, source, session, since, key="f.id", span=source.table in _SPANNED, bound="id + 0"
        )
        if filters is None:
            return []
        where, params = filters
        where.insert(0, f"f.words @@ {query}")
        # The score is computed where the row is read, so a sort of the window (a rare
        # word's matches come from the GIN index in table order) holds (id, score) pairs,
        # not the vectors: those would spill to disk.
        sql = (
            f"SELECT id, r FROM (SELECT f.id, ts_rank_cd({_WEIGHTS}, f.words, {query}, 1) AS r"
            f" FROM {fts} f{join} WHERE {' AND '.join(where)}"
            f" ORDER BY f.id DESC LIMIT {RANK_WINDOW}) w ORDER BY r DESC, id DESC"
            f" LIMIT {int(limit)}"
        )
        return [(int(row[0]), float(row[1])) for row in conn.execute(sql, params).fetchall()]

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
        fts = _fts(source)
        texts = _TEXT[source.table]
        query = ts_query(conn, terms, columns=len(texts))
        if query is None or not ids:
            return []
        sql = (
            f"SELECT t.id, {', '.join(texts)}, {', '.join(columns)}"
            f" FROM {source.table} t JOIN {fts} f ON f.id = t.id"
            f" WHERE f.words @@ {query} AND t.id IN ({', '.join('?' for _ in ids)})"
        )
        patterns = [_term_pattern(term) for term in terms]
        found: list[Row] = []
        for row in conn.execute(sql, list(ids)).fetchall():
            values = tuple(row)
            cut = snippet(values[1 : 1 + len(texts)], patterns, marks, ellipsis, tokens)
            found.append(_Hit((values[0], cut, *values[1 + len(texts) :])))
        return found


def ts_query(conn: Connection, terms: Sequence[SearchTerm], *, columns: int = 1) -> str | None:
    """The tsquery of the parsed terms as an SQL literal (``'…'::tsquery``), or None when
    they can match nothing (no term, or a term with no indexable token). ``columns``: 2
    for a table indexed as two weighted columns (a task), whose phrases must not span
    them."""
    texts = _term_queries(conn, terms)
    if texts is None:
        return None
    parts: list[str] = []
    for text in texts:
        if columns > 1 and "<->" in text:
            weighted = [_weighted(text, weight) for weight in "AB"[:columns]]
            text = " | ".join(f"( {phrase} )" for phrase in weighted)
        parts.append(f"( {text} )")
    query = " & ".join(parts)
    if not _SAFE_QUERY.fullmatch(query):  # lexemes are letters and digits: never happens
        return None
    return "'" + query.replace("'", "''") + "'::tsquery"


def _term_queries(conn: Connection, terms: Sequence[SearchTerm]) -> tuple[str, ...] | None:
    """Each term's tsquery text, as the database folds it (None: one matches nothing);
    remembered, so the kinds of one search, and a search box asking again, ask once."""
    if not terms:
        return None
    key = (conn_key(conn), tuple(terms))
    with _QUERIES_LOCK:
        if key in _QUERIES:
            return _QUERIES[key]
    # Booleans reach PostgreSQL as 0/1 (connection.py): cast back.
    calls = ", ".join("agentkeep_search_term(?, CAST(? AS boolean))" for _ in terms)
    params: list[Any] = []
    for term in terms:
        params += [" ".join(term.tokens), term.prefix]
    row = conn.execute(f"SELECT {calls}", params).fetchone()
    texts = None if any(text is None for text in row) else tuple(str(text) for text in row)
    with _QUERIES_LOCK:
        if len(_QUERIES) >= 256:
            _QUERIES.pop(next(iter(_QUERIES)))
        _QUERIES[key] = texts
    return texts


# Built term queries, by store and terms (the folding is the database's, so the store is
# part of the key).
_QUERIES: dict[tuple[str, tuple[SearchTerm, ...]], tuple[str, ...] | None] = {}
_QUERIES_LOCK = threading.Lock()


def conn_key(conn: Connection) -> str:
    return str(getattr(conn, "url", conn.path))


def _weighted(phrase: str, weight: str) -> str:
    """The tsquery text ``phrase`` with each lexeme restricted to ``weight``."""
    return _LEXEME.sub(lambda m: f"'{m.group(1)}':{'*' if m.group(2) else ''}{weight}", phrase)


def _fts(source: Indexed) -> str:
    if source.table not in _TEXT:
        raise ValueError(f"{source.table} has no full-text index")
    return f"{source.table}_fts"


# -- snippets -------------------------------------------------------------------------------

_TOKEN = re.compile(r"[^\W_]+")
_MATCHES_LOOKED_AT = 500  # a snippet's window is chosen among the first 500 matches
# A long text is matched a part at a time, up to the first part holding a match: a 1 MB
# text is folded and scanned whole only when its matches are at its end (~50-150 ms).
_PART = 65536
_OVERLAP = 1024  # parts overlap: a match across their border is whole in the next one


def _fold_char(char: str) -> str:
    """One character as the index folds it (decomposed, marks dropped, lower case), or its
    lower case when that is not one character (the folded text keeps the original's
    offsets)."""
    folded = "".join(c for c in unicodedata.normalize("NFD", char) if not unicodedata.combining(c))
    folded = folded.lower()
    if len(folded) == 1:
        return folded
    lower = char.lower()
    return lower if len(lower) == 1 else char


def fold(text: str) -> str:
    """``text`` folded for matching, one character for each of ``text``'s."""
    if text.isascii():
        return text.lower()
    return text.translate({ord(c): _fold_char(c) for c in set(text)})


def _term_pattern(term: SearchTerm) -> re.Pattern[str]:
    """A term's tokens in order as whole words of folded text (the last one any word it
    begins, for a prefix: marked whole, as FTS5 marks it)."""
    body = r"[\W_]+".join(re.escape(fold(token)) for token in term.tokens)
    return re.compile(r"(?<![^\W_])" + body + (r"[^\W_]*" if term.prefix else r"(?![^\W_])"))


def snippet(
    texts: Sequence[str | None],
    patterns: Sequence[re.Pattern[str]],
    marks: tuple[str, str],
    ellipsis: str,
    tokens: int,
) -> str:
    """The best window of about ``tokens`` words of the best of ``texts`` (a row's
    columns), each match between ``marks``, ``ellipsis`` where the text was cut."""
    best: tuple[tuple[int, int], str] | None = None
    for text in texts:
        if not text:
            continue
        cut = _cut(text, patterns, marks, ellipsis, max(1, tokens))
        if best is None or cut[0] > best[0]:
            best = cut
    return best[1] if best is not None else ""


def _matches(text: str, patterns: Sequence[re.Pattern[str]]) -> list[tuple[int, int, int]]:
    """(start, end, term) of the first matches in ``text``: those of the first part of it
    that holds any."""
    start = 0
    while True:
        end = min(len(text), start + _PART)
        folded = fold(text[start:end])
        spans: list[tuple[int, int, int]] = []
        for number, pattern in enumerate(patterns):
            for count, match in enumerate(pattern.finditer(folded)):
                if count >= _MATCHES_LOOKED_AT:
                    break
                spans.append((start + match.start(), start + match.end(), number))
        if spans or end == len(text):
            spans.sort()
            return spans[:_MATCHES_LOOKED_AT]
        start = end - _OVERLAP


def _cut(
    text: str,
    patterns: Sequence[re.Pattern[str]],
    marks: tuple[str, str],
    ellipsis: str,
    tokens: int,
) -> tuple[tuple[int, int], str]:
    """((distinct terms, matches) in the window, the snippet) for one text."""
    spans = _matches(text, patterns)
    if not spans:
        head = [m.end() for _, m in zip(range(tokens + 1), _TOKEN.finditer(text), strict=False)]
        end = head[min(tokens, len(head)) - 1] if head else len(text)
        more = len(head) > tokens
        return (0, 0), text[:end] + (ellipsis if more else "")
    # The words around the matches (a long text is not split whole).
    reach = 64 * tokens
    low = max(0, spans[0][0] - reach)
    high = min(len(text), spans[-1][1] + reach)
    words = [m.span() for m in _TOKEN.finditer(text, low, high)]
    if low > 0 and words and words[0][0] == low:
        words.pop(0)  # it may have begun before ``low``
    starts = [start for start, _ in words]
    first_word = [bisect.bisect_right(starts, start) - 1 for start, _, _ in spans]
    best_score, best_at = (-1, -1), 0
    for index, anchor in enumerate(first_word):
        seen: set[int] = set()
        count = 0
        for (_, _, term), at in zip(spans[index:], first_word[index:], strict=True):
            if at >= anchor + tokens:
                break
            seen.add(term)
            count += 1
        score = (len(seen), count)
        if score > best_score:
            best_score, best_at = score, index
    # Centre the window's matches in it.
    anchor = max(first_word[best_at], 0)
    last = anchor
    for at in first_word[best_at:]:
        if at >= anchor + tokens:
            break
        last = max(last, at)
    begin = max(0, anchor - (tokens - (last - anchor + 1)) // 2)
    end = min(len(words), begin + tokens)
    begin = max(0, end - tokens)
    if not words:
        return best_score, text
    start = 0 if begin == 0 and low == 0 else words[begin][0]
    stop = len(text) if end == len(words) and high == len(text) else words[end - 1][1]
    out: list[str] = [ellipsis] if start > 0 else []
    position = start
    for low_at, high_at, _ in spans:
        if low_at < position or high_at > stop:
            continue
        out += [text[position:low_at], marks[0], text[low_at:high_at], marks[1]]
        position = high_at
    out.append(text[position:stop])
    if stop < len(text):
        out.append(ellipsis)
    return best_score, "".join(out)


SEARCH = PostgresSearch()
