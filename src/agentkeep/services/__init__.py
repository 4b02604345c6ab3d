"""The nouns of a store, one service per module, composed by :class:`agentkeep.store.Store`
(``store.tasks``, ``store.sessions``, …). Services are written in portable SQL and call the
backend (``backends/``) for the rest; see :mod:`agentkeep.services.base`."""
