"""Placeholder: being written."""

import click


@click.command()
def run() -> None:
    """Not yet implemented.

    Example: (placeholder)
    """
    raise click.UsageError("not yet implemented")


@click.command()
def logs() -> None:
    """Not yet implemented.

    Example: (placeholder)
    """
    raise click.UsageError("not yet implemented")
