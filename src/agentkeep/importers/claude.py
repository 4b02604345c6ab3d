"""Claude Code transcripts: ``$CLAUDE_CONFIG_DIR/projects/<project>/<session>.jsonl``.

Claude Code writes one JSON object per line (docs/design.md "Agent tools' formats") and
deletes the files after ``cleanupPeriodDays`` (30 by default). This importer reads them into
the project's store so the sessions outlive the files.

Which files belong to this project. A project directory's name is the working directory
with every non-alphanumeric character replaced by ``-``. Only directories named like one of
the project's directories (its root and worktrees) — exactly, or followed by ``-`` for a
session started in a subdirectory — are listed; nothing else under ``projects/`` is
opened. The encoding is lossy (``/a/b-c`` and ``/a/b/c`` collide), so the decision is made
by the ``cwd`` of the file's first line that has one (:meth:`ImportContext.belongs`); a file
of another project gets a 'foreign' cursor and is skipped by a stat from then on. Files
without any ``cwd`` yet are left alone (no cursor) until one shows up.

What becomes what (one ``messages`` row per content block):

==========================================  ============================================
line                                        row(s)
==========================================  ============================================
user text / prompt                          role user, kind text
user ``isMeta`` (skill bodies, caveats)     role system, kind text (not a prompt)
user ``isCompactSummary``                   role system, kind summary
tool_result block                           role tool, kind tool_result: the content the
                                            model saw (``toolUseResult`` is not used)
assistant text / thinking / tool_use        role assistant, kind text / thinking / tool_use
                                            (tool_use text: the input as compact JSON)
image / document blocks                     a short placeholder text, never the base64
system ``compact_boundary``                 role system, kind event ("compacted (auto, …)")
other system lines                          role system, kind event ("<subtype>: <content>",
                                            "turn took 12.3 s"); the line's own fields
                                            (durations, hook summaries) in ``raw``
``summary`` lines (older versions)          the title of the session holding ``leafUuid``
                                            (no row; see Titles)
``ai-title`` / ``custom-title``             the session's title (no row; see Titles)
``progress`` with ``agent_progress``        the subagent's message, in its child session
other ``progress``, ``queue-operation``,    nothing: transient UI state (queued prompts
``file-history-snapshot``                   come back as user lines, snapshots are file
                                            backups)
any other type (``attachment``, …)          role system, kind raw, the line in ``raw``
a line that cannot be read                  role system, kind raw, the reason (and the
                                            line's first 2,000 characters) as text
==========================================  ============================================

Identity and order. ``external_id`` is ``<uuid>:<block index>`` (a content hash for lines
without a uuid), so re-reading a file — resumed, rewritten or restored — adds nothing twice.
``seq`` is ``byte offset × 16 + block index``. ``parent_external_id`` is ``parentUuid``.

Tokens. Claude Code writes one content block per line, several lines per response; they
share ``message.id`` and ``requestId``, and each repeats the response's usage as it
stood then (output_tokens grows). ``message_key`` is ``"<message.id>|<requestId>"``; the
usage is stored once, on the response's first block, and raised to the largest count any
of its lines carries: the final count, also when the lines arrive over several runs.
Tools that keep the first line's count report fewer output tokens (docs/design.md). Each
response's usage is filed under that response's own ``message.model`` (a ``/model``
switch mid-session), which ``stats --by model`` reads.

Subagents, a child session ``<session id>:<agent id>`` whose ``parent_id`` is the parent
session (created if not imported yet), from whichever of these holds its lines:

- ``<session>/subagents/agent-<id>.jsonl`` (2.x), or an older top-level ``agent-<id>.jsonl``
  (``isSidechain`` lines with an ``agentId``);
- ``progress`` lines of the parent (``data.type`` 'agent_progress', ``data.agentId``, the
  subagent's line in ``data.message``), written when there is no such file. The same
  message under both keeps one row (same external id);
- 1.0.x sidechain lines in the main file (``isSidechain`` without an ``agentId``): each
  chain of ``parentUuid`` links from a root line is one subagent, ``sidechain-<root
  uuid prefix>``. Their prompts are the subagent's, never the user's.

The parent's spawning call (``parentToolUseID``, or the Task/Agent result naming the
``agentId``) gives the child a first 'event' row (``seq`` -1). A child starts at its first
line; one whose lines are nowhere starts when the call was made. The result coming back
ends the child session.

Titles (``Writer.set_title``): ``custom-title`` (the user's) beats ``ai-title`` beats a
``summary`` line; among equals the later line wins. A summary names the last message of
the conversation it titles (``leafUuid``), which may be in another file: the title goes
to that message's session, now or, if it is not imported yet, when it is
(``pending_titles``).

Working directory. The file's own session takes the ``cwd`` of the file's first line
that has one, whichever line a run starts at (each run reads it from the file's head: a
cursor keeps no absolute path); other sessions take the first one their own lines carry.
A parent never takes its subagent's: created from a subagent's file (imported first) it
has none until its own file gives it one.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from agentkeep.capture import Writer
from agentkeep.importers import FileOutcome, ImportContext, SourceFile
from agentkeep.importers.files import Cursor, Line
from agentkeep.importers.transcript import (
    OPEN_TOOLS,
    TranscriptFile,
    as_int,
    clean_name,
    compact_json,
    epoch_of,
    flatten_content,
    import_transcript,
    iso_timestamp,
    line_hash,
    media_placeholder,
    remember,
    scrub_media,
)

SOURCE = "claude"
# A converted directory name longer than this is truncated and a hash appended (docs).
NAME_LIMIT = 200
# Bounded per-file memory saved on the cursor (split responses are close together).
RECENT_KEYS = 32

SKIPPED_TYPES = frozenset({"queue-operation", "file-history-snapshot"})
# title line type -> (its field, sessions.title_source)
TITLE_TYPES = {"ai-title": ("aiTitle", "agent"), "custom-title": ("customTitle", "user")}
# Sidechain lines remembered per file to tell which subagent a 1.0.x sidechain line
# continues (its parentUuid); a subagent's lines are close together in a file.
SIDECHAIN_UUIDS = 4096
_NOT_ALNUM = re.compile(r"[^A-Za-z0-9]")


# -- discovery ------------------------------------------------------------------------------


def encode_project_dir(path: str) -> str:
    """Claude Code's directory name for a working directory: every character that is not an
    ASCII letter or digit becomes '-' (docs/design.md "Agent tools' formats")."""
    return _NOT_ALNUM.sub("-", path)


def claude_roots() -> list[Path]:
    """Where Claude Code keeps ``projects/``: ``$CLAUDE_CONFIG_DIR``, else ``~/.claude`` and
    the XDG location newer versions use (``~/.config/claude``)."""
    configured = os.environ.get("CLAUDE_CONFIG_DIR")
    if configured:
        return [Path(configured).expanduser() / "projects"]
    home = Path.home()
    xdg = os.environ.get("XDG_CONFIG_HOME") or str(home / ".config")
    return [home / ".claude" / "projects", Path(xdg) / "claude" / "projects"]


def _name_matcher(project_dirs: Iterable[str]) -> Any:
    encoded = [encode_project_dir(d).casefold() for d in project_dirs]
    pinned = os.environ.get("CLAUDE_CODE_PROJECT_DIR_NAME")

    def matches(name: str) -> bool:
        if pinned and name == pinned:
            return True
        folded = name.casefold()
        for enc in encoded:
            if len(enc) >= NAME_LIMIT:
                if folded.startswith(enc[:NAME_LIMIT]):
                    return True
            elif folded == enc or folded.startswith(enc + "-"):
                return True
        return False

    return matches


def _dir_key(directory: Path) -> str:
    return hashlib.sha256(directory.name.encode("utf-8", "surrogateescape")).hexdigest()[:12]


def _project_files(directory: Path) -> Iterator[tuple[Path, str, dict[str, Any]]]:
    """(path, key, hint) of a project directory's transcripts: subagents first, so a child
    session is created by its own first line rather than by its parent's call."""
    prefix = _dir_key(directory)
    for path in sorted(directory.glob("*/subagents/*.jsonl")):
        session = path.parent.parent.name
        hint = {"session": session, "agent": path.stem.removeprefix("agent-"), "subagent": True}
        yield path, f"{prefix}/{session}/subagents/{path.name}", hint
    for path in sorted(directory.glob("*.jsonl")):
        yield path, f"{prefix}/{path.name}", {"session": path.stem}


