"""TODO."""

from __future__ import annotations

from agentkeep.server.api_input import Endpoint

ENDPOINTS: list[Endpoint] = []
