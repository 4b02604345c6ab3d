"""Secret redaction: the privacy boundary every write path goes through.

``redact_text`` replaces each secret with ``[REDACTED:<rule id>]``; ``redact_value`` does
the same for every string (keys included) in a JSON-like value; ``StreamRedactor`` does it
for text that arrives in chunks. The hand-written rules live in `agentkeep.redact.rules`;
every other rule of gitleaks' default configuration runs as data
(`agentkeep.redact.gitleaks_rules`, engine in `agentkeep.redact.gitleaks`).

Guarantees:

- Only the secret is replaced: the variable name of an assignment, the scheme, user and host
  of a URL, the scheme word of an ``Authorization`` header stay. The marker carries the rule
  id and nothing derived from the secret (no prefix characters, no hash).
- ``redact_text`` is idempotent, and its output contains no match of any rule. Rules look a
  character or so past a secret ("AKIA...sk-ant-..." holds no AWS key, since an "s" follows
  it), so where a secret touches token characters the redacted text around it is scanned
  again, until nothing new turns up (``_find``). ``scan`` reports the settled result.
- Any ``str`` is accepted (lone surrogates, NUL, megabytes). Anything unexpected inside is
  raised as `agentkeep.errors.RedactionFailed`, so the caller can fail closed.

Two engines, identical results. In the hook's process (standard library only) the rules
run as described below. Everywhere else one RE2 pass first finds every position where a
rule can match, and the same rule code runs at those positions only
(`agentkeep.redact.fast`; tests/test_redact_engines.py compares the two). A
straightforward port (one gitleaks-style regex per rule over the whole text) runs at about
1 MB/s on the transcripts of ``bench/bench_redact.py``; the standard-library engine at
about 20 MB/s with the full rule set, the compiled one at three to eight times that.

How the standard-library engine is fast (the hand-written rules; the gitleaks rules, see
`agentkeep.redact.gitleaks`, add two to three times their cost):

- every scan pattern starts with a literal keyword, so ``re`` jumps between keyword hits with
  its C literal-prefix search, and the commonest non-secrets are rejected inside the pattern;
  Python code runs only for real candidates;
- rules that share a prefix share one pattern and therefore one pass (see ``_PASSES``);
- short texts (the common case: one database field) first check a few needles with ``in``
  and skip every pass that cannot match (see ``_GATE_SPEC``);
- case-insensitive rules run over one lower-cased copy of the text.

Encodings (each tested in tests/test_redact.py):

- JSON string escapes, at any depth (a JSON document in a string in a JSON document):
  the rules accept quotes and line breaks with any number of backslashes before them (a
  private key's body included), the gitleaks rules are run again over their windows with
  the escapes undone level by level, and ``\\u00XX`` escapes of printable ASCII
  (``\\u0067hp_…``) and ``\\/`` in URLs are decoded for a second look.
- Percent-encoding (``Authorization%3A%20Bearer%20…``, ``%40`` in userinfo) is decoded for
  a second look when the text holds an encoded separator.
- ``Authorization: Basic base64(user:token)`` is redacted as a whole.
- ``https://user:token@host`` loses the token.
- A secret used as a JSON key is redacted like any other string (``redact_value``).

Non-goals (documented gaps):

- Base64, gzip or other encodings of whole documents are not decoded.
- Secrets with no recognisable shape or context (a bare low-entropy password in prose,
  ``--password hunter2`` on a command line, ``mysql -psecret``, ``.netrc`` lines,
  ``Authorization: Digest`` parameters, XML ``<add key="..." value="..."/>``).
- Assigned values shorter than 8 characters (6 for password-like names) and repetitive or
  word-shaped values (``password: hunter``) are kept: the price of a low false-positive rate.
- A JWT, or an ``sk-`` key of no known vendor prefix, glued after a letter or digit
  (``x=%22eyJ...``) is not found: the lookbehind that requires the boundary is what keeps
  the JWT pattern linear on ``"eyJ" * 333_333``.
"""

from __future__ import annotations

import re
from bisect import bisect_left

from agentkeep.errors import RedactionFailed
from agentkeep.redact import gitleaks as _gitleaks
from agentkeep.redact.rules import (
    REDACTION_MARKER_PREFIX,
    RULES,
    LazyPattern,
    Rule,
    pem_block_end,
)

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover - for type checkers only
    from collections.abc import Callable, Iterable
    from typing import Any

