"""The identifiers the Writer stores without asking the redactor (capture._SHAPE_PATTERN):
only values of a shape no rule can match; a secret in any of those fields is redacted."""

from __future__ import annotations

import random
import string
from typing import Any

import pytest

import agentkeep
from agentkeep import boundary, capture, redact
from agentkeep.redact import gitleaks, gitleaks_rules

from helpers.dump import store_dump
from secretgen import fragments, generate

# The characters of each shape, as the redactor sees them (as written, and lower-cased).
UUID_CHARS = set(string.digits + "abcdef:-")
TIME_CHARS = set(string.digits + "-:.TZ")
REF_CHARS = set(string.digits + ":")
SHAPED_FIELDS = ("at", "external_id", "parent_external_id", "source_ref")


def _keywords() -> set[tuple[str, bool]]:
    """(literal, matched in any case) for every literal some rule (or the gate before all of
    them) needs in a text it matches."""
    words: set[tuple[str, bool]] = set()
    for rule in redact.RULES:
        words.update((k, rule.ignore_case) for k in rule.keywords)
    for row in gitleaks_rules.RULES:
        if len(row) > 5:  # (id, description, regex, keywords, (anchor, cased, start), kind..)
            # a token rule is found at its anchors; an assignment rule by the variable
            # name its keywords spell, in any case
            if row[5] != "token":
                words.update((k, True) for k in row[3])
            words.update((anchor[0], not anchor[1]) for anchor in row[4])
    # the gate takes an anchor in any case when it is written in lower case
    words.update((a, a == a.lower()) for a in gitleaks.anchors())
    words.update((v, True) for v in gitleaks.VENDOR_LIST)
    return {(w, any_case) for w, any_case in words if w}


def test_no_keyword_is_written_in_a_shapes_characters_but_the_known_ones() -> None:
    """The proof behind the shapes: a rule matches only where one of its keywords occurs,
    and no keyword can occur in a shaped value except the two the Writer checks for (a
    new rule with such a keyword fails here: add it to capture.SHAPE_KEYWORDS and the
    check in Writer._shaped)."""
    keywords = _keywords()
    assert len(keywords) > 100  # the rule set was found
    writable = set()
    for word, any_case in keywords:
        for chars in (UUID_CHARS, TIME_CHARS, REF_CHARS):
            if set(word) <= chars or (any_case and set(word.lower()) <= {c.lower() for c in chars}):
                writable.add(word.lower())
    assert writable == set(capture.SHAPE_KEYWORDS)


def _shaped_values(rng: random.Random) -> list[str]:
    hexdigits = "0123456789abcdef"

    def uuid() -> str:
        parts = [8, 4, 4, 4, 12]
        return "-".join("".join(rng.choice(hexdigits) for _ in range(n)) for n in parts)

    values = [uuid() for _ in range(300)]
    values += [f"{uuid()}:{rng.randrange(64)}" for _ in range(300)]
    values += [f"{rng.randrange(10**6)}:{rng.randrange(10**12)}" for _ in range(100)]
    values += [
        f"2026-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}T"
        f"{rng.randrange(24):02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d}."
        f"{rng.randrange(1000):03d}Z"
        for _ in range(100)
    ]
    # the keywords' neighbourhoods: the two written in these characters
    values += ["4b1d" + uuid()[4:], uuid()[:6] + "a3-" + uuid()[9:], "4b1da3-0" * 4]
    return values


def test_shaped_values_are_what_the_redactor_keeps() -> None:
    for value in _shaped_values(random.Random(7)):
        assert redact.redact_text(value) == (value, {}), value


def test_a_shaped_identifier_skips_the_redactor(
    store: agentkeep.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[str] = []
    real_gate, real_redact = redact.may_contain_secret, redact.redact_text

    def gate(text: str) -> bool:
        asked.append(text)
        return bool(real_gate(text))

    def redact_text(text: str) -> Any:
        asked.append(text)
        return real_redact(text)

    monkeypatch.setattr(redact, "may_contain_secret", gate)
    monkeypatch.setattr(redact, "redact_text", redact_text)
    # Texts found clean are remembered per process: the [sqlite] leg of this test (or any
    # other test) would otherwise have made the [postgres] leg's texts known already.
    boundary.clear_cache()
    uuid, parent = "3f2b8c1e-0d4e-4a7b-9c11-2e5f60718293", "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
    at, ref = "2026-08-20T14:02:11.512Z", "12:4096"
    with store.transaction() as tx:
        w = store.capture_writer(tx)
        sid = w.session("claude", "s")
        asked.clear()
        w.message(
            sid,
            seq=1,
            external_id=f"{uuid}:0",
            role="user",
            kind="text",
            at=at,
            parent_external_id=parent,
            source_ref=ref,
        )
        # the same shapes in upper case, or holding a keyword, ask the redactor
        w.message(
            sid,
            seq=2,
            external_id=uuid.upper(),
            role="user",
            kind="text",
            parent_external_id="4b1d" + parent[4:],
        )
    assert not {f"{uuid}:0", parent, at, ref} & set(asked)
    assert {uuid.upper(), "4b1d" + parent[4:]} <= set(asked)
    row = store._row(
        "SELECT external_id, at, parent_external_id, source_ref FROM messages WHERE seq = 1"
    )
    assert row is not None and tuple(row) == (f"{uuid}:0", at, parent, ref)


@pytest.mark.parametrize("field", SHAPED_FIELDS)
def test_a_secret_in_a_shaped_field_is_redacted(store: agentkeep.Store, field: str) -> None:
    pairs = [(text, part) for text, part in generate().values() if "\n" not in text]
    secrets = [text for text, _ in pairs]
    uuid = "3f2b8c1e-0d4e-4a7b-9c11-2e5f60718293"
    with store.transaction() as tx:
        w = store.capture_writer(tx)
        sid = w.session("claude", "s")
        for n, secret in enumerate(secrets):
            # whole, after a shaped prefix, and inside a value that starts like a shape
            for k, value in enumerate((secret, f"{uuid}:{secret}", f"12:{n} {secret}")):
                fields: dict[str, Any] = {
                    "external_id": f"{uuid}:{n * 3 + k}",
                    "at": "2026-08-20T14:02:11.512Z",
                    "source_ref": f"1:{n}",
                    field: value,
                }
                assert w.message(sid, seq=n * 3 + k, role="user", kind="text", **fields)
    dump = store_dump(store)
    for _, part in pairs:
        for fragment in fragments(part):
            assert fragment not in dump
    redacted = store._rows("SELECT DISTINCT field FROM redactions WHERE entity = 'messages'")
    assert [r["field"] for r in redacted] == [field]
