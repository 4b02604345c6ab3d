"""`agentkeep setup` (placeholder until built)."""

from __future__ import annotations

import click


@click.command("setup")
def setup() -> None:
    """Not built yet.

    \b
    Examples:
      agentkeep setup --help
    """
