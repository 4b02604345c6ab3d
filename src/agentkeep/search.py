"""Full-text search over transcript messages, notes and tasks."""

from __future__ import annotations

from agentkeep._core import StoreBase


class SearchOps(StoreBase):
    pass
