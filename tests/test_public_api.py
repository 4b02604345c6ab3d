"""The public Python surface is explicit and pinned: a name added, removed or left out of
``__all__`` fails here, not in a user's code."""

from __future__ import annotations

import importlib
import subprocess
import sys
import types

import agentkeep
from agentkeep import errors

# The whole public surface. Changing it is a deliberate act: edit this list in the same
# commit, and the changelog/docs with it.
PINNED = [
    "Agent",
    "AgentkeepError",
    "Artifact",
    "Busy",
    "CaptureError",  # the capture writer's refusals, now inside the AgentkeepError tree
    "Conflict",
    "Corrupt",
    "Event",
    "HookError",  # a hook delivery that cannot be stored, inside the tree too
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

# Module attributes that are not API: the lazy-import guard and `from __future__`.
NOT_API = {"TYPE_CHECKING", "annotations"}


def test_all_is_sorted_and_pinned() -> None:
    assert agentkeep.__all__ == sorted(agentkeep.__all__)
    assert agentkeep.__all__ == PINNED


def test_every_name_in_all_resolves_to_its_home_module() -> None:
    lazy: dict[str, str] = agentkeep._LAZY  # type: ignore[attr-defined]
    for name in agentkeep.__all__:
        value = getattr(agentkeep, name)
        if name in lazy:
            assert value is getattr(importlib.import_module(lazy[name]), name), name
        elif name != "__version__":
            assert value is getattr(errors, name), name
    exported_errors = {
        name
        for name, value in vars(errors).items()
        if isinstance(value, type) and issubclass(value, errors.AgentkeepError)
    }
    assert set(agentkeep.__all__) == set(lazy) | exported_errors | {"__version__"}


def test_no_public_attribute_outside_all() -> None:
    """After every lazy name is loaded, the module holds nothing public beyond __all__
    (submodules aside: importing them binds them as attributes)."""
    code = (
        "import agentkeep\n"
        "for name in agentkeep.__all__: getattr(agentkeep, name)\n"
        "import types\n"
        "print('\\n'.join(n for n, v in vars(agentkeep).items()\n"
        "    if not n.startswith('_') and not isinstance(v, types.ModuleType)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    public = set(done.stdout.split())
    assert public - NOT_API == set(agentkeep.__all__) - {"__version__"}
    assert isinstance(agentkeep.errors, types.ModuleType)


def test_unknown_attribute_is_an_attribute_error() -> None:
    try:
        agentkeep.not_a_name  # type: ignore[attr-defined]  # noqa: B018
    except AttributeError as exc:
        assert "not_a_name" in str(exc)
    else:
        raise AssertionError("agentkeep.not_a_name did not raise")
