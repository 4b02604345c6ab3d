"""The one writer for captured agent data: hooks and importers both write through it.

A :class:`Writer` works inside a write transaction someone else opened (the hook's own
``BEGIN IMMEDIATE``, or a library :meth:`Store.transaction`). It upserts the session and
agent an outside tool reported, appends hook deliveries (``captures``) and transcript
entries (``messages``), and moves import cursors. Every value it stores goes through the
one privacy boundary (:mod:`agentkeep.boundary`) in REPLACE mode, fail-closed, and each
redaction is recorded exactly as the library's :class:`agentkeep._core.Tx` records them
(rule, table, row, column, count), by the same code; so are its events.

This module is on the hook's fast path (principle 11 of docs/design.md): it imports only the
standard library at runtime — not even ``typing`` — and the redactor lazily.
"""

from __future__ import annotations

import os

from agentkeep import lifecycle
from agentkeep.boundary import REPLACE, TITLE_CHARS, Boundary
from agentkeep.errors import CaptureError
from agentkeep.timeutil import utc_now

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover - for type checkers only
    from collections.abc import Iterable
    from typing import Any

# The newest schema this module writes. Equal to migrations.SCHEMA_VERSION (tested); the
# hook compares it with the store's and lets the full library migrate when they differ.
SCHEMA_VERSION = 9

POLICIES = ("full", "metadata", "off")
DEFAULT_POLICY = "full"
DEFAULT_SPILL_BYTES = 64 * 1024
DEFAULT_MAX_FIELD_BYTES = 1_048_576  # config store.max_field_bytes

# Normalized hook event kinds (captures.event).
EVENTS = (
    "session_start",
    "prompt",
    "tool_pre",
    "tool_post",
    "tool_fail",
    "turn_end",
    "subagent_end",
    "compact",
    "session_end",
    "notification",
    "other",
)

# Hook events that show the agent working in a session (an ended session resumes).
RESUMING_EVENTS = ("session_start", "prompt", "tool_pre", "tool_post", "tool_fail")

TOKEN_COLUMNS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")
COUNTER_COLUMNS = ("prompts", "tool_calls", "failures", "turns")
# Where a title came from, weakest first (sessions.title_source; see Writer.set_title).
TITLE_SOURCES = ("summary", "agent", "user")


__all__ = ["CaptureError", "Writer", "dedupe_key", "relative_path", "stored_key", "utc_now"]
PATH_CHARS = 4096  # a working directory is cut here (after redaction)

# Identifiers no redaction rule can match, by their shape alone (:meth:`Writer._shaped`):
# a lower-case UUID with an optional ``:<block index>`` (a transcript line's uuid, its
# parent's, a row's external id), agentkeep's own ISO time (``iso_timestamp``), and
# ``<cursor id>:<byte offset>`` (``source_ref``). Every rule needs a keyword (the gate of
# agentkeep.redact.may_contain_secret), and none is written in these characters
# (``[0-9a-f:-]``, ``[0-9T:.Z-]``) except ``4b1d`` and ``a3-``: a value holding either goes
# through the redactor like any other (tests/test_capture_shapes.py checks the rule set).
_SHAPE_PATTERN = (
    r"(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}(?::[0-9]{1,6})?"
    r"|[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z"
    r"|[0-9]{1,18}:[0-9]{1,18})\Z"
)
SHAPE_KEYWORDS = ("4b1d", "a3-")  # the rule set's keywords written in those characters
_shape_match: Any = None  # compiled on first use: the hook's start-up does not need re

_INSERT_MESSAGE = (
    "INSERT INTO messages (session_id, seq, at, role, kind, text, tool_name, tool_use_id,"
    " is_error, model, message_key, input_tokens, output_tokens, cache_read_tokens,"
    " cache_write_tokens, external_id, parent_external_id, raw, source_ref)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (session_id, external_id) DO NOTHING"
)


def relative_path(root: str, path: str | None) -> str | None:
    """``path`` relative to the project root ('..' allowed), POSIX separators; None stays None.

    The store never records absolute paths (principle 9 of docs/design.md). A relative ``path`` is
    taken as already relative to the root.
    """
    if not path:
        return None
    if not os.path.isabs(path):
        return path.replace(os.sep, "/")
    rel = os.path.relpath(os.path.normpath(path), os.path.normpath(root))
    return rel.replace(os.sep, "/")


