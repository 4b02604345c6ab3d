"""The curated secret-detection rules behind `agentkeep.redact`.

The rules are ported by hand from gitleaks' default rule set (``config/gitleaks.toml``,
https://github.com/gitleaks/gitleaks) and keep gitleaks' rule ids where one exists. Three ids
are ours because gitleaks has no equivalent: ``aws-secret-access-key``,
``authorization-header`` and ``url-password``. gitleaks is distributed under this licence:

    MIT License

    Copyright (c) 2019 Zachary Rice

    Permission is hereby granted, free of charge, to any person obtaining a copy
    of this software and associated documentation files (the "Software"), to deal
    in the Software without restriction, including without limitation the rights
    to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
    copies of the Software, and to permit persons to whom the Software is
    furnished to do so, subject to the following conditions:

    The above copyright notice and this permission notice shall be included in all
    copies or substantial portions of the Software.

    THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
    IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
    FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
    AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
    LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
    OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
    SOFTWARE.

How these rules differ from gitleaks, and why:

- **Recall first.** A missed secret is stored for good; an over-redacted string costs little.
  Token lengths are lower bounds (``ghp_`` + 36 *or more*), exact-suffix checks such as
  Anthropic's trailing ``AA`` are dropped, and gitleaks' example allow-lists
  (``...EXAMPLE``) are not ported.
- **Speed.** Each scan pattern starts with a literal (its keyword). CPython's ``re`` then
  finds candidates with its literal-prefix search, which runs at C speed (about 3 GB/s on
  this machine, faster than ``str.find``). A leading ``\\b``, ``(?i)`` or character class would
  make ``re`` try every position instead (measured 40-70x slower). Left word boundaries are
  therefore written as lookbehinds placed *after* the literal, and case-insensitive rules
  run on a lower-cased copy of the text.
- **One pass per prefix.** Rules that share a prefix share one compiled pattern
  (``ghp_``/``gho_``/``ghu_``/``ghs_``/``ghr_``/``github_pat_`` are one pass over the text);
  each rule then claims the matches that are its own through `Rule.extract`.
- **No ReDoS.** Every repetition is bounded and possessive where possible. A pattern that
  can fail after a long run (the JWT's dots) has a lookbehind so that only one start per run
  is tried; otherwise ``"eyJ" * 333_333`` would cost 333 k scans of 2,000 characters.
- **All patterns are line-local** (no ``\\s`` across a newline) except the private-key block,
  which `agentkeep.redact.StreamRedactor` relies on to cut chunks at line ends.
"""

from __future__ import annotations

import math
import re
from collections import Counter

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover - for type checkers only
    from collections.abc import Callable, Iterator
    from typing import Any

    Span = tuple[int, int]
    Extractor = Callable[[re.Match[str], str], Span | None]

__all__ = [
    "REDACTION_MARKER_PREFIX",
    "RULES",
    "Rule",
    "shannon_entropy",
]

REDACTION_MARKER_PREFIX = "[REDACTED:"

_A = re.ASCII


class LazyPattern:
    """A regular expression compiled on first use.

    Compiling the ~40 patterns of this module takes about 10 ms, more than a hook process
    may spend on everything (principle 11 of docs/design.md); most processes need two or three of
    them, picked by the keyword gates. After the first use, ``search``/``match``/
    ``fullmatch``/``finditer`` are the compiled pattern's own bound methods (stored on the
    instance), so a hot loop pays nothing for the laziness.
    """

    def __init__(self, pattern: str, flags: int = 0) -> None:
        self.pattern = pattern
        self.flags = flags

    def compiled(self) -> re.Pattern[str]:
        """The compiled pattern (compiled once)."""
        found: re.Pattern[str] | None = self.__dict__.get("_compiled")
        if found is None:
            found = re.compile(self.pattern, self.flags)
            attrs = self.__dict__
            attrs["_compiled"] = found
            attrs["search"] = found.search
            attrs["match"] = found.match
            attrs["fullmatch"] = found.fullmatch
            attrs["finditer"] = found.finditer
        return found

    def __getattr__(self, name: str) -> Any:  # only for names the instance does not hold
        if name.startswith("__") or name == "_compiled":
            raise AttributeError(name)
        return getattr(self.compiled(), name)

    def __repr__(self) -> str:
        return f"LazyPattern({self.pattern!r}, {self.flags!r})"

    if TYPE_CHECKING:  # the compiled pattern's methods, reached through __getattr__

        def search(
            self, string: str, pos: int = ..., endpos: int = ...
        ) -> re.Match[str] | None: ...

        def match(self, string: str, pos: int = ..., endpos: int = ...) -> re.Match[str] | None: ...

        def fullmatch(
            self, string: str, pos: int = ..., endpos: int = ...
        ) -> re.Match[str] | None: ...

        def finditer(
            self, string: str, pos: int = ..., endpos: int = ...
        ) -> Iterator[re.Match[str]]: ...