__all__ = [
    "REDACTION_MARKER_PREFIX",
    "RULES",
    "Match",
    "Rule",
    "StreamRedactor",
    "marker",
    "may_contain_secret",
    "redact_text",
    "redact_value",
    "scan",
]


class Match:
    """A secret found in a text: ``text[start:end]`` is what gets replaced.

    Immutable and compared by value, like the frozen dataclass it replaces (a plain class
    keeps ``dataclasses`` off the hook's import path).
    """

    __slots__ = ("end", "rule", "start")
    __match_args__ = ("rule", "start", "end")

    rule: str
    start: int
    end: int

    def __init__(self, rule: str, start: int, end: int) -> None:
        object.__setattr__(self, "rule", rule)
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "end", end)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r}")

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, Match)
        return (self.rule, self.start, self.end) == (other.rule, other.start, other.end)

    def __hash__(self) -> int:
        return hash((self.rule, self.start, self.end))

    def __repr__(self) -> str:
        return f"Match(rule={self.rule!r}, start={self.start!r}, end={self.end!r})"


class _Hit:
    __slots__ = ("context", "end", "priority", "rule", "start")

    def __init__(self, start: int, end: int, priority: int, rule: str, context: int) -> None:
        self.start = start
        self.end = end
        self.priority = priority
        self.rule = rule
        self.context = context  # where the text that makes this a match begins (<= start)

    def _replace(self, *, start: int, end: int, context: int) -> _Hit:
        return _Hit(start, end, self.priority, self.rule, context)

    def __repr__(self) -> str:
        return f"_Hit({self.start}, {self.end}, {self.priority}, {self.rule!r}, {self.context})"


class _Pass:
    """One pattern run over the text, and the rules (in priority order) that claim its matches.

    ``pattern`` is compiled on first use (see :class:`agentkeep.redact.rules.LazyPattern`).
    """

    __slots__ = ("compiled", "keywords", "on_lower", "pattern", "rules")

    def __init__(
        self,
        pattern: re.Pattern[str] | LazyPattern,
        rules: tuple[Rule, ...],
        keywords: tuple[str, ...],
        on_lower: bool,
    ) -> None:
        self.pattern = pattern
        self.rules = rules
        self.keywords = keywords
        self.on_lower = on_lower
        self.compiled = not isinstance(pattern, LazyPattern)

    def ready(self, text: str, lowered: str) -> bool:
        """Whether this pass must run over a long text: compiled already (its literal
        prefix search is then the fastest check), or one of its keywords occurs."""
        if self.compiled:
            return True
        source = lowered if self.on_lower else text
        if not any(keyword in source for keyword in self.keywords):
            return False
        self.compiled = True
        _uncompiled.discard(self)
        return True


def _build_passes(rules: Iterable[Rule]) -> tuple[_Pass, ...]:
    order: list[int] = []
    patterns: dict[int, re.Pattern[str] | LazyPattern] = {}
    members: dict[int, list[Rule]] = {}
    keywords: dict[int, list[str]] = {}
    for rule in rules:
        if len(rule.lazy_patterns) > 1 and len(rule.keywords) != len(rule.lazy_patterns):
            raise ValueError(f"rule {rule.id}: one keyword per pattern is required")
        for i, pattern in enumerate(rule.lazy_patterns):
            key = id(pattern)
            if key not in members:
                order.append(key)
                patterns[key] = pattern
                members[key] = []
                keywords[key] = []
            members[key].append(rule)
            own = rule.keywords if len(rule.lazy_patterns) == 1 else (rule.keywords[i],)
            keywords[key].extend(kw for kw in own if kw not in keywords[key])
    passes = []
    for key in order:
        group = members[key]
        on_lower = group[0].ignore_case
        if any(rule.ignore_case != on_lower for rule in group):
            raise ValueError(f"rules sharing {patterns[key].pattern!r} disagree on ignore_case")
        passes.append(_Pass(patterns[key], tuple(group), tuple(keywords[key]), on_lower))
    return tuple(passes)


