"""Stats: sessions, tool calls, failures, tokens and durations, grouped."""

from __future__ import annotations

from agentkeep._core import StoreBase


class StatsOps(StoreBase):
    pass
