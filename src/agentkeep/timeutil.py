"""Timestamps as agentkeep stores them: ISO 8601 UTC text with milliseconds and a Z
(``2026-11-22T10:04:05.123Z``) — sortable as text, readable in SQL."""

from __future__ import annotations

from datetime import UTC, datetime


def iso_utc(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def utc_now() -> str:
    return iso_utc(datetime.now(UTC))


def file_stamp() -> str:
    """The current UTC time for file names (backups): no colons, microseconds."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
