"""Spec files: found by their layouts, indexed as documents of namespace ``specs``.

:func:`spec_sources` is what :class:`~agentkeep.services.docs.DocService` calls on each
rescan: the spec files of the project, each with the ``convention`` (layout) it was found
by. Detection is a fixed set of directory probes — never a walk of the whole project:

=============  ===========================================================================
convention     files
=============  ===========================================================================
``spec-kit``   ``.specify/memory/*.md``; ``specs/NNN-name/*.md`` and everything under
               their ``contracts/`` and ``checklists/``
``kiro``       ``.kiro/specs/<feature>/*.md``; ``.kiro/steering/*.md`` (front matter
               ``inclusion: always|fileMatch|manual``, ``fileMatchPattern``)
``agent-os``   ``agent-os/standards/**`` (with ``index.yml``, the standards' descriptions),
               ``agent-os/product/**``, ``agent-os/specs/**``
``openspec``   ``openspec/project.md``, ``openspec/AGENTS.md``,
               ``openspec/specs/<capability>/**``, ``openspec/changes/**`` (archive too)
``adr``        ``docs/adr/*.md``, ``doc/adr/*.md``, ``adr/*.md`` (and ``docs/decisions/``)
``agents-md``  ``AGENTS.md`` at the root and in directories two levels down at most
``claude-md``  ``CLAUDE.md`` likewise, and ``.claude/CLAUDE.md``
``cursor``     ``.cursor/rules/*`` (``.mdc``: front matter ``globs``, ``alwaysApply``)
``manifest``   the files of the ``include`` globs and the domains' ``specs`` globs of
               ``.agentkeep/specs.toml``
=============  ===========================================================================

A spec's ref is ``specs/<its path without extension>`` (``specs/.kiro/steering/tech``).
Every convention has its :class:`~agentkeep.services.docs.Root` (origin ``spec``), whose
directory is the project root, so that a spec's name is its path whichever code reads it.

**The manifest**, ``.agentkeep/specs.toml`` (in git), maps domains of code to their specs
and adds or removes spec files::

    [specs]
    include = ["design/**/*.md"]      # more spec files (globs from the project root)
    exclude = ["specs/*/research.md"] # never index these (detected or included)
    detect = true                     # false: only the manifest's files

    [[domain]]
    name = "auth"
    code = ["src/auth/**", "tests/test_auth*"]   # the code of the domain
    specs = ["specs/001-auth/**", ".kiro/specs/login/*.md"]
    always = false                    # true: its specs go into every context

Globs: ``*`` and ``?`` stay within one directory, ``**`` crosses any number of them, and a
pattern without ``/`` matches a file's name in any directory (``*.md``). A manifest that
does not parse is an error for ``agentkeep context`` (said with its line); the rescans of
the document index skip it rather than fail every read.
"""

from __future__ import annotations

import functools
import os
import re
import tomllib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentkeep.documents import format as docformat
from agentkeep.errors import InvalidInput

if TYPE_CHECKING:
    from agentkeep.services.docs import DocService, Root, Source

NAMESPACE = "specs"
MANIFEST = "specs.toml"  # inside .agentkeep/
CONVENTIONS = (
    "spec-kit",
    "kiro",
    "agent-os",
    "openspec",
    "adr",
    "agents-md",
    "claude-md",
    "cursor",
    "manifest",
)
SPEC_SUFFIXES = (*docformat.SUFFIXES, ".mdc")
# Directories never looked into for nested AGENTS.md / CLAUDE.md (besides hidden ones).
SKIP_DIRS = frozenset(
    {"node_modules", "vendor", "venv", "dist", "build", "target", "__pycache__", "site-packages"}
)
NESTED_DEPTH = 2  # AGENTS.md / CLAUDE.md are looked for this many directories down
MAX_TREE_FILES = 5000  # files taken from one convention's directory tree at most
_FEATURE = re.compile(r"^(\d{3})-(.+)$")


@dataclass(frozen=True)
class Domain:
    """A domain of the manifest: the code it covers and the specs that describe it."""

    name: str
    code: tuple[str, ...] = ()
    specs: tuple[str, ...] = ()
    always: bool = False

    def covers(self, rel: str) -> str | None:
        """The first code glob matching ``rel``, or None."""
        return next((g for g in self.code if glob_match(g, rel)), None)

    def has_spec(self, rel: str) -> bool:
        return any(glob_match(g, rel) for g in self.specs)