def _lazy(pattern: str, flags: int = 0) -> LazyPattern:
    return LazyPattern(pattern, flags)


def _compile_now(pattern: re.Pattern[str] | LazyPattern) -> re.Pattern[str]:
    return pattern.compiled() if isinstance(pattern, LazyPattern) else pattern


class Rule:
    """One kind of secret: how to find it and which part of a match is the secret.

    ``keywords`` are literals of which at least one occurs in every match; short texts skip
    a rule whose keywords are all absent. ``patterns`` are run over the text (over its
    lower-cased copy when ``ignore_case``; keywords are then lower-case too). The secret is
    the span of ``secret_group``, or whatever ``extract(match, text)`` returns (``None``
    rejects the match). ``entropy`` is a minimum Shannon entropy (bits per character) of the
    secret. Where matches of two rules overlap, the one with the higher ``priority`` names
    the merged span. ``context_before`` is how far before a match the text that makes it a
    match can start (a variable name, a lookbehind); the stream redactor never cuts there.

    Immutable, compared by value, like a frozen dataclass (which it was: a plain class
    keeps ``dataclasses`` and its 8 ms of imports off the hook path). ``patterns`` may be
    given compiled or as :class:`LazyPattern`; they are compiled on first access.
    """

    __slots__ = (
        "_compiled_patterns",
        "context_before",
        "description",
        "entropy",
        "extract",
        "id",
        "ignore_case",
        "keywords",
        "lazy_patterns",
        "priority",
        "secret_group",
    )
    __match_args__ = (
        "id",
        "description",
        "keywords",
        "patterns",
        "entropy",
        "ignore_case",
        "secret_group",
        "extract",
        "priority",
        "context_before",
    )

    id: str
    description: str
    keywords: tuple[str, ...]
    lazy_patterns: tuple[re.Pattern[str] | LazyPattern, ...]
    entropy: float | None
    ignore_case: bool
    secret_group: int | str
    extract: Extractor | None
    priority: int
    context_before: int
    _compiled_patterns: tuple[re.Pattern[str], ...] | None

    def __init__(
        self,
        id: str,
        description: str,
        keywords: tuple[str, ...],
        patterns: tuple[re.Pattern[str] | LazyPattern, ...],
        entropy: float | None = None,
        ignore_case: bool = False,
        secret_group: int | str = 0,
        extract: Extractor | None = None,
        priority: int = 40,
        context_before: int = 4,
    ) -> None:
        init = object.__setattr__
        init(self, "id", id)
        init(self, "description", description)
        init(self, "keywords", keywords)
        init(self, "lazy_patterns", tuple(patterns))
        init(self, "entropy", entropy)
        init(self, "ignore_case", ignore_case)
        init(self, "secret_group", secret_group)
        init(self, "extract", extract)
        init(self, "priority", priority)
        init(self, "context_before", context_before)
        init(self, "_compiled_patterns", None)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r}")

    @property
    def patterns(self) -> tuple[re.Pattern[str], ...]:
        """The rule's patterns, compiled."""
        compiled: tuple[re.Pattern[str], ...] | None = self._compiled_patterns
        if compiled is None:
            compiled = tuple(_compile_now(p) for p in self.lazy_patterns)
            object.__setattr__(self, "_compiled_patterns", compiled)
        return compiled

    @property
    def pattern(self) -> re.Pattern[str]:
        """The rule's main pattern (the first of ``patterns``)."""
        return self.patterns[0]

    def _fields(self) -> tuple[object, ...]:
        sources = tuple((p.pattern, p.flags) for p in self.lazy_patterns)
        return (
            self.id,
            self.description,
            self.keywords,
            sources,
            self.entropy,
            self.ignore_case,
            self.secret_group,
            self.extract,
            self.priority,
            self.context_before,
        )

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, Rule)
        return self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        shown = [
            (name, value)
            for name, value in zip(self.__match_args__, self._fields(), strict=True)
            if name != "patterns"
        ]
        shown.insert(3, ("patterns", self.lazy_patterns))
        return f"Rule({', '.join(f'{name}={value!r}' for name, value in shown)})"

    def claim(self, match: re.Match[str], text: str) -> Span | None:
        """The span of ``text`` this rule redacts for ``match``, or ``None``."""
        if self.extract is not None:
            span = self.extract(match, text)
            if span is None:
                return None
        else:
            span = match.span(self.secret_group)
            if span[0] < 0 or span[0] == span[1]:
                return None
        start, end = span
        if text.startswith(REDACTION_MARKER_PREFIX, start):
            return None
        if self.entropy is not None and shannon_entropy(text[start:end]) < self.entropy:
            return None
        return span


