"""`agentkeep hook`: the click face of :mod:`agentkeep.hook`, for --help and the docs.

The console script sends ``agentkeep hook ...`` straight to :func:`agentkeep.hook.main`
without loading click. This command serves the other ways in (``agentkeep --store DIR
hook ...``, the in-process runner): it hands its arguments to the same function
unparsed, so unknown options are ignored and the exit code is 0 either way.
"""

from __future__ import annotations

import click

from agentkeep.hook import HELP, SOURCES, main


class _Unparsed(click.Command):
    """Declares the options for --help and the docs, but leaves parsing to hook.main."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta["agentkeep.hook.argv"] = list(args)
        return []


@click.command("hook", cls=_Unparsed, help=HELP)
@click.option(
    "--source",
    type=click.Choice(SOURCES),
    help="The agent tool that sends the payload (default: claude).",
)
@click.option(
    "--chain",
    metavar="JSON",
    help="codex-notify: the previous notify command, as a JSON array, to run afterwards.",
)
@click.argument("payload", required=False)
@click.pass_context
def hook(ctx: click.Context, /, **_options: object) -> None:
    argv: list[str] = ctx.meta.get("agentkeep.hook.argv", [])
    store = getattr(ctx.obj, "store", None)
    if store is not None and not any(a == "--store" or a.startswith("--store=") for a in argv):
        argv = [f"--store={store}", *argv]
    main(argv)
