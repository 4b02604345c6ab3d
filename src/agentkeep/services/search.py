"""Full-text search over everything stored: transcript messages, notes, tasks, what hooks
captured, artifact names and ``run`` output.

Query syntax (:func:`parse_terms`): words are AND-ed; ``"a quoted phrase"`` matches the
words in order; ``word*`` matches words starting with ``word`` (at least two characters
before the ``*``). The search engine's own operators (``AND``, ``NEAR``, ``(``, ``:``,
``^``…) are plain words here and no input is a syntax error. Case and diacritics are
ignored.

Ranking. Each kind but ``output`` is searched by the backend's full-text index
(``backend.search``, :class:`agentkeep.backends.base.Search`; SQLite's FTS5 and how it
keeps ranking cheap are described in :mod:`agentkeep.backends.sqlite.search`), which
returns each kind's best ``limit`` rows; they are merged best score first (among equals,
the newer row), and snippets are asked for only for the final hits. Scores are higher for
better matches (SQLite: ``-bm25``); each kind's score comes from its own index, so they
compare only roughly. A task's title weighs twice its body.

Kinds and where they are indexed (the index follows each row in its transaction, but
transcript messages, which imports store by the hundred thousand, are indexed after they
are stored: each search of a writable store first catches the index up
(:meth:`SearchService.catch_up_search`); on a read-only one the messages not indexed yet are
searched directly):

- ``message`` (messages.text), ``note`` (notes.body), ``task`` (tasks.title, body);
- ``capture``: a hook delivery's ``search_text``, a generated column of ``captures`` (its
  prompt, tool input and response, error, last assistant message…);
- ``artifact``: artifacts.name;
- ``output``: the lines of ``run`` output streams. These are **scanned, not indexed**:
  the bytes live in stream files (zstd once sealed), and an index copy would store them a
  second time, uncompressed, in the database, cost every progress commit of a running
  command a tokenizing pass, and tie retention of streams to the index. The scan reads
  the tail of the newest streams, :data:`OUTPUT_SCAN_BYTES` in all (newest first; with
  ``session`` only that session's), and matches each term like the tokenizer would (case
  ignored, whole words or prefixes; diacritics are *not* folded here). A line's score is
  bm25 over the scanned lines. Output older than the window is found with
  ``--session`` or ``agentkeep logs SESSION --grep``.
"""

from __future__ import annotations

import math
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from agentkeep.backends.base import Indexed, SearchTerm
from agentkeep.errors import AgentkeepError, InvalidInput
from agentkeep.models import Record, Stream
from agentkeep.services.base import Service

KINDS = ("message", "note", "task", "capture", "artifact", "doc", "output")
DOCS_SINCE = 9  # the schema version that added documents (migration 9)
OUTPUT_SCAN_BYTES = 2 << 20  # `output` scans the last 2 MiB of run output, newest first
OUTPUT_WINDOW = 200  # … ranks at most its newest 200 matching lines
OUTPUT_VISITS = 1000  # … after looking at 1,000 candidate lines at most
OUTPUT_SNIPPET_CHARS = 160
MAX_LIMIT = 1000
CATCH_UP_ROWS = 5000  # messages indexed per transaction by a catch-up
MAX_TERMS = 64
MAX_QUERY_CHARS = 2000
SNIPPET_TOKENS = 16
HIGHLIGHT = ("«", "»")
MIN_PREFIX = 2  # the indexes keep 2- and 3-character prefixes; a shorter one scans them all

