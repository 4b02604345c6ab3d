"""Settings: one declarative table drives validation, `config list`, the generated
config.toml and docs/configuration.md.

Where a value comes from, lowest to highest precedence:

1. the default in :data:`SETTINGS`;
2. the user's config file (``$AGENTKEEP_HOME/config.toml``, else the platform config dir);
3. the project's ``.agentkeep/config.toml`` (meant for git);
4. the environment: ``AGENTKEEP_`` + the key upper-cased with dots as underscores
   (``store.synchronous`` → ``AGENTKEEP_STORE_SYNCHRONOUS``);
5. a command-line flag (passed in as ``overrides``).

Config files are read defensively (issue 9 §4): only a regular file is read (a FIFO, a
device or, for the project's file inside the store, a symbolic link is refused without
opening it for long: ``O_NONBLOCK``, ``O_NOFOLLOW``, then ``fstat``), at most
:data:`MAX_CONFIG_BYTES`, and a line nested deeper than :data:`MAX_LINE_NESTING` is refused
before the TOML parser spends quadratic time on it. Every problem is an
:class:`~agentkeep.errors.InvalidInput` naming the file. An unknown key is a warning (with
a "did you mean"), not an error: :attr:`Config.warnings`. ``Config.load(strict=False)`` (the
hook) never raises for a file: a broken file or value falls back to the defaults and the
reason is in :attr:`Config.problems`, so capture goes on.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentkeep.errors import AgentkeepError, InvalidInput
from agentkeep.paths import user_config_file


def _choice(*allowed: str) -> Callable[[Any], Any]:
    def parse(value: Any) -> str:
        text = str(value).strip()
        for option in allowed:
            if text.lower() == option.lower():
                return option
        raise ValueError(f"must be one of {', '.join(allowed)}")

    return parse


def _whole(low: int, high: int) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        if isinstance(value, bool):
            raise ValueError("must be a whole number")
        number = int(value)
        if not low <= number <= high:
            raise ValueError(f"must be from {low:,} to {high:,}")
        return number

    return parse


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be text")
    return value


# The task statuses the board's columns may show (agentkeep.services.tasks.STATUSES; a test
# keeps the two equal: importing the tasks service here would slow every command's start).
_TASK_STATUSES = ("open", "in_progress", "blocked", "done", "cancelled")


def _board_columns(value: Any) -> str:
    """``status=Name,...``: each a task status once, each name non-empty."""
    text = _text(value).strip()
    seen: set[str] = set()
    for part in text.split(","):
        status, equals, name = part.partition("=")
        status = status.strip()
        if status not in _TASK_STATUSES:
            raise ValueError(f"{status!r} is not a task status ({', '.join(_TASK_STATUSES)})")
        if not equals or not name.strip():
            raise ValueError(f"the column for {status!r} needs a name: {status}=Name")
        if status in seen:
            raise ValueError(f"{status!r} is listed twice")
        seen.add(status)
    return text


@dataclass(frozen=True)
class Setting:
    key: str
    default: Any
    parse: Callable[[Any], Any]
    help: str

    @property
    def env_var(self) -> str:
        return "AGENTKEEP_" + self.key.upper().replace(".", "_")


_BYTE_UNITS = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}


def parse_byte_size(value: Any) -> int:
    """A size in bytes: a whole number, or text such as "500MB", "1.5 GiB", "4096".

    KB/MB/GB/TB are powers of 1000, KiB/MiB/GiB/TiB powers of 1024 (case-insensitive).
    """
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError("must be a size such as 500MB or 2GiB")
    text = str(value).strip().lower().replace(" ", "").replace("_", "")
    digits = text.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = text[len(digits) :]
    try:
        number = float(digits)
    except ValueError:
        number = -1.0
    if unit not in _BYTE_UNITS or not 0 <= number <= 2**62:
        raise ValueError("must be a size such as 500MB, 2GiB or a number of bytes")
    size = int(number * _BYTE_UNITS[unit])
    if size > 2**62:
        raise ValueError("must be at most 4 EiB")
    return size


# Retention (issue 3): what `agentkeep gc` may delete. "streams" are the recorded output
# of sessions; the other kinds are artifact kinds. Every limit defaults to 0 (no limit):
# nothing is ever deleted until the user writes a policy (principle 7 of docs/design.md).
RETENTION_KINDS: tuple[str, ...] = ("streams", "diff", "log", "file", "bundle", "payload")


def _retention_settings() -> tuple[Setting, ...]:
    settings: list[Setting] = []
    for kind in RETENTION_KINDS:
        what = "output streams" if kind == "streams" else f"{kind} artifacts"
        settings += [
            Setting(
                f"retention.{kind}.max_age_days",
                0,
                _whole(0, 1_000_000),
                f"`agentkeep gc` deletes {what} created more than this many days ago. "
                "0: no age limit. Pinned sessions and artifacts and live streams are kept.",
            ),
            Setting(
                f"retention.{kind}.max_total_bytes",
                0,
                parse_byte_size,
                f"`agentkeep gc` deletes the oldest {what} until the bytes they occupy on "
                'disk are at most this size (a number, or text like "500MB" or "2GiB"). '
                "0: no size limit.",
            ),
            Setting(
                f"retention.{kind}.keep_last_sessions",
                0,
                _whole(0, 1_000_000_000),
                f"`agentkeep gc` keeps the {what} of the newest N sessions whatever the "
                "other limits say. 0: this rule protects nothing.",
            ),
        ]
    return tuple(settings)


def _store_url(value: Any) -> str:
    text = _text(value)
    if text:
        from agentkeep.backends.postgres.url import check_storable

        try:
            check_storable(text)
        except AgentkeepError as exc:
            raise ValueError(exc.message) from None
    return text


_NAMESPACE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


def parse_doc_roots(value: Any) -> list[tuple[str, str | None]]:
    """The ``docs.roots`` setting: a list (or comma-separated text) of ``path`` or
    ``path:namespace``, each a directory inside the project."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list):
        raise ValueError('must be a list of directories, e.g. ["docs", "input:campaigns"]')
    roots: list[tuple[str, str | None]] = []
    for item in items:
        text = str(item).strip()
        if not text:
            continue
        path, _, namespace = (part.strip() for part in text.partition(":"))
        path = path.rstrip("/")
        if not path or path.startswith("/") or ".." in path.split("/"):
            raise ValueError(f"{text!r}: a root is a directory inside the project")
        if namespace and not _NAMESPACE.match(namespace):
            raise ValueError(f"{text!r}: {namespace!r} is not a valid namespace name")
        roots.append((path, namespace or None))
    return roots


