"""The two redaction engines give identical results.

`agentkeep.redact` runs on the standard library in the hook's process and on a compiled
prefilter (RE2, `agentkeep.redact.fast`) everywhere else. The compiled engine runs the
same rule code, only at the positions its prefilter reports; these tests check what that
rests on, and then the results themselves:

- every position where a pass's exact pattern matches is a candidate of the prefilter
  (its relaxation matches there: tested position by position);
- the gitleaks assignment scan limited to the stretches after vendor keywords finds the
  windows of the whole-text scan;
- ``scan`` and ``redact_text`` agree on generated text (Hypothesis), on agent payloads
  (tests/hookpayloads.py), on the bench's transcripts, and on every string literal of
  the redaction, privacy and boundary tests with the secrets of tests/secretgen.py.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import random
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import agentkeep.redact as redact
from agentkeep.redact import fast
from agentkeep.redact import gitleaks as gl

from secretgen import generate

TESTS = Path(__file__).resolve().parent


def _compiled() -> tuple[fast.Engine, object]:
    compiled = fast.Engine([(p.keywords, p.on_lower) for p in redact._PASSES])
    compiled.dense = 1  # never hand dense text to the standard-library engine here
    return compiled, fast


ENGINE = _compiled()


@contextmanager
def engine(kind: str) -> Iterator[None]:
    saved = redact._fast
    redact._fast = ENGINE if kind == "re2" else False
    try:
        yield
    finally:
        redact._fast = saved


def both(text: str) -> tuple[object, object]:
    """(scan, redact_text) of ``text`` with each engine: asserts they are equal."""
    results = {}
    for kind in ("stdlib", "re2"):
        with engine(kind):
            results[kind] = (redact.scan(text), redact.redact_text(text))
    assert results["re2"] == results["stdlib"], text[:300]
    return results["re2"]


def missed_matches(text: str, eng: fast.Engine | None = None) -> list[tuple[str, int]]:
    """(pattern, position) of every exact match the prefilter gives no candidate for."""
    eng = eng or ENGINE[0]
    lowered = redact._lower(text)
    found_all = eng.candidates(text, lowered, fast.cased_bytes(text))
    assert found_all is not None, "a test text this dense is checked elsewhere"
    *candidates, _vendors = found_all
    missed = []
    for scan_pass, found in zip(redact._PASSES, candidates, strict=True):
        source = lowered if scan_pass.on_lower else text
        match = scan_pass.pattern.match
        positions = set(found)
        missed += [
            (scan_pass.pattern.pattern[:40], p)
            for p in range(len(source))
            if p not in positions and match(source, p) is not None
        ]
    return missed


# -- generated text ----------------------------------------------------------------------


def _gitleaks_samples() -> list[str]:
    """A text each gitleaks rule reports a secret in (tests/test_redact.py draws them)."""
    from test_redact import GITLEAKS, _gitleaks_positive

    rng = random.Random(1414)
    samples = []
    for rule_id in sorted(GITLEAKS):
        try:
            samples.append(_gitleaks_positive(rule_id, rng)[0])
        except AssertionError:  # pragma: no cover - a rule no draw satisfies
            continue
    return samples


GITLEAKS_SAMPLES = _gitleaks_samples()
SECRETS = [text for text, _ in generate().values()] + GITLEAKS_SAMPLES
FRAGMENTS = [
    "key", "KEY", "token", "Token", "secret", "password", "passwd", "pwd", "auth", "cred",
    "api", "access", "api_key", "API_KEY", "_KEY", "SERVICE_API_KEY", "aws_secret_access_key",
    "authorization", "Authorization:", "Bearer ", "bearer\t", "://", "https://", "user:",
    "@host.example", "@", ":", "=", " = ", ": ", "=>", ":=", "||", "?=", ",", ">", '"', "'",
    "`", "\\", '\\"', "\\\\\\\"", "\\n", "\\u0067", "%3A", "%20", "%40", "\n", "\t", " ",
    "\x0b", "\x0c", "\r", "(", ")", "[", "]", "{", "}", ";", "|", "&", "<", ">", ".", "-",
    "_", "/", "+", "AKIA", "ASIA", "A3T", "ghp_", "gho_", "github_pat_", "glpat-", "sk-",
    "sk-ant-", "sk-proj-", "xoxb-", "xapp-1-", "hooks.slack.com/services/", "AIza", "hf_",
    "npm_", "pypi-AgEIcHlwaS5vcmc", "sk_live_", "rk_test_", "eyJ", "eyJhbGciOi.", "-----BEGIN",
    "PRIVATE KEY-----", "-----END RSA PRIVATE KEY-----", "kind: secret", "data:", "adafruit",
    "ADAFRUIT_KEY", "jira_token", "lob", "global", "s.", "tests.", "hvs.", "SK", "task", "ey",
    "password ", "curl -u", "4b1d", "EAAA", "dop_v1_", "xoxb-", "İ", "é", "Σ", "\u212a",
    "\udc80", "日本", "0123456789", "abcdefghijklmnop", "Q9xZ3kLm8pW2vT7r", "A" * 20,
    "0" * 12, "12345678", "hunter2hunter2",
]  # fmt: skip
_pieces = st.one_of(
    st.sampled_from(FRAGMENTS),
    st.sampled_from(SECRETS),
    st.text(alphabet="abcXYZ019_-=:\"' \n\\/.@%", max_size=12),
    st.text(max_size=6),
)
texts = st.lists(_pieces, max_size=40).map("".join)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts)
def test_generated_text_gives_identical_results(text: str) -> None:
    both(text)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts)
def test_the_prefilter_reports_every_match_of_every_pass(text: str) -> None:
    assert missed_matches(text) == []


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_pieces, min_size=1, max_size=30).map("".join))
def test_json_documents_give_identical_results(text: str) -> None:
    # Escapes at depth: a document in a string in a document.
    doc = json.dumps({"content": text, "inner": json.dumps({"command": text})})
    both(doc)
    for kind in ("stdlib", "re2"):
        with engine(kind):
            assert redact.redact_value({"k": text, text: [text]}) is not None
    with engine("stdlib"):
        expected = redact.redact_value({"k": text, text: [text]})
    with engine("re2"):
        assert redact.redact_value({"k": text, text: [text]}) == expected


def test_a_relaxation_that_demands_too_much_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The position-by-position check fails when a relaxation is not one."""
    text = "export API_KEY=" + "Q9xZ3kLm8pW2vT7rQ9xZ"
    assert missed_matches(text) == []
    # "key" must now be followed by a digit: the assignment is no longer a candidate.
    monkeypatch.setitem(fast.RELAXED, "key", "key[0-9]")
    monkeypatch.setitem(fast.RELAXED, "api", "api[0-9]")
    wrong = fast.Engine([(p.keywords, p.on_lower) for p in redact._PASSES])
    wrong.dense = 1
    assert missed_matches(text, wrong) != []


