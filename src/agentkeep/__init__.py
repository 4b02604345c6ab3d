"""agentkeep: the durable, local-first state store for coding-agent work.

>>> import agentkeep
>>> with agentkeep.open() as store:             # finds .agentkeep/ like git finds .git
...     task = store.add_task("Fix the flaky test", priority=1).item
...     store.claim_task(task.id, "agent-7")
"""

from __future__ import annotations

from agentkeep._version import __version__
from agentkeep.errors import (
    AgentkeepError,
    Busy,
    CaptureError,
    Conflict,
    Corrupt,
    HookError,
    InvalidInput,
    NotFound,
    ReadOnly,
    RedactionFailed,
    RollbackDetected,
    SchemaTooNew,
    StaleWrite,
    StorageError,
    StorageFull,
    StoreNotFound,
    UsedAcrossFork,
)

# The nouns and the store are imported on first use (PEP 562), so `import agentkeep` and
# commands that do not open a store stay cheap.
_LAZY = {
    **dict.fromkeys(
        (
            "Agent",
            "Artifact",
            "Doc",
            "DocLock",
            "DocVersion",
            "Event",
            "Integration",
            "Metric",
            "Note",
            "Project",
            "Redaction",
            "Session",
            "Stream",
            "Task",
            "Worktree",
            "Written",
        ),
        "agentkeep.models",
    ),
    **dict.fromkeys(("Store", "init_store", "open"), "agentkeep.store"),
    **dict.fromkeys(("RunResult", "run_command"), "agentkeep.ops.runner"),
    "ImportResult": "agentkeep.importers",
    "Prime": "agentkeep.services.prime",
    "SearchHit": "agentkeep.services.search",
    "StatsRow": "agentkeep.services.stats",
    "Transcript": "agentkeep.services.transcripts",
}


TYPE_CHECKING = False  # not typing.TYPE_CHECKING: `import agentkeep` must stay cheap (hooks)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'agentkeep' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:
    from typing import Any

    from agentkeep.importers import ImportResult
    from agentkeep.models import (
        Agent,
        Artifact,
        Doc,
        DocLock,
        DocVersion,
        Event,
        Integration,
        Metric,
        Note,
        Project,
        Redaction,
        Session,
        Stream,
        Task,
        Worktree,
        Written,
    )
    from agentkeep.ops.runner import RunResult, run_command
    from agentkeep.services.prime import Prime
    from agentkeep.services.search import SearchHit
    from agentkeep.services.stats import StatsRow
    from agentkeep.services.transcripts import Transcript
    from agentkeep.store import Store, init_store, open

__all__ = [
    "Agent",
    "AgentkeepError",
    "Artifact",
    "Busy",
    "CaptureError",
    "Conflict",
    "Corrupt",
    "Doc",
    "DocLock",
    "DocVersion",
    "Event",
    "HookError",
    "ImportResult",
    "Integration",
    "InvalidInput",
    "Metric",
    "NotFound",
    "Note",
    "Prime",
    "Project",
    "ReadOnly",
    "Redaction",
    "RedactionFailed",
    "RollbackDetected",
    "RunResult",
    "SchemaTooNew",
    "SearchHit",
    "Session",
    "StaleWrite",
    "StatsRow",
    "StorageError",
    "StorageFull",
    "Store",
    "StoreNotFound",
    "Stream",
    "Task",
    "Transcript",
    "UsedAcrossFork",
    "Worktree",
    "Written",
    "__version__",
    "init_store",
    "open",
    "run_command",
]