def _doc_roots(value: Any) -> list[str]:
    parse_doc_roots(value)
    items = value.split(",") if isinstance(value, str) else value
    return [str(item).strip() for item in items if str(item).strip()]


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "store.url",
        "",
        _store_url,
        "Where the store's database lives. Empty: SQLite, in .agentkeep/state.db. A "
        "postgresql:// URL: a PostgreSQL shared by a team, one schema per project "
        "(docs/team.md); never with a password (PGPASSWORD or ~/.pgpass give it). "
        "AGENTKEEP_URL in the environment takes precedence.",
    ),
    Setting(
        "store.synchronous",
        "FULL",
        _choice("FULL", "NORMAL"),
        "FULL syncs the WAL on every commit: no acknowledged write is lost even on power "
        "loss. NORMAL is ~5x faster per single commit but may lose the last commits on power "
        "loss (never on a process crash).",
    ),
    Setting(
        "store.busy_timeout_ms",
        5000,
        _whole(1, 600_000),
        "How long a write waits for another process's write lock before failing with "
        "'busy' (exit 7).",
    ),
    Setting(
        "store.max_field_bytes",
        1_048_576,
        _whole(1024, 256 * 1_048_576),
        "Largest text value a single field may hold, in UTF-8 bytes. Larger input is "
        "refused with a clear error; bulk output belongs in streams and artifacts.",
    ),
    Setting(
        "docs.roots",
        [],
        _doc_roots,
        "Project directories whose files are documents, beside .agentkeep/docs/: a list of "
        "paths relative to the project root, each optionally followed by a colon and its "
        "namespace (default: the directory's name), e.g. "
        '["docs", "input/campaigns:campaigns"]. Read one way into the index; agentkeep '
        "never rewrites them while indexing.",
    ),
    Setting(
        "docs.rescan_ms",
        1000,
        _whole(0, 86_400_000),
        "Reads of documents (doc ls/show, search, context) first re-check the files whose "
        "size or mtime changed, at most once per this many milliseconds per process. "
        "0: every read.",
    ),
    Setting(
        "events.follow_poll_ms",
        20,
        _whole(1, 60_000),
        "How often `events -f` and Store.follow() check for other processes' commits "
        "(one cheap PRAGMA data_version per poll). On PostgreSQL a commit's NOTIFY wakes "
        "them at once; this is only the longest wait between checks.",
    ),
    Setting(
        "actor",
        "",
        _text,
        "Who is recorded as the actor of changes made through this configuration. Empty "
        "means '<user>@cli' (or AGENTKEEP_ACTOR for agents).",
    ),
    Setting(
        "capture.policy",
        "full",
        _choice("full", "metadata", "off"),
        "What hooks and importers keep of agent sessions. full: prompts, responses, tool "
        "inputs and outputs (redacted). metadata: counts, tokens, tool names and timings, "
        "no text. off: nothing is captured.",
    ),
    Setting(
        "capture.spill_bytes",
        65_536,
        _whole(1024, 64 * 1_048_576),
        "A hook payload larger than this (UTF-8 bytes) is stored as a 'payload' artifact, "
        "and its row keeps a head-and-tail preview.",
    ),
    Setting(
        "sessions.idle_minutes",
        60,
        _whole(0, 10_000_000),
        "A session agentkeep only observes (through hooks or an importer) that shows no "
        "activity for longer than this many minutes is ended, at its last activity, with a "
        "session.ended event (reason idle), and `status` never counts it as running; new "
        "activity resumes it. Claude Code and Codex write no end marker into their "
        "transcripts, so without a SessionEnd hook this is how their sessions end. 0: "
        "never end sessions for idleness.",
    ),
    Setting(
        "hook.lock_wait_ms",
        30,
        _whole(1, 10_000),
        "How long `agentkeep hook` waits for the writer lock before it writes the "
        "(redacted) delivery to .agentkeep/spool/ instead and exits; the next writer "
        "stores it. Keeps an agent's tool call from waiting on agentkeep.",
    ),
    Setting(
        "serve.max_json_bytes",
        1_048_576,
        parse_byte_size,
        "Largest JSON request body `agentkeep serve` accepts, in bytes (a number, or text "
        'like "2MiB"); a larger one is refused with 413 and nothing is written.',
    ),
    Setting(
        "serve.max_upload_bytes",
        1024 * 1_048_576,
        parse_byte_size,
        "Largest upload `agentkeep serve` accepts (raw bytes: an artifact, a bundle to "
        "import), in bytes; a larger one is refused with 413 and nothing is written.",
    ),
    Setting(
        "dashboard.columns",
        "open=Open,in_progress=In progress,blocked=Blocked,done=Done,cancelled=Cancelled",
        _board_columns,
        "The dashboard board's columns, left to right, separated by commas: each a task "
        "status (open, in_progress, blocked, done, cancelled), an equals sign and the "
        "column's name, as in the default. A status not listed is not shown on the board.",
    ),
    Setting(
        "semantic.model",
        "",
        _text,
        "Semantic ranking of documents and specs, fused with full-text ranking "
        "(docs/semantic.md): a model2vec model folder (relative to the project root) or a "
        "model id. Empty: off, and nothing loads a model. Needs the semantic extra: "
        "pip install 'agentkeep[semantic]'.",
    ),
    *_retention_settings(),
)