# The keyword check for short texts. ``in`` costs about 1 ns per character for each needle,
# so checking all 40 keywords of the rules would cost 10 us on a 300-character field. The
# gates below check fewer, shorter needles, most behind a one-character anchor that memchr
# rules out in about 15 ns. Each needle is a substring of the keywords it stands for, so a
# keyword that occurs always opens its pass; `_build_gates` checks that every keyword of
# every pass is covered.
_GATE_SPEC: tuple[tuple[bool, str, tuple[str, ...]], ...] = (
    # (on lower-cased text, anchor, needles)
    (False, "A", ("AKIA", "ASIA", "ABIA", "ACCA", "A3T", "AIza")),
    (False, "_", ("gh", "github_pat_", "hf_", "npm_")),
    # "k_" alone would open the Stripe pass on every "hook_event_name" and "task_id".
    (False, "k_", ("k_live_", "k_test_", "k_prod_")),
    (False, "-", ("glpat-", "sk-", "xapp-", "pypi-AgEIcHlwaS5vcmc")),
    (False, "x", ("xox",)),
    (False, "J", ("eyJ",)),
    (False, "/", ("://",)),
    (False, ".", ("hooks.slack.com",)),
    (True, "", ("key", "token", "secret", "passw", "auth", "cred", "bearer", "api", "access")),
    (True, "w", ("pwd",)),
    (True, "-", ("-----begin",)),
)

Gates = tuple[tuple[str, tuple[tuple[str, int], ...]], ...]


def _build_gates(passes: tuple[_Pass, ...], *, on_lower: bool) -> Gates:
    """(anchor, ((needle, bit mask of the passes it opens), ...)) for one kind of text."""
    # (bit, keyword) of every pass that runs on this kind of text; flat lists keep this
    # import-time work small (it runs in every hook process).
    keywords = [
        (1 << i, kw)
        for i, scan_pass in enumerate(passes)
        if scan_pass.on_lower == on_lower
        for kw in scan_pass.keywords
    ]
    gates = []
    for lower, anchor, needles in _GATE_SPEC:
        if lower != on_lower:
            continue
        entries = []
        for needle in needles:
            bits = 0
            for bit in {bit for bit, kw in keywords if needle in kw}:
                bits |= bit
            entries.append((needle, bits))
        gates.append((anchor, tuple(entries)))
    for _, kw in keywords:
        if not any(
            anchor in kw and any(needle in kw for needle, _ in entries) for anchor, entries in gates
        ):
            raise ValueError(f"keyword {kw!r} is not covered by a gate")
    return tuple(gates)


_PASSES = _build_passes(RULES)
_uncompiled = {p for p in _PASSES if not p.compiled}  # see _raw_hits
_TEXT_GATES = _build_gates(_PASSES, on_lower=False)
_LOWER_GATES = _build_gates(_PASSES, on_lower=True)
_SMALL = 4096  # up to this many characters, run only the passes whose keywords may occur
_RETRY_BUDGET = 1000  # matches per pass whose inside is searched again (plus 1 per 2 KB)
_MARKERS: dict[str, str] = {}
# Below every hand-written token, header and URL rule, above the assignment rules: a vendor's
# own rule names a redaction better than generic-api-key does.
_GITLEAKS_PRIORITY = 18


def marker(rule_id: str) -> str:
    """The text that replaces a secret found by ``rule_id``."""
    text = _MARKERS.get(rule_id)
    if text is None:
        text = _MARKERS[rule_id] = f"{REDACTION_MARKER_PREFIX}{rule_id}]"
    return text


def _lower(text: str) -> str:
    """``text.lower()`` with the same length, so that indices carry over.

    U+0130 (İ) is the only code point whose lower case is two code points long.
    """
    lowered = text.lower()
    if len(lowered) != len(text):
        lowered = text.replace("\u0130", "i").lower()
    return lowered


def may_contain_secret(text: str) -> bool:
    """False only when no rule can match anywhere in ``text``: no gate keyword occurs and
    there is no escape that could hide one. A cheap pre-check for callers that can skip work
    (the store serialises a JSON value once and checks the whole document).

    Sound for JSON documents too: no keyword contains a character JSON escapes (``"``,
    backslash, control characters; tested), so a keyword inside any string of a value
    also appears in its serialisation.

    With the compiled engine, a keyword counts only with what its rules need after it
    (``key`` or ``token`` before an assignment operator and a value, not in prose), and
    an anchor that must start a word (``s.``) only there; the escapes JSON puts into a
    string are taken wherever a rule takes the character (`agentkeep.redact.fast`).
    """
    if fast := _fast_engine(len(text)):
        return (
            fast[0].may_contain(text)
            or _ESCAPE_PROBE.search(text) is not None
            or _PERCENT_PROBE.search(text) is not None
        )
    for anchor, entries in _TEXT_GATES:
        if anchor in text:
            for needle, _bits in entries:
                if needle in text:
                    return True
    lowered = _lower(text)
    for anchor, entries in _LOWER_GATES:
        if anchor in lowered:
            for needle, _bits in entries:
                if needle in lowered:
                    return True
    if _ESCAPE_PROBE.search(text) is not None or _PERCENT_PROBE.search(text) is not None:
        return True
    return _gitleaks.may_match(text, lowered)


