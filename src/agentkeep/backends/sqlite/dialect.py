"""SQLite's spelling of the SQL fragments in :class:`agentkeep.backends.base.Dialect`."""

from __future__ import annotations


class SQLiteDialect:
    name = "sqlite"

    def greatest(self, *exprs: str) -> str:
        return f"max({', '.join(exprs)})"  # scalar max(): NULL when any argument is NULL

    def least(self, *exprs: str) -> str:
        return f"min({', '.join(exprs)})"

    def same(self, left: str, right: str) -> str:
        return f"{left} IS {right}"  # IS NOT DISTINCT FROM needs SQLite 3.39

    def json_get(self, expr: str, key: str) -> str:
        return f"json_extract({expr}, '$.{key}')"

    def is_json(self, expr: str) -> str:
        return f"json_valid({expr})"

    def json_array_length(self, expr: str, key: str) -> str:
        return f"json_array_length({expr}, '$.\"{key}\"')"

    def json_array_has(self, expr: str, value: str) -> str:
        return f"EXISTS (SELECT 1 FROM json_each({expr}) WHERE value = {value})"


DIALECT = SQLiteDialect()
