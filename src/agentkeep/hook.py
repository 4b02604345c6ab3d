"""`agentkeep hook`: store what an agent tool reports, as it happens (the fast path).

Claude Code, Codex and OpenCode run this on every prompt, tool call and stop, so it is
built for a cold process (integrations.md §2.4, DESIGN.md principle 10):

- Only the standard library, :mod:`agentkeep.capture`, :mod:`agentkeep.boundary`,
  :mod:`agentkeep.hooklog` and (lazily) :mod:`agentkeep.redact` are imported;
  ``agentkeep/__main__.py`` routes ``hook`` here before click is loaded.
  The full library is imported only on rare paths: a payload to spill into an artifact, a
  store that needs a migration, a stale settings cache.
- It always exits 0 and prints nothing: a hook that fails must never block the agent. Its
  own failures go to ``.agentkeep/hook-errors.log`` (one redacted line each, never the
  payload; rotated at 1 MiB), which ``agentkeep doctor`` reports.
- Its own tiny argv parser ignores unknown flags (click would exit 2 and block every tool
  call after a flag is renamed); a terminal on stdin gets the usage on stderr.
- All of stdin is read first. The store is found from the payload's ``cwd`` (then
  ``$CLAUDE_PROJECT_DIR``, then the process's cwd), a linked git worktree falling back to
  its main worktree's store by reading ``.git`` files (no git process); ``AGENTKEEP_DIR``
  names it explicitly. No store: nothing happens.
- One short ``BEGIN IMMEDIATE`` transaction writes through :class:`agentkeep.capture.Writer`
  (redaction, policy, dedupe). A payload larger than ``capture.spill_bytes`` is stored as a
  'payload' artifact first (outside the transaction) and the row keeps a preview.

Settings come from a cache, ``.agentkeep/.hook-config.json``, keyed by the stat of the
project and user config files, the relevant environment variables and the agentkeep
version; it is rebuilt by :meth:`agentkeep.config.Config.load` when any of them changes
(``tomllib`` alone costs more than this whole process may spend).

Payloads (the formats of integrations.md §2.2, §2.6, §2.7):

- ``claude``, ``codex``: the hook JSON on stdin (``hook_event_name``, ``session_id``, ...).
- ``codex-notify``: Codex's legacy ``notify`` JSON as the last argument (kebab-case keys).
  ``--chain='["cmd", "arg"]'`` runs the user's previous notify command afterwards, with the
  same JSON appended, detached (``setup codex`` writes it).
- ``opencode``: what the plugin shim pipes to stdin: ``{"hook": NAME, "input": {...},
  "output": {...}}`` for ``tool.execute.before``/``tool.execute.after``/``chat.message``,
  and ``{"hook": "event", "event": {"type": ..., "properties": {...}}}`` for bus events;
  optional ``"directory"`` (the project directory) is used as the cwd.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import time

from agentkeep import capture, hooklog
from agentkeep._version import __version__
from agentkeep.errors import HookError

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover - for type checkers only
    from typing import Any

SOURCES = ("claude", "codex", "codex-notify", "opencode")
LOG_NAME = hooklog.LOG_NAME  # redacted, rotated: agentkeep.hooklog
CACHE_NAME = ".hook-config.json"
CACHE_FORMAT = 1
MAX_INPUT_BYTES = 64 << 20  # a larger payload is drained and dropped (and logged)
PREVIEW_HEAD = 2000  # characters of a spilled payload kept in the row, from the start
PREVIEW_TAIL = 1000  # ... and from the end

# The settings the hook needs (config.SETTINGS holds their defaults and validation).
SETTING_KEYS = (
    "capture.policy",
    "capture.spill_bytes",
    "store.synchronous",
    "store.busy_timeout_ms",
    "store.max_field_bytes",
    "sessions.idle_minutes",
)
# Environment variables that change those settings or where the user's config file is.
_ENV_KEYS = (
    *("AGENTKEEP_" + key.upper().replace(".", "_") for key in SETTING_KEYS),
    "AGENTKEEP_HOME",
    "XDG_CONFIG_HOME",
    "HOME",
    "APPDATA",
    "LOCALAPPDATA",
    "USERPROFILE",
)

# Claude Code and Codex hook events (same names) -> captures.event.
HOOK_EVENTS = {
    "SessionStart": "session_start",
    "UserPromptSubmit": "prompt",
    "PreToolUse": "tool_pre",
    "PostToolUse": "tool_post",
    "PostToolUseFailure": "tool_fail",
    "Stop": "turn_end",
    "StopFailure": "turn_end",
    "SubagentStop": "subagent_end",
    "PreCompact": "compact",
    "PostCompact": "compact",
    "SessionEnd": "session_end",
    "Notification": "notification",
}
# OpenCode plugin hooks and bus events -> captures.event.
OPENCODE_EVENTS = {
    "tool.execute.before": "tool_pre",
    "tool.execute.after": "tool_post",
    "chat.message": "prompt",
    "session.created": "session_start",
    "session.idle": "turn_end",
    "session.error": "turn_end",
    "session.compacted": "compact",
    "session.deleted": "session_end",
}
CODEX_NOTIFY_EVENTS = {"agent-turn-complete": "turn_end"}
# Turns that ended on an error: counted as a turn and a failure.
FAILED_TURNS = ("StopFailure", "session.error")
# What each kind of delivery adds to its session's counters (tool calls are counted once,
# when they finish: a failed call is a tool call and a failure).
COUNTS: dict[str, dict[str, int]] = {
    "prompt": {"prompts": 1},
    "tool_post": {"tool_calls": 1},
    "tool_fail": {"tool_calls": 1, "failures": 1},
    "turn_end": {"turns": 1},
}

HELP = """Store what an agent tool reports (installed by `agentkeep setup`).

