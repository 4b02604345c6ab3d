"""`agentkeep hook`: store what an agent tool reports, as it happens (the fast path).

Claude Code, Codex and OpenCode run this on every prompt, tool call and stop, so it is
built for a cold process (principle 11 of docs/design.md; docs/design.md "Agent tools'
formats"):

- Only the standard library and agentkeep's own standard-library modules are imported:
  :mod:`agentkeep.capture` (with :mod:`agentkeep.boundary`, and lazily
  :mod:`agentkeep.redact`), :mod:`agentkeep.hooklog`, :mod:`agentkeep.spool`, the
  tools registry and payload readers (:mod:`agentkeep.tools`, :mod:`agentkeep.payloads`),
  store discovery (:mod:`agentkeep.paths`) and the backend's fast write path
  (:mod:`agentkeep.backends.sqlite.fastpath`); tests/test_hook.py lists them.
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
- On a PostgreSQL project (``store.url`` in the settings cache, or ``AGENTKEEP_URL``) the
  hook never connects (no psycopg, no network wait): every delivery goes to the spool and
  a drainer sends it (:func:`drain_spool_on`; ``agentkeep sync``, any write, the server).

Settings come from a cache, ``.agentkeep/.hook-config.json``, keyed by the stat of the
project and user config files, the relevant environment variables and the agentkeep
version; it is rebuilt by :meth:`agentkeep.config.Config.load` when any of them changes
(``tomllib`` alone costs more than this whole process may spend). A config file the hook
cannot use (a FIFO, a link, too large, invalid TOML, a bad value) never stops capture: the
hook goes on with the defaults for what it could not read and logs the problem once per
change of the file (``Config.load(strict=False)``).

Nothing inside the store is opened through a symbolic link (``O_NOFOLLOW``; a linked
``state.db`` is refused), and what the hook creates there is 0600 (docs/design.md).

Payloads (docs/design.md "Agent tools' formats"; read by :mod:`agentkeep.payloads`, the
reader for each ``--source`` named by :data:`agentkeep.tools.TOOLS`):

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
import sys
import time

from agentkeep import boundary, capture, hooklog, payloads, spool, tools
from agentkeep._version import __version__
from agentkeep.backends.sqlite import fastpath
from agentkeep.backends.sqlite.fastpath import (
    REFUSALS,
    FastConnection,
    LockBusy,
    WriterQueue,
)
from agentkeep.errors import HookError
from agentkeep.paths import find_store_dir, read_small_file

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover - for type checkers only
    from typing import Any

SOURCES = tools.HOOK_SOURCES  # claude, codex, codex-notify, opencode
LOG_NAME = hooklog.LOG_NAME  # redacted, rotated: agentkeep.hooklog
LOST = "delivery lost"  # in the log line of a delivery nothing could keep (doctor counts them)
CACHE_NAME = ".hook-config.json"
CACHE_FORMAT = 2  # 2: written by a lenient Config.load (problems logged, never cached)
MAX_CACHE_BYTES = 64 << 10  # the cache is ~500 bytes; anything larger is not ours
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
    "hook.lock_wait_ms",
    "store.url",
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
counters. On a PostgreSQL project it never connects: each delivery goes to
.agentkeep/spool/, and `agentkeep sync`, any later write or `agentkeep serve` sends it.
It always exits 0 and prints nothing; its own failures go to
.agentkeep/hook-errors.log, which `agentkeep doctor` reports. Unknown options are
ignored. --chain (codex-notify) runs the previous Codex notify command afterwards.

\b
Examples:
  echo '{"session_id":"s1","hook_event_name":"Stop","cwd":"'$PWD'"}' \\
    | agentkeep hook --source claude
  agentkeep hook --source codex-notify '{"type":"agent-turn-complete","thread-id":"t1"}'
  agentkeep setup claude     # installs it into .claude/settings.json
"""

USAGE = f"Usage: agentkeep hook --source {'|'.join(SOURCES)} [--chain JSON] [PAYLOAD]\n\n"


