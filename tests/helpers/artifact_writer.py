"""A child process for tests/test_crash_files.py: file-protocol work through the library.

    python tests/helpers/artifact_writer.py add STORE [--seed S] [--count N]
    python tests/helpers/artifact_writer.py seal STORE STREAM_ID

``add`` prints ``{"start": n}`` (the number of artifacts already stored, where this run's
n begins), then stores artifacts in a loop and prints one JSON line per *acknowledged*
artifact (``{"n", "id", "sha256", "expected"}``), flushed, only after ``add_artifact``
returned. Contents are derived from the seed and n (sizes from 40 bytes to ~2 MiB,
compressible and random, each unique) except that every seventh one (n % 7 == 0) is the
same content for every run, to exercise deduplication; the parent recomputes them with
:func:`content`. ``seal`` seals one stream. Run with ``AGENTKEEP_FAILPOINT`` set, the
process SIGKILLs itself at that step (agentkeep/failpoints.py).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys

import agentkeep

REPEATED = b"the same artifact in every run\n" * 3000
# Random bytes can, rarely, hold something secret-shaped ("pwd=" and random characters, or
# a run of letters and digits one of the many gitleaks rules accepts), which the redactor
# rightly redacts (binary content is redacted too). ASCII letters, digits and assignment
# operators are mapped to bytes above 0x7f, which no rule matches, so the expected hash is
# the hash of what was given.
_SAFE = bytes(range(0x80, 0x100))
_PLAIN = b"=:," + bytes(c for c in range(0x80) if chr(c).isalnum())
NO_ASSIGNMENT = bytes.maketrans(_PLAIN, _SAFE[: len(_PLAIN)])


def is_repeat(n: int) -> bool:
    return n % 7 == 0


def content(seed: int, n: int) -> bytes:
    """The bytes of artifact n of a run with this seed."""
    if is_repeat(n):
        return REPEATED
    rng = random.Random(seed * 1_000_003 + n)
    size = rng.choice((40, 3000, 70_000, 400_000, 2_200_000))
    header = f"seed {seed} artifact {n}\n".encode()
    if n % 2:
        return (header * (size // len(header) + 1))[:size]
    return header + rng.randbytes(size).translate(NO_ASSIGNMENT)


def run_add(store: agentkeep.Store, seed: int, count: int) -> None:
    start = store._count("SELECT count(*) FROM artifacts")
    sys.stdout.write(json.dumps({"start": start}) + "\n")
    sys.stdout.flush()
    for n in range(start, start + count):
        data = content(seed, n)
        artifact = store.add_artifact(data, kind="file", name=f"a{n}.bin").item
        record = {"n": n, "id": artifact.id, "sha256": artifact.sha256}
        record["expected"] = hashlib.sha256(data).hexdigest()
        sys.stdout.write(json.dumps(record) + "\n")
        sys.stdout.flush()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=("add", "seal"))
    parser.add_argument("store")
    parser.add_argument("stream_id", nargs="?", type=int)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--count", type=int, default=60)
    args = parser.parse_args()
    with agentkeep.open(args.store) as store:
        if args.mode == "add":
            run_add(store, args.seed, args.count)
        else:
            store.seal_stream(args.stream_id)
    return 0


if __name__ == "__main__":
    sys.exit(main())
