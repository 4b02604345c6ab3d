"""Operations over a whole store: retention (``gc``, ``usage``, pins), ``doctor``,
``backup`` and ``restore``, bundle ``export`` and ``import``, and ``run``.

They use only the store's public API: the services (``store.seal_stream``,
``store.end_session``, …), write transactions (``store.transaction()``) and the backend's
maintenance API (``store.maintenance``: checks, sizes, read snapshots, the writer lock,
online backups). Their own queries are portable SQL read inside a maintenance snapshot;
nothing here touches the store's connection or a SQLite construct.

Bundles are split by concept: :mod:`~agentkeep.ops.bundle_format` (formats, the tables a
bundle carries, file helpers), :mod:`~agentkeep.ops.backup`, :mod:`~agentkeep.ops.restore`,
:mod:`~agentkeep.ops.bundle_export` and :mod:`~agentkeep.ops.bundle_import`.
"""