# The compiled engine (`agentkeep.redact.fast`), False where it is not used: in the hook's
# process, which imports the standard library only (`keep_standard_library_engine`), or where
# RE2 cannot be imported.
_fast: Any = None
# Building it costs ~20 ms (importing RE2, compiling), more than a short-lived command
# spends on redaction: it is built once the process has handed over this much text.
_FAST_AFTER = 1 << 16
_handed = 0


def _fast_engine(size: int) -> Any:
    global _fast, _handed
    if _fast is None:
        _handed += size
        if _handed < _FAST_AFTER:
            return False
        _fast = False
        try:
            from agentkeep.redact import fast

            _fast = fast.Engine([(p.keywords, p.on_lower) for p in _PASSES]), fast
        except Exception:  # RE2 missing or broken: the standard library does the same
            _fast = False
    return _fast


def keep_standard_library_engine() -> None:
    """Redact on the standard-library engine for the rest of this process: the hook's
    (`agentkeep.hook.main`), which imports nothing but the standard library. Library
    processes that merely import `agentkeep.hook` (draining the spool) keep the compiled one."""
    global _fast
    _fast = False


def _raw_hits(text: str) -> list[_Hit]:
    lowered = _lower(text)
    if fast := _fast_engine(len(text)):
        engine, module = fast
        located = engine.locate(text, lowered, module.cased_bytes(text))
        if located is not None:  # else text dense with keywords: see Engine.starts
            return _raw_hits_located(text, lowered, *located)
    passes: Iterable[_Pass] = _PASSES
    if len(text) <= _SMALL:
        # On a short text a needle check (about 0.2 us on 300 characters) is cheaper than a
        # pattern run (about 0.7 us). A long text goes straight to the patterns: each starts
        # with its keyword, and re's literal-prefix search is faster than str.find.
        mask = 0
        for anchor, entries in _TEXT_GATES:
            if anchor in text:
                for needle, bits in entries:
                    if needle in text:
                        mask |= bits
        for anchor, entries in _LOWER_GATES:
            if anchor in lowered:
                for needle, bits in entries:
                    if needle in lowered:
                        mask |= bits
        passes = [p for i, p in enumerate(_PASSES) if mask >> i & 1] if mask else ()
    elif _uncompiled:
        # A pass whose pattern is not compiled yet is compiled only when one of its keywords
        # occurs (compiling all of them costs a short-lived process, a hook, ~5 ms).
        passes = [p for p in _PASSES if p.ready(text, lowered)]
    hits: list[_Hit] = []
    for scan_pass in passes:
        source = lowered if scan_pass.on_lower else text
        search = scan_pass.pattern.search
        # The search resumes one character after the start of each match, not after its end:
        # a match may contain the start of the next one ("ghp_...ghp_...", "Bearer
        # x=authorization: token y", "key= SERVICE_API_KEY=..."). Overlapping hits are merged
        # later. A budget keeps inputs like "key=" * 250_000 linear.
        retries = _RETRY_BUDGET + len(source) // 2048
        pos = 0
        while (m := search(source, pos)) is not None:
            claimed_to = _claim(scan_pass, m, text, hits)
            if claimed_to > m.end():
                pos = claimed_to  # past a private-key block
            elif retries > 0:
                retries -= 1
                pos = m.start() + 1
            else:
                pos = m.end()
    for rule_id, start, end, match_start in _gitleaks.hits(text, lowered):
        context = max(0, min(start, match_start) - 4)
        hits.append(_Hit(start, end, _GITLEAKS_PRIORITY, rule_id, context))
    return hits


def _claim(scan_pass: _Pass, m: re.Match[str], text: str, hits: list[_Hit]) -> int:
    """Let the pass's rules claim its match ``m``: the first that does adds its hit. Returns
    where the claimed secret ends, or -1."""
    for rule in scan_pass.rules:
        span = rule.claim(m, text)
        if span is not None:
            start, end = span
            context = max(0, min(start, m.start()) - rule.context_before)
            hits.append(_Hit(start, end, rule.priority, rule.id, context))
            return end
    return -1


