"""The engine that runs gitleaks' default rules (`agentkeep.redact.gitleaks_rules`).

gitleaks runs a rule's regex over a whole file when one of the rule's keywords occurs in
it. Run that way in Python, 196 rules cost about 1 MB/s, and even the keyword check alone
(244 substring searches) costs 40 us on a 300-character field and 2 s on 20 MB. So this
engine checks keywords the way ``re`` is fast at, and runs a rule's regex only in a window
around where its keyword occurs:

- **Token rules** (a vendor prefix such as ``dop_v1_``, ``glrt-``, ``AKCp``): each
  keyword with punctuation in it is found by one pattern run over the *reversed*
  lower-cased text, which then starts with the punctuation character (``_``, ``-``, ``.``),
  so ``re`` only stops at those characters. Letter-only keywords (about 30) are found with
  ``str.find``. A few keywords are checked on the original text case-sensitively (``SK`` of
  Twilio, not the ``sk`` of "task"), or must start a word (``s.`` of Vault). Around each
  occurrence the rule's regex runs over ``reach`` characters on either side.
- **Assignment rules** (``ADAFRUIT_KEY = "..."``: gitleaks' generic template with a vendor
  name): one pattern finds each assignment operator followed by a value of at least 8
  secret-like characters; the name before the operator is looked up (cached) against the
  vendor keywords, and only a name that holds one runs that vendor's regex.

- **kubernetes-secret-yaml** is not run as its regex (two nested lazy gaps: seconds per MB
  on text made of "kind: secret\ndata:\n"), but as three linear searches whose distances
  are checked with bisect (`_kubernetes_secrets`).
- A case-insensitive rule with no upper-case letter of its own runs over the lower-cased
  window without ``(?i)``, so that ``re`` finds its literal prefix at C speed.

A match then goes through gitleaks' own checks: the secret group (``secretGroup``, else
the first non-empty group, else the match), minimum entropy, the rule's allow-lists and the
global allow-list (placeholders such as ``${VAR}``, ``true``, paths under ``/usr``).
Standard library only: this runs on the hook path.
"""

from __future__ import annotations

import math
import re
from bisect import bisect_right
from collections import Counter

from agentkeep.redact.gitleaks_rules import GLOBAL_ALLOW_REGEXES, GLOBAL_STOPWORDS, RULES

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: this module is on the hook's fast path
if TYPE_CHECKING:
    from collections.abc import Callable

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover - for type checkers only
    from collections.abc import Iterable, Iterator

__all__ = [
    "ONLY_AT_WORD_START", "RULE_IDS", "TO_OPERATOR", "VENDOR_LIST", "anchors", "hits",
    "may_match", "searched_anchors", "vendor_keywords",
]  # fmt: skip

_A = re.ASCII
_KUBERNETES = "kubernetes-secret-yaml"  # see `_kubernetes_secrets`
TOKEN_PRIORITY = 38
ASSIGNMENT_PRIORITY = 12


# An upper-case letter that is not an escape (\S, \W, \D, \B, \A, \Z) nor inside a name.
_OWN_UPPER = re.compile(r"(?<!\\)[A-Z]")


def _entropy(value: str) -> float:
    n = len(value)
    if n == 0:
        return 0.0
    return math.log2(n) - sum(c * math.log2(c) for c in Counter(value).values()) / n


class _Rule:
    __slots__ = (
        "allow",
        "back",
        "edge",
        "entropy",
        "forward",
        "id",
        "line_breaks",
        "lower_source",
        "probe_source",
        "probes",
        "regex",
        "secret_group",
        "source",
    )  # fmt: skip

    def __init__(self, row: tuple[object, ...]) -> None:
        rid, _desc, regex, _keywords, _anchors, _kind, group, entropy, allow, reach = row
        self.id = str(rid)
        self.source = str(regex)
        self.regex: re.Pattern[str] | None = None
        # A case-insensitive regex with no upper-case letter of its own runs over the
        # lower-cased text without (?i): re then finds its literal prefix at C speed instead
        # of trying every position (hashicorp-tf-password around every "password").
        body = self.source[4:]
        self.lower_source = (
            body
            if self.source.startswith("(?i)")
            and "(?-i" not in body
            and _OWN_UPPER.search(body) is None
            else None
        )
        self.secret_group = group
        self.entropy = entropy
        self.allow = allow
        # Whether the rule looks across lines or at blanks (curl, Kubernetes manifests).
        self.line_breaks = any(t in self.source for t in (r"\r", r"\n", "(?s", r"\s+"))
        self.back: int = reach[0]  # type: ignore[index]
        self.forward: int = reach[1]  # type: ignore[index]
        # (The Kubernetes rule runs as three searches: its regex is what must not run.)
        self.probe_source = (
            None if self.id == _KUBERNETES else _probe_source(self.lower_source or self.source)
        )
        self.probes: list[re.Pattern[str]] | None = None
        self.edge = self.probe_source is not None and _AT_EDGE.search(self.probe_source) is not None

    def may_match_in(self, text: str, lowered: str, start: int, end: int) -> bool:
        """False only when the regex cannot match in ``text[start:end]`` as it stands
        (escapes not undone): no probe (`_probes`) finds anything there. A match of the
        slice that starts after its first character is one of the whole text too; where
        a probe looks at the character before a position (``\\b``, ``^``), a match at
        the very start is tried on the slice itself."""
        probes = self.probes
        if probes is None:
            probes = self.probes = [re.compile(p, _A) for p in _probes(self.probe_source)]
        if not probes:
            return True
        source = lowered if self.lower_source is not None else text
        for probe in probes:
            if probe.search(source, start, end) is not None:
                return True
        if self.edge:
            piece = source[start:end]
            return any(probe.match(piece) is not None for probe in probes)
        return False

    def compiled(self) -> re.Pattern[str]:
        """The regex; with `lower_source`, to be run over lower-cased text."""
        regex = self.regex
        if regex is None:
            regex = self.regex = re.compile(self.lower_source or self.source, _A)
        return regex

    def secret_span(self, m: re.Match[str]) -> tuple[int, int]:
        group = self.secret_group
        if group is not None:  # 0: the whole match
            return m.span(group)  # type: ignore[arg-type]
        for i in range(1, (m.re.groups or 0) + 1):
            start, end = m.span(i)
            if end > start:
                return start, end
        return m.span()