# -- the gitleaks part ---------------------------------------------------------------------


def _windows_full_scan(text: str) -> dict[int, list[tuple[int, int]]]:
    """gitleaks windows with the assignment scan over the whole text (as before)."""
    lowered = redact._lower(text)
    assigned: dict[int, list[tuple[int, int]]] = {}
    gl._scan_assignments(assigned, lowered, lowered[::-1], [(0, len(text))])
    return assigned


def _windows_by_vendor(text: str) -> dict[int, list[tuple[int, int]]]:
    lowered = redact._lower(text)
    assigned: dict[int, list[tuple[int, int]]] = {}
    gl._assignments(assigned, lowered, lowered[::-1], gl.vendor_keywords(lowered))
    return assigned


_ASSIGNMENT_PIECES = st.one_of(
    st.sampled_from(
        [
            "adafruit",
            "ADOBE",
            "jira",
            "lob",
            "confluence",
            "_key",
            " ",
            "\t",
            "\n",
            '"',
            "'",
            "`",
            "\\",
            ":",
            "=",
            "::=",
            "||",
            ",",
            ">",
            "=>",
            "?=",
            "x" * 14,
            "a1B2" * 5,
            "global",
            "value",
            "-",
            ".",
        ]
    ),
    st.text(alphabet="ab:=|,> \"'\\\n", max_size=8),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_ASSIGNMENT_PIECES, max_size=60).map("".join))
def test_the_vendor_stretches_find_the_assignments_of_a_whole_scan(text: str) -> None:
    full = _windows_full_scan(text)
    limited = _windows_by_vendor(text)
    assert list(limited) == list(full)  # the same rules, first seen in the same order
    assert {i: sorted(set(w)) for i, w in limited.items()} == {
        i: sorted(set(w)) for i, w in full.items()
    }


def test_the_vendor_stretches_restart_after_a_run_of_operator_characters() -> None:
    text = "=" * 300 + ' adafruit_key = "' + "a1B2c3D4" * 4 + '"\n'
    assert _windows_by_vendor(text) == _windows_full_scan(text) != {}


