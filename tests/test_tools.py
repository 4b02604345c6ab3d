"""The registry of agent tools (agentkeep/tools.py): every list of tools derives from it."""

from __future__ import annotations

from pathlib import Path

import click

from agentkeep import agent_setup, hook, importers, payloads, tools
from agentkeep.cli import cli as root_command

import hookpayloads


def _choices(command: click.Command, name: str) -> tuple[str, ...]:
    param = next(p for p in command.params if p.name == name)
    assert isinstance(param.type, click.Choice)
    return tuple(param.type.choices)


def test_every_list_of_tools_is_the_registrys() -> None:
    assert tools.NAMES == ("claude", "codex", "opencode")
    assert hook.SOURCES == tools.HOOK_SOURCES == ("claude", "codex", "codex-notify", "opencode")
    assert agent_setup.TOOLS == tools.NAMES
    assert agent_setup.DEFAULT_SCOPE == {
        "claude": "project",
        "codex": "user",
        "opencode": "project",
    }
    assert (*tools.NAMES, "jsonl") == importers.SOURCES
    assert tools.RESUMABLE == ("claude", "codex")  # what `agentkeep resume` continues
    assert hookpayloads.SOURCES == tools.HOOK_SOURCES  # the test scripts cover every source
    assert isinstance(root_command, click.Group)
    ctx = click.Context(root_command)
    setup = root_command.get_command(ctx, "setup")
    hook_command = root_command.get_command(ctx, "hook")
    import_group = root_command.get_command(ctx, "import")
    assert setup is not None and hook_command is not None
    assert isinstance(import_group, click.Group)
    assert _choices(setup, "tool") == tools.NAMES
    assert _choices(hook_command, "source") == tools.HOOK_SOURCES
    assert set(import_group.list_commands(ctx)) == {"all", *importers.SOURCES}


def test_each_tool_has_an_importer_setup_targets_and_payload_readers(tmp_path: Path) -> None:
    for name, tool in tools.TOOLS.items():
        assert importers._importer(name).source == name
        for scope in agent_setup.SCOPES:
            files = agent_setup.targets(name, scope, root=tmp_path, exe=["agentkeep"])
            assert files, (name, scope)
        for source, reader in tool.hooks.items():
            assert tools.tool_of_source(source) is tool
            assert tools.payload_reader(source) is reader
            assert isinstance(reader({}), payloads.Delivery)
    assert tools.payload_reader("gemini") is None
    # A session reported through codex's notify program is a codex session.
    assert tools.tool_of_source("codex-notify").name == "codex"