The agent runs this on every prompt, tool call and stop. It reads the tool's JSON from
stdin (for codex-notify: the last argument), stores it redacted with its session, event,
tool, exit code and duration in this project's .agentkeep store, and updates the session's
counters. It always exits 0 and prints nothing; its own failures go to
.agentkeep/hook-errors.log, which `agentkeep doctor` reports. Unknown options are
ignored. --chain (codex-notify) runs the previous Codex notify command afterwards.

\b
Examples:
  echo '{"session_id":"s1","hook_event_name":"Stop","cwd":"'$PWD'"}' \\
    | agentkeep hook --source claude
  agentkeep hook --source codex-notify '{"type":"agent-turn-complete","thread-id":"t1"}'
  agentkeep setup claude     # installs it into .claude/settings.json
"""

USAGE = (
    "Usage: agentkeep hook --source claude|codex|codex-notify|opencode [--chain JSON] [PAYLOAD]\n\n"
)


def main(argv: list[str] | None = None) -> int:
    """Run the hook; always returns 0 (the agent must never be blocked by it)."""
    args = sys.argv[1:] if argv is None else list(argv)
    source = "claude"
    store_dir: str | None = None
    chain: str | None = None
    notify_arg: str | None = None
    try:
        options, positional = parse_args(args)
        source = options.get("source") or "claude"
        chain = options.get("chain")
        if "help" in options:
            sys.stdout.write(USAGE + HELP.replace("\b\n", ""))
            return 0
        if source == "codex-notify":
            notify_arg = positional[-1] if positional else ""
            raw = os.fsencode(notify_arg)
        else:
            read = read_stdin()
            if read is None:
                sys.stderr.write(USAGE + "It reads the agent's JSON from stdin, not a terminal.\n")
                return 0
            raw = read
        doc, problem = decode(raw)
        found = normalize(source, doc) if doc is not None else None
        store_dir = find_store(_start_dirs(found.cwd if found else None), options.get("store"))
        if store_dir is None:
            return 0
        if problem is not None:
            raise problem
        if source not in SOURCES:
            raise HookError(f"unknown --source {source!r}; use one of {', '.join(SOURCES)}")
        assert doc is not None and found is not None
        store_delivery(store_dir, source, doc, raw, found)
    except BaseException as exc:  # never fail the agent; say why in the log instead
        if store_dir is not None:
            log_failure(store_dir, source, exc)
    finally:
        if chain is not None:
            run_chain(chain, notify_arg, store_dir, source)
    return 0


# -- input -----------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> tuple[dict[str, str], list[str]]:
    """``({option: value}, positional)``. Unknown options are ignored, never an error."""
    options: dict[str, str] = {}
    positional: list[str] = []
    valued = ("source", "chain", "store")
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "--":
            positional += argv[i:]
            break
        if arg in ("-h", "--help"):
            options["help"] = ""
        elif arg.startswith("--"):
            name, has_value, value = arg[2:].partition("=")
            if name in valued:
                if not has_value and i < len(argv):
                    value = argv[i]
                    i += 1
                options[name] = value
        elif arg.startswith("-") and arg != "-":
            continue  # an unknown short option
        else:
            positional.append(arg)
    return options, positional


def read_stdin() -> bytes | None:
    """All of stdin (None when it is a terminal). Beyond MAX_INPUT_BYTES the rest is read
    and dropped, so the writer is never blocked, and the delivery is refused later."""
    stream = getattr(sys.stdin, "buffer", None)
    if stream is None:  # no stdin at all (fd 0 closed)
        return b""
    try:
        interactive = os.isatty(stream.fileno())
    except (OSError, ValueError):  # not a file (an in-memory stream): read it anyway
        interactive = False
    if interactive:
        return None
    data: bytes = stream.read(MAX_INPUT_BYTES + 1)
    if len(data) > MAX_INPUT_BYTES:
        while stream.read(1 << 20):
            pass
    return data


def decode(raw: bytes) -> tuple[dict[str, Any] | None, HookError | None]:
    """The payload as a JSON object, or why it is not one."""
    if len(raw) > MAX_INPUT_BYTES:
        return None, HookError(f"the payload is larger than {MAX_INPUT_BYTES >> 20} MiB")
    # Invalid UTF-8 is kept (as lone surrogates; the writer stores them as U+FFFD).
    text = raw.decode("utf-8", "surrogateescape")
    if text.startswith("\ufeff"):
        text = text[1:]
    if not text.strip():
        return None, HookError("the payload is empty")
    try:
        doc = json.loads(text)
    except RecursionError:
        return None, HookError("the payload is nested too deeply to parse")
    except ValueError as exc:
        # The message names a position, never the text.
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "not JSON"
        return None, HookError(f"the payload is not JSON ({reason})")
    if not isinstance(doc, dict):
        return None, HookError(f"the payload is a JSON {type(doc).__name__}, not an object")
    return doc, None


# -- normalization ---------------------------------------------------------------------------


class Delivery:
    """The columns pulled out of one payload (everything else stays in the payload)."""

    __slots__ = (
        "agent_type",
        "cwd",
        "duration_ms",
        "event",
        "exit_code",
        "failed",
        "model",
        "parent_session",
        "reason",
        "session",
        "title",
        "tool_name",
        "tool_use_id",
        "turn_id",
        "vendor_event",
    )

    def __init__(self) -> None:
        self.event = "other"
        self.vendor_event: str | None = None
        self.session: str | None = None
        self.parent_session: str | None = None
        self.tool_name: str | None = None
        self.tool_use_id: str | None = None
        self.turn_id: str | None = None
        self.cwd: str | None = None
        self.exit_code: int | None = None
        self.duration_ms: int | None = None
        self.model: str | None = None
        self.title: str | None = None
        self.reason: str | None = None
        self.agent_type: str | None = None
        self.failed = False


def normalize(source: str, doc: dict[str, Any]) -> Delivery:
    """The normalized columns of a payload from ``source`` (unknown fields are ignored)."""
    if source == "codex-notify":
        return _codex_notify(doc)
    if source == "opencode":
        return _opencode(doc)
    return _hook_event(doc)


def _hook_event(doc: dict[str, Any]) -> Delivery:
    """Claude Code and Codex hooks (integrations.md §2.2, §2.6)."""
    found = Delivery()
    found.vendor_event = _text(doc.get("hook_event_name"))
    found.event = HOOK_EVENTS.get(found.vendor_event or "", "other")
    found.session = _text(doc.get("session_id"))
    agent = _text(doc.get("agent_id"))
    if found.session and agent:  # inside a subagent: its own child session
        found.parent_session = found.session
        found.session = f"{found.session}:{agent}"
        found.agent_type = _text(doc.get("agent_type"))
    found.tool_name = _text(doc.get("tool_name"))
    found.tool_use_id = _text(doc.get("tool_use_id"))
    found.turn_id = _text(doc.get("turn_id")) or _text(doc.get("prompt_id"))
    found.cwd = _text(doc.get("cwd"))
    found.duration_ms = _whole(doc.get("duration_ms"))
    found.model = _text(doc.get("model"))
    found.title = _text(doc.get("session_title"))
    found.reason = _text(doc.get("reason"))
    found.failed = found.vendor_event in FAILED_TURNS
    if found.event == "tool_fail":
        found.exit_code = exit_code_of(doc.get("error"))
    return found


def _codex_notify(doc: dict[str, Any]) -> Delivery:
    """Codex's legacy ``notify`` JSON (kebab-case keys)."""
    found = Delivery()
    found.vendor_event = _text(doc.get("type"))
    found.event = CODEX_NOTIFY_EVENTS.get(found.vendor_event or "", "other")
    found.session = _text(doc.get("thread-id"))
    found.turn_id = _text(doc.get("turn-id"))
    found.cwd = _text(doc.get("cwd"))
    return found