# gitleaks' closing boundary (what may follow a secret): the probe does without it.
_END_BOUNDARY = "(?:[\\x60'\"\\s;\\\\]|$)"
# A lookbehind looks before where a search starts (at characters a slice does not have).
_LOOKBEHIND = re.compile(r"\(\?<[=!]")
# What looks at the character before a position: searched with ``pos``, at ``pos`` itself
# it sees the character before the window, which a slice does not have.
_AT_EDGE = re.compile(r"\\[bBA]|\^")


def _probe_source(source: str) -> str | None:
    """A pattern that finds something in a window wherever ``source`` does: ``source``
    without its closing boundary (which lets it find more, never less), unless it holds
    a lookbehind. Searched with ``pos``/``endpos`` over the whole text it sees what a
    search of the window's slice sees, except at ``pos`` itself (a word boundary, ``^``;
    see `_Rule.may_match_in`), and runs without copying the window."""
    if _LOOKBEHIND.search(source) is not None:
        return None
    return source.removesuffix(_END_BOUNDARY)


_LEADING_WORDS = re.compile(r"\(\?:([a-z0-9_-]+(?:\|[a-z0-9_-]+)+)\)")


def _probes(source: str | None) -> list[str]:
    """``source`` as patterns that ``re`` searches for their literal prefix: one for each
    word of a leading alternation of words (``(?:administrator_login_password|password)``
    makes ``re`` try every "a" and "p"), less the words that end with another one (where
    "administrator_login_password" is followed by the rest, "password" is too).
    Nothing when there is no `_probe_source` (the window is always searched)."""
    if source is None:
        return []
    m = _LEADING_WORDS.match(source)
    if m is None:
        return [source]
    words = m.group(1).split("|")
    rest = source[m.end() :]
    kept = [w for w in words if not any(o != w and w.endswith(o) for o in words)]
    return [w + rest for w in kept]


_RULES = tuple(_Rule(row) for row in RULES)
RULE_IDS = tuple(rule.id for rule in _RULES)

_GLOBAL_ALLOW: list[re.Pattern[str]] = []


def _allowed(rule: _Rule, secret: str, m: re.Match[str] | _Found, text: str) -> bool:
    """Whether gitleaks' allow-lists let this finding go."""
    lowered = secret.lower()
    if any(word in lowered for word in GLOBAL_STOPWORDS):
        return True
    if not _GLOBAL_ALLOW:
        _GLOBAL_ALLOW.extend(re.compile(p, _A) for p in GLOBAL_ALLOW_REGEXES)
    if any(p.search(secret) for p in _GLOBAL_ALLOW):
        return True
    for target, condition, regexes, stopwords in rule.allow:  # type: ignore[attr-defined]
        if target == "match":
            subject = m.group()
        elif target == "line":
            start = text.rfind("\n", 0, m.start()) + 1
            end = text.find("\n", m.end())
            subject = text[start : end if end >= 0 else len(text)]
        else:
            subject = secret
        by_regex = any(re.search(p, subject, _A) for p in regexes) if regexes else None
        by_word = any(w in lowered for w in stopwords) if stopwords else None
        checks = [c for c in (by_regex, by_word) if c is not None]
        if checks and (all(checks) if condition == "AND" else any(checks)):
            return True
    return False


# --- anchors of token rules -------------------------------------------------------------------

