"""The privacy boundary: every text agentkeep writes passes here first (principle 5 of
docs/design.md).

One :class:`Boundary` validates, redacts and sizes what a writer is about to store, and
remembers what it redacted (rule, column, count; never the value) until the writer records
it beside the row. Every writer uses it: the library's write transactions
(:class:`agentkeep._core.Tx`), the capture writer of hooks and importers
(:class:`agentkeep.capture.Writer`), import cursors, the hook-error log
(:mod:`agentkeep.hooklog`), bundle exports and ``setup``'s backups and diffs
(:func:`redact_text`, :func:`redact_json_text`, :func:`split_secrets`), stream files and
artifact contents (:func:`stream_redactor`).

One policy, two modes. What differs is only what happens to input the store cannot hold as
given, and it follows from who the input belongs to:

=====================  ===============================  ====================================
input                  ``REFUSE`` (library: the caller   ``REPLACE`` (captured agent data:
                       can fix it; InvalidInput)         never dropped)
=====================  ===============================  ====================================
NUL in text            refused                           U+FFFD
NUL in a JSON string   kept as the JSON escape \\u0000   kept as the JSON escape \\u0000
lone surrogates        refused (not UTF-8)               U+FFFD (undecodable bytes too)
NaN, ±Infinity         refused                           null
oversize text          refused                           middle elided, after redacting
oversize JSON          refused                           a small JSON stub with a preview
a secret               redacted                          redacted
a secret identifier    refused (looked up as given)      redacted (same text, same row)
the redactor raises    RedactionFailed, nothing stored   RedactionFailed, nothing stored
=====================  ===============================  ====================================

NUL is refused where it could do harm, a raw NUL byte in a text column (SQL functions and
search stop at it); inside a JSON document it is the six characters of its escape, which
nothing truncates, so both modes keep it. Then everything REPLACE stores, REFUSE accepts
as it is: a bundle of captured data imports through the library's transaction unchanged.

Every cut (titles, identifiers, elided middles, previews) is made after redaction, so no
cut leaves part of a secret that the redactor would no longer recognise.

Short texts found clean are remembered in one per-process cache (ids, kinds, actors and tool
names recur on every row). Only texts that passed every check unchanged are cached, so the
cache never holds a secret and both modes answer the same for them. The cache only saves
work: every check that depends on more than the text (an identifier's type and blankness,
a field limit smaller than any cached text) comes first, so no answer depends on what the
process stored before.

Standard library only, and the redactor is imported on first use: the hook imports this.
"""

from __future__ import annotations

import json

from agentkeep.errors import AgentkeepError, CaptureError, InvalidInput, RedactionFailed

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover - `typing` costs ~4 ms at import; the hook avoids it
    from collections.abc import Sequence
    from typing import Any

REFUSE = "refuse"
REPLACE = "replace"
MODES = (REFUSE, REPLACE)

DEFAULT_MAX_FIELD_BYTES = 1_048_576  # config store.max_field_bytes
# A JSON document carries several fields of a record (an event holds a whole task), so it
# may be a few times larger than one text field.
JSON_FACTOR = 4
MAX_ID_CHARS = 1000  # identifiers from a payload (session ids, tool ids, names) are cut here
TITLE_CHARS = 200  # session titles are cut here (after redaction)
PREVIEW_BYTES = 64 * 1024  # of an oversize JSON document kept in its stub

_CACHE_MAX_CHARS = 200
_CACHE_MAX_BYTES = 4 * _CACHE_MAX_CHARS  # the most a cached text can take in UTF-8
_CACHE_MAX_ENTRIES = 20_000
_CLEAN: dict[str, bool] = {}

_redact_module: Any = None
_standard_library_only = False


def standard_library_only() -> None:
    """Redact on the standard-library engine for the rest of this process: the hook's
    (`agentkeep.hook.main`), which imports nothing else. Costs nothing until the first
    redaction imports the redactor."""
    global _standard_library_only
    _standard_library_only = True
    if _redact_module is not None:
        _redact_module.keep_standard_library_engine()


def _redactor() -> Any:
    """The redaction module (agentkeep.redact, owned by the rule set), imported on first
    use: compiling its rules takes ~10 ms that read-only commands never need. Looked up on
    every call, so a test can replace its functions (the designed seam)."""
    global _redact_module
    if _redact_module is None:
        from agentkeep import redact

        if _standard_library_only:
            redact.keep_standard_library_engine()
        _redact_module = redact
    return _redact_module


