"""Installing agentkeep's hooks into coding-agent tools (`agentkeep setup`).

Each tool keeps its hook configuration in its own files, and setup edits only its own
entries in them:

- Claude Code: the ``hooks`` block of a settings JSON file (``.claude/settings.local.json``
  for a project, ``$CLAUDE_CONFIG_DIR/settings.json`` for the user).
- Codex: ``notify`` in ``$CODEX_HOME/config.toml`` (an existing notify command is chained:
  the hook runs it after storing the turn) and ``hooks.json`` (the same shape as Claude's
  block), for the user or a project's ``.codex/``.
- OpenCode: a small TypeScript plugin, ``plugins/agentkeep.ts``, marked as generated.

With ``--mcp`` setup registers ``agentkeep mcp`` (the MCP server over stdio) instead, as
the server named ``agentkeep`` in the tool's MCP configuration: Claude Code's ``.mcp.json``
(project) or ``~/.claude.json`` (user) ``mcpServers``; Codex's ``config.toml``
``[mcp_servers.agentkeep]`` (``$CODEX_HOME`` or a project's ``.codex/``); OpenCode's
``opencode.json`` ``mcp`` (the project's, or ``$XDG_CONFIG_HOME/opencode/``). The same
rules hold: other servers and settings are kept, a second run writes nothing, ``--remove``
restores the original bytes, and an ``agentkeep`` entry that does not run ``agentkeep mcp``
is never overwritten.

Rules that make it safe to run any number of times:

- Our entries are recognised by their command: an ``agentkeep`` executable followed by
  ``hook --source`` or ``prime --hook-json``. A reinstall after the executable moved
  replaces them rather than adding a second set; everything else is the user's and is kept
  in place (order, keys, other hooks).
- Installing what is already installed writes nothing (same bytes, no backup).
- Before a file changes, it is copied to a timestamped backup, and the file from before
  the first install is kept as the *original*. ``--remove`` takes our entries out; when
  what is left means the same as the original, the original bytes are written back (byte
  for byte), and a file setup created is deleted.
- A file that does not parse is never touched: InvalidInput, nothing written.

No secret leaves the user's own file through setup (principle 5 of docs/design.md). Settings files
may hold secrets (``env`` holds API keys), so what setup writes elsewhere and prints passes
the privacy boundary first: backups and the original are stored with every secret replaced
by its ``[REDACTED:<rule>]`` marker, and the diff is printed redacted. The original's state
records which rules' secrets were replaced, in order; ``--remove`` fills those markers
back from the secrets still in the user's file (:func:`agentkeep.boundary.fill_secrets`)
and restores those bytes only when the result means exactly what is left after taking our
entries out. A file without secrets is therefore restored byte for byte as before; one
with secrets is too unless the user changed it since (then our entries are taken out of
the file as it is, which keeps every secret where the user put it). A backup of a file
with secrets is a record of its shape, not a way to get the secrets back: they stay only
in the user's file.

Backups and originals live in the user's agentkeep data dir (``setup-backups/``), not beside
the settings: a project's ``.claude/`` is inside its git tree (a backup there could be
committed).

The functions over file contents (:func:`merge_hooks`, :func:`set_notify`, …) are pure;
:func:`plan_setup` reads the files, :func:`apply_setup` writes them.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
import os
import re
import shlex
import shutil
import sys
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentkeep import tools
from agentkeep.boundary import fill_secrets, may_contain_secret, redact_text, split_secrets
from agentkeep.errors import Conflict, InvalidInput, StorageError
from agentkeep.models import Record

TOOLS = tools.NAMES  # the registry (agentkeep/tools.py) lists the agent tools
SCOPES = ("project", "user")
DEFAULT_SCOPE = {name: tool.default_scope for name, tool in tools.TOOLS.items()}
TIMEOUT = 10  # seconds (Claude Code and Codex both count hook timeouts in seconds)

# (event, matcher, timeout). SessionEnd hooks share a 1.5 s budget in Claude Code unless a
# timeout raises it; Codex caps SessionEnd at 3 s and warns about anything longer.
CLAUDE_EVENTS: tuple[tuple[str, str | None, int], ...] = (
    ("SessionStart", "startup|resume|clear|compact", TIMEOUT),
    ("UserPromptSubmit", None, TIMEOUT),
    ("PostToolUse", "*", TIMEOUT),
    ("PostToolUseFailure", "*", TIMEOUT),
    ("Stop", None, TIMEOUT),
    ("SubagentStop", None, TIMEOUT),
    ("PreCompact", None, TIMEOUT),
    ("PostCompact", None, TIMEOUT),
    ("SessionEnd", None, 5),
    ("Notification", None, TIMEOUT),
)
# Codex matchers are regular expressions; an omitted matcher matches everything.
CODEX_EVENTS: tuple[tuple[str, str | None, int], ...] = (
    ("SessionStart", None, TIMEOUT),
    ("UserPromptSubmit", None, TIMEOUT),
    ("PostToolUse", None, TIMEOUT),
    ("PreCompact", None, TIMEOUT),
    ("PostCompact", None, TIMEOUT),
    ("SubagentStop", None, TIMEOUT),
    ("Stop", None, TIMEOUT),
    ("SessionEnd", None, 3),
)
PRIME_EVENT = "SessionStart"  # the event whose hooks also run `prime --hook-json`

SHIM_NAME = "agentkeep.ts"
SHIM_MARK = "generated by agentkeep setup"
BACKUP_DIR = "setup-backups"
EXECUTABLE_NAMES = ("agentkeep", "agentkeep.exe")


# -- the agentkeep command hooks run ----------------------------------------------------------


def agentkeep_argv() -> list[str]:
    """How hooks should run this agentkeep: the absolute path of its console script (the one
    running now, the one beside the interpreter, or the one on PATH), else
    ``python -m agentkeep`` with this interpreter. Symlinks are kept (a pipx link survives
    upgrades of the environment it points into)."""
    candidates: list[Path] = []
    if sys.argv and Path(sys.argv[0]).name in EXECUTABLE_NAMES:
        candidates.append(Path(sys.argv[0]))
    bindir = Path(sys.executable).parent
    candidates += [bindir / name for name in EXECUTABLE_NAMES]
    on_path = shutil.which("agentkeep")
    if on_path:
        candidates.append(Path(on_path))
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return [str(candidate.absolute())]
    return [str(Path(sys.executable).absolute()), "-m", "agentkeep"]


def is_our_argv(argv: Sequence[object]) -> bool:
    """Whether an argv runs ``agentkeep hook --source …`` or ``agentkeep prime --hook-json``
    (any agentkeep executable as the program, or ``python -m agentkeep``)."""
    words = [word for word in argv if isinstance(word, str)]
    index = _program_index(words)
    if index is None:
        return False
    verb = tuple(words[index + 1 : index + 3])
    return verb in (("hook", "--source"), ("prime", "--hook-json"))


def is_our_mcp_argv(argv: Sequence[object]) -> bool:
    """Whether an argv runs ``agentkeep mcp`` (any agentkeep executable, or
    ``python -m agentkeep``; root options such as ``--store`` may come before ``mcp``)."""
    words = [word for word in argv if isinstance(word, str)]
    index = _program_index(words)
    return index is not None and "mcp" in words[index + 1 :]


def _program_index(words: Sequence[str]) -> int | None:
    """Where ``agentkeep`` is in an argv: the program itself, or the module after ``-m``."""
    if words and _basename(words[0]) in EXECUTABLE_NAMES:
        return 0
    for index in range(1, len(words)):
        if words[index - 1] == "-m" and words[index] == "agentkeep":
            return index
    return None


def is_our_command(command: object) -> bool:
    """:func:`is_our_argv` for a shell command string."""
    if not isinstance(command, str) or "agentkeep" not in command:
        return False
    try:
        return is_our_argv(shlex.split(command))
    except ValueError:  # unbalanced quotes: not a command we wrote
        return False


def _basename(word: str) -> str:
    return word.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]


def _kind_of(argv: Sequence[str]) -> str:
    """``hook:<source>`` or ``prime`` for one of our argvs."""
    index = _program_index(argv)
    if index is None:
        return "?"
    rest = list(argv[index + 1 : index + 4])
    if rest[:1] == ["prime"]:
        return "prime"
    return f"hook:{rest[2]}" if rest[:2] == ["hook", "--source"] and len(rest) == 3 else "?"


def _split(command: str) -> list[str]:
    try:
        return shlex.split(command)
    except ValueError:
        return []


# -- hooks blocks (Claude settings, Codex hooks.json) -----------------------------------------


def hooks_block(
    events: Sequence[tuple[str, str | None, int]], exe: Sequence[str], source: str
) -> dict[str, list[dict[str, Any]]]:
    """The hook groups we install: event -> [one matcher group with our handler(s)]."""
    base = shlex.join(exe)
    block: dict[str, list[dict[str, Any]]] = {}
    for event, matcher, timeout in events:
        commands = [f"{base} hook --source {source}"]
        if event == PRIME_EVENT:
            commands.append(f"{base} prime --hook-json")
        handlers = [{"type": "command", "command": c, "timeout": timeout} for c in commands]
        group: dict[str, Any] = {} if matcher is None else {"matcher": matcher}
        group["hooks"] = handlers
        block[event] = [group]
    return block


def _is_our_handler(handler: object) -> bool:
    return isinstance(handler, dict) and is_our_command(handler.get("command"))


def _has_ours(group: object) -> bool:
    return (
        isinstance(group, dict)
        and isinstance(group.get("hooks"), list)
        and any(_is_our_handler(h) for h in group["hooks"])
    )


def merge_hooks(settings: dict[str, Any], desired: dict[str, list[Any]]) -> dict[str, Any]:
    """``settings`` with our hook entries exactly ``desired`` (pass ``{}`` to remove them).

    An event whose entries are already exactly right is left alone; otherwise our handlers
    are taken out of every group (a group left empty goes) and the desired groups go where
    our first group was, or at the end. Containers emptied by taking ours out go too.
    """
    out = copy.deepcopy(settings)
    hooks = out.get("hooks")
    if hooks is None:
        if not desired:
            return out
        hooks = out["hooks"] = {}
    if not isinstance(hooks, dict):
        raise InvalidInput('"hooks" must be a JSON object (event name -> list of groups)')
    had_entries = bool(hooks)
    for event in [*hooks, *(e for e in desired if e not in hooks)]:
        groups = hooks.get(event, [])
        want = desired.get(event)
        if not isinstance(groups, list):
            if want is None:
                continue
            raise InvalidInput(f'"hooks.{event}" must be a list of matcher groups')
        if [g for g in groups if _has_ours(g)] == (want or []):
            continue
        kept: list[Any] = []
        at: int | None = None
        for group in groups:
            if not _has_ours(group):
                kept.append(group)
                continue
            if at is None:
                at = len(kept)
            rest = [h for h in group["hooks"] if not _is_our_handler(h)]
            if rest:
                kept.append({**group, "hooks": rest})
        if want:
            position = len(kept) if at is None else at
            kept[position:position] = copy.deepcopy(want)
        if kept or event not in hooks:
            hooks[event] = kept
        else:
            del hooks[event]
    if not hooks and had_entries and not desired:
        del out["hooks"]
    return out


def our_hook_commands(settings: dict[str, Any]) -> dict[str, list[str]]:
    """event -> our command strings in ``settings``."""
    found: dict[str, list[str]] = {}
    hooks = settings.get("hooks")
    if not isinstance(hooks, dict):
        return found
    for event, groups in hooks.items():
        if not isinstance(groups, list):
            continue
        for group in groups:
            if _has_ours(group):
                found.setdefault(event, []).extend(
                    h["command"] for h in group["hooks"] if _is_our_handler(h)
                )
    return found


def missing_hooks(settings: dict[str, Any], desired: dict[str, list[Any]]) -> list[str]:
    """Events of ``desired`` that lack one of our handlers (any agentkeep path counts)."""
    present = {
        event: {_kind_of(_split(c)) for c in commands}
        for event, commands in our_hook_commands(settings).items()
    }
    missing = []
    for event, groups in desired.items():
        wanted = {_kind_of(_split(h["command"])) for g in groups for h in g["hooks"]}
        if not wanted <= present.get(event, set()):
            missing.append(event)
    return missing


def parse_json_settings(text: str, path: Path) -> dict[str, Any]:
    """A settings file's JSON object, or InvalidInput naming where it does not parse."""
    try:
        value = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as exc:
        raise InvalidInput(
            f"{path} is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}), "
            "so setup did not change it",
            hint="fix the file (or move it aside) and run setup again",
        ) from exc
    except RecursionError as exc:
        raise InvalidInput(f"{path} is nested too deeply to edit safely") from exc
    if not isinstance(value, dict):
        raise InvalidInput(f"{path} must hold a JSON object, so setup did not change it")
    return value