def _opencode(doc: dict[str, Any]) -> Delivery:
    """What the OpenCode plugin shim sends (see the module docstring)."""
    found = Delivery()
    hook = _text(doc.get("hook"))
    event = _mapping(doc.get("event"))
    props: dict[str, Any] = {}
    if event and (hook in (None, "event")):
        found.vendor_event = _text(event.get("type"))
        props = _mapping(event.get("properties"))
    else:
        found.vendor_event = hook
    found.event = OPENCODE_EVENTS.get(found.vendor_event or "", "other")
    given = _mapping(doc.get("input"))
    output = _mapping(doc.get("output"))
    info = _mapping(props.get("info"))
    found.session = (
        _text(given.get("sessionID"))
        or _text(props.get("sessionID"))
        or _text(info.get("sessionID"))  # message.updated: the message's session
        or _text(_mapping(props.get("part")).get("sessionID"))  # message.part.updated
        or (_text(info.get("id")) if (found.vendor_event or "").startswith("session.") else None)
        or _text(doc.get("sessionID"))
    )
    parent = _text(info.get("parentID"))
    if parent and found.session and parent != found.session:
        found.parent_session = parent
    found.tool_name = _text(given.get("tool"))
    found.tool_use_id = _text(given.get("callID"))
    found.turn_id = _text(given.get("messageID"))
    found.cwd = _text(doc.get("cwd")) or _text(doc.get("directory")) or _text(info.get("directory"))
    found.title = _text(info.get("title"))
    model = given.get("model")
    found.model = _text(model.get("modelID")) if isinstance(model, dict) else _text(model)
    found.failed = found.vendor_event in FAILED_TURNS
    if found.event == "tool_post":
        metadata = _mapping(output.get("metadata"))
        for key in ("exit", "exitCode", "exit_code"):
            found.exit_code = _whole(metadata.get(key))
            if found.exit_code is not None:
                break
    return found