def main(argv: list[str] | None = None) -> int:
    """Run the hook; always returns 0 (the agent must never be blocked by it)."""
    boundary.standard_library_only()  # the hook's path imports the standard library only
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
        store_dir = find_store_dir(_start_dirs(found.cwd if found else None), options.get("store"))
        if store_dir is None:
            return 0
        if problem is not None:
            raise problem
        if source not in SOURCES:
            raise HookError(f"unknown --source {source!r}; use one of {', '.join(SOURCES)}")
        assert doc is not None and found is not None
        store_delivery(store_dir, source, doc, raw, found)
    except BaseException as exc:  # never fail the agent; say why in the log instead
        logged = store_dir is not None and log_failure(store_dir, source, exc)
        if isinstance(exc, DeliveryLost) and not logged:  # never silent: stderr then
            _say(f"agentkeep hook: {exc}; the hook log could not be written either\n")
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


# -- payloads (agentkeep.payloads reads each tool's shape) ------------------------------------

Delivery = payloads.Delivery


def normalize(source: str, doc: dict[str, Any]) -> Delivery:
    """The normalized columns of a payload from ``source`` (:data:`agentkeep.tools.TOOLS`
    says which reader). An unknown source is read as Claude Code's shape, so its store is
    still found and the refusal logged there."""
    reader = tools.payload_reader(source) or payloads.hook_event
    return reader(doc)


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
        raw = read_small_file(
            os.path.join(store_dir, CACHE_NAME), MAX_CACHE_BYTES, follow_links=False
        )
        cached = json.loads(raw)
        if (
            cached["format"] == CACHE_FORMAT
            and cached["version"] == __version__
            and cached["env"] == _env_digest(env)
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
        and isinstance(values.get("store.url"), str)
        and all(
            type(values.get(key)) is int
            for key in (
                "capture.spill_bytes",
                "store.busy_timeout_ms",
                "store.max_field_bytes",
                "sessions.idle_minutes",
                "hook.lock_wait_ms",
            )
        )
    )


def _env_digest(env: list[str | None]) -> str:
    """A 64-bit checksum of the variables' values: enough to notice a change, and nothing
    to read a value (one may be a secret) back from. zlib: a sha256 would cost the hook a
    failed ``_sha2`` import on Python 3.11 before ``capture._sha256`` finds ``_sha256``."""
    import zlib

    data = json.dumps(env).encode("utf-8", "surrogatepass")
    return f"{zlib.crc32(data):08x}{zlib.adler32(data):08x}"


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
    # Never strict: a broken config file must not stop capture (issue 9 §4). What could not
    # be used is logged now, once; the cache keeps the outcome until the files change.
    try:
        config = Config.load(project_file=Path(project), strict=False)
    except Exception as exc:  # not a file's fault (strict=False): still capture
        from agentkeep.config import SETTINGS_BY_KEY

        log_failure(store_dir, "config", exc)
        return {key: SETTINGS_BY_KEY[key].default for key in SETTING_KEYS}
    values = {key: config[key] for key in SETTING_KEYS}
    for problem in config.problems:
        log_failure(store_dir, "config", HookError(f"{problem} (capture goes on)"))
    document = {
        "format": CACHE_FORMAT,
        "version": __version__,
        "env": _env_digest(env),  # a digest: a variable's value may be a secret
        "user_config": user,
        "stat": stat,
        "values": values,  # never the problems' text: it may quote a secret value
    }
    target = os.path.join(store_dir, CACHE_NAME)
    tmp = f"{target}.tmp-{os.getpid()}-{os.urandom(4).hex()}"
    try:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        with os.fdopen(os.open(tmp, flags, 0o600), "w", encoding="utf-8") as handle:
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

# The most a hook spends draining the spool inside its own transaction (other hooks wait
# for the lock meanwhile, and spool after hook.lock_wait_ms), and a library drainer per
# transaction before it lets other writers have a turn.
HOOK_DRAIN_S = 0.025
LIBRARY_DRAIN_S = 0.25
# The Delivery fields that are text (redacted before a record is spooled).
_TEXT_FIELDS = (
    "vendor_event",
    "session",
    "parent_session",
    "tool_name",
    "tool_use_id",
    "turn_id",
    "cwd",
    "model",
    "title",
    "reason",
    "agent_type",
)


class DeliveryLost(HookError):
    """Neither the store nor the spool could take a delivery (a full disk, ...)."""


