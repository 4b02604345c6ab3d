"""Fixture projects laid out like each spec convention agentkeep detects, written at test
time (tests/test_specs.py, tests/test_context.py, bench/bench_context.py)."""

from __future__ import annotations

from pathlib import Path

FILES: dict[str, str] = {
    # spec-kit
    ".specify/memory/constitution.md": "# Constitution\n\n## Principles\n\nTests first. "
    "Every feature has a spec before code.\n",
    ".specify/templates/spec-template.md": "# Template\n\nnot a spec\n",
    "specs/001-auth/spec.md": "# Feature: user authentication\n\n## User stories\n\nA user "
    "signs in with a password and stays signed in.\n\n## Requirements\n\nFR-001 sessions "
    "expire after 30 minutes.\n",
    "specs/001-auth/plan.md": "# Plan: auth\n\n## Approach\n\nJWT access tokens, rotated.\n",
    "specs/001-auth/tasks.md": "# Tasks: auth\n\n- T001 login endpoint\n",
    "specs/001-auth/contracts/login.yaml": "openapi: 3.1.0\npaths:\n  /login: {}\n",
    "specs/002-billing/spec.md": "# Feature: billing\n\n## Invoices\n\nMonthly invoices "
    "with tax lines.\n",
    "specs/README.md": "# Specs\n\nnot a feature directory file\n",
    # Kiro
    ".kiro/steering/product.md": "# Product\n\nA shop for rare plants.\n",
    ".kiro/steering/tech.md": "---\ninclusion: always\n---\n# Tech stack\n\nPython 3.11, "
    "SQLite, no ORM.\n",
    ".kiro/steering/api-style.md": "---\ninclusion: fileMatch\nfileMatchPattern: "
    '"src/api/**/*.py"\n---\n# API style\n\nEvery endpoint returns JSON errors.\n',
    ".kiro/steering/release.md": "---\ninclusion: manual\n---\n# Release checklist\n\nTag, "
    "then publish.\n",
    ".kiro/specs/catalog/requirements.md": "# Requirements: catalog\n\nWHEN a user searches "
    "THEN the catalog SHALL list matching plants.\n",
    ".kiro/specs/catalog/design.md": "# Design: catalog\n\n## Search index\n\nFull-text "
    "search over plant names.\n",
    # Agent OS
    "agent-os/standards/index.yml": "backend:\n  api:\n    description: REST endpoint "
    "naming, status codes and error bodies\n  migrations:\n    description: How schema "
    "migrations are written and reviewed\nfrontend:\n  components:\n    description: React "
    "component structure and props\n",
    "agent-os/standards/backend/api.md": "# API standard\n\nUse plural nouns; 422 for "
    "validation errors.\n",
    "agent-os/standards/backend/migrations.md": "# Migrations\n\nOne migration per change; "
    "never edit a released one.\n",
    "agent-os/standards/frontend/components.md": "# Components\n\nOne component per file.\n",
    "agent-os/product/mission.md": "# Mission\n\nHelp collectors find rare plants.\n",
    # OpenSpec
    "openspec/project.md": "# Project context\n\nA plant shop.\n",
    "openspec/specs/checkout/spec.md": "# Checkout\n\n## Requirements\n\n### Requirement: "
    "Payment\nThe system SHALL take card payments.\n\n#### Scenario: declined card\n- WHEN "
    "the card is declined\n- THEN the order stays open\n",
    "openspec/changes/add-coupons/proposal.md": "# Add coupons\n\n## Why\n\nDiscount codes "
    "for returning customers.\n",
    "openspec/changes/add-coupons/specs/checkout/spec.md": "## ADDED Requirements\n\n### "
    "Requirement: Coupons\nThe checkout SHALL accept a coupon code.\n",
    "openspec/changes/archive/2026-01-10-gift-cards/proposal.md": "# Gift cards\n\nDone.\n",
    # ADRs
    "docs/adr/0001-use-sqlite.md": "# 1. Use SQLite\n\n## Decision\n\nStore state in "
    "SQLite with WAL; no server to run.\n",
    "docs/adr/0002-token-refresh.md": "# 2. Token refresh\n\n## Context\n\nAccess tokens "
    "expire.\n\n## Decision\n\nRefresh tokens rotate on every use.\n",
    # AGENTS.md / CLAUDE.md, root and nested
    "AGENTS.md": "# Agents\n\nRun `make test` before committing.\n",
    "CLAUDE.md": "# Claude\n\nSee AGENTS.md.\n",
    "src/payments/AGENTS.md": "# Payments code\n\nNever log card numbers.\n",
    # Cursor
    ".cursor/rules/python.mdc": "---\ndescription: Python style\nglobs: src/**/*.py\n"
    "alwaysApply: false\n---\n# Python rules\n\nType hints everywhere.\n",
    ".cursor/rules/general.mdc": "---\ndescription: General\nalwaysApply: true\n---\n"
    "# General\n\nSmall commits.\n",
    # Design notes only the manifest names
    "design/search.md": "# Search design\n\nRanking by bm25 over sections.\n",
    # Code (never indexed)
    "src/auth/login.py": "def login(): ...\n",
    "src/api/routes.py": "ROUTES = []\n",
    "src/payments/cards.py": "def charge(): ...\n",
    "node_modules/pkg/AGENTS.md": "# vendored: never indexed\n",
}

MANIFEST = """\
[specs]
include = ["design/*.md"]
exclude = ["specs/*/tasks.md"]

[[domain]]
name = "auth"
code = ["src/auth/**", "tests/test_auth*"]
specs = ["specs/001-auth/**", "docs/adr/0002-*.md"]

[[domain]]
name = "security"
code = []
specs = ["src/payments/AGENTS.md"]
always = true
"""


def write_project(
    root: Path, *, manifest: bool = True, extra: dict[str, str] | None = None
) -> None:
    """Every convention's files under ``root`` (and the manifest in ``.agentkeep/``)."""
    for rel, text in {**FILES, **(extra or {})}.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    if manifest:
        (root / ".agentkeep").mkdir(exist_ok=True)
        (root / ".agentkeep" / "specs.toml").write_text(MANIFEST, encoding="utf-8")
