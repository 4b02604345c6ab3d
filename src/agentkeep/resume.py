"""Whether a session can be resumed in the agent that ran it, and with which command.

A session is *displayable* when agentkeep holds its history (transcript entries, hook
captures or recorded output): `sessions show`, `transcript` and `logs` work from the store
alone, whatever happened to the agent's files. It is *resumable* when the agent's own
files still exist on this machine, so the agent's resume command can continue it:

- Claude Code: ``claude --resume <session id>``, run in the session's directory, needs
  ``<config dir>/projects/<encoded dir>/<session id>.jsonl``. Claude Code deletes
  transcripts not used for ``cleanupPeriodDays`` (settings.json, default 30 days).
  A subagent's conversation is resumed through its parent.
- Codex: ``codex resume <thread id>`` needs the rollout under ``$CODEX_HOME/sessions``
  (plain or ``.zst``); an archived rollout must be unarchived first (``codex unarchive``).
  Codex never deletes rollouts itself.
- Anything else (``agentkeep run`` recordings, OpenCode, JSONL imports, the library's own
  sessions): agentkeep does not know a resume command, and says so.

The answer depends on this machine's files and is computed when asked, never stored (the
store is portable; the agents' files are not).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from agentkeep import tools
from agentkeep.models import Record, Session

if TYPE_CHECKING:
    from agentkeep.services.sessions import SessionService

# Claude Code's cleanupPeriodDays default (docs/design.md "Agent tools' formats").
CLAUDE_DEFAULT_RETENTION_DAYS = 30


@dataclass(frozen=True)
class ResumePlan(Record):
    """How (or why not) a session can be resumed in its agent."""

    session_id: int
    source: str
    external_id: str | None
    displayable: bool
    resumable: bool
    reason: str | None  # why it is not resumable; None when it is
    command: list[str] | None  # the agent's resume command, when resumable
    cwd: str | None  # the directory to run it in (absolute, this machine)
    upstream: str | None  # the agent's own file that makes it resumable


class Lookup:
    """The agents' directories, listed once for all the sessions of one listing."""

    def __init__(self) -> None:
        self._transcripts: dict[Path, dict[str, Path]] = {}
        self._rollouts: dict[Path, dict[str, list[Path]]] = {}

    def claude_transcripts(self, root: Path) -> dict[str, Path]:
        """The transcript files in every project directory under ``root``, by file name
        (the first directory in listing order wins): each directory is listed once, so a
        listing costs one scan of the root, not one per session."""
        if root not in self._transcripts:
            found: dict[str, Path] = {}
            try:
                directories = [e.path for e in os.scandir(root) if e.is_dir()]
            except OSError:
                directories = []
            for directory in directories:
                try:
                    with os.scandir(directory) as entries:
                        for entry in entries:
                            if entry.name.endswith(".jsonl") and entry.is_file():
                                found.setdefault(entry.name, Path(entry.path))
                except OSError:
                    continue
            self._transcripts[root] = found
        return self._transcripts[root]

    def codex_rollouts(self, home: Path) -> dict[str, list[Path]]:
        """Rollouts under sessions/ and archived_sessions/ by file stem (the name ends
        with the thread id)."""
        if home not in self._rollouts:
            found: dict[str, list[Path]] = {}
            for sub in ("sessions", "archived_sessions"):
                if (home / sub).is_dir():
                    for path in (home / sub).rglob("rollout-*.jsonl*"):
                        stem = path.name.removesuffix(".zst").removesuffix(".jsonl")
                        found.setdefault(stem, []).append(path)
            self._rollouts[home] = found
        return self._rollouts[home]


def plan(ops: SessionService, session: Session, lookup: Lookup | None = None) -> ResumePlan:
    """The resume plan of ``session`` on this machine (``lookup`` shares directory
    listings between the sessions of one listing)."""
    resumable, reason, upstream = _upstream(ops, session, lookup or Lookup())
    command = None
    if resumable:
        command = (
            ["claude", "--resume", str(session.external_id)]
            if session.source == "claude"
            else ["codex", "resume", str(session.external_id)]
        )
    return ResumePlan(
        session_id=session.id,
        source=session.source,
        external_id=session.external_id,
        displayable=session.displayable,
        resumable=resumable,
        reason=reason,
        command=command,
        cwd=_cwd(ops.root, session.cwd) if resumable else None,
        upstream=upstream,
    )


def _cwd(root: Path, cwd: str | None) -> str:
    """The session's directory if it still exists, else the project root."""
    if cwd:
        path = (root / cwd).resolve()
        if path.is_dir():
            return str(path)
    return str(root)


