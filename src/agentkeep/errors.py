"""The errors agentkeep raises, as one small typed tree.

    AgentkeepError                  root: message, hint, exit code, HTTP status, stable code
    ├── InvalidInput                bad argument or payload (exit 2 is click's; ours is 3)
    │   └── CaptureError            captured data the capture writer cannot store at all
    ├── NotFound                    no such task/session/…; no store found
    │   └── StoreNotFound
    ├── Conflict                    the state changed under you (claim lost, bad transition)
    │   └── StaleWrite              a document changed since the version a write started from
    ├── SchemaTooNew                the database was written by a newer agentkeep
    ├── Busy                        another process held the write lock past busy_timeout
    ├── Corrupt                     the database (or a file it indexes) is damaged, missing or
    │   │                           empty beside the store's data files
    │   └── RollbackDetected        the database is behind its commit high-water mark
    ├── StorageFull                 the disk (or a file-size limit) is full
    ├── RedactionFailed             the privacy boundary failed, so nothing was stored
    ├── UsedAcrossFork              a connection opened before fork() was used in the child
    ├── StorageError                any other I/O or database failure
    ├── ReadOnly                    a write to a store opened read-only
    └── HookError                   a hook delivery that cannot be stored (logged, exit 0)

Lower-level errors (`sqlite3.Error`, `OSError`) are translated at the backend boundary and
chained with ``from exc``; callers above the backend never see them.

Exit codes are part of the CLI contract (docs/cli.md): 0 ok, 1 generic failure, 2 usage
error (click), and one code per class below so scripts can branch without parsing text.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover - `typing` costs ~4 ms at import; the hook avoids it
    from typing import Any, ClassVar

__all__ = [
    "AgentkeepError",
    "Busy",
    "CaptureError",
    "Conflict",
    "Corrupt",
    "HookError",
    "InvalidInput",
    "NotFound",
    "ReadOnly",
    "RedactionFailed",
    "RollbackDetected",
    "SchemaTooNew",
    "StorageError",
    "StorageFull",
    "StoreNotFound",
    "UsedAcrossFork",
]


class AgentkeepError(Exception):
    """Root of every error agentkeep raises on purpose."""

    code: ClassVar[str] = "error"
    exit_code: ClassVar[int] = 1
    http_status: ClassVar[int] = 500

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error": self.message, "code": self.code}
        if self.hint:
            out["hint"] = self.hint
        return out

    def shown(self) -> dict[str, Any]:
        """The JSON error shape every front end shows (CLI ``--json``, HTTP API, MCP):
        ``{"schema_version": 1, "error", "code", "hint"?}``. Error text can echo user
        input, so it passes the privacy boundary first; when the redactor itself fails the
        text is withheld (fail closed) rather than shown as it came."""
        payload: dict[str, Any] = {"schema_version": 1, **self.to_dict()}
        shown: dict[str, str | None] = {
            k: shown_text(payload[k]) for k in ("error", "hint") if k in payload
        }
        if None in shown.values():
            payload["error"] = f"{WITHHELD} ({self.code})"
            payload["hint"] = (
                "this is a bug in agentkeep; `agentkeep redact` shows whether it recurs"
            )
        else:
            payload.update(shown)
        return payload


WITHHELD = "the message was withheld because the redactor failed"


def shown_text(text: str) -> str | None:
    """``text`` through the privacy boundary for display, or None when the redactor
    failed: then the text is never shown (fail closed, like the hook log)."""
    from agentkeep.boundary import redact_text

    try:
        return redact_text(text)[0]
    except AgentkeepError:
        return None


class InvalidInput(AgentkeepError):
    code = "invalid_input"
    exit_code = 3
    http_status = 400


class CaptureError(InvalidInput):
    """Captured data (a hook delivery, a transcript line) the capture writer refuses even
    after replacing what it can (see agentkeep.boundary); ``str()`` never quotes it."""

    code = "capture_refused"


class NotFound(AgentkeepError):
    code = "not_found"
    exit_code = 4
    http_status = 404


class StoreNotFound(NotFound):
    code = "store_not_found"


class Conflict(AgentkeepError):
    code = "conflict"
    exit_code = 5
    http_status = 409


class StaleWrite(Conflict):
    """A write that named the version (etag) it started from, when the document has
    changed since: ``details`` says what the document is now (its etag, the fields and
    whether the text changed), so the writer can merge and retry, or force."""

    code = "stale_write"

    def __init__(self, message: str, *, hint: str | None = None, details: dict[str, Any]) -> None:
        super().__init__(message, hint=hint)
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "details": self.details}


class SchemaTooNew(AgentkeepError):
    code = "schema_too_new"
    exit_code = 6
    http_status = 409


class Busy(AgentkeepError):
    code = "busy"
    exit_code = 7
    http_status = 503


class Corrupt(AgentkeepError):
    code = "corrupt"
    exit_code = 8
    http_status = 500


class RollbackDetected(Corrupt):
    """Commits this store acknowledged are missing from the database: a deleted ``-wal`` or
    ``-shm``, a damaged WAL frame, an older ``state.db`` copied over the current one. The
    high-water mark outside the database (docs/design.md, "Recovery") says so; writes are
    refused until the user restores a backup or accepts the database as it is."""

    code = "rollback_detected"


class StorageFull(AgentkeepError):
    code = "storage_full"
    exit_code = 9
    http_status = 507


class RedactionFailed(AgentkeepError):
    code = "redaction_failed"
    exit_code = 10
    http_status = 500


class UsedAcrossFork(AgentkeepError):
    code = "used_across_fork"
    exit_code = 11
    http_status = 500


class StorageError(AgentkeepError):
    code = "storage_error"
    exit_code = 12
    http_status = 500


class ReadOnly(AgentkeepError):
    code = "read_only"
    exit_code = 13
    http_status = 409


class HookError(AgentkeepError):
    """A delivery ``agentkeep hook`` cannot store. The hook never fails the agent: it
    writes this to ``.agentkeep/hook-errors.log`` (which ``doctor`` reports) and exits 0.
    ``str()`` says why without quoting the payload."""

    code = "hook_error"
    exit_code = 1
    http_status = 400