def shannon_entropy(value: str) -> float:
    """Shannon entropy of ``value`` in bits per character (0.0 for an empty string)."""
    n = len(value)
    if n == 0:
        return 0.0
    return math.log2(n) - sum(c * math.log2(c) for c in Counter(value).values()) / n


# --- value plausibility (shared by the assignment, header and URL rules) ----------------------

# Templates and obvious placeholders: $VAR, ${VAR}, $(cmd), %VAR%, {{ x }}, {x}, <x>, [x],
# #{x}, @x@, ***, xxx, "changeme", "your_key_here", ...
_PLACEHOLDER = _lazy(
    r"\$[A-Za-z_]\w*|\$\{[^{}]*\}|\$\(.*\)|%\w+%|\{\{.*\}\}|\{[\w.]*\}|<[^<>]*>|\[[^\[\]]*\]"
    r"|#\{.*\}|@\w+@|\*+|x+|\.+|-+|_+|#+|\?+|0+"
    r"|(?:your|my|the|some)[_-].*|.*[_-](?:here|goes[_-]here|placeholder)"
    r"|change[_-]?me|changeit|placeholder|redacted|example|sample|dummy|fake|test|testing"
    r"|secret|password|passwd|pass|pwd|token|apikey|api[_-]key|key|value|string|str"
    r"|none|null|nil|true|false|undefined|empty|todo|tbd|n/a|x+(?:[-_.]x+)+|\.\.\.",
    _A | re.IGNORECASE,
)
_URL_START = _lazy(r"[A-Za-z][A-Za-z0-9+.-]{0,30}://", _A)
_NUMBER = _lazy(r"[+-]?\d+(?:[.,_]\d+)*(?:e[+-]?\d+)?[kmgtKMGT%]?")
# Identifiers and words without digits: snake_case, kebab-case, dotted.paths, UPPER_SNAKE,
# camelCase, PascalCase, each part a word of one case (or one capital and then lower case).
# Random secrets almost never have this shape; "qwQJmaX" (mixed case at random) is not one.
_WORD = r"(?:_*(?:[a-z]+|[A-Z]+|[A-Za-z][a-z]+(?:[A-Z][a-z]+)*)(?:_+[A-Za-z]+)*_*)"
_IDENTIFIER = _lazy(rf"{_WORD}(?:[.-]{_WORD})*", _A)
# Absolute paths under well-known roots, home/relative paths, Windows paths, and relative
# paths that end in a file name with an all-letter extension (src/app/main.py).
_PATH = _lazy(
    r"/(?:bin|etc|home|opt|tmp|usr|var|Users|root|srv|mnt|proc|sys|dev|run|workspace|work|app"
    r"|data|private|Library|Applications|System|Volumes|nix|snap)(?:/\S*)?"
    r"|~/\S*|\.{1,2}/\S*|[A-Za-z]:[\\/]\S*|(?:[\w.@+-]+/)+[\w@+-]+\.[A-Za-z]{1,6}",
    _A,
)


def _entropy_floor(length: int, scale: float) -> float:
    """The entropy a value of ``length`` characters must reach.

    A fixed floor of 3.5 bits would reject every random secret shorter than 12 characters,
    because a string of n distinct characters has at most log2(n) bits. So the floor is
    ``scale * log2(n)``, capped at 3.5: a random string of n characters lands close to
    log2(n), while repetitive values ("aaaa1111", "abcabc") fall well below it. Words and
    identifiers, which pass an entropy test easily, are rejected by shape instead.
    """
    return min(3.5, scale * math.log2(length))


def plausible_secret_value(value: str, *, password_like: bool = False) -> bool:
    """Whether ``value`` (the right-hand side of an assignment) may be a secret."""
    if not value or value.lstrip().startswith(REDACTION_MARKER_PREFIX):
        return False
    if _PLACEHOLDER.fullmatch(value):
        return False
    if any(ch.isspace() for ch in value):
        # A sentence is not an API key; a passphrase is still a password.
        if not password_like:
            return False
    elif _IDENTIFIER.fullmatch(value.rstrip("=:")) or _PATH.fullmatch(value):
        return False  # a name (or the name of the next assignment: "SERVICE_API_KEY=")
    if _URL_START.match(value):
        return False  # a URL; `url-password` handles credentials inside it
    if len(value) < 20 and _NUMBER.fullmatch(value):
        return False  # counts, ports, limits, versions
    n = len(value)
    if n < (6 if password_like else 8):
        return False
    return shannon_entropy(value) >= _entropy_floor(n, 0.75 if password_like else 0.85)


# --- token formats ----------------------------------------------------------------------------

_AWS_ACCESS_KEY = _lazy(
    r"(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16}(?![A-Za-z0-9])",
    _A,
)

_GITHUB = _lazy(
    r"g(?:h(?P<kind>[pousr])_[0-9A-Za-z]{36,255}+|ithub_pat_[0-9A-Za-z_]{82,255}+)",
    _A,
)