def exit_code_of(error: object) -> int | None:
    """N from a failure's ``Exit code N`` first line (Claude's Bash failures)."""
    if not isinstance(error, str) or not error.startswith("Exit code "):
        return None
    first = error[10:].split("\n", 1)[0].strip()
    if first.lstrip("-").isdigit() and len(first) < 12:
        return int(first)
    return None


def _text(value: object) -> str | None:
    if isinstance(value, str):
        text = value
    elif isinstance(value, int) and not isinstance(value, bool):
        text = str(value)
    else:
        return None
    if not text:
        return None
    # Not cut here: the writer cuts ids after redacting them (a cut first could leave
    # most of a secret the redactor no longer recognises).
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates (invalid UTF-8 on stdin)
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text.replace("\x00", "\ufffd")


def _whole(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if value != value or not -(2**62) < value < 2**62:
        return None
    return int(value)


def _mapping(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


# -- the store -------------------------------------------------------------------------------


def _start_dirs(cwd: str | None) -> list[str]:
    starts = []
    if cwd and os.path.isabs(cwd):
        starts.append(cwd)
    project = os.environ.get("CLAUDE_PROJECT_DIR")
    if project:
        starts.append(project)
    try:
        starts.append(os.getcwd())
    except OSError:  # deleted under us
        return starts
    return starts


def find_store(starts: list[str], explicit: str | None = None) -> str | None:
    """The store directory (``.agentkeep``) for the first of ``starts`` that has one.

    Like :func:`agentkeep.paths.find_store`: ``--store``/``AGENTKEEP_DIR`` name it; else walk
    up for ``.agentkeep/state.db``; else, in a linked git worktree, the main worktree's.
    """
    explicit = explicit or os.environ.get("AGENTKEEP_DIR")
    if explicit:
        path = os.path.abspath(os.path.expanduser(explicit))
        if os.path.isdir(os.path.join(path, ".agentkeep")):
            path = os.path.join(path, ".agentkeep")
        return path if os.path.isfile(os.path.join(path, "state.db")) else None
    for start in starts:
        found = _walk_up(os.path.abspath(start))
        if found is not None:
            return found
    return None


def _walk_up(here: str) -> str | None:
    dot_git: str | None = None
    directory = here
    while True:
        candidate = os.path.join(directory, ".agentkeep")
        if os.path.isfile(os.path.join(candidate, "state.db")):
            return candidate
        if dot_git is None and os.path.lexists(os.path.join(directory, ".git")):
            dot_git = os.path.join(directory, ".git")
        parent = os.path.dirname(directory)
        if parent == directory:
            break
        directory = parent
    if dot_git is not None and os.path.isfile(dot_git):
        main = main_worktree_of(dot_git)
        if main is not None:
            candidate = os.path.join(main, ".agentkeep")
            if os.path.isfile(os.path.join(candidate, "state.db")):
                return candidate
    return None


def main_worktree_of(dot_git_file: str) -> str | None:
    """The main worktree of a linked worktree, from its ``.git`` file (``gitdir: …``) and
    that directory's ``commondir``, as ``git rev-parse --git-common-dir`` would find it."""
    try:
        with open(dot_git_file, encoding="utf-8") as handle:
            first = handle.readline().strip()
    except (OSError, UnicodeDecodeError):
        return None
    if not first.startswith("gitdir:"):
        return None
    base = os.path.dirname(dot_git_file)
    gitdir = os.path.normpath(os.path.join(base, first[7:].strip()))
    try:
        with open(os.path.join(gitdir, "commondir"), encoding="utf-8") as handle:
            common = os.path.normpath(os.path.join(gitdir, handle.readline().strip()))
    except (OSError, UnicodeDecodeError):
        return None  # a submodule, or not a worktree
    if os.path.basename(common) != ".git":
        return None  # a bare repository: no main worktree
    return os.path.dirname(common)


# -- settings --------------------------------------------------------------------------------


def _stat_key(path: str | None) -> list[int] | None:
    if not path:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino]


def load_settings(store_dir: str) -> dict[str, Any]:
    """The settings of :data:`SETTING_KEYS` in force for this store, from the cache when
    it is current (see the module docstring), else from ``Config.load``."""
    env = [os.environ.get(name) for name in _ENV_KEYS]
    project = os.path.join(store_dir, "config.toml")
    try:
        with open(os.path.join(store_dir, CACHE_NAME), "rb") as handle:
            cached = json.loads(handle.read())
        if (
            cached["format"] == CACHE_FORMAT
            and cached["version"] == __version__
            and cached["env"] == env
            and cached["stat"] == [_stat_key(project), _stat_key(cached["user_config"])]
        ):
            values: dict[str, Any] = cached["values"]
            if _valid_settings(values):
                return values
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return refresh_settings(store_dir, env)


def _valid_settings(values: dict[str, Any]) -> bool:
    return (
        values.get("capture.policy") in capture.POLICIES
        and values.get("store.synchronous") in ("FULL", "NORMAL")
        and all(
            type(values.get(key)) is int
            for key in (
                "capture.spill_bytes",
                "store.busy_timeout_ms",
                "store.max_field_bytes",
                "sessions.idle_minutes",
            )
        )
    )


def refresh_settings(store_dir: str, env: list[str | None] | None = None) -> dict[str, Any]:
    """Load the settings with the full library and rewrite the cache (atomically)."""
    from pathlib import Path

    from agentkeep.config import Config
    from agentkeep.paths import user_config_file

    if env is None:
        env = [os.environ.get(name) for name in _ENV_KEYS]
    project = os.path.join(store_dir, "config.toml")
    user = str(user_config_file())
    stat = [_stat_key(project), _stat_key(user)]  # before reading: a later edit invalidates
    config = Config.load(project_file=Path(project))
    values = {key: config[key] for key in SETTING_KEYS}
    document = {
        "format": CACHE_FORMAT,
        "version": __version__,
        "env": env,
        "user_config": user,
        "stat": stat,
        "values": values,
    }
    target = os.path.join(store_dir, CACHE_NAME)
    tmp = f"{target}.tmp-{os.getpid()}-{os.urandom(4).hex()}"
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(document, handle)
        os.replace(tmp, target)
    except OSError:  # a read-only store still captures; the cache is only an optimisation
        _remove_quietly(tmp)
    return values


def _remove_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        return


# -- storing ---------------------------------------------------------------------------------


def store_delivery(
    store_dir: str,
    source: str,
    doc: dict[str, Any],
    raw: bytes,
    found: Delivery | None = None,
) -> int | None:
    """Store one delivery; returns the capture id (None: a repeat, or capture is off).

    ``raw`` is the payload as delivered (the dedupe hash and a spilled artifact use it),
    ``doc`` its decoded JSON, ``found`` its normalized columns (computed when not given).
    """
    settings = load_settings(store_dir)
    policy: str = settings["capture.policy"]
    if policy == "off":
        return None
    if found is None:
        found = normalize(source, doc)
    key = capture.dedupe_key(
        source, found.session, found.vendor_event or found.event, found.tool_use_id, raw
    )
    spill_at = min(settings["capture.spill_bytes"], settings["store.max_field_bytes"] // 4)
    conn = connect(store_dir, settings)
    try:
        payload: Any = doc
        artifact_id = None
        if policy == "full" and len(raw) > spill_at:
            if _seen(conn, key):
                return None
            payload, artifact_id = spill(store_dir, source, found, raw)
        return _write(conn, store_dir, source, found, key, payload, artifact_id, settings)
    finally:
        conn.close()


def connect(store_dir: str, settings: dict[str, Any]) -> sqlite3.Connection:
    """A connection with agentkeep's settings (backend/sqlite.py); never creates a file."""
    path = os.path.join(store_dir, "state.db")
    uri = "file:" + path.replace("%", "%25").replace("?", "%3f").replace("#", "%23") + "?mode=rw"
    conn = sqlite3.connect(
        uri,
        uri=True,
        isolation_level=None,
        timeout=settings["store.busy_timeout_ms"] / 1000,
        check_same_thread=False,
    )
    try:
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute(f"PRAGMA synchronous={settings['store.synchronous']}")
        conn.execute("PRAGMA secure_delete=ON")
    except BaseException:
        conn.close()
        raise
    return conn


def _seen(conn: sqlite3.Connection, key: str) -> bool:
    """Whether a delivery with ``key`` is stored (keys are stored redacted)."""
    stored = capture.stored_key(key)
    return (
        conn.execute("SELECT 1 FROM captures WHERE dedupe_key = ?", (stored,)).fetchone()
        is not None
    )


def _schema_version(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    if row is None:
        raise HookError("the store has no schema version (not an agentkeep store?)")
    return int(row[0])


class WriterQueue:
    """The writers' queue lock, ``state.db.lock`` (see agentkeep/backend/sqlite.py): taken
    before ``BEGIN IMMEDIATE`` like every agentkeep writer does, polled every 2 ms at most,
    so parallel hooks take turns instead of starving in SQLite's busy handler (whose
    sleeps grow to 100 ms). SQLite's own locking still guarantees correctness."""

    def __init__(self, db_path: str, timeout_ms: int) -> None:
        self.path = db_path + ".lock"
        self.timeout = timeout_ms / 1000
        self.fd: int | None = None

    def acquire(self) -> None:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: SQLite's busy handler only
            return
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        deadline = None
        delay = 0.0002
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                pass
            now = time.monotonic()
            if deadline is None:
                deadline = now + self.timeout
            elif now > deadline:
                self.release()
                raise HookError(f"other writers held the store for {self.timeout:g} s")
            time.sleep(delay * (0.5 + (time.perf_counter_ns() % 1000) / 1000))
            delay = min(delay * 2, 0.002)

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # releases the lock
            self.fd = None


def _begin(conn: sqlite3.Connection, store_dir: str, queue: WriterQueue) -> None:
    """``BEGIN IMMEDIATE`` on a store of this code's schema, migrating an older one first
    (with the full library, which takes a backup), refusing a newer one."""
    queue.acquire()
    conn.execute("BEGIN IMMEDIATE")
    version = _schema_version(conn)
    if version == capture.SCHEMA_VERSION:
        return
    conn.execute("ROLLBACK")
    if version > capture.SCHEMA_VERSION:
        raise HookError(
            f"the store has schema version {version}, newer than this agentkeep's"
            f" {capture.SCHEMA_VERSION}; upgrade agentkeep"
        )
    queue.release()  # the library takes the same lock to migrate
    import agentkeep

    agentkeep.open(store_dir).close()  # migrates
    queue.acquire()
    conn.execute("BEGIN IMMEDIATE")
    version = _schema_version(conn)
    if version != capture.SCHEMA_VERSION:
        conn.execute("ROLLBACK")
        raise HookError(f"the store is at schema version {version} after migrating")


def _write(
    conn: sqlite3.Connection,
    store_dir: str,
    source: str,
    found: Delivery,
    key: str,
    payload: Any,
    artifact_id: int | None,
    settings: dict[str, Any],
) -> int | None:
    queue = WriterQueue(os.path.join(store_dir, "state.db"), settings["store.busy_timeout_ms"])
    guard = None
    try:
        _begin(conn, store_dir, queue)
        guard = _checked_mark(conn, store_dir, settings["store.synchronous"])
        writer = capture.Writer(
            conn,
            os.path.dirname(store_dir),
            policy=settings["capture.policy"],
            actor=f"hook:{source}",
            max_field_bytes=settings["store.max_field_bytes"],
            idle_minutes=settings["sessions.idle_minutes"],  # a new session ends idle ones
        )
        session_source = "codex" if source == "codex-notify" else source
        session_id = None
        if found.session:
            parent_id = None
            if found.parent_session:
                parent_id = writer.session(session_source, found.parent_session, cwd=found.cwd)
            session_id = writer.session(
                session_source,
                found.session,
                cwd=found.cwd,
                model=found.model,
                title=found.title,
                parent_id=parent_id,
                agent_role=found.agent_type,
            )
        capture_id = writer.capture(
            source=source,
            event=found.event,
            dedupe_key=key,
            vendor_event=found.vendor_event,
            session_id=session_id,
            turn_id=found.turn_id,
            tool_name=found.tool_name,
            tool_use_id=found.tool_use_id,
            cwd=found.cwd,
            exit_code=found.exit_code,
            duration_ms=found.duration_ms,
            payload=payload,
            artifact_id=artifact_id,
        )
        if capture_id is None:  # a repeat: undo the session upserts, change nothing
            conn.execute("ROLLBACK")
            return None
        if session_id is not None:
            counts = COUNTS.get(found.event, {})
            turns = counts.get("turns", 0)
            if turns and found.turn_id and _turn_counted(conn, session_id, capture_id):
                turns = 0
            writer.bump(
                session_id,
                prompts=counts.get("prompts", 0),
                tool_calls=counts.get("tool_calls", 0),
                failures=counts.get("failures", 0) + found.failed,
                turns=turns,
            )
            if found.event == "session_end" or (
                found.event == "subagent_end" and found.parent_session
            ):
                writer.end_session(session_id, reason=found.reason)
        newest = guard.newest(conn.execute)
        conn.execute("COMMIT")
        guard.advance(*newest)
        return capture_id
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    finally:
        queue.release()
        if guard is not None:
            guard.close()


def _checked_mark(conn: sqlite3.Connection, store_dir: str, synchronous: str) -> Any:
    """The store's commit high-water mark (agentkeep/highwater.py), checked inside
    the write transaction like every library writer does: a database that lost commits or
    is known to be damaged is not written (the delivery fails and is logged)."""
    from agentkeep.highwater import MARK_NAME, CommitGuard

    guard = CommitGuard(os.path.join(store_dir, MARK_NAME), synchronous=synchronous)
    verdict = guard.judge(conn.execute)
    if verdict.problem is not None:
        guard.close()
        raise HookError(
            f"not written: {verdict.message}; run `agentkeep doctor` (restore a backup, or "
            "`agentkeep db accept`)"
        )
    return guard


def _turn_counted(conn: sqlite3.Connection, session_id: int, capture_id: int) -> bool:
    """Whether the turn that capture ``capture_id`` ends was counted already: Codex reports
    a turn both to its Stop hook and to ``notify`` (same turn id), and a Claude Stop hook
    that blocks fires Stop again for the same prompt."""
    row = conn.execute(
        "SELECT 1 FROM captures WHERE session_id = ? AND event = 'turn_end' AND id != ?"
        " AND turn_id = (SELECT turn_id FROM captures WHERE id = ?) LIMIT 1",
        (session_id, capture_id, capture_id),
    ).fetchone()
    return row is not None


def spill(store_dir: str, source: str, found: Delivery, raw: bytes) -> tuple[Any, int]:
    """Store a large payload as a 'payload' artifact (the library redacts it and writes the
    file before its own short transaction); returns the row's preview and the artifact id.

    The preview is cut from the redacted payload, so no cut can leave part of a secret."""
    import agentkeep
    from agentkeep.boundary import redact_text

    text = raw.decode("utf-8", "surrogateescape")
    with agentkeep.open(store_dir, actor=f"hook:{source}") as store:
        spilled = store.spill_payload(
            text,
            limit=0,
            name=f"{source}-{found.vendor_event or found.event}.json",
            data={"source": source, "event": found.event, "tool_use_id": found.tool_use_id},
        )
    assert spilled.artifact_id is not None
    clean = redact_text(text.encode("utf-8", "replace").decode("utf-8"))[0]
    if len(clean) > PREVIEW_HEAD + PREVIEW_TAIL:
        clean = f"{clean[:PREVIEW_HEAD]}\n[…]\n{clean[-PREVIEW_TAIL:]}"
    preview = {
        "spilled": True,
        "size": len(raw),
        "artifact_id": spilled.artifact_id,
        "preview": clean,
    }
    return preview, spilled.artifact_id


# -- failures and chaining -------------------------------------------------------------------


def log_failure(store_dir: str, source: str, exc: BaseException) -> None:
    """Append one redacted line about ``exc`` to the store's hook log (never the payload)."""
    hooklog.log_failure(store_dir, source, exc)


def run_chain(chain: str, payload: str | None, store_dir: str | None, source: str) -> None:
    """Start the previous notify command (a JSON argv) with the payload appended; detached,
    not waited for, its output discarded."""
    try:
        argv = json.loads(chain)
        if not (
            isinstance(argv, list) and argv and all(isinstance(a, str) and a for a in argv[:1])
        ) or not all(isinstance(a, str) for a in argv):
            raise HookError("--chain must be a JSON array of strings (a command and its args)")
        args = [*argv, payload] if payload is not None else list(argv)
        if hasattr(os, "posix_spawnp"):
            quiet = [
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
                (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0),
            ]
            os.posix_spawnp(args[0], args, os.environ, file_actions=quiet, setsid=True)
        else:  # pragma: no cover - Windows
            import subprocess

            subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                creationflags=getattr(subprocess, "DETACHED_PROCESS", 0),
            )
    except BaseException as exc:
        if store_dir is not None:
            log_failure(store_dir, source, exc)
