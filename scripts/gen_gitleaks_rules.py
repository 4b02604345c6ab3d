"""Generate src/agentkeep/redact/gitleaks_rules.py from gitleaks' default configuration.

    python scripts/gen_gitleaks_rules.py path/to/gitleaks.toml          # rewrite the module
    python scripts/gen_gitleaks_rules.py path/to/gitleaks.toml --check  # exit 1 if stale

The input is ``config/gitleaks.toml`` of https://github.com/gitleaks/gitleaks (MIT licence,
kept in the generated module and in src/agentkeep/redact/GITLEAKS-LICENSE.txt). The rules are
brought in as data: id, description, regex (translated from Go's RE2 syntax to Python's
``re``), keywords, secret group, entropy and the allow-lists that do not depend on a file
path. The generated module needs no network and no TOML parser at run time.

Translation (RE2 -> Python ``re``, always compiled with ``re.ASCII`` like RE2's ASCII
classes):

- ``(?i)`` in the middle of a pattern: RE2 applies it to the rest of the enclosing group,
  every later alternative included; Python only accepts global flags at the start. It is
  rewritten as a scoped ``(?i:...)`` around each remaining alternative of that group.
- ``\\z`` (end of text) becomes ``\\Z``; POSIX classes (``[[:alnum:]]``) are spelled out.
- Everything else used by the configuration means the same in both engines; each
  translated pattern is compiled here, so an unsupported construct fails the generation.

Which rules are left out, and why, is listed in ``SKIPPED`` of the generated module: rules
that match file paths only, and rules whose hand-written version in
`agentkeep.redact.rules` (same id) is at least as broad (tests/test_redact.py proves that
each such rule's own positives are still redacted).
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "src" / "agentkeep" / "redact" / "gitleaks_rules.py"

# Rules whose hand-written version is kept for speed but is narrower than gitleaks' own:
# both run, under the one id. (The hand-written JWT rule finds "eyJ" at C speed; gitleaks'
# accepts any "ey" header, which it finds only at the start of a word.)
SUPPLEMENTED = frozenset({"jwt"})

# Rules with a hand-written equivalent of the same id in agentkeep.redact.rules.
HAND_WRITTEN = frozenset(
    {
        "private-key", "aws-access-token", "github-pat", "github-oauth", "github-app-token",
        "github-refresh-token", "github-fine-grained-pat", "gitlab-pat", "anthropic-api-key",
        "anthropic-admin-api-key", "openai-api-key", "slack-config-access-token",
        "slack-bot-token", "slack-user-token", "slack-legacy-workspace-token",
        "slack-legacy-token", "slack-app-token", "slack-webhook-url", "gcp-api-key",
        "huggingface-access-token", "npm-access-token", "pypi-upload-token",
        "stripe-access-token", "jwt", "generic-api-key",
    }
)  # fmt: skip

# Keyword anchors that are checked on the original text, case-sensitively, instead of the
# rule's lower-case keywords: the rule's regex is case-sensitive there, and the lower-case
# keyword is a common word fragment ("sk" in "task", "api-" in "rapi-", "sg." in "msg.").
CASE_SENSITIVE_ANCHORS: dict[str, tuple[str, ...]] = {
    "twilio-api-key": ("SK",),
    "octopus-deploy-api-key": ("API-",),
    "sendgrid-api-token": ("SG.",),
    "alibaba-access-key-id": ("LTAI",),
    "artifactory-api-key": ("AKCp",),
    "artifactory-reference-token": ("cmVmd",),
    "aws-amazon-bedrock-api-key-long-lived": ("ABSK",),
    "clickhouse-cloud-api-secret-key": ("4b1d",),
    "databricks-api-token": ("dapi",),
    "easypost-api-token": ("EZAK",),
    "easypost-test-api-token": ("EZTK",),
    "facebook-page-access-token": ("EAAM", "EAAC"),
    "gitlab-rrt": ("GR1348941",),
    "hashicorp-tf-api-token": ("atlasv1",),
    "jwt-base64": ("ZXlK",),
    "slack-legacy-bot-token": ("xoxb-",),
    "square-access-token": ("EAAA", "sq0atp-"),
}

# Anchors that replace a rule's keywords: a literal every match contains that is rarer in
# agent transcripts than the keyword ("secret" is everywhere; a Kubernetes Secret manifest
# always has "kind:"). Lower case, searched case-insensitively.
ANCHORS: dict[str, tuple[str, ...]] = {
    "kubernetes-secret-yaml": ("kind:",),
    "cloudflare-origin-ca-key": ("v1.0-",),
    "intra42-client-secret": ("s-s4t2ud-", "s-s4t2af-"),
    "microsoft-teams-webhook": ("webhook.office.com",),
    "flyio-access-token": ("fo1_", "fm1a_", "fm1r_", "fm2_"),
}

# Assignment-template rules run as token rules (windows around their keywords): their
# shortest value is far shorter than any other assignment rule's, which would make every
# short assignment a candidate.
AS_TOKEN = frozenset({"hashicorp-tf-password"})

# Rules whose secret group is not the secret: redact the whole match. (jwt-base64's groups
# name the header field; Microsoft Teams' first group is four characters of the URL.)
WHOLE_MATCH = frozenset({"jwt-base64", "microsoft-teams-webhook"})

# Rules whose match may start far before the anchor although the regex starts with it
# (an alternative of the whole pattern starts elsewhere).
FULL_BACK_REACH = frozenset({"kubernetes-secret-yaml"})

# Keywords that must start a word (no letter, digit or "_" before them) to open a window:
# the rule's regex begins with \b right before the keyword. Only for keywords that are
# common inside words.
WORD_START_KEYWORDS: dict[str, tuple[str, ...]] = {
    "jwt": ("ey",),
    "vault-service-token": ("s.", "hvs."),
    "authress-service-client-access-key": ("sc_", "ext_", "scauth_", "authress_"),
    "infracost-api-token": ("ico-",),
    "pulumi-api-token": ("pul-",),
    "prefect-api-token": ("pnu_",),
    "1password-secret-key": ("a3-",),
}

_OPERATOR = r"(?:=|>|:{1,3}=|\|\||:|=>|\?=|,)"


def _group_end(pattern: str, start: int) -> tuple[int, list[int]]:
    """End index of the group that encloses ``start`` (or len), and its top-level bars
    at or after ``start``."""
    depth = 0
    bars: list[int] = []
    i = start
    in_class = False
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            i += 2
            continue
        if in_class:
            if ch == "[" and pattern.startswith("[:", i):
                close = pattern.find(":]", i)
                i = close + 2
                continue
            if ch == "]":
                in_class = False
        elif ch == "[":
            in_class = True
            if pattern.startswith("[^]", i) or pattern.startswith("[]", i):
                i += 2 if pattern[i + 1] == "]" else 3
                continue
        elif ch == "(":
            depth += 1
        elif ch == ")":
            if depth == 0:
                return i, bars
            depth -= 1
        elif ch == "|" and depth == 0:
            bars.append(i)
        i += 1
    return len(pattern), bars


def _scope_inline_flags(pattern: str) -> str:
    """Rewrite every ``(?i)`` after the start as ``(?i:...)`` scoped groups."""
    while True:
        at = max((m.start() for m in re.finditer(r"\(\?i\)", pattern) if m.start() > 0), default=-1)
        if at < 0:
            return pattern
        body_start = at + 4
        end, bars = _group_end(pattern, body_start)
        cuts = [body_start, *(b + 1 for b in bars)]
        stops = [*bars, end]
        pieces = [f"(?i:{pattern[a:b]})" for a, b in zip(cuts, stops, strict=True)]
        pattern = pattern[:at] + "|".join(pieces) + pattern[end:]


_POSIX = {"alnum": "a-zA-Z0-9", "alpha": "a-zA-Z", "digit": "0-9", "xdigit": "0-9a-fA-F"}


def translate(go_regex: str) -> str:
    """A Python ``re`` pattern (for ``re.ASCII``) equivalent to an RE2 pattern."""
    pattern = re.sub(r"\[:(\w+):\]", lambda m: _POSIX[m.group(1)], go_regex)
    pattern = pattern.replace(r"\z", r"\Z")
    pattern = _scope_inline_flags(pattern)
    re.compile(pattern, re.ASCII)  # fails the generation on anything Python rejects
    return pattern


# Escape tolerance. gitleaks' patterns take a secret between quotes and blanks; inside a
# JSON string (a tool call that holds a file, or a JSON document inside that) the quotes and
# line breaks come with one or more backslashes before them. The separators of gitleaks'
# templates therefore also accept backslashes, so that a rule matches at any depth of
# escaping. (The secret classes never contain a backslash, so none is redacted.)
ESCAPE_TOLERANT = (
    (r"""(?:[\x60'"\s;]|\\[nr]|$)""", r"""(?:[\x60'"\s;\\]|$)"""),
    (r"""[\s'"]{0,3}""", r"""[\s'"\\]{0,64}"""),
    (r"""[\x60'"\s=]{0,5}""", r"""[\x60'"\s=\\]{0,80}"""),
)