def _group_in(group: str, accepted: str | None) -> Extractor:
    """Claim the whole match when ``group`` matched one of ``accepted`` (or did not match)."""

    def extract(match: re.Match[str], text: str) -> Span | None:
        value = match.group(group)
        if accepted is None:
            return match.span() if value is None else None
        return match.span() if value is not None and value in accepted else None

    return extract


_GITLAB_PAT = _lazy(r"glpat-[0-9A-Za-z_-]{20,300}+(?:\.[0-9a-z]{2,20}+)?", _A)

# sk- keys: OpenAI (sk-proj-, sk-svcacct-, sk-admin-, legacy sk-...T3BlbkFJ...), Anthropic
# (sk-ant-api03-, sk-ant-admin01-). Other sk- keys need a word boundary before them, which
# skips "task-", "disk-", "risk-" ... but not a JSON escape such as "\nsk-".
_SK = _lazy(
    r"sk-(?:(?=(?:proj|svcacct|admin|ant)-)|(?<![A-Za-z0-9]sk-)|(?<=\\[nrt]sk-))[\w-]{20,500}+",
    _A,
)
_OPENAI_MARKER = "T3BlbkFJ"  # base64 of "OpenAI"


def _anthropic_admin(match: re.Match[str], text: str) -> Span | None:
    token = match.group()
    return match.span() if token.startswith("sk-ant-admin") and len(token) >= 39 else None


def _anthropic(match: re.Match[str], text: str) -> Span | None:
    token = match.group()
    return match.span() if token.startswith("sk-ant-") and len(token) >= 39 else None


def _openai(match: re.Match[str], text: str) -> Span | None:
    token = match.group()
    if token.startswith("sk-ant-"):
        return None
    if token.startswith(("sk-proj-", "sk-svcacct-", "sk-admin-")) or _OPENAI_MARKER in token:
        return match.span()
    # Any other long sk- key (legacy OpenAI sk- + 48, and the sk- keys of other vendors) if
    # it looks random: letters and digits mixed, high entropy.
    rest = token[3:]
    if (
        len(rest) >= 32
        and any(ch.isdigit() for ch in rest)
        and any(ch.isalpha() for ch in rest)
        and shannon_entropy(rest) >= 3.5
    ):
        return match.span()
    return None


_SLACK = _lazy(
    r"x(?:ox(?P<kind>[a-z])(?P<config>\.xox[a-z])?-[0-9A-Za-z-]{8,500}+"
    r"|app-\d-[0-9A-Za-z-]{10,500}+)",
    _A,
)


def _slack_config(match: re.Match[str], text: str) -> Span | None:
    return match.span() if match.group("config") is not None else None


_SLACK_WEBHOOK = _lazy(
    r"hooks\.slack\.com/(?:services|workflows|triggers)/(?P<secret>[A-Za-z0-9+/_-]{20,300}+)",
    _A,
)
_GCP_API_KEY = _lazy(r"AIza[\w-]{35,100}+", _A)
_HUGGINGFACE = _lazy(r"hf_[A-Za-z0-9]{34,100}+", _A)
_NPM = _lazy(r"npm_[A-Za-z0-9]{36,100}+", _A)
_PYPI = _lazy(r"pypi-AgEIcHlwaS5vcmc[\w-]{50,1000}+", _A)
# Secret and restricted Stripe keys. The pattern starts at "k_" so that re can use the
# literal prefix; the lookbehinds require an "s" or "r" before it and no word character
# before that (so "task_test_..." is not a key).
_STRIPE = _lazy(
    r"k_(?<=[rs]k_)(?:(?<![A-Za-z0-9_][rs]k_)|(?<=\\[nrt][rs]k_))"
    r"(?:live|test|prod)_[A-Za-z0-9]{10,255}+",
    _A,
)


def _stripe(match: re.Match[str], text: str) -> Span | None:
    return match.start() - 1, match.end()


_JWT = _lazy(
    r"eyJ(?:(?<![\w-]eyJ)|(?<=\\[nrt]eyJ))[\w-]{8,2000}+\.eyJ[\w-]{8,6000}+\.[\w-]{0,1000}+",
    _A,
)

# --- private keys (PEM and friends) ------------------------------------------------------------

_PEM_BEGIN = _lazy(r"-----begin[ a-z0-9_-]{0,100}?private key(?: block)?-----", _A)
_PEM_END = _lazy(r"-----end[ a-z0-9_-]{0,100}?-----", _A)
_BASE64_RUN = _lazy(r"[A-Za-z0-9+/=]{0,16}", _A)
_PEM_BODY_MIN = 16