# Markers the backend puts around matches in snippets; swapped for the caller's highlight
# after the snippet is cleaned of control characters (so content cannot fake a highlight).
_OPEN, _CLOSE = "\x02", "\x03"
_TERM = re.compile(r'"([^"]*)"?(\**)|([^\s"]+(?:"[^\s"]*)*)')
_TOKEN_PART = re.compile(r"[^\W_]+")
_CONTROL = re.compile(r"[\x00\x01\x04-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e]")
# Terminal escape sequences, removed whole from snippets (not just their ESC byte): CSI
# (colours, cursor), OSC (titles, hyperlinks; ended by BEL or ST), other ESC sequences.
_ESCAPES = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]"
    r"|(?:\x1b\]|\x9d)[^\x07\x1b\x9c\n]*(?:\x07|\x1b\\|\x9c)?"
    r"|(?:\x1b[PX^_]|[\x90\x98\x9e\x9f])[^\x1b\x9c\n]*(?:\x1b\\|\x9c)?"
    r"|\x1b[ -/]*[0-~]?"
)
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class SearchHit(Record):
    """One search result. ``kind`` is one of :data:`KINDS`; ``id`` is that row's id (for
    ``output``: the stream's id, and ``line`` the matching line's number in it).

    ``session_id``: the session of the message, note, capture, artifact or output.
    ``task_id``: the note's or artifact's task, or the task itself. ``role``: a message's
    role. ``label``: a message's tool name (or its kind when not plain text), a note's
    kind, a task's title, a capture's tool name (else its event), an artifact's kind, an
    output stream's name. ``at``: when the message was said, the note written, the task
    last updated, the hook delivered, the artifact stored, the stream last written.
    ``snippet``: the matching part of the text with each match between the highlight
    marks (« » unless asked otherwise), without control characters or escape sequences.
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
    line: int | None = None


def parse_terms(query: str) -> list[SearchTerm]:
    """The terms of a query (see the module doc): each one's text, its tokens and whether
    it is a prefix; ``[]`` when it holds no word (punctuation only).

    Raises InvalidInput for an empty query, a one-letter prefix (it would scan the whole
    index), a NUL character, or an unreasonably long one.
    """
    if not isinstance(query, str) or not query.strip():
        raise InvalidInput(
            "the search query is empty",
            hint='give one or more words, a "quoted phrase" or a prefix like migra*',
        )
    if len(query) > MAX_QUERY_CHARS:
        raise InvalidInput(f"the search query is longer than {MAX_QUERY_CHARS:,} characters")
    if "\x00" in query:  # SQLite ends the MATCH string there: "unterminated string"
        raise InvalidInput("the search query contains a NUL character (U+0000)")
    terms: list[SearchTerm] = []
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
        terms.append(SearchTerm(text, tuple(parts), prefix))
    if len(terms) > MAX_TERMS:
        raise InvalidInput(f"the search query has more than {MAX_TERMS} terms")
    return terms


def clean_snippet(text: str, highlight: tuple[str, str] = HIGHLIGHT) -> str:
    """A snippet on one line, without control characters or terminal escape sequences,
    with matches highlighted."""
    text = _CONTROL.sub("", _SPACE.sub(" ", _ESCAPES.sub("", text))).strip()
    return text.replace(_OPEN, highlight[0]).replace(_CLOSE, highlight[1])


# The kinds the backend's full-text index holds (all but ``output``).
_INDEXED = {
    "message": Indexed("messages", at="at", has_session=True),
    "note": Indexed("notes", at="created_at", has_session=True),
    "task": Indexed("tasks", at="updated_at", has_session=False),
    "capture": Indexed("captures", at="at", has_session=True),
    "artifact": Indexed("artifacts", at="created_at", has_session=True),
    "doc": Indexed("doc_chunks", at="updated_at", has_session=False),
}
_DETAILS = {  # session_id, task_id, role, label of a hit (the row is ``t``)
    "message": ("t.session_id", "NULL", "t.role", "coalesce(t.tool_name, nullif(t.kind, 'text'))"),
    "note": ("t.session_id", "t.task_id", "NULL", "t.kind"),
    "task": ("NULL", "t.id", "NULL", "t.title"),
    "capture": ("t.session_id", "NULL", "NULL", "coalesce(t.tool_name, t.event)"),
    "artifact": ("t.session_id", "t.task_id", "NULL", "t.kind"),
    # A document's section: its ref and heading ("specs/auth › Login").
    "doc": (
        "NULL",
        "NULL",
        "NULL",
        "(SELECT d.namespace || '/' || d.name FROM docs d WHERE d.id = t.doc_id)"
        " || CASE WHEN t.heading <> '' THEN ' › ' || t.heading ELSE '' END",
    ),
}


_K1, _B = 1.2, 0.75  # bm25's usual constants, as FTS5 uses them


@dataclass
class _Scanned:
    """The scanned tail of one stream: its row, the offset the text starts at, the text
    and its lower-case copy (the same length: offsets are shared)."""

    stream: Stream
    start: int
    text: str
    low: str
    first_line: int  # the number of the line at ``start``


# Sealed streams never change: their decoded tails are kept between searches of one
# process (a search box asks again at every keystroke), up to _CACHE_CHARS in all.
_CACHE: OrderedDict[tuple[str, int, str, int], tuple[int, str, str, int]] = OrderedDict()
_CACHE_CHARS = 3 * OUTPUT_SCAN_BYTES
_CACHE_LOCK = threading.Lock()


def _cached(key: tuple[str, int, str, int]) -> tuple[int, str, str, int] | None:
    with _CACHE_LOCK:
        found = _CACHE.get(key)
        if found is not None:
            _CACHE.move_to_end(key)
        return found


def _remember(key: tuple[str, int, str, int], value: tuple[int, str, str, int]) -> None:
    with _CACHE_LOCK:
        _CACHE[key] = value
        total = sum(len(entry[1]) for entry in _CACHE.values())
        while total > _CACHE_CHARS and len(_CACHE) > 1:
            _, entry = _CACHE.popitem(last=False)
            total -= len(entry[1])


class OutputSearch(Service):
    def _output_hits(
        self,
        terms: Sequence[SearchTerm],
        session: int | None,
        since: str | None,
        limit: int,
        highlight: tuple[str, str],
    ) -> list[SearchHit]:
        """The best ``limit`` lines among the newest run output lines matching every term.

        Nothing here runs a regular expression over the whole scanned text (that costs
        ~50 ms per MiB): each term's first token is found with ``str.count``/``rfind`` on
        the lower-cased text, and only the lines holding the rarest one — newest first,
        :data:`OUTPUT_WINDOW` matching lines (:data:`OUTPUT_VISITS` candidates) at most —
        are checked term by term.
        """
        patterns = [term_pattern(parts, prefix) for _, parts, prefix in terms]
        literals = [parts[0].lower() for _, parts, _ in terms]
        if not patterns:
            return []
        scanned = self._scan_output(session, since)
        lines = sum(item.low.count("\n") + 1 for item in scanned)
        chars = sum(len(item.low) for item in scanned)
        if not scanned:
            return []
        average = max(chars / lines, 1.0)
        # How many lines hold each term, estimated by its first token's occurrences: the
        # term's idf, as in bm25.
        counts = [sum(item.low.count(literal) for item in scanned) for literal in literals]
        if not all(counts):
            return []
        idf = [math.log(1 + (lines - n + 0.5) / (n + 0.5)) for n in counts]
        rarest = literals[min(range(len(literals)), key=counts.__getitem__)]
        found: list[tuple[float, int, int, int]] = []  # -score, scanned index, -start, length
        visited = 0
        for index, item in enumerate(scanned):
            position = len(item.low)
            while len(found) < OUTPUT_WINDOW and visited < OUTPUT_VISITS:
                at = item.low.rfind(rarest, 0, position)
                if at < 0:
                    break
                visited += 1
                start = item.low.rfind("\n", 0, at) + 1
                end = item.low.find("\n", at)
                end = len(item.low) if end < 0 else end
                position = start  # the next candidate is on an earlier line
                if not all(literal in item.low[start:end] for literal in literals):
                    continue  # a term is not on this line (cheap test before the regexes)
                line = _displayed(item.text[start:end])
                tfs = [len(p.findall(line)) for p in patterns]
                if not all(tfs):
                    continue
                norm = _K1 * (1 - _B + _B * len(line) / average)
                score = sum(
                    w * tf * (_K1 + 1) / (tf + norm) for w, tf in zip(idf, tfs, strict=True)
                )
                found.append((-score, index, -start, end - start))
        found.sort()
        chosen = found[:limit]
        numbers = _line_numbers(scanned, [(index, -start) for _, index, start, _ in chosen])
        hits = []
        for negative, index, negative_start, length in chosen:
            item, start = scanned[index], -negative_start
            line = item.text[start : start + length]
            hits.append(
                SearchHit(
                    kind="output",
                    id=item.stream.id,
                    score=float(f"{-negative:.6g}"),
                    snippet=_line_snippet(line, patterns, highlight),
                    at=item.stream.updated_at,
                    session_id=item.stream.session_id,
                    task_id=None,
                    role=None,
                    label=item.stream.name,
                    line=numbers[index, start],
                )
            )
        return hits

    def _scan_output(self, session: int | None, since: str | None) -> list[_Scanned]:
        """The tails of the newest streams, OUTPUT_SCAN_BYTES in all, newest first."""
        where = ["length > 0"]
        params: list[Any] = []
        if session is not None:
            where.append("session_id = ?")
            params.append(session)
        if since is not None:
            where.append("updated_at >= ?")
            params.append(since)
        store = self._store
        budget = OUTPUT_SCAN_BYTES
        scanned: list[_Scanned] = []
        rows = self._conn.execute(
            f"SELECT * FROM streams WHERE {' AND '.join(where)} ORDER BY id DESC", params
        )
        for row in rows:
            if budget <= 0:
                break
            stream = Stream.from_row(row)
            size = min(stream.length, budget)
            budget -= size
            start = stream.length - size
            key = (str(self.store_dir), stream.id, stream.sha256 or "", start)
            texts = _cached(key) if stream.status == "sealed" else None
            if texts is None:
                try:
                    _, reader = store.open_stream_reader(stream.id)
                except AgentkeepError:
                    continue  # its file is missing: `doctor` reports it; search goes on
                try:
                    data = reader.read(start, size)
                    if start:  # begin at the first whole line of the window
                        cut = data.find(b"\n") + 1
                        data, start = data[cut:], start + cut
                    # Only the oldest stream of the window is cut: one lookup per search.
                    first = store.streams._line_at(stream.id, start, reader) + 1 if start else 1
                finally:
                    reader.close()
                text = data.decode("utf-8", "replace")
                low = text.lower()
                if len(low) != len(text):  # a few characters lower-case to two: keep
                    low = "".join(c if len(c.lower()) != 1 else c.lower() for c in text)
                texts = (start, text, low, first)
                if stream.status == "sealed":
                    _remember(key, texts)
            scanned.append(_Scanned(stream, *texts))
        return scanned


class SearchService(OutputSearch):
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
        """Everything stored matching ``query``, best first (see the module doc).

        ``session`` keeps that session's messages, notes, captures, artifacts and output
        (tasks belong to no session, so they are left out); ``since`` (ISO time) keeps
        what was said, written, updated, delivered or stored at or after it.
        ``highlight`` is the pair of strings put around each match in the snippets.
        """
        wanted = _kinds(kinds)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
            raise InvalidInput(f"the number of results must be between 1 and {MAX_LIMIT}")
        terms = parse_terms(query)
        if session is not None:
            self._require(session_id=session)
            wanted = [k for k in wanted if k == "output" or _INDEXED[k].has_session]
        if not terms or not wanted:
            return []
        search = self.backend.search
        if "message" in wanted:
            self.catch_up_search()
        if "doc" in wanted:
            if self.writable:
                self._store.docs.refresh_if_due()
            elif self._store._db_schema_version() < DOCS_SINCE:
                # A store opened read-only before it was migrated has no documents yet.
                wanted = [k for k in wanted if k != "doc"]
        # (-score, -id, kind, id): best score first; among equals, the newer row.
        candidates: list[tuple[float, int, str, int]] = []
        output: dict[int, SearchHit] = {}
        for name in wanted:
            if name == "output":
                for number, hit in enumerate(
                    self._output_hits(terms, session, since, limit, highlight)
                ):
                    output[number] = hit
                    candidates.append((-hit.score, -hit.id, name, number))
                continue
            ranked = search.rank(
                self._conn, _INDEXED[name], terms, session=session, since=since, limit=limit
            )
            for rowid, score in ranked:
                candidates.append((-score, -rowid, name, rowid))
        candidates.sort()
        chosen = candidates[:limit]
        details: dict[tuple[str, int], SearchHit] = {
            ("output", number): hit for number, hit in output.items()
        }
        for name in wanted:
            if name == "output":
                continue
            scores = {rowid: -negative for negative, _, kind, rowid in chosen if kind == name}
            if scores:
                for hit in self._hits(name, terms, scores, highlight):
                    details[name, hit.id] = hit
        # A row changed between the two statements has no snippet: it is left out.
        return [details[kind, rowid] for _, _, kind, rowid in chosen if (kind, rowid) in details]

    def catch_up_search(self) -> int:
        """Index what was stored but is not searchable by the index yet (transcript
        messages are indexed after an import stores them); returns how many rows. Does
        nothing on a store this process cannot write, or inside a transaction: a search
        then looks at those rows directly (slower, never missing one)."""
        search = self.backend.search
        done = 0
        # In transactions of CATCH_UP_ROWS rows: hooks and other writers wait for the
        # write lock at most that long (~0.1 s), not for a whole large import's index.
        while self.writable and search.behind(self._conn):
            try:
                with self.transaction() as tx:
                    done += search.catch_up(tx.conn, rows=CATCH_UP_ROWS)
            except AgentkeepError:  # e.g. inside the caller's transaction: search the rest
                break
        return done

    def _hits(
        self,
        name: str,
        terms: Sequence[SearchTerm],
        scores: dict[int, float],
        highlight: tuple[str, str],
    ) -> list[SearchHit]:
        """The hits of kind ``name`` among the chosen rows, with their snippets."""
        rows = self.backend.search.snippets(
            self._conn,
            _INDEXED[name],
            terms,
            list(scores),
            columns=(f"t.{_INDEXED[name].at}", *_DETAILS[name]),
            marks=(_OPEN, _CLOSE),
            ellipsis="…",
            tokens=SNIPPET_TOKENS,
        )
        hits = []
        for row in rows:
            rowid = int(row[0])
            hits.append(
                SearchHit(
                    kind=name,
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


def _line_numbers(
    scanned: Sequence[_Scanned], places: Sequence[tuple[int, int]]
) -> dict[tuple[int, int], int]:
    """The line numbers of (scanned index, offset) places, counting newlines once."""
    numbers: dict[tuple[int, int], int] = {}
    last: dict[int, tuple[int, int]] = {}  # scanned index -> (offset, its line number)
    for index, start in sorted(places):
        offset, number = last.get(index, (0, scanned[index].first_line))
        number += scanned[index].low.count("\n", offset, start)
        numbers[index, start] = number
        last[index] = (start, number)
    return numbers


def term_pattern(parts: Sequence[str], prefix: bool) -> re.Pattern[str]:
    """A regular expression matching a term the way the index's tokenizer would: its tokens
    in order, separated by non-word characters, case ignored, the last one whole unless
    the term is a prefix."""
    body = r"[\W_]+".join(re.escape(part) for part in parts)
    return re.compile(r"(?<![^\W_])" + body + ("" if prefix else r"(?![^\W_])"), re.IGNORECASE)


def _displayed(line: str) -> str:
    """A line of output without escape sequences (colours glue to the words they wrap:
    ``\x1b[31mFAILED``); the cheap test first, since most lines have none."""
    if "\x1b" in line or not line.isascii():
        return _ESCAPES.sub("", line)
    return line


def _line_snippet(
    line: str, patterns: Sequence[re.Pattern[str]], highlight: tuple[str, str]
) -> str:
    """A line of output as a snippet: cleaned, cut around its first match, highlighted."""
    text = _CONTROL.sub(
        "", _SPACE.sub(" ", _ESCAPES.sub("", line)).replace(_OPEN, "").replace(_CLOSE, "")
    ).strip()
    spans = sorted(m.span() for p in patterns for m in p.finditer(text))
    if not spans:
        return clean_snippet(text[:OUTPUT_SNIPPET_CHARS], highlight)
    first = spans[0][0]
    begin = max(0, min(first - OUTPUT_SNIPPET_CHARS // 4, len(text) - OUTPUT_SNIPPET_CHARS))
    end = min(len(text), begin + OUTPUT_SNIPPET_CHARS)
    out, position = [], begin
    for low, high in spans:
        if low < position or high > end:
            continue
        out += [text[position:low], _OPEN, text[low:high], _CLOSE]
        position = high
    out.append(text[position:end])
    snippet = ("…" if begin else "") + "".join(out) + ("…" if end < len(text) else "")
    return clean_snippet(snippet, highlight)


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