def _json_or_empty(text: str) -> Any:
    return json.loads(text) if text.strip() else {}


def render_json(value: dict[str, Any], like: str | None = None) -> str:
    """JSON text in the indentation of ``like`` (the file's current text; default 2)."""
    indent: str | int = 2
    if like:
        found = re.search(r'\n([ \t]+)"', like)
        if found:
            indent = found.group(1)
    return json.dumps(value, indent=indent, ensure_ascii=False) + "\n"


# -- Codex notify -----------------------------------------------------------------------------

CHAIN_PREFIX = "--chain="


def notify_argv(exe: Sequence[str], chain: list[str] | None) -> list[str]:
    """Our notify command; ``chain`` is the user's previous notify argv, which the hook
    runs after storing the turn (with the payload appended, as Codex would)."""
    argv = [*exe, "hook", "--source", "codex-notify"]
    if chain is not None:
        argv.append(CHAIN_PREFIX + json.dumps(chain, ensure_ascii=False, separators=(",", ":")))
    return argv


def chained_notify(argv: Sequence[str]) -> list[str] | None:
    """The previous notify argv carried by our notify command, or None."""
    for word in argv:
        if word.startswith(CHAIN_PREFIX):
            try:
                value = json.loads(word[len(CHAIN_PREFIX) :])
            except json.JSONDecodeError:
                return None
            if isinstance(value, list) and all(isinstance(v, str) for v in value):
                return value
    return None