def pem_block_end(lowered: str, pos: int) -> int:
    """The index just past the first complete ``-----END ...-----`` at or after ``pos``.

    ``lowered`` is lower-case text. Returns -1 when there is none.
    """
    while True:
        i = lowered.find("-----end", pos)
        if i < 0:
            return -1
        m = _PEM_END.match(lowered, i)
        if m is not None:
            return m.end()
        pos = i + 8


def _private_key(match: re.Match[str], text: str) -> Span | None:
    """BEGIN header → END line. A header with a body but no END line runs to the end.

    A header that is followed by something other than key material (a quote, code, prose)
    is only a mention of the format, so just the header is replaced. When the text ends
    before that can be told apart, the block is treated as unterminated.
    """
    lowered = match.string
    start, header_end = match.span()
    n = len(text)
    i = header_end
    while i < n:  # skip blank space and line breaks escaped at any depth (\n, \\n, ...)
        ch = text[i]
        if ch in " \t\r\n":
            i += 1
        elif ch == "\\":
            j = i + 1
            while j < n and text[j] == "\\":
                j += 1
            if j < n and text[j] in "nrt":
                i = j + 1
            else:
                break
        else:
            break
    if i >= n:
        return start, n
    body = _BASE64_RUN.match(text, i)
    assert body is not None  # the pattern matches the empty string
    if body.end() - i < _PEM_BODY_MIN and not lowered.startswith("proc-type:", i):
        if body.end() >= n:
            return start, n
        return start, header_end
    end = pem_block_end(lowered, header_end)
    return (start, n) if end < 0 else (start, end)


# --- Authorization headers ---------------------------------------------------------------------

_AUTH_SCHEMES = frozenset(
    {
        "bearer", "basic", "token", "digest", "negotiate", "ntlm", "apikey", "api-key", "key",
        "sso-key", "jwt", "dpop", "hmac", "aws4-hmac-sha256", "oauth",
    }
)  # fmt: skip
# Token characters only (base64, base64url, JWT), so that a value cannot run into the next
# header or a URL on the same line.
_AUTH_VALUE = r"(?P<secret>[\w~+/=.%-]{1,4096}+)"
_AUTHORIZATION = _lazy(
    r"authorization(?:\\{0,15}[\"'`])?[ \t]{0,8}[:=][ \t]{0,8}(?:\\{0,15}[\"'`])?[ \t]{0,4}"
    rf"(?:(?:{'|'.join(map(re.escape, sorted(_AUTH_SCHEMES)))})[ \t]+)?{_AUTH_VALUE}",
    _A,
)
_BEARER = _lazy(r"bearer[ \t]+" + _AUTH_VALUE, _A)


def _authorization(match: re.Match[str], text: str) -> Span | None:
    """The credential after the scheme word, unless it is a placeholder or a plain word."""
    start, end = match.span("secret")
    value = text[start:end]
    if len(value) < 8 or value.lower() in _AUTH_SCHEMES:
        return None
    if _PLACEHOLDER.fullmatch(value) or _IDENTIFIER.fullmatch(value):
        return None  # <token>, xxxxxxxx, "Bearer authentication" in prose
    return start, end


# --- passwords in URLs -------------------------------------------------------------------------

# scheme://user:password@host — keeps scheme, user and host. People paste passwords into
# URLs unescaped, so the password may hold anything but blanks and quotes ("/", "#", "?", ":"
# and "@" included): it runs to the first "@" that is followed by a host name. The user may
# be empty (redis://:pw@host). The password cannot run over another "://", which keeps
# "://" * 300_000 linear.
_URL_PASSWORD = _lazy(
    r"://[^\s:/?#@'\"<>\[\]`]{0,256}+:(?P<secret>(?:(?!://)[^\s'\"<>`]){1,256}?)"
    r"@(?=[\w\[][\w.\[\]:-]{0,253}+(?!@))",
    _A,
)


def _url_password(match: re.Match[str], text: str) -> Span | None:
    start, end = match.span("secret")
    value = text[start:end]
    if value.startswith(REDACTION_MARKER_PREFIX) or _PLACEHOLDER.fullmatch(value):
        return None
    return start, end


# --- assignments: API_KEY=..., "password": "...", export X_TOKEN=... ----------------------

