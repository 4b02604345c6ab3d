"""Where things live (DESIGN.md "Where things live").

A project's store is the ``.agentkeep`` directory at the root of its git repository. It is
found the way git finds ``.git``: walk up from the working directory. From a linked git
worktree the walk-up finds nothing, so the main worktree (the parent of git's common dir)
is tried next; all worktrees of a repository share one store. ``--store`` or
``AGENTKEEP_DIR`` name the store directory explicitly.

Per-user files (the project registry ``global.db`` and the user's ``config.toml``) live in
the platform's data and config dirs, or all under ``AGENTKEEP_HOME`` when it is set.
"""

from __future__ import annotations

import os
from pathlib import Path

STORE_DIRNAME = ".agentkeep"
DB_NAME = "state.db"


def agentkeep_home() -> Path | None:
    home = os.environ.get("AGENTKEEP_HOME")
    return Path(home).expanduser() if home else None


def user_data_dir() -> Path:
    home = agentkeep_home()
    if home is not None:
        return home
    import platformdirs  # lazy: not needed when AGENTKEEP_HOME is set (tests, hooks)

    return Path(platformdirs.user_data_dir("agentkeep", appauthor=False))


def user_config_file() -> Path:
    home = agentkeep_home()
    if home is not None:
        return home / "config.toml"
    import platformdirs

    return Path(platformdirs.user_config_dir("agentkeep", appauthor=False)) / "config.toml"


def global_db_path() -> Path:
    return user_data_dir() / "global.db"


def find_store(start: Path | None = None) -> Path | None:
    """The store directory for ``start`` (default: cwd), or None if there is none."""
    explicit = os.environ.get("AGENTKEEP_DIR")
    if explicit:
        return Path(explicit).expanduser().absolute()
    here = (start or Path.cwd()).absolute()
    for directory in (here, *here.parents):
        candidate = directory / STORE_DIRNAME
        if (candidate / DB_NAME).exists():
            return candidate
    main = main_worktree_root(here)
    if main is not None and (main / STORE_DIRNAME / DB_NAME).exists():
        return main / STORE_DIRNAME
    return None


def git(cwd: Path, *args: str) -> str | None:
    """Run a git command, returning its stripped stdout, or None if git fails or is absent."""
    import subprocess

    try:
        done = subprocess.run(
            ["git", "-C", str(cwd), *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def main_worktree_root(cwd: Path) -> Path | None:
    """Root of the repository's main worktree (shared by all its linked worktrees)."""
    common = git(cwd, "rev-parse", "--path-format=absolute", "--git-common-dir")
    if not common:
        return None
    common_dir = Path(common)
    if common_dir.name == ".git":
        return common_dir.parent
    # A bare repository or an unusual layout: fall back to this worktree's top level.
    top = git(cwd, "rev-parse", "--show-toplevel")
    return Path(top) if top else None


def relative_to_root(root: Path, path: Path | str) -> str:
    """``path`` relative to the project root, with '..' allowed (worktrees beside the repo).

    The store never records absolute paths (DESIGN.md principle 9).
    """
    absolute = Path(path) if Path(path).is_absolute() else Path.cwd() / path
    rel = os.path.relpath(os.path.normpath(absolute), os.path.normpath(root))
    return Path(rel).as_posix()
