"""agentkeep: the durable, local-first state store for coding-agent work.

>>> import agentkeep
>>> with agentkeep.open() as store:             # finds .agentkeep/ like git finds .git
...     task = store.add_task("Fix the flaky test", priority=1).item
...     store.claim_task(task.id, "agent-7")
"""

from agentkeep._version import __version__
from agentkeep.errors import (
    AgentkeepError,
    Busy,
    Conflict,
    Corrupt,
    InvalidInput,
    NotFound,
    ReadOnly,
    RedactionFailed,
    SchemaTooNew,
    StorageError,
    StorageFull,
    StoreNotFound,
    UsedAcrossFork,
)
from agentkeep.models import (
    Agent,
    Event,
    Integration,
    Metric,
    Note,
    Project,
    Redaction,
    Session,
    Task,
    Worktree,
    Written,
)
from agentkeep.store import Store, init_store, open

__all__ = [
    "Agent",
    "AgentkeepError",
    "Busy",
    "Conflict",
    "Corrupt",
    "Event",
    "Integration",
    "InvalidInput",
    "Metric",
    "NotFound",
    "Note",
    "Project",
    "ReadOnly",
    "Redaction",
    "RedactionFailed",
    "SchemaTooNew",
    "Session",
    "StorageError",
    "StorageFull",
    "Store",
    "StoreNotFound",
    "Task",
    "UsedAcrossFork",
    "Worktree",
    "Written",
    "__version__",
    "init_store",
    "open",
]