# Each keyword gets its own pattern so that re can search for it as a literal prefix (one
# alternation would be scanned position by position: 177 ms instead of about 14 ms for each
# keyword on 20 MB). Patterns run on lower-cased text; values are read from the original.
# The commonest non-secrets are rejected here, at C speed, rather than in Python: values
# shorter than 6 characters, bare numbers ("input_tokens": 1234) and calls of a name without
# digits (= make_key(...), = os.getenv(...)); a random value glued to "(" is still a secret.
_BARE_VALUE = r"[^\s\"'`,;\\(){}\[\]<>|&]"
_ASSIGNMENT_TAIL = (
    r"(?P<rest>[\w.-]{0,40}+)"  # the rest of the name: API_KEY_ID, token_count, ...
    r"(?P<name_quote>\\{0,15}[\"'`])?+"  # the closing quote of a JSON/dict key
    r"[ \t]{0,8}+(?P<op>=>|:{1,3}=|\?=|={1,3}|:(?![:=])|,|\|\||>)[ \t]{0,8}+"
    r"(?:(?P<quote>(?:\\{0,15}[\"'`]){1,3}+)(?P<quoted>[^\"'`\\\r\n]{6,500}+)"
    rf"|(?![\d.]{{1,19}}+(?!{_BARE_VALUE}))(?![a-z_.]{{1,499}}+\()"
    rf"(?P<bare>{_BARE_VALUE}{{6,500}}+))"
)
_ASSIGNMENT_KEYWORDS = ("key", "token", "secret", "passw", "pwd", "auth", "cred", "api", "access")
_ASSIGNMENT: dict[str, LazyPattern] = {
    kw: _lazy((kw + "(?!or)" if kw == "auth" else kw) + _ASSIGNMENT_TAIL, _A)
    for kw in _ASSIGNMENT_KEYWORDS
}
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_.-")
_NAME_BACK = 50
# Names that hold no secret although they contain a keyword (after gitleaks' allow-list for
# generic-api-key). Matched against the lower-cased name.
_BENIGN_NAME = _lazy(
    r"(?:mon|tur|don|whis|hoc|joc|lac|hot)key|keyboard|keyword|keystroke|keyframe"
    r"|(?:primary|foreign|sort|partition|cache|public|pub|row|hash|dict|map|lookup|idempotency"
    r"|dedup|unique|composite|natural|sequence|schema|bucket|idx|index|group|routing|shard"
    r"|column|react|list|object|s3|hot|ssh_pub|dns|gpg_pub)[_.-]?keys?$"
    r"|keys?[_.-]?(?:ids?|names?|alias|length|len|size|type|types|path|file|count|code|pair"
    r"|ring|board|word|press|event|up|down|set|space|frame|stroke|field|fn|func|prefix|format"
    r"|algorithm|usage|spec|schema|order|map|col|column|index|vault_id|vault_name)$"
    r"|tokens?[_.-]?(?:s|count|counts|limit|limits|usage|type|types|ids?|len|length|file|path"
    r"|url|uri|endpoint|budget|estimate|index|pos|position|kind|stream|text|total|used|max|min"
    r"|per[_.-]?\w+|expir\w*|ttl|lifetime|name)$|tokeni[sz]\w*|max[_.-]?tokens?"
    r"|secrets?[_.-]?(?:name|names|ids?|ref|length|len|size|path|file|arn|version|manager"
    r"|store|provider|backend|type)$"
    r"|passw(?:or)?d[_.-]?(?:hash|hashed|length|len|policy|field|prompt|reset|file|path|min"
    r"|max|required|enabled|label|input|confirm\w*|strength|changed|expir\w*|rules?|auth"
    r"|less|command|cmd|env|var|manager|store)$"
    r"|auth[_.-]?(?:type|method|mode|url|uri|endpoint|provider|domain|enabled|required|header"
    r"|scheme|flow|service|module|middleware|config|source|user|status|state|plugin|backend"
    r"|strategy|level|ctx|context)$|oauth[_.-]?(?:url|uri|endpoint|provider|flow|scopes?)$"
    r"|cred\w*[_.-]?(?:ids?|name|type|path|file|helper|provider|store|source|chain|process)$"
    r"|rapid|capital|therap|api[_.-]?(?:ids?|names?|version|url|uri|endpoint|base|host|path|docs?|type"
    r"|prefix|root|server|gateway|client|calls?|response|request|error|status|spec|schema)$"
    r"|access(?:ib|or|ed)|access[_.-]?(?:ids?|level|mode|type|time|log|control|list|rights?"
    r"|pattern|count|modifier|policy|scope|role)$",
    _A,
)
_PASSWORD_NAMES = ("passw", "pwd", "secret")


def _assignment_parts(match: re.Match[str], text: str) -> tuple[str, int, int] | None:
    """(name, value start, value end) for an assignment match, or ``None``."""
    lowered = match.string
    op = match.group("op")
    if op == "," and (match.group("name_quote") is None or match.group("quote") is None):
        return None  # a comma counts only between quoted strings: ("api_key", "...")
    # Walk back over the start of the variable name (API_ in API_KEY).
    name_start = match.start()
    floor = max(0, name_start - _NAME_BACK)
    while name_start > floor and lowered[name_start - 1] in _NAME_CHARS:
        name_start -= 1
    name = lowered[name_start : match.end("rest")]
    if _BENIGN_NAME.search(name):
        return None
    start, end = match.span("quoted" if match.group("quoted") is not None else "bare")
    return name, start, end


