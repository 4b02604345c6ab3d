"""Spec files found by their layouts (services/specs.py) and indexed as documents."""

from __future__ import annotations

from pathlib import Path

import pytest

import agentkeep
from agentkeep.errors import InvalidInput
from agentkeep.services import specs

from helpers.specfixture import write_project
from secretgen import fragments, generate


def indexed(store: agentkeep.Store) -> dict[str, str | None]:
    store.docs.refresh()
    return {doc.path: doc.convention for doc in store.docs.list_docs(namespace="specs")}


def test_every_convention_is_detected_with_its_name(store: agentkeep.Store) -> None:
    write_project(store.root)
    found = indexed(store)
    expected = {
        ".specify/memory/constitution.md": "spec-kit",
        "specs/001-auth/spec.md": "spec-kit",
        "specs/001-auth/plan.md": "spec-kit",
        "specs/001-auth/contracts/login.yaml": "spec-kit",
        "specs/002-billing/spec.md": "spec-kit",
        ".kiro/steering/tech.md": "kiro",
        ".kiro/steering/api-style.md": "kiro",
        ".kiro/specs/catalog/requirements.md": "kiro",
        ".kiro/specs/catalog/design.md": "kiro",
        "agent-os/standards/index.yml": "agent-os",
        "agent-os/standards/backend/api.md": "agent-os",
        "agent-os/product/mission.md": "agent-os",
        "openspec/project.md": "openspec",
        "openspec/specs/checkout/spec.md": "openspec",
        "openspec/changes/add-coupons/proposal.md": "openspec",
        "openspec/changes/add-coupons/specs/checkout/spec.md": "openspec",
        "openspec/changes/archive/2026-01-10-gift-cards/proposal.md": "openspec",
        "docs/adr/0001-use-sqlite.md": "adr",
        "AGENTS.md": "agents-md",
        "src/payments/AGENTS.md": "agents-md",
        "CLAUDE.md": "claude-md",
        ".cursor/rules/python.mdc": "cursor",
        "design/search.md": "manifest",
    }
    for path, convention in expected.items():
        assert found.get(path) == convention, path
    # Not specs: templates, a README beside the feature directories, code, vendored
    # directories, and what the manifest excludes.
    for path in (
        ".specify/templates/spec-template.md",
        "specs/README.md",
        "src/auth/login.py",
        "node_modules/pkg/AGENTS.md",
        "specs/001-auth/tasks.md",
    ):
        assert path not in found, path
    doc = store.docs.get_doc("specs/.kiro/steering/tech")
    assert doc.origin == "spec" and doc.fields == {"inclusion": "always"}
    assert store.docs.get_doc("specs/specs/001-auth/spec").title == "Feature: user authentication"


def test_spec_sources_have_a_root_per_convention(store: agentkeep.Store) -> None:
    write_project(store.root)
    sources = specs.spec_sources(store.docs)
    roots = {source.convention: source.root for source in sources}
    assert set(roots) == set(specs.CONVENTIONS)
    for convention, root in roots.items():
        assert root.origin == "spec" and root.namespace == "specs"
        assert root.convention == convention and root.path == store.root
    assert all(s.name == s.rel.rsplit(".", 1)[0] for s in sources)


def test_nested_agents_files_are_looked_for_two_levels_down_only(store: agentkeep.Store) -> None:
    for rel in ("a/AGENTS.md", "a/b/CLAUDE.md", "a/b/c/AGENTS.md", ".hidden/AGENTS.md"):
        (store.root / rel).parent.mkdir(parents=True, exist_ok=True)
        (store.root / rel).write_text("# rules\n")
    found = indexed(store)
    assert found.get("a/AGENTS.md") == "agents-md"
    assert found.get("a/b/CLAUDE.md") == "claude-md"
    assert "a/b/c/AGENTS.md" not in found and ".hidden/AGENTS.md" not in found


def test_an_edit_and_a_removal_outside_agentkeep_are_picked_up(store: agentkeep.Store) -> None:
    write_project(store.root)
    indexed(store)
    spec = store.root / "specs/002-billing/spec.md"
    spec.write_text("# Feature: billing\n\n## Refunds\n\nRefunds within 14 days.\n")
    store.docs.refresh()
    hits = store.search("refunds", kinds=["doc"])
    assert [hit.label for hit in hits] == [
        "specs/specs/002-billing/spec › Feature: billing › Refunds"
    ]
    spec.unlink()
    assert "specs/002-billing/spec.md" not in indexed(store)


def test_a_link_to_a_file_outside_the_project_is_not_indexed(
    store: agentkeep.Store, tmp_path: Path
) -> None:
    outside = tmp_path / "elsewhere.md"
    outside.write_text("# not the project's\n")
    (store.root / "docs/adr").mkdir(parents=True)
    (store.root / "docs/adr/0003-link.md").symlink_to(outside)
    (store.root / "docs/adr/0004-real.md").write_text("# 4. Real\n")
    (store.root / "CLAUDE.md").symlink_to(store.root / "docs/adr/0004-real.md")
    found = indexed(store)
    assert "docs/adr/0003-link.md" not in found
    assert found["docs/adr/0004-real.md"] == "adr" and found["CLAUDE.md"] == "claude-md"