@dataclass(frozen=True)
class Manifest:
    """``.agentkeep/specs.toml`` (see the module doc); empty when there is none."""

    domains: tuple[Domain, ...] = ()
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    detect: bool = True
    path: Path | None = None
    problems: list[str] = field(default_factory=list)

    def excluded(self, rel: str) -> bool:
        return any(glob_match(g, rel) for g in self.exclude)


def load_manifest(store_dir: Path) -> Manifest:
    """The manifest of the store's project (an empty one when there is no file).
    Raises InvalidInput, naming the problem, when it does not parse or holds bad values."""
    path = store_dir / MANIFEST
    try:
        data = path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return Manifest()
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        doc = tomllib.loads(data.decode("utf-8", "replace"))
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(
            f"{path} is not valid TOML: {exc}", hint="docs/context.md describes the manifest"
        ) from exc
    where = f"{path.name}"
    specs = doc.get("specs", {})
    if not isinstance(specs, dict):
        raise InvalidInput(f"{where}: [specs] must be a table")
    domains_raw = doc.get("domain", [])
    if not isinstance(domains_raw, list):
        raise InvalidInput(f"{where}: domains are [[domain]] tables")
    domains: list[Domain] = []
    seen: set[str] = set()
    for number, raw in enumerate(domains_raw, 1):
        if not isinstance(raw, dict):
            raise InvalidInput(f"{where}: domain {number} is not a table")
        name = raw.get("name")
        if not isinstance(name, str) or not name.strip():
            raise InvalidInput(f"{where}: domain {number} has no name")
        if name in seen:
            raise InvalidInput(f"{where}: domain {name!r} is declared twice")
        seen.add(name)
        unknown = sorted(set(raw) - {"name", "code", "specs", "always"})
        if unknown:
            raise InvalidInput(
                f"{where}: domain {name!r} has unknown keys: {', '.join(unknown)}",
                hint="a domain has name, code, specs and always",
            )
        always = raw.get("always", False)
        if not isinstance(always, bool):
            raise InvalidInput(f"{where}: domain {name!r}: always is true or false")
        domains.append(
            Domain(
                name.strip(),
                _globs(raw.get("code", []), f"domain {name!r} code"),
                _globs(raw.get("specs", []), f"domain {name!r} specs"),
                always,
            )
        )
    unknown = sorted(set(specs) - {"include", "exclude", "detect"})
    if unknown:
        raise InvalidInput(f"{where}: [specs] has unknown keys: {', '.join(unknown)}")
    detect = specs.get("detect", True)
    if not isinstance(detect, bool):
        raise InvalidInput(f"{where}: [specs] detect is true or false")
    return Manifest(
        tuple(domains),
        _globs(specs.get("include", []), "[specs] include"),
        _globs(specs.get("exclude", []), "[specs] exclude"),
        detect,
        path,
    )


def _globs(value: Any, what: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise InvalidInput(f"{MANIFEST}: {what} must be a list of globs")
    globs = tuple(v.strip().lstrip("/").removeprefix("./") for v in value)
    for glob in globs:
        if ".." in glob.split("/"):
            raise InvalidInput(f"{MANIFEST}: {what}: {glob!r} leaves the project")
    return globs


# -- globs -------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1024)
def _glob_regex(pattern: str) -> re.Pattern[str]:
    pattern = pattern.strip().lstrip("/").removeprefix("./")
    if "/" not in pattern.rstrip("/"):
        pattern = "**/" + pattern  # a bare name matches in any directory
    if pattern.endswith("/"):
        pattern += "**"
    out: list[str] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif char == "*":
            out.append("[^/]*")
            i += 1
        elif char == "?":
            out.append("[^/]")
            i += 1
        elif char == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                out.append(re.escape(char))
                i += 1
            else:
                body = pattern[i + 1 : end].replace("\\", "\\\\")
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append(f"[{body}]")
                i = end + 1
        else:
            out.append(re.escape(char))
            i += 1
    return re.compile("".join(out) + r"\Z")


def glob_match(pattern: str, rel: str) -> bool:
    """Whether the project-relative path ``rel`` ('/'-separated) matches ``pattern``."""
    try:
        return _glob_regex(pattern).match(rel.lstrip("/").removeprefix("./")) is not None
    except re.error:
        return False


def patterns_of(value: Any) -> list[str]:
    """Globs written as a list or as comma-separated text (Kiro's ``fileMatchPattern``,
    Cursor's ``globs``)."""
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list):
        return []
    return [str(v).strip() for v in value if isinstance(v, str) and v.strip()]


