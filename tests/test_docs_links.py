"""The repository stands alone: code, tests, benchmarks and docs cite docs/design.md, never a
note kept outside the repository, and every docs/design.md section or principle they name
exists.

Notes written before the code (the design brief, the reliability plan, the research on agent
tools and baselines, a code review) are not shipped; what the code relies on from them is
in docs/design.md, with the figures and how they were measured.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DESIGN = ROOT / "docs" / "design.md"
SCANNED = ("src", "tests", "bench", "scripts", "docs")
TOP_LEVEL = ("README.md", "pyproject.toml", "Makefile")
SUFFIXES = {".py", ".md", ".sql", ".toml", ".txt", ".cfg", ".sh", ".js", ".ts"}

# What a citation of a note outside the repository looks like. The names are the notes'
# file names (case-sensitive: DESIGN.md is the outside brief, docs/design.md is ours), the
# reliability plan's test numbers ("R12", "(R3/R5)", "§S4") and the phrases used to credit
# research by reference.
OUTSIDE = re.compile(
    r"\.\./shared"
    r"|shared/reference|\breference/"
    r"|(?<![\w/.-])(?:DESIGN|STYLE)\.md"
    r"|\b(?:reliability|integrations|peers|performance|code-models|next-capabilities)\.md"
    r"|\bcode-review-\d"
    r"|\breliability plan"
    r"|\breference (?:research|measurements?|notes?)"
    r"|[(/ ]R(?:[1-9]|1\d|20)b?[):/]"
    r"|§S\d"
)

# docs/design.md "Section" (also after a comma or across a comment's line break), and
# "Section" in docs/design.md.
SECTION_AFTER = re.compile(r'docs/design\.md[,\s]\s*(?:#\s*)?"([^"\n]+(?:\n\s*(?:#\s*)?[^"\n]+)?)"')
SECTION_BEFORE = re.compile(r'"([^"\n]+)"\s+in\s+docs/design\.md')
PRINCIPLE = re.compile(
    r"\bprinciples?\s+(\d+)(?:\s+and\s+(\d+))?(?:,\s*|\s+of\s+|\s+in\s+|\s+\()docs/design\.md"
)
INVARIANT = re.compile(r"\binvariants?\s+(\d+)(?:\s+and\s+(\d+))?\s+of\s+docs/design\.md")


def scanned_files() -> list[Path]:
    """Everything a reader of the repository reads, except this file (it names the notes)."""
    files = [ROOT / name for name in TOP_LEVEL if (ROOT / name).is_file()]
    for top in SCANNED:
        for path in sorted((ROOT / top).rglob("*")):
            parts = set(path.relative_to(ROOT).parts)
            if parts & {"__pycache__", ".venv", "node_modules"} or not path.is_file():
                continue
            if path.suffix in SUFFIXES and path != Path(__file__).resolve():
                files.append(path)
    return files


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def outside_citations(text: str) -> list[tuple[int, str]]:
    return [
        (text.count("\n", 0, match.start()) + 1, match.group(0)) for match in OUTSIDE.finditer(text)
    ]


def design_sections() -> set[str]:
    """Every heading of docs/design.md, also without its trailing parenthesis
    ("Permissions and links (`files.py`)" is cited as "Permissions and links")."""
    names: set[str] = set()
    for line in DESIGN.read_text(encoding="utf-8").splitlines():
        heading = re.match(r"#{2,4} (.+)", line)
        if heading:
            name = heading.group(1).strip()
            names.add(name)
            names.add(re.sub(r"\s*\([^()]*\)$", "", name))
    return names


def numbered_items(section: str) -> set[int]:
    """The numbers of the list items (``N. **...**``) of one section of docs/design.md."""
    text = DESIGN.read_text(encoding="utf-8")
    match = re.search(rf"^## {re.escape(section)}\n(.*?)(?=^## )", text, re.M | re.S)
    assert match, f'docs/design.md has no "{section}" section'
    return {int(n) for n in re.findall(r"^(\d+)\. \*\*", match.group(1), re.M)}


def test_the_patterns_catch_what_they_are_for() -> None:
    """Each kind of outside citation the repository once held is caught; ours are not."""
    caught = [
        "see ../shared/DESIGN.md",
        "(DESIGN.md principle 5)",
        "reliability.md R15",
        "(integrations.md §2.4 rule 10)",
        "format (peers.md §4.1)",
        "measured (performance.md): 3.9x",
        "code-review-2026-12.md",
        "measured by the reference research",
        "in the reference measurements",
        "(R12), which",
        "(reliability plan S1, S3)",
        "Invariants checked (R3/R5):",
        "Encodings (§S4 of the plan)",
    ]
    for text in caught:
        assert outside_citations(text), text
    ours = [
        "principle 5 of docs/design.md",
        'docs/design.md "Recovery"',
        "docs/design.md, docs/schema.md",
        "RE2 (google-re2)",
        "a stream's R2 bucket",
    ]
    for text in ours:
        assert not outside_citations(text), text


def test_nothing_cites_a_note_outside_the_repository() -> None:
    problems = []
    for path in scanned_files():
        found = outside_citations(path.read_text(encoding="utf-8", errors="replace"))
        problems += [f"{rel(path)}:{line}: {text!r}" for line, text in found]
    assert not problems, (
        "cite docs/design.md (or say what the note says) instead of a note outside the "
        "repository:\n" + "\n".join(problems)
    )


def test_cited_design_sections_exist() -> None:
    sections = design_sections()
    missing = []
    for path in scanned_files():
        text = path.read_text(encoding="utf-8", errors="replace")
        for pattern in (SECTION_AFTER, SECTION_BEFORE):
            for match in pattern.finditer(text):
                cited = re.sub(r"\s*\n\s*(?:#\s*)?", " ", match.group(1)).strip()
                if cited not in sections:
                    line = text.count("\n", 0, match.start()) + 1
                    missing.append(f'{rel(path)}:{line}: docs/design.md "{cited}"')
    assert not missing, "no such section in docs/design.md:\n" + "\n".join(missing)


def test_cited_principles_and_invariants_exist() -> None:
    principles, invariants = numbered_items("Principles"), numbered_items("Invariants")
    assert principles == set(range(1, 12)), principles
    wrong = []
    for path in scanned_files():
        text = path.read_text(encoding="utf-8", errors="replace")
        for pattern, known, what in (
            (PRINCIPLE, principles, "principle"),
            (INVARIANT, invariants, "invariant"),
        ):
            for match in pattern.finditer(text):
                for number in filter(None, match.groups()):
                    if int(number) not in known:
                        line = text.count("\n", 0, match.start()) + 1
                        wrong.append(f"{rel(path)}:{line}: {what} {number}")
    assert not wrong, "docs/design.md has no such item:\n" + "\n".join(wrong)
