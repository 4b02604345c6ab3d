"""`agentkeep setup`: idempotent installs that keep the user's entries, exact restores,
dry runs, refusals, Codex notify chaining, the OpenCode plugin, --check, and the installed
commands run for real."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentkeep.agent_setup import (
    CLAUDE_EVENTS,
    hooks_block,
    is_our_argv,
    is_our_command,
    merge_hooks,
    missing_hooks,
    set_notify,
    setup_agent,
    strip_notify,
)

from conftest import Cli, skip_or_fail

USER_SETTINGS = """{
    "permissions": {"allow": ["Bash(ls)"]},
    "env": {"FOO": "bar"},
    "hooks": {
        "Stop": [{"hooks": [{"type": "command", "command": "notify-send done"}]}],
        "PreToolUse": [
            {"matcher": "Bash", "hooks": [{"type": "command", "command": "./guard.sh"}]}
        ]
    }
}
"""
CODEX_CONFIG = """# my Codex settings
model = "gpt-5-codex"   # the model I like
notify = ["notify-send", "Codex", "turn done"]

[features]
hooks = true

[mcp_servers.docs]
command = "docs-server"
"""
OLD_EXE = ["/opt/old/bin/agentkeep"]


def settings_path(project: Path) -> Path:
    return project / ".claude" / "settings.local.json"


def backups() -> list[Path]:
    root = Path(os.environ["AGENTKEEP_HOME"]) / "setup-backups"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def our_commands(settings: dict[str, Any]) -> list[str]:
    return [
        handler["command"]
        for groups in settings.get("hooks", {}).values()
        for group in groups
        for handler in group["hooks"]
        if is_our_command(handler.get("command"))
    ]


def user_entries(settings: dict[str, Any]) -> dict[str, list[Any]]:
    """The hooks that are not ours, per event."""
    out: dict[str, list[Any]] = {}
    for event, groups in settings.get("hooks", {}).items():
        for group in groups:
            mine = [h for h in group["hooks"] if not is_our_command(h.get("command"))]
            if mine:
                out.setdefault(event, []).append({**group, "hooks": mine})
    return out


# -- Claude Code ------------------------------------------------------------------------------


def test_claude_install_twice_then_remove_restores_the_users_bytes(cli: Cli, project: Path) -> None:
    path = settings_path(project)
    path.parent.mkdir()
    path.write_text(USER_SETTINGS)
    original = path.read_bytes()

    first = cli("setup", "claude", "--json")
    assert first.exit_code == 0, first.stderr
    report = first.json()
    assert report["tool"] == "claude" and report["scope"] == "project"
    assert report["changed"] is True
    [change] = report["files"]
    assert change["path"] == str(path) and change["action"] == "updated"
    assert Path(change["backup"]).read_bytes() == original
    assert "+" in change["diff"] and "hook --source claude" in change["diff"]
    installed = json.loads(path.read_text())
    assert user_entries(installed) == user_entries(json.loads(USER_SETTINGS))
    assert installed["env"] == {"FOO": "bar"} and installed["permissions"]
    assert set(installed["hooks"]) >= {event for event, _, _ in CLAUDE_EVENTS}
    assert installed["hooks"]["SessionEnd"][-1]["hooks"][0]["timeout"] == 5
    start = installed["hooks"]["SessionStart"][0]
    assert start["matcher"] == "startup|resume|clear|compact"
    commands = [h["command"] for h in start["hooks"]]
    assert commands[0].endswith(" hook --source claude")
    assert commands[1].endswith(" prime --hook-json")
    after_first = path.read_bytes()
    saved = backups()

    second = cli("setup", "claude")
    assert second.exit_code == 0, second.stderr
    assert "already installed" in second.stdout
    assert path.read_bytes() == after_first
    assert backups() == saved  # no new backup

    removed = cli("setup", "claude", "--remove", "--json")
    assert removed.exit_code == 0, removed.stderr
    assert removed.json()["files"][0]["action"] == "restored"
    assert path.read_bytes() == original


def test_claude_file_created_by_setup_is_deleted_by_remove(cli: Cli, project: Path) -> None:
    path = settings_path(project)
    assert cli("setup", "claude").exit_code == 0
    assert path.exists()
    assert cli("setup", "claude").stdout.startswith("already installed")
    result = cli("setup", "claude", "--remove", "--json")
    assert result.exit_code == 0, result.stderr
    assert result.json()["files"][0]["action"] == "removed"
    assert not path.exists()
    assert not path.parent.exists()  # .claude/ was created by setup too


def test_remove_keeps_what_the_user_added_after_install(cli: Cli, project: Path) -> None:
    path = settings_path(project)
    path.parent.mkdir()
    path.write_text(USER_SETTINGS)
    assert cli("setup", "claude").exit_code == 0
    settings = json.loads(path.read_text())
    settings["hooks"]["Stop"].append({"hooks": [{"type": "command", "command": "say hi"}]})
    settings["model"] = "opus"
    path.write_text(json.dumps(settings, indent=4))

    result = cli("setup", "claude", "--remove", "--json")
    assert result.json()["files"][0]["action"] == "updated"
    left = json.loads(path.read_text())
    assert our_commands(left) == []
    assert left["model"] == "opus"
    expected = json.loads(USER_SETTINGS)
    expected["hooks"]["Stop"].append({"hooks": [{"type": "command", "command": "say hi"}]})
    assert left["hooks"] == expected["hooks"]


def test_reinstall_after_the_executable_moved_replaces_our_entries(project: Path) -> None:
    path = settings_path(project)
    path.parent.mkdir()
    path.write_text(USER_SETTINGS)
    setup_agent("claude", root=project, exe=OLD_EXE)
    old = json.loads(path.read_text())
    new_exe = ["/home/me/.local/bin/agentkeep"]
    result = setup_agent("claude", root=project, exe=new_exe)
    assert result.files[0]["action"] == "updated"
    new = json.loads(path.read_text())
    assert len(our_commands(new)) == len(our_commands(old)) == 11
    assert all(c.startswith(new_exe[0] + " ") for c in our_commands(new))
    assert user_entries(new) == user_entries(json.loads(USER_SETTINGS))
    # Our groups stay where they were: the user's entries keep their positions too.
    assert list(new["hooks"]) == list(old["hooks"])


def test_dry_run_writes_nothing(cli: Cli, project: Path) -> None:
    path = settings_path(project)
    result = cli("setup", "claude", "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert "+++ " in result.stdout and "nothing was written" in result.stdout
    assert not path.exists() and not path.parent.exists()
    assert backups() == []

    path.parent.mkdir()
    path.write_text(USER_SETTINGS)
    report = cli("setup", "claude", "--dry-run", "--json").json()
    assert report["dry_run"] is True and report["files"][0]["action"] == "updated"
    assert report["files"][0]["backup"] is None
    assert path.read_text() == USER_SETTINGS
    assert backups() == []


@pytest.mark.parametrize(
    "content",
    ['{"hooks": {"Stop": [}', "// comment\n{}", "[1, 2]", '{"hooks": []}'],
    ids=["broken", "comment", "not-an-object", "hooks-not-an-object"],
)
def test_unparsable_settings_are_refused_and_left_alone(
    cli: Cli, project: Path, content: str
) -> None:
    path = settings_path(project)
    path.parent.mkdir()
    path.write_text(content)
    result = cli("setup", "claude", "--json")
    assert result.exit_code == 3
    error = result.error()["error"]
    assert str(path) in error and "did not change" in error
    assert path.read_text() == content
    assert backups() == []
    assert cli("setup", "claude", "--remove").exit_code == 3
    assert path.read_text() == content


def test_user_scope_uses_claude_config_dir(cli: Cli, project: Path) -> None:
    target = Path(os.environ["CLAUDE_CONFIG_DIR"]) / "settings.json"
    result = cli("setup", "claude", "--user", "--json")
    assert result.exit_code == 0, result.stderr
    assert result.json()["files"][0]["path"] == str(target)
    assert our_commands(json.loads(target.read_text()))
    assert not settings_path(project).exists()
    assert cli("setup", "claude", "--user", "--remove").exit_code == 0
    assert not target.exists()


def test_check_exit_codes(cli: Cli, project: Path) -> None:
    result = cli("setup", "claude", "--check", "--json")
    assert result.exit_code == 1
    assert result.json()["installed"] is False

    assert cli("setup", "claude").exit_code == 0
    result = cli("setup", "claude", "--check", "--json")
    assert result.exit_code == 0, result.stdout
    report = result.json()
    assert report["installed"] is True and report["up_to_date"] is True
    assert report["files"][0]["missing"] == []
    assert all(e["executable"] for e in report["executables"])
    assert cli("setup", "claude", "--check").exit_code == 0

    path = settings_path(project)
    settings = json.loads(path.read_text())
    del settings["hooks"]["Stop"]
    path.write_text(json.dumps(settings))
    result = cli("setup", "claude", "--check", "--json")
    assert result.exit_code == 1
    assert result.json()["files"][0]["missing"] == ["Stop"]
    assert "Stop" in cli("setup", "claude", "--check").stdout


def test_check_fails_when_the_hook_command_is_gone(project: Path, tmp_path: Path) -> None:
    from agentkeep.agent_setup import check_setup

    fake = tmp_path / "bin" / "agentkeep"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    setup_agent("claude", root=project, exe=[str(fake)])
    assert check_setup("claude", root=project, exe=[str(fake)]).installed
    fake.unlink()
    report = check_setup("claude", root=project, exe=[str(fake)])
    assert not report.installed
    assert report.executables == [{"path": str(fake), "exists": False, "executable": False}]
    assert any("does not exist" in p for p in report.problems)


def test_setup_needs_a_git_repository_for_project_scope(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outside = tmp_path / "nowhere"
    outside.mkdir()
    monkeypatch.chdir(outside)
    result = cli("setup", "claude", "--json")
    assert result.exit_code == 3
    assert "--user" in result.error()["hint"]


# -- Codex ------------------------------------------------------------------------------------


def codex_home() -> Path:
    home = Path(os.environ["CODEX_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    return home


def test_codex_chains_the_users_notify_and_restores_it(cli: Cli, project: Path) -> None:
    config = codex_home() / "config.toml"
    config.write_text(CODEX_CONFIG)

    result = cli("setup", "codex", "--json")
    assert result.exit_code == 0, result.stderr
    report = result.json()
    assert report["scope"] == "user"
    assert [f["action"] for f in report["files"]] == ["updated", "created"]
    assert any("/hooks" in step for step in report["manual_steps"])
    text = config.read_text()
    assert "# my Codex settings" in text and "# the model I like" in text
    notify = tomllib.loads(text)["notify"]
    assert is_our_argv(notify) and notify[1:4] == ["hook", "--source", "codex-notify"]
    assert notify[4].startswith("--chain=")
    assert json.loads(notify[4].removeprefix("--chain=")) == ["notify-send", "Codex", "turn done"]
    hooks = json.loads((config.parent / "hooks.json").read_text())["hooks"]
    assert "matcher" not in hooks["PostToolUse"][0]
    assert hooks["SessionEnd"][0]["hooks"][0]["timeout"] == 3
    assert hooks["SessionStart"][0]["hooks"][1]["command"].endswith(" prime --hook-json")
    installed = config.read_bytes()

    assert cli("setup", "codex").stdout.startswith("already installed")
    assert config.read_bytes() == installed

    removed = cli("setup", "codex", "--remove", "--json").json()
    assert [f["action"] for f in removed["files"]] == ["restored", "removed"]
    assert config.read_text() == CODEX_CONFIG
    assert not (config.parent / "hooks.json").exists()


def test_codex_restores_the_old_notify_value_after_other_edits(cli: Cli, project: Path) -> None:
    config = codex_home() / "config.toml"
    config.write_text(CODEX_CONFIG)
    assert cli("setup", "codex").exit_code == 0
    config.write_text(config.read_text() + '\n[profiles.fast]\nmodel = "mini"\n')
    assert cli("setup", "codex", "--remove").exit_code == 0
    data = tomllib.loads(config.read_text())
    assert data["notify"] == ["notify-send", "Codex", "turn done"]
    assert data["profiles"] == {"fast": {"model": "mini"}}


def test_codex_without_notify_and_project_scope(cli: Cli, project: Path) -> None:
    config = codex_home() / "config.toml"
    assert cli("setup", "codex").exit_code == 0
    assert tomllib.loads(config.read_text())["notify"][1:] == ["hook", "--source", "codex-notify"]
    assert cli("setup", "codex", "--remove").exit_code == 0
    assert not config.exists()

    result = cli("setup", "codex", "--project", "--json")
    assert result.exit_code == 0, result.stderr
    [change] = result.json()["files"]
    assert change["path"] == str(project / ".codex" / "hooks.json")
    assert not config.exists()  # notify is per user
    assert any("trusted projects" in s for s in result.json()["manual_steps"])


def test_notify_functions_are_pure_round_trips() -> None:
    chained = set_notify(CODEX_CONFIG, OLD_EXE)
    assert set_notify(chained, OLD_EXE) == chained
    moved = set_notify(chained, ["/new/agentkeep"])  # the chain survives a move
    assert tomllib.loads(moved)["notify"][-1] == tomllib.loads(chained)["notify"][-1]
    assert tomllib.loads(strip_notify(moved)) == tomllib.loads(CODEX_CONFIG)
    assert strip_notify(CODEX_CONFIG) == CODEX_CONFIG


def test_bad_codex_config_is_refused(cli: Cli, project: Path) -> None:
    config = codex_home() / "config.toml"
    config.write_text('model = "unterminated\n')
    result = cli("setup", "codex", "--json")
    assert result.exit_code == 3
    assert "not valid TOML" in result.error()["error"]
    assert config.read_text() == 'model = "unterminated\n'
    assert not (config.parent / "hooks.json").exists()


# -- OpenCode ---------------------------------------------------------------------------------


def test_opencode_plugin_written_once_and_foreign_file_kept(cli: Cli, project: Path) -> None:
    plugin = project / ".opencode" / "plugins" / "agentkeep.ts"
    result = cli("setup", "opencode", "--json")
    assert result.exit_code == 0, result.stderr
    assert result.json()["files"][0]["action"] == "created"
    text = plugin.read_text()
    assert text.startswith("// generated by agentkeep setup")
    assert '"hook", "--source", "opencode"]' in text
    assert cli("setup", "opencode").stdout.startswith("already installed")
    assert cli("setup", "opencode", "--check").exit_code == 0
    assert cli("setup", "opencode", "--remove").exit_code == 0
    assert not plugin.exists() and not (project / ".opencode").exists()

    plugin.parent.mkdir(parents=True)
    plugin.write_text("export const Mine = async () => ({})\n")
    result = cli("setup", "opencode", "--json")
    assert result.exit_code == 5
    assert "not written by agentkeep" in result.error()["error"]
    assert plugin.read_text() == "export const Mine = async () => ({})\n"
    assert cli("setup", "opencode", "--remove").exit_code == 0
    assert plugin.read_text() == "export const Mine = async () => ({})\n"
    assert cli("setup", "opencode", "--check").exit_code == 1


def test_opencode_user_scope(cli: Cli, project: Path) -> None:
    result = cli("setup", "opencode", "--user", "--json")
    assert result.exit_code == 0, result.stderr
    expected = Path(os.environ["XDG_CONFIG_HOME"]) / "opencode" / "plugins" / "agentkeep.ts"
    assert result.json()["files"][0]["path"] == str(expected)
    assert expected.exists()


NODE_HARNESS = """
import { spawn } from "node:child_process";
globalThis.Bun = {
  spawn(cmd, opts) {
    const child = spawn(cmd[0], cmd.slice(1), { stdio: ["pipe", "ignore", "ignore"] });
    const exited = new Promise((resolve) => child.on("exit", resolve));
    opts.stdin.text().then((text) => child.stdin.end(text));
    return { exited };
  },
};
const { AgentkeepPlugin } = await import(process.argv[2]);
const hooks = await AgentkeepPlugin({ directory: "/work/proj" });
await hooks.event({ event: { type: "session.created", properties: { info: { id: "s1" } } } });
await hooks.event({ event: { type: "message.part.updated", properties: {} } });
await hooks["tool.execute.before"]({ tool: "bash", sessionID: "s1", callID: "c1" },
                                   { args: { command: "ls" } });