def store_delivery(
    store_dir: str,
    source: str,
    doc: dict[str, Any],
    raw: bytes,
    found: Delivery | None = None,
) -> int | None:
    """Store one delivery; returns the capture id (None: a repeat, capture is off, or the
    delivery went to the spool).

    ``raw`` is the payload as delivered (the dedupe hash and a spilled artifact use it),
    ``doc`` its decoded JSON, ``found`` its normalized columns (computed when not given).
    When the writer lock is not free within ``hook.lock_wait_ms``, or the database cannot
    take the write, the redacted delivery is written to the spool (:mod:`agentkeep.spool`)
    and a later writer stores it; if the spool cannot take it either,
    :class:`DeliveryLost` says so.
    """
    settings = load_settings(store_dir)
    policy: str = settings["capture.policy"]
    if policy == "off":
        return None
    if found is None:
        found = normalize(source, doc)
    at = capture.utc_now()
    key = capture.dedupe_key(
        source, found.session, found.vendor_event or found.event, found.tool_use_id, raw
    )
    spill_at = min(settings["capture.spill_bytes"], settings["store.max_field_bytes"] // 4)
    big = policy == "full" and len(raw) > spill_at
    if on_postgres(settings):
        # The database is across a network: never wait on it (principle 3). The delivery
        # goes to the local spool, durably, and a drainer stores it (the next CLI or
        # library write, `agentkeep serve`, `agentkeep sync`); a large payload is spilled
        # into an artifact by the drainer.
        spool_delivery(store_dir, source, found, key, at, settings, doc, raw=raw if big else None)
        return None
    payload: Any = doc
    artifact_id = None
    conn = None
    try:
        conn = _connect(store_dir, settings, timeout_ms=settings["hook.lock_wait_ms"])
        if big:
            if _seen(conn, key):
                return None
            with _not_draining():
                payload, artifact_id = spill(store_dir, source, found, raw, settings=settings)
        return _write(conn, store_dir, source, found, key, payload, artifact_id, settings, at)
    except capture.CaptureError:
        raise  # refused: the spool would refuse it too
    except Exception as exc:
        if big and artifact_id is None:  # the drainer spills it
            spool_delivery(store_dir, source, found, key, at, settings, doc, raw=raw)
        else:
            spool_delivery(store_dir, source, found, key, at, settings, payload, artifact_id)
        if not _busy(exc):
            raise HookError(f"the delivery was spooled: {_reason(exc)}") from exc
    finally:
        if conn is not None:
            conn.close()
    # Spooled because other writers held the lock; if it is free by now, drain (this
    # record included) so the spool does not wait for the next delivery.
    drain_spool(store_dir, settings, wait_ms=0, budget_s=HOOK_DRAIN_S)
    return None


def on_postgres(settings: dict[str, Any]) -> bool:
    """Whether the store's database is a PostgreSQL (``AGENTKEEP_URL`` or ``store.url``,
    as :func:`agentkeep.store.store_url` decides): the hook then only spools."""
    return bool(os.environ.get("AGENTKEEP_URL") or settings.get("store.url"))


def _busy(exc: BaseException) -> bool:
    """Whether ``exc`` says other writers had the store: the queue lock, SQLite's lock (even
    to read: a closing connection checkpointing), or the full library's Busy (a spill)."""
    if isinstance(exc, LockBusy):
        return True
    if fastpath.is_busy(exc):
        return True
    if "agentkeep.errors" not in sys.modules:
        return False
    from agentkeep.errors import Busy

    return isinstance(exc, Busy)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, HookError):
        return str(exc)
    name = getattr(exc, "sqlite_errorname", "") or type(exc).__name__
    return f"{name}: {exc}"


def _connect(store_dir: str, settings: dict[str, Any], *, timeout_ms: int) -> FastConnection:
    """The store's database on the fast path (:mod:`agentkeep.backends.sqlite.fastpath`)."""
    return fastpath.connect(
        store_dir, synchronous=settings["store.synchronous"], timeout_ms=timeout_ms
    )


def _begin(conn: FastConnection, store_dir: str, queue: WriterQueue) -> None:
    """``BEGIN IMMEDIATE`` on a store of this code's schema; an older one is migrated first
    by the full library (which takes a backup), a newer one refused."""

    def migrate() -> None:
        import agentkeep

        with _not_draining():
            agentkeep.open(store_dir, strict_config=False).close()

    fastpath.begin(conn, queue, expected=capture.SCHEMA_VERSION, migrate=migrate)