def escape_tolerant(regex: str) -> str:
    """``regex`` with gitleaks' separator classes widened to backslashes (see above)."""
    for old, new in ESCAPE_TOLERANT:
        regex = regex.replace(old, new)
    return regex


def _literal_text(regex: str) -> str:
    """The regex source lower-cased with escapes of punctuation removed (for checking
    whether a keyword is spelled out in it)."""
    return re.sub(r"\\([^A-Za-z0-9])", r"\1", regex).lower()


def _max_width(pattern: str) -> int:
    import re._parser as sre_parse  # type: ignore[import-not-found]

    hi: int = sre_parse.parse(pattern, re.ASCII).getwidth()[1]
    return hi


def _allowlists(rule: dict[str, object]) -> list[tuple[str, str, tuple[str, ...], tuple[str, ...]]]:
    out = []
    for allow in rule.get("allowlists", []):  # type: ignore[attr-defined]
        condition = str(allow.get("condition", "OR")).upper()
        paths = allow.get("paths", [])
        regexes = tuple(translate(r) for r in allow.get("regexes", []))
        stopwords = tuple(s.lower() for s in allow.get("stopwords", []))
        if paths and (condition == "AND" or not (regexes or stopwords)):
            continue  # depends on a file path, which captured text does not have
        target = str(allow.get("regexTarget", "secret"))
        out.append((target, condition if not paths else "OR", regexes, stopwords))
    return out


