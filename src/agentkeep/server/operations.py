"""Background operations: gc, backup, export and import, started from the dashboard.

``POST /api/v1/operations`` starts one in a thread of its own and answers at once (202)
with its state; ``GET /api/v1/operations/{id}`` is its state and progress (``phase``,
``done`` of ``total``), ``GET /api/v1/operations/{id}/download`` the file an export wrote.
One operation of each kind runs at a time (a second gets 409 ``conflict``).

* ``{"kind": "gc"}`` is the dry run: what the retention policies would delete now. It
  deletes nothing; its ``result`` is the plan (the first ``PLAN_ITEMS`` items of it).
* ``{"kind": "gc", "apply": true, "plan": "<id of a finished dry run>"}`` deletes — never
  more than that dry run listed (``ops.retention.apply_gc`` with its plan). Naming the dry
  run is the confirmation: an apply without one is refused.
* ``{"kind": "backup"}``: a snapshot under the store's ``backups/`` (``ops.backup``).
* ``{"kind": "export", "all": true}`` or ``{"kind": "export", "sessions": [..],
  "tasks": [..]}``: a bundle in the server's own temporary directory, for download.
* an import: ``POST /api/v1/operations/import`` with the bundle itself as the body
  (``Content-Type: application/x-tar``); it is spooled to a temporary file and merged
  (``ops.bundle_import``).

Pins (``POST /api/v1/sessions/{id}/pin`` ``{"pinned": bool}``) are here too: they are
retention's, and quick, so they run in the request.

The operations live in the server process (``app.state``): a restart forgets them, and
the files they made for download are removed when an operation is forgotten (the newest
``KEEP`` are kept) or the process exits.
"""

from __future__ import annotations

import atexit
import logging
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import FileResponse, Response

from agentkeep.errors import AgentkeepError, Conflict, InvalidInput, NotFound
from agentkeep.server import respond
from agentkeep.server.api_input import Endpoint, Field, body, path_id
from agentkeep.server.context import ServerContext, context
from agentkeep.timeutil import file_stamp, utc_now

if TYPE_CHECKING:
    from agentkeep.ops.retention import GcPlan
    from agentkeep.store import Store

log = logging.getLogger("agentkeep.server")

KINDS = ("gc", "backup", "export", "import")
KEEP = 20  # finished operations remembered (and their download files kept)
PLAN_ITEMS = 500  # items of a gc plan shown in its operation's result
# An import's bundle is POSTed here as the raw body (the one operation that is not JSON).
IMPORT_PATH = "/api/v1/operations/import"
Progress = Callable[[int, int, str], None]


@dataclass
class Operation:
    """One background operation and where it has got to."""

    id: str
    kind: str
    params: dict[str, Any]
    status: str = "running"  # running | done | failed
    phase: str = "queued"
    done: int = 0
    total: int = 0
    started_at: str = field(default_factory=utc_now)
    ended_at: str | None = None
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    # Server-side only: the export's file, the import's upload, the dry run's plan.
    file: Path | None = None
    plan: GcPlan | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "kind": self.kind,
            "params": self.params,
            "status": self.status,
            "phase": self.phase,
            "done": self.done,
            "total": self.total,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "result": self.result,
            "error": self.error,
        }
        if self.kind == "export" and self.status == "done":
            out["download"] = f"/api/v1/operations/{self.id}/download"
        return out


# Stopping the server: how long running operations get to finish before the server exits
# without them (each one left is logged by id and kind). Under `server stop`'s 10 s, with
# the streams' 3 s of grace.
SHUTDOWN_GRACE_SECONDS = 5.0


