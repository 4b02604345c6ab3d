"""Console entry point. Kept tiny: the CLI framework is imported only for CLI commands.

``agentkeep hook`` is routed to :mod:`agentkeep.hook` before anything else is imported: it
runs on every tool call of every agent and must stay on the standard library.
``agentkeep prime --hook-json`` (a SessionStart hook) skips click too, and so does the
top-level ``agentkeep --help`` (or bare ``agentkeep``): its text is click's own rendering,
generated into :mod:`agentkeep._cli_help` by scripts/gen_docs.py (checked for drift).
"""

from __future__ import annotations

import os
import sys


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if args[:1] == ["hook"]:
        from agentkeep.hook import main as hook_main

        return hook_main(args[1:])
    if args[:1] == ["prime"] and "--hook-json" in args and "--help" not in args:
        # A SessionStart hook too: no click (an unknown flag must not exit 2), always 0.
        from agentkeep.services.prime import hook_json_main

        return hook_json_main(args[1:])
    if args in ([], ["--help"], ["-h"]):
        text = _top_level_help()
        if text is not None:
            return _print(text)
    from agentkeep.cli import run

    return run(args)


def _top_level_help() -> str | None:
    """``agentkeep --help`` as click would print it here, or None when click must render
    it: a width not generated, shell completion asked for, stdout not UTF-8."""
    if "_AGENTKEEP_COMPLETE" in os.environ:
        return None
    encoding = getattr(sys.stdout, "encoding", None) or ""
    if encoding.lower().replace("-", "").replace("_", "") != "utf8":
        return None
    from agentkeep._cli_help import HELP

    return HELP.get(_help_width())


def _help_width() -> int:
    """The width click's HelpFormatter uses: ``max(min(columns, 100) - 2, 50)``, with the
    columns ``shutil.get_terminal_size()`` gives (COLUMNS, else the terminal on
    ``sys.__stdout__``, else 80), without importing shutil."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns or 80
        except (AttributeError, ValueError, OSError):
            columns = 80
    return max(min(columns, 100) - 2, 50)


def _print(text: str) -> int:
    """Write ``text`` and a newline to stdout as ``click.echo`` does; a reader that went
    away (``agentkeep --help | head -1``) is no error, as in :func:`agentkeep.cli.run`."""
    try:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    return 0


if __name__ == "__main__":
    sys.exit(main())
