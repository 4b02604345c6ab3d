"""Crash consistency of the file protocols, and ``doctor --fix`` as the sweeper
(docs/design.md "How the guarantees are tested"; issue 3 "What must be shown").

Children (``tests/helpers/artifact_writer.py``, ``tests/helpers/run_victim.py``) go
through the library and are killed with SIGKILL: by a failpoint at a named step of the
protocol, or by the parent at a random moment. After each crash the invariants are:

- no row points at a missing file (dangling = 0);
- every acknowledged artifact reads back with its sha256 (lost = 0); every byte below a
  stream's recorded ``length`` reads back as the child wrote it;
- ``doctor`` finds what the crash left (orphans, dead temp files, a dead recorder), and
  after ``doctor --fix`` a second ``doctor`` finds nothing.

Random choices come from ``CRASH_SEED`` (printed in the summary lines, which go to stderr:
``pytest -rA`` or ``-s`` shows them).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import agentkeep
from agentkeep.ops.doctor import diagnose, repair
from agentkeep.services.artifacts import object_path

HELPERS = Path(__file__).resolve().parent / "helpers"
sys.path.insert(0, str(HELPERS))

from artifact_writer import content, is_repeat  # noqa: E402
from run_victim import numbered_output  # noqa: E402

SEED = int(os.environ.get("CRASH_SEED", "20250611"))


def report(line: str) -> None:
    sys.stderr.write(line + "\n")


def child_env(failpoint: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "AGENTKEEP_FAILPOINT"}
    if failpoint:
        env["AGENTKEEP_FAILPOINT"] = failpoint
    return env


def acks(path: Path) -> list[dict[str, Any]]:
    """Complete lines only: a line cut short by SIGKILL is not an acknowledgement."""
    text = path.read_text(encoding="utf-8")
    return [json.loads(line) for line in text.split("\n")[:-1] if line]


def dangling_objects(store: agentkeep.Store) -> list[str]:
    rows = store._rows("SELECT sha256, encoding FROM objects")
    return [r[0] for r in rows if not object_path(store.store_dir, r[0], r[1]).exists()]


def dangling_streams(store: agentkeep.Store) -> list[int]:
    """Streams with recorded bytes whose file is gone."""
    return [
        s.id
        for s in store.list_streams()
        if s.length > 0 and not (store.store_dir / s.path).exists()
    ]


def leftovers(findings: list[Any]) -> Counter[str]:
    return Counter(f.check for f in findings if f.severity != "info")


def assert_swept(store: agentkeep.Store) -> int:
    """doctor --fix repairs everything; a second doctor finds nothing. Returns how many
    problems the fix repaired."""
    fixed = repair(store)
    assert fixed.ok, [f.to_dict() for f in fixed.problems]
    again = diagnose(store)
    # Orphans are moved to the quarantine (reported as info), never deleted.
    left = [f for f in again.findings if f.check != "quarantine"]
    assert left == [], [f.to_dict() for f in left]
    return sum(f.fixed for f in fixed.findings)


# -- a. the artifact crash matrix --------------------------------------------------------

# failpoint -> (hit counts, what the crash must leave for doctor to find)
MATRIX: dict[str, tuple[tuple[int, ...], set[str]]] = {
    "file:mid_write": ((1, 4, 9), {"temp-file"}),
    "file:after_fsync": ((1, 3, 6), {"temp-file"}),
    "file:after_rename": ((1, 3, 6), {"orphan-file"}),
    "artifact:before_commit": ((1, 3, 6), {"orphan-file"}),
    "artifact:after_commit": ((1, 3, 6), set()),
}
RANDOM_KILLS = 8


@dataclass
class Tally:
    runs: int = 0
    acked: int = 0
    lost: int = 0
    dangling: int = 0
    found: Counter[str] = field(default_factory=Counter)
    swept: int = 0


def start_writer(project: Path, out: Path, seed: int, failpoint: str | None) -> Any:
    with out.open("wb") as out_file:
        return subprocess.Popen(
            [
                sys.executable,
                str(HELPERS / "artifact_writer.py"),
                "add",
                str(project),
                "--seed",
                str(seed),
                "--count",
                "100000",  # never finishes: a failpoint or the parent ends it
            ],
            stdout=out_file,
            stderr=subprocess.PIPE,
            env=child_env(failpoint),
        )


def wait_for_ack(out: Path, proc: Any) -> None:
    deadline = time.monotonic() + 30
    while len(acks(out)) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)


def crash_run(
    project: Path, out: Path, seed: int, *, failpoint: str | None, kill_after: float
) -> tuple[int, list[dict[str, Any]]]:
    """Run the writer until its failpoint kills it (or we do, ``kill_after`` seconds after
    its first ack); returns the n it started at and its acknowledged artifacts."""
    proc = start_writer(project, out, seed, failpoint)
    try:
        if failpoint is None:
            wait_for_ack(out, proc)
            time.sleep(kill_after)
            proc.kill()
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == -signal.SIGKILL, (failpoint, proc.returncode, err.decode())
    start, *acked = acks(out)
    return start["start"], acked


def check_after_crash(store: agentkeep.Store, acked: list[dict[str, Any]], seed: int) -> int:
    """Every acked artifact reads back with its hash; returns how many were lost."""
    lost = 0
    for ack in acked:
        data = store.read_artifact(ack["id"])
        assert (
            ack["sha256"] == ack["expected"] == hashlib.sha256(content(seed, ack["n"])).hexdigest()
        )
        lost += hashlib.sha256(data).hexdigest() != ack["sha256"]
    return lost


@pytest.mark.slow
def test_artifact_crash_matrix(project: Path, tmp_path: Path) -> None:
    rng = random.Random(SEED)
    tally = Tally()
    plan: list[tuple[str | None, float]] = [
        (f"{name}:{hit}", 0.0) for name, (hits, _) in MATRIX.items() for hit in hits
    ]
    plan += [(None, rng.uniform(0.0, 0.4)) for _ in range(RANDOM_KILLS)]
    rng.shuffle(plan)
    for number, (failpoint, kill_after) in enumerate(plan):
        seed = SEED + number
        out = tmp_path / f"run{number}.out"
        start, acked = crash_run(project, out, seed, failpoint=failpoint, kill_after=kill_after)
        with agentkeep.open(project) as store:
            tally.runs += 1
            tally.acked += len(acked)
            tally.dangling += len(dangling_objects(store))
            tally.lost += check_after_crash(store, acked, seed)
            found = leftovers(diagnose(store).findings)
            assert not {"missing-file", "hash-mismatch"} & set(found), found
            killed = start + len(acked)  # the add the crash interrupted
            if failpoint is not None and not is_repeat(killed):
                # (a repeat finds its object stored: nothing is published, nothing left)
                expected = MATRIX[failpoint.rpartition(":")[0]][1]
                assert expected <= set(found), (failpoint, found)
            tally.found += found
            tally.swept += assert_swept(store)
    report(
        f"{tally.runs} crash runs over {len(MATRIX)} failpoints (+{RANDOM_KILLS} random kills, "
        f"seed {SEED}): acked {tally.acked}, acked lost {tally.lost}, dangling "
        f"{tally.dangling}, orphans created {sum(tally.found.values())} "
        f"({dict(tally.found)}), all swept"
    )
    assert tally.lost == 0 and tally.dangling == 0
    assert tally.found["orphan-file"] > 0 and tally.found["temp-file"] > 0
    assert tally.swept == sum(tally.found.values())


@pytest.mark.slow
def test_repair_beside_a_live_writer_removes_nothing_of_it(project: Path, tmp_path: Path) -> None:
    """doctor --fix while artifacts are being added: the writer's temp files and freshly
    published objects are never taken for a crash's leftovers (cleanup concurrent
    with a live writer)."""
    out = tmp_path / "live.out"
    proc = start_writer(project, out, SEED, None)
    passes = saw_live_temp = 0
    try:
        wait_for_ack(out, proc)
        # Until the repair met the writer's temp files at least once (the scenario) and ran
        # often enough; the ceiling fails loudly instead of passing without the scenario.
        deadline = time.monotonic() + 300
        with agentkeep.open(project) as store:
            while passes < 10 or len(acks(out)) < 20 or not saw_live_temp:
                assert time.monotonic() < deadline, (
                    f"{passes} passes, {len(acks(out))} acks, no live temp file met"
                )
                assert proc.poll() is None, proc.communicate()[1].decode()
                fixed = repair(store)
                assert fixed.ok and not any(f.fixed for f in fixed.findings), [
                    f.to_dict() for f in fixed.findings
                ]
                saw_live_temp += any(f.check == "temp-file" for f in fixed.findings)
                passes += 1
                time.sleep(0.02)  # let the writer through the writer lock
        proc.kill()
        proc.communicate()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    acked = acks(out)[1:]
    assert passes >= 10 and saw_live_temp > 0
    with agentkeep.open(project) as store:
        assert check_after_crash(store, acked, SEED) == 0
        assert dangling_objects(store) == []
    report(
        f"{passes} doctor --fix passes beside a live writer ({len(acked)} acked; "
        f"{saw_live_temp} passes saw its temp files): nothing of it removed"
    )


# -- b. SIGKILL of the recorder mid-stream ------------------------------------------------

LINES = 40_000  # ~2 MB printed over a few seconds


def wait_for_length(project: Path, minimum: int, proc: subprocess.Popen[bytes]) -> int:
    """Poll (read-only) until the recorder has committed at least ``minimum`` bytes."""
    deadline = time.monotonic() + 30
    with agentkeep.open(project, read_only=True) as store:
        while time.monotonic() < deadline:
            assert proc.poll() is None, "the recorder ended before it was killed"
            streams = store.list_streams()
            if streams and max(s.length for s in streams) >= minimum:
                return max(s.length for s in streams)
            time.sleep(0.01)
    pytest.fail("the recorder never recorded enough output")


@pytest.mark.slow
@pytest.mark.parametrize("minimum", [1, 100_000, 400_000])
def test_sigkill_of_recorder_mid_stream(project: Path, tmp_path: Path, minimum: int) -> None:
    expected = numbered_output(LINES)
    out = tmp_path / "victim.out"
    with out.open("wb") as out_file:
        proc = subprocess.Popen(
            [sys.executable, str(HELPERS / "run_victim.py"), str(project), str(LINES)],
            stdout=out_file,
            stderr=subprocess.PIPE,
            env=child_env(None),
            start_new_session=True,  # its child is in our reach after the recorder dies
        )
        try:
            wait_for_length(project, minimum, proc)
            proc.send_signal(signal.SIGKILL)  # the recorder only, not its child
            proc.wait()
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    (started,) = acks(out)
    session_id = started["session"]
    with agentkeep.open(project) as store:
        assert store.get_session(session_id).status == "running"
        (stdout,) = store.session_streams(session_id, "stdout")
        assert stdout.status == "live" and stdout.length >= minimum
        recorded = store.read_stream(stdout.id, 0, stdout.length)
        assert recorded == expected[: stdout.length], "a recorded byte differs from the output"
        assert dangling_streams(store) == []
        found = diagnose(store)
        assert ("dead-session", f"session {session_id}") in {
            (f.check, f.subject) for f in found.findings
        }
        assert leftovers(found.findings)["unsealed-stream"] == 2  # stdout and stderr
        assert_swept(store)
        assert store.get_session(session_id).status == "interrupted"
        sealed = store.get_stream(stdout.id)
        assert sealed.status == "sealed" and sealed.length >= stdout.length
        data = store.read_stream(stdout.id)
        assert data == expected[: len(data)]
        assert hashlib.sha256(data).hexdigest() == sealed.sha256
    report(
        f"recorder SIGKILLed after {stdout.length:,} recorded bytes: all readable and equal "
        f"to the output; sealed {sealed.length:,} bytes; session interrupted"
    )


# -- c. crashes while sealing -------------------------------------------------------------

SEAL_FAILPOINTS = {
    "seal:compressed": "temp-file",
    "seal:published": "orphan-file",
    "seal:committed": "orphan-file",
}


@pytest.mark.parametrize("failpoint", sorted(SEAL_FAILPOINTS))
def test_crash_while_sealing(project: Path, failpoint: str) -> None:
    data = b"".join(b"%07d some output of a build step\n" % i for i in range(70_000))  # >2 MiB
    with agentkeep.open(project) as store:
        session = store.start_session(source="run", pid=os.getpid()).item
        writer = store.open_stream(session.id, "stdout")
        writer.write(data)
        stream = writer.close()
        store.end_session(session.id, status="ended")
    done = subprocess.run(
        [sys.executable, str(HELPERS / "artifact_writer.py"), "seal", str(project), str(stream.id)],
        capture_output=True,
        env=child_env(failpoint),
        timeout=60,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()
    with agentkeep.open(project) as store:
        assert store.read_stream(stream.id) == data, "the stream must stay readable"
        assert dangling_streams(store) == []
        found = leftovers(diagnose(store).findings)
        assert SEAL_FAILPOINTS[failpoint] in found, found
        assert_swept(store)
        sealed = store.get_stream(stream.id)
        assert sealed.status == "sealed"
        assert sealed.sha256 == hashlib.sha256(data).hexdigest()
        assert store.read_stream(stream.id) == data
        assert store.read_stream(stream.id, 1_500_000, 100) == data[1_500_000:1_500_100]