# anchor -> [(rule index, word start)], split by how the anchor is searched.
_REVERSIBLE: dict[str, list[tuple[int, bool]]] = {}  # lower-case, punctuation after 1+ chars
_FIND_LOWER: dict[str, list[tuple[int, bool]]] = {}  # lower-case, str.find on the lowered text
_FIND_CASED: dict[str, list[tuple[int, bool]]] = {}  # case-sensitive, str.find on the text
_UPPER: dict[str, list[tuple[int, bool]]] = {}  # case-sensitive, starting with A-Z
_VENDORS: dict[str, list[int]] = {}  # assignment rules: keyword -> rule indices


def _last_punct(anchor: str) -> int:
    return max((i for i, ch in enumerate(anchor) if not ch.isalnum()), default=-1)


for _index, _row in enumerate(RULES):
    if _row[5] == "assignment":
        for _kw in _row[3]:
            _VENDORS.setdefault(_kw, []).append(_index)
    for _anchor, _cased, _word_start in _row[4]:
        if _cased:
            _table = _UPPER if "A" <= _anchor[0] <= "Z" else _FIND_CASED
        elif _last_punct(_anchor) >= 1:
            _table = _REVERSIBLE
        else:
            _table = _FIND_LOWER
        _table.setdefault(_anchor, []).append((_index, _word_start))

# Each reversible anchor, cut after its last punctuation character and reversed: over the
# reversed text, the search pattern then starts at a punctuation character, and re skips
# everything else at C speed.
_REVERSED: dict[str, list[str]] = {}
for _anchor in _REVERSIBLE:
    _REVERSED.setdefault(_anchor[: _last_punct(_anchor) + 1][::-1], []).append(_anchor)


_WORD_START = "\x00"  # in a trie word, after its first character: "no word character before"


def _edge(ch: str) -> str:
    return r"(?<![a-z0-9_].)" if ch == _WORD_START else re.escape(ch)


def _trie_pattern(words: list[str]) -> str:
    trie: dict[str, dict] = {}  # type: ignore[type-arg]
    for word in words:
        node = trie
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = {}

    def emit(node: dict) -> str:  # type: ignore[type-arg]
        alts = [_edge(ch) + emit(sub) for ch, sub in sorted(node.items()) if ch]
        if not alts:
            return ""
        body = alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"
        return f"(?:{body})?" if "" in node else body

    return emit(trie)


class _Lazy:
    """Patterns compiled on first use, one per first character of the words they find.

    ``re`` finds a literal first character at C speed (memchr); a pattern that starts with
    a character class or an alternation is tried at every position instead, about 10 ns a
    character. So each group of words with the same first character gets its own pattern.
    """

    __slots__ = ("patterns", "sources")

    def __init__(
        self, sources: list[tuple[str, str]] | Callable[[], list[tuple[str, str]]]
    ) -> None:
        # (first character, pattern) pairs, or a function that builds them: building the
        # keyword tries costs milliseconds, which a hook that never needs them must not pay.
        self.sources = sources
        self.patterns: list[tuple[str, re.Pattern[str]]] | None = None

    def get(self) -> list[tuple[str, re.Pattern[str]]]:
        """(first character, compiled pattern) pairs."""
        patterns = self.patterns
        if patterns is None:
            sources = self.sources() if callable(self.sources) else self.sources
            patterns = self.patterns = [(c, re.compile(p, _A)) for c, p in sources]
        return patterns


def _by_first_char(words: list[str]) -> list[tuple[str, str]]:
    groups: dict[str, list[str]] = {}
    for word in words:
        groups.setdefault(word[0], []).append(word[1:])
    return [
        (first, re.escape(first) + _trie_pattern(rest)) for first, rest in sorted(groups.items())
    ]


_REVERSED_SEARCH = _Lazy(lambda: _by_first_char(sorted(_REVERSED)))
_UPPER_SEARCH = _Lazy(lambda: _by_first_char(sorted(_UPPER)))
# The anchors (lower-cased) each of those patterns finds, by the pattern's first character.
_REVERSED_GROUPS: dict[str, frozenset[str]] = {}
for _cut, _anchors in _REVERSED.items():
    _REVERSED_GROUPS[_cut[0]] = _REVERSED_GROUPS.get(_cut[0], frozenset()).union(_anchors)
_UPPER_BY_FIRST: dict[str, list[str]] = {}  # first character -> its anchors, shortest first
for _anchor in sorted(_UPPER, key=len):
    _UPPER_BY_FIRST.setdefault(_anchor[0], []).append(_anchor)
_UPPER_GROUPS: dict[str, frozenset[str]] = {}
for _anchor in _UPPER:
    _UPPER_GROUPS[_anchor[0]] = _UPPER_GROUPS.get(_anchor[0], frozenset()) | {_anchor.lower()}
_LOWERED = {anchor: anchor.lower() for table in (_FIND_LOWER, _FIND_CASED) for anchor in table}
_WORD_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")