def under_root(root: str, path: str | None) -> bool:
    """Whether ``path`` is the root or inside it."""
    if not path or not os.path.isabs(path):
        return False
    root = os.path.normpath(root)
    path = os.path.normpath(path)
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def dedupe_key(
    source: str, session: str | None, event: str, tool_use_id: str | None, payload: bytes
) -> str:
    """The key that makes a repeated delivery a no-op: hooks can fire twice (one handler in
    two settings sources, SessionStart again on resume)."""
    if tool_use_id:
        return f"{source}|{session or ''}|{event}|{tool_use_id}"
    digest = _sha256(payload).hexdigest()
    return f"{source}|{session or ''}|{event}|sha256:{digest}"


def stored_key(key: str, boundary: Boundary | None = None) -> str:
    """A dedupe key as ``captures.dedupe_key`` stores it (redacted, cut after that): the
    hook looks a key up in this form before spilling a payload."""
    return (boundary or Boundary(REPLACE)).ident("dedupe_key", key) or key


def _sha256(data: bytes) -> Any:
    """hashlib.sha256 without loading hashlib's OpenSSL binding (~3 ms on the hook path)."""
    try:
        from _sha2 import sha256  # type: ignore[import-not-found,unused-ignore]  # 3.12+
    except ImportError:
        try:
            from _sha256 import sha256  # type: ignore[import-not-found,no-redef,unused-ignore]
        except ImportError:  # pragma: no cover - another Python implementation
            from hashlib import sha256
    return sha256(data)