const cyclic = {}; cyclic.self = cyclic;
await hooks["tool.execute.after"]({ tool: "bash", sessionID: "s1", callID: "c1" }, cyclic);
globalThis.Bun = { spawn() { throw new Error("spawn failed"); } };
await hooks["chat.message"]({ sessionID: "s1" }, { parts: [] });
await new Promise((resolve) => setTimeout(resolve, 1500));
console.log("no throw");
"""


def test_opencode_plugin_sends_payloads_and_never_throws(project: Path, tmp_path: Path) -> None:
    """Runs the generated plugin under node with Bun.spawn emulated: each hook call pipes
    one JSON payload to the command; streaming deltas, unserialisable values and a failing
    spawn are swallowed."""
    if shutil.which("node") is None:
        skip_or_fail("node is not installed")
    out = tmp_path / "out"
    out.mkdir()
    fake = tmp_path / "agentkeep"
    fake.write_text(f'#!/bin/sh\ncat > "{out}/$$.json"\n')
    fake.chmod(0o755)
    setup_agent("opencode", root=project, exe=[str(fake)])
    plugin = project / ".opencode" / "plugins" / "agentkeep.ts"
    module = tmp_path / "plugin.mjs"  # node runs it as JavaScript: it has no type syntax
    module.write_text(plugin.read_text())
    harness = tmp_path / "harness.mjs"
    harness.write_text(NODE_HARNESS)
    done = subprocess.run(
        ["node", str(harness), str(module)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "no throw"
    payloads = [json.loads(p.read_text()) for p in out.iterdir()]
    by_hook = {p["hook"]: p for p in payloads}
    assert sorted(by_hook) == ["event", "tool.execute.before"]
    assert len(payloads) == 2
    assert by_hook["event"]["event"]["type"] == "session.created"
    assert by_hook["event"]["source"] == "opencode"
    assert by_hook["event"]["directory"] == "/work/proj"
    before = by_hook["tool.execute.before"]
    assert before["input"]["callID"] == "c1" and before["output"]["args"] == {"command": "ls"}


# -- the installed commands, run for real ------------------------------------------------------


def test_installed_claude_commands_run(cli: Cli, project: Path) -> None:
    """Every command setup wrote runs through `sh -c` as Claude Code would run it: the
    executable exists, prime prints the SessionStart envelope, the hook exits 0 silently."""
    assert cli("setup", "claude").exit_code == 0
    settings = json.loads(settings_path(project).read_text())
    commands = sorted(set(our_commands(settings)))
    assert len(commands) == 2
    for command in commands:
        program = Path(shlex.split(command)[0])
        assert program.is_absolute() and program.is_file() and os.access(program, os.X_OK)
    env = {k: v for k, v in os.environ.items() if k != "AGENTKEEP_DIR"}
    start = {
        "session_id": "e2e-1",
        "cwd": str(project),
        "hook_event_name": "SessionStart",
        "source": "startup",
        "transcript_path": None,
    }
    [prime] = [c for c in commands if c.endswith("prime --hook-json")]
    done = subprocess.run(
        ["sh", "-c", prime],
        input=json.dumps(start).encode(),
        capture_output=True,
        cwd=project,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    envelope = json.loads(done.stdout)
    assert envelope["hookSpecificOutput"]["hookEventName"] == "SessionStart"
    assert "# agentkeep" in envelope["hookSpecificOutput"]["additionalContext"]

    [hook] = [c for c in commands if " hook --source claude" in c]
    payload = {
        "session_id": "e2e-1",
        "cwd": str(project),
        "hook_event_name": "PostToolUse",
        "tool_name": "Bash",
        "tool_input": {"command": "ls"},
        "tool_response": {"stdout": "README.md", "stderr": "", "interrupted": False},
        "tool_use_id": "toolu_e2e_1",
    }
    for event in [start, payload, {**start, "hook_event_name": "SessionEnd", "reason": "other"}]:
        done = subprocess.run(
            ["sh", "-c", hook],
            input=json.dumps(event).encode(),
            capture_output=True,
            cwd=project,
            env=env,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout == b""
    import agentkeep

    with agentkeep.open(project) as store:
        rows = store._rows("SELECT event, tool_use_id FROM captures ORDER BY id")
    assert ("tool_post", "toolu_e2e_1") in [tuple(r) for r in rows]


# -- the pure functions -----------------------------------------------------------------------


def test_our_commands_are_recognised_narrowly() -> None:
    assert is_our_command("/usr/local/bin/agentkeep hook --source claude")
    assert is_our_command("'/my tools/agentkeep' hook --source codex")
    assert is_our_command("/venv/bin/python -m agentkeep prime --hook-json")
    assert not is_our_command("echo agentkeep hook --source claude")
    assert not is_our_command("agentkeep status")
    assert not is_our_command("/bin/agentkeep-hook --source claude")
    assert not is_our_command("'unbalanced agentkeep hook --source x")
    assert not is_our_command(None)


def test_missing_hooks_ignores_the_path_but_not_the_kind() -> None:
    desired = hooks_block(CLAUDE_EVENTS, ["/a/agentkeep"], "claude")
    installed = merge_hooks({}, hooks_block(CLAUDE_EVENTS, ["/b/agentkeep"], "claude"))
    assert missing_hooks(installed, desired) == []
    start = installed["hooks"]["SessionStart"][0]["hooks"]
    start.pop()  # the prime handler
    assert missing_hooks(installed, desired) == ["SessionStart"]


_COMMANDS = st.sampled_from(["echo a", "./x.sh", "agentkeep status", "notify-send 'b c'"])
_HANDLER = st.fixed_dictionaries({"type": st.just("command"), "command": _COMMANDS})
_GROUP = st.fixed_dictionaries(
    {"hooks": st.lists(_HANDLER, max_size=3)},
    optional={"matcher": st.sampled_from(["*", "Bash", ""])},
)
_SETTINGS = st.fixed_dictionaries(
    {},
    optional={
        "hooks": st.dictionaries(
            st.sampled_from(["Stop", "SessionStart", "PreToolUse", "Custom"]),
            st.lists(_GROUP, min_size=1, max_size=3),
            min_size=1,
            max_size=4,
        ),
        "model": st.text(max_size=5),
    },
)


@settings(max_examples=200, deadline=None)
@given(_SETTINGS, st.sampled_from([OLD_EXE, ["/other dir/agentkeep"]]))
def test_merge_then_strip_gives_back_the_users_settings(
    user: dict[str, Any], exe: list[str]
) -> None:
    desired = hooks_block(CLAUDE_EVENTS, exe, "claude")
    merged = merge_hooks(user, desired)
    assert merge_hooks(merged, desired) == merged  # idempotent
    assert missing_hooks(merged, desired) == []
    assert user_entries(merged) == user_entries(user)
    moved = merge_hooks(merged, hooks_block(CLAUDE_EVENTS, ["/moved/agentkeep"], "claude"))
    assert len(our_commands(moved)) == len(our_commands(merged))
    assert merge_hooks(moved, {}) == user


def test_secrets_in_the_settings_never_leave_the_file(cli: Cli, project: Path) -> None:
    """Backups, the original and the diff are redacted; --remove still gives back the
    user's exact bytes, secrets filled in from the file itself."""
    from secretgen import fragments, generate, leaks

    # Not an unterminated key block: its marker runs to the end of the file, which hides
    # the change from the diff too (the diff then says so).
    secrets = {k: v for k, v in generate().items() if k != "pem-unterminated"}
    path = settings_path(project)
    path.parent.mkdir()
    path.write_text(
        json.dumps({"env": {name: text for name, (text, _) in secrets.items()}}, indent=2) + "\n"
    )
    original = path.read_bytes()
    needles = [f for _, secret in secrets.values() for f in fragments(secret)]

    installed = cli("setup", "claude", "--json")
    assert installed.exit_code == 0, installed.stderr
    [change] = installed.json()["files"]
    assert "[REDACTED:" in change["diff"] and "[REDACTED:" in Path(change["backup"]).read_text()
    assert not [n for n in needles if n in installed.stdout + installed.stderr]
    assert leaks(Path(os.environ["AGENTKEEP_HOME"]), needles) == []

    removed = cli("setup", "claude", "--remove")
    assert removed.exit_code == 0, removed.stderr
    assert not [n for n in needles if n in removed.stdout + removed.stderr]
    assert path.read_bytes() == original
    assert leaks(Path(os.environ["AGENTKEEP_HOME"]), needles) == []