# -- detection ---------------------------------------------------------------------------------


def detect(root: Path, manifest: Manifest) -> list[tuple[str, str]]:
    """``(path relative to root, convention)`` of every spec file, each once (the first
    convention that finds a file keeps it), sorted by path within each convention."""
    found: dict[str, str] = {}

    def add(paths: Iterable[str], convention: str) -> None:
        for rel in paths:
            if rel not in found and not manifest.excluded(rel):
                found[rel] = convention

    if manifest.detect:
        add(_files(root, ".specify/memory", deep=False), "spec-kit")
        for feature in _dirs(root, "specs"):
            if _FEATURE.match(feature):
                add(_files(root, f"specs/{feature}", deep=False), "spec-kit")
                add(_files(root, f"specs/{feature}/contracts", deep=True), "spec-kit")
                add(_files(root, f"specs/{feature}/checklists", deep=True), "spec-kit")
        add(_files(root, ".kiro/steering", deep=False), "kiro")
        for feature in _dirs(root, ".kiro/specs"):
            add(_files(root, f".kiro/specs/{feature}", deep=False), "kiro")
        for part in ("standards", "product", "specs"):
            add(_files(root, f"agent-os/{part}", deep=True), "agent-os")
        add(_files(root, "openspec", deep=False), "openspec")
        add(_files(root, "openspec/specs", deep=True), "openspec")
        add(_files(root, "openspec/changes", deep=True), "openspec")
        for base in ("docs/adr", "doc/adr", "adr", "docs/decisions"):
            add(_files(root, base, deep=False), "adr")
        for rel, convention in _nested(root, {"AGENTS.md": "agents-md", "CLAUDE.md": "claude-md"}):
            add([rel], convention)
        add(_files(root, ".claude", deep=False, names=("CLAUDE.md",)), "claude-md")
        add(_files(root, ".cursor/rules", deep=True), "cursor")
    globs = [*manifest.include, *(g for d in manifest.domains for g in d.specs)]
    add(_globbed(root, globs), "manifest")
    return sorted(found.items(), key=lambda item: (CONVENTIONS.index(item[1]), item[0]))


def _usable_name(name: str) -> bool:
    return not name.startswith(".") and ".tmp-" not in name and name.lower().endswith(SPEC_SUFFIXES)


def _usable(root: Path, path: Path, name: str) -> bool:
    """A regular file (or a link to one inside the project) that may be a document."""
    if not _usable_name(name):
        return False
    try:
        if path.is_symlink():
            path.resolve(strict=True).relative_to(root.resolve())
        return path.is_file()
    except (OSError, ValueError, RuntimeError):
        return False


def _dirs(root: Path, base: str) -> list[str]:
    try:
        with os.scandir(root / base) as entries:
            return sorted(e.name for e in entries if e.is_dir() and not e.name.startswith("."))
    except OSError:
        return []


def _files(
    root: Path, base: str, *, deep: bool, names: Sequence[str] | None = None
) -> Iterator[str]:
    """The spec files in ``root/base`` (and below it when ``deep``), by scandir: one
    system call per directory, no stat per file but for symbolic links."""
    prefix = len(str(root)) + 1
    pending = [str(root / base)]
    count = 0
    while pending:
        directory = pending.pop()
        try:
            with os.scandir(directory) as scan:
                entries = sorted(scan, key=lambda entry: entry.name)
        except OSError:
            continue
        below: list[str] = []
        for entry in entries:
            name = entry.name
            if name.startswith("."):
                continue
            try:
                if entry.is_dir(follow_symlinks=False):
                    if deep:
                        below.append(entry.path)
                    continue
                if (names is not None and name not in names) or not _usable_name(name):
                    continue
                if entry.is_symlink():
                    if not _usable(root, Path(entry.path), name):
                        continue
                elif not entry.is_file(follow_symlinks=False):
                    continue
            except OSError:
                continue
            yield entry.path[prefix:].replace(os.sep, "/")
            count += 1
            if count >= MAX_TREE_FILES:
                return
        pending.extend(reversed(below))


