"""The base of every record the library returns: conversion from a database row and to a
JSON-ready dict. Apart from :mod:`agentkeep.models` (whose nouns, all dataclasses, cost
start-up time to build) so that a command can return a record without building them."""

from __future__ import annotations

import dataclasses
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agentkeep.backends.base import Row


class Record:
    """Mixin: conversion from a database row and to a JSON-ready dict."""

    JSON_FIELDS: tuple[str, ...] = ()

    @classmethod
    def from_row(cls, row: Row) -> Any:
        values = dict(row)
        for name in cls.JSON_FIELDS:
            if isinstance(values.get(name), str):
                values[name] = json.loads(values[name])
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in values.items() if k in names})

    def to_dict(self) -> dict[str, Any]:
        # Shallow on purpose: fields hold plain JSON values, and asdict()'s recursive copy
        # costs time and fails on deeply nested (but valid) data.
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}  # type: ignore[arg-type]
