"""Transcripts: a session's conversation, read the same way whatever captured it."""

from __future__ import annotations

from agentkeep._core import StoreBase


class TranscriptOps(StoreBase):
    pass