def _failure(exc: BaseException, column: str, refuse: bool) -> AgentkeepError:
    """What a failure inside the redactor becomes: the write is aborted either way."""
    cause = exc.__cause__
    if isinstance(exc, RecursionError) or isinstance(cause, RecursionError):
        # Bad input rather than a failure of the redactor (still nothing is stored).
        error = InvalidInput if refuse else CaptureError
        return error(
            f"{column}: the JSON value is nested too deeply to store",
            hint="flatten the structure (a few dozen levels are plenty)",
        )
    return RedactionFailed(
        f"the redactor failed on {column}, so nothing was stored",
        hint="report this as a bug; the input was not written anywhere",
    )


def clear_cache() -> None:
    """Forget the texts found clean (tests that replace the redactor call this)."""
    _CLEAN.clear()


# -- helpers anyone may call (they carry no state) ---------------------------------------------


def redact_text(text: str) -> tuple[str, dict[str, int]]:
    """``text`` with its secrets replaced, and what was replaced; raises RedactionFailed
    when the redactor fails (callers store nothing then). For texts that are not rows:
    log lines, diffs, backups."""
    try:
        result: tuple[str, dict[str, int]] = _redactor().redact_text(text)
    except Exception as exc:  # fail closed
        raise _failure(exc, "the text", True) from exc
    return result


def redact_json_text(value: Any) -> Any:
    """A JSON-like value with every string (keys too) redacted; RedactionFailed on failure."""
    try:
        return _redactor().redact_value(value)[0]
    except Exception as exc:  # fail closed
        raise _failure(exc, "the value", True) from exc


def may_contain_secret(text: str) -> bool:
    """False only when no rule can match anywhere in ``text`` (a cheap pre-check);
    RedactionFailed when the redactor fails."""
    try:
        return bool(_redactor().may_contain_secret(text))
    except Exception as exc:  # fail closed
        raise _failure(exc, "the text", True) from exc


def stream_redactor() -> Any:
    """A redactor for text that arrives in chunks (stream files, artifact contents): the
    rule set's ``StreamRedactor``, whose failures raise RedactionFailed (fail closed)."""
    try:
        return _redactor().StreamRedactor()
    except Exception as exc:  # fail closed
        raise _failure(exc, "the stream", True) from exc


def split_secrets(text: str) -> tuple[str, list[str]]:
    """``(redacted, rules)``: ``text`` with each secret replaced by its marker, and the rule
    of each replaced secret in order, so :func:`fill_secrets` can later put the secrets of
    another copy of the text back (``setup`` restores a user's file without keeping its
    secrets). RedactionFailed when the redactor fails."""
    try:
        redact = _redactor()
        pieces: list[str] = []
        rules: list[str] = []
        position = 0
        for found in redact.scan(text):
            pieces += [text[position : found.start], redact.marker(found.rule)]
            rules.append(found.rule)
            position = found.end
        pieces.append(text[position:])
        redacted = "".join(pieces)
        if redact.redact_text(redacted)[1]:  # the spans did not cover everything: no refill
            return redact.redact_text(text)[0], []
    except Exception as exc:  # fail closed
        raise _failure(exc, "the text", True) from exc
    return redacted, rules


def fill_secrets(redacted: str, rules: list[str], source: str) -> str | None:
    """The inverse of :func:`split_secrets`: ``redacted`` with its markers replaced, in
    order, by the secrets found in ``source``; None when ``source`` does not hold secrets
    of the same rules in the same order (the caller then keeps ``source``)."""
    try:
        redact = _redactor()
        found = redact.scan(source)
    except Exception as exc:  # fail closed
        raise _failure(exc, "the text", True) from exc
    if [match.rule for match in found] != rules:
        return None
    pieces: list[str] = []
    position = 0
    for match in found:
        mark = redact.marker(match.rule)
        at = redacted.find(mark, position)
        if at < 0:
            return None
        pieces += [redacted[position:at], source[match.start : match.end]]
        position = at + len(mark)
    pieces.append(redacted[position:])
    return "".join(pieces)


def cut(text: str, max_chars: int | None) -> str:
    """``text`` cut to ``max_chars`` characters (the last one an ellipsis). Only ever call
    it on redacted text."""
    if max_chars is None or len(text) <= max_chars:
        return text
    return text[: max(0, max_chars - 1)] + "…"


