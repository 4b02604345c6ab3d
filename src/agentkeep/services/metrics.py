"""Metrics: time series observations (name, value, labels, time)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from agentkeep._core import Json, limit_clause
from agentkeep.errors import InvalidInput
from agentkeep.models import Metric
from agentkeep.services.base import Service


class MetricService(Service):
    def record_metric(
        self,
        name: str,
        value: float,
        *,
        labels: Mapping[str, str] | None = None,
        at: str | None = None,
        session_id: int | None = None,
        agent_id: int | None = None,
    ) -> Metric:
        if not name or not name.strip():
            raise InvalidInput("a metric needs a name")
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise InvalidInput(f"metric {name}: value must be a finite number, not {value!r}")
        clean_labels = {str(k): str(v) for k, v in (labels or {}).items()}
        with self.transaction() as tx:
            self._require(session_id=session_id, agent_id=agent_id)
            metric_id = tx.insert(
                "metrics",
                {
                    "name": name,
                    "value": float(value),
                    "labels": Json(clean_labels),
                    "at": at or tx.now,
                    "session_id": session_id,
                    "agent_id": agent_id,
                },
            )
            metric: Metric = Metric.from_row(tx.row("metrics", metric_id))
            tx.emit("metric", metric_id, "metric.recorded", metric.to_dict())
            return metric

    def list_metrics(
        self,
        *,
        name: str | None = None,
        since: str | None = None,
        limit: int | None = None,
        before: tuple[str, int] | None = None,
    ) -> list[Metric]:
        """Observations, newest first (``at, id``). ``before``: only those after this
        ``(at, id)`` in that order (keyset paging)."""
        where: list[str] = []
        params: list[Any] = []
        if before is not None:
            where.append("(at < ? OR (at = ? AND id < ?))")
            params.extend([before[0], before[0], before[1]])
        if name is not None:
            where.append("name = ?")
            params.append(name)
        if since is not None:
            where.append("at >= ?")
            params.append(since)
        sql = "SELECT * FROM metrics"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY at DESC, id DESC" + limit_clause(limit)
        return [Metric.from_row(row) for row in self._rows(sql, params)]
