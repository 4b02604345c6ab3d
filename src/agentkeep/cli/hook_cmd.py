"""`agentkeep hook` (placeholder until built)."""

from __future__ import annotations

import click


@click.command("hook")
def hook() -> None:
    """Not built yet.

    \b
    Examples:
      agentkeep hook --help
    """
