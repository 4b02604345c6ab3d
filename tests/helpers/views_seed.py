"""A store with something on every view of the dashboard's second half (Live, Activity,
Search, Usage, Stats, Worktrees & agents), hostile text included."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import agentkeep

# Stored text is hostile: each of these must appear as text, never run.
SCRIPT = "<script>window.__pwned = 'script'</script>"
ONERROR = "<img src=x onerror=\"window.__pwned = 'onerror'; alert(1)\">"
JS_URL = "javascript:alert('pwned')"
PAYLOAD = f"zebra {SCRIPT} {ONERROR} [click]({JS_URL})"


@dataclass
class Seeded:
    running: int  # a running session with live output
    ended: int  # an ended session with artifacts
    task: int
    note: int
    agent: int
    dead_agent: int
    worktree: int


def seed(store_dir: Path) -> Seeded:
    with agentkeep.open(store_dir) as store:
        tree = store.add_worktree(store_dir.parent / "wt-x", branch=f"feat/{ONERROR}").item
        store.lease_worktree(tree.id, f"builder {SCRIPT}", ttl_seconds=3600)
        agent = store.register_agent(f"builder {SCRIPT}", kind="claude", role=ONERROR).item
        store.update_agent(agent.id, worktree_id=tree.id, heartbeat=True)
        dead = store.register_agent("ghost", kind="codex").item
        store.update_agent(dead.id, status="dead")
        task = store.add_task(f"task {PAYLOAD}", labels=[SCRIPT]).item
        note = store.add_note("handoff", f"handoff {PAYLOAD}", task_id=task.id).item
        running = store.start_session(
            title=f"run {SCRIPT}", model="model-a", agent_id=agent.id, task_id=task.id
        ).item
        store.add_session_tokens(running.id, input_tokens=1200, output_tokens=340)
        out = store.open_stream(running.id, "stdout")
        out.write(f"first line {SCRIPT}\nzebra second {ONERROR}\n".encode())
        out.commit_progress()
        ended = store.start_session(title=f"done {ONERROR}", model="model-b").item
        store.add_session_tokens(ended.id, input_tokens=500, output_tokens=90)
        for number in range(3):
            store.add_artifact(
                f"log {number} {PAYLOAD}\n".encode() * 50,
                kind="log",
                name=f"{SCRIPT}-{number}.log",
                session_id=ended.id,
            )
        store.end_session(ended.id, exit_code=0)
        store.record_event("deploy.done", entity="custom", data={"text": PAYLOAD})
        return Seeded(running.id, ended.id, task.id, note.id, agent.id, dead.id, tree.id)
