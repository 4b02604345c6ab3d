"""Placeholder: being written."""

import click


@click.command()
def artifact() -> None:
    """Not yet implemented.

    Example: (placeholder)
    """
    raise click.UsageError("not yet implemented")
