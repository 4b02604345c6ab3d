"""Where things live (docs/design.md "Where things live").

A project's store is the ``.agentkeep`` directory at the root of its git repository. It is
found the way git finds ``.git``: walk up from the working directory. From a linked git
worktree the walk-up finds nothing, so the main worktree (the parent of git's common dir)
is tried next; all worktrees of a repository share one store. ``--store`` or
``AGENTKEEP_DIR`` name the store directory explicitly.

The walk (:func:`walk_up`) is the one the library and ``agentkeep hook`` both use, so it
is standard library only and cheap: no ``pathlib`` at import (``Path`` is imported where
it is returned), and a linked worktree's main worktree is read from its ``.git`` file and
``commondir`` (:func:`main_worktree_of`) instead of running ``git``.

Per-user files (the project registry ``global.db`` and the user's ``config.toml``) live in
the platform's data and config dirs, or all under ``AGENTKEEP_HOME`` when it is set.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover - for type checkers only
    import re
    from collections.abc import Iterable
    from pathlib import Path

STORE_DIRNAME = ".agentkeep"
DB_NAME = "state.db"


def agentkeep_home() -> Path | None:
    from pathlib import Path

    home = os.environ.get("AGENTKEEP_HOME")
    return Path(home).expanduser() if home else None


def user_data_dir() -> Path:
    home = agentkeep_home()
    if home is not None:
        return home
    from pathlib import Path

    return Path(_user_dir("XDG_DATA_HOME", "~/.local/share"))


def user_config_file() -> Path:
    home = agentkeep_home()
    if home is not None:
        return home / "config.toml"
    from pathlib import Path

    return Path(_user_dir("XDG_CONFIG_HOME", "~/.config")) / "config.toml"


def _user_dir(xdg_variable: str, default: str) -> str:
    """platformdirs' ``user_data_dir`` / ``user_config_dir`` for ``agentkeep``.

    On Linux that is the XDG rule: ``$XDG_…_HOME`` if it is an absolute path, else
    ``default`` under an absolute ``$HOME`` (or the password database's home when HOME is
    unset), then ``agentkeep``. It is computed here because importing platformdirs (it
    imports tempfile, shutil, bz2, lzma) was ~8 ms of every ``agentkeep status``. Other
    platforms, and the cases platformdirs resolves its own way (a relative HOME), ask
    platformdirs; tests/test_paths_xdg.py compares both over the environments."""
    if sys.platform == "linux":
        path = os.environ.get(xdg_variable, "")
        if os.path.isabs(path):
            return os.path.join(path, "agentkeep")
        home = os.environ.get("HOME")
        if home is None or os.path.isabs(home):
            expanded = os.path.expanduser(default)
            if os.path.isabs(expanded):
                return os.path.join(expanded, "agentkeep")
    import platformdirs  # lazy: not needed when AGENTKEEP_HOME is set (tests, hooks)

    if xdg_variable == "XDG_DATA_HOME":
        return platformdirs.user_data_dir("agentkeep", appauthor=False)
    return platformdirs.user_config_dir("agentkeep", appauthor=False)


def global_db_path() -> Path:
    return user_data_dir() / "global.db"


def find_store(start: Path | None = None) -> Path | None:
    """The store directory for ``start`` (default: cwd), or None if there is none.

    ``AGENTKEEP_DIR`` is returned as given (the caller reports a missing store there)."""
    from pathlib import Path

    explicit = os.environ.get("AGENTKEEP_DIR")
    if explicit:
        return Path(explicit).expanduser().absolute()
    found = walk_up(str((start or Path.cwd()).absolute()))
    return Path(found) if found is not None else None


def find_store_dir(starts: Iterable[str], explicit: str | None = None) -> str | None:
    """The store directory for the first of ``starts`` that has one (the hook's lookup:
    several candidate directories, strings, and nothing that does not exist).

    ``explicit`` (``--store``) or ``AGENTKEEP_DIR`` name a project or its ``.agentkeep``;
    it counts only if it holds a database."""
    explicit = explicit or os.environ.get("AGENTKEEP_DIR")
    if explicit:
        path = os.path.abspath(os.path.expanduser(explicit))
        if os.path.isdir(os.path.join(path, STORE_DIRNAME)):
            path = os.path.join(path, STORE_DIRNAME)
        return path if holds_store(path) else None
    for start in starts:
        found = walk_up(os.path.abspath(start))
        if found is not None:
            return found
    return None


def holds_store(store_dir: str) -> bool:
    """Whether ``store_dir`` (a ``.agentkeep``) is a store: it holds the SQLite database, or
    it is the directory of a store on a server (:func:`names_server`)."""
    return os.path.isfile(os.path.join(store_dir, DB_NAME)) or names_server(store_dir)


_SERVER_URL: re.Pattern[str] | None = None  # compiled on first use: most find state.db


def names_server(store_dir: str) -> bool:
    """Whether the store of ``store_dir`` lives on a server: ``AGENTKEEP_URL`` is set, or
    the project's config.toml sets ``url = "postgresql://…"`` (read as text, cheaply and
    without a TOML parser: the hook uses this; ``config.py`` validates the value)."""
    if not os.path.isdir(store_dir):
        return False
    if os.environ.get("AGENTKEEP_URL"):
        return True
    global _SERVER_URL
    try:
        data = read_small_file(os.path.join(store_dir, "config.toml"), 1 << 16, follow_links=False)
        text = data.decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    if "postgres" not in text:
        return False
    if _SERVER_URL is None:
        import re

        _SERVER_URL = re.compile(r"(?m)^[ \t]*url[ \t]*=[ \t]*[\"']postgres(?:ql)?://")
    return _SERVER_URL.search(text) is not None


def walk_up(here: str) -> str | None:
    """The ``.agentkeep`` with a database in ``here`` or the nearest parent; else, in a
    linked git worktree, its main worktree's (all worktrees share one store)."""
    dot_git: str | None = None
    directory = here
    while True:
        candidate = os.path.join(directory, STORE_DIRNAME)
        if holds_store(candidate):
            return candidate
        if dot_git is None and os.path.lexists(os.path.join(directory, ".git")):
            dot_git = os.path.join(directory, ".git")
        parent = os.path.dirname(directory)
        if parent == directory:
            break
        directory = parent
    if dot_git is not None and os.path.isfile(dot_git):
        main = main_worktree_of(dot_git)
        if main is not None:
            candidate = os.path.join(main, STORE_DIRNAME)
            if holds_store(candidate):
                return candidate
    return None


