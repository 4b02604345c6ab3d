"""How every command prints: a table for people, ``--json`` / ``--nl`` for programs.

The JSON contract (docs/json-output.md): lists are arrays (``[]`` when empty) of the
records' ``to_dict()``; single objects carry ``schema_version``; mutations report
``outcome`` (created / updated / unchanged / already_exists). Nothing but the payload goes
to stdout; errors go to stderr (as JSON under ``--json``/``--nl``).
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import click

SCHEMA_VERSION = 1
F = TypeVar("F", bound=Callable[..., Any])


def output_options(func: F) -> F:
    """Add ``--json`` and ``--nl`` to a command. Using both is a usage error, raised before
    the command runs (so a mutation is never committed and then reported as an error)."""

    @functools.wraps(func)
    def checked(*args: Any, **kwargs: Any) -> Any:
        fmt_of(kwargs.get("as_json", False), kwargs.get("nl", False))
        return func(*args, **kwargs)

    command = click.option("--nl", "nl", is_flag=True, help="One JSON object per line.")(checked)
    command = click.option("--json", "as_json", is_flag=True, help="JSON output (see docs).")(
        command
    )
    return command  # type: ignore[return-value]


def fmt_of(as_json: bool, nl: bool) -> str:
    if as_json and nl:
        raise click.UsageError("--json and --nl cannot be used together")
    return "json" if as_json else "nl" if nl else "table"


def _dict(item: Any) -> dict[str, Any]:
    return item.to_dict() if hasattr(item, "to_dict") else dict(item)


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def print_list(
    items: Iterable[Any], fmt: str, columns: Sequence[str], *, empty: str = "nothing to show"
) -> None:
    rows = [_dict(item) for item in items]
    if fmt == "json":
        click.echo(dumps(rows))
    elif fmt == "nl":
        for row in rows:
            click.echo(dumps(row))
    elif not rows:
        click.echo(empty, err=True)
    else:
        click.echo(render_table(rows, columns))


def print_object(
    item: Any, fmt: str, *, human: Callable[[dict[str, Any]], str] | None = None
) -> None:
    data = _dict(item)
    if fmt in ("json", "nl"):
        click.echo(dumps({"schema_version": SCHEMA_VERSION, **data}))
    else:
        click.echo(human(data) if human else render_fields(data))


def print_written(noun: str, item: Any, outcome: str, fmt: str) -> None:
    data = _dict(item)
    if fmt in ("json", "nl"):
        click.echo(dumps({"schema_version": SCHEMA_VERSION, "outcome": outcome, noun: data}))
        return
    ident = data.get("id", data.get("seq", ""))
    title = data.get("title") or data.get("name") or data.get("kind") or ""
    click.echo(f"{outcome.replace('_', ' ')}: {noun} {ident} {title}".rstrip())


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | dict):
        if not value:
            return ""
        value = dumps(value)
    text = str(value).replace("\n", " ")
    return text if len(text) <= 60 else text[:59] + "…"


def render_table(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    cells = [[_cell(row.get(column)) for column in columns] for row in rows]
    widths = [
        max(len(column), *(len(line[i]) for line in cells)) for i, column in enumerate(columns)
    ]
    bold = sys.stdout.isatty()
    header = "  ".join(column.upper().ljust(w) for column, w in zip(columns, widths, strict=True))
    header = header.rstrip()
    lines = [click.style(header, bold=True) if bold else header]
    for line in cells:
        lines.append("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())
    return "\n".join(lines)


def render_fields(data: dict[str, Any]) -> str:
    width = max((len(k) for k in data), default=0)
    lines = []
    for key, value in data.items():
        if isinstance(value, dict | list):
            value = dumps(value)
        elif value is None:
            value = "-"
        text = str(value)
        if "\n" in text:
            text = "\n".join(
                line if i == 0 else " " * (width + 2) + line
                for i, line in enumerate(text.splitlines())
            )
        lines.append(f"{key.ljust(width)}  {text}")
    return "\n".join(lines)


def text_or_stdin(value: str | None, what: str) -> str | None:
    """``-`` means: read the text from stdin (strict UTF-8)."""
    if value != "-":
        return value
    from agentkeep.errors import InvalidInput

    data = sys.stdin.buffer.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(
            f"{what} read from stdin is not valid UTF-8 (byte {exc.start})",
            hint="convert the input to UTF-8 first (for example with iconv)",
        ) from exc


def json_arg(value: str | None, what: str) -> Any:
    """Parse a JSON command-line argument (``-`` reads stdin)."""
    from agentkeep.errors import InvalidInput

    text = text_or_stdin(value, what)
    if text is None:
        return None

    def refuse(constant: str) -> None:
        raise InvalidInput(f"{what}: {constant} is not valid JSON")

    try:
        return json.loads(text, parse_constant=refuse)
    except json.JSONDecodeError as exc:
        raise InvalidInput(
            f"{what} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from exc
    except RecursionError as exc:
        raise InvalidInput(f"{what} is nested too deeply") from exc


BAR_WIDTH = 32
_EIGHTHS = " ▏▎▍▌▋▊▉█"


def bar(fraction: float, width: int = BAR_WIDTH) -> str:
    """A horizontal bar of ``fraction`` (0..1) of ``width`` cells, in eighths of a cell."""
    eighths = round(max(0.0, min(1.0, fraction)) * width * 8)
    full, rest = divmod(eighths, 8)
    return "█" * full + (_EIGHTHS[rest] if rest else "")