def elide(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` UTF-8 bytes by removing its middle (a transcript
    entry larger than a field may hold keeps its head and tail, and says what was cut).
    Only ever call it on redacted text."""
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    keep = max(0, (limit - 64) // 2)
    head = data[:keep].decode("utf-8", "ignore")
    tail = data[len(data) - keep :].decode("utf-8", "ignore")
    return f"{head}\n[… {len(data) - 2 * keep:,} bytes elided by agentkeep …]\n{tail}"


def without_surrogates(text: str) -> str:
    """Undecodable bytes (kept as lone surrogates by ``surrogateescape``) and stray UTF-16
    surrogates from JSON escapes become U+FFFD."""
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


def finite(value: Any) -> Any:
    """``value`` with NaN and infinities replaced by None (JSON has no such numbers)."""
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def _utf8_size(text: str) -> int | None:
    """The UTF-8 size of ``text``, or None when it holds lone surrogates."""
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError:
        return None


# -- the boundary ------------------------------------------------------------------------------

# json.dumps(value, ensure_ascii=False, allow_nan=False) builds this encoder on every call
# (~1 us of a single append); built once, it encodes the same text.
_ENCODE = json.JSONEncoder(ensure_ascii=False, allow_nan=False).encode

_INSERT_REDACTIONS = (
    "INSERT INTO redactions (at, rule, entity, entity_id, field, count) VALUES (?, ?, ?, ?, ?, ?)"
)
EVENT_COLUMNS = ("at", "actor", "entity", "entity_id", "kind", "data", "undoes")
_INSERT_EVENT = f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) VALUES ({', '.join('?' * 7)})"


class Boundary:
    """Validates, redacts and sizes values bound for one write transaction.

    ``mode`` is :data:`REFUSE` or :data:`REPLACE` (see the module docstring).
    Redactions accumulate until :meth:`record` writes them beside the row they belong to,
    or :meth:`discard` drops them (the row was not written).
    """

    __slots__ = ("max_field_bytes", "mode", "pending", "refuse")

    def __init__(self, mode: str, *, max_field_bytes: int = DEFAULT_MAX_FIELD_BYTES) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown boundary mode {mode!r}")
        self.mode = mode
        self.refuse = mode == REFUSE
        self.max_field_bytes = max_field_bytes
        self.pending: list[tuple[str, str, int]] = []  # (rule, column, count)

    def _refused(self, message: str, hint: str | None = None) -> AgentkeepError:
        return (InvalidInput if self.refuse else CaptureError)(message, hint=hint)

    def _redact(self, column: str, text: str) -> str:
        try:
            clean: str
            clean, counts = _redactor().redact_text(text)
        except Exception as exc:  # fail closed: nothing is stored
            raise _failure(exc, column, self.refuse) from exc
        for rule, count in counts.items():
            self.pending.append((rule, column, count))
        if not counts and len(text) <= _CACHE_MAX_CHARS:
            if len(_CLEAN) >= _CACHE_MAX_ENTRIES:
                _CLEAN.clear()
            _CLEAN[text] = True
        return clean

    # -- text ----------------------------------------------------------------------------

    def text(
        self, column: str, value: object, *, limit: int | None = None, max_chars: int | None = None
    ) -> str:
        """One text for ``column``: validated, redacted, then cut to ``max_chars``
        characters and sized against ``limit`` bytes (default: the field limit)."""
        if not isinstance(value, str):
            if self.refuse:
                raise InvalidInput(f"{column}: unsupported value type {type(value).__name__}")
            value = str(value)
        limit = limit or self.max_field_bytes
        if value in _CLEAN and limit >= _CACHE_MAX_BYTES:  # clean, and small enough anywhere
            return cut(value, max_chars)
        if "\x00" in value:
            if self.refuse:
                raise self._nul(column)
            value = value.replace("\x00", "\ufffd")
        value, size = self._valid_utf8(column, value)
        if self.refuse and size > limit:  # before redacting: no work for a refused value
            raise self._too_big(column, size, limit)
        clean = cut(self._redact(column, value), max_chars)
        if len(clean) * 4 > limit:  # markers may be longer than the secrets they replace
            size = len(clean.encode("utf-8"))
            if size > limit:
                if self.refuse:
                    raise self._too_big(column, size, limit)
                clean = elide(clean, limit)
        return clean

    def _valid_utf8(self, column: str, text: str) -> tuple[str, int]:
        """``text`` and its UTF-8 size; lone surrogates are refused (REFUSE) or become
        U+FFFD (REPLACE)."""
        size = _utf8_size(text)
        if size is not None:
            return text, size
        if self.refuse:
            raise InvalidInput(
                f"{column} is not valid UTF-8 text",
                hint="decode the input as UTF-8 (invalid bytes cannot be stored as text)",
            )
        text = without_surrogates(text)
        return text, len(text.encode("utf-8"))

    def _nul(self, column: str) -> AgentkeepError:
        return InvalidInput(
            f"{column} contains a NUL byte, which agentkeep does not store",
            hint="remove NUL characters (SQL search would silently truncate at them)",
        )

    def _too_big(self, column: str, size: int, limit: int) -> AgentkeepError:
        return self._refused(
            f"{column} is {size:,} bytes; the limit is {limit:,}",
            hint="raise store.max_field_bytes, or keep bulk output in a file",
        )

    def ident(self, column: str, value: str | None, *, max_chars: int = MAX_ID_CHARS) -> str | None:
        """An identifier (a key, an external id, a name), which is looked up as stored.

        REFUSE: a secret-shaped identifier is refused (storing a redacted form would make
        a retry miss its first attempt, and two different keys collide); otherwise it is
        stored as given. REPLACE: an identifier from a payload (a session id, a tool call
        id) is redacted like any text and cut to ``max_chars`` after that; the same input
        always gives the same stored text, so repeats still find their row.
        """
        if value is None:
            return None
        if self.refuse:
            # Type and blank checks come before the cache: a blank text is clean as text,
            # and the answer must not depend on what this process stored before.
            if not isinstance(value, str) or not value.strip():
                raise InvalidInput(f"{column} must be non-empty text")
            if value in _CLEAN and self.max_field_bytes >= _CACHE_MAX_BYTES:
                return value
            if self.text(column, value) != value:
                self.pending.clear()
                raise InvalidInput(
                    f"{column} looks like a secret, and identifiers are stored as given",
                    hint="use an identifier that is not a credential",
                )
            return value
        if (
            isinstance(value, str)
            and len(value) <= min(_CACHE_MAX_CHARS, max_chars)
            and self.max_field_bytes >= _CACHE_MAX_BYTES
            and "\x00" not in value
        ):  # no cut and no size limit can change it: only a secret or a surrogate could
            if value in _CLEAN:
                return value
            try:
                gate = _redactor().may_contain_secret(value)
            except Exception as exc:  # fail closed
                raise _failure(exc, column, self.refuse) from exc
            if not gate and _utf8_size(value) is not None:
                return value  # no rule can match (unique ids: not worth caching)
        return self.text(column, value, max_chars=max_chars)

    # -- numbers and JSON ------------------------------------------------------------------

    def number(self, column: str, value: float | None) -> float | None:
        """A number: NaN and infinities are refused (REFUSE) or become None (REPLACE)."""
        if isinstance(value, float) and (value != value or value in (_INF, -_INF)):
            if self.refuse:
                raise InvalidInput(f"{column}: NaN and Infinity are not numbers agentkeep stores")
            return None
        return value

    def _dumps(self, column: str, value: Any) -> str:
        try:
            doc: str = _ENCODE(value)
        except ValueError as exc:
            if self.refuse:
                raise InvalidInput(f"{column}: NaN and Infinity are not valid JSON") from exc
            return self._dumps(column, finite(value))
        except TypeError as exc:
            if self.refuse:
                raise InvalidInput(f"{column}: value is not JSON-serialisable ({exc})") from exc
            return json.dumps(value, ensure_ascii=False, allow_nan=False, default=str)
        except RecursionError as exc:
            raise self._refused(f"{column}: the JSON value is nested too deeply to store") from exc
        return doc

    def json(
        self,
        column: str,
        value: Any,
        *,
        limit: int | None = None,
        dumped: str | None = None,
        checked: bool = False,
    ) -> str:
        """A JSON value serialised for ``column``, every string in it (keys too) redacted.

        The document is serialised once and pre-checked as a whole (``checked``: the
        caller already did, see :meth:`json_batch`): most values hold no keyword any rule
        starts with, and then no string inside them can hold a secret.
        """
        doc = self._dumps(column, value) if dumped is None else dumped
        try:
            if not checked and _redactor().may_contain_secret(doc):
                clean_value, counts = _redactor().redact_value(value)
                if counts:
                    doc = self._dumps(column, clean_value)
                for rule, count in counts.items():
                    self.pending.append((rule, column, count))
        except AgentkeepError as exc:
            if not isinstance(exc.__cause__, RecursionError):
                raise
            raise _failure(exc, column, self.refuse) from exc
        except Exception as exc:  # fail closed
            raise _failure(exc, column, self.refuse) from exc
        # lone surrogates inside strings (JSON escapes, undecodable bytes)
        doc, size = self._valid_utf8(column, doc)
        limit = limit or JSON_FACTOR * self.max_field_bytes
        if size > limit:
            if self.refuse:
                raise self._too_big(column, size, limit)
            # The preview is text now, not a structure: it is redacted as text too (a
            # key and its value side by side can form what a rule matches), so the stub
            # is what any later pass of the boundary leaves as it is.
            preview = self._redact(column, elide(doc, PREVIEW_BYTES))
            stub = {"agentkeep_elided_bytes": size, "preview": preview}
            doc = json.dumps(stub, ensure_ascii=False)
        return doc

    def json_batch(self, column: str, values: Sequence[Any]) -> list[str]:
        """:meth:`json` for many values, pre-checking all their documents in one pass.

        Sound because no rule keyword contains a newline (tested): a keyword found in the
        joined text lies inside one document.
        """
        docs = [self._dumps(column, value) for value in values]
        try:
            any_candidate = _redactor().may_contain_secret("\n".join(docs))
        except Exception as exc:  # fail closed
            raise _failure(exc, column, self.refuse) from exc
        return [
            self.json(column, value, dumped=doc, checked=not any_candidate)
            for value, doc in zip(values, docs, strict=True)
        ]

    def bind(self, column: str, value: Any) -> Any:
        """A scalar for a statement parameter: text through :meth:`text`, numbers through
        :meth:`number`, None and integers as they are; anything else is refused."""
        if isinstance(value, str):
            return self.text(column, value)
        if value is None or isinstance(value, int):
            return value
        if isinstance(value, float):
            return self.number(column, value)
        raise self._refused(f"{column}: unsupported value type {type(value).__name__}")

    # -- the records every write carries ----------------------------------------------------

    def add(self, column: str, counts: dict[str, int]) -> None:
        """Count redactions made outside this object (file contents, streams)."""
        for rule, count in counts.items():
            self.pending.append((rule, column, count))

    def discard(self) -> None:
        """Forget the pending redactions: the row they belong to was not written."""
        self.pending.clear()

    def record(self, conn: Any, table: str, row_id: int | None, now: str) -> None:
        """Write the pending redactions of a row of ``table`` (same transaction): rule,
        row, column and count, never the value."""
        if not self.pending:
            return
        rows = [(now, rule, table, row_id, column, n) for rule, column, n in self.pending]
        self.pending.clear()
        conn.executemany(_INSERT_REDACTIONS, rows)

    def event(
        self,
        conn: Any,
        *,
        now: str,
        actor: str,
        entity: str,
        entity_id: int | None,
        kind: str,
        data: Any,
        undoes: int | None = None,
        prepared: tuple[str, list[tuple[str, str, int]]] | None = None,
    ) -> tuple[int, tuple[Any, ...]]:
        """Append an event row (principle 4: in the mutation's transaction) and record its
        redactions; returns its seq and the stored values (in :data:`EVENT_COLUMNS` order).
        ``now`` is the transaction's own timestamp, not input. Redactions pending for the
        row being written around it stay pending for that row. ``prepared``: ``data``
        already passed through :meth:`json` of another boundary of the same mode and
        limit (before the transaction began), as its document and that boundary's
        pending redactions."""
        outer, self.pending = self.pending, [] if prepared is None else list(prepared[1])
        try:
            values = (
                now,
                self.text("actor", actor),
                self.text("entity", entity),
                entity_id,
                self.text("kind", kind),
                self.json("data", data) if prepared is None else prepared[0],
                undoes,
            )
            seq = conn.insert(_INSERT_EVENT, values)
            self.record(conn, "events", seq, now)
        finally:
            self.pending = outer
        return int(seq), values


_INF = float("inf")