# "path:line:" of grep, compilers and linters (src/routes/auth.ts:14:router.post(...)).
_LOCATION = _lazy(r"\d{1,7}:", _A)


def _assignment(match: re.Match[str], text: str) -> Span | None:
    parts = _assignment_parts(match, text)
    if parts is None:
        return None
    name, start, end = parts
    if match.group("op") == ":" and _LOCATION.match(text, start):
        return None
    password_like = any(word in name for word in _PASSWORD_NAMES)
    if not plausible_secret_value(text[start:end], password_like=password_like):
        return None
    return start, end


_AWS_SECRET_NAME = _lazy(r"[_.-]?access[_.-]?key", _A)
_AWS_SECRET_VALUE = _lazy(r"[A-Za-z0-9/+]{40}", _A)


def _aws_secret(match: re.Match[str], text: str) -> Span | None:
    if not _AWS_SECRET_NAME.fullmatch(match.group("rest")):
        return None
    parts = _assignment_parts(match, text)
    if parts is None:
        return None
    _, start, end = parts
    return (start, end) if _AWS_SECRET_VALUE.fullmatch(text, start, end) else None


# --- the rule set ----------------------------------------------------------------------------

_GITHUB_KEYWORDS = ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_")
_SLACK_KEYWORDS = ("xox", "xapp-")

