"""How every command prints: a table for people, ``--json`` / ``--nl`` for programs.

The JSON contract (docs/json-output.md): lists are arrays (``[]`` when empty) of the
records' ``to_dict()``; single objects carry ``schema_version``; mutations report
``outcome`` (created / updated / unchanged / already_exists). Nothing but the payload goes
to stdout; errors go to stderr (as JSON under ``--json``/``--nl``).
"""

from __future__ import annotations

import functools
import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:  # imported where used, so the front door (cli/frontdoor.py) renders
    import click  # without it

SCHEMA_VERSION = 1
F = TypeVar("F", bound=Callable[..., Any])

# Control characters in stored text (C0 but tab and newline, DEL, C1): on a terminal they
# would run as escape sequences — colours, but also OSC titles and hyperlinks
# (ESC ] 8 ;; … BEL), cursor moves that hide text, or a fake prompt.
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x20:
        return chr(0x2400 + code)  # the Unicode control picture: ESC shows as ␛
    return "␡" if code == 0x7F else f"<{code:02x}>"


_SGR = re.compile(r"\x1b\[[0-9;:]*m")


def neutralize(text: str) -> str:
    """``text`` safe to print on a terminal: every control character (but tab and
    newline) shown as a visible symbol, so no escape sequence in stored text runs.
    For human output only; ``--json`` keeps the text as stored."""
    return _CONTROLS.sub(_visible, text)


def neutralize_output(text: str, *, colours: bool) -> str:
    """A line of recorded command output for people: colour sequences (SGR, ``ESC [ … m``,
    harmless) kept when ``colours`` (a terminal that wants them), else removed; a CRLF
    line end dropped; every other control character shown as in :func:`neutralize`, so
    titles, hyperlinks, clipboard writes (OSC), cursor moves and erasures never run."""
    if text.endswith("\r"):
        text = text[:-1]
    if not colours:
        return neutralize(_SGR.sub("", text))
    out, position = [], 0
    for match in _SGR.finditer(text):
        out += [neutralize(text[position : match.start()]), match.group()]
        position = match.end()
    out.append(neutralize(text[position:]))
    return "".join(out)


def use_color(stream: Any = None) -> bool:
    """Styles (bold, colours) only on a terminal, and not when NO_COLOR is set
    (no-color.org) or TERM is dumb."""
    stream = stream if stream is not None else sys.stdout
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    return _isatty(stream)


def output_options(func: F) -> F:
    """Add ``--json`` and ``--nl`` to a command. Using both is a usage error, raised before
    the command runs (so a mutation is never committed and then reported as an error)."""
    import click

    @functools.wraps(func)
    def checked(*args: Any, **kwargs: Any) -> Any:
        fmt_of(kwargs.get("as_json", False), kwargs.get("nl", False))
        return func(*args, **kwargs)

    command = click.option("--nl", "nl", is_flag=True, help="One JSON object per line.")(checked)
    command = click.option("--json", "as_json", is_flag=True, help="JSON output (see docs).")(
        command
    )
    return command  # type: ignore[return-value]


def limit_option(default: int) -> Callable[[F], F]:
    """``-n/--limit``, the same on every list command: at most N items (0: all). A list
    cut by it says so on stderr when stderr is a terminal (:func:`cut`)."""
    import click

    return click.option(
        "-n",
        "--limit",
        type=click.IntRange(min=0),
        default=default,
        show_default=True,
        help="At most N (0: all).",
    )


def _since(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    from agentkeep.timeutil import parse_since

    return parse_since(value)


def since_option(what: str) -> Callable[[F], F]:
    """``--since``, the same on every command: a duration ago (30m, 2h, 7d, 1w) or an ISO
    date/time (UTC unless it says otherwise); the command receives an ISO UTC time."""
    import click

    return click.option(
        "--since",
        callback=_since,
        metavar="WHEN",
        help=f"Only {what} since 30m / 2h / 7d ago or an ISO date/time.",
    )


def fetch(limit: int) -> int:
    """How many to ask the store for, to know whether ``limit`` cut the list."""
    return limit + 1 if limit else 0


def cut(items: Sequence[Any], limit: int) -> list[Any]:
    """The first ``limit`` of ``items`` (fetched with :func:`fetch`). When more matched,
    a note on stderr says so — if stderr is a terminal: a person reading a pipeline
    (`… --json | jq`) learns the list is partial, while a script's captured stderr is
    left alone and its JSON stays the bare array."""
    import click

    kept = list(items)
    if limit and len(kept) > limit:
        kept = kept[:limit]
        if _isatty(sys.stderr):
            click.echo(
                f"note: showing {limit}; more match (-n 0 shows all, -n N shows N)", err=True
            )
    return kept


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def fmt_of(as_json: bool, nl: bool) -> str:
    import click

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
    import click

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
    import click

    click.echo(render_object(item, fmt, human=human))


def render_object(
    item: Any, fmt: str, *, human: Callable[[dict[str, Any]], str] | None = None
) -> str:
    """What :func:`print_object` prints (without its newline)."""
    data = _dict(item)
    if fmt in ("json", "nl"):
        return dumps({"schema_version": SCHEMA_VERSION, **data})
    return neutralize(human(data)) if human else render_fields(data)


def print_written(noun: str, item: Any, outcome: str, fmt: str) -> None:
    import click

    data = _dict(item)
    if fmt in ("json", "nl"):
        click.echo(dumps({"schema_version": SCHEMA_VERSION, "outcome": outcome, noun: data}))
        return
    ident = data.get("id", data.get("seq", ""))
    title = data.get("title") or data.get("name") or data.get("kind") or ""
    click.echo(neutralize(f"{outcome.replace('_', ' ')}: {noun} {ident} {title}".rstrip()))


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | dict):
        if not value:
            return ""
        value = dumps(value)
    text = neutralize(str(value).replace("\n", " "))
    return text if len(text) <= 60 else text[:59] + "…"


_STAMP = re.compile(r"^(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d)(?:\.\d+)?Z$")


def table_time(value: Any) -> str:
    """The one timestamp format of tables: ``2026-11-22 10:04:05Z`` (UTC, to the second),
    from the stored ``2026-11-22T10:04:05.123Z``; anything else is shown as it is."""
    if not isinstance(value, str):
        return "" if value is None else str(value)
    match = _STAMP.match(value)
    return f"{match.group(1)} {match.group(2)}Z" if match else value


def _is_time(column: str) -> bool:
    return column == "at" or column.endswith("_at")


def render_table(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    import click

    cells = [
        [_cell(table_time(row.get(c)) if _is_time(c) else row.get(c)) for c in columns]
        for row in rows
    ]
    widths = [
        max(len(column), *(len(line[i]) for line in cells)) for i, column in enumerate(columns)
    ]
    bold = use_color()
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
        text = neutralize(str(value))
        if "\n" in text:
            text = "\n".join(
                line if i == 0 else " " * (width + 2) + line
                for i, line in enumerate(text.splitlines())
            )
        lines.append(f"{neutralize(str(key)).ljust(width)}  {text}")
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
