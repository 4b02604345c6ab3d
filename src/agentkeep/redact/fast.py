"""The compiled engine: one RE2 pass finds where any rule can match.

`agentkeep.redact` has two engines with identical results. The standard-library engine
(the hook's: it may import nothing else) runs each of ~25 hand-written patterns over the
whole text with ``re``'s literal-prefix search, and looks up each of ~200 gitleaks
keywords with ``str.find``; about 20 MB/s on agent transcripts. This engine finds the
same candidates in one linear-time pass, then runs the very same rule code on them:

- **Hand-written rules.** One RE2 alternation (a DFA: ~500 MB/s whatever the number of
  alternatives) holds, for every pass, its keyword and, for the common keywords (``key``,
  ``token``, ``://``, ...), a *relaxation* of the pass's pattern: the pattern's first part
  with every lookaround dropped and every possessive repeat made plain, so that it matches
  wherever the exact pattern does (``tests/test_redact_engines.py`` checks this for every
  pass). Every match of a pass starts with one of its keywords (each pattern begins with
  it), and every position where a relaxation matches lies inside a span RE2 reports (the
  scan is leftmost: a start it skips is inside the span it reported). So trying the exact
  pattern, with ``match``, at each keyword occurrence inside the reported spans finds
  exactly the matches ``search`` would find, in the same order; `agentkeep.redact`
  replays its search loop over them.
- **gitleaks rules.** One more RE2 pass, over the text with its case, finds every
  occurrence of every anchor (literals; lower-case anchors in any case, the ones that
  count only at the start of a word after a non-word character). `agentkeep.redact.gitleaks`
  opens its windows at those positions instead of searching the text for each anchor
  that occurs (about 5 ms per anchor on 8 MB), and runs its usual searches only for the
  anchors it finds over the reversed text, where one occurs. A search for a keyword that
  does not occur finds nothing, so skipping it changes nothing.

RE2 runs over bytes: the lower-cased text with every non-ASCII code point (and lone
surrogate) replaced by DEL, one byte per character, so that positions carry over. Every
rule is ASCII (``re.ASCII``): a non-ASCII character and DEL both fall in the same
classes (negated ones) and neither equals a keyword character.

Imported only by library processes; the hook never loads RE2 (see
`agentkeep.redact._fast_engine`).
"""

from __future__ import annotations

import codecs
import functools
import re

import re2  # type: ignore[import-untyped,unused-ignore]

from agentkeep.redact import gitleaks as _gitleaks

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover - for type checkers only
    from collections.abc import Sequence
    from typing import Any

__all__ = ["DENSE", "GATE_RELAXED", "RELAXED", "Engine", "cased_bytes"]

_CASED_HANDLER = "agentkeep.redact.cased"


def _lower_or_del(error: UnicodeError) -> tuple[str, int]:
    assert isinstance(error, UnicodeEncodeError)
    out = []
    for ch in error.object[error.start : error.end]:
        low = "i" if ch == "\u0130" else ch.lower()  # as agentkeep.redact._lower has it
        out.append(low if len(low) == 1 and low.isascii() else "\x7f")
    return "".join(out), error.end


codecs.register_error(_CASED_HANDLER, _lower_or_del)


def cased_bytes(text: str) -> bytes:
    """``text`` as one byte per character, case kept, for patterns that ignore case where
    the rules do: a non-ASCII code point that lower-cases to an ASCII letter (the Kelvin
    sign, U+0130) becomes that letter, any other one DEL."""
    return text.encode("ascii", _CASED_HANDLER)