def build(toml_text: str) -> str:
    config = tomllib.loads(toml_text)
    digest = hashlib.sha256(toml_text.encode()).hexdigest()
    rules = []
    skipped = []
    for rule in config["rules"]:
        rid = rule["id"]
        if "regex" not in rule:
            skipped.append((rid, "matches file paths only", None, None))
            continue
        if rid in HAND_WRITTEN and rid not in SUPPLEMENTED:
            reason = "hand-written rule of the same id in agentkeep.redact.rules"
            skipped.append((rid, reason, translate(rule["regex"]), rule.get("entropy")))
            continue
        regex = escape_tolerant(translate(rule["regex"]))
        keywords = tuple(k.lower() for k in rule.get("keywords", []))
        assignment = template = (
            _OPERATOR in rule["regex"]
            and r"[\w.-]{0,50}?" in rule["regex"][:40]
            and rid not in AS_TOKEN
        )
        literal = _literal_text(rule["regex"])
        anchors: list[tuple[str, bool, bool]] = []  # (anchor, case-sensitive, word start)
        if assignment:
            # The vendor keywords are looked for in the variable name; a keyword that the
            # name part of the template does not spell (lob's "live_", New Relic's "nrjs-")
            # is in the value, and opens a window like a token rule's anchor.
            name_part = _literal_text(regex.split(_OPERATOR, 1)[0].split("(?:[ ", 1)[0])
            name_part = re.sub(r"\[(\w)(\w)\]", r"\1", name_part)  # [Aa]tlassian
            group = re.search(r"\(\?:([^()]*)\)$", name_part)
            name_regex = group.group(1) if group else ""
            vendors = tuple(
                k for k in keywords if k in name_part or re.fullmatch(name_regex or "-", k)
            )
            if not vendors and re.fullmatch(r"[a-z0-9_|-]+", name_regex):
                # No keyword spells the name (lob's are "live_" and "test_", in the value);
                # the regex does, and only an assignment to that name can match.
                vendors = tuple(name_regex.split("|"))
            # A keyword the name does not spell opens windows of its own only where the
            # pattern has an alternative without the name (Atlassian's ATATT3 tokens).
            if _group_end(regex, 0)[1]:
                anchors = [(k, False, k[0].isalnum()) for k in keywords if k not in vendors]
            if vendors:
                keywords = vendors
            else:  # no keyword names the variable: windows around the value's keywords
                anchors = [(k, False, k[0].isalnum()) for k in keywords]
                assignment = False
        elif rid in CASE_SENSITIVE_ANCHORS:
            anchors = [(a, True, False) for a in CASE_SENSITIVE_ANCHORS[rid]]
        elif rid in ANCHORS:
            anchors = [(a, False, False) for a in ANCHORS[rid]]
        else:
            starts = WORD_START_KEYWORDS.get(rid, ())
            anchors = [(k, False, k in starts) for k in keywords]
        width = _max_width(regex)
        inside = all(a.lower() in literal for a, _, _ in anchors)
        # How far a match may reach on either side of an anchor occurrence: a match that
        # starts with its anchor reaches back only over a word boundary.
        # (A keyword of an assignment template that its name does not spell is in the value.)
        reach = min(width, 8192) if inside or template else 4096
        head = re.sub(r"^(?:\(\?i\)|\\b|\((?:\?:)?)*", "", literal)
        starts = inside and all(head.startswith(a.lower()) for a, _, _ in anchors)
        back = 8 if starts and rid not in FULL_BACK_REACH else reach
        if template or rid in AS_TOKEN:  # its leading [\w.-]{0,50}? goes (below)
            head = head.replace(r"[\w.-]{0,50}?", "", 1)
        heads = re.match(r"\(\?:([\w|]+)\)", head)  # (?:administrator_login_password|password)
        if heads and inside and not template and rid not in FULL_BACK_REACH:
            # A match starts with one of these words: it reaches back from an anchor only
            # as far as the anchor stands inside the word ("password" is 20 characters into
            # "administrator_login_password"; 269 would search 546 characters around every
            # "password" of a transcript).
            offsets = [
                min((w.find(a.lower()) for a, _, _ in anchors if a.lower() in w), default=-1)
                for w in heads.group(1).split("|")
            ]
            if min(offsets) >= 0:
                back = min(back, max(offsets) + 8)
        if template or rid in AS_TOKEN:
            # The template's leading [\w.-]{0,50}? only moves where a match starts; without
            # it a window search does not retry up to 50 name lengths at every position.
            regex = regex.replace(r"[\w.-]{0,50}?", "", 1).replace(r"(?i:[\w.-]{0,50}?", "(?i:")
            re.compile(regex, re.ASCII)
        rules.append(
            (
                rid,
                rule.get("description", ""),
                regex,
                keywords,
                tuple(anchors),
                "assignment" if assignment else "token",
                0 if rid in WHOLE_MATCH else rule.get("secretGroup"),
                float(rule["entropy"]) if "entropy" in rule else None,
                tuple(_allowlists(rule)),
                (back, reach),
            )
        )
    glob = config.get("allowlist", {})
    global_regexes = tuple(translate(r) for r in glob.get("regexes", []))
    global_stopwords = tuple(s.lower() for s in glob.get("stopwords", []))
    return _render(digest, rules, skipped, global_regexes, global_stopwords)


