"""Priming: what a new agent session should know about this project."""

from __future__ import annotations

from agentkeep._core import StoreBase


class PrimeOps(StoreBase):
    pass