def _raw_hits_located(
    text: str,
    lowered: str,
    candidates: list[list[int]],
    present: frozenset[str],
    at: dict[str, list[int]],
) -> list[_Hit]:
    """`_raw_hits` with the compiled engine: the same search loop, over the positions where
    the pass can match (see `agentkeep.redact.fast`) instead of ``pattern.search``, and
    the gitleaks rules' windows opened where the engine found their anchors."""
    hits: list[_Hit] = []
    *by_pass, vendor_at = candidates
    for scan_pass, found in zip(_PASSES, by_pass, strict=True):
        if found:
            source = lowered if scan_pass.on_lower else text
            match = scan_pass.pattern.match
            retries = _RETRY_BUDGET + len(source) // 2048
            pos = 0
            i = 0
            n_found = len(found)
            while True:
                # search(source, pos): the first candidate at or after pos that matches.
                m = None
                while i < n_found:
                    m = match(source, found[i])
                    i += 1
                    if m is not None:
                        break
                if m is None:
                    break
                claimed_to = _claim(scan_pass, m, text, hits)
                if claimed_to > m.end():
                    pos = claimed_to
                elif retries > 0:
                    retries -= 1
                    pos = m.start() + 1
                else:
                    pos = m.end()
                i = bisect_left(found, pos)
    for rule_id, start, end, match_start in _gitleaks.hits(text, lowered, present, vendor_at, at):
        context = max(0, min(start, match_start) - 4)
        hits.append(_Hit(start, end, _GITLEAKS_PRIORITY, rule_id, context))
    return hits


# Escapes that hide a secret from the rules: \u0067hp_... (JSON \u escapes of printable
# ASCII, which no standard encoder emits but an adversary or an odd one may) and https:\/\/
# (PHP's json_encode escapes "/"), at any depth of escaping (\\\/ inside a JSON string
# inside a JSON string). Quotes and line breaks escaped at any depth need no decoding: the
# rules accept any number of backslashes before them.
_ESCAPE = LazyPattern(r"\\+(?:u00[2-7][0-9a-fA-F]|/)", re.ASCII)
# Whether decoding is worth it. One search jumps between backslashes (6 ms on 20 MB of JSON
# lines, where two `in` checks take 20 ms); "\\/" alone, as in regexes, is not enough.
_ESCAPE_PROBE = LazyPattern(r"\\(?:u00[2-7][0-9a-fA-F]|/\\+/)", re.ASCII)
# Percent-encoding of printable ASCII (Authorization%3A%20Bearer%20..., user%3Apass%40host),
# decoded when the text holds an encoded separator that a rule needs.
_PERCENT = LazyPattern(r"%(?:[2-7][0-9A-Fa-f]|0[aA])", re.ASCII)
_PERCENT_PROBE = LazyPattern(r"%(?:3[aAdD]|2[02fF]|40|0[aA])", re.ASCII)


def _unescape(token: str) -> str:
    return "/" if token[-1] == "/" else chr(int(token[-2:], 16))


def _unpercent(token: str) -> str:
    return chr(int(token[1:], 16))


def _escaped_hits(text: str) -> list[_Hit]:
    """Hits in ``text`` with escapes decoded (see ``_ESCAPE``, ``_PERCENT``), as spans of
    ``text``."""
    found: list[_Hit] = []
    if "\\" in text and _ESCAPE_PROBE.search(text) is not None:
        found += _decoded_hits(text, _ESCAPE, _unescape)
    if "%" in text and _PERCENT_PROBE.search(text) is not None:
        found += _decoded_hits(text, _PERCENT, _unpercent)
    return found


def _decoded_hits(text: str, escape: LazyPattern, decode: Callable[[str], str]) -> list[_Hit]:
    """Hits in ``text`` with each match of ``escape`` decoded, mapped back to ``text``."""
    pieces: list[str] = []
    # Decoded offset and original offset of each escape; characters between escapes map 1:1.
    decoded_at: list[int] = []
    original_at: list[int] = []
    widths: list[int] = []
    last = 0
    decoded_len = 0
    for m in escape.finditer(text):
        start, end = m.span()
        pieces.append(text[last:start])
        decoded_len += start - last
        pieces.append(decode(m.group()))
        decoded_at.append(decoded_len)
        original_at.append(start)
        widths.append(end - start)
        decoded_len += 1
        last = end
    if not decoded_at:
        return []
    pieces.append(text[last:])
    decoded = "".join(pieces)

    from bisect import bisect_right

    def original_start(pos: int) -> int:
        i = bisect_right(decoded_at, pos) - 1
        if i < 0:
            return pos
        if decoded_at[i] == pos:
            return original_at[i]
        return original_at[i] + widths[i] + (pos - decoded_at[i] - 1)

    def original_end(pos: int) -> int:
        if pos == 0:
            return 0
        i = bisect_right(decoded_at, pos - 1) - 1
        if i >= 0 and decoded_at[i] == pos - 1:
            return original_at[i] + widths[i]
        return original_start(pos - 1) + 1

    return [
        _Hit(
            original_start(h.start),
            original_end(h.end),
            h.priority,
            h.rule,
            original_start(h.context),
        )
        for h in _raw_hits(decoded)
    ]


