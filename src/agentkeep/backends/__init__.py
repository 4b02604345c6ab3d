"""Storage backends, behind the protocols in :mod:`agentkeep.backends.base`.

Only SQLite exists today (:mod:`agentkeep.backends.sqlite`); every SQLite construct
(PRAGMAs, FTS5, ``json_each``, ``data_version`` polling, the hook's fast path) lives under
that package, and ``tests/test_layers.py`` keeps it there.
"""
