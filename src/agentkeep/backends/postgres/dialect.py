"""PostgreSQL's spelling of the SQL fragments in :class:`agentkeep.backends.base.Dialect`."""

from __future__ import annotations


class PostgresDialect:
    name = "postgres"

    # GREATEST and LEAST ignore NULLs; the portable contract (SQLite's scalar max/min) is
    # NULL when any argument is. A function rather than a CASE: each expression (and the
    # `?` placeholders in it) must appear exactly once. (schema/0001_functions.sql)

    def greatest(self, *exprs: str) -> str:
        return f"agentkeep_max({', '.join(exprs)})"

    def least(self, *exprs: str) -> str:
        return f"agentkeep_min({', '.join(exprs)})"

    def same(self, left: str, right: str) -> str:
        return f"({left}) IS NOT DISTINCT FROM ({right})"

    def json_get(self, expr: str, key: str) -> str:
        path = ",".join(part.replace('"', "") for part in key.split("."))
        # Text (NULL for a missing key or a value that is not JSON).
        return f"agentkeep_json_get(({expr}), '{{{path}}}')"

    def is_json(self, expr: str) -> str:
        return f"agentkeep_is_json({expr})"

    def json_array_length(self, expr: str, key: str) -> str:
        return f"agentkeep_json_array_length(({expr}), '{key}')"

    def json_array_has(self, expr: str, value: str) -> str:
        # jsonb_exists, not the `?` operator: `?` is the portable SQL's placeholder.
        return f"jsonb_exists(({expr})::jsonb, {value})"


DIALECT = PostgresDialect()
