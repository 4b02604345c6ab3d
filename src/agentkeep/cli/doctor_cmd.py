"""Placeholder: being written."""

import click


@click.command()
def doctor() -> None:
    """Not yet implemented.

    Example: (placeholder)
    """
    raise click.UsageError("not yet implemented")
