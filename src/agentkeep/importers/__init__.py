"""Importers for the agent tools' own histories (Claude Code, Codex, OpenCode, JSONL)."""

from __future__ import annotations

from agentkeep._core import StoreBase


class ImportOps(StoreBase):
    pass