# The keyword gate (`agentkeep.redact.may_contain_secret`) must hold for JSON documents:
# no rule may match in a string inside one where the gate finds nothing in the document.
# So its relaxations take, wherever a rule takes a character that JSON escapes, the escape
# as well (``\t`` for a tab, ``\"`` for a quote, ``\u00XX`` for a control character).
# (The escapes of the characters a quoted value may hold; a bare value holds no blank.)
_QUOTED_ESCAPE = r"\\(?:[tbf/]|u[0-9a-fA-F]{4})"
_BARE_ESCAPE = r"\\(?:[b/]|u[0-9a-fA-F]{4})"
_GATE_ASSIGNMENT = (
    r"[\w.-]{0,40}(?:\\*[\"'`])?(?:[ \t]|\\t){0,8}(?:=>|:{1,3}=|\?=|={1,3}|:|,|\|\||>)"
    r"(?:[ \t]|\\t){0,8}(?:(?:\\*[\"'`]){1,3}"
    rf"(?:[^\"'`\\\r\n]|{_QUOTED_ESCAPE}){{6}}"
    rf"|(?:[^ \t\n\r\f\v\"'`,;\\(){{}}\[\]<>|&]|{_BARE_ESCAPE}){{6}})"
)
GATE_RELAXED: dict[str, str] = {
    **{
        kw: f"(?i:{kw}){_GATE_ASSIGNMENT}"
        for kw in ("key", "token", "secret", "passw", "pwd", "auth", "cred", "api", "access")
    },
    "://": r"://(?:[^ \t\n\r\f\v:/?#@'\"<>\[\]`])*:",
}
# An anchor that counts only at the start of a word: after a non-word character, at the
# start, or after an escape (a newline before it is "\n" in the document).
_WORD_START = r"(?:^|[^a-zA-Z0-9_]|\\[a-zA-Z]|\\u[0-9a-fA-F]{4})"
_GATE_TO_OPERATOR = r"(?:[\w.\- \t]|\\t){0,75},?(?:[\"' \t\r\n\\]|\\[tnr]){0,128}[:?=|]{0,3}[:=,>|]"


# The relaxations (see the module docstring): keyword -> what may follow it. Each is a
# prefix of its pass's pattern (agentkeep.redact.rules) with lookarounds dropped and
# possessive repeats plain, written for RE2 over lower-cased text (so classes are closed
# under case), ``\s`` spelled out as Python's ASCII ``[ \t\n\r\f\v]`` (RE2's lacks \v).
_ASSIGNMENT_RELAXED = (
    r"[\w.-]{0,40}(?:\\{0,15}[\"'`])?[ \t]{0,8}(?:=>|:{1,3}=|\?=|={1,3}|:|,|\|\||>)[ \t]{0,8}"
    r"(?:(?:\\{0,15}[\"'`]){1,3}[^\"'`\\\r\n]{6}|[^ \t\n\r\f\v\"'`,;\\(){}\[\]<>|&]{6})"
)
RELAXED: dict[str, str] = {
    **{
        kw: re.escape(kw) + _ASSIGNMENT_RELAXED
        for kw in ("key", "token", "secret", "passw", "pwd", "auth", "cred", "api", "access")
    },
    "://": r"://[^ \t\n\r\f\v:/?#@'\"<>\[\]`]{0,256}:",
    "authorization": r"authorization(?:\\{0,15}[\"'`])?[ \t]{0,8}[:=]",
    "bearer": r"bearer[ \t]+[\w~+/=.%-]",
    # Token formats: the prefix and the shortest body (over lower-cased text).
    "-----begin": r"-----begin[ a-z0-9_-]{0,100}private key",
    **{kw: kw.lower() + "[a-z2-7]{16}" for kw in ("AKIA", "ASIA", "ABIA", "ACCA")},
    "A3T": "a3t[a-z0-9][a-z2-7]{16}",
    **{f"gh{kind}_": f"gh{kind}_[0-9a-z]{{36}}" for kind in "pousr"},
    "github_pat_": "github_pat_[0-9a-z_]{82}",
    "glpat-": "glpat-[0-9a-z_-]{20}",
    "sk-": r"sk-[\w-]{20}",
    "xox": r"xox[a-z](?:\.xox[a-z])?-[0-9a-z-]{8}",
    "xapp-": "xapp-[0-9]-[0-9a-z-]{10}",
    "hooks.slack.com": r"hooks\.slack\.com/(?:services|workflows|triggers)/[a-z0-9+/_-]{20}",
    "AIza": r"aiza[\w-]{35}",
    "hf_": "hf_[a-z0-9]{34}",
    "npm_": "npm_[a-z0-9]{36}",
    "pypi-AgEIcHlwaS5vcmc": r"pypi-ageichlwas5vcmc[\w-]{50}",
    **{f"k_{env}_": f"k_{env}_[a-z0-9]{{10}}" for env in ("live", "test", "prod")},
    "eyJ": r"eyj[\w-]{8,1000}[\w-]{0,1000}\.eyj[\w-]{8}",  # (RE2 counts to 1,000)
}


