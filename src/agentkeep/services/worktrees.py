"""Worktrees: the git worktrees agents work in, with leases and safe removal.

Removal never loses work silently (principle 7 of docs/design.md): a worktree with commits
that no other branch or remote-tracking ref contains, or with untracked or modified files, is
refused unless forced. Both are checked with git itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from agentkeep._core import Tx, check_identifier, diff, limit_clause
from agentkeep.errors import Conflict, InvalidInput, StorageError
from agentkeep.models import Worktree, Written
from agentkeep.paths import git, relative_to_root
from agentkeep.services.base import Service
from agentkeep.timeutil import iso_utc, utc_now


@dataclass(frozen=True)
class WorktreeCheck:
    """What would be lost by removing a worktree."""

    exists: bool
    unmerged_commits: int
    dirty_files: list[str]

    @property
    def safe(self) -> bool:
        return not self.unmerged_commits and not self.dirty_files


def check_worktree(path: Path) -> WorktreeCheck:
    if not path.exists():
        return WorktreeCheck(False, 0, [])
    status = git(path, "status", "--porcelain", "--untracked-files=all")
    if status is None:
        raise StorageError(
            f"git could not inspect {path}",
            hint="is it still a git worktree? use --force to drop the record anyway",
        )
    dirty = [line[3:] for line in status.splitlines() if line.strip()]
    branch = git(path, "symbolic-ref", "--quiet", "HEAD")
    args = ["rev-list", "--count", "HEAD", "--not"]
    if branch:
        # --exclude applies to the next --branches, whose patterns omit "refs/heads/".
        args.append(f"--exclude={branch.removeprefix('refs/heads/')}")
    args += ["--branches", "--remotes", "--tags"]
    count = git(path, *args)
    if count is None or not count.isdigit():
        # Unknown is not zero: never call a worktree safe to remove on a failed check.
        raise StorageError(
            f"git could not count the unmerged commits of {path}",
            hint="check the worktree with git; use --force to remove it anyway",
        )
    return WorktreeCheck(True, int(count), dirty)


MAX_LEASE_SECONDS = 366 * 24 * 3600


class WorktreeService(Service):
    def add_worktree(
        self, path: str | Path, *, branch: str | None = None, base_commit: str | None = None
    ) -> Written[Worktree]:
        """Record a worktree (it is not created on disk; git does that)."""
        rel = relative_to_root(self.root, path)
        with self.transaction() as tx:
            row = tx.one("SELECT * FROM worktrees WHERE path = ? AND status = 'active'", (rel,))
            if row is not None:
                return Written(Worktree.from_row(row), "already_exists")
            worktree_id = tx.insert(
                "worktrees",
                {
                    "path": rel,
                    "branch": branch,
                    "base_commit": base_commit,
                    "status": "active",
                    "created_at": tx.now,
                    "updated_at": tx.now,
                },
            )
            worktree = self.get_worktree(worktree_id)
            tx.emit("worktree", worktree_id, "worktree.created", worktree.to_dict())
            return Written(worktree, "created")

    def lease_worktree(self, worktree_id: int, owner: str, *, ttl_seconds: int = 3600) -> Worktree:
        """Take (or extend) the lease on a worktree: a compare-and-set on the current owner.

        Fails with Conflict while another owner holds an unexpired lease.
        """
        check_identifier("the lease owner", owner)
        if not 0 < ttl_seconds <= MAX_LEASE_SECONDS:
            raise InvalidInput(
                f"the lease duration must be from 1 to {MAX_LEASE_SECONDS:,} seconds (a year)"
            )
        with self.transaction() as tx:
            before = self.get_worktree(worktree_id)
            if before.status != "active":
                raise Conflict(f"worktree {worktree_id} was removed")
            held = before.lease_owner and before.lease_owner != owner
            if held and (before.lease_expires_at or "") > tx.now:
                raise Conflict(
                    f"worktree {worktree_id} is leased by {before.lease_owner} "
                    f"until {before.lease_expires_at}",
                    hint="wait for the lease to expire, or ask its owner to release it",
                )
            expires = datetime.now(UTC) + timedelta(seconds=ttl_seconds)
            stamp = iso_utc(expires)
            return self._apply_worktree(
                tx, before, {"lease_owner": owner, "lease_expires_at": stamp}, "worktree.leased"
            )

    def release_worktree(self, worktree_id: int, owner: str) -> Worktree:
        with self.transaction() as tx:
            before = self.get_worktree(worktree_id)
            if before.lease_owner != owner:
                raise Conflict(
                    f"worktree {worktree_id} is not leased by {owner} "
                    f"(owner: {before.lease_owner or 'nobody'})"
                )
            return self._apply_worktree(
                tx, before, {"lease_owner": None, "lease_expires_at": None}, "worktree.released"
            )

    def remove_worktree(self, worktree_id: int, *, force: bool = False) -> Worktree:
        """Remove a worktree from disk (``git worktree remove``) and mark its row removed.

        Refused while another owner holds its lease, or while it has unmerged commits or
        untracked/modified files, unless ``force``.
        """
        worktree = self.get_worktree(worktree_id)
        if worktree.status != "active":
            raise Conflict(f"worktree {worktree_id} was already removed")
        leased = worktree.lease_owner and (worktree.lease_expires_at or "") > utc_now()
        if leased and not force:
            raise Conflict(
                f"worktree {worktree.path} is leased by {worktree.lease_owner} "
                f"until {worktree.lease_expires_at}",
                hint="ask its owner to release it, wait for the lease to expire, or use --force",
            )
        path = (self.root / worktree.path).resolve()
        check = check_worktree(path)
        if not force and not check.safe:
            parts = []
            if check.unmerged_commits:
                parts.append(f"{check.unmerged_commits} commit(s) on no other branch")
            if check.dirty_files:
                parts.append(f"{len(check.dirty_files)} untracked or modified file(s)")
            raise Conflict(
                f"worktree {worktree.path} has {' and '.join(parts)}; removing it would lose them",
                hint="merge or push the commits and commit or clean the files, or use --force",
            )
        if check.exists:
            import subprocess

            args = ["git", "-C", str(self.root), "worktree", "remove", str(path)]
            if force:
                args.insert(-1, "--force")
            done = subprocess.run(args, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise StorageError(
                    f"git worktree remove failed: {done.stderr.strip() or done.stdout.strip()}"
                )
        with self.transaction() as tx:
            before = self.get_worktree(worktree_id)
            return self._apply_worktree(
                tx,
                before,
                {"status": "removed", "lease_owner": None, "lease_expires_at": None},
                "worktree.removed",
            )

    def get_worktree(self, worktree_id: int) -> Worktree:
        return Worktree.from_row(self._record("worktree", worktree_id))  # type: ignore[no-any-return]

    def list_worktrees(
        self,
        *,
        status: str | None = "active",
        limit: int | None = None,
        after_id: int | None = None,
    ) -> list[Worktree]:
        """Worktrees by id. ``after_id``: only those after that one (keyset paging)."""
        where: list[str] = []
        params: list[Any] = []
        if status is not None:
            where.append("status = ?")
            params.append(status)
        if after_id is not None:
            where.append("id > ?")
            params.append(after_id)
        sql = "SELECT * FROM worktrees" + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY id" + limit_clause(limit)
        return [Worktree.from_row(row) for row in self._rows(sql, params)]

    def _apply_worktree(
        self, tx: Tx, before: Worktree, changes: dict[str, Any], kind: str
    ) -> Worktree:
        delta = diff(before.to_dict(), changes)
        if delta:
            tx.update("worktrees", before.id, {**changes, "updated_at": tx.now})
            tx.emit("worktree", before.id, kind, delta)
        return self.get_worktree(before.id)