def _toml(text: str, path: Path) -> Any:
    """A tomlkit document (which keeps comments and layout) of valid TOML."""
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(
            f"{path} is not valid TOML ({exc}), so setup did not change it",
            hint="fix the file (or move it aside) and run setup again",
        ) from exc
    import tomlkit

    return tomlkit.parse(text)


def _notify_of(doc: Any, path: Path) -> list[str] | None:
    if "notify" not in doc:
        return None
    value = doc["notify"]
    value = value.unwrap() if hasattr(value, "unwrap") else value
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidInput(f"notify in {path} must be a list of strings (a command and its args)")
    return value


def set_notify(text: str, exe: Sequence[str], path: Path = Path("config.toml")) -> str:
    """``config.toml`` text with notify running our hook, chaining any other command."""
    doc = _toml(text, path)
    current = _notify_of(doc, path)
    if current is None:
        chain = None
    elif is_our_argv(current):
        chain = chained_notify(current)
    else:
        chain = current
    wanted = notify_argv(exe, chain)
    if current == wanted:
        return text
    doc["notify"] = wanted
    result: str = doc.as_string()
    return result


def strip_notify(text: str, path: Path = Path("config.toml")) -> str:
    """``config.toml`` text with our notify replaced by the command it chained (if any)."""
    doc = _toml(text, path)
    current = _notify_of(doc, path)
    if current is None or not is_our_argv(current):
        return text
    chain = chained_notify(current)
    if chain is None:
        del doc["notify"]
    else:
        doc["notify"] = chain
    result: str = doc.as_string()
    return result


# -- MCP server registrations (--mcp) ---------------------------------------------------------

MCP_NAME = "agentkeep"  # the server's name in every tool's configuration
MCP_KEYS = {"claude": "mcpServers", "opencode": "mcp"}  # the JSON object holding servers


def mcp_entry(tool: str, exe: Sequence[str]) -> dict[str, Any]:
    """The server entry ``tool`` reads: Claude Code and Codex a command and its args,
    OpenCode one argv (``type: local``)."""
    argv = [*exe, "mcp"]
    if tool == "opencode":
        return {"type": "local", "command": argv, "enabled": True}
    if tool == "claude":
        return {"type": "stdio", "command": argv[0], "args": argv[1:]}
    return {"command": argv[0], "args": argv[1:]}


def kept_mcp_exe(current: Sequence[str], exe: Sequence[str]) -> list[str]:
    """What goes before ``mcp`` in our entry: ``exe``, followed by the user's own options
    (``--store``, ``--actor``…) when ``current`` already runs ``agentkeep … mcp`` — only
    the executable is rewritten."""
    index = _program_index(current)
    if index is None or len(current) < index + 2 or current[-1] != "mcp":
        return list(exe)
    return [*exe, *current[index + 1 : -1]]


def _entry_argv(entry: object) -> list[str]:
    if not isinstance(entry, dict):
        return []
    command, args = entry.get("command"), entry.get("args")
    words = command if isinstance(command, list) else [command]
    words += args if isinstance(args, list) else []
    return [w for w in words if isinstance(w, str)]


def _foreign_entry(path: Path) -> Conflict:
    return Conflict(
        f"{path} already has an MCP server named {MCP_NAME!r} that does not run "
        "`agentkeep mcp`, so setup left it alone",
        hint="rename or remove that entry, then run setup again",
    )


def set_mcp_json(
    settings: dict[str, Any], key: str, entry: dict[str, Any] | None, path: Path
) -> dict[str, Any]:
    """``settings`` with our server under ``settings[key]`` set to ``entry`` (None removes
    it). Keys the user added to our entry (``env``, a timeout) are kept; an entry of that
    name that is not ours is refused (install) or left alone (remove)."""
    servers = settings.get(key, {})
    if not isinstance(servers, dict):
        raise InvalidInput(
            f"{path}: {key} must be a JSON object, so setup did not change it",
            hint="fix the file (or move it aside) and run setup again",
        )
    current = servers.get(MCP_NAME)
    if current is not None and not is_our_mcp_argv(_entry_argv(current)):
        if entry is None:
            return settings
        raise _foreign_entry(path)
    result = dict(settings)
    if entry is None:
        if current is None:
            return settings
        rest = {name: value for name, value in servers.items() if name != MCP_NAME}
        if rest:
            result[key] = rest
        else:
            del result[key]
        return result
    merged = {**current, **entry} if isinstance(current, dict) else entry
    if current == merged:
        return settings
    result[key] = {**servers, MCP_NAME: merged}
    return result


def _mcp_table(doc: Any, path: Path) -> Any:
    servers = doc.get("mcp_servers")
    if servers is not None and not hasattr(servers, "get"):
        raise InvalidInput(f"mcp_servers in {path} must be a table, so setup did not change it")
    return servers


