"""A table whose text a backend keeps a full-text index of (the search service declares
them; :class:`agentkeep.backends.base.Search` takes them). Apart from
:mod:`agentkeep.backends.base`, which every command imports, so that building the dataclass
is left to the commands that search; ``agentkeep.backends.base.Indexed`` still names it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Indexed:
    """A table whose text the backend keeps a full-text index of. Which columns are
    indexed, and their weights, belong to the schema (``docs/schema.md``)."""

    table: str
    at: str  # the time column a ``since`` filter compares with
    has_session: bool  # rows carry ``session_id`` (a ``session`` filter applies)