# --- assignments ------------------------------------------------------------------------------

# gitleaks' template: NAME [ \t\w.-]{0,20} [\s'"]{0,3} OP [\x60'"\s=]{0,5} VALUE, the vendor
# keyword inside NAME. One pattern per operator character (a literal first character, see
# _Lazy) finds each operator followed by a value of 14 or more characters (the shortest
# value of these rules); the name before it is read over the reversed text. Names repeat
# (JSON keys), so each is looked up against the vendor keywords once (cached). Backslashes
# count as quotes, so that escaped JSON (name\": \"value) is an assignment too.
_VALUE = r"[\x60'\"\s=\\]{0,80}(?=[\w.+/=%:\"'~-]{14})"
_OPERATORS = _Lazy([(":", ":[:=]{0,3}" + _VALUE), ("=", "=" + _VALUE), (",", "," + _VALUE),
                    (">", ">" + _VALUE), ("|", r"\|\|" + _VALUE)])  # fmt: skip
_NAME = _Lazy([("", r"[:?=|]{0,3}[\"' \t\r\n\\]{0,64},?([\w.\- \t]{1,75})")])
_NAME_BACK = 75 + 64  # how far before the operator a match may start
_ASSIGNMENT_FORWARD = 480
_NAME_CACHE: dict[str, tuple[int, ...]] = {}
VENDOR_LIST = sorted(_VENDORS)


def _vendors_in(reversed_name: str) -> tuple[int, ...]:
    found = _NAME_CACHE.get(reversed_name)
    if found is None:
        name = reversed_name[::-1]
        found = tuple(sorted({i for kw in VENDOR_LIST if kw in name for i in _VENDORS[kw]}))
        if len(_NAME_CACHE) > 65536:
            _NAME_CACHE.clear()
        _NAME_CACHE[reversed_name] = found
    return found


# --- the scan ---------------------------------------------------------------------------------

Windows = dict[int, list[tuple[int, int]]]


def _add(
    windows: Windows, lowered: str, entries: list[tuple[int, bool]], pos: int, length: int,
    any_start: bool,
) -> None:  # fmt: skip
    before_is_word = not any_start and pos > 0 and lowered[pos - 1] in _WORD_CHARS
    n = len(lowered)
    for index, word_start in entries:
        if word_start and before_is_word:
            continue
        rule = _RULES[index]
        windows.setdefault(index, []).append(
            (max(0, pos - rule.back), min(n, pos + length + rule.forward))
        )


_SHORT = 4096  # up to this many characters, one gate pattern is tried first


class _WordStart(dict[str, re.Pattern[str]]):
    """anchor -> a pattern that finds it only at the start of a word (compiled on use)."""

    def __missing__(self, anchor: str) -> re.Pattern[str]:
        pattern = re.escape(anchor) + f"(?<![a-z0-9_]{re.escape(anchor)})"
        compiled = self[anchor] = re.compile(pattern, _A)
        return compiled

    def __contains__(self, anchor: object) -> bool:
        return anchor in _WORD_START_ANCHORS


_WORD_START_ANCHORS = frozenset(
    anchor for anchor, entries in _FIND_LOWER.items() if all(start for _, start in entries)
)
_AT_WORD_START = _WordStart()


def _gate_pattern() -> str:
    """Whether any anchor or vendor keyword occurs in a lower-cased text: one pattern (on a
    short text one search, 2-7 us on 300 characters, is cheaper than 30 scans). Anchors
    that must start a word are behind a lookbehind, so that "tests." does not open the
    gate for Vault's "s."."""
    anywhere: set[str] = set(VENDOR_LIST)
    word_start: set[str] = set()
    for table in (_FIND_LOWER, _REVERSIBLE, _FIND_CASED):
        for anchor, entries in table.items():
            if all(start for _, start in entries):
                word_start.add(anchor.lower())
            else:
                anywhere.add(anchor.lower())
    marked = {word[0] + _WORD_START + word[1:] for word in word_start}
    return _trie_pattern(sorted(anywhere | marked))


# The gate over the lower-cased text, and one over the text for the anchors that start with
# an upper-case letter ("SK" of Twilio: in the lower-cased gate every "task" opened it).
_GATE = _Lazy(lambda: [("", _gate_pattern()), ("", _trie_pattern(sorted(_UPPER)))])


def anchors() -> list[str]:
    """Every anchor the scan looks for (see `_windows`'s ``present``)."""
    return [*_FIND_LOWER, *_FIND_CASED, *_UPPER, *_REVERSIBLE]


def searched_anchors() -> list[tuple[str, bool]]:
    """(anchor, case-sensitive) of the anchors whose positions `_windows` can take (its
    ``at``): those it searches with ``str.find`` and `_UPPER`'s; the others (a vendor
    prefix with punctuation) are searched over the reversed text."""
    return [(a, False) for a in _FIND_LOWER] + [(a, True) for a in (*_FIND_CASED, *_UPPER)]