def set_mcp_toml(text: str, exe: Sequence[str], path: Path = Path("config.toml")) -> str:
    """Codex ``config.toml`` text with ``[mcp_servers.agentkeep]`` running ``agentkeep
    mcp``; comments, layout and the user's other servers and keys are kept."""
    import tomlkit

    doc = _toml(text, path)
    wanted = mcp_entry("codex", exe)
    servers = _mcp_table(doc, path)
    current = None if servers is None else servers.get(MCP_NAME)
    if current is not None:
        plain = current.unwrap() if hasattr(current, "unwrap") else current
        argv = _entry_argv(plain)
        if not is_our_mcp_argv(argv):
            raise _foreign_entry(path)
        wanted = mcp_entry("codex", kept_mcp_exe(argv, exe))
        if all(plain.get(name) == value for name, value in wanted.items()):
            return text
        for name, value in wanted.items():
            current[name] = value
        result: str = doc.as_string()
        return result
    if servers is None:
        servers = tomlkit.table(is_super_table=True)
        doc["mcp_servers"] = servers
    table = tomlkit.table()
    for name, value in wanted.items():
        table[name] = value
    table.add(tomlkit.nl())  # a blank line before whatever table follows it
    servers[MCP_NAME] = table
    result = doc.as_string()
    if result.endswith("\n\n") and not text.endswith("\n\n"):
        result = result[:-1]  # it went last: no blank line at the end of the file
    return result


def strip_mcp_toml(text: str, path: Path = Path("config.toml")) -> str:
    """``config.toml`` text without our ``[mcp_servers.agentkeep]`` (a foreign entry of
    that name is left alone)."""
    doc = _toml(text, path)
    servers = _mcp_table(doc, path)
    current = None if servers is None else servers.get(MCP_NAME)
    if current is None:
        return text
    plain = current.unwrap() if hasattr(current, "unwrap") else current
    if not is_our_mcp_argv(_entry_argv(plain)):
        return text
    del servers[MCP_NAME]
    if not servers:
        del doc["mcp_servers"]
    result: str = doc.as_string()
    return result


def _mcp_toml_argv(text: str, path: Path) -> list[str] | None:
    servers = _mcp_table(_toml(text, path), path)
    current = None if servers is None else servers.get(MCP_NAME)
    if current is None:
        return None
    plain = current.unwrap() if hasattr(current, "unwrap") else current
    argv = _entry_argv(plain)
    return argv if is_our_mcp_argv(argv) else None


# -- OpenCode plugin --------------------------------------------------------------------------

_SHIM = """\
// {mark}: `agentkeep setup opencode --remove` deletes it.
// Sends OpenCode's hook calls and events to `agentkeep hook --source opencode`, one
// process each, fire-and-forget. It never throws: a throw in tool.execute.before would
// block the tool.
const COMMAND = {command}
// Streaming deltas arrive many times a second; the finished message is in the others.
const SKIP = new Set(["message.part.updated", "message.part.delta"])

function send(directory, hook, input, extra) {{
  try {{
    const at = Date.now()  // bus events repeat byte for byte; the time keeps them apart
    const body = JSON.stringify({{ source: "opencode", hook, at, directory, input, ...extra }})
    const stdin = new Blob([body])
    const child = Bun.spawn(COMMAND, {{ stdin, stdout: "ignore", stderr: "ignore" }})
    child.exited.catch(() => {{}})
  }} catch {{}}
}}

export const AgentkeepPlugin = async ({{ directory }}) => ({{
  event: async ({{ event }}) => {{
    if (!SKIP.has(event?.type)) send(directory, "event", undefined, {{ event }})
  }},
  "tool.execute.before": async (input, output) =>
    send(directory, "tool.execute.before", input, {{ output }}),
  "tool.execute.after": async (input, output) =>
    send(directory, "tool.execute.after", input, {{ output }}),
  "chat.message": async (input, output) => send(directory, "chat.message", input, {{ output }}),
}})
"""


def opencode_shim(exe: Sequence[str]) -> str:
    """The plugin file's text (plain JavaScript, valid TypeScript: no types needed)."""
    command = json.dumps([*exe, "hook", "--source", "opencode"], ensure_ascii=False)
    return _SHIM.format(mark=SHIM_MARK, command=command)


def is_our_shim(text: str) -> bool:
    return SHIM_MARK in "\n".join(text.splitlines()[:3])


def shim_command(text: str) -> list[str]:
    found = re.search(r"^const COMMAND = (\[.*\])$", text, re.MULTILINE)
    if not found:
        return []
    try:
        value = json.loads(found.group(1))
    except json.JSONDecodeError:
        return []
    return [str(v) for v in value] if isinstance(value, list) else []


# -- where each tool keeps its files ----------------------------------------------------------


def claude_dir() -> Path:
    return Path(os.environ.get("CLAUDE_CONFIG_DIR") or Path.home() / ".claude").expanduser()


def codex_home() -> Path:
    return Path(os.environ.get("CODEX_HOME") or Path.home() / ".codex").expanduser()


def opencode_config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base).expanduser() / "opencode"


def project_root(start: Path | None = None) -> Path:
    """The top of the git worktree around ``start`` (default: cwd). Hooks of a linked
    worktree go in that worktree: the agent reads settings from where it runs."""
    from agentkeep.paths import git

    here = (start or Path.cwd()).absolute()
    top = git(here, "rev-parse", "--show-toplevel")
    if not top:
        raise InvalidInput(
            f"{here} is not inside a git repository, so there is no project to set up",
            hint="run setup in your project, or use --user for every project",
        )
    return Path(top)