def _seen(conn: FastConnection, key: str) -> bool:
    """Whether a delivery with ``key`` is stored (keys are stored redacted)."""
    stored = capture.stored_key(key)
    return (
        conn.execute("SELECT 1 FROM captures WHERE dedupe_key = ?", (stored,)).fetchone()
        is not None
    )


def _write(
    conn: FastConnection,
    store_dir: str,
    source: str,
    found: Delivery,
    key: str,
    payload: Any,
    artifact_id: int | None,
    settings: dict[str, Any],
    at: str,
) -> int | None:
    """One transaction: the spooled deliveries first, in order, then this one. When the
    spool could not be emptied within HOOK_DRAIN_S (or its next record needs a spill),
    what was drained commits and this delivery joins the end of the spool instead, so
    deliveries are stored in order (None is returned then). Spool records are removed
    once their batch committed."""
    queue = WriterQueue(os.path.join(store_dir, "state.db"), settings["hook.lock_wait_ms"])
    batch = _Batch()
    guard = None
    try:
        _begin(conn, store_dir, queue)
        guard = fastpath.checked_mark(conn, store_dir, settings["store.synchronous"])
        if spool.pending(store_dir):
            batch = _drain_into(conn, store_dir, settings, time.monotonic() + HOOK_DRAIN_S)
        capture_id = None
        queued = False
        if not batch.complete:  # join the end of the spool (under the lock: in order)
            try:
                spool_delivery(store_dir, source, found, key, at, settings, payload, artifact_id)
                queued = True
            except DeliveryLost:
                pass  # no room for a record: stored now, out of order, rather than lost
        if not queued:
            try:
                capture_id = _apply(
                    conn,
                    store_dir,
                    source=source,
                    policy=settings["capture.policy"],
                    max_field_bytes=settings["store.max_field_bytes"],
                    idle_minutes=settings["sessions.idle_minutes"],
                    found=found,
                    key=key,
                    payload=payload,
                    artifact_id=artifact_id,
                    at=at,
                )
            except capture.CaptureError:
                if not batch.applied:
                    raise
                fastpath.commit(conn, guard)  # what was drained is kept; this delivery is refused
                _drained(store_dir, batch.applied)
                raise
        fastpath.commit(conn, guard)
        _drained(store_dir, batch.applied)
    except BaseException:
        conn.rollback()
        raise
    finally:
        queue.release()
        if guard is not None:
            guard.close()
    if batch.spill is not None:  # spill it, as this hook would a large payload of its own
        drain_spool(store_dir, settings, budget_s=HOOK_DRAIN_S)
    return capture_id


def _apply(
    conn: FastConnection,
    store_dir: str,
    *,
    source: str,
    policy: str,
    max_field_bytes: int,
    idle_minutes: int | None,
    found: Delivery,
    key: str,
    payload: Any,
    artifact_id: int | None,
    at: str,
    redactions: list[tuple[str, str, int]] | None = None,
    now: str | None = None,
) -> int | None:
    """Write one delivery inside the open transaction, under a savepoint: a repeat (or a
    refusal) leaves nothing behind. ``at`` is when it was delivered; ``redactions`` were
    made before it was spooled (recorded with the capture row)."""
    conn.execute("SAVEPOINT delivery")
    try:
        writer = capture.Writer(
            conn,
            os.path.dirname(store_dir),
            policy=policy,
            actor=f"hook:{source}",
            max_field_bytes=max_field_bytes,
            idle_minutes=idle_minutes,  # a new session ends idle ones
            now=now,  # None: this machine's clock (the hook's, SQLite's drainers)
        )
        session_source = tools.session_source(source)  # codex-notify: codex's
        session_id = None
        if found.session:
            parent_id = None
            if found.parent_session:
                parent_id = writer.session(
                    session_source, found.parent_session, cwd=found.cwd, started_at=at
                )
            session_id = writer.session(
                session_source,
                found.session,
                started_at=at,
                cwd=found.cwd,
                model=found.model,
                title=found.title,
                parent_id=parent_id,
                agent_role=found.agent_type,
            )
        if redactions:
            writer.boundary.pending.extend(redactions)
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
            at=at,
        )
        if capture_id is None:  # a repeat: undo the session upserts, change nothing
            conn.execute("ROLLBACK TO delivery")
        elif session_id is not None:
            counts = COUNTS.get(found.event, {})
            turns = counts.get("turns", 0)
            if turns and found.turn_id and _turn_counted(conn, session_id, capture_id):
                turns = 0
            writer.bump(
                session_id,
                at=at,
                prompts=counts.get("prompts", 0),
                tool_calls=counts.get("tool_calls", 0),
                failures=counts.get("failures", 0) + found.failed,
                turns=turns,
            )
            if found.event == "session_end" or (
                found.event == "subagent_end" and found.parent_session
            ):
                writer.end_session(session_id, at=at, reason=found.reason)
        conn.execute("RELEASE delivery")
        return capture_id
    except BaseException:
        if conn.in_transaction:  # SQLite may have rolled the whole transaction back
            conn.execute("ROLLBACK TO delivery")
            conn.execute("RELEASE delivery")
        raise


