"""`agentkeep search` (placeholder until built)."""

from __future__ import annotations

import click


@click.command("search")
def search() -> None:
    """Not built yet.

    \b
    Examples:
      agentkeep search --help
    """
