"""Placeholder: being written."""

import click


@click.command()
def gc() -> None:
    """Not yet implemented.

    Example: (placeholder)
    """
    raise click.UsageError("not yet implemented")


@click.command()
def usage() -> None:
    """Not yet implemented.

    Example: (placeholder)
    """
    raise click.UsageError("not yet implemented")


@click.command()
def pin() -> None:
    """Not yet implemented.

    Example: (placeholder)
    """
    raise click.UsageError("not yet implemented")


@click.command()
def unpin() -> None:
    """Not yet implemented.

    Example: (placeholder)
    """
    raise click.UsageError("not yet implemented")