DENSE = 256  # bytes per start above which the standard-library engine is faster


class Engine:
    """The compiled prefilter for one rule set (the passes of `agentkeep.redact`)."""

    def __init__(self, keyword_sets: Sequence[tuple[tuple[str, ...], bool]]) -> None:
        # keyword_sets: for each pass, (keywords, whether they are lower-case).
        alternatives: dict[str, None] = {}
        # first two characters of a lower-cased keyword (every one has two or more) ->
        # (keyword, its pass, lower-case)
        self.by_first: dict[str, list[tuple[str, int, bool]]] = {}
        for index, (keywords, on_lower) in enumerate(keyword_sets):
            for kw in keywords:
                alternatives[RELAXED.get(kw) or re.escape(kw.lower())] = None
                self.by_first.setdefault(kw[:2].lower(), []).append((kw, index, on_lower))
        self.passes = len(keyword_sets)
        self.dense = DENSE
        # gitleaks' vendor keywords where an operator may follow (`vendor_keywords`).
        vendors = "|".join(map(re.escape, _gitleaks.VENDOR_LIST))
        alternatives[f"(?:{vendors}){_gitleaks.TO_OPERATOR}"] = None
        for kw in _gitleaks.VENDOR_LIST:
            self.by_first.setdefault(kw[:2], []).append((kw, -1, True))
        # gitleaks' anchors: lower-case ones in any case, the others (``SK``, ``AKCp``) as
        # they are, and those that count only at the start of a word only after a non-word
        # character (or at the start): the match then starts one byte before the anchor.
        cased_alternatives: list[str] = []
        # first two characters, lower-cased -> (anchor, case-sensitive), and of the
        # anchors looked for after a non-word character
        self.anchors_by_first: dict[str, list[tuple[str, bool]]] = {}
        self.word_start_by_first: dict[str, list[str]] = {}
        searched = dict(_gitleaks.searched_anchors())
        for anchor in _gitleaks.anchors():
            cased = searched.get(anchor, False)
            if cased:
                cased_alternatives.append(re.escape(anchor))
            elif anchor in _gitleaks.ONLY_AT_WORD_START:
                alternatives["(?:^|[^a-z0-9_])" + re.escape(anchor)] = None
                self.word_start_by_first.setdefault(anchor[:2], []).append(anchor)
            else:
                alternatives[re.escape(anchor)] = None
            self.anchors_by_first.setdefault(anchor[:2].lower(), []).append((anchor, cased))
        self.searched = frozenset(searched)
        # Positions and ``present`` are kept by anchor, lower-cased: no two may share one.
        words = [anchor.lower() for anchor in _gitleaks.anchors()]
        if len(set(words)) != len(words):
            raise RuntimeError("two gitleaks anchors differ only in case")
        # One pass over the text with its case: everything but the case-sensitive anchors
        # ignores case (and so reads the text as its lower-cased copy, see `cased_bytes`).
        options = re2.Options()
        options.max_mem = 64 << 20
        lower = "|".join(f"(?:{alt})" for alt in alternatives)
        compiled = re2.compile("|".join([f"(?i:{lower})", *cased_alternatives]).encode(), options)
        self.search = compiled.search
        # A search per start: the binding's own call (a generator and a match object)
        # costs twice what RE2 does on ordinary text, so the underlying one is called when
        # it is there: (anchor, text, pos, endpos) -> [(start, end)], (-1, -1) for none.
        regexp = getattr(compiled, "_regexp", None)
        anchors = getattr(re2, "_Anchor", None)
        self.first_match: Any = None
        if regexp is not None and anchors is not None:
            self.first_match = functools.partial(regexp.Match, anchors.UNANCHORED)
        self.gate_search = self._gate(keyword_sets).search
        # (A search whose DFA runs out of memory falls back to RE2's NFA: slower, same
        # matches. Unlike the RE2 Set this pass replaced, nothing is silently missed.)

    def _gate(self, keyword_sets: Sequence[tuple[tuple[str, ...], bool]]) -> Any:
        alternatives: dict[str, None] = {}
        for keywords, on_lower in keyword_sets:
            for kw in keywords:
                literal = re.escape(kw)
                alternatives[
                    GATE_RELAXED.get(kw) or (f"(?i:{literal})" if on_lower else literal)
                ] = None
        for anchor in _gitleaks.anchors():
            literal = f"(?i:{re.escape(anchor)})" if anchor == anchor.lower() else re.escape(anchor)
            if anchor in _gitleaks.ONLY_AT_WORD_START:
                literal = _WORD_START + literal
            alternatives[literal] = None
        vendors = "|".join(map(re.escape, _gitleaks.VENDOR_LIST))
        alternatives[f"(?i:{vendors}){_GATE_TO_OPERATOR}"] = None
        options = re2.Options()
        options.max_mem = 64 << 20
        return re2.compile("|".join(f"(?:{alt})" for alt in alternatives).encode(), options)

    def may_contain(self, text: str) -> bool:
        """Whether a rule may match in ``text``, or in a string of the JSON document
        ``text`` is (escapes aside: see `agentkeep.redact.may_contain_secret`)."""
        return self.gate_search(cased_bytes(text)) is not None

    def starts(self, data: bytes) -> list[int] | None:
        """Every position of ``data`` (`cased_bytes` of the text) where a relaxation, a
        bare keyword or a gitleaks anchor matches, in order. Each search resumes one byte
        after the last start, so a start inside an earlier match is reported too.

        ``None`` when there are more than one per ``DENSE`` bytes (and a few), overall or
        so far: text made of keywords ("://" * 300_000), where a search per start costs
        more than the standard-library engine, whose patterns reject them in C."""
        found: list[int] = []
        dense = self.dense
        end = len(data)
        limit = 64 + end // dense
        pos = 0
        first_match = self.first_match
        search = self.search
        while True:
            if first_match is not None:
                start = first_match(data, pos, end)[0][0]
                if start < 0:
                    break
            else:
                m = search(data, pos)
                if m is None:
                    break
                start = m.start()
            found.append(start)
            n = len(found)
            if n > 16 and (n > limit or start < n * dense):
                return None
            pos = start + 1
        return found

    def candidates(self, text: str, lowered: str, data: bytes) -> list[list[int]] | None:
        """For each pass, the sorted positions where one of its keywords starts and its
        relaxation matches: a superset of where its pattern matches. Last, one more list:
        where a gitleaks vendor keyword starts and an operator may follow. ``None`` for
        text dense with keywords (see `starts`). ``data`` is `cased_bytes` of ``text``."""
        located = self.locate(text, lowered, data)
        return None if located is None else located[0]

    def locate(
        self, text: str, lowered: str, data: bytes
    ) -> tuple[list[list[int]], frozenset[str], dict[str, list[int]]] | None:
        """`candidates`, the gitleaks anchors that occur in ``text`` (lower-cased:
        ``present`` of `agentkeep.redact.gitleaks.hits`), and where each of them that
        `agentkeep.redact.gitleaks.searched_anchors` lists occurs (``at``: every
        occurrence; of one that counts only at the start of a word, at least those).

        Every start of every alternative is a start (see `starts`), and an anchor that
        must start a word starts one byte after its alternative does: so each start and,
        for those anchors, the byte after it are checked."""
        starts = self.starts(data)
        if starts is None:
            return None
        found: list[list[int]] = [[] for _ in range(self.passes + 1)]
        by_first = self.by_first
        anchors_by_first = self.anchors_by_first
        word_start_by_first = self.word_start_by_first
        at: dict[str, list[int]] = {}
        n = len(text)
        for start in starts:
            first = lowered[start : start + 2]
            for kw, index, on_lower in by_first.get(first, ()):
                if (lowered if on_lower else text).startswith(kw, start):
                    positions = found[index]
                    if not positions or positions[-1] != start:
                        positions.append(start)
            for anchor, cased in anchors_by_first.get(first, ()):
                if (text if cased else lowered).startswith(anchor, start):
                    positions = at.setdefault(anchor, [])
                    if not positions or positions[-1] != start:
                        positions.append(start)
            after = start + 1
            if after < n:
                for anchor in word_start_by_first.get(lowered[after : after + 2], ()):
                    if lowered.startswith(anchor, after):
                        positions = at.setdefault(anchor, [])
                        if not positions or positions[-1] != after:
                            positions.append(after)
        present = frozenset(anchor.lower() for anchor in at)
        searched = self.searched
        return found, present, {a: at[a] for a in searched if a in at}