def test_secrets_in_spec_files_never_reach_the_index(store: agentkeep.Store) -> None:
    secrets = generate()
    body = "\n\n".join(f"## {name}\n\nkey: {text}" for name, (text, _) in secrets.items())
    (store.root / "AGENTS.md").write_text(f"# Agents\n\n{body}\n")
    (store.root / ".kiro/steering").mkdir(parents=True)
    token = secrets["github-classic"][0]
    (store.root / ".kiro/steering/tech.md").write_text(
        f"---\ninclusion: always\napi_key: {token}\n---\n# Tech\n\nuse {token}\n"
    )
    store.docs.refresh()
    rows = store.docs._rows(
        "SELECT d.fields, d.title, c.heading, c.text FROM docs d"
        " JOIN doc_chunks c ON c.doc_id = d.id WHERE d.origin = 'spec'"
    )
    stored = "\n".join(str(value) for row in rows for value in row)
    assert "Agents" in stored and "Tech" in stored
    for name, (_, secret) in secrets.items():
        for fragment in fragments(secret):
            assert fragment not in stored, name
    # The user's files are never rewritten.
    assert token in (store.root / ".kiro/steering/tech.md").read_text()


# -- the manifest ------------------------------------------------------------------------------


def write_manifest(root: Path, text: str) -> None:
    (root / ".agentkeep" / "specs.toml").write_text(text)


def test_the_manifest_is_read(project: Path) -> None:
    write_project(project)
    manifest = specs.load_manifest(project / ".agentkeep")
    assert [d.name for d in manifest.domains] == ["auth", "security"]
    auth = manifest.domains[0]
    assert auth.covers("src/auth/login.py") == "src/auth/**"
    assert auth.covers("tests/test_auth_flow.py") == "tests/test_auth*"
    assert auth.covers("src/billing/x.py") is None
    assert auth.has_spec("specs/001-auth/contracts/login.yaml")
    assert manifest.domains[1].always is True
    assert manifest.include == ("design/*.md",) and manifest.excluded("specs/001-auth/tasks.md")
    assert specs.load_manifest(project / "nowhere") == specs.Manifest()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[domain]]\nname = 'a'\ncode = 'src/**'\nspecz = []\n", "unknown keys: specz"),
        ("[[domain]]\ncode = []\n", "has no name"),
        ("[[domain]]\nname = 'a'\nalways = 'yes'\n", "always is true or false"),
        ("[[domain]]\nname = 'a'\n[[domain]]\nname = 'a'\n", "declared twice"),
        ("[specs]\ninclude = ['../secrets/*.md']\n", "leaves the project"),
        ("[specs]\ninclude = [1]\n", "must be a list of globs"),
        ("[specs\n", "not valid TOML"),
    ],
)
def test_a_bad_manifest_is_a_clear_error(project: Path, text: str, message: str) -> None:
    write_manifest(project, text)
    with pytest.raises(InvalidInput, match=message):
        specs.load_manifest(project / ".agentkeep")


def test_a_bad_manifest_does_not_break_the_index(store: agentkeep.Store) -> None:
    write_project(store.root)
    write_manifest(store.root, "[specs\n")
    found = indexed(store)
    assert found["AGENTS.md"] == "agents-md" and "design/search.md" not in found


def test_detection_can_be_turned_off(store: agentkeep.Store) -> None:
    write_project(store.root)
    write_manifest(store.root, "[specs]\ndetect = false\ninclude = ['design/**']\n")
    assert indexed(store) == {"design/search.md": "manifest"}


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("src/auth/**", "src/auth/login.py", True),
        ("src/auth/**", "src/auth/deep/er/x.py", True),
        ("src/auth/**", "src/authz/x.py", False),
        ("src/*.py", "src/a/b.py", False),
        ("src/**/*.py", "src/a.py", True),
        ("src/**/*.py", "src/a/b/c.py", True),
        ("*.md", "docs/deep/x.md", True),
        ("tests/test_auth*", "tests/test_auth_flow.py", True),
        ("src/?.py", "src/ab.py", False),
        ("src/[ab].py", "src/b.py", True),
        ("src/[!ab].py", "src/b.py", False),
        ("./src/", "src/x/y.py", True),
    ],
)
def test_globs(pattern: str, path: str, matches: bool) -> None:
    assert specs.glob_match(pattern, path) is matches


def test_feature_directories() -> None:
    assert specs.feature_of("specs/001-user-auth/plan.md", "spec-kit") == (
        "user-auth",
        "specs/001-user-auth",
    )
    assert specs.feature_of(".kiro/specs/login/design.md", "kiro") == ("login", ".kiro/specs/login")
    assert specs.feature_of("openspec/changes/archive/2026-01-10-gift-cards/p.md", "openspec") == (
        "gift-cards",
        "openspec/changes/archive/2026-01-10-gift-cards",
    )
    assert specs.feature_of(".kiro/steering/tech.md", "kiro") is None
    assert specs.words("src/authService/login_flow.py") == {
        "src",
        "auth",
        "service",
        "login",
        "flow",
        "py",
    }
