"""The privacy boundary through the CLI and the library (invariant 2 of docs/design.md): secrets
generated at test time in every format go through every command and library call;
afterwards not one of them is anywhere under .agentkeep/ (database, WAL, backups, config)
or the per-user home. The hook, the importers, import cursors, the hook log, bundles and
setup get the same treatment in test_boundary.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import agentkeep
from agentkeep import redact

from conftest import Cli, run_agentkeep
from secretgen import fragments, generate, leaks

SECRETS = generate()


def test_no_secret_reaches_disk_through_the_cli_and_library(project: Path, cli: Cli) -> None:
    store_dir = project / ".agentkeep"
    with agentkeep.open(project) as store:  # held open so the WAL is still there at the end
        for name, (text, _secret) in SECRETS.items():
            sentence = f"deploy failed; used {text} to log in"
            # CLI arguments and stdin
            assert cli("tasks", "add", f"title {text}", "--body", sentence).exit_code == 0
            assert cli("tasks", "add", "from stdin", "--body", "-", input=sentence).exit_code == 0
            assert cli("notes", "add", "handoff", sentence, "--task", "1").exit_code == 0
            assert cli("notes", "add", "fact", "-", input=sentence).exit_code == 0
            # JSON fields, values and keys
            data = f'{{"detail": {_json_str(text)}, {_json_str(text)}: 1}}'
            assert cli("notes", "add", "fact", "with data", "--data", data).exit_code == 0
            assert cli("metrics", "record", "m", "1", "-l", f"k={text}").exit_code == 0
            assert cli("sessions", "start", "--title", sentence).exit_code == 0
            assert cli("agents", "register", f"agent-{name}", "--role", sentence).exit_code == 0
            # library: event payloads, batches, integrations, updates
            store.record_event("tool.finished", data={"output": sentence, "args": [text]})
            store.record_events([{"kind": "tool.output", "data": {"text": sentence}}])
            store.set_integration(f"svc-{name}", kind="http", settings={"header": text})
            task = store.add_task("update me").item
            store.update_task(task.id, body=sentence, labels=[text])
            store.add_note("validation", sentence, data={"command": f"curl -H '{text}'"})
            # error paths: the message echoes the input; it must be redacted when shown
            failed = cli("notes", "add", "pointer", "--url", f"not-a-url {text}")
            assert failed.exit_code == 3
            for fragment in fragments(_secret):
                assert fragment not in failed.stderr, f"{name} leaked in an error message"
            # config: a secret is refused, not written into config.toml
            assert cli("config", "set", "actor", "--", text).exit_code == 3
            # click's own usage errors echo the offending value: redacted as well
            usage = cli("tasks", "list", "--status", text)
            assert usage.exit_code == 2 and "Error:" in usage.stderr
            for fragment in fragments(_secret):
                assert fragment not in usage.stderr, f"{name} leaked in a usage error"
        assert cli("db", "backup").exit_code == 0
        store.backup()
        needles = [f for _, secret in SECRETS.values() for f in fragments(secret)]
        found = leaks(store_dir, needles) + leaks(Path(os.environ["AGENTKEEP_HOME"]), needles)
        assert found == []
        recorded = {r.rule for r in store.redactions()}
        assert len(recorded) >= 10  # the audit names rules, never values
    assert leaks(store_dir, needles) == []  # after the WAL is checkpointed into state.db


def _json_str(text: str) -> str:
    import json

    return json.dumps(text)


def test_redaction_fails_closed(store: agentkeep.Store, monkeypatch: pytest.MonkeyPatch) -> None:
    before = store.status().counts

    def broken(text: str) -> tuple[str, dict[str, int]]:
        raise RuntimeError("rule engine crashed")

    monkeypatch.setattr(redact, "redact_text", broken)
    with pytest.raises(agentkeep.RedactionFailed):
        store.add_task("anything")
    with pytest.raises(agentkeep.RedactionFailed):
        store.add_note("fact", "anything")
    monkeypatch.undo()
    assert store.status().counts == before


def test_redactions_are_recorded_without_values(store: agentkeep.Store) -> None:
    text, secret = SECRETS["github-classic"]
    task = store.add_task("t", body=f"token {text} and again {text}").item
    assert secret not in store.get_task(task.id).body
    audit = [r for r in store.redactions() if r.entity == "tasks" and r.entity_id == task.id]
    assert [(r.field, r.count) for r in audit] == [("body", 2)]
    assert all(secret not in str(r.to_dict()) for r in store.redactions())


def test_redact_command_reads_a_file(project: Path) -> None:
    text, secret = SECRETS["aws"]
    path = project / "leak.env"
    path.write_text(f"AWS_ACCESS_KEY_ID={text}\n")
    done = run_agentkeep("redact", str(path), "--json", cwd=project)
    assert done.returncode == 0
    assert secret.encode() not in done.stdout and b"aws" in done.stdout