def _merge(hits: list[_Hit]) -> list[_Hit]:
    """Sorted, non-overlapping hits; an overlap becomes one hit named by the higher priority."""
    if len(hits) < 2:
        return hits
    hits.sort(key=lambda h: (h.start, -h.end))
    merged = [hits[0]]
    for hit in hits[1:]:
        last = merged[-1]
        if hit.start < last.end:
            top = last if last.priority >= hit.priority else hit
            merged[-1] = _Hit(
                last.start,
                max(last.end, hit.end),
                top.priority,
                top.rule,
                min(last.context, hit.context),
            )
        else:
            merged.append(hit)
    return merged


# Characters next to a secret after which redacting it cannot change what the rules see:
# blanks, quotes, brackets and separators. Any other neighbour ("AKIA...sk-ant-...": no AWS
# key, since an "s" follows; "KEY=abc+ghp_...") may read differently once the secret is a
# marker, so the text around it is scanned again after redaction.
_HARD_DELIMITERS = frozenset(" \t\r\n\f\v\"'`<>()[]{},;|&")
_SETTLE_WINDOW = 1536  # characters of redacted text scanned on each side of such a secret
_SETTLE_EDGE = 320  # a hit this close to a window's cut edge may be an artefact of the cut
_MAX_ROUNDS = 8


def _needs_second_look(text: str, hit: _Hit) -> bool:
    if hit.start > 0:
        before = text[hit.start - 1]
        escaped = hit.start > 1 and text[hit.start - 2] == "\\"  # \n before a token
        if before not in _HARD_DELIMITERS and not escaped:
            return True
    return hit.end < len(text) and text[hit.end] not in _HARD_DELIMITERS


def _second_look(redacted: str, spans: list[tuple[int, int]]) -> list[_Hit]:
    """Hits in ``redacted`` near ``spans`` (its markers that need a second look)."""
    windows: list[list[int]] = []
    for start, end in spans:
        low, high = max(0, start - _SETTLE_WINDOW), min(len(redacted), end + _SETTLE_WINDOW)
        if windows and low <= windows[-1][1]:
            windows[-1][1] = max(windows[-1][1], high)
        else:
            windows.append([low, high])
    found: list[_Hit] = []
    for low, high in windows:
        piece = redacted[low:high]
        for hit in _raw_hits(piece) + _escaped_hits(piece):
            cut_before = low > 0 and hit.context < _SETTLE_EDGE
            cut_after = high < len(redacted) and hit.end > len(piece) - _SETTLE_EDGE
            if cut_before or cut_after:
                # Too close to where the window was cut to trust: look at everything.
                return _raw_hits(redacted) + _escaped_hits(redacted)
            found.append(
                hit._replace(start=hit.start + low, end=hit.end + low, context=hit.context + low)
            )
    return found


def _map_back(hits: list[_Hit], applied: list[_Hit]) -> list[_Hit]:
    """Hits in ``_splice``'s output, as spans of the text ``applied`` was spliced into."""
    out_starts: list[int] = []
    widths: list[int] = []
    shifts: list[int] = []  # output minus original position, after each marker
    shift = 0
    for hit in applied:
        out_starts.append(hit.start + shift)
        widths.append(len(marker(hit.rule)))
        shift += widths[-1] - (hit.end - hit.start)
        shifts.append(shift)

    from bisect import bisect_right

    def start_of(pos: int) -> int:
        i = bisect_right(out_starts, pos) - 1
        if i < 0:
            return pos
        return applied[i].start if pos < out_starts[i] + widths[i] else pos - shifts[i]

    def end_of(pos: int) -> int:
        i = bisect_right(out_starts, pos - 1) - 1
        if i < 0:
            return pos
        return applied[i].end if pos - 1 < out_starts[i] + widths[i] else pos - shifts[i]

    return [
        _Hit(start_of(h.start), end_of(h.end), h.priority, h.rule, start_of(h.context))
        for h in hits
    ]