class Operations:
    """The operations of one server: at most one running per kind."""

    def __init__(self, ctx: ServerContext) -> None:
        self.ctx = ctx
        self._lock = threading.Lock()
        self._ops: dict[str, Operation] = {}  # oldest first
        self._threads: list[threading.Thread] = []
        self.workdir = Path(tempfile.mkdtemp(prefix="agentkeep-operations-"))
        atexit.register(shutil.rmtree, self.workdir, True)

    def get(self, op_id: str) -> Operation:
        with self._lock:
            found = self._ops.get(op_id)
        if found is None:
            raise NotFound(f"operation {op_id} does not exist", hint="the server forgets them")
        return found

    def list(self) -> list[Operation]:
        with self._lock:
            return list(reversed(self._ops.values()))

    def spool(self) -> Path:
        """A new file in the work directory (an upload's destination)."""
        return self.workdir / f"upload-{uuid.uuid4().hex}.tar"

    def start(self, kind: str, params: dict[str, Any], file: Path | None = None) -> Operation:
        if kind not in KINDS:
            raise InvalidInput(
                f"unknown operation {kind!r}", hint=f"use one of: {', '.join(KINDS)}"
            )
        plan = self._dry_run_plan(params) if kind == "gc" and params.get("apply") else None
        if kind == "export":  # checked here, so that a bad request is a 400, not a failed run
            _ids(params, "sessions")
            _ids(params, "tasks")
        with self._lock:
            for running in self._ops.values():
                if running.kind == kind and running.status == "running":
                    raise Conflict(
                        f"a {kind} is already running (operation {running.id})",
                        hint="wait for it to finish",
                    )
            op = Operation(uuid.uuid4().hex[:12], kind, params, file=file, plan=plan)
            self._ops[op.id] = op
            self._forget_old()
            thread = threading.Thread(target=self._run, args=(op,), name=f"agentkeep-{kind}")
            thread.daemon = True
            # Under the lock: two operations of different kinds starting at once must both
            # be in the list that shutdown() waits for.
            self._threads = [alive for alive in self._threads if alive.is_alive()] + [thread]
        thread.start()
        return op

    def wait(self, timeout: float | None = None) -> None:
        """Wait for the threads started so far (tests; shutdown)."""
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(timeout)

    def shutdown(self, grace: float | None = None) -> tuple[Operation, ...]:
        """The server is stopping: wait up to ``grace`` seconds (default
        SHUTDOWN_GRACE_SECONDS) in all for the running operations, then log each one
        still running (by id and kind) as abandoned, and return them. Their threads are
        daemons: the process exits without them, and SQLite rolls back what they had not
        committed."""
        grace = SHUTDOWN_GRACE_SECONDS if grace is None else grace
        deadline = time.monotonic() + grace
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            left = tuple(op for op in self._ops.values() if op.status == "running")
        for op in left:
            log.warning(
                "server stopping: abandoned operation %s (%s) after %g s, in phase %s at %s of %s",
                op.id,
                op.kind,
                grace,
                op.phase or "-",
                op.done,
                op.total,
            )
        return left

    def _dry_run_plan(self, params: dict[str, Any]) -> GcPlan:
        ref = params.get("plan")
        if not isinstance(ref, str) or not ref:
            raise InvalidInput(
                "applying gc needs the dry run it confirms",
                hint='run {"kind": "gc"} first, then send its id as "plan"',
            )
        dry = self.get(ref)
        if dry.kind != "gc" or dry.params.get("apply") or dry.plan is None or dry.status != "done":
            raise InvalidInput(f"operation {ref} is not a finished gc dry run")
        return dry.plan

    def _forget_old(self) -> None:
        finished = [op for op in self._ops.values() if op.status != "running"]
        for op in finished[: max(0, len(finished) - KEEP)]:
            del self._ops[op.id]
            if op.file is not None:
                op.file.unlink(missing_ok=True)

    def _run(self, op: Operation) -> None:
        def progress(done: int, total: int, phase: str) -> None:
            op.phase, op.done, op.total = phase, done, total

        try:
            with self.ctx.lease() as store:
                op.result = RUNNERS[op.kind](self, store, op, progress)
        except AgentkeepError as exc:
            op.error = exc.shown()
            op.status = "failed"
        except Exception:
            log.exception("operation %s (%s) failed", op.id, op.kind)
            op.error = {
                "error": "internal error; the server's log has the details",
                "code": "error",
            }
            op.status = "failed"
        else:
            op.status = "done"
            op.phase = "done"
        finally:
            op.ended_at = utc_now()
            if op.kind == "import" and op.file is not None:
                op.file.unlink(missing_ok=True)
                op.file = None


def _gc(ops: Operations, store: Store, op: Operation, progress: Progress) -> dict[str, Any]:
    from agentkeep.ops import retention

    if op.plan is None:  # the dry run
        progress(0, 1, "plan")
        op.plan = retention.plan_gc(store)
        progress(1, 1, "plan")
        return _shown_plan(op.plan.to_dict())
    result = retention.apply_gc(store, op.plan, progress=progress)
    shown = result.to_dict()
    shown["plan"] = _shown_plan(shown["plan"])
    return shown


def _shown_plan(plan: dict[str, Any]) -> dict[str, Any]:
    items = plan.get("items", [])
    return {**plan, "items": items[:PLAN_ITEMS], "items_total": len(items)}


def _backup(ops: Operations, store: Store, op: Operation, progress: Progress) -> dict[str, Any]:
    from agentkeep.ops.backup import backup

    return backup(store, progress=progress).to_dict()


def _export(ops: Operations, store: Store, op: Operation, progress: Progress) -> dict[str, Any]:
    from agentkeep.ops.bundle_export import export_bundle

    sessions = _ids(op.params, "sessions")
    tasks = _ids(op.params, "tasks")
    everything = bool(op.params.get("all")) or not (sessions or tasks)
    target = ops.workdir / f"agentkeep-export-{file_stamp()}-{op.id}.tar"
    result = export_bundle(
        store, target, session_ids=sessions, task_ids=tasks, all=everything, progress=progress
    )
    op.file = target
    shown = result.to_dict()
    shown["path"] = target.name  # the server's temporary directory is its own business
    return shown


