"""`agentkeep gc`, `usage`, `pin`, `unpin` — thin adapters over agentkeep.ops.retention."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from agentkeep.cli import State
from agentkeep.cli.output import bar, dumps, fmt_of, output_options, print_object, render_table
from agentkeep.ops.retention import GROUPINGS, PIN_ENTITIES, human_bytes

ITEM_COLUMNS = ["what", "id", "session_id", "kind", "size", "created_at", "reason"]


@click.command()
@click.option("--apply", "do_apply", is_flag=True, help="Delete (default: only show what).")
@click.option(
    "--archive",
    type=click.Path(file_okay=False, path_type=Path),
    help="With --apply: copy the files and rows to DIR/gc-<time>/ before deleting.",
)
@output_options
@click.pass_obj
def gc(state: State, do_apply: bool, archive: Path | None, as_json: bool, nl: bool) -> None:
    """Delete what the retention policies in config.toml allow (a dry run by default).

    Policies are per kind (streams, diff, log, file, bundle, payload):
    retention.<kind>.max_age_days, .max_total_bytes, .keep_last_sessions. All are 0 (no
    limit) by default, so nothing is deleted until you set one. Pinned sessions and
    artifacts and live streams are never deleted.

    \b
    Examples:
      agentkeep config set retention.streams.max_age_days 30
      agentkeep gc                          # what --apply would delete, and the bytes
      agentkeep gc --apply --archive ~/agentkeep-archive
      agentkeep gc --json
    """
    from agentkeep.ops.retention import apply_gc, plan_gc

    fmt = fmt_of(as_json, nl)
    if archive is not None and not do_apply:
        raise click.UsageError("--archive is written only when deleting: add --apply")
    with state.open(read_only=not do_apply) as store:
        if not do_apply:
            plan = plan_gc(store)
            if fmt != "table":
                print_object({"applied": False, **plan.to_dict()}, fmt)
                return
            click.echo(_plan_text(plan.to_dict(), applied=False))
            return
        result = apply_gc(store, archive_dir=archive)
    if fmt != "table":
        print_object({"applied": True, **result.to_dict()}, fmt)
        return
    click.echo(_result_text(result.to_dict()))


def _plan_text(plan: dict[str, Any], *, applied: bool) -> str:
    if not plan["items"]:
        if not plan["policies"]:
            return (
                "nothing to delete: no retention policy is set "
                "(`agentkeep config list` shows the retention.* settings)"
            )
        return "nothing to delete: everything is within the retention policies"
    counts = _counts(plan)
    verb = "deleted" if applied else "would delete"
    rows = [{**item, "size": human_bytes(item["bytes"])} for item in plan["items"]]
    for row in rows:
        if row["what"] == "object":
            row["id"] = str(row["id"])[:12]
    lines = [render_table(rows, ITEM_COLUMNS), "", f"{verb} {counts}"]
    lines[-1] += f", freeing {human_bytes(plan['bytes'])} of files"
    if not applied:
        lines.append("run `agentkeep gc --apply` to delete them (--archive DIR keeps a copy)")
    return "\n".join(lines)


def _counts(plan: dict[str, Any]) -> str:
    parts = []
    for what in ("stream", "artifact", "object"):
        count = plan[what + "s"]
        parts.append(f"{count} {what}{'' if count == 1 else 's'}")
    return ", ".join(parts)


def _result_text(result: dict[str, Any]) -> str:
    plan = result["plan"]
    if not plan["items"]:
        return _plan_text(plan, applied=True)
    text = _plan_text(plan, applied=True)
    text += (
        f"\nreclaimed {human_bytes(result['bytes_reclaimed'])}: "
        f"{human_bytes(result['file_bytes_reclaimed'])} of files, "
        f"{human_bytes(result['db_bytes_reclaimed'])} of database"
    )
    if result["archive"]:
        text += f"\narchived to {result['archive']}"
    return text


@click.command()
@click.option("--by", type=click.Choice(GROUPINGS), help="Break stream and artifact bytes down.")
@click.option(
    "--full", is_flag=True, help="Measure every table again, even if nothing was written since."
)
@output_options
@click.pass_obj
def usage(state: State, by: str | None, full: bool, as_json: bool, nl: bool) -> None:
    """Where the store's bytes are: database tables, WAL, streams, objects, backups.

    On a terminal the sizes are drawn as bars; --json gives the numbers. Measuring the
    tables reads every page of the database; the result is kept and shown again while
    nothing is written (--full measures again).

    \b
    Examples:
      agentkeep usage
      agentkeep usage --by session          # which sessions hold the most output
      agentkeep usage --by day --json
    """
    from agentkeep.ops.retention import usage as store_usage

    fmt = fmt_of(as_json, nl)
    with state.open(read_only=True) as store:
        report = store_usage(store, by=by, full=full).to_dict()
    if fmt != "table":
        print_object(report, fmt)
        return
    click.echo(render_usage(report, bars=sys.stdout.isatty()))


def render_usage(report: dict[str, Any], *, bars: bool) -> str:
    """The human view of a usage report: areas, tables, then groups (bars on a tty)."""
    sections = [("where", [(a["name"], a["bytes"]) for a in report["areas"]])]
    if report["tables"]:
        sections.append(("database tables", list(report["tables"].items())))
    if report["by"]:
        groups = [(g["key"], g["bytes"]) for g in report["groups"]]
        sections.append((f"streams and artifacts by {report['by']}", groups))
    out = [f"total {human_bytes(report['total_bytes'])}"]
    for title, rows in sections:
        out += ["", title, _chart(rows, bars=bars) if rows else "  (none)"]
    return "\n".join(out)


def _chart(rows: list[tuple[str, int]], *, bars: bool) -> str:
    width = max(len(name) for name, _ in rows)
    peak = max((size for _, size in rows), default=0) or 1
    lines = []
    for name, size in rows:
        line = f"  {name.ljust(width)}  {human_bytes(size).rjust(10)}"
        if bars:
            line += "  " + bar(size / peak)
        lines.append(line.rstrip())
    return "\n".join(lines)


def _pin_command(pinned: bool) -> click.Command:
    verb = "pin" if pinned else "unpin"

    @click.command(verb)
    @click.argument("entity", metavar="session|artifact", type=click.Choice(sorted(PIN_ENTITIES)))
    @click.argument("ident", metavar="ID", type=int)
    @output_options
    @click.pass_obj
    def command(state: State, entity: str, ident: int, as_json: bool, nl: bool) -> None:
        from agentkeep.ops.retention import pin as set_pin

        fmt = fmt_of(as_json, nl)
        with state.open() as store:
            result = set_pin(store, entity, ident, pinned)
        if fmt != "table":
            data = {"entity": entity, "id": ident, "pinned": pinned}
            click.echo(dumps({"schema_version": 1, "outcome": result.outcome, "pin": data}))
        elif result.outcome == "unchanged":
            click.echo(f"unchanged: {entity} {ident} was already {verb}ned")
        else:
            click.echo(f"updated: {entity} {ident} {verb}ned")

    command.help = (
        "Pin a session or an artifact: gc never deletes it (a pinned session keeps its "
        "streams and attached artifacts)."
        if pinned
        else "Unpin a session or an artifact, so retention policies apply to it again."
    ) + (f"\n\n\b\nExamples:\n  agentkeep {verb} session 12\n  agentkeep {verb} artifact 7 --json")
    return command


pin = _pin_command(True)
unpin = _pin_command(False)