# Lower-case keywords that open windows only where they start a word (see `_add`): the
# compiled engine looks for them there only.
ONLY_AT_WORD_START = frozenset(
    anchor
    for table in (_FIND_LOWER, _REVERSIBLE)
    for anchor, entries in table.items()
    if all(start for _, start in entries)
    and not any(anchor in t and t is not table for t in (_FIND_LOWER, _REVERSIBLE))
)


def _windows(
    text: str,
    lowered: str,
    *,
    any_start: bool,
    present: frozenset[str] | None = None,
    vendor_at: list[int] | None = None,
    at: dict[str, list[int]] | None = None,
) -> Windows:
    """rule index -> windows (start, end) where the rule's regex must run.

    ``any_start`` ignores the word-start condition of anchors (see `may_match`).
    ``present``, when given, holds (lower-cased) every keyword of `keywords` that occurs in
    the text, and maybe others: the searches for the rest are skipped, since they would
    find nothing (the compiled engine, `agentkeep.redact.fast`, knows them).
    ``at``, when given (with ``present``), holds for each anchor of `searched_anchors` in
    ``present`` every position where it occurs (an anchor that must start a word: at
    least where it does), in order; the searches for them are not run again."""
    windows: Windows = {}
    n = len(text)
    if present is not None:
        if not present and not vendor_at:
            return windows
    elif n <= _SHORT and not any_start:
        (_, lower_gate), (_, upper_gate) = _GATE.get()
        if lower_gate.search(lowered) is None and upper_gate.search(text) is None:
            return windows
    for table, source in ((_FIND_LOWER, lowered), (_FIND_CASED, text)):
        for anchor, entries in table.items():
            if present is not None and _LOWERED[anchor] not in present:
                continue
            word_start = not any_start and anchor in _AT_WORD_START
            if at is not None:
                # What the searches below find, from the positions: the word-start search
                # (finditer) takes no occurrence inside the one before.
                taken_to = 0
                for pos in at.get(anchor, ()):
                    if word_start:
                        if pos < taken_to or (pos > 0 and lowered[pos - 1] in _WORD_CHARS):
                            continue
                        taken_to = pos + len(anchor)
                    _add(windows, lowered, entries, pos, len(anchor), any_start)
                continue
            if word_start:
                # A literal first, then a lookbehind: re finds only the word starts.
                for m in _AT_WORD_START[anchor].finditer(lowered):
                    _add(windows, lowered, entries, m.start(), len(anchor), any_start)
                continue
            pos = source.find(anchor)
            while pos >= 0:
                _add(windows, lowered, entries, pos, len(anchor), any_start)
                pos = source.find(anchor, pos + 1)
    if at is not None:
        _upper_at(windows, lowered, at, any_start)
    else:
        for first, pattern in _UPPER_SEARCH.get():
            if (present is not None and _UPPER_GROUPS[first].isdisjoint(present)) or (
                first not in text
            ):
                continue
            for m in pattern.finditer(text):
                anchor = m.group()
                _add(windows, lowered, _UPPER[anchor], m.start(), len(anchor), any_start)
    reversed_text = ""  # made when first needed (a copy of a long text costs)
    for first, pattern in _REVERSED_SEARCH.get():
        if first not in lowered or (
            present is not None and _REVERSED_GROUPS[first].isdisjoint(present)
        ):
            continue
        reversed_text = reversed_text or lowered[::-1]
        for m in pattern.finditer(reversed_text):
            cut_start = n - m.end()  # where the cut anchor starts in the text
            for anchor in _REVERSED[m.group()]:
                if lowered.startswith(anchor, cut_start):
                    entries = _REVERSIBLE[anchor]
                    _add(windows, lowered, entries, cut_start, len(anchor), any_start)
    _assignments(windows, lowered, reversed_text, vendor_at)
    return windows


# Every character an operator match (_OPERATORS) can hold. Where the character before a
# position is none of these, no match runs across that position, so a scan started there
# finds what a scan of the whole text finds from there on.
_OPERATOR_CHARS = frozenset(":=,>|`'\"\\ \t\n\r\f\v")
_VENDOR_REACH = 3 + 64 + 1 + 75  # the most characters _NAME reads before an operator
# What lies between a vendor keyword in a name that _NAME reads and the operator after it:
# the rest of the name, a comma, quotes and blanks, operator characters (no possessive
# repeats: this must match wherever _NAME can have read backwards). Also RE2 syntax.
TO_OPERATOR = r"[\w.\- \t]{0,75},?[\"' \t\r\n\\]{0,64}[:?=|]{0,3}[:=,>|]"
_TO_OPERATOR = re.compile(TO_OPERATOR, _A)


