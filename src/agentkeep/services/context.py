"""Context assembly: what an agent should read for a piece of work, within a budget.

:func:`assemble` takes a task, the files being worked on and/or a query, and returns the
specs and spec sections that apply, the task's latest handoffs and decisions, and the
recent failures on those files — each :class:`ContextItem` with the reasons it was picked
— best first, cut to fit ``budget`` characters of rendered Markdown (:meth:`Context.markdown`).

How items are picked and ranked (a higher score comes first):

1. **always** (100): the specs of manifest domains with ``always = true``, Kiro steering
   files with ``inclusion: always`` (Kiro's default when the front matter says nothing),
   Cursor rules with ``alwaysApply: true``; the spec-kit constitution (95);
2. the task's **newest handoff** (90);
3. **files → domains** (80): a manifest domain whose ``code`` glob matches a file brings its
   ``specs``; a Kiro steering file whose ``fileMatchPattern`` (a Cursor rule whose
   ``globs``) matches a file (85); **directory conventions** (70): ``specs/NNN-auth/``,
   ``.kiro/specs/auth/``, ``openspec/specs/auth/`` for a file whose path holds the words of
   ``auth`` (``src/auth/login.py``), and a nested ``AGENTS.md``/``CLAUDE.md`` for the files
   below its directory (75). Within a feature, ``spec``/``requirements`` come before
   ``design``/``plan``, then ``tasks``, then the rest;
4. the task's decisions (60) and older handoffs, **failures** touching the files in the last
   24 hours (55: a failed tool call whose input names the file, a failed session that
   touched it — what ``prime`` gathers, reused);
5. **Agent OS** ``index.yml``: standards whose description holds a query word (65), and the
   index itself, so the agent can pick the others (50);
6. **sections** (10–50): the chunks of every indexed document (specs and docs) ranked by
   the backend's full-text index for the words of the query and of the task's title,
   labels and body. Words are OR-ed (each is ranked on its own, scores add up: bm25 is a
   sum over terms), so a section holding more of them, rarer ones and in its heading ranks
   first; the query's words all together add the score of that match again. When
   semantic ranking is configured (``agentkeep.semantic``), its ranking is fused with this
   one by reciprocal rank fusion;
7. the task's other notes (40).

A document picked whole is not repeated as sections: a section's reasons join its
document's. The budget counts the rendered Markdown; items are taken best first while
they fit; the first one that does not fit is cut to the room left (when at least
:data:`MIN_CUT` characters are) and assembly stops; one whole spec takes at most
:data:`SPEC_SHARE` of the budget. Everything shown comes from the index (redacted when
indexed) or from stored notes and captures (redacted when stored); nothing is read from
a spec file but Agent OS's ``index.yml``, whose descriptions are redacted here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentkeep.backends.base import Indexed, SearchTerm
from agentkeep.boundary import redact_text
from agentkeep.errors import AgentkeepError, InvalidInput
from agentkeep.record import Record
from agentkeep.services import specs as specmod
from agentkeep.services.base import Service
from agentkeep.timeutil import iso_utc

if TYPE_CHECKING:
    from agentkeep.store import Store

KINDS = ("spec", "section", "handoff", "decision", "failure", "note")
DEFAULT_BUDGET = 10_000
MIN_BUDGET = 200
MIN_CUT = 200  # an item is cut to the room left only if that keeps this much of its text
SPEC_SHARE = 0.4  # one whole spec takes at most this share of the budget
SECTIONS = 40  # candidates ranked per query word
MAX_TERMS = 12  # query words ranked at most (the query's own first, then the task's)
RECENT_CAPTURES = 300  # prime: the files of this many latest tool calls …
RECENT_FILES = 20  # … at most this many distinct ones
_CHUNKS = Indexed("doc_chunks", at="updated_at", has_session=False)
_WORD = re.compile(r"[^\W_]+")
_FRONT = re.compile(r"\A---[ \t]*\n.*?\n---[ \t]*\n+", re.DOTALL)
# English words that say nothing about which spec applies.
_STOPWORDS_TEXT = """
    a an and are as at be but by can do does for from has have how i if in into is it its
    not of on or our should so that the their then there these this to was we were what when
    where which while who why will with you your fix add make use new update change all any
    also been being get gets just more most must need needs only other some such than them
    they too very via would could"""
STOPWORDS = frozenset(_STOPWORDS_TEXT.split())
# The order of a feature's files (a person reads the spec before its tasks).
_FILE_RANK = {
    "spec": 0,
    "requirements": 0,
    "proposal": 1,
    "design": 1,
    "plan": 1,
    "tasks": 2,
    "data-model": 3,
    "quickstart": 4,
    "research": 4,
}


@dataclass(frozen=True)
class ContextItem(Record):
    """One thing to read. ``kind``: spec (a whole document), section (one heading's text),
    handoff, decision, note, failure. ``ref``: a document's ref (``specs/…``) or
    ``note/ID``, ``capture/ID``, ``session/ID``; ``path``: a document's file; ``id``: the
    chunk, note, capture or session id; ``text`` is cut when ``cut``."""

    kind: str
    ref: str | None
    path: str | None
    id: int | None
    heading: str | None
    text: str
    score: float
    reasons: list[str]
    cut: bool = False


@dataclass(frozen=True)
class Context(Record):
    """The assembled context: ``items`` best first; ``used`` characters of the ``budget``
    (the length of :meth:`markdown`); ``left_out`` candidates that did not fit."""

    items: list[ContextItem]
    budget: int
    used: int
    left_out: int
    truncated: bool
    task_id: int | None
    files: list[str]
    query: str | None
    domains: list[str]
    text: str

    def markdown(self) -> str:
        return self.text

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data["items"] = [item.to_dict() for item in self.items]
        return data


@dataclass
class _Candidate:
    kind: str
    key: str
    score: float
    reasons: list[str]
    ref: str | None = None
    path: str | None = None
    id: int | None = None
    heading: str | None = None
    text: str | None = None  # None: a document's whole text, read when chosen
    doc_id: int | None = None

    def because(self, reason: str, score: float | None = None) -> None:
        if reason not in self.reasons:
            self.reasons.append(reason)
        if score is not None and score > self.score:
            self.score = score


@dataclass
class _Doc:
    id: int
    path: str
    ref: str
    title: str | None
    convention: str | None
    fields: dict[str, Any]
    origin: str
    feature: tuple[str, str] | None = None  # (name, directory) by its layout
    feature_words: frozenset[str] = frozenset()


@dataclass
class _Index:
    """The indexed documents as context needs them, kept between calls of this process
    while the index does not change (its row count, last id and last indexing time)."""

    docs: dict[int, _Doc]
    by_path: dict[str, _Doc]
    rules: list[_Doc]  # steering, Cursor rules, nested AGENTS.md/CLAUDE.md, the constitution
    features: dict[str, list[_Doc]]  # a word of a feature's name → the feature's files
    domain_docs: dict[tuple[str, ...], list[_Doc]]  # a domain's spec globs → its files
    cursor: dict[int, dict[str, Any]]  # a Cursor rule's front matter

    def of_domain(self, domain: specmod.Domain) -> list[_Doc]:
        found = self.domain_docs.get(domain.specs)
        if found is None:
            found = [doc for doc in self.docs.values() if domain.has_spec(doc.path)]
            self.domain_docs[domain.specs] = found
        return found


_INDEXES: dict[str, tuple[tuple[Any, ...], _Index]] = {}


class ContextService(Service):
    def assemble(
        self,
        *,
        task: int | None = None,
        files: Iterable[str] = (),
        query: str | None = None,
        budget: int = DEFAULT_BUDGET,
        kinds: Iterable[str] = KINDS,
        gathered: Mapping[str, Any] | None = None,
    ) -> Context:
        """What to read for ``task`` / ``files`` / ``query`` within ``budget`` characters
        (see the module doc). ``gathered``: what ``prime`` already read (its
        ``tool_failures`` and ``failed_sessions``), so they are not read twice."""
        if isinstance(budget, bool) or not isinstance(budget, int) or budget < MIN_BUDGET:
            raise InvalidInput(f"the budget is at least {MIN_BUDGET} characters")
        wanted = set(kinds)
        unknown = wanted - set(KINDS)
        if unknown:
            raise InvalidInput(f"unknown context kinds: {', '.join(sorted(unknown))}")
        return _Assembly(self._store, self, wanted, gathered).run(task, files, query, budget)

    def recent_files(self, since: str, *, limit: int = RECENT_FILES) -> list[str]:
        """The project files the latest tool calls (captures since ``since``) named in
        their input, newest first."""
        dialect = self.backend.dialect
        try:
            rows = self._rows(
                f"SELECT {dialect.json_get('payload', 'tool_input.file_path')},"
                f" {dialect.json_get('payload', 'tool_input.notebook_path')}, cwd"
                " FROM captures WHERE event IN ('tool_pre', 'tool_post', 'tool_fail')"
                " AND at >= ? ORDER BY id DESC LIMIT ?",
                (since, RECENT_CAPTURES),
            )
        except AgentkeepError:
            return []
        found: list[str] = []
        for row in rows:
            rel = _project_path(self.root, row[0] or row[1], row[2])
            if rel and rel not in found:
                found.append(rel)
                if len(found) >= limit:
                    break
        return found


class _Assembly:
    def __init__(
        self,
        store: Store,
        service: ContextService,
        kinds: set[str],
        gathered: Mapping[str, Any] | None,
    ) -> None:
        self.store = store
        self.service = service
        self.kinds = kinds
        self.gathered = gathered
        self.candidates: dict[str, _Candidate] = {}
        self.index = _Index({}, {}, [], {}, {}, {})

    # -- gathering -----------------------------------------------------------------------------

    def run(
        self, task: int | None, files: Iterable[str], query: str | None, budget: int
    ) -> Context:
        store, root = self.store, self.service.root
        if store.writable:
            store.docs.refresh_if_due()
        manifest = _manifest(self.service.store_dir)
        paths = [p for p in (_project_path(root, f, None) for f in files) if p]
        paths = list(dict.fromkeys(paths))
        task_row = store.tasks.get_task(task) if task is not None else None
        self._load_docs()
        domains = self._always(manifest)
        domains += self._by_files(manifest, paths)
        words = self._words(query, task_row)
        self._agent_os(words)
        self._named(words)
        if "section" in self.kinds and words:
            self._sections(words, _query_words(query or ""))
        if task_row is not None:
            self._notes(task_row.id)
        if paths and "failure" in self.kinds:
            self._failures(paths)
        header = _header(task_row, paths, query)
        items, _used, left_out, truncated = self._fit(header, budget)
        text = header + "".join(_render(item) for item in items)
        return Context(
            items=items,
            budget=budget,
            used=len(text),
            left_out=left_out,
            truncated=truncated,
            task_id=task_row.id if task_row else None,
            files=paths,
            query=query,
            domains=sorted(set(domains)),
            text=text,
        )

    def _load_docs(self) -> None:
        key_row = self.service._row("SELECT count(*), max(id), max(indexed_at) FROM docs")
        key = (str(self.service.root), *(tuple(key_row) if key_row is not None else ()))
        where = str(self.service.store_dir)
        cached = _INDEXES.get(where)
        if cached is not None and cached[0] == key:
            self.index = cached[1]
            return
        index = _Index({}, {}, [], {}, {}, {})
        rows = self.service._rows(
            "SELECT id, path, namespace, name, title, convention, fields, origin FROM docs"
        )
        for row in rows:
            fields = row["fields"]
            convention = row["convention"]
            doc = _Doc(
                int(row["id"]),
                str(row["path"]),
                f"{row['namespace']}/{row['name']}",
                row["title"],
                convention,
                fields if isinstance(fields, dict) else {},
                str(row["origin"]),
            )
            if convention in ("kiro", "cursor") and isinstance(fields, str):
                doc.fields = json.loads(fields)
            if convention in ("spec-kit", "kiro", "openspec"):
                doc.feature = specmod.feature_of(doc.path, convention)
                if doc.feature is not None:
                    doc.feature_words = frozenset(specmod.words(doc.feature[0]))
                    for word in doc.feature_words:
                        index.features.setdefault(word, []).append(doc)
            if (
                _steering(doc)
                or convention == "cursor"
                or (convention in ("agents-md", "claude-md") and "/" in doc.path)
                or doc.path == ".specify/memory/constitution.md"
            ):
                index.rules.append(doc)
            index.docs[doc.id] = doc
            index.by_path[doc.path] = doc
        self.index = index
        _INDEXES[where] = (key, index)

    def _spec(self, doc: _Doc, score: float, reason: str) -> None:
        if "spec" not in self.kinds:
            return
        key = f"doc:{doc.id}"
        found = self.candidates.get(key)
        if found is None:
            if doc.feature is not None:
                score -= _FILE_RANK.get(Path(doc.path).stem.lower(), 5) * 0.5
            self.candidates[key] = _Candidate(
                "spec", key, score, [reason], doc.ref, doc.path, doc.id, doc.title, None, doc.id
            )
        else:
            found.because(reason, score)

    def _always(self, manifest: specmod.Manifest) -> list[str]:
        domains: list[str] = []
        for domain in manifest.domains:
            if domain.always:
                for doc in self.index.of_domain(domain):
                    self._spec(doc, 100, f"domain {domain.name} is always included")
                    domains.append(domain.name)
        for doc in self.index.rules:
            if _steering(doc) and _inclusion(doc) == "always":
                self._spec(doc, 100, "steering: inclusion always")
            elif doc.convention == "cursor" and _cursor_rule(self, doc).get("alwaysApply") is True:
                self._spec(doc, 100, "cursor rule: alwaysApply")
            elif doc.convention == "spec-kit" and doc.path == ".specify/memory/constitution.md":
                self._spec(doc, 95, "spec-kit constitution: the project's principles")
        return domains

    def _by_files(self, manifest: specmod.Manifest, paths: Sequence[str]) -> list[str]:
        domains: list[str] = []
        for rel in paths:
            for domain in manifest.domains:
                if domain.covers(rel) is None:
                    continue
                domains.append(domain.name)
                for doc in self.index.of_domain(domain):
                    self._spec(doc, 80, f"domain {domain.name} matches {rel}")
            for doc in self.index.rules:
                if _steering(doc) and _inclusion(doc) == "fileMatch":
                    for pattern in specmod.patterns_of(doc.fields.get("fileMatchPattern")):
                        if specmod.glob_match(pattern, rel):
                            self._spec(
                                doc, 85, f"steering: fileMatchPattern {pattern} matches {rel}"
                            )
                            break
                elif doc.convention == "cursor":
                    for pattern in specmod.patterns_of(_cursor_rule(self, doc).get("globs")):
                        if specmod.glob_match(pattern, rel):
                            self._spec(doc, 85, f"cursor rule: globs {pattern} matches {rel}")
                            break
                elif doc.convention in ("agents-md", "claude-md"):
                    directory = doc.path.rsplit("/", 1)[0]
                    if rel.startswith(directory + "/"):
                        self._spec(doc, 75, f"{doc.path} covers {rel}")
            file_words = specmod.words(rel.rsplit(".", 1)[0])
            seen: set[int] = set()
            for word in file_words:
                for doc in self.index.features.get(word, ()):
                    if doc.id in seen or doc.feature is None:
                        continue
                    seen.add(doc.id)
                    if doc.feature_words <= file_words:
                        where = doc.feature[1]
                        self._spec(doc, 70, f"directory convention: {where} matches {rel}")
        return domains

    def _words(self, query: str | None, task: Any) -> list[str]:
        texts = [query or ""]
        if task is not None:
            texts += [task.title, " ".join(task.labels), task.body or ""]
        found: list[str] = []
        for text in texts:
            for word in _query_words(text):
                if word not in found:
                    found.append(word)
        return found[:MAX_TERMS]

    def _named(self, words: Sequence[str]) -> None:
        """Kiro steering with ``inclusion: manual`` whose name the query or task says
        (``release`` for ``.kiro/steering/release.md``)."""
        said = set(words)
        for doc in self.index.rules:
            if _steering(doc) and _inclusion(doc) == "manual":
                name = Path(doc.path).stem
                if specmod.words(name) <= said:
                    self._spec(doc, 75, f"steering: manual, named in the query ({name})")

    def _agent_os(self, words: Sequence[str]) -> None:
        doc = self.index.by_path.get("agent-os/standards/index.yml")
        if doc is None or "spec" not in self.kinds:
            return
        entries = _agent_os_index(self.service.root / doc.path)
        if not entries:
            return
        wanted = set(words)
        lines: list[str] = []
        for path, description in entries:
            clean = redact_text(description)[0]
            lines.append(f"- {path}: {clean}")
            hits = [w for w in wanted if w in specmod.words(f"{path} {description}")]
            target = self.index.by_path.get(f"agent-os/standards/{path}")
            if hits and target is not None:
                self._spec(
                    target,
                    65,
                    f"Agent OS index: {_quote(_one_line(clean, 80))}"
                    f" matches {_quote(' '.join(sorted(hits)))}",
                )
        key = f"doc:{doc.id}"
        if key not in self.candidates:
            self.candidates[key] = _Candidate(
                "spec",
                key,
                50,
                ["Agent OS standards index: what each standard covers"],
                doc.ref,
                doc.path,
                doc.id,
                "Agent OS standards",
                "\n".join(lines),
                doc.id,
            )

    def _sections(self, words: Sequence[str], query_words: Sequence[str]) -> None:
        search = self.store.backend.search
        conn = self.store._conn
        scores: dict[int, float] = {}
        for word in words:
            term = SearchTerm(word, (word,), False)
            for rowid, score in search.rank(
                conn, _CHUNKS, [term], session=None, since=None, limit=SECTIONS
            ):
                scores[rowid] = scores.get(rowid, 0.0) + max(score, 0.0)
        together = [w for w in query_words if w in words]
        if len(together) > 1:
            terms = [SearchTerm(w, (w,), False) for w in together]
            for rowid, score in search.rank(
                conn, _CHUNKS, terms, session=None, since=None, limit=SECTIONS
            ):
                scores[rowid] = scores.get(rowid, 0.0) + max(score, 0.0)
        order = sorted(scores, key=lambda rowid: (-scores[rowid], -rowid))[:SECTIONS]
        fused = _semantic(self.store, " ".join(words), order)
        semantic_only: set[int] = set()
        if fused is not None:
            semantic_only = set(fused) - set(order)
            order = fused[:SECTIONS]
        if not order:
            return
        marks = ", ".join("?" for _ in order)
        rows = {
            int(row["id"]): row
            for row in self.service._rows(
                f"SELECT id, doc_id, heading, text FROM doc_chunks WHERE id IN ({marks})", order
            )
        }
        count = len(order)
        explained: set[int] = set()
        for rank, rowid in enumerate(order):
            row = rows.get(rowid)
            if row is None or int(row["doc_id"]) not in self.index.docs:
                continue
            doc = self.index.docs[int(row["doc_id"])]
            heading = str(row["heading"] or "")
            score = 10 + 40 * (count - rank) / count
            reason = _match_reason(words, heading, str(row["text"]))
            if rowid in semantic_only or reason is None:
                reason = "semantically close to the query"
            whole = self.candidates.get(f"doc:{doc.id}")
            if whole is not None:
                if doc.id not in explained:  # its best section says why, once
                    explained.add(doc.id)
                    whole.because(reason + (f" (section {heading})" if heading else ""))
                continue
            key = f"chunk:{rowid}"
            self.candidates[key] = _Candidate(
                "section",
                key,
                score,
                [reason],
                doc.ref,
                doc.path,
                rowid,
                heading or doc.title,
                str(row["text"]),
                doc.id,
            )

    def _notes(self, task_id: int) -> None:
        notes = self.store.notes
        if "handoff" in self.kinds:
            for number, note in enumerate(
                notes.list_notes(kind="handoff", task_id=task_id, limit=3)
            ):
                reason = f"{'latest' if number == 0 else 'earlier'} handoff for task {task_id}"
                self._note("handoff", note, 90 if number == 0 else 45 - number, reason)
        if "decision" in self.kinds:
            for number, note in enumerate(
                notes.list_notes(kind="decision", task_id=task_id, limit=3)
            ):
                self._note("decision", note, 60 - number, f"decision on task {task_id}")
        if "note" in self.kinds:
            for kind in ("next_action", "fact", "validation"):
                for note in notes.list_notes(kind=kind, task_id=task_id, limit=2):
                    self._note("note", note, 40, f"{kind.replace('_', ' ')} for task {task_id}")

    def _note(self, kind: str, note: Any, score: float, reason: str) -> None:
        key = f"note:{note.id}"
        heading = f"{note.kind} #{note.id} · {_when(note.created_at)}"
        self.candidates[key] = _Candidate(
            kind, key, score, [reason], f"note/{note.id}", None, note.id, heading, note.body
        )

    def _failures(self, paths: Sequence[str]) -> None:
        from agentkeep.services.prime import FAILURE_WINDOW

        gathered = self.gathered
        if gathered is None:
            since = iso_utc(datetime.now(UTC) - FAILURE_WINDOW)
            gathered = self.store.primer._recent_failures(since)
        tools = list(gathered.get("tool_failures") or [])
        sessions = list(gathered.get("failed_sessions") or [])
        capture_ids = [int(t["id"]) for t in tools if t.get("origin") == "capture"]
        session_ids = [int(s["id"]) for s in sessions]
        touched = self._touched(capture_ids, session_ids)
        wanted = set(paths)
        for tool in tools:
            files = (
                touched.get(("capture", int(tool["id"])), set())
                if tool.get("origin") == "capture"
                else set()
            )
            said = f"{tool.get('command') or ''}\n{tool.get('error') or ''}"
            hit = sorted(files & wanted) or [p for p in paths if p in said]
            if not hit:
                continue
            name = tool.get("tool_name") or "a tool"
            command = f" `{_one_line(tool['command'], 80)}`" if tool.get("command") else ""
            text = f"{name}{command} failed at {_when(tool.get('at'))}"
            if tool.get("error"):
                text += f": {_one_line(tool['error'], 300)}"
            key = f"failure:{tool.get('origin')}:{tool['id']}"
            self.candidates[key] = _Candidate(
                "failure",
                key,
                55,
                [f"failed on {hit[0]} at {_when(tool.get('at'))}"],
                f"{tool.get('origin')}/{tool['id']}",
                None,
                int(tool["id"]),
                f"{name} failed",
                text,
            )
        for session in sessions:
            hit = sorted(touched.get(("session", int(session["id"])), set()) & wanted)
            if not hit:
                continue
            title = f": {_one_line(session['title'], 160)}" if session.get("title") else ""
            exit_code = session.get("exit_code")
            when = _when(session.get("ended_at") or session.get("started_at"))
            text = (
                f"session {session['id']} ({session['source']}) {session['status']} at {when}"
                + (f", exit {exit_code}" if exit_code is not None else "")
                + title
            )
            key = f"failure:session:{session['id']}"
            self.candidates[key] = _Candidate(
                "failure",
                key,
                54,
                [f"session {session['id']} {session['status']} after touching {hit[0]}"],
                f"session/{session['id']}",
                None,
                int(session["id"]),
                f"session {session['id']} {session['status']}",
                text,
            )

    def _touched(
        self, capture_ids: Sequence[int], session_ids: Sequence[int]
    ) -> dict[tuple[str, int], set[str]]:
        """The project files named by the input of those captures and of the tool calls of
        those sessions."""
        if not capture_ids and not session_ids:
            return {}
        dialect = self.store.backend.dialect
        where: list[str] = []
        params: list[Any] = []
        if capture_ids:
            where.append(f"id IN ({', '.join('?' for _ in capture_ids)})")
            params += capture_ids
        if session_ids:
            where.append(
                f"(session_id IN ({', '.join('?' for _ in session_ids)})"
                " AND event IN ('tool_pre', 'tool_post', 'tool_fail'))"
            )
            params += session_ids
        rows = self.service._rows(
            f"SELECT id, session_id, {dialect.json_get('payload', 'tool_input.file_path')}"
            f" AS file, cwd FROM captures WHERE {' OR '.join(where)} ORDER BY id DESC LIMIT 5000",
            params,
        )
        found: dict[tuple[str, int], set[str]] = {}
        root = self.service.root
        ids = set(capture_ids)
        for row in rows:
            rel = _project_path(root, row["file"], row["cwd"])
            if not rel:
                continue
            if int(row["id"]) in ids:
                found.setdefault(("capture", int(row["id"])), set()).add(rel)
            if row["session_id"] is not None:
                found.setdefault(("session", int(row["session_id"])), set()).add(rel)
        return found

    # -- fitting ---------------------------------------------------------------------------

    def _fit(self, header: str, budget: int) -> tuple[list[ContextItem], int, int, bool]:
        order = sorted(
            self.candidates.values(),
            key=lambda c: (-c.score, KINDS.index(c.kind), c.path or "", c.id or 0),
        )
        wanted = [c for c in order if c.kind in self.kinds]
        self._fill_texts(wanted)
        used = len(header)
        items: list[ContextItem] = []
        left_out = 0
        truncated = False
        share = max(int(budget * SPEC_SHARE), MIN_CUT)
        for number, candidate in enumerate(wanted):
            text = candidate.text or ""
            cut = False
            if candidate.kind == "spec" and len(text) > share:
                text, cut = _cut(text, share, candidate.path), True
            item = _item(candidate, text, cut)
            size = len(_render(item))
            if used + size <= budget:
                items.append(item)
                used += size
                truncated = truncated or cut
                continue
            room = budget - used - len(_render(_item(candidate, "", True))) - 1  # its "\n"
            if room >= MIN_CUT:
                item = _item(candidate, _cut(text, room, candidate.path), True)
                items.append(item)
                used += len(_render(item))
                left_out += len(wanted) - number - 1
                truncated = True
                break
            left_out += 1
            truncated = True
        return items, used, left_out, truncated

    def _fill_texts(self, candidates: Sequence[_Candidate]) -> None:
        """The whole text of the documents picked whole, from their indexed chunks."""
        ids = [c.doc_id for c in candidates if c.text is None and c.doc_id is not None]
        texts: dict[int, list[str]] = {}
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            marks = ", ".join("?" for _ in part)
            for row in self.service._rows(
                f"SELECT doc_id, text FROM doc_chunks WHERE doc_id IN ({marks})"
                " ORDER BY doc_id, position",
                part,
            ):
                texts.setdefault(int(row["doc_id"]), []).append(str(row["text"]))
        for candidate in candidates:
            if candidate.text is None and candidate.doc_id is not None:
                text = "\n\n".join(texts.get(candidate.doc_id, []))
                doc = self.index.docs.get(candidate.doc_id)
                if doc is not None and doc.convention == "cursor":  # .mdc: drop front matter
                    text = _FRONT.sub("", text, count=1)
                candidate.text = text


# -- helpers -----------------------------------------------------------------------------------


def _item(candidate: _Candidate, text: str, cut: bool) -> ContextItem:
    return ContextItem(
        kind=candidate.kind,
        ref=candidate.ref,
        path=candidate.path,
        id=candidate.id,
        heading=candidate.heading,
        text=text,
        score=round(candidate.score, 3),
        reasons=list(candidate.reasons),
        cut=cut,
    )


def _header(task: Any, paths: Sequence[str], query: str | None) -> str:
    what: list[str] = []
    if task is not None:
        what.append(f"task #{task.id} {_one_line(task.title, 120)}")
    if paths:
        shown = ", ".join(paths[:5]) + (f" (+{len(paths) - 5})" if len(paths) > 5 else "")
        what.append(f"files {shown}")
    if query:
        what.append(f"query {_quote(_one_line(query, 120))}")
    return f"# Context: {'; '.join(what) or 'this project'}\n"


def _render(item: ContextItem) -> str:
    """An item as Markdown: a heading, its reasons as a comment, its text."""
    where = item.path or item.ref or ""
    title = item.heading or item.ref or item.kind
    if item.kind == "section" and item.heading:
        title = f"{item.path} › {item.heading}"
    elif item.kind == "spec":
        title = item.path or title
    why = "; ".join(item.reasons).replace("--", "- -")
    body = item.text.strip("\n")
    lines = f"\n## {item.kind}: {_one_line(title, 160)}\n<!-- why: {_one_line(why, 400)}"
    if where and where not in title:
        lines += f" · {where}"
    lines += " -->\n"
    return lines + (body + "\n" if body else "")


def _cut(text: str, limit: int, path: str | None) -> str:
    """``text`` in at most ``limit`` characters, ended at a line break when one is near,
    with a line saying where the rest is."""
    note = f"\n[… cut: {path} has the rest]" if path else "\n[… cut]"
    room = max(limit - len(note), 0)
    if len(text) <= limit:
        return text
    piece = text[:room]
    newline = piece.rfind("\n")
    if newline > room * 0.7:
        piece = piece[:newline]
    return piece.rstrip() + note


def _query_words(text: str) -> list[str]:
    found: list[str] = []
    for word in _WORD.findall(text.lower()):
        if (len(word) < 3 and not word.isdigit()) or word in STOPWORDS:
            continue
        if word not in found:
            found.append(word)
    return found


def _match_reason(words: Sequence[str], heading: str, text: str) -> str | None:
    in_heading = specmod.words(heading)
    in_text = {w.lower() for w in _WORD.findall(text)}
    heading_hits = [w for w in words if w in in_heading]
    text_hits = [w for w in words if w in in_text and w not in heading_hits]
    parts = []
    if heading_hits:
        parts.append(f"matches {_quote(' '.join(heading_hits))} in heading")
    if text_hits:
        parts.append(f"matches {_quote(' '.join(text_hits))} in text")
    return "; ".join(parts) or None


def _semantic(store: Store, text: str, order: list[int]) -> list[int] | None:
    """The full-text order fused with the semantic ranking (reciprocal rank fusion),
    when ``agentkeep.semantic`` exists and is configured; None otherwise."""
    import importlib

    try:
        semantic = importlib.import_module("agentkeep.semantic")
    except ImportError:
        return None
    # A configured model that cannot be loaded (no extra, a bad path) raises InvalidInput
    # with semantic's hint: the user's to fix, not a silent fall back to full text.
    try:
        if not semantic.enabled(store.config):
            return None
        ranked = semantic.rank(store, text, limit=SECTIONS)
        fused = semantic.fuse([order, [rowid for rowid, _ in ranked]])
    except (AttributeError, TypeError, ValueError):  # an agentkeep.semantic without this API
        return None
    return [int(rowid) for rowid, _ in fused]


_MANIFESTS: dict[str, tuple[tuple[int, int], specmod.Manifest]] = {}


def _manifest(store_dir: Path) -> specmod.Manifest:
    """The manifest, parsed again only when its file changed (size, mtime)."""
    path = store_dir / specmod.MANIFEST
    try:
        stat = path.stat()
        key = (stat.st_size, stat.st_mtime_ns)
    except OSError:
        key = (-1, -1)
    cached = _MANIFESTS.get(str(path))
    if cached is not None and cached[0] == key:
        return cached[1]
    manifest = specmod.load_manifest(store_dir)
    _MANIFESTS[str(path)] = (key, manifest)
    return manifest


def _steering(doc: _Doc) -> bool:
    return doc.convention == "kiro" and doc.path.startswith(".kiro/steering/")


def _inclusion(doc: _Doc) -> str:
    value = doc.fields.get("inclusion")
    return str(value) if isinstance(value, str) and value.strip() else "always"


def _cursor_rule(assembly: _Assembly, doc: _Doc) -> dict[str, Any]:
    """A Cursor rule's front matter (``.mdc`` files are indexed as text: it is read back
    from the first indexed chunk)."""
    if doc.fields:
        return doc.fields
    cache = assembly.index.cursor
    if doc.id not in cache:
        row = assembly.service._row(
            "SELECT text FROM doc_chunks WHERE doc_id = ? ORDER BY position LIMIT 1", (doc.id,)
        )
        from agentkeep.documents import format as docformat

        parsed = docformat.parse(str(row[0]) if row else "", ".md")
        cache[doc.id] = parsed.fields
    fields: dict[str, Any] = cache[doc.id]
    return fields


_AGENT_OS: dict[str, tuple[tuple[int, int], list[tuple[str, str]]]] = {}


def _agent_os_index(path: Path) -> list[tuple[str, str]]:
    """``(standard's path under agent-os/standards/, description)`` of Agent OS's
    ``index.yml``: folders mapping file names to ``{description: …}`` (``root`` is the
    standards directory itself), or a list of ``{path|file, description}``. Read again
    only when the file changed (size, mtime)."""
    try:
        stat = path.stat()
    except OSError:
        return []
    key = (stat.st_size, stat.st_mtime_ns)
    cached = _AGENT_OS.get(str(path))
    if cached is not None and cached[0] == key:
        return cached[1]
    found = _read_agent_os_index(path)
    _AGENT_OS[str(path)] = (key, found)
    return found


def _read_agent_os_index(path: Path) -> list[tuple[str, str]]:
    try:
        import yaml

        data = yaml.safe_load(path.read_text("utf-8", "replace"))
    except Exception:  # a user's file: a bad one gives no descriptions, never an error
        return []
    found: list[tuple[str, str]] = []

    def walk(value: Any, prefix: list[str]) -> None:
        if isinstance(value, list):
            for entry in value:
                if isinstance(entry, dict) and isinstance(entry.get("description"), str):
                    name = entry.get("path") or entry.get("file") or entry.get("name")
                    if isinstance(name, str):
                        found.append((_standard(name), entry["description"]))
            return
        if not isinstance(value, dict):
            return
        for key, entry in value.items():
            if isinstance(entry, dict) and isinstance(entry.get("description"), str):
                found.append((_standard("/".join([*prefix, str(key)])), entry["description"]))
            elif isinstance(entry, str) and prefix:
                found.append((_standard("/".join([*prefix, str(key)])), entry))
            else:
                walk(entry, [*prefix, str(key)])

    walk(data, [])
    return found[:500]


def _standard(name: str) -> str:
    name = name.strip("/").removeprefix("agent-os/standards/").removeprefix("root/")
    return name if name.endswith((".md", ".yml", ".yaml")) else name + ".md"


def _project_path(root: Path, value: Any, cwd: Any) -> str | None:
    """A file named by a user or a tool call, relative to the project root (None when it
    is outside the project or not a path)."""
    if not isinstance(value, str) or not value.strip() or "\x00" in value:
        return None
    path = Path(value.strip())
    if not path.is_absolute():
        base = Path(cwd) if isinstance(cwd, str) and cwd else None
        if base is not None and not base.is_absolute():  # captures keep it project-relative
            base = root / base
        if base is None:
            text = path.as_posix()
            return text.removeprefix("./") if ".." not in path.parts else None
        path = base / path
    for candidate in (path, Path(_normal(path))):
        for top in (root, root.resolve()):
            try:
                rel = candidate.relative_to(top).as_posix()
            except ValueError:
                continue
            return rel if rel != "." and ".." not in rel.split("/") else None
    return None


def _normal(path: Path) -> str:
    import os

    return os.path.normpath(str(path))


def _quote(text: str) -> str:
    return f"‘{text}’"


def _one_line(text: object, limit: int) -> str:
    flat = " ".join(str(text or "").split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def _when(stamp: object) -> str:
    text = str(stamp or "")
    return f"{text[:10]} {text[11:16]}Z" if len(text) >= 16 else text


def prime_specs(
    store: Store, gathered: Mapping[str, Any], *, budget: int, since: str
) -> tuple[str, list[dict[str, Any]]]:
    """For ``prime``: the specs for the files the latest tool calls touched (and those
    always included), as a Markdown section of at most ``budget`` characters and the items;
    ``("", [])`` when there are none (or the index cannot be read)."""
    if budget < MIN_BUDGET:
        return "", []
    try:
        service = store.context
        files = service.recent_files(since)
        context = service.assemble(files=files, budget=budget, kinds=("spec",), gathered=gathered)
    except AgentkeepError:
        return "", []
    if not context.items:
        return "", []
    body = context.text.split("\n", 1)[1] if "\n" in context.text else ""
    heading = f"\n## Specs for this work ({len(context.items)})\n"
    text = heading + body.replace("\n## spec: ", "\n### ")
    if len(text) > budget:
        text = text[: budget - 1] + "…"
    return text, [item.to_dict() for item in context.items]
