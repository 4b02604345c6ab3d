"""The backend contract suite: what every agentkeep backend must do, run against each.

The test bodies use only the public surface (``agentkeep.open``, ``Store`` methods, the CLI)
and reach a backend's internals through :mod:`.backends` alone, so a new backend is "add an
adapter to ``BACKENDS`` and pass this suite" (litestream's pattern; DESIGN.md, Backends).
"""