def _turn_counted(conn: FastConnection, session_id: int, capture_id: int) -> bool:
    """Whether the turn that capture ``capture_id`` ends was counted already: Codex reports
    a turn both to its Stop hook and to ``notify`` (same turn id), and a Claude Stop hook
    that blocks fires Stop again for the same prompt."""
    row = conn.execute(
        "SELECT 1 FROM captures WHERE session_id = ? AND event = 'turn_end' AND id != ?"
        " AND turn_id = (SELECT turn_id FROM captures WHERE id = ?) LIMIT 1",
        (session_id, capture_id, capture_id),
    ).fetchone()
    return row is not None


def spill(
    store_dir: str,
    source: str,
    found: Delivery,
    raw: bytes,
    *,
    settings: dict[str, Any] | None = None,
    size: int | None = None,
) -> tuple[Any, int]:
    """Store a large payload as a 'payload' artifact (the library redacts it and writes the
    file before its own short transaction); returns the row's preview and the artifact id.
    With ``settings``, the library waits ``hook.lock_wait_ms`` at most for the writer lock
    (then raises Busy). ``size``: the payload's size as delivered (default ``len(raw)``).

    The preview is cut from the redacted payload, so no cut can leave part of a secret."""
    import agentkeep
    from agentkeep.boundary import redact_text

    text = raw.decode("utf-8", "surrogateescape")
    config = {"store.busy_timeout_ms": settings["hook.lock_wait_ms"]} if settings else None
    with agentkeep.open(
        store_dir, actor=f"hook:{source}", config=config, strict_config=False
    ) as store:
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
        "size": len(raw) if size is None else size,
        "artifact_id": spilled.artifact_id,
        "preview": clean,
    }
    return preview, spilled.artifact_id


# -- the spool (agentkeep/spool.py holds the file protocol) -----------------------------------


def spool_delivery(
    store_dir: str,
    source: str,
    found: Delivery,
    key: str,
    at: str,
    settings: dict[str, Any],
    payload: Any,
    artifact_id: int | None = None,
    *,
    raw: bytes | None = None,
) -> str:
    """Write the delivery, redacted, to the spool; returns the record's path. ``raw``: a
    payload to spill into an artifact when the record is drained (too large for a row).
    Raises :class:`DeliveryLost` when the record cannot be written (nothing else can keep
    the delivery then), CaptureError when the writer would refuse it anyway."""
    policy = settings["capture.policy"]
    writer = capture.Writer(
        None,
        os.path.dirname(store_dir),
        policy=policy,
        max_field_bytes=settings["store.max_field_bytes"],
    )
    delivery: dict[str, Any] = {
        name: writer.text(name, getattr(found, name), content=name == "title")
        for name in _TEXT_FIELDS
    }
    delivery.update(
        event=found.event,
        exit_code=found.exit_code,
        duration_ms=found.duration_ms,
        failed=found.failed,
    )
    record: dict[str, Any] = {
        "format": spool.FORMAT,
        "at": at,
        "source": source,
        "policy": policy,
        "key": writer.text("dedupe_key", key, content=False),
        "delivery": delivery,
        "artifact_id": artifact_id,
        "payload": None,
        "spill": None,
    }
    if raw is not None:
        from agentkeep.boundary import redact_text

        try:
            text, counts = redact_text(raw.decode("utf-8", "replace"))
        except Exception as exc:  # fail closed, as the writer does
            raise capture.CaptureError("the redactor failed on payload") from exc
        record["spill"] = {"text": text, "size": len(raw)}
        writer.boundary.add("payload", counts)
    else:
        record["payload"] = writer.json("payload", payload)
    record["redactions"] = writer.boundary.pending
    try:
        return spool.append(store_dir, record)
    except OSError as exc:
        raise DeliveryLost(
            f"{LOST}: {found.event} of session {delivery['session'] or '-'} could be"
            f" written neither to the store nor to the spool ({exc.strerror or exc})"
        ) from exc


