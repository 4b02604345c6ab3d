"""Full-text search over transcript messages, notes and tasks.

Query syntax (:func:`fts_query`): words are AND-ed; ``"a quoted phrase"`` matches the
words in order; ``word*`` matches words starting with ``word`` (at least two characters
before the ``*``). Every term is quoted before it reaches FTS5, so its operators (``AND``,
``NEAR``, ``(``, ``:``, ``^``…) are plain words here and no input is a syntax error. Case
and diacritics are ignored (the ``unicode61 remove_diacritics 2`` tokenizer).

Ranking and its cost. FTS5's ``ORDER BY rank`` computes bm25 for *every* matching row, so
one very common word or a 2–3 letter prefix — what a search box sends first — costs
hundreds of milliseconds on 200k messages. FTS5 streams matches in rowid order at almost
no cost, though, so each kind's query ranks only its **newest** :data:`RANK_WINDOW`
matches (``ORDER BY rowid DESC LIMIT RANK_WINDOW`` inside, ``ORDER BY bm25`` outside).
A term with fewer matches than that — nearly every specific word — is ranked exactly as
FTS5 would; a broader one is ranked among its newest ``RANK_WINDOW`` matches, which is
what a search over an agent's history wants anyway. Snippets are computed only for the
final hits, in a second statement. A ``session`` filter narrows FTS5 to the rowid range
of that session's messages. ``since`` is checked on the joined row; when the schema has an
index on ``messages.at`` it also narrows FTS5 to the rowids of the window (without one, a
common word filtered to a short window walks all its matches: ~0.1–0.7 s at 200k).

Scores are ``-bm25`` (higher is better; notes', tasks' and messages' scores come from
different indexes, so they compare only roughly). A task's title weighs twice its body.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from agentkeep._core import StoreBase
from agentkeep.errors import InvalidInput
from agentkeep.models import Record

KINDS = ("message", "note", "task")
RANK_WINDOW = 5000  # each kind ranks (bm25) only its newest RANK_WINDOW matches
MAX_LIMIT = 1000
MAX_TERMS = 64
MAX_QUERY_CHARS = 2000
SNIPPET_TOKENS = 16
HIGHLIGHT = ("«", "»")
MIN_PREFIX = 2  # the FTS tables index 2- and 3-character prefixes; shorter ones scan it all

# Markers snippet() puts around matches; swapped for the caller's highlight after the
# snippet is cleaned of control characters (so content cannot fake a highlight).
_OPEN, _CLOSE = "\x02", "\x03"
_TERM = re.compile(r'"([^"]*)"?(\**)|([^\s"]+(?:"[^\s"]*)*)')
_TOKEN_PART = re.compile(r"[^\W_]+")
_CONTROL = re.compile(r"[\x00\x01\x04-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e]")
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class SearchHit(Record):
    """One search result. ``kind`` is message, note or task; ``id`` is that row's id.

    ``session_id``: the message's or note's session. ``task_id``: the note's task, or the
    task itself. ``role``: a message's role. ``label``: a message's tool name (or its kind
    when not plain text), a note's kind, a task's title. ``at``: when the message was
    said, the note written, the task last updated. ``snippet``: the matching part of the
    text with each match between the highlight marks (« » unless asked otherwise).
    """

    kind: str
    id: int
    score: float
    snippet: str
    at: str | None
    session_id: int | None
    task_id: int | None
    role: str | None
    label: str | None


def fts_query(query: str) -> str | None:
    """The FTS5 MATCH expression for a user's query, or None when it holds no word.

    Raises InvalidInput for an empty query, a one-letter prefix (it would scan the whole
    index), or an unreasonably long one.
    """
    if not isinstance(query, str) or not query.strip():
        raise InvalidInput(
            "the search query is empty",
            hint='give one or more words, a "quoted phrase" or a prefix like migra*',
        )
    if len(query) > MAX_QUERY_CHARS:
        raise InvalidInput(f"the search query is longer than {MAX_QUERY_CHARS:,} characters")
    terms: list[str] = []
    for match in _TERM.finditer(query):
        phrase, stars, word = match.groups()
        if word is not None:
            text = word.replace('"', " ")
            prefix = text.endswith("*")
            text = text.rstrip("*")
        else:
            text, prefix = phrase, bool(stars)
        parts = _TOKEN_PART.findall(text)
        if not parts:
            continue  # punctuation only: no token to look for
        if prefix and len(parts[-1]) < MIN_PREFIX:
            raise InvalidInput(
                f"the prefix {parts[-1]}* is too short to search",
                hint=f"type at least {MIN_PREFIX} characters before the *, or drop the *",
            )
        # Each term is one quoted FTS5 string: operators and syntax inside it are plain
        # text, and FTS5 tokenizes it exactly like the indexed text.
        terms.append('"' + text.replace('"', '""') + '"' + ("*" if prefix else ""))
    if len(terms) > MAX_TERMS:
        raise InvalidInput(f"the search query has more than {MAX_TERMS} terms")
    return " ".join(terms) if terms else None


def clean_snippet(text: str, highlight: tuple[str, str] = HIGHLIGHT) -> str:
    """A snippet on one line, without control characters, with matches highlighted."""
    text = _CONTROL.sub("", _SPACE.sub(" ", text)).strip()
    return text.replace(_OPEN, highlight[0]).replace(_CLOSE, highlight[1])


@dataclass(frozen=True)
class _Kind:
    """How one kind is searched: its FTS table, content table and filters."""

    name: str
    fts: str
    table: str
    rank: str  # the bm25() call (with column weights)
    at: str  # the time column `since` compares with
    has_session: bool


_KINDS = {
    "message": _Kind("message", "messages_fts", "messages", "bm25(messages_fts)", "at", True),
    "note": _Kind("note", "notes_fts", "notes", "bm25(notes_fts)", "created_at", True),
    "task": _Kind("task", "tasks_fts", "tasks", "bm25(tasks_fts, 2.0, 1.0)", "updated_at", False),
}


class SearchOps(StoreBase):
    def search(
        self,
        query: str,
        *,
        kinds: Iterable[str] = KINDS,
        session: int | None = None,
        since: str | None = None,
        limit: int = 20,
        highlight: tuple[str, str] = HIGHLIGHT,
    ) -> list[SearchHit]:
        """Messages, notes and tasks matching ``query``, best first (see the module doc).

        ``session`` keeps that session's messages and notes (tasks belong to no session,
        so they are left out); ``since`` (ISO time) keeps messages said, notes written and
        tasks updated at or after it. ``highlight`` is the pair of strings put around each
        match in the snippets.
        """
        wanted = _kinds(kinds)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
            raise InvalidInput(f"the number of results must be between 1 and {MAX_LIMIT}")
        expression = fts_query(query)
        if session is not None:
            self._require(session_id=session)
            wanted = [kind for kind in wanted if _KINDS[kind].has_session]
        if expression is None or not wanted:
            return []
        candidates: list[tuple[float, int, str, int]] = []
        for name in wanted:
            for rowid, rank in self._ranked(_KINDS[name], expression, session, since, limit):
                candidates.append((rank, -rowid, name, rowid))
        # Best rank first; among equals, the newer row.
        candidates.sort()
        chosen = candidates[:limit]
        details: dict[tuple[str, int], SearchHit] = {}
        for name in wanted:
            rowids = [rowid for _, _, kind, rowid in chosen if kind == name]
            scores = {rowid: -rank for rank, _, kind, rowid in chosen if kind == name}
            if rowids:
                for hit in self._hits(_KINDS[name], expression, rowids, scores, highlight):
                    details[name, hit.id] = hit
        # A row changed between the two statements has no snippet: it is left out.
        return [details[kind, rowid] for _, _, kind, rowid in chosen if (kind, rowid) in details]

    def _ranked(
        self, kind: _Kind, expression: str, session: int | None, since: str | None, limit: int
    ) -> list[tuple[int, float]]:
        """(rowid, bm25) of the best ``limit`` among the newest RANK_WINDOW matches."""
        where = [f"{kind.fts} MATCH ?"]
        params: list[Any] = [expression]
        join = ""
        if session is not None or since is not None:
            # CROSS JOIN keeps FTS5 the outer loop: driven from the other table, each row
            # would open its own FTS5 cursor, and bm25 recounts a common term every time.
            join = f" CROSS JOIN {kind.table} t ON t.id = f.rowid"
        if kind.table == "messages" and (session is not None or since is not None):
            span = self._message_span(session, since)
            if span is None:
                return []
            where.append("f.rowid BETWEEN ? AND ?")
            params += list(span)
        if session is not None:
            where.append("t.session_id = ?")
            params.append(session)
        if since is not None:
            where.append(f"t.{kind.at} >= ?")
            params.append(since)
        sql = (
            f"SELECT rowid, r FROM (SELECT f.rowid AS rowid, {kind.rank} AS r"
            f" FROM {kind.fts} f{join} WHERE {' AND '.join(where)}"
            f" ORDER BY f.rowid DESC LIMIT {RANK_WINDOW}) ORDER BY r, rowid DESC LIMIT {limit}"
        )
        return [(int(row[0]), float(row[1])) for row in self._rows(sql, params)]

    def _message_span(self, session: int | None, since: str | None) -> tuple[int, int] | None:
        """A rowid range holding every message of ``session`` said at or after ``since``
        (None: there is none), so FTS5 seeks to it instead of walking every newer match.

        A session's messages lie in one range (usually contiguous). For ``since`` the
        range is found by the index on messages.at.
        """
        if session is not None:
            row = self._row(
                "SELECT min(id), max(id) FROM messages WHERE session_id = ?", (session,)
            )
        else:
            row = self._row("SELECT min(id), max(id) FROM messages WHERE at >= ?", (since,))
        if row is None or row[0] is None:
            return None
        return int(row[0]), int(row[1])

    def _hits(
        self,
        kind: _Kind,
        expression: str,
        rowids: Sequence[int],
        scores: dict[int, float],
        highlight: tuple[str, str],
    ) -> list[SearchHit]:
        marks = ", ".join("?" for _ in rowids)
        snippet = f"snippet({kind.fts}, -1, '{_OPEN}', '{_CLOSE}', '…', {SNIPPET_TOKENS})"
        if kind.name == "message":
            columns = "t.session_id, NULL, t.role, coalesce(t.tool_name, nullif(t.kind, 'text'))"
        elif kind.name == "note":
            columns = "t.session_id, t.task_id, NULL, t.kind"
        else:
            columns = "NULL, t.id, NULL, t.title"
        sql = (
            f"SELECT f.rowid, {snippet}, t.{kind.at}, {columns}"
            f" FROM {kind.fts} f JOIN {kind.table} t ON t.id = f.rowid"
            f" WHERE {kind.fts} MATCH ? AND f.rowid IN ({marks})"
        )
        hits = []
        for row in self._rows(sql, [expression, *rowids]):
            rowid = int(row[0])
            hits.append(
                SearchHit(
                    kind=kind.name,
                    id=rowid,
                    score=float(f"{scores[rowid]:.6g}"),
                    snippet=clean_snippet(row[1] or "", highlight),
                    at=row[2],
                    session_id=row[3],
                    task_id=row[4],
                    role=row[5],
                    label=row[6],
                )
            )
        return hits


def _kinds(kinds: Iterable[str]) -> list[str]:
    if isinstance(kinds, str):
        kinds = [kinds]
    chosen = list(dict.fromkeys(kinds))
    unknown = [kind for kind in chosen if kind not in KINDS]
    if unknown or not chosen:
        raise InvalidInput(
            f"unknown search kind {', '.join(map(repr, unknown)) or '(none)'}",
            hint=f"use one or more of: {', '.join(KINDS)}",
        )
    return chosen
