"""Console entry point. Kept tiny: the CLI framework is imported only for CLI commands.

``agentkeep hook`` is routed to :mod:`agentkeep.hook` before anything else is imported: it
runs on every tool call of every agent and must stay on the standard library.
``agentkeep prime --hook-json`` (a SessionStart hook) skips click too, and so do
``agentkeep --help`` and ``agentkeep status`` (:mod:`agentkeep.cli.frontdoor`).
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if args[:1] == ["hook"]:
        from agentkeep.hook import main as hook_main

        return hook_main(args[1:])
    if args[:1] == ["prime"] and "--hook-json" in args and "--help" not in args:
        # A SessionStart hook too: no click (an unknown flag must not exit 2), always 0.
        from agentkeep.services.prime import hook_json_main

        return hook_json_main(args[1:])
    from agentkeep.cli.frontdoor import serve

    code = serve(args)
    if code is not None:
        return code
    from agentkeep.cli.main import run

    return run(args)


if __name__ == "__main__":
    sys.exit(main())