class Drained:
    """What a drain did: records ``applied`` (stored, or found stored already),
    ``quarantined``, and whether records are ``left`` (lock busy, budget spent)."""

    __slots__ = ("applied", "left", "quarantined")

    def __init__(self) -> None:
        self.applied = 0
        self.quarantined = 0
        self.left = False


_draining = False


class _not_draining:
    """Marks this process as draining (or as a hook that must not drain inside the full
    library): a Store opened meanwhile does not drain again."""

    def __enter__(self) -> None:
        global _draining
        self.before = _draining
        _draining = True

    def __exit__(self, *exc: object) -> None:
        global _draining
        _draining = self.before


def drain_spool(
    store_dir: str,
    settings: dict[str, Any] | None = None,
    *,
    wait_ms: int | None = None,
    budget_s: float | None = None,
    batch: int | None = None,
    allow_spill: bool = True,
) -> Drained:
    """Apply the spooled deliveries in order, one transaction per batch, each record
    removed after its batch committed. Waits ``wait_ms`` (default ``hook.lock_wait_ms``)
    for the lock and stops when it is busy: whoever holds it, or the next writer, drains.
    ``budget_s`` bounds the time spent (None: until empty), ``batch`` the records applied
    per transaction (None: as many as fit in LIBRARY_DRAIN_S). A record whose payload is
    to be spilled needs the full library (``allow_spill``).

    Two drainers never apply a record twice: both hold the writer lock while they read,
    apply and remove. Raises OSError, or the database's error, when the store cannot be
    written."""
    done = Drained()
    if _draining or not spool.pending(store_dir):
        return done
    with _not_draining():
        if settings is None:
            settings = load_settings(store_dir)
        wait = settings["hook.lock_wait_ms"] if wait_ms is None else wait_ms
        stop = None if budget_s is None else time.monotonic() + budget_s
        try:
            conn = _connect(store_dir, settings, timeout_ms=max(wait, 1))
            try:
                _drain_batches(conn, store_dir, settings, done, wait, stop, batch, allow_spill)
            finally:
                conn.close()
        except Exception as exc:
            if not fastpath.is_busy(exc):
                raise
            done.left = True  # busy past the wait (even to read): the next writer drains
    return done


def drain_spool_on(
    conn: Any,
    store_dir: str,
    settings: dict[str, Any],
    *,
    budget_s: float | None = None,
    batch: int | None = None,
) -> Drained:
    """:func:`drain_spool` through a connection the library holds open (a PostgreSQL
    store's: the hook never connects to one): the same records, order and idempotency,
    under ``conn``'s writer discipline. The writer lock (PostgreSQL's advisory lock, one
    per store across every machine) is held while a batch is listed, applied, committed
    and removed, so two drainers of one spool never apply a record at once; drainers on
    other machines drain their own spools, and a delivery stored twice (a drainer killed
    between COMMIT and removing its records) is found by its dedupe key and not stored
    again. Raises :class:`agentkeep.errors.Busy` or
    :class:`~agentkeep.errors.StorageError` when the server is unreachable (what was
    committed before stays; the records left stay for the next drainer)."""
    from agentkeep.errors import Busy, InvalidInput

    done = Drained()
    if _draining or not spool.pending(store_dir):
        return done
    refusals = (*REFUSALS, InvalidInput)  # the backend's refusal of one delivery
    with _not_draining():
        stop = None if budget_s is None else time.monotonic() + budget_s
        while spool.pending(store_dir):
            now = time.monotonic()
            if stop is not None and now >= stop:
                done.left = True
                break
            batch_end = now + LIBRARY_DRAIN_S if stop is None else min(stop, now + LIBRARY_DRAIN_S)
            try:
                conn.lock_writers()
            except Busy:
                if conn.in_transaction:  # not a lock timeout: the server went away
                    raise
                done.left = True  # other writers kept it: they, or the next writer, drain
                break
            try:
                conn.execute("BEGIN")
                try:
                    # Stamped inside the writer lock by the database's clock, as the
                    # library's writes are: event times follow seq across machines.
                    now = conn.now()
                    drained = _drain_into(
                        conn, store_dir, settings, batch_end, batch, refusals, now=now
                    )
                    conn.execute("COMMIT")
                except BaseException:
                    conn.rollback()
                    raise
                _drained(store_dir, drained.applied)  # under the lock: no drainer sees them
            finally:
                conn.unlock_writers()
            done.applied += len(drained.applied)
            done.quarantined += drained.quarantined
            if drained.spill is not None:
                if not _spill_record(conn, store_dir, drained.spill, settings):
                    done.left = True
                    break
            elif drained.complete:
                break
    return done


