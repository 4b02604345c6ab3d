"""Timestamps as agentkeep stores them: ISO 8601 UTC text with milliseconds and a Z
(``2026-11-22T10:04:05.123Z``) — sortable as text, readable in SQL."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_AGO = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def iso_utc(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def utc_now() -> str:
    return iso_utc(datetime.now(UTC))


def file_stamp() -> str:
    """The current UTC time for file names (backups): no colons, microseconds."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")


def parse_since(value: str | None) -> str | None:
    """'2h', '30m', '7d' (ago) or an ISO date/time -> an ISO UTC timestamp; the one
    meaning of ``--since`` on every command."""
    if value is None:
        return None
    from agentkeep.errors import InvalidInput

    match = _AGO.match(value.strip())
    if match:
        try:
            moment = datetime.now(UTC) - timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
        except OverflowError as exc:
            raise InvalidInput(f"--since {value!r} reaches before the year 1") from exc
    else:
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as exc:
            raise InvalidInput(
                f"--since {value!r} is neither a duration nor a date",
                hint="use e.g. 30m, 2h, 7d, 2026-11-01 or 2026-11-01T10:00:00Z",
            ) from exc
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
    return iso_utc(moment)