RULES: tuple[Rule, ...] = (
    Rule(
        id="private-key",
        description="Private key block (PEM, OpenSSH, PGP); unterminated blocks run to the end.",
        keywords=("-----begin",),
        patterns=(_PEM_BEGIN,),
        ignore_case=True,
        extract=_private_key,
        priority=60,
    ),
    Rule(
        id="aws-access-token",
        description="AWS access key id (AKIA/ASIA/ABIA/ACCA/A3T + 16).",
        keywords=("AKIA", "ASIA", "ABIA", "ACCA", "A3T"),
        patterns=(_AWS_ACCESS_KEY,),
        # Not gitleaks' 3.0: 16 random base-32 characters fall below 3.0 bits in about 1 of
        # 6,000 keys (measured over 300,000), and such a key was stored. Below 2.0 are only
        # placeholders (AKIAXXXXXXXXXXXXXXXX is 1.0); no random key of 300,000 was under 2.6.
        entropy=2.0,
    ),
    Rule(
        id="github-pat",
        description="GitHub personal access token (ghp_).",
        keywords=_GITHUB_KEYWORDS,
        patterns=(_GITHUB,),
        extract=_group_in("kind", "p"),
        entropy=3.0,
    ),
    Rule(
        id="github-oauth",
        description="GitHub OAuth access token (gho_).",
        keywords=_GITHUB_KEYWORDS,
        patterns=(_GITHUB,),
        extract=_group_in("kind", "o"),
        entropy=3.0,
    ),
    Rule(
        id="github-app-token",
        description="GitHub App user-to-server or installation token (ghu_, ghs_).",
        keywords=_GITHUB_KEYWORDS,
        patterns=(_GITHUB,),
        extract=_group_in("kind", "us"),
        entropy=3.0,
    ),
    Rule(
        id="github-refresh-token",
        description="GitHub refresh token (ghr_).",
        keywords=_GITHUB_KEYWORDS,
        patterns=(_GITHUB,),
        extract=_group_in("kind", "r"),
        entropy=3.0,
    ),
    Rule(
        id="github-fine-grained-pat",
        description="GitHub fine-grained personal access token (github_pat_ + 82).",
        keywords=_GITHUB_KEYWORDS,
        patterns=(_GITHUB,),
        extract=_group_in("kind", None),
        entropy=3.0,
    ),
    Rule(
        id="gitlab-pat",
        description="GitLab personal access token (glpat-), including routable tokens.",
        keywords=("glpat-",),
        patterns=(_GITLAB_PAT,),
        entropy=3.0,
    ),
    Rule(
        id="anthropic-admin-api-key",
        description="Anthropic Admin API key (sk-ant-admin01-).",
        keywords=("sk-",),
        patterns=(_SK,),
        extract=_anthropic_admin,
        entropy=3.0,
    ),
    Rule(
        id="anthropic-api-key",
        description="Anthropic API key (sk-ant-api03-, any sk-ant- + 32 or more).",
        keywords=("sk-",),
        patterns=(_SK,),
        extract=_anthropic,
        entropy=3.0,
    ),
    Rule(
        id="openai-api-key",
        description=(
            "OpenAI API key (sk-proj-, sk-svcacct-, sk-admin-, legacy sk-...T3BlbkFJ...), and"
            " other long random sk- keys."
        ),
        keywords=("sk-",),
        patterns=(_SK,),
        extract=_openai,
        entropy=3.0,
    ),
    Rule(
        id="slack-config-access-token",
        description="Slack configuration token (xoxe.xoxb-, xoxe.xoxp-).",
        keywords=_SLACK_KEYWORDS,
        patterns=(_SLACK,),
        extract=_slack_config,
        entropy=2.0,
    ),
    Rule(
        id="slack-bot-token",
        description="Slack bot token (xoxb-).",
        keywords=_SLACK_KEYWORDS,
        patterns=(_SLACK,),
        extract=_group_in("kind", "b"),
        entropy=3.0,
    ),
    Rule(
        id="slack-user-token",
        description="Slack user, refresh, client or cookie token (xoxp-, xoxe-, xoxc-, xoxd-).",
        keywords=_SLACK_KEYWORDS,
        patterns=(_SLACK,),
        extract=_group_in("kind", "pecd"),
        entropy=2.0,
    ),
    Rule(
        id="slack-legacy-workspace-token",
        description="Slack legacy workspace token (xoxa-, xoxr-).",
        keywords=_SLACK_KEYWORDS,
        patterns=(_SLACK,),
        extract=_group_in("kind", "ar"),
        entropy=2.0,
    ),
    Rule(
        id="slack-legacy-token",
        description="Slack legacy token (xoxs-, xoxo-) and any other xox?- token.",
        keywords=_SLACK_KEYWORDS,
        patterns=(_SLACK,),
        extract=_group_in("kind", "sofghijklmnqtuvwxyz"),
        entropy=2.0,
    ),
    Rule(
        id="slack-app-token",
        description="Slack app-level token (xapp-).",
        keywords=_SLACK_KEYWORDS,
        patterns=(_SLACK,),
        extract=_group_in("kind", None),
        entropy=2.0,
    ),
    Rule(
        id="slack-webhook-url",
        description="Slack incoming webhook (hooks.slack.com/services/...); the path is redacted.",
        keywords=("hooks.slack.com",),
        patterns=(_SLACK_WEBHOOK,),
        secret_group="secret",
    ),
    Rule(
        id="gcp-api-key",
        description="Google (GCP, Gemini, Firebase) API key (AIza + 35).",
        keywords=("AIza",),
        patterns=(_GCP_API_KEY,),
        entropy=3.5,
    ),
    Rule(
        id="huggingface-access-token",
        description="Hugging Face access token (hf_ + 34 or more).",
        keywords=("hf_",),
        patterns=(_HUGGINGFACE,),
        entropy=3.0,
    ),
    Rule(
        id="npm-access-token",
        description="npm access token (npm_ + 36).",
        keywords=("npm_",),
        patterns=(_NPM,),
        entropy=3.0,
    ),
    Rule(
        id="pypi-upload-token",
        description="PyPI upload token (pypi-AgEIcHlwaS5vcmc + 50 or more).",
        keywords=("pypi-AgEIcHlwaS5vcmc",),
        patterns=(_PYPI,),
        entropy=3.0,
    ),
    Rule(
        id="stripe-access-token",
        description="Stripe secret or restricted key (sk_/rk_ + live/test/prod).",
        keywords=("k_live_", "k_test_", "k_prod_"),
        patterns=(_STRIPE,),
        extract=_stripe,
        entropy=2.0,
        context_before=5,
    ),
    Rule(
        id="jwt",
        description="JSON Web Token (eyJ....eyJ....signature).",
        keywords=("eyJ",),
        patterns=(_JWT,),
        entropy=3.0,
        priority=35,
    ),
    Rule(
        id="url-password",
        description="Password in a URL (scheme://user:password@host); only the password.",
        keywords=("://",),
        patterns=(_URL_PASSWORD,),
        extract=_url_password,
        priority=30,
    ),
    Rule(
        id="authorization-header",
        description="Authorization header or Bearer credential (Bearer/Basic/token ...).",
        keywords=("authorization", "bearer"),
        patterns=(_AUTHORIZATION, _BEARER),
        ignore_case=True,
        extract=_authorization,
        priority=20,
    ),
    Rule(
        id="aws-secret-access-key",
        description="AWS secret access key (40 base64 characters) assigned to *secret_access_key.",
        keywords=("secret",),
        patterns=(_ASSIGNMENT["secret"],),
        ignore_case=True,
        extract=_aws_secret,
        priority=15,
        context_before=_NAME_BACK + 4,
    ),
    Rule(
        id="generic-api-key",
        description=(
            "Assignment to a *KEY/*TOKEN/*SECRET/*PASSWORD/*PASSWD/*PWD/*AUTH/*CREDENTIALS name"
            " (env, shell export, JSON, YAML, code) whose value looks random."
        ),
        keywords=_ASSIGNMENT_KEYWORDS,
        patterns=tuple(_ASSIGNMENT[kw] for kw in _ASSIGNMENT_KEYWORDS),
        ignore_case=True,
        extract=_assignment,
        priority=10,
        context_before=_NAME_BACK + 4,
    ),
)
