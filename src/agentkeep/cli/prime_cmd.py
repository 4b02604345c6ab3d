"""`agentkeep prime` (placeholder until built)."""

from __future__ import annotations

import click


@click.command("prime")
def prime() -> None:
    """Not built yet.

    \b
    Examples:
      agentkeep prime --help
    """