def test_backups_written_before_redaction_are_rewritten_by_the_next_setup(
    cli: Cli, project: Path
) -> None:
    """setup-backups/ from an agentkeep that kept raw bytes (no secret_rules in the state)
    are rewritten redacted by the next setup that writes; --remove still restores the
    user's exact bytes (review finding 9)."""
    from agentkeep.agent_setup import backup_dir

    from secretgen import fragments, generate, leaks

    secrets = {k: v for k, v in generate().items() if k in ("github-classic", "aws", "pem")}
    path = settings_path(project)
    path.parent.mkdir()
    path.write_text(json.dumps({"env": {k: t for k, (t, _) in secrets.items()}}, indent=2) + "\n")
    original = path.read_bytes()
    needles = [f for _, secret in secrets.values() for f in fragments(secret)]
    home = Path(os.environ["AGENTKEEP_HOME"])
    assert cli("setup", "claude").exit_code == 0
    # What an older agentkeep left: the raw original, a raw backup, a state without rules.
    folder = backup_dir(path)
    (folder / "original").write_bytes(original)
    (folder / "settings.local.json.20260101T000000Z").write_bytes(original)
    state = json.loads((folder / "state.json").read_text())
    del state["secret_rules"]
    (folder / "state.json").write_text(json.dumps(state))
    assert leaks(home, needles) != []

    assert cli("setup", "claude", "--dry-run").exit_code == 0
    assert leaks(home, needles) != []  # a dry run writes nothing, not even this
    again = cli("setup", "claude")
    assert again.exit_code == 0, again.stderr
    assert leaks(home, needles) == []
    assert json.loads((folder / "state.json").read_text())["secret_rules"]

    removed = cli("setup", "claude", "--remove", "--json")
    assert removed.exit_code == 0, removed.stderr
    assert removed.json()["files"][0]["action"] == "restored"
    assert path.read_bytes() == original
    assert leaks(home, needles) == []