def _find(text: str) -> tuple[list[_Hit], str | None]:
    """The merged hits in ``text``, and the redacted text if it was made on the way.

    Redacting all the hits leaves nothing to find.
    """
    if not isinstance(text, str):
        raise RedactionFailed(
            f"Redaction expects text, not {type(text).__name__}; nothing was stored."
        )
    try:
        hits = _merge(_raw_hits(text) + _escaped_hits(text))
        for _ in range(_MAX_ROUNDS):
            # Redact, and look again where a marker now stands next to token characters.
            # Whatever turns up is mapped back to ``text``; repeat until nothing does.
            spans: list[tuple[int, int]] = []
            shift = 0
            for hit in hits:
                width = len(marker(hit.rule))
                if _needs_second_look(text, hit):
                    spans.append((hit.start + shift, hit.start + shift + width))
                shift += width - (hit.end - hit.start)
            if not spans:
                return hits, None
            redacted = _splice(text, hits)
            more = _merge(_second_look(redacted, spans))
            if not more:
                return hits, redacted
            hits = _merge(hits + _map_back(more, hits))
        raise RedactionFailed("Redaction did not settle, so the record was not stored.")
    except RedactionFailed:
        raise
    except Exception as exc:  # the caller fails closed on this
        raise RedactionFailed(
            "The secret scanner failed, so the record was not stored.",
            hint="This is a bug in agentkeep; please report it with the traceback.",
        ) from exc


def _splice(text: str, hits: list[_Hit]) -> str:
    pieces: list[str] = []
    last = 0
    for hit in hits:
        pieces.append(text[last : hit.start])
        pieces.append(marker(hit.rule))
        last = hit.end
    pieces.append(text[last:])
    return "".join(pieces)


def _count(hits: list[_Hit], counts: dict[str, int]) -> dict[str, int]:
    for hit in hits:
        counts[hit.rule] = counts.get(hit.rule, 0) + 1
    return counts


def scan(text: str) -> list[Match]:
    """The secrets in ``text``: sorted by position, non-overlapping."""
    return [Match(hit.rule, hit.start, hit.end) for hit in _find(text)[0]]


def redact_text(text: str) -> tuple[str, dict[str, int]]:
    """``text`` with every secret replaced by its marker, and how many of each rule fired.

    Returns ``(text, {})`` (the same object) when nothing was found.
    """
    hits, redacted = _find(text)
    if not hits:
        return text, {}
    return redacted if redacted is not None else _splice(text, hits), _count(hits, {})


def _add_counts(total: dict[str, int], counts: dict[str, int]) -> None:
    for rule_id, n in counts.items():
        total[rule_id] = total.get(rule_id, 0) + n


def _redact_any(value: object, counts: dict[str, int]) -> object:
    if isinstance(value, str):
        redacted, found = redact_text(value)
        _add_counts(counts, found)
        return redacted
    if isinstance(value, dict):
        out: dict[object, object] = {}
        for key, item in value.items():
            new_key = _redact_any(key, counts)
            if new_key in out:
                # Two keys redacted to the same marker: keep both values.
                n = 2
                while f"{new_key}#{n}" in out:
                    n += 1
                new_key = f"{new_key}#{n}"
            out[new_key] = _redact_any(item, counts)
        return out
    # Loops, not comprehensions: a comprehension is a frame of its own (Python 3.11), so
    # the walk would take two frames per level and fail on values json.loads accepted.
    if isinstance(value, list):
        items = []
        for item in value:
            items.append(_redact_any(item, counts))
        return items
    if isinstance(value, tuple):
        members = []
        for item in value:
            members.append(_redact_any(item, counts))
        return tuple(members)
    if isinstance(value, (set, frozenset)):
        return type(value)(_redact_any(item, counts) for item in value)
    if isinstance(value, (bytes, bytearray)):
        # Arbitrary bytes survive the round trip through surrogateescape.
        text = bytes(value).decode("utf-8", "surrogateescape")
        redacted, found = redact_text(text)
        if not found:
            return value
        _add_counts(counts, found)
        return redacted.encode("utf-8", "surrogateescape")
    return value


def redact_value(value: object) -> tuple[object, dict[str, int]]:
    """A copy of ``value`` with every string redacted, and the counts per rule.

    Walks dicts (keys and values), lists, tuples and sets; ``bytes`` are redacted as UTF-8
    (undecodable bytes pass through unchanged). Numbers, booleans, ``None`` and other objects
    are returned as they are. Dict subclasses come back as ``dict``.
    """
    counts: dict[str, int] = {}
    try:
        redacted = _redact_any(value, counts)
    except RecursionError as exc:
        raise RedactionFailed(
            "The value is nested too deeply to redact, so it was not stored."
        ) from exc
    return redacted, counts