def main_worktree_of(dot_git_file: str) -> str | None:
    """The main worktree of a linked worktree, from its ``.git`` file (``gitdir: …``) and
    that directory's ``commondir``, as ``git rev-parse --git-common-dir`` would find it
    (None for a submodule or a bare repository's worktree: no main worktree)."""
    try:
        first = read_small_file(dot_git_file, 4096).decode("utf-8").split("\n", 1)[0].strip()
    except (OSError, UnicodeDecodeError):
        return None
    if not first.startswith("gitdir:"):
        return None
    base = os.path.dirname(dot_git_file)
    gitdir = os.path.normpath(os.path.join(base, first[7:].strip()))
    try:
        line = read_small_file(os.path.join(gitdir, "commondir"), 4096).decode("utf-8")
        common = os.path.normpath(os.path.join(gitdir, line.split("\n", 1)[0].strip()))
    except (OSError, UnicodeDecodeError):
        return None  # a submodule, or not a worktree
    if os.path.basename(common) != ".git":
        return None  # a bare repository: no main worktree
    return os.path.dirname(common)


def read_small_file(path: str, limit: int, *, follow_links: bool = True) -> bytes:
    """A regular file's bytes, at most ``limit`` of them, without blocking on a FIFO
    (``O_NONBLOCK`` then ``fstat``) or following a link when ``follow_links`` is false.
    Raises OSError for anything else (a FIFO, a device, a larger file)."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    if not follow_links:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags)
    try:
        st = os.fstat(fd)
        if (st.st_mode & 0o170000) != 0o100000:  # stat.S_ISREG, without importing stat
            raise OSError(f"{path} is not a regular file")
        data = b""
        while len(data) <= limit:
            chunk = os.read(fd, limit + 1 - len(data))
            if not chunk:
                break
            data += chunk
        if len(data) > limit:
            raise OSError(f"{path} is larger than {limit} bytes")
        return data
    finally:
        os.close(fd)


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
    from pathlib import Path

    common_dir = Path(common)
    if common_dir.name == ".git":
        return common_dir.parent
    # A bare repository or an unusual layout: fall back to this worktree's top level.
    top = git(cwd, "rev-parse", "--show-toplevel")
    return Path(top) if top else None


def relative_to_root(root: Path, path: Path | str) -> str:
    """``path`` relative to the project root, with '..' allowed (worktrees beside the repo).

    The store never records absolute paths (principle 9 of docs/design.md).
    """
    from pathlib import Path

    absolute = Path(path) if Path(path).is_absolute() else Path.cwd() / path
    rel = os.path.relpath(os.path.normpath(absolute), os.path.normpath(root))
    return Path(rel).as_posix()