def _drain_batches(
    conn: FastConnection,
    store_dir: str,
    settings: dict[str, Any],
    done: Drained,
    wait: int,
    stop: float | None,
    batch: int | None,
    allow_spill: bool,
) -> None:
    while spool.pending(store_dir):
        now = time.monotonic()
        if stop is not None and now >= stop:
            done.left = True
            return
        batch_end = now + LIBRARY_DRAIN_S if stop is None else min(stop, now + LIBRARY_DRAIN_S)
        queue = WriterQueue(os.path.join(store_dir, "state.db"), wait)
        try:
            _begin(conn, store_dir, queue)
        except LockBusy:
            done.left = True
            return
        guard = None
        try:
            guard = fastpath.checked_mark(conn, store_dir, settings["store.synchronous"])
            drained = _drain_into(conn, store_dir, settings, batch_end, batch)
            fastpath.commit(conn, guard)
            _drained(store_dir, drained.applied)  # under the lock: no drainer sees them
        except BaseException:
            conn.rollback()
            raise
        finally:
            queue.release()
            if guard is not None:
                guard.close()
        done.applied += len(drained.applied)
        done.quarantined += drained.quarantined
        if drained.spill is not None:
            if not allow_spill or not _spill_record(conn, store_dir, drained.spill, settings):
                done.left = True
                return
        elif drained.complete:
            return  # nothing left that this drainer may apply


class _Batch:
    """What one transaction's drain did: the records ``applied`` (removed after COMMIT),
    the record that needs a ``spill`` first (None: none), how many were ``quarantined``,
    and whether the spool was gone through to its end (``complete``)."""

    __slots__ = ("applied", "complete", "quarantined", "spill")

    def __init__(self) -> None:
        self.applied: list[str] = []
        self.spill: str | None = None
        self.quarantined = 0
        self.complete = True


def _drain_into(
    conn: FastConnection,
    store_dir: str,
    settings: dict[str, Any],
    deadline: float,
    limit: int | None = None,
    refusals: tuple[type[BaseException], ...] = REFUSALS,
    *,
    now: str | None = None,
) -> _Batch:
    """Apply spooled records, oldest first, inside the open transaction until
    ``deadline`` (at least two, so every drain makes progress) or ``limit`` records."""
    from agentkeep.failpoints import failpoint

    batch = _Batch()
    rejected: list[str] = []
    paths = spool.records(store_dir, rejected)
    for reason in rejected:
        log_failure(store_dir, "spool", HookError(f"a spooled delivery was quarantined ({reason})"))
    batch.quarantined = len(rejected)
    refused: tuple[type[BaseException], ...] = (
        OSError,
        spool.SpoolError,
        capture.CaptureError,
        HookError,
        *refusals,
    )
    for path in paths:
        if len(batch.applied) == limit or (
            len(batch.applied) >= 2 and time.monotonic() >= deadline
        ):
            batch.complete = False
            break
        try:
            record = spool.read(path)
            if record["spill"] is not None:
                batch.spill = path
                batch.complete = False
                break
            _apply_record(conn, store_dir, record, settings, now=now)
        except FileNotFoundError:
            continue
        except refused as exc:
            _quarantine(store_dir, path, exc)
            batch.quarantined += 1
            continue
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
            _quarantine(store_dir, path, HookError(f"a malformed record ({type(exc).__name__})"))
            batch.quarantined += 1
            continue
        batch.applied.append(path)
        failpoint("spool:applied")
    return batch