def _single_file(path: Path) -> tuple[Path, str, dict[str, Any]]:
    if path.parent.name == "subagents":
        directory = path.parent.parent.parent
        session = path.parent.parent.name
        hint = {"session": session, "agent": path.stem.removeprefix("agent-"), "subagent": True}
        return path, f"{_dir_key(directory)}/{session}/subagents/{path.name}", hint
    return path, f"{_dir_key(path.parent)}/{path.name}", {"session": path.stem}


# -- the importer ---------------------------------------------------------------------------


class ClaudeImporter:
    source = SOURCE

    def discover(self, ctx: ImportContext) -> Iterable[SourceFile]:
        """This project's transcripts, found by directory name and stat only."""
        if ctx.store.config["capture.policy"] == "off":
            return []
        matches = _name_matcher(ctx.project_dirs)
        found: list[tuple[Path, str, dict[str, Any]]] = []
        if ctx.path is not None:
            path = ctx.path.expanduser()
            if path.is_file():
                found.append(_single_file(path))
            elif any(path.glob("*.jsonl")) or any(path.glob("*/subagents/*.jsonl")):
                found.extend(_project_files(path))  # one project directory, named by the user
            else:
                found.extend(_projects_files(path, matches))
        else:
            for root in claude_roots():
                found.extend(_projects_files(root, matches))
        since = epoch_of(ctx.since)
        files: dict[str, SourceFile] = {}
        for path, key, hint in found:
            try:
                st = path.stat()
            except OSError:
                continue
            mtime = st.st_mtime
            if not stat.S_ISREG(st.st_mode) or (since is not None and mtime < since):
                continue
            if key in files and files[key].hint["mtime"] >= mtime:
                continue  # the same file under both roots: the newer copy
            files[key] = SourceFile(path=path, key=key, hint={**hint, "mtime": mtime})
        return list(files.values())

    def import_file(
        self, ctx: ImportContext, file: SourceFile, cursor: Cursor | None
    ) -> FileOutcome:
        def open_reader(
            decided: str, cursor_id: Any, cwd: str | None, first_at: str | None
        ) -> _ClaudeFile:
            return _ClaudeFile(ctx, file, decided, cursor_id, first_at, cwd)

        return import_transcript(
            ctx,
            file,
            cursor,
            source=SOURCE,
            find_cwd=_line_cwd,
            open_reader=open_reader,
            head_cwd=True,  # the file's own session takes the head's cwd on every run
        )