@dataclass(frozen=True)
class _Target:
    """One file setup manages, and how to edit it."""

    path: Path
    # hooks (JSON hooks block) | notify (Codex config.toml) | shim (OpenCode) |
    # mcp-json (an MCP server in a JSON object at ``key``) | mcp-toml (Codex mcp_servers)
    kind: str
    desired: dict[str, list[Any]] = field(default_factory=dict)
    exe: tuple[str, ...] = ()
    key: str = ""  # mcp-json: the top-level key holding the servers
    tool: str = ""

    def install(self, text: str | None) -> str:
        if self.kind == "hooks":
            settings = {} if text is None else parse_json_settings(text, self.path)
            merged = self._merge(settings, self.desired)
            return text if text is not None and merged == settings else render_json(merged, text)
        if self.kind == "mcp-json":
            settings = {} if text is None else parse_json_settings(text, self.path)
            servers = settings.get(self.key)
            current = _entry_argv(servers.get(MCP_NAME) if isinstance(servers, dict) else None)
            entry = mcp_entry(self.tool, kept_mcp_exe(current, self.exe))
            merged = set_mcp_json(settings, self.key, entry, self.path)
            return text if text is not None and merged is settings else render_json(merged, text)
        if self.kind == "mcp-toml":
            return set_mcp_toml(text or "", self.exe, self.path)
        if self.kind == "notify":
            return set_notify(text or "", self.exe, self.path)
        wanted = opencode_shim(self.exe)
        if text is not None and text != wanted and not is_our_shim(text):
            raise Conflict(
                f"{self.path} exists and was not written by agentkeep, so setup left it alone",
                hint="rename or remove that file, then run setup again",
            )
        return wanted

    def strip(self, text: str) -> str | None:
        """The text without our entries (None: the file should go)."""
        if self.kind == "hooks":
            settings = parse_json_settings(text, self.path)
            stripped = self._merge(settings, {})
            return text if stripped == settings else render_json(stripped, text)
        if self.kind == "mcp-json":
            settings = parse_json_settings(text, self.path)
            stripped = set_mcp_json(settings, self.key, None, self.path)
            return text if stripped is settings else render_json(stripped, text)
        if self.kind == "mcp-toml":
            return strip_mcp_toml(text, self.path)
        if self.kind == "notify":
            return strip_notify(text, self.path)
        return None if is_our_shim(text) else text

    def _merge(self, settings: dict[str, Any], desired: dict[str, list[Any]]) -> dict[str, Any]:
        try:
            return merge_hooks(settings, desired)
        except InvalidInput as exc:
            raise InvalidInput(
                f"{self.path}: {exc.message}, so setup did not change it",
                hint="fix the file (or move it aside) and run setup again",
            ) from exc

    def contains_ours(self, text: str | None) -> bool:
        if text is None:
            return False
        if self.kind == "hooks":
            return bool(our_hook_commands(parse_json_settings(text, self.path)))
        if self.kind in ("mcp-json", "mcp-toml"):
            return bool(self.found_mcp(text))
        if self.kind == "notify":
            current = _notify_of(_toml(text, self.path), self.path)
            return current is not None and is_our_argv(current)
        return is_our_shim(text)

    def same_meaning(self, a: str, b: str) -> bool:
        try:
            if self.kind in ("hooks", "mcp-json"):
                return bool(_json_or_empty(a) == _json_or_empty(b))
            if self.kind in ("notify", "mcp-toml"):
                return tomllib.loads(a) == tomllib.loads(b)
        except (ValueError, RecursionError):
            return False
        return a == b

    def is_empty(self, text: str) -> bool:
        return self.same_meaning(text, "{}" if self.kind in ("hooks", "mcp-json") else "")

    def found_mcp(self, text: str) -> list[list[str]]:
        """Our ``agentkeep mcp`` argv registered in ``text`` (an empty list: none)."""
        if self.kind == "mcp-toml":
            argv = _mcp_toml_argv(text, self.path)
            return [] if argv is None else [argv]
        servers = parse_json_settings(text, self.path).get(self.key)
        entry = servers.get(MCP_NAME) if isinstance(servers, dict) else None
        argv = _entry_argv(entry)
        return [argv] if is_our_mcp_argv(argv) else []


def claude_user_config() -> Path:
    """Where Claude Code keeps user-scope MCP servers (``claude mcp add --scope user``)."""
    configured = os.environ.get("CLAUDE_CONFIG_DIR")
    base = Path(configured).expanduser() if configured else Path.home()
    return base / ".claude.json"


def mcp_targets(tool: str, scope: str, base: Path | None, argv: tuple[str, ...]) -> list[_Target]:
    """The file where ``tool`` reads its MCP servers in ``scope`` (``base``: the project)."""
    if tool == "codex":
        path = codex_home() / "config.toml" if base is None else base / ".codex" / "config.toml"
        return [_Target(path, "mcp-toml", {}, argv, tool=tool)]
    if tool == "claude":
        path = claude_user_config() if base is None else base / ".mcp.json"
    else:
        path = (opencode_config_dir() if base is None else base) / "opencode.json"
    return [_Target(path, "mcp-json", {}, argv, key=MCP_KEYS[tool], tool=tool)]


def targets(
    tool: str,
    scope: str,
    *,
    root: Path | None = None,
    exe: Sequence[str] | None = None,
    mcp: bool = False,
) -> list[_Target]:
    """The files setup manages for ``tool`` in ``scope`` (its MCP registration with
    ``mcp``)."""
    if tool not in TOOLS:
        raise InvalidInput(f"unknown tool {tool!r}", hint=f"use one of: {', '.join(TOOLS)}")
    if scope not in SCOPES:
        raise InvalidInput(f"unknown scope {scope!r}", hint="use --project or --user")
    argv = tuple(exe or agentkeep_argv())
    if mcp:
        return mcp_targets(
            tool, scope, (root or project_root()) if scope == "project" else None, argv
        )
    if scope == "project":
        base = root or project_root()
        places = {
            "claude": base / ".claude" / "settings.local.json",
            "codex": base / ".codex" / "hooks.json",
            "opencode": base / ".opencode" / "plugins" / SHIM_NAME,
        }
    else:
        places = {
            "claude": claude_dir() / "settings.json",
            "codex": codex_home() / "hooks.json",
            "opencode": opencode_config_dir() / "plugins" / SHIM_NAME,
        }
    path = places[tool]
    if tool == "claude":
        return [_Target(path, "hooks", hooks_block(CLAUDE_EVENTS, argv, "claude"), argv)]
    if tool == "opencode":
        return [_Target(path, "shim", {}, argv)]
    hooks = _Target(path, "hooks", hooks_block(CODEX_EVENTS, argv, "codex"), argv)
    if scope == "project":
        return [hooks]  # notify is a per-user setting only
    return [_Target(codex_home() / "config.toml", "notify", {}, argv), hooks]


# -- records ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SetupResult(Record):
    """What ``setup`` (or ``setup --remove``) did. Each file: path, action (created,
    updated, unchanged, removed, restored), backup (path or None) and diff (unified)."""

    tool: str
    scope: str
    operation: str  # install | remove
    dry_run: bool
    changed: bool
    command: str  # how the hooks run agentkeep
    files: list[dict[str, Any]]
    manual_steps: list[str]
    component: str = "hooks"  # hooks | mcp (the MCP server registration, --mcp)