def vendor_keywords(lowered: str) -> list[int]:
    """Where a vendor keyword starts that an operator follows closely enough for it to be
    in the operator's name (`_NAME`): where an assignment rule may match."""
    found = []
    to_operator = _TO_OPERATOR.match
    for kw in VENDOR_LIST:
        i = lowered.find(kw)
        while i >= 0:
            if to_operator(lowered, i + len(kw)) is not None:
                found.append(i)
            i = lowered.find(kw, i + 1)
    return found


def _upper_at(windows: Windows, lowered: str, at: dict[str, list[int]], any_start: bool) -> None:
    """The windows of `_UPPER`'s anchors from their positions: what each group's pattern
    (`_UPPER_SEARCH`, a trie) finds with ``finditer``: at each position the longest anchor
    that starts there, none inside the one before."""
    for first in sorted(_UPPER_BY_FIRST):
        longest: dict[int, str] = {}
        for anchor in _UPPER_BY_FIRST[first]:  # shortest first
            for pos in at.get(anchor, ()):
                longest[pos] = anchor
        taken_to = 0
        for pos in sorted(longest):
            if pos < taken_to:
                continue
            anchor = longest[pos]
            _add(windows, lowered, _UPPER[anchor], pos, len(anchor), any_start)
            taken_to = pos + len(anchor)


def _assignments(
    windows: Windows, lowered: str, reversed_text: str, vendor_at: list[int] | None
) -> None:
    """Add windows around assignments to a name that holds a vendor keyword.

    With ``vendor_at`` (`vendor_keywords`, or more: the compiled engine finds them all in
    its one pass), only operators up to _VENDOR_REACH characters after a vendor keyword
    can have one in their name, so only those stretches are scanned (vendor keywords are
    rare; operators are not). The scans start where no operator match can run across
    (_OPERATOR_CHARS), so they find the operators a scan of the whole text finds, in the
    same order."""
    n = len(lowered)
    if vendor_at is None:  # 85 searches for vendor keywords cost more than one of operators
        _scan_assignments(windows, lowered, reversed_text or lowered[::-1], [(0, n)])
        return
    stretches = [(i + 1, i + 1 + _VENDOR_REACH) for i in vendor_at]
    if stretches:
        _scan_assignments(windows, lowered, reversed_text or lowered[::-1], _merge(stretches))


def _scan_assignments(
    windows: Windows, lowered: str, reversed_text: str, stretches: list[tuple[int, int]]
) -> None:
    """`_assignments` over the operators that start inside ``stretches`` (sorted)."""
    n = len(lowered)
    name_at = _NAME.get()[0][1].match
    for first, pattern in _OPERATORS.get():
        if first not in lowered:
            continue
        for low, high in stretches:
            restart = low
            while restart > 0 and lowered[restart - 1] in _OPERATOR_CHARS:
                restart -= 1
            for m in pattern.finditer(lowered, restart):
                op = m.start()
                if op >= high:
                    break
                if op < low:
                    continue
                name = name_at(reversed_text, n - op)
                if name is None:
                    continue
                for index in _vendors_in(name.group(1)):
                    windows.setdefault(index, []).append(
                        (max(0, op - _NAME_BACK), min(n, op + _ASSIGNMENT_FORWARD))
                    )


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    spans.sort()
    merged = [spans[0]]
    for start, end in spans[1:]:
        last_start, last_end = merged[-1]
        if start <= last_end:
            merged[-1] = (last_start, max(last_end, end))
        else:
            merged.append((start, end))
    return merged


Hit = tuple[str, int, int, int]  # (rule id, start, end, match start)


def hits(
    text: str,
    lowered: str,
    present: frozenset[str] | None = None,
    vendor_at: list[int] | None = None,
    at: dict[str, list[int]] | None = None,
) -> list[Hit]:
    """Findings of the gitleaks rules in ``text`` (``lowered`` is its lower-cased copy of
    the same length). The compiled engine passes ``present`` and ``at`` (see `_windows`)
    and ``vendor_at`` (every place `vendor_keywords` would report, and maybe others)."""
    out: list[Hit] = []
    windows = _windows(text, lowered, any_start=False, present=present, vendor_at=vendor_at, at=at)
    for index, spans in windows.items():
        rule = _RULES[index]
        escapes = _ESCAPE_THAT_MATTERS[rule.line_breaks].search
        may_match_in = rule.may_match_in
        for start, end in _merge(spans):
            # Most windows (every "password" in prose) hold no match: where the rule's probe
            # finds nothing and no escape would be undone, the search is skipped.
            if escapes(text, start, end) is not None:
                _search(rule, text, start, end, None, out)
                _search_unescaped(rule, text, start, end, out)
            elif may_match_in(text, lowered, start, end):
                _search(rule, text, start, end, None, out)
    return out