def _projects_files(root: Path, matches: Any) -> Iterator[tuple[Path, str, dict[str, Any]]]:
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError:
        return
    for entry in entries:
        if matches(entry.name) and entry.is_dir():
            yield from _project_files(Path(entry.path))


def _line_cwd(obj: Any) -> str | None:
    if isinstance(obj, dict):
        cwd = obj.get("cwd")
        if isinstance(cwd, str) and cwd:
            return cwd
    return None


class _ClaudeFile(TranscriptFile):
    """Reads one transcript: the line handler and batch finisher given to import_lines.

    Running state that must survive between runs lives in the cursor's ``state`` dict:
    ``project`` (the decision), ``first_at`` (the file's first timestamp), ``usage``
    (recent message keys and their recorded usage), ``tools`` (open tool_use ids and
    names), ``session`` (the last session's external id), ``chains`` (recent sidechain
    line uuids and the subagent they belong to). Row ids are looked up again each run (a
    cached id could outlive its row); the file's first working directory is read from its
    head each run (``first_cwd``).
    """

    def __init__(
        self,
        ctx: ImportContext,
        file: SourceFile,
        decided: str,
        cursor_id: Any,
        first_at: str | None,
        first_cwd: str | None = None,
    ) -> None:
        super().__init__(ctx, decided, cursor_id)
        self.first_at = first_at
        self.first_cwd = first_cwd
        hint = file.hint if isinstance(file.hint, dict) else {}
        self.default_session = str(hint.get("session") or file.path.stem)
        self.subagent_file = bool(hint.get("subagent"))
        self.default_agent = str(hint.get("agent") or "") or None
        self.sessions: dict[str, int] = {}
        self.touched: set[int] = set()
        self.model_set: set[int] = set()
        # message key -> (session id, raised usage): one UPDATE per response, not per line
        self.raises: dict[str, tuple[int, list[int]]] = {}
        self.names: dict[str, str] = {}
        self.cwd_known: set[str] = set()  # sessions given a cwd in this run
        self.linked: set[str] = set()  # subagents linked to their spawning call this run
        self.held: set[str] | None = None  # leaves that titles wait for (loaded lazily)
        self.state: dict[str, Any] = {}

    # -- sessions -----------------------------------------------------------------------

    def _external(self, obj: dict[str, Any]) -> tuple[str, str | None]:
        """(the session id, the agent id when the line belongs to a subagent)."""
        session = obj.get("sessionId")
        if not isinstance(session, str) or not session:
            session = self.default_session
        agent = None
        if self.subagent_file or obj.get("isSidechain"):
            value = obj.get("agentId")
            agent = value if isinstance(value, str) and value else None
            if agent is None and self.subagent_file:
                agent = self.default_agent
            elif agent is None:
                agent = self._sidechain_agent(obj)
        return session, agent

    def _sidechain_agent(self, obj: dict[str, Any]) -> str | None:
        """The subagent of a 1.0.x sidechain line (written in the main file, without an
        agentId): the one its parentUuid belongs to, else a new one named after its
        first line (``sidechain-<uuid prefix>``)."""
        chains: dict[str, str] = self.state.setdefault("chains", {})
        uuid = _text_or_none(obj.get("uuid"))
        if uuid is not None and uuid in chains:
            return chains[uuid]
        parent = _text_or_none(obj.get("parentUuid"))
        agent = chains.get(parent) if parent else None
        if agent is None:
            ident = uuid or line_hash(json.dumps(obj, sort_keys=True).encode(), 0)
            agent = f"sidechain-{ident[:8]}"
        if uuid is not None:
            remember(chains, uuid, agent, SIDECHAIN_UUIDS)
        return agent

    def _session(
        self,
        writer: Writer,
        state: dict[str, Any],
        session: str,
        agent: str | None,
        at: str | None,
        cwd: Any,
    ) -> int:
        external = f"{session}:{agent}" if agent else session
        row = self.sessions.get(external)
        cwd = cwd if isinstance(cwd, str) and cwd else None
        own = not agent and not self.subagent_file and session == self.default_session
        if row is None and own and self.first_cwd:
            # The file's own session works where the file began, whichever line this run
            # started at (a later line may have moved to a subdirectory).
            cwd = self.first_cwd
        if row is not None and cwd is not None and external not in self.cwd_known:
            # created by a line without a cwd (a title): the first line that has one
            writer.session(SOURCE, external, cwd=cwd)
            self.cwd_known.add(external)
        if row is None:
            parent = None
            if agent:
                # Never the subagent's cwd: the parent's comes from its own file (read
                # before or after this one), or from the first of its own lines.
                parent = self._session(writer, state, session, None, at, None)
            row = writer.session(
                SOURCE,
                external,
                # a line without a time (a title, a summary) dates a new session by the
                # file's first timestamp, never by the import's clock
                started_at=at or state.get("first_at"),
                cwd=cwd,
                parent_id=parent,
                agent_kind="claude",
                agent_role="subagent" if agent else None,
            )
            self.sessions[external] = row
            if cwd is not None:
                self.cwd_known.add(external)
            if not state.get("session_id") and (agent is not None) == self.subagent_file:
                state["session_id"] = row
        state["session"] = external
        self.touched.add(row)
        return row

    def _line_session(
        self, writer: Writer, state: dict[str, Any], obj: dict[str, Any], at: str | None
    ) -> int:
        session, agent = self._external(obj)
        return self._session(writer, state, session, agent, at, obj.get("cwd"))

    def _fallback_session(self, writer: Writer, state: dict[str, Any]) -> int:
        """The session of a line that names none (the last one seen, else the file's)."""
        last = state.get("session")
        if isinstance(last, str) and last in self.sessions:
            return self.sessions[last]
        if isinstance(last, str) and ":" in last and self.subagent_file:
            parent, child = last.split(":", 1)
            return self._session(writer, state, parent, child, None, None)
        if isinstance(last, str) and last:
            return self._session(writer, state, last, None, None, None)
        agent = self.default_agent if self.subagent_file else None
        return self._session(writer, state, self.default_session, agent, None, None)

    # -- lines ----------------------------------------------------------------------------

    def _start(self, state: dict[str, Any]) -> None:
        if self.first_at:
            state["first_at"] = self.first_at

    def _before(self, writer: Writer, obj: dict[str, Any], state: dict[str, Any]) -> None:
        self.state = state
        if self.raises and _message_key(obj) not in self.raises:
            self._flush_raises(writer, state)

    def finish(self, writer: Writer, state: dict[str, Any]) -> None:
        self._flush_raises(writer, state)
        for session_id in sorted(self.touched):
            writer.session_totals_from_messages(session_id)
            # A turn starts at each prompt (hooks count turn ends; the larger view wins).
            row = writer.conn.execute(
                "SELECT prompts FROM sessions WHERE id = ?", (session_id,)
            ).fetchone()
            if row is not None:
                writer.raise_counts(session_id, turns=int(row[0] or 0))
        self.touched.clear()

    def _bad_line_session(self, writer: Writer, state: dict[str, Any]) -> int:
        return self._fallback_session(writer, state)

    def _line(self, writer: Writer, line: Line, obj: dict[str, Any], state: dict[str, Any]) -> int:
        at = iso_timestamp(obj.get("timestamp"))
        if self.since and at and at < self.since:
            return 0
        kind = obj.get("type")
        if kind == "user" or kind == "assistant":
            return self._conversation(writer, line, obj, state, at, kind)
        if kind == "progress":
            return self._progress(writer, line, obj, state)
        if kind in SKIPPED_TYPES:
            return 0
        if kind == "system":
            return self._system(writer, line, obj, state, at)
        if kind in TITLE_TYPES:
            field, source = TITLE_TYPES[kind]
            title = obj.get(field)
            if isinstance(title, str) and title.strip():
                session_id = self._line_session(writer, state, obj, at)
                writer.set_title(session_id, title, source=source)
                self.touched.add(session_id)
            return 0
        if kind == "summary":
            self._summary(writer, obj, state)
            return 0
        session_id = self._line_session(writer, state, obj, at)
        uuid = obj.get("uuid")
        ident = uuid if isinstance(uuid, str) and uuid else line_hash(line.data, line.offset)
        added = writer.message(
            session_id,
            seq=line.offset * 16,
            external_id=f"{ident}:0",
            role="system",
            kind="raw",
            at=at,
            parent_external_id=_text_or_none(obj.get("parentUuid")),
            raw=scrub_media(obj),
            source_ref=self._ref(line),
        )
        return 1 if added else 0

    def _summary(self, writer: Writer, obj: dict[str, Any], state: dict[str, Any]) -> None:
        """A summary line titles the conversation that ends at its ``leafUuid``: that
        message's session, which may come from another file, imported before or after
        this one (the title waits in ``pending_titles`` until then). It is a title, not a
        compaction summary: no row of its own."""
        text = obj.get("summary")
        if not isinstance(text, str) or not text.strip():
            return
        leaf = _text_or_none(obj.get("leafUuid"))
        if leaf is None:
            session_id = (
                self._line_session(writer, state, obj, None)
                if obj.get("sessionId")
                else self._fallback_session(writer, state)
            )
            writer.set_title(session_id, text, source="summary")
            return
        row = writer.conn.execute(
            # one probe of messages' (session_id, external_id) index per Claude session
            "SELECT s.id FROM sessions s WHERE s.source = ? AND EXISTS (SELECT 1 FROM"
            " messages m WHERE m.session_id = s.id AND m.external_id = ?) LIMIT 1",
            (SOURCE, f"{leaf}:0"),
        ).fetchone()
        if row is not None:
            writer.set_title(int(row[0]), text, source="summary")
            return
        writer.hold_title(SOURCE, leaf, text, title_source="summary")
        if self.held is not None:
            self.held.add(leaf)

    def _release_title(self, writer: Writer, uuid: Any, session_id: int) -> None:
        """Give ``session_id`` the title that waits for message ``uuid``, if one does."""
        if self.held is None:
            self.held = writer.held_titles(SOURCE)
        if self.held and isinstance(uuid, str) and uuid in self.held:
            self.held.discard(uuid)
            writer.release_title(SOURCE, uuid, session_id)

    def _system(
        self,
        writer: Writer,
        line: Line,
        obj: dict[str, Any],
        state: dict[str, Any],
        at: str | None,
    ) -> int:
        session_id = self._line_session(writer, state, obj, at)
        subtype = obj.get("subtype")
        subtype = subtype if isinstance(subtype, str) else "system"
        content = obj.get("content")
        if subtype in ("compact_boundary", "microcompact_boundary"):
            meta = obj.get("compactMetadata") or obj.get("microcompactMetadata") or {}
            meta = meta if isinstance(meta, dict) else {}
            detail = [str(meta["trigger"])] if isinstance(meta.get("trigger"), str) else []
            tokens = as_int(meta.get("preTokens"))
            if tokens:
                detail.append(
                    f"{tokens // 1000:,}k tokens" if tokens >= 1000 else f"{tokens} tokens"
                )
            name = "compacted" if subtype == "compact_boundary" else "microcompacted"
            text = f"{name} ({', '.join(detail)})" if detail else name
        elif subtype == "turn_duration" and as_int(obj.get("durationMs")):
            text = f"turn took {as_int(obj.get('durationMs')) / 1000:.1f} s"
        elif isinstance(content, str) and content:
            text = f"{subtype}: {content}"
        else:
            text = subtype
        uuid = obj.get("uuid")
        ident = uuid if isinstance(uuid, str) and uuid else line_hash(line.data, line.offset)
        self._release_title(writer, uuid, session_id)
        parent = obj.get("parentUuid") or obj.get("logicalParentUuid")
        added = writer.message(
            session_id,
            seq=line.offset * 16,
            external_id=f"{ident}:0",
            role="system",
            kind="event",
            text=text,
            at=at,
            is_error=obj.get("level") == "error",
            parent_external_id=_text_or_none(parent),
            # the line's own data (durations, hook summaries, metadata), without the
            # envelope every line repeats
            raw=_system_data(obj),
            source_ref=self._ref(line),
        )
        return 1 if added else 0

    def _conversation(
        self,
        writer: Writer,
        line: Line,
        obj: dict[str, Any],
        state: dict[str, Any],
        at: str | None,
        line_type: str,
    ) -> int:
        session_id = self._line_session(writer, state, obj, at)
        message = obj.get("message")
        if not isinstance(message, dict):
            message = {"content": message} if isinstance(message, str) else {}
        content = message.get("content")
        blocks: list[Any]
        if isinstance(content, str):
            blocks = [{"type": "text", "text": content}]
        elif isinstance(content, list):
            blocks = content
        else:
            blocks = []
        uuid = obj.get("uuid")
        ident = uuid if isinstance(uuid, str) and uuid else line_hash(line.data, line.offset)
        self._release_title(writer, uuid, session_id)
        parent = _text_or_none(obj.get("parentUuid") or obj.get("logicalParentUuid"))
        base = line.offset * 16
        ref = self._ref(line)
        assistant = line_type == "assistant"

        model: str | None = None
        key: str | None = None
        tokens: tuple[int, int, int, int] | None = None
        if assistant:
            value = message.get("model")
            if isinstance(value, str) and value and not value.startswith("<"):
                model = value
                if session_id not in self.model_set:
                    writer.session(SOURCE, state["session"], model=model)
                    self.model_set.add(session_id)
            usage = message.get("usage")
            if isinstance(usage, dict):
                tokens = (
                    as_int(usage.get("input_tokens")),
                    as_int(usage.get("output_tokens")),
                    as_int(usage.get("cache_read_input_tokens")),
                    as_int(usage.get("cache_creation_input_tokens")),
                )
            key = _message_key(obj)
            if key is not None:
                seen = state.setdefault("usage", {})
                if key in seen:
                    if tokens is not None:
                        self._raise_later(session_id, key, tokens, seen[key])
                    tokens = None  # counted on the response's first block
        user_role = "user"
        user_kind = "text"
        if not assistant:
            if obj.get("isCompactSummary"):
                user_role, user_kind = "system", "summary"
            elif obj.get("isMeta"):
                user_role = "system"
        tool_result = obj.get("toolUseResult")
        results = sum(1 for b in blocks if isinstance(b, dict) and b.get("type") == "tool_result")
        is_api_error = bool(obj.get("isApiErrorMessage"))

        added = 0
        for index, block in enumerate(blocks):
            if isinstance(block, str):
                block = {"type": "text", "text": block}
            if not isinstance(block, dict):
                continue
            btype = block.get("type")
            role = "assistant" if assistant else user_role
            kind = "text" if assistant else user_kind
            text: str | None = None
            tool_name = tool_use_id = None
            is_error = False
            raw: Any = None
            if btype == "text":
                text = block.get("text") if isinstance(block.get("text"), str) else ""
                is_error = is_api_error
            elif btype == "thinking":
                kind, text = "thinking", _str(block.get("thinking"))
            elif btype == "redacted_thinking":
                kind, text = "thinking", "[redacted thinking]"
            elif btype in ("tool_use", "server_tool_use", "mcp_tool_use"):
                kind = "tool_use"
                tool_name = _text_or_none(block.get("name"))
                tool_use_id = _text_or_none(block.get("id"))
                text = compact_json(block.get("input", {}))
                if tool_use_id and tool_name:
                    name = clean_name(writer, self.names, tool_name)
                    remember(state.setdefault("tools", {}), tool_use_id, name, OPEN_TOOLS)
            elif btype == "tool_result" or (
                isinstance(btype, str) and btype.endswith("_tool_result")
            ):
                role, kind = "tool", "tool_result"
                tool_use_id = _text_or_none(block.get("tool_use_id"))
                is_error = bool(block.get("is_error"))
                text = flatten_content(block.get("content"))  # what the model saw
                tool_name = self._tool_name(writer, state, tool_use_id)
                if results == 1 and isinstance(tool_result, dict):
                    agent = tool_result.get("agentId")
                    if isinstance(agent, str) and agent and tool_use_id:
                        child = self._link_subagent(
                            writer, line, obj, state, agent, tool_use_id, tool_name
                        )
                        # its result came back: the subagent is done
                        writer.end_session(child, at=at, reason="returned its result")
            elif btype in ("image", "document"):
                text = media_placeholder(block)
            else:
                kind, raw = "raw", scrub_media(block)
            # The usage goes on the response's first readable block.
            row_tokens = tokens if tokens is not None and kind != "raw" else None
            row = writer.message(
                session_id,
                seq=base + index,
                external_id=f"{ident}:{index}",
                role=role,
                kind=kind,
                text=text,
                at=at,
                tool_name=tool_name,
                tool_use_id=tool_use_id,
                is_error=is_error,
                model=model,
                message_key=key,
                tokens=row_tokens,
                parent_external_id=parent,
                raw=raw,
                source_ref=ref,
            )
            if row_tokens is not None:
                if key is not None:
                    remember(state.setdefault("usage", {}), key, list(row_tokens), RECENT_KEYS)
                tokens = None
            if row:
                added += 1
        return added

    def _raise_later(
        self, session_id: int, key: str, tokens: tuple[int, ...], recorded: list[int]
    ) -> None:
        """Note a later line's usage of a response already stored; the first block's
        usage is raised once, when the response's lines end (:meth:`_flush_raises`)."""
        pending = self.raises.get(key)
        base = pending[1] if pending is not None else recorded
        if any(t > b for t, b in zip(tokens, base, strict=True)):
            self.raises[key] = (session_id, [max(t, b) for t, b in zip(tokens, base, strict=True)])

    def _flush_raises(self, writer: Writer, state: dict[str, Any]) -> None:
        seen = state.setdefault("usage", {})
        for key, (session_id, tokens) in self.raises.items():
            writer.message_tokens(session_id, key, tokens)
            remember(seen, key, tokens, RECENT_KEYS)
        self.raises.clear()

    def _tool_name(self, writer: Writer, state: dict[str, Any], tool_use_id: str | None) -> Any:
        if not tool_use_id:
            return None
        tools = state.get("tools") or {}
        name = tools.pop(tool_use_id, None)
        if name:
            return name
        row = writer.conn.execute(
            "SELECT tool_name FROM messages WHERE tool_use_id = ? AND kind = 'tool_use' LIMIT 1",
            (tool_use_id,),
        ).fetchone()
        return row[0] if row is not None else None

    def _link_subagent(
        self,
        writer: Writer,
        line: Line,
        obj: dict[str, Any],
        state: dict[str, Any],
        agent: str,
        tool_use_id: str,
        tool_name: Any,
    ) -> int:
        """The child session a Task/Agent call spawned, with a first row naming the call.
        A child starts at its first line; one whose lines are nowhere (no inline
        progress, its file gone) starts when the call was made, never when its result
        came back."""
        session, _ = self._external(obj)
        external = f"{session}:{agent}"
        started: str | None = None
        if external not in self.sessions and (
            writer.conn.execute(
                "SELECT 1 FROM sessions WHERE source = ? AND external_id = ?",
                (SOURCE, external),
            ).fetchone()
            is None
        ):
            called = writer.conn.execute(
                "SELECT at FROM messages WHERE tool_use_id = ? AND kind = 'tool_use' LIMIT 1",
                (tool_use_id,),
            ).fetchone()
            started = called[0] if called is not None else None
        current = state.get("session")
        child = self._session(writer, state, session, agent, started, obj.get("cwd"))
        state["session"] = current
        if agent not in self.linked:
            self.linked.add(agent)
            writer.message(
                child,
                seq=-1,
                external_id=f"spawned-by:{tool_use_id}",
                role="system",
                kind="event",
                text=f"subagent started by {tool_name or 'a tool call'} ({tool_use_id})",
                at=started,
                tool_name=tool_name,
                tool_use_id=tool_use_id,
                source_ref=self._ref(line),
            )
        return child

    def _progress(
        self, writer: Writer, line: Line, obj: dict[str, Any], state: dict[str, Any]
    ) -> int:
        """A subagent's message written inline in its parent's transcript (2.x, when no
        ``subagents/agent-<id>.jsonl`` is written): ``data.type`` 'agent_progress',
        ``data.agentId``, ``data.message`` the subagent's own line, ``parentToolUseID``
        the spawning call. It goes to the child session like a line of the subagent's
        file would, under the same ids, so a file holding the same lines adds nothing
        twice. Other progress lines (hooks, shell output) are transient UI state."""
        data = obj.get("data")
        if not isinstance(data, dict) or data.get("type") != "agent_progress":
            return 0
        agent = _text_or_none(data.get("agentId"))
        inner = data.get("message")
        if agent is None or not isinstance(inner, dict):
            return 0
        kind = inner.get("type")
        if kind not in ("user", "assistant"):
            return 0
        entry = dict(inner)
        entry["isSidechain"] = True
        entry["agentId"] = agent
        for key in ("sessionId", "cwd"):
            if not entry.get(key):
                entry[key] = obj.get(key)
        if not _text_or_none(entry.get("uuid")):
            entry["uuid"] = "inline-" + line_hash(compact_json(inner.get("message")).encode(), 0)
        at = iso_timestamp(entry.get("timestamp")) or iso_timestamp(obj.get("timestamp"))
        if self.since and at and at < self.since:
            return 0
        current = state.get("session")
        added = self._conversation(writer, line, entry, state, at, kind)
        state["session"] = current
        spawn = _text_or_none(obj.get("parentToolUseID"))
        if spawn and agent not in self.linked:
            name = (state.get("tools") or {}).get(spawn) or self._tool_name(writer, {}, spawn)
            self._link_subagent(writer, line, entry, state, agent, spawn, name)
        return added


def _message_key(obj: dict[str, Any]) -> str | None:
    if obj.get("type") == "progress":
        data = obj.get("data")
        inner = data.get("message") if isinstance(data, dict) else None
        if not isinstance(inner, dict):
            return None
        obj = inner
    message = obj.get("message")
    if obj.get("type") != "assistant" or not isinstance(message, dict):
        return None
    message_id = message.get("id")
    if not isinstance(message_id, str) or not message_id:
        return None
    return f"{message_id}|{obj.get('requestId') or ''}"


# What every line repeats; a system line's row keeps the rest (its data) in ``raw``.
_ENVELOPE = frozenset(
    {
        "parentUuid",
        "logicalParentUuid",
        "isSidechain",
        "userType",
        "cwd",
        "sessionId",
        "version",
        "gitBranch",
        "slug",
        "entrypoint",
        "type",
        "uuid",
        "timestamp",
        "level",
        "isMeta",
    }
)


def _system_data(obj: dict[str, Any]) -> dict[str, Any] | None:
    data = {k: v for k, v in obj.items() if k not in _ENVELOPE}
    return scrub_media(data) if data else None


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