WORD = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts)
def test_present_keywords_open_the_same_windows(text: str) -> None:
    lowered = redact._lower(text)
    eng = ENGINE[0]
    located = eng.locate(text, lowered, fast.cased_bytes(text))
    if located is None:  # dense with keywords: the standard-library engine runs
        return
    found, present, at = located
    vendor_at = found[-1]
    assert set(gl.vendor_keywords(lowered)) <= set(vendor_at)
    assert gl.hits(text, lowered, present, vendor_at, at) == gl.hits(text, lowered)
    # every anchor that occurs is present, and its positions are all there (those at the
    # start of a word at least, for an anchor that counts only there)
    cased = dict(gl.searched_anchors())
    for anchor in gl.anchors():
        source = text if cased.get(anchor) else lowered
        expected = [i for i in range(len(source)) if source.startswith(anchor, i)]
        if anchor in gl.ONLY_AT_WORD_START:
            expected = [i for i in expected if i == 0 or lowered[i - 1] not in WORD]
        assert bool(expected) <= (anchor.lower() in present), anchor
        if anchor in cased and expected:
            assert set(expected) <= set(at[anchor]), anchor


def test_the_compiled_pass_finds_every_gitleaks_anchor_at_its_place() -> None:
    eng = fast.Engine([(p.keywords, p.on_lower) for p in redact._PASSES])
    eng.dense = 1  # the text is nothing but anchors
    anchors = gl.anchors()
    text = " " + " ".join(anchors)
    located = eng.locate(text, text.lower(), fast.cased_bytes(text))
    assert located is not None
    _found, present, at = located
    assert present == {a.lower() for a in anchors}
    place = 1
    for anchor in anchors:
        if anchor in at:
            assert place in at[anchor], anchor
        place += len(anchor) + 1
    assert set(at) == set(dict(gl.searched_anchors()))


def _every_window_searched(text: str) -> list[gl.Hit]:
    """`gl.hits` with no window skipped by its rule's probe."""
    saved = gl._Rule.may_match_in
    gl._Rule.may_match_in = lambda *_: True  # type: ignore[method-assign]
    try:
        return gl.hits(text, redact._lower(text))
    finally:
        gl._Rule.may_match_in = saved  # type: ignore[method-assign]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts)
def test_the_window_probes_skip_only_windows_without_a_match(text: str) -> None:
    assert gl.hits(text, redact._lower(text)) == _every_window_searched(text)


@pytest.mark.parametrize("context", ["line", "json", "json-in-json"])
def test_the_window_probes_keep_every_gitleaks_sample(context: str) -> None:
    from test_redact import GITLEAKS_CONTEXTS

    wrap = GITLEAKS_CONTEXTS[context]
    for sample in GITLEAKS_SAMPLES:
        # the sample, then a mention of its rule's keyword that holds no secret
        text = wrap(f"some prose, then {sample} and the password is elsewhere")
        assert gl.hits(text, redact._lower(text)) == _every_window_searched(text), sample


def test_the_window_probes_are_where_the_time_was() -> None:
    """hashicorp-tf-password's window opens at every "password": its probe starts with
    the word, so that re finds it at C speed (not at every "a" and "p")."""
    rule = next(r for r in gl._RULES if r.id == "hashicorp-tf-password")
    assert rule.probe_source is not None
    assert [p[:9] for p in gl._probes(rule.probe_source)] == ["password("]
    prose = "Set the password in the vault, then review the password policy.\n" * 20
    windows = gl._windows(prose, prose.lower(), any_start=False)
    index = gl._RULES.index(rule)
    assert windows[index]
    assert not any(rule.may_match_in(prose, prose.lower(), a, b) for a, b in windows[index])


def test_a_probe_that_looks_before_a_position_sees_the_window_as_a_slice() -> None:
    """Searched with ``pos``, ``\\b`` at the window's first character looks at the one
    before it, which a search of the slice does not see: that match is tried on the
    slice."""
    rule = next(r for r in gl._RULES if r.id == "jwt")
    assert rule.edge
    body = "".join(
        [
            "eyJ",
            "hbGciOiJIUzI1NiJ9",
            ".eyJ",
            "zdWIiOiIxMjM0NTY3ODkwIn0",
            ".c2lnbmF0dXJl",
            "LXNpZ25h",
        ]
    )
    text = "x" + body
    probes = [re.compile(p, re.ASCII) for p in gl._probes(rule.probe_source)]
    assert all(p.search(text, 1, len(text)) is None for p in probes)  # "xey": no \b
    assert rule.compiled().search(text[1:]) is not None
    assert rule.may_match_in(text, text.lower(), 1, len(text))


