"""`agentkeep artifacts …` (and its hidden alias `agentkeep artifact …`)"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from agentkeep.cli import State
from agentkeep.cli.output import (
    cut,
    fetch,
    fmt_of,
    limit_option,
    output_options,
    print_list,
    print_object,
    print_written,
)
from agentkeep.errors import InvalidInput
from agentkeep.services.artifacts import KINDS

COLUMNS = ["id", "kind", "name", "size", "stored_bytes", "session_id", "task_id", "created_at"]


@click.group()
def artifacts() -> None:
    """Content-addressed files: diffs, logs, files, bundles.

    Content is redacted, hashed (sha256 of the uncompressed bytes), compressed with zstd
    when that saves more than ~10%, stored once however often it is added, and read-only.

    \b
    Examples:
      agentkeep artifacts add build.log --session 7 --kind log
      agentkeep artifacts add --git-diff main --task 12     # worktree diff, untracked incl.
      pytest 2>&1 | agentkeep artifacts add - --name pytest.txt
      agentkeep artifacts list --session 7 --json
      agentkeep artifacts cat 3 | less
      agentkeep artifacts verify

    `agentkeep artifact …` (singular) still works, as does `artifacts ls`.
    """


@artifacts.command("add")
@click.argument("source", required=False)
@click.option(
    "--git-diff",
    "git_rev",
    is_flag=False,
    flag_value="HEAD",
    default=None,
    help="Store the worktree's diff against REV (default HEAD), untracked files included.",
)
@click.option("--kind", type=click.Choice(KINDS), help="What it is (default: file; diff).")
@click.option("--name", help="A name (default: the file's name).")
@click.option("--content-type", help="MIME type (default: guessed from the name and bytes).")
@click.option("--session", "session_id", type=int, help="Attach to this session.")
@click.option("--task", "task_id", type=int, help="Attach to this task.")
@click.option("--agent", "agent_id", type=int, help="Attach to this agent.")
@click.option("--idempotency-key", help="Retry-safe key: the same key stores one artifact.")
@output_options
@click.pass_obj
def add(
    state: State,
    source: str | None,
    git_rev: str | None,
    kind: str | None,
    name: str | None,
    content_type: str | None,
    session_id: int | None,
    task_id: int | None,
    agent_id: int | None,
    idempotency_key: str | None,
    as_json: bool,
    nl: bool,
) -> None:
    """Store FILE (or - for stdin), or the worktree's diff with --git-diff [REV].

    \b
    Examples:
      agentkeep artifacts add report.html --task 12
      agentkeep artifacts add --git-diff --session 7
      agentkeep artifacts add --git-diff origin/main --name review.patch
    """
    fmt = fmt_of(as_json, nl)
    attach = {"session_id": session_id, "task_id": task_id, "agent_id": agent_id}
    with state.open() as store:
        if git_rev is not None:
            if source is not None:
                raise InvalidInput("give either FILE or --git-diff, not both")
            written = store.add_git_diff(git_rev, name=name, **attach)
        elif source is None:
            raise InvalidInput(
                "name a FILE to store, - for stdin, or --git-diff",
                hint="agentkeep artifacts add build.log",
            )
        else:
            data = sys.stdin.buffer if source == "-" else Path(source)
            if isinstance(data, Path) and not data.is_file():
                raise InvalidInput(f"{source} is not a readable file")
            written = store.add_artifact(
                data,
                kind=kind or "file",
                name=name,
                content_type=content_type,
                idempotency_key=idempotency_key,
                **attach,
            )
    print_written("artifact", written.item, written.outcome, fmt)


@artifacts.command("list")
@click.option("--kind", type=click.Choice(KINDS))
@click.option("--session", "session_id", type=int)
@click.option("--task", "task_id", type=int)
@click.option("--agent", "agent_id", type=int)
@limit_option(100)
@output_options
@click.pass_obj
def list_(
    state: State,
    kind: str | None,
    session_id: int | None,
    task_id: int | None,
    agent_id: int | None,
    limit: int,
    as_json: bool,
    nl: bool,
) -> None:
    """List artifacts, newest first.

    Example: agentkeep artifacts list --kind diff --json
    """
    with state.open(read_only=True) as store:
        items = store.list_artifacts(
            kind=kind,
            session_id=session_id,
            task_id=task_id,
            agent_id=agent_id,
            limit=fetch(limit) or None,
        )
    print_list(cut(items, limit), fmt_of(as_json, nl), COLUMNS, empty="no artifacts")


@artifacts.command("show")
@click.argument("artifact_id", type=int)
@output_options
@click.pass_obj
def show(state: State, artifact_id: int, as_json: bool, nl: bool) -> None:
    """Show one artifact's record.

    Example: agentkeep artifacts show 3 --json
    """
    with state.open(read_only=True) as store:
        item = store.get_artifact(artifact_id)
    print_object(item, fmt_of(as_json, nl))


@artifacts.command("cat")
@click.argument("artifact_id", type=int)
@click.pass_obj
def cat(state: State, artifact_id: int) -> None:
    """Write an artifact's bytes to stdout.

    Example: agentkeep artifacts cat 3 | git apply
    """
    with state.open(read_only=True) as store:
        out = sys.stdout.buffer
        for chunk in store.artifact_chunks(artifact_id):
            out.write(chunk)
        out.flush()


@artifacts.command("get")
@click.argument("artifact_id", type=int)
@click.option("-o", "--output", "dest", type=click.Path(path_type=Path), help="Where to write.")
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
@output_options
@click.pass_obj
def get(
    state: State, artifact_id: int, dest: Path | None, force: bool, as_json: bool, nl: bool
) -> None:
    """Copy an artifact to a file (default: its name, in the current directory).

    Example: agentkeep artifacts get 3 -o /tmp/review.patch
    """
    with state.open(read_only=True) as store:
        item = store.get_artifact(artifact_id)
        target = dest or Path(Path(item.name or f"artifact-{item.id}").name)
        if target.exists() and not force:
            raise InvalidInput(f"{target} exists", hint="pass --force to overwrite it")
        written = store.export_artifact(artifact_id, target)
    fmt = fmt_of(as_json, nl)
    if fmt == "table":
        click.echo(f"wrote {written:,} bytes to {target}")
    else:
        print_object({"id": artifact_id, "path": str(target), "bytes": written}, fmt)


@artifacts.command("verify")
@click.argument("artifact_ids", type=int, nargs=-1)
@output_options
@click.pass_obj
def verify(state: State, artifact_ids: tuple[int, ...], as_json: bool, nl: bool) -> None:
    """Re-hash artifacts (all when no ID is given); exit 1 if any does not match.

    Example: agentkeep artifacts verify 3 4
    """
    with state.open(read_only=True) as store:
        ids = artifact_ids or [a.id for a in store.list_artifacts(limit=None)]
        results = [store.verify_artifact(artifact_id) for artifact_id in ids]
    fmt = fmt_of(as_json, nl)
    print_list(results, fmt, ["id", "ok", "problem", "sha256"], empty="no artifacts")
    bad = [r for r in results if not r.ok]
    if fmt == "table" and results:
        click.echo(f"{len(results) - len(bad)} ok, {len(bad)} bad", err=True)
    if bad:
        click.get_current_context().exit(1)


# `ls`, as before `list` existed; hidden from help.
artifacts.add_command(
    click.Command("ls", params=list_.params, callback=list_.callback, hidden=True, help=list_.help)
)

# `agentkeep artifact …` (the group's name before every noun group was plural): the same
# commands, hidden from the command list.
artifact = click.Group("artifact", commands=artifacts.commands, hidden=True, help=artifacts.help)
