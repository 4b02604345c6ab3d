"""The agent tools agentkeep works with, in one registry: :data:`TOOLS`.

For each tool (Claude Code, Codex, OpenCode) one :class:`Tool` says everything the rest of
agentkeep needs to know about it by name:

* its hook payloads: the ``agentkeep hook --source`` names it sends and the function in
  :mod:`agentkeep.payloads` that reads each shape (Codex has two: its hooks and its
  legacy ``notify`` program);
* its setup: the scope ``agentkeep setup <tool>`` installs into by default (the files
  themselves are :func:`agentkeep.agent_setup.targets`);
* whether ``agentkeep resume`` can continue its sessions;
* its history importer (:mod:`agentkeep.importers`), loaded only when used, and the help
  of ``agentkeep import <tool>``.

Every list of tools is derived from here: the hook's sources, setup's tools, the import
sources, and the CLI's choices and commands. A fourth tool is one more entry (plus its
payload reader, setup targets and importer).

On the hook's fast path: standard library only (the hook reads the payload shapes).
"""

from __future__ import annotations

from agentkeep import payloads

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover - for type checkers only
    from collections.abc import Callable
    from typing import Any

    PayloadReader = Callable[[dict[str, Any]], payloads.Delivery]


class Tool:
    """One agent tool (see the module docstring). ``hooks`` maps each hook source name to
    its payload reader; ``importer`` is ``"module:Class"``."""

    __slots__ = ("default_scope", "hooks", "import_help", "importer", "name", "resumes", "title")

    def __init__(
        self,
        name: str,
        *,
        title: str,
        hooks: dict[str, PayloadReader],
        default_scope: str,
        importer: str,
        import_help: str,
        resumes: bool,
    ) -> None:
        self.name = name
        self.title = title
        self.hooks = hooks
        self.default_scope = default_scope
        self.importer = importer
        self.import_help = import_help
        self.resumes = resumes  # `agentkeep resume` can continue its sessions

    def __repr__(self) -> str:
        return f"Tool({self.name!r})"


TOOLS: dict[str, Tool] = {
    tool.name: tool
    for tool in (
        Tool(
            "claude",
            title="Claude Code",
            hooks={"claude": payloads.hook_event},
            default_scope="project",
            importer="agentkeep.importers.claude:ClaudeImporter",
            import_help="Claude Code transcripts: $CLAUDE_CONFIG_DIR/projects (default "
            "~/.claude/projects),\n    subagents included; sessions are matched to this "
            "project by the cwd inside them.",
            resumes=True,
        ),
        Tool(
            "codex",
            title="Codex",
            # Codex's hooks have Claude Code's shape; notify is its older per-turn program.
            hooks={"codex": payloads.hook_event, "codex-notify": payloads.codex_notify},
            default_scope="user",
            importer="agentkeep.importers.codex:CodexImporter",
            import_help="Codex rollouts: $CODEX_HOME/sessions (default ~/.codex/sessions), "
            ".jsonl and\n    .jsonl.zst; sessions are matched to this project by their "
            "session_meta cwd.",
            resumes=True,
        ),
        Tool(
            "opencode",
            title="OpenCode",
            hooks={"opencode": payloads.opencode_event},
            default_scope="project",
            importer="agentkeep.importers.opencode:OpenCodeImporter",
            import_help="OpenCode sessions: its SQLite database (read-only, undisturbed) or "
            "the older JSON\n    layout under $XDG_DATA_HOME/opencode (default "
            "~/.local/share/opencode).",
            resumes=False,
        ),
    )
}

NAMES = tuple(TOOLS)
"""The agent tools, in order: what `setup` and `import all` cover."""

RESUMABLE = tuple(name for name, tool in TOOLS.items() if tool.resumes)
"""The tools whose sessions `agentkeep resume` continues."""

HOOK_SOURCES = tuple(source for tool in TOOLS.values() for source in tool.hooks)
"""Every ``agentkeep hook --source`` name."""

_BY_SOURCE = {source: tool for tool in TOOLS.values() for source in tool.hooks}

# Importers of files no agent tool owns (generic JSONL), beside the tools' own.
OTHER_IMPORTERS = {"jsonl": "agentkeep.importers.jsonl:JsonlImporter"}
IMPORTERS = {**{name: tool.importer for name, tool in TOOLS.items()}, **OTHER_IMPORTERS}
"""Every ``agentkeep import`` source and its importer (``module:Class``)."""


def tool_of_source(source: str) -> Tool:
    """The tool that sends hook source ``source`` (KeyError: none)."""
    return _BY_SOURCE[source]


def session_source(source: str) -> str:
    """The ``source`` a hook delivery's session is stored under: its tool's name
    (``codex-notify`` is Codex's), or the source itself for one this version does not
    know (a newer agentkeep may have spooled it)."""
    tool = _BY_SOURCE.get(source)
    return tool.name if tool is not None else source


def payload_reader(source: str) -> PayloadReader | None:
    """The function that reads hook source ``source``'s payloads (None: no such source)."""
    tool = _BY_SOURCE.get(source)
    return tool.hooks[source] if tool is not None else None


def load_importer(source: str) -> Any:
    """A new importer for ``source`` (KeyError: unknown), imported on first use."""
    import importlib

    module, _, name = IMPORTERS[source].partition(":")
    return getattr(importlib.import_module(module), name)()
