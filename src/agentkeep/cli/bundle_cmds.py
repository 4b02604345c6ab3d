"""`agentkeep backup|restore|export|import-bundle`: thin adapters over `agentkeep.ops`."""

from __future__ import annotations

from pathlib import Path

import click

from agentkeep.cli import State
from agentkeep.cli.output import fmt_of, output_options, print_object


@click.command()
@click.argument("dest", required=False, type=click.Path(path_type=Path))
@output_options
@click.pass_obj
def backup(state: State, dest: Path | None, as_json: bool, nl: bool) -> None:
    """Snapshot the database, streams and objects while writers keep writing.

    DEST (a new or empty directory) defaults to .agentkeep/backups/snapshot-<time>/.

    \b
    Examples:
      agentkeep backup
      agentkeep backup /mnt/backups/agentkeep-monday --json
    """
    from agentkeep.ops.backup import backup as run_backup

    with state.open(read_only=True) as store:
        result = run_backup(store, dest)
    fmt = fmt_of(as_json, nl)
    if fmt == "table":
        click.echo(f"backup: {result.path} ({result.files} files, {result.bytes:,} bytes)")
    else:
        print_object(result, fmt)
    for missing in result.missing:
        click.echo(
            f"warning: {missing} was missing from the store; run `agentkeep doctor`", err=True
        )


@click.command()
@click.argument("src", type=click.Path(path_type=Path, exists=True))
@click.option("--force", is_flag=True, help="Move an existing store aside and restore anyway.")
@output_options
@click.pass_obj
def restore(state: State, src: Path, force: bool, as_json: bool, nl: bool) -> None:
    """Restore a backup as this project's store.

    SRC is a backup directory made by `agentkeep backup`, or a database file from
    .agentkeep/backups/ (`agentkeep db backup`, or a migration's state.db.pre-v<N>-*):
    that database, with every other file of the current store carried over.

    Refuses to replace an existing store unless --force; with --force the old store is
    moved to .agentkeep.replaced-<time> beside it (nothing is deleted). Stop agents and
    `agentkeep serve` first: a process that still has the old store open keeps writing there.

    A store on PostgreSQL: the backup is copied into the server and swapped in; the old
    schema is renamed to <schema>_replaced_<time> (the output says how to drop it). A
    backup restored into a new directory is a SQLite store, wherever it was taken.

    \b
    Examples:
      agentkeep restore .agentkeep/backups/snapshot-20260101T000000000000Z
      agentkeep restore /mnt/backups/agentkeep-monday --force --json
      agentkeep restore .agentkeep/backups/state-20260101T000000000000Z.db --force
    """
    from agentkeep.ops.restore import restore as run_restore

    result = run_restore(src, _restore_target(state), force=force)
    fmt = fmt_of(as_json, nl)
    if fmt != "table":
        print_object(result, fmt)
    else:
        click.echo(f"restored {result.source} into {result.store_dir}")
        if result.replaced:
            click.echo(f"the previous store was moved to {result.replaced}")
        for note in result.notes:
            click.echo(note)
        click.echo("check: ok" if result.check_ok else "problems: " + "; ".join(result.problems))
    if not result.check_ok:
        click.get_current_context().exit(1)


def _restore_target(state: State) -> Path:
    from agentkeep.paths import find_store, main_worktree_root

    if state.store is not None:
        return state.store
    return find_store() or main_worktree_root(Path.cwd()) or Path.cwd()


@click.command()
@click.option("--session", "session_ids", type=int, multiple=True, help="Export this session.")
@click.option("--task", "task_ids", type=int, multiple=True, help="Export this task.")
@click.option(
    "--namespace",
    "namespaces",
    multiple=True,
    help="Export this namespace's documents (a collection's records) and schemas.",
)
@click.option("--all", "everything", is_flag=True, help="Export every record and document.")
@click.option(
    "-o", "--output", "out", required=True, type=click.Path(path_type=Path), help="Bundle file."
)
@output_options
@click.pass_obj
def export(
    state: State,
    session_ids: tuple[int, ...],
    task_ids: tuple[int, ...],
    namespaces: tuple[str, ...],
    everything: bool,
    out: Path,
    as_json: bool,
    nl: bool,
) -> None:
    """Write a portable bundle (tar): records as JSONL, their streams and objects, a manifest.

    Machine-local fields (pids, hosts) are stripped. Live streams are exported up to their
    recorded length. Documents are exported as their files' text (redacted), with their
    namespaces' schemas; `import-bundle` writes them into the other project.

    \b
    Examples:
      agentkeep export --session 12 -o session-12.agentkeep.tar
      agentkeep export --task 3 --task 4 -o tasks.tar --json
      agentkeep export --namespace campaigns --namespace leads -o crm.tar
      agentkeep export --all -o everything.tar
    """
    from agentkeep.ops.bundle_export import export_bundle

    with state.open(read_only=True) as store:
        result = export_bundle(
            store,
            out,
            session_ids=session_ids,
            task_ids=task_ids,
            namespaces=namespaces,
            all=everything,
        )
    fmt = fmt_of(as_json, nl)
    if fmt != "table":
        print_object(result, fmt)
        return
    counts = ", ".join(f"{n} {t}" for t, n in result.counts.items() if n)
    click.echo(f"exported {result.path} ({result.bytes:,} bytes): {counts or 'nothing'}")


@click.command()
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@output_options
@click.pass_obj
def import_bundle(state: State, file: Path, as_json: bool, nl: bool) -> None:
    """Merge a bundle made by `agentkeep export` into this store.

    Idempotent: records already here are skipped, so a second import changes nothing.
    Documents are written through the documents' write path (redaction, schema, atomic
    file, a version); one already here with other content is kept and reported.
    A record whose id is taken by a different record gets a new id (reported), and every
    reference to it follows.

    \b
    Examples:
      agentkeep import-bundle session-12.agentkeep.tar
      agentkeep import-bundle everything.tar --json
    """
    from agentkeep.ops.bundle_import import import_bundle as run_import

    with state.open() as store:
        result = run_import(store, file)
    fmt = fmt_of(as_json, nl)
    if fmt != "table":
        print_object(result, fmt)
        return
    created = ", ".join(f"{n} {t}" for t, n in result.created.items() if n)
    click.echo(f"{result.outcome}: {created or 'nothing new'}")
    for conflict in result.conflicts:
        if "old_id" in conflict:
            what = f"{conflict['table']} {conflict['old_id']} -> {conflict['new_id']}"
        else:  # a document or a schema file
            what = f"{conflict['table']} {conflict.get('ref') or conflict.get('file')}"
        click.echo(f"conflict: {what} ({conflict['reason']})")