class Writer:
    """Writes captured data inside an open write transaction on ``conn``.

    ``policy`` is the capture policy: under 'metadata' every text (prompts, responses, tool
    inputs and outputs, raw payloads) is dropped and only counts, names, ids, tokens and
    timings are kept. 'off' is handled by callers (they do not write at all).
    """

    def __init__(
        self,
        conn: Any,  # a backends.base.Connection (the hook's: backends/sqlite/fastpath.py)
        root: str,
        *,
        policy: str = DEFAULT_POLICY,
        actor: str = "capture",
        max_field_bytes: int = DEFAULT_MAX_FIELD_BYTES,
        now: str | None = None,
        idle_minutes: int | None = None,
    ) -> None:
        if policy not in POLICIES:
            raise CaptureError(f"unknown capture policy {policy!r}")
        self.conn = conn
        self.root = root
        self.policy = policy
        self.actor = actor
        self.max_field_bytes = max_field_bytes
        self.now = now or utc_now()
        # The hook passes sessions.idle_minutes: a new session then ends idle ones, at most
        # lifecycle.SWEEP_LIMIT per new session (the rest: the next import run).
        # Importers leave it None and end idle sessions once an import run is over
        # (mid-import, a session's last activity is only as new as the lines read so far).
        self.idle_minutes = idle_minutes
        self.boundary = Boundary(REPLACE, max_field_bytes=max_field_bytes)
        # Identifiers found clean, for the columns whose values repeat row after row (a
        # role, a kind, a model, a response's key, a line's time and parent, a tool call's
        # id): each is checked once per writer instead of once per row (:meth:`_repeated`).
        self._clean_idents: set[str] = set()
        # A shaped identifier (at most 43 ASCII characters) is never cut nor elided unless
        # the field limit is absurdly small; then the boundary decides, as for any value.
        self._shapes_kept = max_field_bytes >= 256

    @property
    def keeps_text(self) -> bool:
        return self.policy == "full"

    # -- the privacy boundary -------------------------------------------------------------
    # Captured data is never dropped for what it contains: the boundary runs in REPLACE
    # mode (NUL and invalid UTF-8 become U+FFFD, NaN null, oversize text is elided; every
    # cut after redaction). See agentkeep.boundary for the one policy.

    def text(
        self, column: str, value: object, *, content: bool = True, max_chars: int | None = None
    ) -> str | None:
        """Validate and redact one text for ``column``. ``content`` texts (what the agent or
        user said or did) are dropped under the metadata policy; names and ids are kept."""
        if value is None or (content and not self.keeps_text):
            return None
        return self.boundary.text(column, value, max_chars=max_chars)

    def ident(self, column: str, value: object) -> str | None:
        """A name or id from a payload (kept under every policy): redacted like any text
        (the same input always gives the same stored text, so lookups still match) and
        cut to MAX_ID_CHARS after that."""
        if value is None:
            return None
        return self.boundary.ident(column, value if isinstance(value, str) else str(value))

    def _repeated(self, column: str, value: str | None) -> str | None:
        """:meth:`ident` for a value that repeats: the boundary's answer is the same for the
        same text, so a value it kept as it was, without a redaction, is kept again."""
        if value is None or not isinstance(value, str):
            return None if value is None else self.ident(column, value)
        if value in self._clean_idents:
            return value
        pending = len(self.boundary.pending)
        clean = self.ident(column, value)
        if clean == value and len(self.boundary.pending) == pending:
            if len(self._clean_idents) >= 4096:
                self._clean_idents.clear()
            self._clean_idents.add(value)
        return clean

    def _shaped(self, column: str, value: str | None, *, repeats: bool = True) -> str | None:
        """:meth:`_repeated` for an identifier that is usually unique to its row (a time, a
        uuid, an external id, a source reference): one whose shape no redaction rule can
        match (``_SHAPE_PATTERN``) is stored as it is, without asking the redactor."""
        global _shape_match
        if value is None:
            return None
        if _shape_match is None:
            import re

            _shape_match = re.compile(_SHAPE_PATTERN).match
        if (
            isinstance(value, str)
            and self._shapes_kept
            and _shape_match(value) is not None
            and not any(keyword in value for keyword in SHAPE_KEYWORDS)
        ):
            return value
        return self._repeated(column, value) if repeats else self.ident(column, value)

    def json(self, column: str, value: Any, *, content: bool = True) -> str | None:
        """Serialise and redact a JSON value. NaN and infinities become null (a vendor's
        payload is not ours to refuse), and the redactor walks the structure."""
        if value is None or (content and not self.keeps_text):
            return None
        return self.boundary.json(column, value)

    def _cwd(self, cwd: str | None) -> str | None:
        """A working directory, relative to the project root (kept under every policy)."""
        return self.text("cwd", relative_path(self.root, cwd), content=False, max_chars=PATH_CHARS)

    def _record_redactions(self, table: str, row_id: int | None) -> None:
        self.boundary.record(self.conn, table, row_id, self.now)

    def _event(self, entity: str, entity_id: int, kind: str, data: dict[str, Any]) -> None:
        self.boundary.event(
            self.conn,
            now=self.now,
            actor=self.actor,
            entity=entity,
            entity_id=entity_id,
            kind=kind,
            data=data,
        )

    # -- sessions and agents ----------------------------------------------------------------

    def session(
        self,
        source: str,
        external_id: str,
        *,
        started_at: str | None = None,
        cwd: str | None = None,
        model: str | None = None,
        title: str | None = None,
        parent_id: int | None = None,
        agent_kind: str | None = None,
        agent_role: str | None = None,
        title_chars: int = TITLE_CHARS,
    ) -> int:
        """The id of the session ``(source, external_id)``, created on first sight together
        with its agent (named ``<source>-<external id>``) and a ``session.started``
        event. Later calls fill in what was missing (model, title, cwd, parent) and move
        started_at earlier if an importer knows an earlier time; such a change writes a
        ``session.updated`` event ``{field: [old, new]}``.

        ``external_id`` is stored redacted (a session id comes from a payload) and looked up
        the same way, so every delivery of a session still finds it. ``title`` is cut to
        ``title_chars`` after redaction: pass it whole."""
        source = self.ident("source", source) or source
        external_id = self.ident("external_id", external_id) or external_id
        started_at = self.ident("started_at", started_at)
        row = self.conn.execute(
            "SELECT id, model, title, cwd, parent_id, started_at FROM sessions"
            " WHERE source = ? AND external_id = ?",
            (source, external_id),
        ).fetchone()
        model = self.ident("model", model)
        title = self.text("title", title, max_chars=title_chars)
        rel_cwd = self._cwd(cwd)
        if row is not None:
            session_id = int(row[0])
            self._fill_session(
                session_id, tuple(row[1:]), (model, title, rel_cwd, parent_id, started_at)
            )
            self._record_redactions("sessions", session_id)
            return session_id
        agent_id = self._agent(source, external_id, agent_kind or source, agent_role)
        at = started_at or self.now
        session_id = int(
            self.conn.insert(
                "INSERT INTO sessions (agent_id, source, external_id, status, started_at, model,"
                " cwd, title, parent_id, capture, last_seen_at)"
                " VALUES (?, ?, ?, 'running', ?, ?, ?, ?, ?, ?, ?)",
                (
                    agent_id,
                    source,
                    external_id,
                    at,
                    model,
                    rel_cwd,
                    title,
                    parent_id,
                    self.policy if self.policy != "off" else None,
                    at,
                ),
            )
        )
        self._record_redactions("sessions", session_id)
        lifecycle.session_started(self.conn, self._event, session_id, now=self.now)
        if self.idle_minutes is not None:  # a few at a time: the hook holds the lock
            self.end_idle_sessions(self.idle_minutes, limit=lifecycle.SWEEP_LIMIT)
        return session_id

    def _fill_session(
        self, session_id: int, stored: tuple[Any, ...], given: tuple[Any, ...]
    ) -> None:
        """Fill a session's empty model, title, cwd and parent from ``given`` and move its
        start earlier; one ``session.updated`` event names what changed."""
        names = ("model", "title", "cwd", "parent_id", "started_at")
        before = dict(zip(names, stored, strict=True))
        after = {
            name: before[name] if before[name] is not None else value
            for name, value in zip(names[:-1], given[:-1], strict=True)
        }
        started, earlier = before["started_at"], given[-1]
        after["started_at"] = (
            started if started is None or earlier is None else min(started, earlier)
        )
        changes = {
            name: [before[name], after[name]] for name in names if after[name] != before[name]
        }
        if not changes:
            return
        self.conn.execute(
            f"UPDATE sessions SET {', '.join(f'{name} = ?' for name in changes)} WHERE id = ?",
            (*[new for _, new in changes.values()], session_id),
        )
        self._event("session", session_id, "session.updated", changes)

    def set_title(self, session_id: int, title: str | None, *, source: str) -> bool:
        """Give a session a title an importer read. ``source`` is 'user' (the user named
        it), 'agent' (the tool generated it) or 'summary' (an older version's summary
        line). The new title replaces the stored one unless that came from a stronger
        source (user > agent > summary; a title without a source is the weakest); among
        equals the title written last wins. Redacted first, then cut to 200 characters.
        A change writes ``session.updated`` ``{title: [old, new], title_source: [old,
        new]}`` (the fields that changed). Returns whether the title changed."""
        rank = TITLE_SOURCES.index(source)
        clean = self.text("title", title.strip() if title else None, max_chars=TITLE_CHARS)
        before = self.conn.execute(
            "SELECT title, title_source FROM sessions WHERE id = ?", (session_id,)
        ).fetchone()
        if not clean or before is None:
            self.boundary.discard()
            return False
        same = self.conn.dialect.same
        cursor = self.conn.execute(
            "UPDATE sessions SET title = ?, title_source = ? WHERE id = ?"
            " AND (title IS NULL OR title_source IS NULL OR"
            " CASE title_source WHEN 'summary' THEN 0 WHEN 'agent' THEN 1 ELSE 2 END <= ?)"
            f" AND NOT ({same('title', '?')} AND {same('title_source', '?')})",
            (clean, source, session_id, rank, clean, source),
        )
        if not cursor.rowcount:
            self.boundary.discard()
            return False
        self._record_redactions("sessions", session_id)
        after = {"title": clean, "title_source": source}
        changes = {
            name: [old, after[name]]
            for name, old in zip(after, before, strict=True)
            if old != after[name]
        }
        self._event("session", session_id, "session.updated", changes)
        return True

    def hold_title(self, source: str, leaf: str, title: str, *, title_source: str) -> None:
        """Keep a title for the conversation whose last message is ``leaf`` until that
        message is imported (:meth:`release_title`); a later title for the same leaf
        replaces it. Bookkeeping, no event: the title is nobody's yet, and its event is
        written when it lands on a session."""
        clean = self.text("title", title.strip(), max_chars=TITLE_CHARS)
        leaf = self.ident("leaf", leaf) or leaf
        if not clean:
            self.boundary.discard()
            return
        self.conn.execute(
            "INSERT INTO pending_titles (source, leaf, title, title_source, at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (source, leaf) DO UPDATE SET"
            " title = excluded.title, title_source = excluded.title_source, at = excluded.at",
            (source, leaf, clean, title_source, self.now),
        )
        self._record_redactions("pending_titles", None)

    def held_titles(self, source: str) -> set[str]:
        """The leaves that titles wait for."""
        rows = self.conn.execute("SELECT leaf FROM pending_titles WHERE source = ?", (source,))
        return {str(row[0]) for row in rows}

    def release_title(self, source: str, leaf: str, session_id: int) -> bool:
        """Move the title waiting for ``leaf`` to the session that holds it (through
        :meth:`set_title`, so with its event if the session's title changes)."""
        leaf = self.ident("leaf", leaf) or leaf  # as hold_title stored it
        row = self.conn.execute(
            "SELECT title, title_source FROM pending_titles WHERE source = ? AND leaf = ?",
            (source, leaf),
        ).fetchone()
        if row is None:
            return False
        self.conn.execute(
            "DELETE FROM pending_titles WHERE source = ? AND leaf = ?", (source, leaf)
        )
        return self.set_title(session_id, str(row[0]), source=str(row[1]))

    def end_idle_sessions(self, idle_minutes: int, *, limit: int | None = None) -> list[int]:
        """End the observed sessions idle for longer than ``idle_minutes`` (the lifecycle
        rule in :mod:`agentkeep.lifecycle`), oldest first, at most ``limit``; their ids."""
        return lifecycle.end_idle_sessions(
            self.conn, self._event, idle_minutes=idle_minutes, now=self.now, limit=limit
        )

    def _agent(self, source: str, external_id: str, kind: str, role: str | None) -> int:
        # The whole id: prefixes collide (OpenCode's ses_, Codex's time-ordered UUIDv7),
        # and a subagent (<parent>:<agent>) is an agent of its own.
        name = f"{source}-{external_id}"
        name = self.ident("name", name) or name
        kind = self.ident("kind", kind) or kind
        row = self.conn.execute("SELECT id FROM agents WHERE name = ?", (name,)).fetchone()
        if row is not None:
            return int(row[0])
        agent_id: int = self.conn.insert(
            "INSERT INTO agents (name, kind, role, status, created_at, updated_at, heartbeat_at)"
            " VALUES (?, ?, ?, 'active', ?, ?, ?)",
            (name, kind, self.ident("role", role), self.now, self.now, self.now),
        )
        self._event(
            "agent", agent_id, "agent.created", lifecycle.row_payload(self.conn, "agents", agent_id)
        )
        return agent_id

    def bump(self, session_id: int, *, at: str | None = None, **counts: int) -> None:
        """Add to a session's counters (prompts, tool_calls, failures, turns): hooks count
        each delivery once (duplicates never reach here)."""
        at = self.ident("at", at)
        sets = [f"{name} = {name} + ?" for name in counts if name in COUNTER_COLUMNS]
        values: list[Any] = [counts[name] for name in counts if name in COUNTER_COLUMNS]
        sets.append(
            f"last_seen_at = {self.conn.dialect.greatest('coalesce(last_seen_at, ?)', '?')}"
        )
        self.conn.execute(
            f"UPDATE sessions SET {', '.join(sets)} WHERE id = ?",
            (*values, at or self.now, at or self.now, session_id),
        )
        self.conn.execute(
            "UPDATE agents SET heartbeat_at = ?, updated_at = ?, status = 'active'"
            " WHERE id = (SELECT agent_id FROM sessions WHERE id = ?) AND status = 'idle'",
            (self.now, self.now, session_id),
        )

    def raise_counts(self, session_id: int, **counts: int) -> None:
        """Raise counters and token totals to at least ``counts`` (an importer's view of the
        whole transcript), so a session fed by hooks and an importer never double counts."""
        names = [name for name in counts if name in COUNTER_COLUMNS or name in TOKEN_COLUMNS]
        if not names:
            return
        greatest = self.conn.dialect.greatest
        sets = ", ".join(f"{n} = {greatest(n, '?')}" for n in names)
        self.conn.execute(
            f"UPDATE sessions SET {sets} WHERE id = ?",
            (*[int(counts[n]) for n in names], session_id),
        )

    def end_session(
        self,
        session_id: int,
        *,
        status: str = "ended",
        at: str | None = None,
        reason: str | None = None,
    ) -> None:
        """Mark a session ended (idempotent: an ended session keeps its first end); its
        agent is done once none of its sessions runs (:mod:`agentkeep.lifecycle`)."""
        lifecycle.session_ended(
            self.conn,
            self._event,
            session_id,
            status=status,
            at=self.ident("at", at) or self.now,
            now=self.now,
            reason=reason,
        )

    # -- hook deliveries ------------------------------------------------------------------

    def capture(
        self,
        *,
        source: str,
        event: str,
        dedupe_key: str,
        vendor_event: str | None = None,
        session_id: int | None = None,
        turn_id: str | None = None,
        tool_name: str | None = None,
        tool_use_id: str | None = None,
        cwd: str | None = None,
        exit_code: int | None = None,
        duration_ms: int | None = None,
        payload: Any = None,
        artifact_id: int | None = None,
        at: str | None = None,
    ) -> int | None:
        """Append one hook delivery; None if this delivery was stored before.

        ``payload`` is the decoded vendor JSON (a dict); it is redacted and stored whole
        under the full policy, dropped under metadata.
        """
        at = self.ident("at", at)
        inserted = self.conn.execute(
            "INSERT INTO captures (at, source, event, vendor_event, session_id, turn_id, tool_name,"
            " tool_use_id, cwd, exit_code, duration_ms, payload, artifact_id, dedupe_key)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (dedupe_key) DO NOTHING RETURNING id",
            (
                at or self.now,
                self.ident("source", source),
                self.ident("event", event),
                self.ident("vendor_event", vendor_event),
                session_id,
                self.ident("turn_id", turn_id),
                self.ident("tool_name", tool_name),
                self.ident("tool_use_id", tool_use_id),
                self._cwd(cwd),
                exit_code,
                duration_ms,
                self.json("payload", payload),
                artifact_id,
                stored_key(dedupe_key, self.boundary),
            ),
        ).fetchall()
        if not inserted:  # stored before: nothing was written
            self.boundary.discard()
            return None
        row_id = int(inserted[0][0])
        self._record_redactions("captures", row_id)
        if session_id is not None and event in RESUMING_EVENTS:
            # The agent works in the session after it ended (`claude --resume`): it runs
            # again. Not a turn end or notification: Codex's notify program and OpenCode's
            # bus may deliver those after the session's end.
            lifecycle.session_resumed(
                self.conn, self._event, session_id, at=at or self.now, now=self.now
            )
        return row_id

    # -- metrics ----------------------------------------------------------------------------

    def metric(
        self,
        name: str,
        value: float,
        *,
        at: str | None = None,
        labels: dict[str, str] | None = None,
        session_id: int | None = None,
        once: bool = False,
    ) -> int | None:
        """Append one observation (token counts, costs, timings from a tool's history).
        With ``once``, an identical observation (name, time, value, labels, session)
        stored before makes this a no-op returning None (re-imports add nothing)."""
        if value != value or value in (float("inf"), float("-inf")):
            raise CaptureError(f"metric {name!r} is not a finite number")
        row = (
            self.ident("name", name),
            float(value),
            self.json("labels", labels or {}, content=False),
            self.ident("at", at) or self.now,
            session_id,
        )
        if (
            once
            and self.conn.execute(
                "SELECT 1 FROM metrics WHERE name = ? AND value = ? AND labels = ? AND at = ?"
                f" AND {self.conn.dialect.same('session_id', '?')}",
                row,
            ).fetchone()
        ):
            self.boundary.discard()
            return None
        row_id: int = self.conn.insert(
            "INSERT INTO metrics (name, value, labels, at, session_id) VALUES (?, ?, ?, ?, ?)",
            row,
        )
        self._record_redactions("metrics", row_id)
        return row_id

    # -- transcript entries ---------------------------------------------------------------

    def message(
        self,
        session_id: int,
        *,
        seq: int,
        external_id: str,
        role: str,
        kind: str,
        text: str | None = None,
        at: str | None = None,
        tool_name: str | None = None,
        tool_use_id: str | None = None,
        is_error: bool = False,
        model: str | None = None,
        message_key: str | None = None,
        tokens: Iterable[int] | None = None,
        parent_external_id: str | None = None,
        raw: Any = None,
        source_ref: str | None = None,
        text_chars: int | None = None,
    ) -> int | None:
        """Append one transcript entry; None if ``(session, external_id)`` exists already
        (re-imports are no-ops). ``tokens`` is (input, output, cache_read, cache_write).
        ``text_chars`` cuts the text, after redaction (pass the text whole)."""
        counts = tuple(int(t or 0) for t in tokens) if tokens is not None else (0, 0, 0, 0)
        try:
            values = (
                session_id,
                seq,
                self._shaped("at", at),
                self._repeated("role", role),
                self._repeated("kind", kind),
                self.text("text", text, max_chars=text_chars),
                self._repeated("tool_name", tool_name),
                self._repeated("tool_use_id", tool_use_id),  # a call, then its result
                1 if is_error else 0,
                self._repeated("model", model),
                self._repeated("message_key", message_key),
                *counts,
                self._shaped("external_id", external_id, repeats=False),
                self._shaped("parent_external_id", parent_external_id),  # a line's blocks
                self.json("raw", raw),
                self._shaped("source_ref", source_ref, repeats=False),
            )
        except BaseException:
            self.boundary.discard()  # nothing of this row is stored
            raise
        row_id: int | None = self.conn.insert_new(_INSERT_MESSAGE, values)  # no RETURNING row
        if row_id is None:  # imported before: a no-op
            self.boundary.discard()
            return None
        if self.boundary.pending:
            self._record_redactions("messages", row_id)
        return row_id

    def update_message(
        self, session_id: int, external_id: str, *, text: str | None, is_error: bool = False
    ) -> bool:
        """Replace the text and error flag of an entry imported before whose source
        changed since (a streamed text that grew, a tool call that finished). The FTS
        triggers follow. Returns whether anything changed."""
        external_id = self.ident("external_id", external_id) or external_id
        existing = self.conn.execute(
            "SELECT id, text, is_error FROM messages WHERE session_id = ? AND external_id = ?",
            (session_id, external_id),
        ).fetchone()
        if existing is None:
            return False
        clean = self.text("text", text)
        flag = 1 if is_error else 0
        if clean == existing[1] and flag == existing[2]:
            self.boundary.discard()  # recorded with the first version
            return False
        self.conn.execute(
            "UPDATE messages SET text = ?, is_error = ? WHERE id = ?", (clean, flag, existing[0])
        )
        self._record_redactions("messages", int(existing[0]))
        return True

    def message_tokens(self, session_id: int, message_key: str, tokens: Iterable[int]) -> None:
        """Raise the usage recorded on a response's first block to ``tokens`` (later lines
        of one streamed response repeat and grow its usage; it is counted once)."""
        message_key = self.ident("message_key", message_key) or message_key
        values = [int(t or 0) for t in tokens]
        greatest = self.conn.dialect.greatest
        sets = ", ".join(f"{n} = {greatest(n, '?')}" for n in TOKEN_COLUMNS)
        self.conn.execute(
            f"UPDATE messages SET {sets}"
            " WHERE id = (SELECT min(id) FROM messages WHERE session_id = ? AND message_key = ?)",
            (*values, session_id, message_key),
        )

    def session_totals_from_messages(self, session_id: int) -> None:
        """Raise a session's token totals and counters to what its messages say."""
        row = self.conn.execute(
            "SELECT coalesce(sum(input_tokens), 0), coalesce(sum(output_tokens), 0),"
            " coalesce(sum(cache_read_tokens), 0), coalesce(sum(cache_write_tokens), 0),"
            " count(*) FILTER (WHERE kind = 'tool_use'),"
            " count(*) FILTER (WHERE kind = 'tool_result' AND is_error <> 0),"
            " count(DISTINCT coalesce(source_ref, external_id))"
            " FILTER (WHERE role = 'user' AND kind = 'text'),"
            " min(at), max(at) FROM messages WHERE session_id = ?",
            (session_id,),
        ).fetchone()
        self.raise_counts(
            session_id,
            input_tokens=row[0],
            output_tokens=row[1],
            cache_read_tokens=row[2],
            cache_write_tokens=row[3],
            tool_calls=row[4],
            failures=row[5],
            prompts=row[6],
        )
        if row[7]:
            dialect = self.conn.dialect
            self.conn.execute(
                f"UPDATE sessions SET started_at = {dialect.least('started_at', '?')},"
                f" last_seen_at = {dialect.greatest('coalesce(last_seen_at, ?)', '?')}"
                " WHERE id = ?",
                (row[7], row[8], row[8], session_id),
            )
            # New lines after the session ended (resumed without hooks): it runs again.
            lifecycle.session_resumed(self.conn, self._event, session_id, at=row[8], now=self.now)