_PROBE = 256  # trailing characters kept to find an END line that spans two chunks


class StreamRedactor:
    """Redacts text that arrives in chunks; a secret split across chunks is still found.

    ``feed`` returns the redacted text that is final so far and holds back the rest:

    - the unfinished last line (no rule except the private-key block crosses a line end);
    - of a line longer than ``MAX_LINE`` characters, its last ``CUT_MARGIN`` characters
      (longer than any single-line match), and never a cut through a match or its context;
    - a private-key block whose END line has not arrived. Past ``MAX_PEM_HOLD`` characters
      its marker is emitted and the rest of the block is dropped until the END line. (A
      header that a chunk boundary leaves undecided is looked at again as text arrives.)

    ``flush`` returns everything held back (an unterminated key block is redacted to the end)
    and leaves the redactor ready for a new stream. ``counts`` adds up over the stream. The
    concatenated output equals ``redact_text`` of the whole text (except that a cut in a line
    longer than ``MAX_LINE`` may redact a little more).
    """

    MAX_LINE = 65_536
    CUT_MARGIN = 16_384
    MAX_PEM_HOLD = 1 << 20

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self._parts: list[str] = []
        self._size = 0
        self._tail = ""
        self._in_key = False  # _parts holds a private-key block with no END line (yet)
        self._recheck_at = 0  # while _in_key: drain again at this size even without an END
        self._dropping = False  # past MAX_PEM_HOLD: dropping text until the END line

    def feed(self, chunk: str) -> str:
        """Add ``chunk``; return the redacted text that can be released now."""
        if not isinstance(chunk, str):
            raise RedactionFailed(
                f"Redaction expects text, not {type(chunk).__name__}; nothing was stored."
            )
        if not chunk:
            return ""
        probe = self._tail + chunk
        self._tail = probe[-_PROBE:]
        if self._dropping:
            end = pem_block_end(probe.lower(), 0)
            if end < 0:
                return ""
            self._dropping = False
            self._tail = ""
            return self.feed(probe[end:])
        self._parts.append(chunk)
        self._size += len(chunk)
        if self._in_key:
            # Look again when an END line arrives, or when the held text has doubled (a
            # header at the end of a chunk may turn out to be a mere mention of the format).
            if self._size < self._recheck_at and pem_block_end(probe.lower(), 0) < 0:
                return ""
        elif "\n" not in chunk and self._size < self.MAX_LINE:
            return ""
        out = self._drain(final=False)
        if self._in_key and self._size > self.MAX_PEM_HOLD:
            # Too long to hold: the block runs to the end of what we have, and what follows
            # is dropped until its END line (which may already have begun in the tail).
            tail = self._tail
            out += self._drain(final=True)
            self._tail = tail
            self._dropping = True
        return out

    def flush(self) -> str:
        """Return everything still held back, redacted, and reset for a new stream."""
        out = "" if self._dropping else self._drain(final=True)
        self._parts.clear()
        self._size = 0
        self._tail = ""
        self._in_key = False
        self._recheck_at = 0
        self._dropping = False
        return out

    def _drain(self, *, final: bool) -> str:
        buffer = "".join(self._parts)
        self._parts.clear()
        self._size = 0
        self._in_key = False
        hits = _find(buffer)[0]
        n = len(buffer)
        cut = n
        if not final:
            cut = buffer.rfind("\n") + 1
            if n - cut >= self.MAX_LINE:
                cut = n - self.CUT_MARGIN
            # Never cut through a secret or the text before it that makes it one. Going from
            # the last hit backwards, a moved cut is checked against every earlier hit.
            for hit in reversed(hits):
                if hit.rule == "private-key" and hit.end == n:
                    self._in_key = True  # no END line yet: hold the whole block
                    cut = min(cut, hit.context)
                elif hit.context < cut < hit.end:
                    cut = hit.context
        emitted = [hit for hit in hits if hit.end <= cut]
        out = _splice(buffer[:cut], emitted)
        _count(emitted, self.counts)
        carry = buffer[cut:]
        if carry:
            self._parts.append(carry)
            self._size = len(carry)
        self._tail = carry[-_PROBE:]
        if self._in_key:
            self._recheck_at = 2 * len(carry) + 1024
        return out