def test_a_probe_that_demands_too_much_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The comparison fails when a probe skips a window that holds a match."""
    rule = next(r for r in gl._RULES if r.id == "hashicorp-tf-password")
    text = 'password = "' + "q9xz3klm8p" + '"\n'
    assert gl.hits(text, text.lower()) == _every_window_searched(text) != []
    monkeypatch.setattr(rule, "probes", [re.compile("password[0-9]")])
    assert gl.hits(text, text.lower()) != _every_window_searched(text)


# -- real agent text and the existing test inputs ------------------------------------------


def test_hook_payloads_give_identical_results(tmp_path: Path) -> None:
    from hookpayloads import every_source, recorded

    deliveries = every_source(str(tmp_path)) + recorded(40, str(tmp_path))
    secrets = SECRETS
    for i, delivery in enumerate(deliveries):
        body = delivery.body().decode()
        both(body)
        both(body.replace('"', '"' + secrets[i % len(secrets)] + " ", 1))


def _bench_generator():  # type: ignore[no-untyped-def]
    path = TESTS.parent / "bench" / "bench_redact.py"
    spec = importlib.util.spec_from_file_location("bench_redact_for_tests", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module.make_transcript


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_bench_transcripts_give_identical_results(seed: int) -> None:
    text, planted = _bench_generator()(300_000, seed)
    found, _ = both(text)
    assert len(found) >= planted  # type: ignore[arg-type]
    assert missed_matches(text[:20_000]) == []


def _string_literals(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    return sorted(
        {
            node.value
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
        }
    )


LITERALS = [
    literal
    for name in ("test_redact.py", "test_privacy.py", "test_boundary.py")
    for literal in _string_literals(TESTS / name)
]


def test_every_literal_of_the_redaction_tests_gives_identical_results() -> None:
    rng = random.Random(14)
    assert len(LITERALS) > 500
    for literal in LITERALS:
        both(literal)
        # and with a secret glued on either side or inside
        secret = rng.choice(SECRETS)
        cut = rng.randrange(len(literal) + 1)
        both(literal[:cut] + secret + literal[cut:])
        both(f"{literal}={secret}\n{literal}: {secret}")


@pytest.mark.parametrize("context", ["line", "json", "json-in-json"])
def test_every_gitleaks_rule_gives_identical_results(context: str) -> None:
    from test_redact import GITLEAKS_CONTEXTS

    assert len(GITLEAKS_SAMPLES) > 150
    wrap = GITLEAKS_CONTEXTS[context]
    for sample in GITLEAKS_SAMPLES:
        found, _ = both(wrap(f"some prose, then {sample} and more"))
        assert found


def test_long_hostile_inputs_give_identical_results() -> None:
    for unit in ("ghp_", "key=", "adafruit_key = ", '"aws_key": "', "eyJ", "://", "s.", "=",
                 "kind: secret\ndata:\n", "\\\\\\\"", "password ", "İ"):  # fmt: skip
        both(unit * (20_000 // len(unit)))


# -- the keyword gate ------------------------------------------------------------------------


def _json_values():  # type: ignore[no-untyped-def]
    from test_redact import json_values

    return json_values


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_json_values(), st.booleans())
def test_the_compiled_gate_never_misses_a_secret_in_a_json_document(
    value: object, ascii_only: bool
) -> None:
    document = json.dumps(value, ensure_ascii=ascii_only)
    with engine("re2"):
        _, counts = redact.redact_value(value)
        if counts:
            assert redact.may_contain_secret(document)
            assert redact.may_contain_secret(json.dumps({"line": document}))
        if not redact.may_contain_secret(document):
            assert redact.redact_text(document) == (document, {})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts, st.booleans())
def test_the_compiled_gate_never_misses_a_secret_in_text_or_in_its_json(
    text: str, ascii_only: bool
) -> None:
    with engine("re2"):
        if redact.scan(text):
            assert redact.may_contain_secret(text)
            assert redact.may_contain_secret(json.dumps([text], ensure_ascii=ascii_only))
            assert redact.may_contain_secret(json.dumps({text: 1}, ensure_ascii=ascii_only))


def test_the_compiled_gate_passes_every_gitleaks_sample_in_json() -> None:
    with engine("re2"):
        for sample in GITLEAKS_SAMPLES + SECRETS:
            for wrapped in (sample, f"x\t{sample}\n", f"{sample[:3]}\u00e9"):
                if redact.scan(wrapped):
                    for ascii_only in (True, False):
                        doc = json.dumps({"output": wrapped}, ensure_ascii=ascii_only)
                        assert redact.may_contain_secret(doc), doc


def test_the_compiled_gate_lets_ordinary_prose_and_code_through() -> None:
    """Words such as "token" or "key" in prose and code, and "tests." or "task", open
    the standard-library gate; the compiled one needs what a rule needs after them."""
    ordinary = [
        "The token count is over the model's limit, so I will trim the context first.",
        "Each key in the cache maps to a parsed file; a missing key means we read it again.",
        "def refresh_token(self) -> str:\n    return response.json()['access_token']\n",
        "Reading src/parser/lists.py; the task runs tests. See events.at for details.",
        "for key in sorted(config):\n    if len(tokens) > max_tokens: break\n",
    ]
    for text in ordinary:
        doc = json.dumps({"role": "assistant", "text": text})
        with engine("stdlib"):
            assert redact.may_contain_secret(doc)
        with engine("re2"):
            assert not redact.may_contain_secret(doc), text


def test_the_compiled_gate_takes_json_escapes_where_a_rule_takes_the_character() -> None:
    value = "Q9xZ3kLm8pW2vT7rQ9xZ"
    texts = [
        f"API_KEY\t=\t{value}",
        f"api_key:\t'{value}'",
        f"db_password = '{value[:4]}\t{value[4:]}'",
        f"api_key = '{value[:4]}\x01{value[4:]}'",
        f"api_key = {value[:4]}\x08{value[4:]}",
        f"api_key = {value[:4]}\x02{value[4:]}",
        f'{{"api_key": "{value}"}}',
        f'"password"\t:\t"{value}"',
        f"adafruit_key\t=\t{value}{value[:12]}",
        f"ADAFRUIT_KEY\n=\n{value}{value[:12]}",
        f"https://user:{value}@db.internal\x01x/",
        f"https://us\x01er:{value}@db.internal/",
    ]
    with engine("re2"):
        for text in texts:
            assert redact.scan(text), text
            for ascii_only in (True, False):
                for value in ([text], {text: 0}):
                    doc = json.dumps(value, ensure_ascii=ascii_only)
                    assert redact.redact_value(value)[1]
                    assert redact.may_contain_secret(doc), doc
                    outer = {"inner": doc}
                    if redact.redact_value(outer)[1]:  # a rule sees through the escapes
                        assert redact.may_contain_secret(json.dumps(outer)), doc


def test_the_compiled_engine_is_built_once_enough_text_was_handed_over(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(redact, "_fast", None)
    monkeypatch.setattr(redact, "_handed", 0)
    monkeypatch.delitem(sys.modules, "agentkeep.hook", raising=False)
    redact.redact_text("a short field")
    assert redact._fast is None  # a short-lived command never pays for RE2
    redact.redact_text("x" * redact._FAST_AFTER)
    assert redact._fast and isinstance(redact._fast[0], fast.Engine)


def test_the_hooks_process_keeps_the_standard_library_engine(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(redact, "_fast", None)
    monkeypatch.setattr(redact, "_handed", 0)
    redact.keep_standard_library_engine()  # what hook.main does first
    redact.redact_text("x" * (2 * redact._FAST_AFTER))
    assert redact._fast is False


def test_text_dense_with_keywords_goes_to_the_standard_library_engine() -> None:
    default = fast.Engine([(p.keywords, p.on_lower) for p in redact._PASSES])
    dense = "://" * 10_000
    assert default.candidates(dense, dense, fast.cased_bytes(dense)) is None
    ordinary = _bench_generator()(100_000, 4)[0]
    lowered = redact._lower(ordinary)
    assert default.candidates(ordinary, lowered, fast.cased_bytes(ordinary)) is not None


def test_an_engine_that_cannot_be_built_leaves_the_standard_library_engine(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*args: object) -> None:
        raise RuntimeError("the RE2 keyword set does not find its own keywords")

    monkeypatch.setattr(redact, "_fast", None)
    monkeypatch.setattr(redact, "_handed", redact._FAST_AFTER)
    monkeypatch.delitem(sys.modules, "agentkeep.hook", raising=False)
    monkeypatch.setattr(fast, "Engine", broken)
    secret = SECRETS[0]
    assert redact.scan(f"x {secret} y")
    assert redact._fast is False
