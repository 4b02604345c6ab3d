"""The ``agentkeep`` command line: thin adapters over the library.

The click group, the root options and the error rendering are in :mod:`agentkeep.cli.main`
(``agentkeep.cli.cli``, ``agentkeep.cli.run``, ``agentkeep.cli.State`` … resolve there on
first use), so that :mod:`agentkeep.cli.frontdoor` and :mod:`agentkeep.cli.output` can be
imported without click: ``agentkeep status`` and ``agentkeep --help`` run without it.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs start-up time

if TYPE_CHECKING:
    from typing import Any

    from agentkeep.cli.main import COMMANDS as COMMANDS
    from agentkeep.cli.main import LazyGroup as LazyGroup
    from agentkeep.cli.main import State as State
    from agentkeep.cli.main import cli as cli
    from agentkeep.cli.main import failure_exit as failure_exit
    from agentkeep.cli.main import run as run
    from agentkeep.cli.main import warn_about_config as warn_about_config
    from agentkeep.errors import WITHHELD as WITHHELD


def __getattr__(name: str) -> Any:
    import importlib  # not `from agentkeep.cli import main`: that asks this __getattr__

    main = importlib.import_module("agentkeep.cli.main")
    try:
        return getattr(main, name)
    except AttributeError:
        raise AttributeError(f"module 'agentkeep.cli' has no attribute {name!r}") from None
