"""`agentkeep context`: the specs, sections, notes and failures an agent should read for a
piece of work, each with its reasons, within the budget (services/context.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

import agentkeep
from agentkeep.errors import InvalidInput
from agentkeep.services.context import Context

from conftest import Cli
from helpers.specfixture import write_project
from secretgen import fragments, generate


def paths(context: Context, kind: str = "spec") -> list[str]:
    return [item.path or "" for item in context.items if item.kind == kind]


def reasons(context: Context, path: str) -> list[str]:
    return next(item.reasons for item in context.items if item.path == path)


@pytest.fixture
def shop(store: agentkeep.Store) -> agentkeep.Store:
    write_project(store.root)
    store.docs.refresh()
    return store


def test_files_bring_their_domain_and_directory_specs(shop: agentkeep.Store) -> None:
    context = shop.context.assemble(files=["src/auth/login.py"])
    chosen = paths(context)
    # What a person would pick for auth code: the auth feature's spec before its plan,
    # its contract, the ADR the manifest maps to auth; the steering and rules always in.
    assert chosen.index("specs/001-auth/spec.md") < chosen.index("specs/001-auth/plan.md")
    assert {"specs/001-auth/contracts/login.yaml", "docs/adr/0002-token-refresh.md"} <= set(chosen)
    assert "domain auth matches src/auth/login.py" in reasons(context, "specs/001-auth/spec.md")
    assert "directory convention: specs/001-auth matches src/auth/login.py" in reasons(
        context, "specs/001-auth/spec.md"
    )
    assert reasons(context, ".kiro/steering/tech.md") == ["steering: inclusion always"]
    assert reasons(context, ".kiro/steering/product.md") == ["steering: inclusion always"]
    assert reasons(context, ".cursor/rules/general.mdc") == ["cursor rule: alwaysApply"]
    assert reasons(context, "src/payments/AGENTS.md") == ["domain security is always included"]
    # The always-included come first.
    assert chosen.index(".kiro/steering/tech.md") < chosen.index("specs/001-auth/spec.md")
    # Not for auth: other features, manual and other files' steering, the root AGENTS.md
    # (agents read it themselves).
    for other in (
        "specs/002-billing/spec.md",
        ".kiro/steering/release.md",
        ".kiro/steering/api-style.md",
        "openspec/specs/checkout/spec.md",
        "AGENTS.md",
    ):
        assert other not in chosen, other
    assert context.domains == ["auth", "security"]
    assert context.files == ["src/auth/login.py"]
    # Cursor's front matter is not shown; its rule is.
    general = next(i for i in context.items if i.path == ".cursor/rules/general.mdc")
    assert general.text.startswith("# General") and "alwaysApply" not in general.text


def test_file_patterns_and_nested_agents_files(shop: agentkeep.Store) -> None:
    root = shop.root
    context = shop.context.assemble(
        files=[str(root / "src/api/routes.py"), "src/payments/cards.py"]
    )
    assert context.files == ["src/api/routes.py", "src/payments/cards.py"]
    assert reasons(context, ".kiro/steering/api-style.md") == [
        "steering: fileMatchPattern src/api/**/*.py matches src/api/routes.py"
    ]
    assert "cursor rule: globs src/**/*.py matches src/api/routes.py" in reasons(
        context, ".cursor/rules/python.mdc"
    )
    assert "src/payments/AGENTS.md covers src/payments/cards.py" in reasons(
        context, "src/payments/AGENTS.md"
    )
    assert "specs/001-auth/spec.md" not in paths(context)


def test_kiro_and_openspec_features_by_directory(shop: agentkeep.Store) -> None:
    context = shop.context.assemble(files=["src/catalog/search.py", "web/checkout/form.tsx"])
    chosen = paths(context)
    assert chosen.index(".kiro/specs/catalog/requirements.md") < chosen.index(
        ".kiro/specs/catalog/design.md"
    )
    assert "directory convention: openspec/specs/checkout matches web/checkout/form.tsx" in (
        reasons(context, "openspec/specs/checkout/spec.md")
    )


def test_a_query_ranks_sections_and_says_where_it_matched(shop: agentkeep.Store) -> None:
    context = shop.context.assemble(query="coupon code at checkout")
    sections = [i for i in context.items if i.kind == "section"]
    assert sections, context.text
    # The checkout specs come first (the backends' full-text scores order them apart).
    assert {s.path for s in sections[:3]} <= {
        "openspec/changes/add-coupons/specs/checkout/spec.md",
        "openspec/specs/checkout/spec.md",
    }
    best = next(s for s in sections if "add-coupons" in (s.path or ""))
    assert any(
        "matches ‘coupon code checkout’ in text" in r or "‘coupon" in r for r in best.reasons
    )
    assert [s.score for s in sections] == sorted((s.score for s in sections), reverse=True)
    heading = shop.context.assemble(query="token refresh")
    first = next(i for i in heading.items if i.kind == "section")
    assert first.path == "docs/adr/0002-token-refresh.md"
    assert "matches ‘token refresh’ in heading" in first.reasons[0]


def test_agent_os_index_descriptions_pick_standards(shop: agentkeep.Store) -> None:
    context = shop.context.assemble(query="write schema migrations")
    why = reasons(context, "agent-os/standards/backend/migrations.md")
    assert why[0].startswith("Agent OS index: ‘How schema migrations are written and reviewed’")
    index = next(i for i in context.items if i.path == "agent-os/standards/index.yml")
    assert "- frontend/components.md: React component structure and props" in index.text
    assert "agent-os/standards/frontend/components.md" not in paths(context)


def test_manual_steering_when_named(shop: agentkeep.Store) -> None:
    context = shop.context.assemble(query="release")
    assert reasons(context, ".kiro/steering/release.md")[0] == (
        "steering: manual, named in the query (release)"
    )
    assert ".kiro/steering/release.md" not in paths(shop.context.assemble(query="catalog"))


def test_a_task_brings_its_words_handoffs_and_decisions(shop: agentkeep.Store) -> None:
    task = shop.add_task("Gift card refunds", body="archive follow-up", labels=["billing"]).item
    shop.add_note("handoff", "older handoff", task_id=task.id)
    shop.add_note("handoff", "newest handoff: refunds half done", task_id=task.id)
    shop.add_note("decision", "refund to the original card", task_id=task.id)
    shop.add_note("handoff", "another task's handoff")
    context = shop.context.assemble(task=task.id)
    handoffs = [i for i in context.items if i.kind == "handoff"]
    assert [h.text for h in handoffs] == ["newest handoff: refunds half done", "older handoff"]
    assert handoffs[0].reasons == [f"latest handoff for task {task.id}"]
    decision = next(i for i in context.items if i.kind == "decision")
    assert decision.reasons == [f"decision on task {task.id}"]
    # The task's words find the billing spec and the archived gift-cards change.
    found = {i.path for i in context.items if i.kind in ("section", "spec")}
    assert "specs/002-billing/spec.md" in found
    assert "openspec/changes/archive/2026-01-10-gift-cards/proposal.md" in found
    assert context.text.startswith(f"# Context: task #{task.id} Gift card refunds")


def test_recent_failures_on_the_files(shop: agentkeep.Store) -> None:
    root = shop.root
    with shop.transaction() as tx:
        writer = shop.capture_writer(tx)
        session = writer.session("claude", "sess-ctx")
        writer.capture(
            source="claude",
            event="tool_fail",
            dedupe_key="ctx-1",
            session_id=session,
            tool_name="Edit",
            tool_use_id="toolu_ctx1",
            cwd=str(root),
            payload={
                "error": "old_string not found",
                "tool_input": {"file_path": str(root / "src/auth/login.py")},
            },
        )
        writer.capture(
            source="claude",
            event="tool_fail",
            dedupe_key="ctx-2",
            session_id=session,
            tool_name="Edit",
            tool_use_id="toolu_ctx2",
            cwd=str(root),
            payload={"error": "elsewhere", "tool_input": {"file_path": str(root / "src/other.py")}},
        )
    failed = shop.start_session(source="codex", external_id="sess-f", title="auth work").item
    with shop.transaction() as tx:
        shop.capture_writer(tx).capture(
            source="codex",
            event="tool_post",
            dedupe_key="ctx-3",
            session_id=failed.id,
            tool_name="Write",
            cwd=str(root / "src"),
            payload={"tool_input": {"file_path": "auth/login.py"}},
        )
    shop.end_session(failed.id, status="failed", exit_code=3)
    context = shop.context.assemble(files=["src/auth/login.py"])
    failures = [i for i in context.items if i.kind == "failure"]
    assert len(failures) == 2, (
        context.text[-1500:],
        context.left_out,
        [
            dict(r)
            for r in shop.docs._rows("select id, event, session_id, cwd, payload from captures")
        ],
    )
    assert failures[0].reasons[0].startswith("failed on src/auth/login.py at ")
    assert "old_string not found" in failures[0].text
    assert failures[1].reasons == [f"session {failed.id} failed after touching src/auth/login.py"]
    assert not any("elsewhere" in f.text for f in failures)
    assert shop.context.recent_files("2000-01-01T00:00:00Z")[:2] == [
        "src/auth/login.py",
        "src/other.py",
    ]


@pytest.mark.parametrize("budget", [200, 700, 1500, 3000, 10_000])
def test_the_budget_is_respected_best_first(shop: agentkeep.Store, budget: int) -> None:
    (shop.root / "specs/001-auth/spec.md").write_text(
        "# Feature: user authentication\n\n"
        + "\n\n".join(f"Paragraph {i}. " + "word " * 60 for i in range(40))
    )
    shop.docs.refresh()
    context = shop.context.assemble(
        files=["src/auth/login.py"], query="token refresh", budget=budget
    )
    assert context.used == len(context.text) <= budget
    assert context.budget == budget
    full = shop.context.assemble(files=["src/auth/login.py"], query="token refresh", budget=100_000)
    # Best first: what fits is the start of the unbounded order.
    kept = [(i.kind, i.ref) for i in context.items]
    assert kept == [(i.kind, i.ref) for i in full.items][: len(kept)]
    if budget < full.used:
        assert context.truncated
        if context.items and context.items[-1].cut:
            assert "[… cut:" in context.items[-1].text
    # A whole spec takes at most 40% of the budget.
    for item in context.items:
        if item.kind == "spec":
            assert len(item.text) <= max(budget * 0.4, 200), item.path
    assert len(next(i for i in full.items if i.path == "specs/001-auth/spec.md").text) > 10_000


def test_secrets_in_spec_files_never_reach_the_context(store: agentkeep.Store) -> None:
    secrets = generate()
    body = "\n\n".join(
        f"## Token {name}\n\ntoken refresh {text}" for name, (text, _) in secrets.items()
    )
    (store.root / "docs/adr").mkdir(parents=True)
    (store.root / "docs/adr/0009-tokens.md").write_text(f"# Tokens\n\n{body}\n")
    (store.root / ".kiro/steering").mkdir(parents=True)
    (store.root / ".kiro/steering/keys.md").write_text(f"# Keys\n\n{secrets['aws'][0]}\n")
    (store.root / "agent-os/standards").mkdir(parents=True)
    (store.root / "agent-os/standards/index.yml").write_text(
        f"root:\n  tokens:\n    description: token refresh uses {secrets['github-classic'][0]}\n"
    )
    context = store.context.assemble(query="token refresh", budget=50_000)
    assert (
        "Tokens" in context.text and "Keys" in context.text and "token refresh uses" in context.text
    )
    shown = context.text + repr(context.to_dict())
    for name, (_, secret) in secrets.items():
        for fragment in fragments(secret):
            assert fragment not in shown, name


def test_bad_input(shop: agentkeep.Store) -> None:
    with pytest.raises(InvalidInput, match="budget"):
        shop.context.assemble(query="x", budget=10)
    with pytest.raises(InvalidInput, match="kinds"):
        shop.context.assemble(query="x", kinds=["everything"])
    (shop.root / ".agentkeep/specs.toml").write_text("[specs\n")
    with pytest.raises(InvalidInput, match="not valid TOML"):
        shop.context.assemble(query="x")
    (shop.root / ".agentkeep/specs.toml").unlink()
    empty = shop.context.assemble(files=["../outside.py"], kinds=["section"])
    assert empty.items == [] and empty.files == []


def test_prime_adds_the_specs_of_recently_touched_files(shop: agentkeep.Store) -> None:
    root = shop.root
    with shop.transaction() as tx:
        writer = shop.capture_writer(tx)
        session = writer.session("claude", "sess-prime")
        writer.capture(
            source="claude",
            event="tool_post",
            dedupe_key="prime-ctx",
            session_id=session,
            tool_name="Edit",
            cwd=str(root),
            payload={"tool_input": {"file_path": str(root / "src/api/routes.py")}},
        )
    prime = shop.prime()
    assert "## Specs for this work" in prime.text
    assert "### .kiro/steering/api-style.md" in prime.text
    assert "steering: fileMatchPattern src/api/**/*.py matches src/api/routes.py" in prime.text
    assert prime.chars == len(prime.text) <= 10_000
    assert any(item["path"] == ".kiro/steering/tech.md" for item in prime.specs)
    small = shop.prime(max_chars=1200)
    assert small.chars <= 1200


def test_prime_without_specs_is_unchanged(store: agentkeep.Store) -> None:
    prime = store.prime()
    assert "Specs" not in prime.text and prime.specs == []


# -- the command ---------------------------------------------------------------------------------


def test_cli_markdown_and_json(project: Path, cli: Cli) -> None:
    write_project(project)
    result = cli("context", "--files", "src/auth/login.py", "src/api/routes.py", "--budget", "5000")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("# Context: files src/auth/login.py, src/api/routes.py")
    assert "<!-- why: domain auth matches src/auth/login.py" in result.stdout
    assert len(result.stdout.rstrip("\n")) <= 5000
    data = cli("context", "--query", "coupon", "--json").json()
    assert isinstance(data, list) and data
    assert set(data[0]) >= {"kind", "ref", "path", "heading", "text", "score", "reasons"}
    assert any(item["kind"] == "section" for item in data)
    assert cli("context", "--query", "zzzznothing", "--json", "--budget", "300").exit_code == 0
    bad = cli("context", "--budget", "50", "--json")
    assert bad.exit_code != 0
    missing = cli("context", "--task", "999", "--json")
    assert missing.exit_code != 0 and "999" in missing.stderr


def test_a_changed_spec_is_seen_by_the_next_context_of_the_same_process(
    shop: agentkeep.Store,
) -> None:
    release = shop.root / ".kiro/steering/release.md"
    assert ".kiro/steering/release.md" not in paths(shop.context.assemble(query="catalog"))
    release.write_text("---\ninclusion: always\n---\n# Release checklist\n\nTag first.\n")
    shop.docs.refresh()
    context = shop.context.assemble(query="catalog")
    assert reasons(context, ".kiro/steering/release.md") == ["steering: inclusion always"]
    release.unlink()
    shop.docs.refresh()
    assert ".kiro/steering/release.md" not in paths(shop.context.assemble(query="catalog"))


def test_semantic_ranking_is_fused_when_configured(
    shop: agentkeep.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stand-in for agentkeep.semantic (its contract: enabled, rank, fuse): a chunk no
    word matches comes in through the semantic ranking, and says so."""
    import sys
    import types

    row = shop.docs._row(
        "SELECT c.id FROM doc_chunks c JOIN docs d ON d.id = c.doc_id"
        " WHERE d.path = 'agent-os/product/mission.md'"
    )
    assert row is not None
    mission = int(row[0])
    fake = types.ModuleType("agentkeep.semantic")
    fake.enabled = lambda config: True  # type: ignore[attr-defined]
    fake.rank = lambda store, query, *, limit, chunk_ids=None: [(mission, 0.9)]  # type: ignore[attr-defined]

    def fuse(rankings: list[list[int]], *, k: int = 60) -> list[tuple[int, float]]:
        scores: dict[int, float] = {}
        for ranking in rankings:
            for rank, rowid in enumerate(ranking):
                scores[rowid] = scores.get(rowid, 0.0) + 1 / (k + rank + 1)
        return sorted(scores.items(), key=lambda item: (-item[1], item[0]))

    fake.fuse = fuse  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "agentkeep.semantic", fake)
    context = shop.context.assemble(query="coupon", kinds=["section"])
    found = {i.path: i.reasons for i in context.items}
    assert found["agent-os/product/mission.md"] == ["semantically close to the query"]
    assert "openspec/changes/add-coupons/specs/checkout/spec.md" in found
    fake.enabled = lambda config: False  # type: ignore[attr-defined]
    plain = shop.context.assemble(query="coupon", kinds=["section"])
    assert "agent-os/product/mission.md" not in {i.path for i in plain.items}


def test_cli_files_are_relative_to_the_current_directory(
    project: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_project(project)
    monkeypatch.chdir(project / "src")
    data = cli("context", "--files", "auth/login.py", "--json").json()
    assert any("domain auth matches src/auth/login.py" in item["reasons"] for item in data)


def test_a_broken_agent_os_index_gives_no_descriptions(shop: agentkeep.Store) -> None:
    (shop.root / "agent-os/standards/index.yml").write_text("backend: [unclosed\n  - : :\n")
    shop.docs.refresh()
    context = shop.context.assemble(query="write schema migrations")
    assert "agent-os/standards/index.yml" not in paths(context)
    assert "Agent OS index" not in context.text
