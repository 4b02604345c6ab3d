"""docs/json-output.md is the `--json` contract: each record it lists must have exactly the
fields of the dataclass the CLI serialises (``Record.to_dict`` is a field-for-field copy)."""

from __future__ import annotations

import dataclasses
import importlib
import re

import pytest

from conftest import REPO

DOC = REPO / "docs" / "json-output.md"

# The record names as the document writes them (in bold) -> the class behind them.
RECORDS = {
    "task": "agentkeep.models:Task",
    "note": "agentkeep.models:Note",
    "session": "agentkeep.models:Session",
    "stream": "agentkeep.models:Stream",
    "artifact": "agentkeep.models:Artifact",
    "agent": "agentkeep.models:Agent",
    "worktree": "agentkeep.models:Worktree",
    "metric": "agentkeep.models:Metric",
    "event": "agentkeep.models:Event",
    "run": "agentkeep.ops.runner:RunResult",
    "artifact verify": "agentkeep.services.artifacts:Verification",
    "gc": "agentkeep.ops.retention:GcPlan",
    "usage": "agentkeep.ops.retention:Usage",
    "pin/unpin": "agentkeep.ops.retention:PinResult",
    "doctor": "agentkeep.ops.doctor:Report",
    "backup": "agentkeep.ops.backup:BackupResult",
    "restore": "agentkeep.ops.restore:RestoreResult",
    "export": "agentkeep.ops.bundle_export:ExportResult",
    "import-bundle": "agentkeep.ops.bundle_import:ImportResult",
    "status": "agentkeep.store:StoreStatus",
    "import": "agentkeep.importers:ImportResult",
    "search": "agentkeep.services.search:SearchHit",
    "entry": "agentkeep.services.transcripts:TranscriptEntry",
    "stats": "agentkeep.services.stats:StatsRow",
    "setup": "agentkeep.agent_setup:SetupResult",
    "setup --check": "agentkeep.agent_setup:SetupCheck",
    "prime --json": "agentkeep.services.prime:Prime",
    "context": "agentkeep.services.context:ContextItem",
    "resume plan": "agentkeep.resume:ResumePlan",
    "db accept": "agentkeep.store:AcceptResult",
    "db copy": "agentkeep.ops.copy:CopyResult",
    "sync": "agentkeep.store:SpoolSync",
    "queue item": "agentkeep.services.queues:QueueItem",
    "queue summary": "agentkeep.services.queues:QueueSummary",
    "queue work": "agentkeep.ops.queue_worker:WorkResult",
    "collection ls / show": "agentkeep.services.collections:Collection",
    "collection declare": "agentkeep.services.collections:Declared",
    "records / collection records / collection validate": (
        "agentkeep.services.collections:CollectionRecord"
    ),
    "doc": "agentkeep.models:Doc",
    "doc show": "agentkeep.services.docs:DocContent",
    "doc version": "agentkeep.models:DocVersion",
    "doc lock": "agentkeep.models:DocLock",
    "doc index report": "agentkeep.services.docs:IndexReport",
    "msg reindex": "agentkeep.services.messages:MailReport",
}

# Documented shapes with no dataclass behind them (checked by their commands' own tests).
# "message": its JSON names the sender "from" (tests/test_messages.py checks the shape).
NOT_RECORDS = {"Lists", "Limits", "Mutations", "log line", "transcript", "doc link", "message"}


def _strip_groups(text: str) -> str:
    """Drop (…), […] and {…} (possibly nested): they describe a field, they are not one."""
    out, depth = [], 0
    for char in text:
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth = max(0, depth - 1)
        elif depth == 0:
            out.append(char)
    return "".join(out)


def documented_records() -> dict[str, list[str]]:
    text = re.sub(r"\n\s+", " ", DOC.read_text(encoding="utf-8"))
    found: dict[str, list[str]] = {}
    # **name** [(`…` or words)] [hit|row|finding]: `field, field (…), field [..], …`
    pattern = re.compile(r"\*\*([^*]+)\*\*(?: (?:hit|row))?(?: \((?:`[^`]*`|[^)`])*\))?: `([^`]*)`")
    for name, fields in pattern.findall(text):
        names = [part.strip().split(" ")[0] for part in _strip_groups(fields).split(",")]
        found[name] = [n for n in names if n]
    return found


def test_every_documented_record_is_checked() -> None:
    """Both ways: a record the test knows must be documented, and a newly documented
    record must be added here (or to NOT_RECORDS) so its fields are checked."""
    documented = set(documented_records())
    assert set(RECORDS) <= documented, sorted(set(RECORDS) - documented)
    assert documented - NOT_RECORDS == set(RECORDS), sorted(documented - NOT_RECORDS - set(RECORDS))


@pytest.mark.parametrize("name", sorted(RECORDS))
def test_documented_fields_match_the_record(name: str) -> None:
    module, _, cls_name = RECORDS[name].partition(":")
    cls = getattr(importlib.import_module(module), cls_name)
    actual = [f.name for f in dataclasses.fields(cls)]
    documented = documented_records()[name]
    assert documented == actual, (
        f"docs/json-output.md `{name}` lists {documented}; {RECORDS[name]} has {actual}"
    )
