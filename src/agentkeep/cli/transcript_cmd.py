"""`agentkeep transcript` (placeholder until built)."""

from __future__ import annotations

import click


@click.command("transcript")
def transcript() -> None:
    """Not built yet.

    \b
    Examples:
      agentkeep transcript --help
    """
