"""Placeholder: being written."""

import click


@click.command()
def backup() -> None:
    """Not yet implemented.

    Example: (placeholder)
    """
    raise click.UsageError("not yet implemented")


@click.command()
def restore() -> None:
    """Not yet implemented.

    Example: (placeholder)
    """
    raise click.UsageError("not yet implemented")


@click.command()
def export() -> None:
    """Not yet implemented.

    Example: (placeholder)
    """
    raise click.UsageError("not yet implemented")


@click.command()
def import_bundle() -> None:
    """Not yet implemented.

    Example: (placeholder)
    """
    raise click.UsageError("not yet implemented")