def _search(
    rule: _Rule, text: str, start: int, end: int, origin: _Origin | None, out: list[Hit],
) -> None:  # fmt: skip
    """Run ``rule`` over ``text[start:end]``; ``origin`` maps each character of an
    unescaped ``text`` to its span in the original text."""
    found: Iterable[tuple[re.Match[str] | _Found, int, int]]
    if rule.id == _KUBERNETES:
        found = _kubernetes_secrets(text, start, end)
    elif rule.lower_source is not None:
        found = _on_lower(rule, text, start, end)
    else:
        found = ((m, *rule.secret_span(m)) for m in rule.compiled().finditer(text, start, end))
    for m, s, e in found:
        if s < 0 or e <= s:
            continue
        secret = text[s:e]
        if rule.entropy is not None and _entropy(secret) < rule.entropy:  # type: ignore[operator]
            continue
        if secret.startswith("[REDACTED:") or _allowed(rule, secret, m, text):
            continue
        if origin is None:
            out.append((rule.id, s, e, m.start()))
        else:
            out.append((rule.id, origin.start(s), origin.end(e), origin.start(m.start())))


# --- the Kubernetes Secret rule ---------------------------------------------------------------

# gitleaks' kubernetes-secret-yaml is "kind: secret" .{0,200}? "data:" .{0,100}? \s+ ENTRY,
# or "data:" .{0,100}? \s+ ENTRY .{0,200}? "kind: secret". As a regex it tries every
# position, and from each "kind:" every split of the two lazy gaps: on text made of
# "kind: secret\ndata:\n" that is seconds per MB. Here each part is found once (three
# linear searches over the window) and the gaps are checked with bisect, so the work is
# linear in the window. It finds every ENTRY the regex could end on, not only the first.
_K8S_KIND = _Lazy([("k", r"kind:(?<!\wkind:)[ \t]*+[\"']?secret\b")])
_K8S_DATA = _Lazy([("d", r"data:(?<!\wdata:)")])
# (Possessive repeats: nothing they take could end the pattern, so giving back is futile.)
_K8S_ENTRY = _Lazy([("", (
    r"(?<=\s)[\w.-]++:(?:[ \t]*+(?:\||>[-+]?)\s++)?[ \t]*+"
    r"(?:[\"']?[a-z0-9+/]{10,}={0,3}[\"']?|\{\{[ \t\w\"|$:=,.-]++}}|\"\"|'')"
))])  # fmt: skip
_K8S_NOT_BLANK = re.compile(r"[^ \t\n\r\f\v]", _A)
_K8S_KIND_GAP = 200  # "kind: secret" .{0,200}? "data:" (and ENTRY .{0,200}? "kind:")
_K8S_DATA_GAP = 100  # "data:" .{0,100}? \s+ ENTRY


class _Found:
    """What `_allowed` needs of a match that no single regex made."""

    __slots__ = ("_end", "_start", "_text")

    def __init__(self, text: str, start: int, end: int) -> None:
        self._text = text
        self._start = start
        self._end = end

    def group(self) -> str:
        return self._text[self._start : self._end]

    def start(self) -> int:
        return self._start

    def end(self) -> int:
        return self._end


def _on_lower(rule: _Rule, text: str, start: int, end: int) -> Iterator[tuple[_Found, int, int]]:
    """Matches of a rule with `lower_source` in text[start:end], as spans of ``text``."""
    piece = text[start:end].lower()
    if len(piece) != end - start:  # U+0130: keep the positions
        piece = text[start:end].replace("\u0130", "i").lower()
    for m in rule.compiled().finditer(piece):
        s, e = rule.secret_span(m)
        yield _Found(text, m.start() + start, m.end() + start), s + start, e + start


def _reaches(text: str, data_end: int, entry_start: int) -> bool:
    """Whether "data:" .{0,100}? \\s+ can end where an entry starts (a blank precedes it):
    the text from 100 characters after "data:" up to the entry is blank."""
    gap_end = data_end + _K8S_DATA_GAP
    return gap_end + 1 >= entry_start or _K8S_NOT_BLANK.search(text, gap_end, entry_start) is None