HEADER = '''"""gitleaks' default rule set, as data (generated: do not edit).

Generated by scripts/gen_gitleaks_rules.py from gitleaks' ``config/gitleaks.toml``
(sha256 {digest}), https://github.com/gitleaks/gitleaks. The regexes are translated from
Go's RE2 syntax to Python's ``re`` (compile with ``re.ASCII``). The engine that runs them is
`agentkeep.redact.gitleaks`.

gitleaks is distributed under this licence (also in GITLEAKS-LICENSE.txt beside this file):

{licence}
"""

# fmt: off
# ruff: noqa: E501

'''


def _licence() -> str:
    text = (OUT.parent / "GITLEAKS-LICENSE.txt").read_text()
    return "\n".join(("    " + line).rstrip() for line in text.strip().splitlines())


def _render(digest, rules, skipped, global_regexes, global_stopwords) -> str:  # type: ignore[no-untyped-def]
    lines = [HEADER.format(digest=digest, licence=_licence())]
    lines.append(f"SOURCE_SHA256 = {digest!r}\n")
    lines.append(
        "# (id, description, regex, keywords (of an assignment rule: the ones its variable"
    )
    lines.append("#  name spells), anchors (text, case-sensitive, word start),")
    lines.append("#  kind, secret group (None: gitleaks' default; 0: the whole match), entropy,")
    lines.append("#  allow-lists (target, condition, regexes, stopwords),")
    lines.append("#  reach: how far a match may extend (before, after) an anchor occurrence)")
    lines.append("RULES = (")
    for rule in rules:
        lines.append(f"    {rule!r},")
    lines.append(")\n")
    lines.append("# (id, why it is not in RULES, its regex (translated), its entropy)")
    lines.append("SKIPPED = (")
    for item in skipped:
        lines.append(f"    {item!r},")
    lines.append(")\n")
    lines.append(f"GLOBAL_ALLOW_REGEXES = {global_regexes!r}\n")
    lines.append(f"GLOBAL_STOPWORDS = {global_stopwords!r}")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("toml", type=Path, help="gitleaks' config/gitleaks.toml")
    parser.add_argument("--check", action="store_true", help="exit 1 if the module is stale")
    args = parser.parse_args()
    text = build(args.toml.read_text())
    if args.check:
        if OUT.read_text() != text:
            print(f"{OUT} is out of date; run {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