def _import(ops: Operations, store: Store, op: Operation, progress: Progress) -> dict[str, Any]:
    from agentkeep.ops.bundle_import import import_bundle

    if op.file is None:
        raise InvalidInput("an import needs the bundle as the request's body")
    shown = import_bundle(store, op.file, progress=progress).to_dict()
    shown["path"] = "upload"  # the spooled upload's name in the server's temporary directory
    return shown


def _ids(params: dict[str, Any], name: str) -> list[int]:
    value = params.get(name) or []
    if not isinstance(value, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        raise InvalidInput(f"{name!r} must be a list of ids")
    return list(value)


RUNNERS: dict[str, Callable[[Operations, Store, Operation, Progress], dict[str, Any]]] = {
    "gc": _gc,
    "backup": _backup,
    "export": _export,
    "import": _import,
}

_REGISTRY_LOCK = threading.Lock()


def registry(request: Request) -> Operations:
    """The server's operations (made on first use)."""
    state = request.app.state
    with _REGISTRY_LOCK:
        found: Operations | None = getattr(state, "operations", None)
        if found is None:
            found = Operations(context(request))
            state.operations = found
    return found


# -- endpoints ----------------------------------------------------------------------------


def list_operations(request: Request) -> Response:
    """The operations this server remembers, newest first (a restart forgets them)."""
    return respond.rows(request, [op.to_dict() for op in registry(request).list()])


def show_operation(request: Request) -> Response:
    """An operation's state: ``status``, ``phase``, ``done`` of ``total``, its ``result``
    or ``error`` once it ends (and ``download`` for a finished export)."""
    return respond.one(registry(request).get(request.path_params["id"]).to_dict())


OPERATION_START = {
    "kind": Field(
        "str",
        required=True,
        enum=KINDS,
        description=f"an import's bundle is POSTed to {IMPORT_PATH} instead",
    ),
    "apply": Field("bool", description="gc: delete (needs the dry run as plan)"),
    "plan": Field("str", description="gc apply: the id of the finished dry run it confirms"),
    "all": Field("bool", description="export: everything (also when no ids are given)"),
    "sessions": Field("int_list", minimum=1, description="export: these sessions"),
    "tasks": Field("int_list", minimum=1, description="export: these tasks"),
}


def start_operation(request: Request) -> Response:
    """Start a gc (a dry run, or the apply of one), a backup or an export in the
    background (202); 409 while one of its kind runs."""
    params = body(request, OPERATION_START)
    kind = params.pop("kind")
    if kind == "import":
        raise InvalidInput(
            "an import's bundle is the request's body",
            hint=f"POST the bundle to {IMPORT_PATH} (Content-Type: application/x-tar)",
        )
    return _started(registry(request).start(kind, params))


async def start_import(request: Request) -> Response:
    """Merge a bundle (``agentkeep export``'s tar, the raw body) in the background (202).

    The bundle is spooled to disk as it arrives (never held in memory); the security
    middleware caps its size (``serve.max_upload_bytes``)."""
    ops = registry(request)
    target = ops.spool()
    size = 0
    try:
        with target.open("xb") as out:
            async for chunk in request.stream():
                size += len(chunk)
                out.write(chunk)
        if size == 0:
            raise InvalidInput("an import needs the bundle as the request's body")
        return _started(ops.start("import", {"bytes": size}, file=target))
    except BaseException:
        target.unlink(missing_ok=True)
        raise


def _started(op: Operation) -> Response:
    return respond.json_response({"schema_version": respond.SCHEMA_VERSION, **op.to_dict()}, 202)


def download(request: Request) -> Response:
    """The bundle a finished export wrote (a tar; 404 for any other operation)."""
    op = registry(request).get(request.path_params["id"])
    if op.kind != "export" or op.status != "done" or op.file is None or not op.file.is_file():
        raise NotFound(f"operation {op.id} has no file to download", hint="export first")
    return FileResponse(
        op.file,
        media_type="application/x-tar",
        filename=op.file.name,
        headers={"X-Content-Type-Options": "nosniff"},
    )


PIN = {"pinned": Field("bool", description="default: true; false unpins")}


def pin_session(request: Request) -> Response:
    """Pin (or unpin) a session: gc never deletes its streams or its artifacts."""
    from agentkeep.ops import retention

    session_id = path_id(request)
    pinned = body(request, PIN).get("pinned", True)
    result = retention.pin(context(request).store(), "session", session_id, pinned)
    return respond.written("pin", result, result.outcome)


OP_ID = "an operation's id"
ENDPOINTS: list[Endpoint] = [
    Endpoint("GET", "/operations", list_operations, "rows", "operation"),
    Endpoint(
        "POST", "/operations", start_operation, "accepted", "operation", fields=OPERATION_START
    ),
    Endpoint("POST", "/operations/import", start_import, "accepted", "operation", raw_body=True),
    Endpoint("GET", "/operations/{id}", show_operation, "one", "operation", text_id=OP_ID),
    Endpoint("GET", "/operations/{id}/download", download, "file", "bundle", text_id=OP_ID),
    Endpoint("POST", "/sessions/{id}/pin", pin_session, "written", "pin", fields=PIN),
]
