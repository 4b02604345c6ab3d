"""The public Python surface is explicit and pinned: a name added, removed or left out of
``__all__`` fails here, not in a user's code."""

from __future__ import annotations

import difflib
import importlib
import inspect
import re
import subprocess
import sys
import types
from pathlib import Path

import agentkeep
from agentkeep import errors
from agentkeep.services.base import Service

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
    "Doc",  # documents (issue 13): an indexed file, its versions, its advisory lock
    "DocLock",
    "DocVersion",
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
    "StaleWrite",  # a document write that named a version which is no longer current
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


# -- every public name, class member and signature ------------------------------------------
#
# tests/public_surface.txt holds the surface as text, one line per name: classes in
# ``__all__`` with their public members and signatures, and the services a store composes
# (``store.tasks`` …) with theirs. A change to it is a change to the public API: make it on
# purpose, then rewrite the file with ``python tests/test_public_api.py``.

SURFACE_FILE = Path(__file__).with_name("public_surface.txt")


def _signature(value: object) -> str:
    try:
        text = str(inspect.signature(value))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "(...)"
    return re.sub(r"<function [\w.<>]+ at 0x[0-9a-f]+>", "<function>", text)


def _members(label: str, cls: type, *, skip: type | None = None) -> list[str]:
    out = []
    for attr in sorted(dir(cls)):
        if attr.startswith("_") and attr not in ("__enter__", "__exit__", "__init__"):
            continue
        if skip is not None and hasattr(skip, attr):
            continue  # the plumbing every service shares, not a noun's operation
        member = inspect.getattr_static(cls, attr)
        if isinstance(member, property):
            out.append(f"{label}.{attr}: property")
        elif callable(member) or isinstance(member, (staticmethod, classmethod)):
            out.append(f"{label}.{attr}{_signature(getattr(cls, attr))}")
        else:
            out.append(f"{label}.{attr}: attribute")
    return out


def surface(store_root: Path) -> list[str]:
    out = []
    for name in agentkeep.__all__:
        value = getattr(agentkeep, name)
        if inspect.isclass(value):
            out.append(f"{name}: class")
            if not issubclass(value, BaseException):
                out.extend(_members(name, value))
        elif callable(value):
            out.append(f"{name}{_signature(value)}")
        else:
            out.append(f"{name}: value")
    agentkeep.init_store(store_root)
    with agentkeep.open(store_root) as store:
        for attr, service in _services(store).items():
            if not attr.startswith("_") and type(service).__module__.startswith(
                "agentkeep.services."
            ):
                out.append(f"store.{attr}: {type(service).__name__}")
                out.extend(_members(f"store.{attr}", type(service), skip=Service))
    return out


def _services(store: agentkeep.Store) -> dict[str, object]:
    """The services a store composes, by attribute (each is made on first use)."""
    from agentkeep.store import SERVICES

    return {attr: getattr(store, attr) for attr in sorted(SERVICES)}


def test_public_surface_is_pinned(tmp_path: Path) -> None:
    """Every public name, member and signature, and the store's services, are as pinned:
    the flat ``Store`` methods keep working however the store is built inside."""
    expected = SURFACE_FILE.read_text(encoding="utf-8").splitlines()
    actual = surface(tmp_path)
    assert actual == expected, "\n".join(
        difflib.unified_diff(expected, actual, "pinned", "now", lineterm="")
    )


ATTRIBUTE_ONLY = {"docs", "queues", "mail", "specs", "context", "collections"}


def test_every_flat_store_method_reaches_its_service(tmp_path: Path) -> None:
    """A flat method is the service's method under the same name: one operation, one name."""
    agentkeep.init_store(tmp_path)
    with agentkeep.open(tmp_path) as store:
        # Services added since documents (issue 13) are reached only through their
        # attribute, ``store.docs.lock(…)``: flat names such as ``lock`` or ``history``
        # would say nothing of what they act on.
        services = {
            attr: svc
            for attr, svc in _services(store).items()
            if type(svc).__module__.startswith("agentkeep.services.") and attr not in ATTRIBUTE_ONLY
        }
        delegated = set()
        for name in dir(type(store)):
            wrapped = getattr(getattr(type(store), name), "__wrapped__", None)
            if wrapped is None:
                continue
            owners = [a for a, svc in services.items() if type(svc).__dict__.get(name) is wrapped]
            assert len(owners) == 1, name
            assert inspect.signature(getattr(store, name)) == inspect.signature(
                getattr(services[owners[0]], name)
            )
            delegated.add(name)
        # … and every public service method has its flat twin (the store's API is whole).
        public = {
            name
            for svc in services.values()
            for name, member in type(svc).__dict__.items()
            if not name.startswith("_") and callable(member)
        }
        assert delegated == public
        assert len(services) == 15
        task = store.add_task("reach the service").item
        assert store.tasks.get_task(task.id) == store.get_task(task.id)


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        SURFACE_FILE.write_text("\n".join(surface(Path(scratch))) + "\n", encoding="utf-8")
    print(f"wrote {SURFACE_FILE}")