SETTINGS_BY_KEY = {s.key: s for s in SETTINGS}


@dataclass(frozen=True)
class Value:
    key: str
    value: Any
    source: str  # default | user | project | env | flag


MAX_CONFIG_BYTES = 64 * 1024  # the generated config.toml is ~8 KiB
MAX_LINE_NESTING = 64  # dots and brackets on one line; settings nest 3 deep
_FILE_KINDS = (
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISSOCK, "a socket"),
)


def _flatten(table: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    pending: list[tuple[str, Mapping[str, Any]]] = [("", table)]
    while pending:  # iterative: a deeply nested file cannot exhaust the stack here
        prefix, current = pending.pop()
        for name, value in current.items():
            key = f"{prefix}{name}"
            if isinstance(value, Mapping):
                pending.append((key + ".", value))
            else:
                out[key] = value
    return out


def read_config_text(path: Path, *, follow_links: bool = True) -> str | None:
    """The text of a config file, or None when there is none. Raises InvalidInput, naming
    the file, when it is not a regular file (never blocks on a FIFO), is a link and
    ``follow_links`` is false, is larger than :data:`MAX_CONFIG_BYTES` or is not UTF-8."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    if not follow_links:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise InvalidInput(
                f"{path} is a symbolic link; agentkeep does not follow links inside its store",
                hint="replace the link with the file itself",
            ) from exc
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from exc
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = next((name for test, name in _FILE_KINDS if test(mode)), "not a file")
            raise InvalidInput(
                f"{path} is {kind}, not a regular file",
                hint="a config file must be a plain TOML file; remove or replace it",
            )
        chunks: list[bytes] = []
        size = 0
        while size <= MAX_CONFIG_BYTES:
            chunk = os.read(fd, MAX_CONFIG_BYTES + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from exc
    finally:
        os.close(fd)
    if size > MAX_CONFIG_BYTES:
        raise InvalidInput(
            f"{path} is larger than {MAX_CONFIG_BYTES // 1024} KiB, the limit for a config file",
            hint="a config file holds a few settings; remove what is not a setting",
        )
    try:
        return b"".join(chunks).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{path} is not UTF-8 text (byte {exc.start})") from exc


def parse_toml(text: str, path: Path) -> dict[str, Any]:
    """The flattened settings in ``text`` (the content of ``path``)."""
    for number, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("#"):
            continue
        if line.count(".") + line.count("[") + line.count("{") > MAX_LINE_NESTING:
            raise InvalidInput(
                f"{path} line {number} is nested too deeply to be a setting",
                hint="settings are at most three names deep, like retention.streams.max_age_days",
            )
    if _only_comments(text):
        return {}
    import tomllib  # ~2.5 ms; the config.toml init writes is all comments

    try:
        return _flatten(tomllib.loads(text))
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(
            f"{path} is not valid TOML: {exc}", hint="fix the file or remove the broken line"
        ) from exc
    except RecursionError as exc:
        raise InvalidInput(
            f"{path} is nested too deeply to parse",
            hint="settings are at most three names deep, like retention.streams.max_age_days",
        ) from exc


def read_toml(path: Path, *, follow_links: bool = True) -> dict[str, Any]:
    """The flattened settings in a config file ({} when it does not exist)."""
    text = read_config_text(path, follow_links=follow_links)
    return {} if text is None else parse_toml(text, path)


def unknown_key_warning(key: str, source: str) -> str:
    """What to tell about a key that is not a setting (with the closest one, if any)."""
    import difflib

    shown = key if len(key) <= 80 else key[:77] + "..."
    message = f"unknown setting {shown!r} in {source} is ignored"
    close = difflib.get_close_matches(key, list(SETTINGS_BY_KEY), n=1, cutoff=0.6)
    if close:
        message += f"; did you mean {close[0]!r}?"
    return message


def parse_value(key: str, raw: Any, *, source: str) -> Any:
    setting = SETTINGS_BY_KEY.get(key)
    if setting is None:
        raise InvalidInput(
            unknown_key_warning(key, source).replace(" is ignored", ""),
            hint="`agentkeep config list` shows every setting",
        )
    try:
        return setting.parse(raw)
    except (ValueError, TypeError, OverflowError) as exc:
        shown = repr(_without_password(raw) if key == "store.url" else raw)
        if len(shown) > 60:
            shown = shown[:57] + "..."
        raise InvalidInput(f"setting {key} from {source}: {exc} (got {shown})") from exc


def _without_password(raw: Any) -> Any:
    """A refused store.url as an error may echo it: with its password as ``***`` (the
    redactor does not know a URL whose host is empty or that the message cuts short)."""
    if not isinstance(raw, str):
        return raw
    from agentkeep.backends.postgres.url import redacted

    try:
        return redacted(raw)
    except ValueError:  # not even a URL urllib can split: show none of it
        return "***"


class Config:
    """Resolved settings with the source of each value."""

    def __init__(
        self,
        values: dict[str, Value],
        *,
        warnings: list[str] | None = None,
        problems: list[str] | None = None,
    ) -> None:
        self._values = values
        self.warnings: list[str] = warnings or []  # unknown keys: ignored, worth telling
        self.problems: list[str] = problems or []  # what strict=False fell back on

    def __getitem__(self, key: str) -> Any:
        return self._values[key].value

    def values(self) -> list[Value]:
        return [self._values[s.key] for s in SETTINGS]

    @classmethod
    def load(
        cls,
        *,
        project_file: Path | None = None,
        overrides: Mapping[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
        strict: bool = True,
    ) -> Config:
        """Resolve every setting. ``strict=False`` (the hook, which must keep capturing)
        turns each unreadable file or invalid value into an entry of :attr:`problems`
        and keeps the value from the layer below; flags are always strict."""
        env = os.environ if env is None else env
        warnings: list[str] = []
        problems: list[str] = []
        files = [("user", user_config_file(), True)]
        if project_file is not None:  # inside the store: links are not followed
            files.append(("project", project_file, False))
        layers: list[tuple[str, Mapping[str, Any]]] = []
        for source, path, follow in files:
            try:
                layers.append((f"{source} config {path}", read_toml(path, follow_links=follow)))
            except InvalidInput as exc:
                if strict:
                    raise
                problems.append(f"{exc.message}; its settings are ignored")
        layers.append(
            ("env", {s.key: env[s.env_var] for s in SETTINGS if s.env_var in env}),
        )
        layers.append(("flag", dict(overrides or {})))
        values = {s.key: Value(s.key, s.default, "default") for s in SETTINGS}
        for where, layer in layers:
            source = where.split(" ", 1)[0]
            for key, raw in layer.items():
                if key not in SETTINGS_BY_KEY and source != "flag":
                    warnings.append(unknown_key_warning(key, where))
                    continue
                try:
                    values[key] = Value(key, parse_value(key, raw, source=where), source)
                except InvalidInput as exc:
                    if strict or source == "flag":
                        raise
                    problems.append(f"{exc.message}; the value is ignored")
        return cls(values, warnings=warnings, problems=problems)


def _only_comments(text: str) -> bool:
    """Whether ``text`` is TOML that holds nothing: blank lines and comments only, without
    the control characters TOML refuses in them (those, a lone CR, a BOM: left to
    tomllib, which reports them)."""
    text = text.replace("\r\n", "\n")
    if re.search("[\x00-\x08\x0b-\x1f\x7f]", text):
        return False
    return all(not (s := line.lstrip(" \t")) or s[0] == "#" for line in text.split("\n"))


def default_config_toml() -> str:
    """The commented config.toml that `agentkeep init` writes."""
    lines = [
        "# agentkeep project settings. This file is meant for version control.",
        "# Every setting is shown with its default, commented out; uncomment to change it.",
        "# `agentkeep config list` shows the values in force and where each comes from.",
        "",
    ]
    current_section = None
    # Top-level keys must come before the first [table] header, or TOML nests them.
    for setting in sorted(SETTINGS, key=lambda s: "." in s.key):
        section, _, name = setting.key.rpartition(".")
        if section != current_section:
            if section:
                lines.append(f"# [{section}]")
            current_section = section
        for chunk in _wrap(setting.help, 86):
            lines.append(f"# {chunk}")
        lines.append(f"# {name} = {_toml_literal(setting.default)}")
        lines.append("")
    return "\n".join(lines)


def _toml_literal(value: Any) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return str(value)


def _wrap(text: str, width: int) -> list[str]:
    words, lines, line = text.split(), [], ""
    for word in words:
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    if line:
        lines.append(line)
    return lines


def set_in_file(path: Path, key: str, raw: str) -> Any:
    """Validate ``raw`` for ``key`` and write it into the TOML file, keeping its comments."""
    import tomlkit  # lazy: only `config set` writes TOML

    value = parse_value(key, raw, source="the command line")
    if isinstance(value, str):
        from agentkeep.boundary import redact_text  # RedactionFailed: nothing is written

        if redact_text(value)[1]:
            raise InvalidInput(
                f"the value for {key} looks like a secret; config.toml is meant for git",
                hint="keep credentials in the environment and refer to them by name",
            )
    inside_store = path.parent.name == ".agentkeep"
    text = read_config_text(path, follow_links=not inside_store) or ""
    try:
        document = tomlkit.parse(text)
    except (tomlkit.exceptions.TOMLKitError, RecursionError) as exc:
        raise InvalidInput(f"cannot update {path}: {exc}") from exc
    *sections, name = key.split(".")
    table: Any = document
    for section in sections:
        if section not in table:
            table[section] = tomlkit.table()
        table = table[section]
    table[name] = value
    from agentkeep.files import PRIVATE_DIR, remove_quietly, temp_path, write_new_file

    tmp = temp_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
        write_new_file(tmp, tomlkit.dumps(document).encode("utf-8"))  # 0600, never a link
        os.replace(tmp, path)
    except OSError as exc:
        remove_quietly(tmp)
        raise InvalidInput(f"cannot update {path}: {exc.strerror}") from exc
    return value