def _kubernetes_secrets(text: str, start: int, end: int) -> Iterator[tuple[_Found, int, int]]:
    """(match, secret start, secret end) of the Kubernetes Secret rule in text[start:end]."""
    piece = text[start:end].lower()  # the rule is case-insensitive; same length (ASCII)
    if len(piece) != end - start:
        piece = "".join(c.lower() if len(c.lower()) == 1 else c for c in text[start:end])
    kinds = [(m.start() + start, m.end() + start) for m in _K8S_KIND.get()[0][1].finditer(piece)]
    if not kinds:
        return
    datas = [(m.start() + start, m.end() + start) for m in _K8S_DATA.get()[0][1].finditer(piece)]
    if not datas:
        return
    kind_ends = [e for _, e in kinds]
    kind_starts = [s for s, _ in kinds]
    # "data:" after a "kind: secret" within the gap: (data end, data start, kind start).
    after_kind: list[tuple[int, int, int]] = []
    for d_start, d_end in datas:
        i = bisect_right(kind_ends, d_start) - 1
        if i >= 0 and d_start - kind_ends[i] <= _K8S_KIND_GAP + 1:  # +1: a closing quote
            after_kind.append((d_end, d_start, kinds[i][0]))
    after_kind_ends = [d_end for d_end, _, _ in after_kind]
    data_ends = [e for _, e in datas]
    for m in _K8S_ENTRY.get()[0][1].finditer(piece):
        x_start, x_end = m.start() + start, m.end() + start
        i = bisect_right(after_kind_ends, x_start - 1) - 1
        if i >= 0 and _reaches(text, after_kind[i][0], x_start):
            yield _Found(text, after_kind[i][2], x_end), x_start, x_end
            continue
        j = bisect_right(data_ends, x_start - 1) - 1
        if j < 0 or not _reaches(text, data_ends[j], x_start):
            continue
        k = bisect_right(kind_starts, x_start)
        if k < len(kinds) and kinds[k][0] - x_end <= _K8S_KIND_GAP:
            yield _Found(text, datas[j][0], kinds[k][1]), x_start, x_end


# Escapes after which a window is searched again unescaped: quotes, backslashes and \u
# (the rules' separators take backslashes, but not every rule's secret or context does);
# escaped line breaks too for the rules that look across lines or at blanks.
_ESCAPE_THAT_MATTERS = {
    False: re.compile(r"\\[\"'\\u]"),
    True: re.compile(r"\\[\"'\\unrt]"),
}
_UNESCAPE = _Lazy([("\\", r"\\(?:u[0-9a-fA-F]{4}|[\s\S])")])
_SIMPLE = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", '"': '"', "'": "'",
           "\\": "\\", "/": "/"}  # fmt: skip
_MAX_DEPTH = 6


Level = tuple[list[int], list[int], list[int]]  # decoded_at, original_at, widths


def _unescape_once(piece: str) -> tuple[str, Level] | None:
    """``piece`` with one level of JSON string escapes undone, and where each escape was."""
    chars: list[str] = []
    decoded_at: list[int] = []
    original_at: list[int] = []
    widths: list[int] = []
    last = 0
    length = 0
    for m in _UNESCAPE.get()[0][1].finditer(piece):
        token = m.group()
        decoded = chr(int(token[2:], 16)) if len(token) == 6 else _SIMPLE.get(token[1])
        if decoded is None:  # not a JSON escape (\d in a regex): kept as it is
            continue
        a, b = m.span()
        chars.append(piece[last:a])
        length += a - last
        chars.append(decoded)
        decoded_at.append(length)
        original_at.append(a)
        widths.append(b - a)
        length += 1
        last = b
    if not decoded_at:
        return None
    chars.append(piece[last:])
    return "".join(chars), (decoded_at, original_at, widths)


def _start_before(pos: int, level: Level) -> int:
    decoded_at, original_at, widths = level
    i = bisect_right(decoded_at, pos) - 1
    if i < 0:
        return pos
    if decoded_at[i] == pos:
        return original_at[i]
    return original_at[i] + widths[i] + (pos - decoded_at[i] - 1)


def _end_before(pos: int, level: Level) -> int:
    if pos == 0:
        return 0
    decoded_at, original_at, widths = level
    i = bisect_right(decoded_at, pos - 1) - 1
    if i >= 0 and decoded_at[i] == pos - 1:
        return original_at[i] + widths[i]
    return _start_before(pos - 1, level) + 1


class _Origin:
    """Maps positions in a text unescaped level by level back to the original text."""

    __slots__ = ("levels", "offset")

    def __init__(self, offset: int) -> None:
        self.offset = offset
        self.levels: list[Level] = []

    def start(self, pos: int) -> int:
        for level in reversed(self.levels):
            pos = _start_before(pos, level)
        return pos + self.offset

    def end(self, pos: int) -> int:
        for level in reversed(self.levels):
            pos = _end_before(pos, level)
        return pos + self.offset


def _search_unescaped(rule: _Rule, text: str, start: int, end: int, out: list[Hit]) -> None:
    """Run ``rule`` over ``text[start:end]`` with JSON string escapes undone, one level at
    a time (a file inside a tool call inside a transcript line ...), up to _MAX_DEPTH."""
    piece = text[start:end]
    origin = _Origin(start)
    for _ in range(_MAX_DEPTH):
        done = _unescape_once(piece)
        if done is None:
            return
        piece, level = done
        origin.levels.append(level)
        _search(rule, piece, 0, len(piece), origin, out)
        if "\\" not in piece:
            return


def may_match(text: str, lowered: str) -> bool:
    """False only when no gitleaks rule can match in ``text``, nor in any string of a JSON
    document that ``text`` is the serialisation of: no anchor contains a character that
    JSON escapes, and the assignment search steps over backslashes."""
    return bool(_windows(text, lowered, any_start=True))
