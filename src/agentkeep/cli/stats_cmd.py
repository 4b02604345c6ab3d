"""`agentkeep stats` (placeholder until built)."""

from __future__ import annotations

import click


@click.command("stats")
def stats() -> None:
    """Not built yet.

    \b
    Examples:
      agentkeep stats --help
    """
