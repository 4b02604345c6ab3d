"""`agentkeep stats` — a thin adapter over agentkeep.services.stats."""

from __future__ import annotations

import re
import sys
from typing import Any

import click

from agentkeep.cli import State
from agentkeep.cli.output import bar, fmt_of, output_options, print_list, render_table, since_option
from agentkeep.services.stats import GROUPINGS

_STYLE = re.compile(r"\x1b\[[0-9;]*m")
CHARTS = ("tokens", "sessions", "tool_calls", "failures", "duration")
COLUMNS = [
    "group",
    "sessions",
    "subagents",
    "tool_calls",
    "failures",
    "tokens_in",
    "tokens_out",
    "cache_read",
    "cache_write",
    "duration",
    "median",
]


@click.command()
@click.option("--by", type=click.Choice(GROUPINGS), default="day", show_default=True)
@since_option("sessions started")
@click.option(
    "--chart",
    type=click.Choice(CHARTS),
    default="tokens",
    show_default=True,
    help="What the bars show on a terminal (tokens: all four kinds).",
)
@output_options
@click.pass_obj
def stats(state: State, by: str, since: str | None, chart: str, as_json: bool, nl: bool) -> None:
    """Sessions, tool calls, failures, tokens and durations per day, agent, model or task.

    Counted from the sessions table (kept by hooks and importers). Subagents are not
    sessions of their own: they are counted apart and grouped with the session that
    spawned them; by model, tokens go to the model of each response. On a terminal each
    group gets a bar (--chart picks the measure); --json gives the numbers.

    \b
    Examples:
      agentkeep stats                        # per day
      agentkeep stats --by model --since 30d
      agentkeep stats --by task --chart failures
      agentkeep stats --by agent --json
    """
    fmt = fmt_of(as_json, nl)
    with state.open(read_only=True) as store:
        rows = store.stats(by=by, since=since)
    if fmt != "table" or not rows:
        print_list(rows, fmt, COLUMNS, empty="no sessions")
        return
    click.echo(render_stats([row.to_dict() for row in rows], chart=chart, bars=sys.stdout.isatty()))


def _measure(row: dict[str, Any], chart: str) -> int:
    if chart == "tokens":
        return int(
            row["input_tokens"]
            + row["output_tokens"]
            + row["cache_read_tokens"]
            + row["cache_write_tokens"]
        )
    if chart == "duration":
        return int(row["duration_ms"])
    return int(row[chart])


def render_stats(rows: list[dict[str, Any]], *, chart: str, bars: bool) -> str:
    """The human view: one line per group, a bar for ``chart`` when ``bars``, a total."""
    from agentkeep.services.transcripts import human_duration

    def label(row: dict[str, Any]) -> str:
        if row["key"] is None:
            return {"task": "(no task)", "model": "(unknown)", "agent": "(no agent)"}.get(
                row["by"], "(none)"
            )
        if row["by"] == "task":
            return f"#{row['key']} {row['title'] or ''}".strip()
        return str(row["key"])

    table = [
        {
            "group": label(row),
            "sessions": f"{row['sessions']:,}",
            "subagents": f"{row.get('subagents', 0):,}",
            "tool_calls": f"{row['tool_calls']:,}",
            "failures": f"{row['failures']:,}",
            "tokens_in": _short(row["input_tokens"]),
            "tokens_out": _short(row["output_tokens"]),
            "cache_read": _short(row["cache_read_tokens"]),
            "cache_write": _short(row["cache_write_tokens"]),
            "duration": human_duration(row["duration_ms"]) if row["duration_ms"] else "",
            "median": (
                human_duration(row["median_duration_ms"])
                if row["median_duration_ms"] is not None
                else ""
            ),
        }
        for row in rows
    ]
    lines = render_table(table, COLUMNS).splitlines()
    if bars:
        peak = max(_measure(row, chart) for row in rows) or 1
        width = max(_visible(line) for line in lines)
        lines = [lines[0] + " " * (width - _visible(lines[0])) + f"  {chart.upper()}"] + [
            line.ljust(width) + "  " + bar(_measure(row, chart) / peak)
            for line, row in zip(lines[1:], rows, strict=True)
        ]
    count = sum(row["sessions"] for row in rows)
    children = sum(row.get("subagents", 0) for row in rows)
    calls = sum(row["tool_calls"] for row in rows)
    failures = sum(row["failures"] for row in rows)
    tokens = sum(_measure(row, "tokens") for row in rows)
    lines.append(
        f"total: {count:,} session{'s' * (count != 1)}"
        + (f" (+{children:,} subagent{'s' * (children != 1)})" if children else "")
        + f", {calls:,} tool call{'s' * (calls != 1)},"
        f" {failures:,} failure{'s' * (failures != 1)}, {_short(tokens)} tokens"
    )
    return "\n".join(lines)


def _visible(line: str) -> int:
    return len(_STYLE.sub("", line))


def _short(count: int) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if count >= size:
            return f"{count / size:.1f}{unit}"
    return str(count)