def _apply_record(
    conn: FastConnection,
    store_dir: str,
    record: dict[str, Any],
    settings: dict[str, Any],
    *,
    now: str | None = None,
) -> None:
    found = Delivery()
    delivery = record["delivery"]
    for name in (*_TEXT_FIELDS, "event", "exit_code", "duration_ms", "failed"):
        setattr(found, name, delivery[name])
    if found.event not in capture.EVENTS:
        raise HookError(f"a record with an unknown event {found.event!r}")
    payload = record["payload"]
    if record["policy"] not in capture.POLICIES:
        raise HookError(f"a record with an unknown capture policy {record['policy']!r}")
    _apply(
        conn,
        store_dir,
        source=str(record["source"]),
        policy=record["policy"],
        max_field_bytes=settings["store.max_field_bytes"],
        idle_minutes=settings["sessions.idle_minutes"],
        found=found,
        key=str(record["key"]),
        payload=json.loads(payload) if payload is not None else None,
        artifact_id=record["artifact_id"],
        at=str(record["at"]),
        redactions=[(str(r), str(c), int(n)) for r, c, n in record["redactions"]],
        now=now,
    )


def _drained(store_dir: str, paths: list[str]) -> None:
    """Remove records whose transaction committed."""
    if paths:
        from agentkeep.failpoints import failpoint

        failpoint("spool:committed")
        spool.remove(paths)


def _quarantine(store_dir: str, path: str, exc: BaseException) -> None:
    reason = str(exc) if isinstance(exc, HookError) else f"{type(exc).__name__}: {exc}"
    try:
        spool.quarantine(store_dir, path, reason)
    except OSError as error:  # it stays in the spool; the next drainer tries again
        reason += f"; it could not be moved aside ({error.strerror or error})"
    log_failure(
        store_dir,
        "spool",
        HookError(f"a spooled delivery was quarantined ({reason})"),
    )


def _spill_record(
    conn: FastConnection, store_dir: str, path: str, settings: dict[str, Any]
) -> bool:
    """Store a spooled payload as an artifact (outside the writer lock, like the hook
    does) and rewrite its record to name it; False when the lock was busy."""
    try:
        record = spool.read(path)
        found = Delivery()
        for name in (*_TEXT_FIELDS, "event"):
            setattr(found, name, record["delivery"][name])
        if _seen(conn, str(record["key"])):
            spool.remove([path])  # stored already (a drainer was killed before removing)
            return True
        text = record["spill"]["text"]
        preview, artifact_id = spill(
            store_dir,
            str(record["source"]),
            found,
            text.encode("utf-8", "surrogateescape"),
            settings=settings,
            size=int(record["spill"]["size"]),
        )
    except FileNotFoundError:
        return True  # another drainer took it
    except (spool.SpoolError, capture.CaptureError, KeyError, TypeError, ValueError) as exc:
        _quarantine(store_dir, path, exc)
        return True
    except Exception as exc:
        from agentkeep.errors import InvalidInput
        from agentkeep.files import LinkRefused

        if isinstance(exc, InvalidInput | LinkRefused):  # refused now, and every time after
            _quarantine(store_dir, path, exc)
            return True
        if not _busy(exc):  # a full disk, ...: the next drainer tries again
            log_failure(store_dir, "spool", exc)
        return False
    record.update(payload=json.dumps(preview, ensure_ascii=False), artifact_id=artifact_id)
    record["spill"] = None
    spool.rewrite(path, record)
    return True


# -- failures and chaining -------------------------------------------------------------------


def log_failure(store_dir: str, source: str, exc: BaseException) -> bool:
    """Append one redacted line about ``exc`` to the store's hook log (never the payload);
    returns whether the line was written."""
    return hooklog.log_failure(store_dir, source, exc)


def _say(text: str) -> None:
    """A last resort on stderr (redacted; the line names no payload)."""
    try:
        from agentkeep.boundary import redact_text

        text = redact_text(text)[0]
    except Exception:
        text = "agentkeep hook: a delivery was lost, and the hook log could not be written\n"
    try:
        os.write(2, text.encode("utf-8", "replace"))
    except OSError:
        return


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
