"""The document file format: Markdown with front matter, or JSON.

A Markdown document may begin with front matter, YAML between ``---`` lines (what Obsidian,
Kiro, basic-memory and most static-site tools write) or JSON after a ``---json`` line (what
machine writers such as messages use: no YAML type surprises)::

    ---
    type: decision
    title: Store sessions in SQLite
    tags: [storage]
    links: {supersedes: [decisions/0001-files]}
    ---
    # Store sessions in SQLite
    … see [[specs/storage]] …

A JSON document is one object; its members are the fields. Anything else (``.txt``, a
Markdown file whose front matter does not parse) is indexed as text, with the reason in
its problems. Parsing never raises for a file's content: a user's own file is indexed as
well as it can be, never refused and never rewritten.

Fields agentkeep reads: ``type``, ``title``, ``tags`` (a list or comma-separated text),
``links`` (a list of targets, or relation → target(s)). Links in the text are ``[[target]]``
(``[[target|label]]``), a basic-memory relation line ``- relation [[target]]``, and Kiro's
``#[[file:path]]`` (relation ``includes``).

:func:`chunks` cuts the text at its headings (ATX ``#`` headings outside fenced code): the
units search and ``agentkeep context`` rank.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

MARKDOWN_SUFFIXES = (".md", ".markdown", ".mdx")
JSON_SUFFIXES = (".json",)
TEXT_SUFFIXES = (".txt", ".yml", ".yaml", ".toml")
SUFFIXES = MARKDOWN_SUFFIXES + JSON_SUFFIXES + TEXT_SUFFIXES

_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$")
_FENCE = re.compile(r"^[ \t]{0,3}(```|~~~)")
_WIKI = re.compile(r"(#?)\[\[([^\[\]|\n]+?)(?:\|[^\[\]\n]*)?\]\]")
_RELATION_LINE = re.compile(
    r"^[ \t]*[-*][ \t]+([A-Za-z_][\w-]*)[ \t]+\[\[([^\[\]|\n]+?)(?:\|[^\]]*)?\]\]"
)


@dataclass
class Parsed:
    format: str  # markdown | json | text
    fields: dict[str, Any]
    body: str
    front: str = "yaml"  # the front matter's syntax: yaml | json (markdown only)
    problems: list[str] = field(default_factory=list)

    @property
    def type(self) -> str | None:
        value = self.fields.get("type")
        return str(value) if isinstance(value, str | int) and str(value).strip() else None

    def title(self, fallback: str) -> str:
        value = self.fields.get("title")
        if isinstance(value, str) and value.strip():
            return value.strip()
        for line in self.body.splitlines():
            match = _HEADING.match(line)
            if match and len(match.group(1)) == 1:
                return match.group(2).strip()
        return fallback

    def tags(self) -> list[str]:
        value = self.fields.get("tags")
        if isinstance(value, str):
            value = value.split(",")
        if not isinstance(value, list):
            return []
        return sorted({str(tag).strip().lstrip("#") for tag in value if str(tag).strip()})


def format_of(suffix: str) -> str:
    suffix = suffix.lower()
    if suffix in MARKDOWN_SUFFIXES:
        return "markdown"
    if suffix in JSON_SUFFIXES:
        return "json"
    return "text"


def plain(value: Any) -> Any:
    """A YAML value as JSON can hold it: dates and times become ISO text, other scalars
    that JSON lacks become text, mapping keys become text."""
    if isinstance(value, Mapping):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set):
        return [plain(item) for item in value]
    if isinstance(value, _dt.datetime | _dt.date | _dt.time):
        return value.isoformat()
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return (
            value if value == value and value not in (float("inf"), float("-inf")) else str(value)
        )
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def parse(text: str, suffix: str) -> Parsed:
    """The fields and body of a document's text (never raises for bad content)."""
    kind = format_of(suffix)
    if kind == "json":
        try:
            value = json.loads(text)
        except ValueError as exc:
            return Parsed("text", {}, text, problems=[f"not valid JSON: {exc}"])
        if not isinstance(value, dict):
            return Parsed("text", {}, text, problems=["a JSON document must be an object"])
        return Parsed("json", plain(value), "")
    if kind == "text":
        return Parsed("text", {}, text)
    return _parse_markdown(text)


def _parse_markdown(text: str) -> Parsed:
    if text.startswith("\ufeff"):
        text = text[1:]
    first, newline, rest = text.partition("\n")
    opener = first.rstrip()
    if not newline or opener not in ("---", "---json"):
        return Parsed("markdown", {}, text)
    end = re.search(r"^(?:---|\.\.\.)[ \t]*$", rest, re.MULTILINE)
    if end is None:
        return Parsed("markdown", {}, text, problems=["the front matter is never closed (---)"])
    head = rest[: end.start()]
    body = rest[end.end() :]
    body = body[1:] if body.startswith("\n") else body
    if opener == "---json":
        try:
            value: Any = json.loads(head or "{}")
        except ValueError as exc:
            return Parsed("markdown", {}, body, "json", [f"front matter is not valid JSON: {exc}"])
        front = "json"
    else:
        import yaml  # PyYAML, safe loading only: a document never constructs Python objects

        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's: much faster
        try:
            value = yaml.load(head, Loader=loader) if head.strip() else {}
        except yaml.YAMLError as exc:
            reason = str(exc).splitlines()[0] if str(exc) else "bad YAML"
            return Parsed(
                "markdown", {}, body, problems=[f"front matter is not valid YAML: {reason}"]
            )
        front = "yaml"
    if value is None:
        value = {}
    if not isinstance(value, dict):
        return Parsed("markdown", {}, body, front, ["front matter must be a mapping of fields"])
    return Parsed("markdown", plain(value), body, front)