def _upstream(
    ops: SessionService, session: Session, lookup: Lookup
) -> tuple[bool, str | None, str | None]:
    """(resumable, why not, the agent's file)."""
    if session.source == "run":
        return (
            False,
            "it is a command recorded by `agentkeep run`, not an agent conversation; "
            "run the command again to repeat it",
            None,
        )
    if session.source not in tools.RESUMABLE or not session.external_id:
        titles = " and ".join(tools.TOOLS[name].title for name in tools.RESUMABLE)
        return (
            False,
            f"agentkeep does not know how to resume a {session.source!r} session "
            f"(it resumes {titles} sessions)",
            None,
        )
    if session.source == "claude":
        return _claude(ops, session, lookup)
    return _codex(ops, session, lookup)


# -- Claude Code ----------------------------------------------------------------------------


def _claude(
    ops: SessionService, session: Session, lookup: Lookup
) -> tuple[bool, str | None, str | None]:
    from agentkeep.importers.claude import claude_roots, encode_project_dir

    external = str(session.external_id)
    if ":" in external or session.parent_id is not None:
        parent = f" (session {session.parent_id})" if session.parent_id is not None else ""
        return (
            False,
            f"it is a subagent's conversation; Claude Code resumes it with its parent{parent}",
            None,
        )
    name = f"{external}.jsonl"
    first: list[str] = []
    if session.cwd:
        first.append(encode_project_dir(str((ops.root / session.cwd).resolve())))
    for root in claude_roots():
        for directory in first:
            if (root / directory / name).is_file():
                return True, None, str(root / directory / name)
        candidate = lookup.claude_transcripts(root).get(name)
        if candidate is not None:
            return True, None, str(candidate)
    days = _claude_retention_days()
    idle_days = _days_since(session.last_seen_at or session.started_at)
    if idle_days is not None and idle_days > days:
        return (
            False,
            f"the agent's retention passed: Claude Code deletes transcripts not used for "
            f"{days} days (cleanupPeriodDays) and this session was last active "
            f"{idle_days:.0f} days ago; its file {name} is gone",
            None,
        )
    return (
        False,
        f"the upstream file is gone: Claude Code's transcript {name} is not in its projects "
        "directory (deleted, moved, or recorded on another machine)",
        None,
    )


def _claude_retention_days() -> int:
    """cleanupPeriodDays from Claude Code's user settings (default 30)."""
    configured = os.environ.get("CLAUDE_CONFIG_DIR")
    base = Path(configured).expanduser() if configured else Path.home() / ".claude"
    try:
        with (base / "settings.json").open("rb") as handle:
            value = json.loads(handle.read(1 << 20)).get("cleanupPeriodDays")
    except (OSError, ValueError, AttributeError):
        return CLAUDE_DEFAULT_RETENTION_DAYS
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    return CLAUDE_DEFAULT_RETENTION_DAYS


def _days_since(stamp: str | None) -> float | None:
    from datetime import UTC, datetime

    if not stamp:
        return None
    try:
        then = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    if then.tzinfo is None:
        then = then.replace(tzinfo=UTC)
    return (datetime.now(UTC) - then).total_seconds() / 86400


# -- Codex ----------------------------------------------------------------------------------


def _codex(
    ops: SessionService, session: Session, lookup: Lookup
) -> tuple[bool, str | None, str | None]:
    from agentkeep.importers.codex import codex_home

    home = codex_home()
    external = str(session.external_id)
    candidates = [home / key for key in ops.imported_files(session.id)]
    if not candidates:  # seen by hooks only: look for its rollout by thread id
        candidates = [
            p.with_name(p.name.removesuffix(".zst"))
            for stem, paths in lookup.codex_rollouts(home).items()
            if stem.endswith(f"-{external}")
            for p in paths
        ]
    for path in candidates:
        for found in (path, path.with_name(path.name + ".zst")):
            if not found.is_file():
                continue
            if _inside(found, home / "archived_sessions"):
                return (
                    False,
                    f"it is archived in Codex; `codex unarchive {external}` restores it",
                    str(found),
                )
            return True, None, str(found)
    return (
        False,
        f"the upstream file is gone: no Codex rollout for thread {external} under "
        f"{home / 'sessions'} (deleted, moved, or recorded on another machine)",
        None,
    )


def _inside(path: Path, directory: Path) -> bool:
    try:
        path.relative_to(directory)
    except ValueError:
        return False
    return True
