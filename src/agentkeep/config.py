"""Settings: one declarative table drives validation, `config list`, the generated
config.toml and docs/configuration.md.

Where a value comes from, lowest to highest precedence:

1. the default in :data:`SETTINGS`;
2. the user's config file (``$AGENTKEEP_HOME/config.toml``, else the platform config dir);
3. the project's ``.agentkeep/config.toml`` (meant for git);
4. the environment: ``AGENTKEEP_`` + the key upper-cased with dots as underscores
   (``store.synchronous`` → ``AGENTKEEP_STORE_SYNCHRONOUS``);
5. a command-line flag (passed in as ``overrides``).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentkeep.errors import InvalidInput
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
# nothing is ever deleted until the user writes a policy (DESIGN.md principle 7).
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


SETTINGS: tuple[Setting, ...] = (
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
        "events.follow_poll_ms",
        20,
        _whole(1, 60_000),
        "How often `events -f` and Store.follow() check for other processes' commits "
        "(one cheap PRAGMA data_version per poll).",
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
    *_retention_settings(),
)

SETTINGS_BY_KEY = {s.key: s for s in SETTINGS}


@dataclass(frozen=True)
class Value:
    key: str
    value: Any
    source: str  # default | user | project | env | flag


def _flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in table.items():
        key = f"{prefix}{name}"
        if isinstance(value, Mapping):
            out.update(_flatten(value, key + "."))
        else:
            out[key] = value
    return out


def read_toml(path: Path) -> dict[str, Any]:
    """The flattened settings in a config file ({} when it does not exist)."""
    try:
        with path.open("rb") as handle:
            return _flatten(tomllib.load(handle))
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(
            f"{path} is not valid TOML: {exc}", hint="fix the file or remove the broken line"
        ) from exc
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from exc


def parse_value(key: str, raw: Any, *, source: str) -> Any:
    setting = SETTINGS_BY_KEY.get(key)
    if setting is None:
        raise InvalidInput(
            f"unknown setting {key!r} in {source}",
            hint="`agentkeep config list` shows every setting",
        )
    try:
        return setting.parse(raw)
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"setting {key} from {source}: {exc} (got {raw!r})") from exc


class Config:
    """Resolved settings with the source of each value."""

    def __init__(self, values: dict[str, Value]) -> None:
        self._values = values

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
    ) -> Config:
        env = os.environ if env is None else env
        layers: list[tuple[str, Mapping[str, Any]]] = [
            ("user", read_toml(user_config_file())),
        ]
        if project_file is not None:
            layers.append(("project", read_toml(project_file)))
        layers.append(
            ("env", {s.key: env[s.env_var] for s in SETTINGS if s.env_var in env}),
        )
        layers.append(("flag", dict(overrides or {})))
        values = {s.key: Value(s.key, s.default, "default") for s in SETTINGS}
        for source, layer in layers:
            for key, raw in layer.items():
                values[key] = Value(key, parse_value(key, raw, source=source), source)
        return cls(values)


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
        from agentkeep.redact import redact_text

        if redact_text(value)[1]:
            raise InvalidInput(
                f"the value for {key} looks like a secret; config.toml is meant for git",
                hint="keep credentials in the environment and refer to them by name",
            )
    try:
        text = path.read_text(encoding="utf-8") if path.exists() else ""
        document = tomlkit.parse(text)
    except (OSError, tomlkit.exceptions.TOMLKitError) as exc:
        raise InvalidInput(f"cannot update {path}: {exc}") from exc
    *sections, name = key.split(".")
    table: Any = document
    for section in sections:
        if section not in table:
            table[section] = tomlkit.table()
        table = table[section]
    table[name] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(tomlkit.dumps(document), encoding="utf-8")
    os.replace(tmp, path)
    return value