def _nested(root: Path, names: Mapping[str, str]) -> Iterator[tuple[str, str]]:
    """``(path, convention)`` of the files ``names`` (name → convention) at the root and
    in the directories ``NESTED_DEPTH`` levels below it: one scandir per directory."""
    prefix = len(str(root)) + 1
    level = [str(root)]
    for depth in range(NESTED_DEPTH + 1):
        following: list[str] = []
        for directory in level:
            try:
                with os.scandir(directory) as scan:
                    entries = sorted(scan, key=lambda entry: entry.name)
            except OSError:
                continue
            for entry in entries:
                try:
                    if entry.name in names:
                        if _usable(root, Path(entry.path), entry.name):
                            rel = entry.path[prefix:].replace(os.sep, "/")
                            yield rel, names[entry.name]
                    elif (
                        depth < NESTED_DEPTH
                        and not entry.name.startswith(".")
                        and entry.name not in SKIP_DIRS
                        and entry.is_dir(follow_symlinks=False)
                    ):
                        following.append(entry.path)
                except OSError:
                    continue
        level = following


def _globbed(root: Path, globs: Sequence[str]) -> Iterator[str]:
    """The files matching the globs: each glob's directories without wildcards are its
    base, listed by :func:`_files` (deep when the rest crosses directories) and filtered."""
    for pattern in globs:
        if pattern.endswith("/"):
            pattern += "**"
        parts = pattern.split("/")
        fixed = 0
        while fixed < len(parts) - 1 and not any(c in parts[fixed] for c in "*?["):
            fixed += 1
        base = "/".join(parts[:fixed])
        if ".agentkeep" in parts[:fixed]:
            continue
        rest = parts[fixed:]
        deep = len(rest) > 1 or "**" in rest[0]
        regex = _glob_regex(pattern)
        for rel in _files(root, base, deep=deep):
            if "/" not in pattern and "/" in rel:
                continue  # a bare pattern names files at the root
            if regex.match(rel) is not None:
                yield rel


def spec_sources(docs: DocService) -> list[Source]:
    """The spec files of the project as document sources (namespace ``specs``, origin
    ``spec``, one :class:`Root` per convention). A manifest that does not parse is left
    out here (``agentkeep context`` reports it)."""
    from agentkeep.services.docs import Root, Source

    root = docs.root
    try:
        manifest = load_manifest(docs.store_dir)
    except InvalidInput:
        manifest = Manifest()
    roots: dict[str, Root] = {}
    sources: list[Source] = []
    for rel, convention in detect(root, manifest):
        spec_root = roots.setdefault(convention, Root(root, NAMESPACE, "spec", convention))
        name = rel.rsplit(".", 1)[0] if "." in Path(rel).name else rel
        sources.append(Source(spec_root, root / rel, rel, NAMESPACE, name, convention))
    return sources


def feature_of(rel: str, convention: str | None) -> tuple[str, str] | None:
    """The feature (or capability) a spec file belongs to by its layout, and that
    feature's directory: ``("auth", "specs/001-auth")`` for ``specs/001-auth/plan.md``,
    ``("login", ".kiro/specs/login")``, ``("auth", "openspec/specs/auth")``, an OpenSpec
    change (archived ones without their date); None for other files."""
    parts = rel.split("/")
    if convention == "spec-kit" and len(parts) >= 3 and parts[0] == "specs":
        match = _FEATURE.match(parts[1])
        return (match.group(2), "/".join(parts[:2])) if match else None
    if convention == "kiro" and len(parts) >= 4 and parts[:2] == [".kiro", "specs"]:
        return parts[2], "/".join(parts[:3])
    if convention == "openspec" and len(parts) >= 4 and parts[0] == "openspec":
        if parts[1] == "specs" or (parts[1] == "changes" and parts[2] != "archive"):
            return parts[2], "/".join(parts[:3])
        if parts[1] == "changes" and len(parts) >= 5:
            return re.sub(r"^\d{4}-\d{2}-\d{2}-", "", parts[3]), "/".join(parts[:4])
    return None


def words(text: str) -> set[str]:
    """The lower-case words of a name or path (split at '-', '_', '/', '.', case changes)."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", text)
    return {w for w in re.split(r"[^A-Za-z0-9]+", spaced.lower()) if w}