def render(fields: Mapping[str, Any], body: str, fmt: str, *, front: str = "yaml") -> str:
    """A document's text: JSON for ``json``; for ``markdown`` the front matter (YAML, or
    JSON when ``front`` is ``json``; none when there are no fields) and the body."""
    if fmt == "json":
        return json.dumps(dict(fields), indent=2, ensure_ascii=False) + "\n"
    if fmt == "text":
        return body
    if not fields:
        # A body that would read as front matter (or lose its byte order mark) gets an
        # empty one, so parse(render(…)) gives it back.
        ambiguous = body.startswith("\ufeff") or body.partition("\n")[0].rstrip() in (
            "---",
            "---json",
        )
        return f"---\n---\n{body}" if ambiguous else body
    if front == "json":
        head = json.dumps(dict(fields), indent=2, ensure_ascii=False)
        return f"---json\n{head}\n---\n{body}"
    import yaml

    head = yaml.dump(dict(fields), Dumper=_dumper(), sort_keys=False, allow_unicode=True, width=100)
    return f"---\n{head}---\n{body}"


# Characters YAML reads back as something else outside double quotes: line breaks it folds
# or normalises (NEL, LS, PS, CR) and controls. A string holding one is written
# double-quoted, where they are escaped (found by the round-trip property test).
_NEEDS_QUOTES = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\ufeff]")
_DUMPER: Any = None


def _dumper() -> Any:
    """PyYAML's safe dumper (libyaml's when installed: several times faster), with strings
    that need it double-quoted."""
    global _DUMPER
    if _DUMPER is None:
        import yaml

        class Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
            pass

        def represent_str(dumper: Any, value: str) -> Any:
            style = '"' if _NEEDS_QUOTES.search(value) else None
            return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

        Dumper.add_representer(str, represent_str)
        _DUMPER = Dumper
    return _DUMPER


def links(fields: Mapping[str, Any], body: str) -> list[tuple[str, str]]:
    """``(relation, target)`` of every link, sorted, without repeats."""
    found: set[tuple[str, str]] = set()
    declared = fields.get("links")
    if isinstance(declared, str | list):
        declared = {"links_to": declared}
    if isinstance(declared, Mapping):
        for relation, targets in declared.items():
            for target in targets if isinstance(targets, list) else [targets]:
                if isinstance(target, str) and target.strip():
                    found.add((str(relation), target.strip()))
    in_fence = False
    for line in body.splitlines():
        if _FENCE.match(line):
            in_fence = not in_fence
            continue
        if in_fence or "[[" not in line:
            continue
        related = _RELATION_LINE.match(line)
        if related:
            found.add((related.group(1), related.group(2).strip()))
        for hash_mark, target in _WIKI.findall(line):
            target = target.strip()
            if hash_mark and target.startswith("file:"):
                found.add(("includes", target[5:].strip()))
            elif not (related and target == related.group(2).strip()):
                found.add(("links_to", target))
    return sorted(found)


@dataclass(frozen=True)
class Chunk:
    position: int
    heading: str  # the heading path, "Design › Storage"; "" before the first heading
    level: int  # the heading's level (0: the text before any heading)
    text: str


def chunks(parsed: Parsed, *, max_chars: int = 8000) -> list[Chunk]:
    """The document cut at its headings; a section longer than ``max_chars`` is cut at
    paragraph breaks. A JSON document is one chunk of ``field: value`` lines."""
    if parsed.format == "json":
        text = "\n".join(f"{key}: {_flat(value)}" for key, value in parsed.fields.items())
        if not text.strip():
            return []
        return [Chunk(n, "", 0, piece) for n, piece in enumerate(_pieces(text, max_chars))]
    sections: list[tuple[str, int, list[str]]] = [("", 0, [])]
    path: list[tuple[int, str]] = []
    in_fence = False
    for line in parsed.body.splitlines():
        if _FENCE.match(line):
            in_fence = not in_fence
        match = None if in_fence else _HEADING.match(line)
        if match:
            level = len(match.group(1))
            path = [(lvl, name) for lvl, name in path if lvl < level]
            path.append((level, match.group(2).strip()))
            sections.append((" › ".join(name for _, name in path), level, [line]))
        else:
            sections[-1][2].append(line)
    result: list[Chunk] = []
    for heading, level, lines in sections:
        text = "\n".join(lines).strip()
        if not text:
            continue
        for piece in _pieces(text, max_chars):
            result.append(Chunk(len(result), heading, level, piece))
    return result


def _pieces(text: str, max_chars: int) -> list[str]:
    if len(text) <= max_chars:
        return [text]
    pieces: list[str] = []
    current = ""
    for paragraph in re.split(r"\n\s*\n", text):
        while len(paragraph) > max_chars:
            if current:
                pieces.append(current)
                current = ""
            pieces.append(paragraph[:max_chars])
            paragraph = paragraph[max_chars:]
        if current and len(current) + len(paragraph) + 2 > max_chars:
            pieces.append(current)
            current = ""
        current = f"{current}\n\n{paragraph}" if current else paragraph
    if current:
        pieces.append(current)
    return pieces


def _flat(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)
