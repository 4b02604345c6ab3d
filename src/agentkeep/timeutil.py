"""Timestamps as agentkeep stores them: ISO 8601 UTC text with milliseconds and a Z
(``2026-11-22T10:04:05.123Z``) — sortable as text, readable in SQL.

Standard library only, and cheap: the hook's fast path imports it (:func:`utc_now`,
:func:`stamp`). ``datetime`` is only imported by the functions that take or make one.
"""

from __future__ import annotations

import time

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover - for type checkers only
    from datetime import datetime

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def stamp(epoch: float) -> str:
    """``epoch`` (seconds, as :func:`time.time` gives) in the store's timestamp format: the
    text :func:`iso_utc` gives for ``datetime.fromtimestamp(epoch, UTC)``."""
    whole = int(epoch)  # as datetime does: the fraction rounded to microseconds, then cut
    microseconds = whole * 1_000_000 + round((epoch - whole) * 1_000_000)
    return _text(microseconds // 1000)


def utc_now() -> str:
    """The current time in the store's timestamp format: every writer's clock, the hook's
    included."""
    return _text(time.time_ns() // 1_000_000)


_SECOND: tuple[int, str] = (-1, "")  # the last whole second formatted, and its text


def _text(milliseconds: int) -> str:
    global _SECOND
    whole, fraction = divmod(milliseconds, 1000)
    second, prefix = _SECOND  # one read: another thread may replace it meanwhile
    if second != whole:  # strftime + gmtime once a second, not on every write
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
        _SECOND = (whole, prefix)
    return f"{prefix}.{fraction:03d}Z"


def iso_utc(moment: datetime) -> str:
    from datetime import UTC

    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def file_stamp() -> str:
    """The current UTC time for file names (backups): no colons, microseconds."""
    from datetime import UTC, datetime

    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")


def parse_since(value: str | None) -> str | None:
    """'2h', '30m', '7d' (ago) or an ISO date/time -> an ISO UTC timestamp; the one
    meaning of ``--since`` on every command."""
    if value is None:
        return None
    import re
    from datetime import UTC, datetime, timedelta

    from agentkeep.errors import InvalidInput

    match = re.match(r"^(\d+)\s*([smhdw])$", value.strip())
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