@dataclass(frozen=True)
class SetupCheck(Record):
    """``setup --check``: whether the hooks are installed and runnable. Each file: path,
    exists, installed, up_to_date, missing (events), commands (ours found there)."""

    tool: str
    scope: str
    installed: bool
    up_to_date: bool
    command: str
    executables: list[dict[str, Any]]  # path, exists, executable
    files: list[dict[str, Any]]
    problems: list[str]
    component: str = "hooks"  # hooks | mcp


# -- plan and apply ---------------------------------------------------------------------------


@dataclass
class _Planned:
    target: _Target
    before: bytes | None
    after: bytes | None
    action: str  # created | updated | unchanged | removed | restored
    record_original: bool = False


@dataclass
class SetupPlan:
    tool: str
    scope: str
    operation: str
    command: str
    files: list[_Planned]
    manual_steps: list[str]
    component: str = "hooks"


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except IsADirectoryError as exc:
        raise InvalidInput(f"{path} is a directory, not a settings file") from exc
    except OSError as exc:
        raise StorageError(f"cannot read {path}: {exc.strerror}") from exc


def _text(data: bytes, path: Path) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(
            f"{path} is not UTF-8 text, so setup did not change it",
            hint="fix the file (or move it aside) and run setup again",
        ) from exc


def resolve_scope(tool: str, scope: str | None) -> str:
    if tool not in TOOLS:
        raise InvalidInput(f"unknown tool {tool!r}", hint=f"use one of: {', '.join(TOOLS)}")
    return scope or DEFAULT_SCOPE[tool]


def plan_setup(
    tool: str,
    scope: str | None = None,
    *,
    remove: bool = False,
    root: Path | None = None,
    exe: Sequence[str] | None = None,
    mcp: bool = False,
) -> SetupPlan:
    """What installing (or removing) the hooks (with ``mcp``: the MCP server's
    registration) would change; reads files, writes nothing."""
    scope = resolve_scope(tool, scope)
    argv = list(exe or agentkeep_argv())
    planned = []
    for target in targets(tool, scope, root=root, exe=argv, mcp=mcp):
        before = _read(target.path)
        text = None if before is None else _text(before, target.path)
        planned.append(
            _plan_remove(target, before, text) if remove else _plan_install(target, before, text)
        )
    if remove:
        steps: list[str] = []
    elif mcp:
        steps = _mcp_steps(tool, scope, planned, argv)
    else:
        steps = _manual_steps(tool, scope, planned, argv)
    operation = "remove" if remove else "install"
    command = shlex.join([*argv, "mcp"] if mcp else argv)
    return SetupPlan(tool, scope, operation, command, planned, steps, "mcp" if mcp else "hooks")


def _plan_install(target: _Target, before: bytes | None, text: str | None) -> _Planned:
    after_text = target.install(text)
    after = after_text.encode("utf-8")
    if before is not None and after == before:
        return _Planned(target, before, before, "unchanged")
    return _Planned(
        target,
        before,
        after,
        "created" if before is None else "updated",
        record_original=not target.contains_ours(text),
    )


def _plan_remove(target: _Target, before: bytes | None, text: str | None) -> _Planned:
    if before is None or text is None:
        return _Planned(target, None, None, "unchanged")
    stripped = target.strip(text)
    if stripped == text:
        return _Planned(target, before, before, "unchanged")
    if stripped is None:
        return _Planned(target, before, None, "removed")
    state = _load_state(target.path)
    if state is not None:
        original = _original_bytes(target.path)
        if state.get("existed") and original is not None:
            try:
                original_text: str | None = original.decode("utf-8")
            except UnicodeDecodeError:
                original_text = None
            rules = state.get("secret_rules") or []  # absent: raw bytes saved by an older agentkeep
            if original_text is not None and rules:
                original_text = fill_secrets(original_text, [str(r) for r in rules], stripped)
            if original_text is not None and target.same_meaning(stripped, original_text):
                return _Planned(target, before, original_text.encode("utf-8"), "restored")
        elif not state.get("existed") and target.is_empty(stripped):
            return _Planned(target, before, None, "removed")
    return _Planned(target, before, stripped.encode("utf-8"), "updated")


def _manual_steps(tool: str, scope: str, planned: list[_Planned], exe: list[str]) -> list[str]:
    steps: list[str] = []
    if len(exe) > 1:
        steps.append(
            "no `agentkeep` executable was found, so the hooks run "
            f"`{shlex.join(exe)}`; rerun setup after installing agentkeep (pipx, uv tool)"
        )
    if tool == "claude":
        steps.append(
            "start a new Claude Code session (or open /hooks) to load the hooks; "
            "running sessions keep the hooks they started with"
        )
    elif tool == "codex":
        steps.append(
            "open Codex and run /hooks to trust agentkeep's hooks: Codex skips a hook until "
            "you trust its exact definition (again after setup changes it)"
        )
        if scope == "project":
            steps.append("Codex loads a project's .codex/hooks.json only in trusted projects")
        for item in planned:
            if item.target.kind == "notify" and item.after is not None:
                steps += [redact_text(n)[0] for n in _codex_notes(item.after.decode("utf-8"))]
    else:
        steps.append("restart OpenCode to load the plugin")
    if scope == "project":
        steps += _keep_out_of_git(planned)
    return steps


def _mcp_steps(tool: str, scope: str, planned: list[_Planned], exe: list[str]) -> list[str]:
    steps: list[str] = []
    if len(exe) > 1:
        steps.append(
            "no `agentkeep` executable was found, so the MCP server runs "
            f"`{shlex.join([*exe, 'mcp'])}`; rerun setup after installing agentkeep"
        )
    restart = {
        "claude": "start a new Claude Code session (/mcp lists the servers); it asks once "
        "before it uses a project's .mcp.json servers"
        if scope == "project"
        else "start a new Claude Code session (/mcp lists the servers)",
        "codex": "start a new Codex session (`codex mcp list` lists the servers)"
        + (
            "; Codex reads a project's .codex/config.toml only in trusted projects"
            if scope == "project"
            else ""
        ),
        "opencode": "restart OpenCode to start the MCP server",
    }
    steps.append(restart[tool])
    import importlib.util

    if importlib.util.find_spec("mcp") is None:
        steps.append("the MCP server needs the mcp extra: pip install 'agentkeep[mcp]'")
    if scope == "project":
        steps += _keep_out_of_git(planned)
    return steps


