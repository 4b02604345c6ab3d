"""`agentkeep import` (placeholder until built)."""

from __future__ import annotations

import click


@click.command("import")
def import_() -> None:
    """Not built yet.

    \b
    Examples:
      agentkeep import --help
    """
