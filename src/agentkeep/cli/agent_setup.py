"""`agentkeep setup` — a thin adapter over agentkeep.agent_setup."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from agentkeep.agent_setup import TOOLS
from agentkeep.cli import State
from agentkeep.cli.output import fmt_of, output_options, print_object


@click.command("setup")
@click.argument("tool", type=click.Choice(TOOLS))
@click.option(
    "--project",
    "scope",
    flag_value="project",
    help="This project only (default for claude and opencode).",
)
@click.option(
    "--user", "scope", flag_value="user", help="Every project of this user (default for codex)."
)
@click.option("--check", is_flag=True, help="Report whether the hooks are installed (exit 0/1).")
@click.option("--remove", is_flag=True, help="Take agentkeep's entries out again.")
@click.option("--dry-run", is_flag=True, help="Print the diff; write nothing.")
@click.option(
    "--mcp",
    "mcp",
    is_flag=True,
    help="Register `agentkeep mcp` as the tool's MCP server (instead of the hooks).",
)
@output_options
@click.pass_context
def setup(
    ctx: click.Context,
    tool: str,
    scope: str | None,
    check: bool,
    remove: bool,
    dry_run: bool,
    mcp: bool,
    as_json: bool,
    nl: bool,
) -> None:
    """Install agentkeep's hooks (or, with --mcp, its MCP server) into Claude Code, Codex
    or OpenCode.

    Merges agentkeep's entries into the tool's own settings and keeps everything else.
    Running it again changes nothing; --remove takes the entries out and, if nothing else
    changed, puts back the file's original bytes (or deletes a file setup created). Each
    change prints a diff and backs the file up first, under agentkeep's data directory
    (setup-backups/). A settings file that does not parse is left alone (exit 3).

    \b
    What is written:
      claude    hooks for SessionStart (plus `agentkeep prime --hook-json`, which gives
                the new session the handoffs, ready tasks and failures), prompts, tool
                calls and failures, stops, compaction, notifications and SessionEnd.
                --project (default): .claude/settings.local.json, the personal,
                git-ignored file. Not .claude/settings.json: that one is shared through
                git, and teammates without agentkeep would get a failing hook (exit 127)
                on every event. --user: $CLAUDE_CONFIG_DIR/settings.json (~/.claude).
      codex     --user (default): notify in $CODEX_HOME/config.toml (~/.codex; an
                existing notify command keeps running, chained after agentkeep) and
                hooks.json beside it. --project: .codex/hooks.json only. Codex runs a
                hook only after you trust it in /hooks.
      opencode  a small plugin, plugins/agentkeep.ts, in .opencode/ (--project,
                default) or $XDG_CONFIG_HOME/opencode/ (--user). A file of that name
                not written by agentkeep is never overwritten.

    With --mcp, setup registers `agentkeep mcp` (the MCP server, stdio) as the server
    named agentkeep instead, with the same rules (--check, --remove and --dry-run too):
    claude: .mcp.json (--project) or ~/.claude.json (--user; in $CLAUDE_CONFIG_DIR if
    set) under mcpServers; codex: [mcp_servers.agentkeep] in $CODEX_HOME/config.toml
    (--user) or .codex/config.toml (--project); opencode: "mcp" in opencode.json of the
    project or of $XDG_CONFIG_HOME/opencode/.

    The hooks run this agentkeep by its absolute path; rerun setup after moving it.

    \b
    Examples:
      agentkeep setup claude                # this project's Claude Code sessions
      agentkeep setup claude --dry-run      # show the diff, write nothing
      agentkeep setup codex                 # then trust the hooks in Codex's /hooks
      agentkeep setup opencode --user
      agentkeep setup claude --check        # exit 0 when installed
      agentkeep setup claude --remove       # back to the original file
      agentkeep setup claude --mcp          # .mcp.json: agentkeep's MCP server
      agentkeep setup codex --mcp --remove
    """
    from agentkeep.agent_setup import check_setup, setup_agent

    fmt = fmt_of(as_json, nl)
    if check and (remove or dry_run):
        raise click.UsageError(
            "--check only reports: it cannot be combined with --remove/--dry-run"
        )
    root = _project_root(ctx.obj, scope, tool)
    if check:
        report = check_setup(tool, scope, root=root, mcp=mcp)
        if fmt != "table":
            print_object(report, fmt)
        else:
            click.echo(_check_text(report.to_dict()))
        ctx.exit(0 if report.installed else 1)
    result = setup_agent(tool, scope, remove=remove, dry_run=dry_run, root=root, mcp=mcp)
    if fmt != "table":
        print_object(result, fmt)
        return
    click.echo(_result_text(result.to_dict()), nl=False)


def _project_root(state: State, scope: str | None, tool: str) -> Path | None:
    """The project for --project: that of an explicit --store, else the git worktree
    around the working directory (found by the library)."""
    from agentkeep.agent_setup import resolve_scope

    if resolve_scope(tool, scope) != "project" or state.store is None:
        return None
    from agentkeep.store import resolve_store_dir

    return resolve_store_dir(state.store).parent


def _result_text(result: dict[str, Any]) -> str:
    lines: list[str] = []
    for change in result["files"]:
        if change["diff"]:
            lines.append(change["diff"].rstrip("\n"))
    what = "MCP server" if result.get("component") == "mcp" else "hooks"
    if not result["changed"]:
        paths = ", ".join(change["path"] for change in result["files"])
        if result["operation"] == "install":
            lines.append(f"already installed: agentkeep's {result['tool']} {what} in {paths}")
        else:
            lines.append(f"nothing to remove: no agentkeep {result['tool']} {what} in {paths}")
        return "\n".join(lines) + "\n"
    verb = "would be " if result["dry_run"] else ""
    for change in result["files"]:
        if change["action"] == "unchanged":
            continue
        text = f"{verb}{change['action']}: {change['path']}"
        if change["action"] == "restored":
            text += " (its bytes from before the first setup)"
        if change["backup"]:
            text += f"\n  backup: {change['backup']}"
        lines.append(text)
    if result["dry_run"]:
        lines.append("dry run: nothing was written")
    elif result["manual_steps"]:
        lines.append("next:")
        lines += [f"  - {step}" for step in result["manual_steps"]]
    if result["operation"] == "install" and not result["dry_run"]:
        runs = "the MCP server runs" if what == "MCP server" else "the hooks run"
        lines.append(f"{runs}: {result['command']}")
    return "\n".join(lines) + "\n"


def _check_text(report: dict[str, Any]) -> str:
    state = "installed" if report["installed"] else "not installed"
    if report["installed"] and not report["up_to_date"]:
        flag = " --mcp" if report.get("component") == "mcp" else ""
        state += f" (setup would rewrite it: run `agentkeep setup {report['tool']}{flag}`)"
    what = "MCP server" if report.get("component") == "mcp" else "hooks"
    lines = [f"{report['tool']} {what} ({report['scope']}): {state}"]
    for info in report["files"]:
        status = "installed" if info["installed"] else "missing" if info["exists"] else "absent"
        if info["missing"] and info["exists"]:
            status += ": " + ", ".join(info["missing"])
        lines.append(f"  {info['path']}: {status}")
    for program in report["executables"]:
        ok = "executable" if program["executable"] else "missing or not executable"
        lines.append(f"  command {program['path']}: {ok}")
    for problem in report["problems"]:
        lines.append(f"  problem: {problem}")
    return "\n".join(lines)