def _keep_out_of_git(planned: list[_Planned]) -> list[str]:
    """A step for each project file setup writes that git does not ignore: it names a path
    on this machine (the hooks' command, the MCP server's executable)."""
    return [
        f"{item.target.path} names a path on this machine; keep it out of git "
        "(add it to .git/info/exclude or .gitignore)"
        for item in planned
        if not _git_ignored(item.target.path)
    ]


def _codex_notes(config_text: str) -> list[str]:
    notes: list[str] = []
    try:
        config = tomllib.loads(config_text)
    except tomllib.TOMLDecodeError:
        return notes
    features = config.get("features")
    if isinstance(features, dict) and (
        features.get("hooks") is False or features.get("codex_hooks") is False
    ):
        notes.append(
            "hooks are turned off in config.toml ([features] hooks = false): set it to "
            "true, or only notify (turn ends) is captured"
        )
    notify = config.get("notify")
    if isinstance(notify, list):
        chain = chained_notify([str(v) for v in notify])
        if chain:
            notes.append(
                f"your previous notify command still runs after each turn: {shlex.join(chain)}"
            )
    return notes


def _git_ignored(path: Path) -> bool:
    """Whether git ignores ``path`` (True outside a repository: nothing to keep out)."""
    import subprocess

    directory = path.parent
    while not directory.exists():
        directory = directory.parent
    try:
        done = subprocess.run(
            ["git", "-C", str(directory), "check-ignore", "-q", "--no-index", str(path)],
            capture_output=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return True
    return done.returncode != 1  # 0 ignored, 1 not ignored, 128 not a repository


def apply_setup(plan: SetupPlan, *, dry_run: bool = False) -> SetupResult:
    """Carry out ``plan`` (nothing is written with ``dry_run``)."""
    files = []
    diffs = [_diff(item) for item in plan.files]  # redacted before anything is written
    if not dry_run:
        redact_old_backups()
    for item, diff in zip(plan.files, diffs, strict=True):
        backup: Path | None = None
        if item.after != item.before and not dry_run:
            if _read(item.target.path) != item.before:
                raise Conflict(
                    f"{item.target.path} changed while setup was running",
                    hint="run setup again",
                )
            backup = _write(item, plan.operation)
        if plan.operation == "remove" and not dry_run:
            _forget(item.target.path)
        files.append(
            {
                "path": str(item.target.path),
                "action": item.action,
                "backup": None if backup is None else str(backup),
                "diff": diff,
            }
        )
    return SetupResult(
        tool=plan.tool,
        scope=plan.scope,
        operation=plan.operation,
        dry_run=dry_run,
        changed=any(f["action"] != "unchanged" for f in files),
        command=plan.command,
        files=files,
        manual_steps=plan.manual_steps,
        component=plan.component,
    )


def setup_agent(
    tool: str,
    scope: str | None = None,
    *,
    remove: bool = False,
    dry_run: bool = False,
    root: Path | None = None,
    exe: Sequence[str] | None = None,
    mcp: bool = False,
) -> SetupResult:
    """Install (or remove) agentkeep's hooks for ``tool`` (with ``mcp``: register
    ``agentkeep mcp`` as its MCP server): :func:`plan_setup` + :func:`apply_setup`."""
    plan = plan_setup(tool, scope, remove=remove, root=root, exe=exe, mcp=mcp)
    return apply_setup(plan, dry_run=dry_run)


def _diff(item: _Planned) -> str:
    """The unified diff of one change, both sides redacted (it is printed)."""
    if item.after == item.before:
        return ""
    name = str(item.target.path)

    def lines(data: bytes | None) -> list[str]:
        if data is None:
            return []
        return redact_text(data.decode("utf-8", "replace"))[0].splitlines(keepends=True)

    diff = difflib.unified_diff(
        lines(item.before),
        lines(item.after),
        fromfile=name if item.before is not None else "/dev/null",
        tofile=name if item.after is not None else "/dev/null",
    )
    text = "".join(line if line.endswith("\n") else line + "\n" for line in diff)
    if not text:  # a secret's marker swallowed the change (an unterminated key block)
        return f"--- {name}\n+++ {name}\n(the change is not shown: it lies inside a secret)\n"
    return text


# -- backups, originals and writing -----------------------------------------------------------


def backup_dir(path: Path) -> Path:
    """Where the backups and the original of the settings file ``path`` are kept."""
    from agentkeep.paths import user_data_dir

    key = hashlib.sha256(str(path.absolute()).encode("utf-8")).hexdigest()[:12]
    return user_data_dir() / BACKUP_DIR / f"{path.name}-{key}"


def _load_state(path: Path) -> dict[str, Any] | None:
    return _load_state_file(backup_dir(path) / "state.json")


def _load_state_file(state_file: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(state_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _original_bytes(path: Path) -> bytes | None:
    try:
        return (backup_dir(path) / "original").read_bytes()
    except OSError:
        return None


def _forget(path: Path) -> None:
    """Drop the original and the state after a remove (backups stay)."""
    folder = backup_dir(path)
    for name in ("original", "state.json"):
        try:
            (folder / name).unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise StorageError(f"cannot remove {folder / name}: {exc.strerror}") from exc


def _private_write(path: Path, data: bytes) -> None:
    """Write a file only the user can read (settings may hold secrets)."""
    from agentkeep.files import staged_file

    with staged_file(path) as tmp:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)


def _write(item: _Planned, operation: str) -> Path | None:
    """Back up, then write (or delete) one file; returns the backup's path."""
    from agentkeep.files import make_dirs, staged_file

    path = item.target.path
    folder = backup_dir(path)
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise StorageError(f"cannot create {folder}: {exc.strerror}") from exc
    missing_dirs = _missing_dirs(path.parent)
    redacted, rules = (None, []) if item.before is None else _without_secrets(item.before)
    if operation == "install" and item.record_original:
        if redacted is not None:
            _private_write(folder / "original", redacted)
        state = {
            "path": str(path.absolute()),
            "existed": item.before is not None,
            "created_dirs": [str(d) for d in missing_dirs],
            "secret_rules": rules,  # the original's secrets, in order (never their values)
        }
        _private_write(folder / "state.json", json.dumps(state, indent=2).encode("utf-8"))
    backup = None
    if redacted is not None:
        from agentkeep.timeutil import file_stamp

        backup = folder / f"{path.name}.{file_stamp()}"
        _private_write(backup, redacted)
    if item.after is None:
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise StorageError(f"cannot remove {path}: {exc.strerror}") from exc
        created = (_load_state(path) or {}).get("created_dirs")
        for directory in reversed(created if isinstance(created, list) else []):
            try:
                Path(directory).rmdir()  # only if empty
            except OSError:
                break
        return backup
    make_dirs(path.parent)
    mode = _mode(path)
    with staged_file(path) as tmp:
        tmp.write_bytes(item.after)
        if mode is not None:
            os.chmod(tmp, mode)
    return backup


def redact_old_backups() -> list[Path]:
    """Rewrite with its secrets replaced every file in ``setup-backups/`` that still holds
    one (agentkeep before issue 9 kept the user's bytes as they were); returns the files
    rewritten. Every setup that writes calls it first.

    An ``original`` is rewritten the way setup writes one now, and its state gains the
    rules of the secrets replaced (written after the file: a crash in between leaves a
    redacted original without rules, which ``--remove`` does not refill and so never
    writes back, keeping the user's file as it is). ``--remove`` then restores it as it
    restores any original: secrets filled in from the user's live file.
    """
    from agentkeep.files import pid_alive, temp_owner
    from agentkeep.paths import user_data_dir

    rewritten: list[Path] = []
    root = user_data_dir() / BACKUP_DIR
    try:
        folders = [Path(e.path) for e in os.scandir(root) if e.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return rewritten
    except OSError as exc:
        raise StorageError(f"cannot read {root}: {exc.strerror}") from exc
    for folder in sorted(folders):
        try:
            files = [Path(e.path) for e in os.scandir(folder) if e.is_file(follow_symlinks=False)]
        except OSError as exc:
            raise StorageError(f"cannot read {folder}: {exc.strerror}") from exc
        for path in sorted(files):
            if path.name == "state.json" or pid_alive(temp_owner(path)):
                continue  # a temp file another setup is writing (redacted) right now
            data = _read(path) or b""
            if not may_contain_secret(data.decode("utf-8", "replace")):
                continue
            redacted, rules = _without_secrets(data)
            if redacted == data:
                continue
            _private_write(path, redacted)
            rewritten.append(path)
            state = _load_state_file(folder / "state.json")
            if path.name == "original" and state is not None:
                state["secret_rules"] = rules
                _private_write(folder / "state.json", json.dumps(state, indent=2).encode("utf-8"))
    return rewritten


def _without_secrets(data: bytes) -> tuple[bytes, list[str]]:
    """A file's bytes with every secret replaced by its marker, and the rules replaced."""
    text, rules = split_secrets(data.decode("utf-8", "replace"))
    return text.encode("utf-8"), rules


def _missing_dirs(directory: Path) -> list[Path]:
    """The directories that would be created to make ``directory`` (outermost first)."""
    missing = []
    while not directory.exists():
        missing.append(directory)
        directory = directory.parent
    return list(reversed(missing))


def _mode(path: Path) -> int | None:
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        return None


# -- check ------------------------------------------------------------------------------------


def check_setup(
    tool: str,
    scope: str | None = None,
    *,
    root: Path | None = None,
    exe: Sequence[str] | None = None,
    mcp: bool = False,
) -> SetupCheck:
    """Whether the hooks of ``tool`` (with ``mcp``: its MCP server) are installed in
    ``scope`` and their command runs."""
    scope = resolve_scope(tool, scope)
    argv = list(exe or agentkeep_argv())
    files: list[dict[str, Any]] = []
    problems: list[str] = []
    commands: list[list[str]] = []
    for target in targets(tool, scope, root=root, exe=argv, mcp=mcp):
        info, found = _check_file(target, problems)
        files.append(info)
        commands += found
    executables = []
    for program in sorted({argv_[0] for argv_ in commands if argv_}):
        path = Path(program)
        exists = path.is_file()
        runnable = exists and os.access(path, os.X_OK)
        executables.append({"path": program, "exists": exists, "executable": runnable})
        if not runnable:
            problems.append(
                f"the hooks run {program}, which "
                + ("is not executable" if exists else "does not exist")
                + f": rerun `agentkeep setup {tool}`"
            )
    installed = all(f["installed"] for f in files) and all(e["executable"] for e in executables)
    return SetupCheck(
        tool=tool,
        scope=scope,
        installed=installed,
        up_to_date=installed and all(f["up_to_date"] for f in files),
        command=shlex.join([*argv, "mcp"] if mcp else argv),
        executables=executables,
        files=files,
        problems=problems,
        component="mcp" if mcp else "hooks",
    )


def _check_file(target: _Target, problems: list[str]) -> tuple[dict[str, Any], list[list[str]]]:
    path = target.path
    info: dict[str, Any] = {
        "path": str(path),
        "exists": False,
        "installed": False,
        "up_to_date": False,
        "missing": [],
        "commands": [],
    }
    try:
        data = _read(path)
        if data is None:
            problems.append(f"{path} does not exist")
            info["missing"] = list(target.desired) or [
                "mcp" if target.kind.startswith("mcp") else target.kind
            ]
            return info, []
        info["exists"] = True
        text = _text(data, path)
        info["up_to_date"] = target.install(text) == text
        found = _found_commands(target, text)
    except (InvalidInput, Conflict) as exc:
        problems.append(exc.message)
        return info, []
    info["commands"] = [shlex.join(c) for c in found]
    if target.kind == "hooks":
        info["missing"] = missing_hooks(parse_json_settings(text, path), target.desired)
    elif not found:
        info["missing"] = ["mcp" if target.kind.startswith("mcp") else target.kind]
    info["installed"] = not info["missing"]
    if info["missing"] == ["mcp"]:
        problems.append(f"{path} does not register agentkeep's MCP server")
    elif info["missing"]:
        problems.append(f"{path} lacks agentkeep's {', '.join(info['missing'])} hook(s)")
    return info, found


def _found_commands(target: _Target, text: str) -> list[list[str]]:
    if target.kind == "hooks":
        settings = parse_json_settings(text, target.path)
        commands = {c for cs in our_hook_commands(settings).values() for c in cs}
        return [_split(c) for c in sorted(commands)]
    if target.kind == "notify":
        current = _notify_of(_toml(text, target.path), target.path)
        return [current] if current is not None and is_our_argv(current) else []
    if target.kind in ("mcp-json", "mcp-toml"):
        return target.found_mcp(text)
    if not is_our_shim(text):
        raise Conflict(f"{target.path} exists and was not written by agentkeep")
    command = shim_command(text)
    return [command] if command else []
