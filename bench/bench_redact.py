"""Throughput of `agentkeep.redact.redact_text` on synthetic agent transcripts.

    python bench/bench_redact.py [--mb 20] [--seed 1]
    python bench/bench_redact.py --mb 4 --against /path/to/other/checkout   # side by side

Generates about ``--mb`` MB of mixed transcript text at run time (JSONL tool calls and
results, prose, code, shell output, git logs, paths, URLs) with roughly one secret per 50 KB,
and words such as "password" about as often as real code and docs hold them
(``--keyword-heavy``: ~25 times as often, the text of the first issue-14 figures), then
prints:

- redact_text throughput (median of 3 runs) and how many secrets it found, with the full
  rule set (the hand-written rules and every gitleaks default rule), on the compiled
  engine (RE2: library, importers, ``run``) and on the standard-library one (the hook);
- the naive baseline: gitleaks-style patterns (leading ``\\b``, ``(?i)``, one regex per rule)
  each run over the whole text, and the speed-up over it;
- the cost of one call on a 300-byte benign JSON string (the store's per-field case);
- hostile inputs (a rule's parts repeated: Kubernetes manifests, assignments, escapes) at
  two sizes (``--hostile-kb 50,200``), in us per KB: the ratio must stay near 1 (linear);
- a final line ``redact: N MB/s (target >= 100)`` (the compiled engine).

``--against DIR`` instead measures this tree and DIR's ``src`` (a checkout before a change)
in alternating subprocesses, ``--rounds`` times each, and prints both ranges and the ratio.

Secrets are built from a prefix and random characters at run time; none is stored here.
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import re
import statistics
import string
import sys
import time
from pathlib import Path

try:
    import agentkeep.redact  # noqa: F401
except ImportError:  # not installed: use the source tree
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

import agentkeep.redact as _redact
from agentkeep.redact import redact_text, scan

ALNUM = string.ascii_letters + string.digits
WORDS = [
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "for",
    "that",
    "with",
    "on",
    "as",
    "file",
    "function",
    "return",
    "value",
    "error",
    "test",
    "run",
    "build",
    "install",
    "path",
    "source",
    "tests",
    "import",
    "class",
    "def",
    "self",
    "result",
    "output",
    "command",
    "tool",
    "input",
    "check",
    "update",
    "the",
    "config",
    "module",
    "package",
    "version",
    "commit",
    "branch",
    "merge",
    "review",
    "change",
    "fix",
    "add",
    "remove",
    "refactor",
    "cache",
    "store",
    "session",
    "task",
    "agent",
    "worker",
    "event",
    "stream",
    "note",
    "artifact",
    "query",
    "index",
    "schema",
    "migration",
    "backup",
    "restore",
    "verify",
    "hash",
    "token",
    "tokens",
    "budget",
    "context",
    "window",
    "key",
    "keys",
    "keyboard",
    "author",
    "authentication",
    "password",
    "secret",
    "credentials",
    "access",
    "api",
    "server",
    "client",
    "request",
    "response",
    "header",
    "status",
    "retry",
    "timeout",
    "lock",
    "write",
    "read",
    "transaction",
]
FILES = [
    "src/agentkeep/store.py",
    "src/agentkeep/cli/main.py",
    "tests/test_store.py",
    "README.md",
    "docs/design.md",
    "pyproject.toml",
    "src/agentkeep/backend/sqlite.py",
    "Makefile",
    ".gitignore",
]


def _rand(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _secret(rng: random.Random) -> str:
    """One synthetic secret, in a typical context."""
    kind = rng.randrange(10)
    if kind == 0:
        return "export GITHUB_TOKEN=" + "gh" + "p_" + _rand(rng, ALNUM, 36)
    if kind == 1:
        return '"api_key": "' + _rand(rng, ALNUM, 32) + '"'
    if kind == 2:
        return (
            "AWS_ACCESS_KEY_ID=" + "AK" + "IA" + _rand(rng, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16)
        )
    if kind == 3:
        return "Authorization: Bearer " + _rand(rng, ALNUM + "-_.", 40)
    if kind == 4:
        return "OPENAI_API_KEY=" + "sk-" + "proj-" + _rand(rng, ALNUM + "-_", 120)
    if kind == 5:
        return "ANTHROPIC_API_KEY=" + "sk-" + "ant-api03-" + _rand(rng, ALNUM + "-_", 93) + "AA"
    if kind == 6:
        return "postgres://app:" + _rand(rng, ALNUM, 16) + "@db.internal:5432/app"
    if kind == 7:
        body = base64.b64encode(rng.randbytes(600)).decode()
        lines = "\\n".join(body[i : i + 64] for i in range(0, len(body), 64))
        kind_name = "RSA PRIVATE KEY"
        return f"-----BEGIN {kind_name}-----\\n{lines}\\n-----END {kind_name}-----"
    if kind == 8:
        return "xo" + "xb-" + _rand(rng, string.digits, 12) + "-" + _rand(rng, ALNUM, 24)
    header = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').decode().rstrip("=")
    payload = base64.urlsafe_b64encode(json.dumps({"sub": _rand(rng, ALNUM, 8)}).encode())
    sig = base64.urlsafe_b64encode(rng.randbytes(32)).decode().rstrip("=")
    return f"token={header}.{payload.decode().rstrip('=')}.{sig}"


# Words that open a rule's window or pass wherever they occur ("password": gitleaks'
# hashicorp-tf-password). Drawn like the others, each made ~1% of the prose: ~520
# "password" per MB, where real text has ~10-20 (Python's standard library, 10 MB of
# code and docstrings: 21 per MB; 16 MB of text docs under /usr/share/doc and the
# standard library: 12; "secret" 3-10, "credential" 2-8). So by default a drawn one is
# kept with probability SENSITIVE_KEEP (~21 "password" per MB); --keyword-heavy draws them
# like any other word (the text of the first measurements, issue 14). Other benches that
# import the generator (bench_streams, bench_import, bench_scale) keep the earlier text:
# only this script's main() switches.
SENSITIVE = frozenset(
    ["password", "secret", "credentials", "token", "tokens", "key", "keys", "access", "api",
     "authentication"]
)  # fmt: skip
SENSITIVE_KEEP = 0.04
KEYWORD_HEAVY = True  # for importers; main() sets it from --keyword-heavy


def _word(rng: random.Random) -> str:
    word = rng.choice(WORDS)
    while not KEYWORD_HEAVY and word in SENSITIVE and rng.random() >= SENSITIVE_KEEP:
        word = rng.choice(WORDS)
    return word


def _prose(rng: random.Random) -> str:
    return " ".join(_word(rng) for _ in range(rng.randint(8, 40))).capitalize() + "."


def _code(rng: random.Random) -> str:
    name = rng.choice(WORDS)
    lines = [
        f"def {name}_{rng.randint(1, 99)}(self, key: str, value: int = 0) -> dict[str, int]:",
        f'    """Return the {rng.choice(WORDS)} for ``key``."""',
        "    cached = self._cache.get(key)",
        "    if cached is not None:",
        "        return cached",
        f"    result = {{k: v for k, v in self.{name}.items() if v > value}}",
        f"    token_count = len(result) * {rng.randint(2, 64)}",
        "    self._cache[key] = result",
        "    return result",
    ]
    return "\n".join(lines[: rng.randint(3, len(lines))])


def _shell(rng: random.Random) -> str:
    out = []
    for _ in range(rng.randint(2, 8)):
        out.append(
            f"-rw-r--r--  1 dev  staff  {rng.randint(100, 99999):>6} Nov {rng.randint(1, 28)}"
            f" 12:{rng.randint(10, 59)} {rng.choice(FILES)}"
        )
    out.append(f"commit {_rand(rng, '0123456789abcdef', 40)}")
    out.append("Author: Dev Person <dev@example.com>")
    out.append(f"    {_prose(rng)}")
    out.append(f"fetching https://github.com/example/repo/archive/{_rand(rng, ALNUM, 8)}.tar.gz")
    return "\n".join(out)


def _tool_call(rng: random.Random, content: str) -> str:
    record = {
        "type": rng.choice(["assistant", "user"]),
        "uuid": f"{_rand(rng, '0123456789abcdef', 8)}-{_rand(rng, '0123456789abcdef', 4)}",
        "message": {
            "content": [
                {
                    "type": "tool_use",
                    "name": rng.choice(["Bash", "Read", "Edit", "Grep"]),
                    "input": {"command": f"cat {rng.choice(FILES)}", "description": _prose(rng)},
                },
                {"type": "tool_result", "content": content},
            ]
        },
        "usage": {
            "input_tokens": rng.randint(1, 50000),
            "output_tokens": rng.randint(1, 4000),
            "cache_read_input_tokens": rng.randint(0, 90000),
        },
        "cwd": "/home/dev/project",
        "sessionId": _rand(rng, "0123456789abcdef", 32),
    }
    return json.dumps(record)


def make_transcript(size: int, seed: int = 1) -> tuple[str, int]:
    """About ``size`` characters of transcript, and how many secrets were planted."""
    rng = random.Random(seed)
    parts: list[str] = []
    total = 0
    planted = 0
    next_secret = rng.randint(10_000, 90_000)
    while total < size:
        r = rng.random()
        if r < 0.25:
            piece = _prose(rng)
        elif r < 0.45:
            piece = _code(rng)
        elif r < 0.6:
            piece = _shell(rng)
        else:
            piece = _tool_call(rng, rng.choice([_code, _shell, _prose])(rng))
        if total >= next_secret:
            secret = _secret(rng)
            piece = (
                _tool_call(rng, f"{_prose(rng)}\n{secret}\n") if r < 0.5 else f"{secret}\n{piece}"
            )
            planted += 1
            next_secret = total + rng.randint(25_000, 75_000)
        parts.append(piece)
        total += len(piece) + 1
    return "\n".join(parts), planted


# gitleaks-style patterns, one per rule, as a straightforward port would write them.
NAIVE_PATTERNS = [
    (re.compile(r"\b((?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16})\b"), False),
    (re.compile(r"\b(gh[pousr]_[0-9a-zA-Z]{36})\b"), False),
    (re.compile(r"\bgithub_pat_\w{82}"), False),
    (re.compile(r"\bglpat-[\w-]{20}"), False),
    (re.compile(r"\b(sk-(?:proj|svcacct|admin)-[A-Za-z0-9_-]{20,})"), False),
    (re.compile(r"\b(sk-[a-zA-Z0-9]{20}T3BlbkFJ[a-zA-Z0-9]{20})"), False),
    (re.compile(r"\b(sk-ant-(?:api03|admin01)-[\w-]{93}AA)"), False),
    (re.compile(r"\b(xox[baprse]-[0-9A-Za-z-]{10,})"), False),
    (re.compile(r"(?i)xapp-\d-[A-Z0-9]+-\d+-[a-z0-9]+"), False),
    (re.compile(r"(?:https?://)?hooks.slack.com/(?:services|workflows)/"
                r"[A-Za-z0-9+/]{43,56}"), False),
    (re.compile(r"\b(AIza[\w-]{35})"), False),
    (re.compile(r"\b(hf_(?i:[a-z]{34}))"), False),
    (re.compile(r"(?i)\b(npm_[a-z0-9]{36})"), False),
    (re.compile(r"pypi-AgEIcHlwaS5vcmc[\w-]{50,1000}"), False),
    (re.compile(r"\b((?:sk|rk)_(?:test|live|prod)_[a-zA-Z0-9]{10,99})"), False),
    (re.compile(r"\b(ey[a-zA-Z0-9]{17,}\.ey[a-zA-Z0-9/\\_-]{17,}\."
                r"(?:[a-zA-Z0-9/\\_-]{10,}={0,2})?)"), False),
    (re.compile(r"(?i)-----BEGIN[ A-Z0-9_-]{0,100}PRIVATE KEY(?: BLOCK)?-----"
                r"[\s\S-]{64,}?KEY(?: BLOCK)?-----"), False),
    (re.compile(r"(?i)authorization:\s*(?:bearer|basic|token)\s+([\w=~@.+/-]{8,})"), False),
    (re.compile(r"[a-z][a-z0-9+.-]*://[^\s:/@]+:([^\s/@]+)@"), False),
    (re.compile(
        r"(?i)[\w.-]{0,50}?(?:access|auth|api|credential|creds|key|passw(?:or)?d|secret|token)"
        r"(?:[ \t\w.-]{0,20})[\s'\"]{0,3}(?:=|>|:{1,3}=|\|\||:|=>|\?=|,)[\x60'\"\s=]{0,5}"
        r"([\w.=-]{10,150}|[a-z0-9][a-z0-9+/]{11,}={0,3})(?:[\x60'\"\s;]|\\[nr]|$)"
    ), False),
]  # fmt: skip


def naive_scan(text: str) -> int:
    return sum(1 for pattern, _ in NAIVE_PATTERNS for _ in pattern.finditer(text))


def timed(fn, *args) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def cpu_timed(fn, *args) -> float:  # type: ignore[no-untyped-def]
    """The process's CPU time: on a machine shared with other work, steadier than wall."""
    start = time.process_time()
    fn(*args)
    return time.process_time() - start


class standard_library_engine:
    """Run `agentkeep.redact` on its standard-library engine (the hook's) inside."""

    def __enter__(self) -> None:
        self.saved = getattr(_redact, "_fast", None)
        _redact._fast = False  # type: ignore[attr-defined]

    def __exit__(self, *exc: object) -> None:
        _redact._fast = self.saved  # type: ignore[attr-defined]


BENIGN = json.dumps(
    {
        "id": "task-0192",
        "title": "Refactor the session store to batch writes",
        "status": "in_progress",
        "assignee": "agent-7",
        "paths": ["src/agentkeep/store.py", "tests/test_store.py"],
        "note": "Measured 5.8k commits/s with synchronous=FULL; batching 1,000 rows takes"
        " about 5 ms.",
    }
)[:300]


def per_call_us(text: str, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        redact_text(text)
    return (time.perf_counter() - start) / n * 1e6


def _one_round(mb: float, seed: int) -> None:
    """Print one JSON line: throughput (best of 3) and the cost of a short field, on the
    default engine and on the standard-library one."""
    text, _ = make_transcript(int(mb * 1_000_000), seed)
    size = len(text.encode()) / 1e6
    best = min(timed(redact_text, text) for _ in range(3))
    best_cpu = min(cpu_timed(redact_text, text) for _ in range(3))
    us = per_call_us(BENIGN, 5000)
    with standard_library_engine():
        best_stdlib = min(timed(redact_text, text) for _ in range(3))
        us_stdlib = per_call_us(BENIGN, 5000)
    print(json.dumps({"mb_s": size / best, "us": us, "mb_s_stdlib": size / best_stdlib,
                      "us_stdlib": us_stdlib, "mb_s_cpu": size / best_cpu}))  # fmt: skip


# Hostile inputs: text made of one rule's parts repeated. Each is timed at two sizes; the
# time per KB must not grow with the size (the hook must never hold an agent for long).
HOSTILE = {
    "k8s kind+data": "kind: secret\ndata:\n",
    "k8s data+kind": "data:\n  a: b\nkind: secret\n",
    "k8s kind only": "kind: secret\n",
    "password": "password ",
    "assignments": "adafruit_key = ",
    "json keys": '"aws_key": "',
    "ey": "ey",
    "escaped quotes": '\\\\\\"',
    "key=": "key=",
    "a=": "a=",
}


def _pathological(sizes: tuple[int, int]) -> None:
    """Print one JSON line: {input: [us per KB at each size]} (best of 3)."""
    out: dict[str, list[float]] = {}
    for name, unit in HOSTILE.items():
        rates = []
        for size in sizes:
            text = (unit * (size // len(unit) + 1))[:size]
            best = min(timed(redact_text, text) for _ in range(3))
            rates.append(best * 1e6 / (size / 1000))
        out[name] = rates
    print(json.dumps(out))


def _report_pathological(trees: dict[str, str], sizes: tuple[int, int]) -> None:
    import os
    import subprocess

    print(f"hostile inputs, us per KB at {sizes[0] // 1000} KB -> {sizes[1] // 1000} KB:")
    rows: dict[str, dict[str, list[float]]] = {}
    for name, src in trees.items():
        env = {**os.environ, "PYTHONPATH": src}
        done = subprocess.run(
            [sys.executable, __file__, "--one-pathological", "--hostile-kb",
             ",".join(str(s // 1000) for s in sizes)],
            env=env, capture_output=True, text=True, check=True,
        )  # fmt: skip
        rows[name] = json.loads(done.stdout.strip().splitlines()[-1])
    for hostile in HOSTILE:
        cells = []
        for name in trees:
            small, large = rows[name][hostile]
            cells.append(f"{name}: {small:8.1f} -> {large:8.1f} ({large / small:4.2f}x)")
        print(f"  {hostile:15} " + "   ".join(cells))


def _side_by_side(args: argparse.Namespace) -> None:
    import os
    import subprocess

    here = Path(__file__).resolve().parent.parent / "src"
    trees = {"this tree": str(here), "against": str(Path(args.against).resolve() / "src")}
    results: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
    for _ in range(args.rounds):
        for name, src in trees.items():
            env = {**os.environ, "PYTHONPATH": src}
            heavy = ["--keyword-heavy"] if args.keyword_heavy else []
            done = subprocess.run(
                [sys.executable, __file__, "--one-round", "--mb", str(args.mb), *heavy],
                env=env, capture_output=True, text=True, check=True,
            )  # fmt: skip
            results[name].append(json.loads(done.stdout.strip().splitlines()[-1]))
    for name, rows in results.items():
        cpu = sorted(r["mb_s_cpu"] for r in rows)
        print(
            f"{name}, default engine, CPU time: {statistics.median(cpu):.1f} ({cpu[0]:.1f}-"
            f"{cpu[-1]:.1f}) MB/s"
        )
        for key, label in (("", "default engine"), ("_stdlib", "standard-library engine")):
            rates = sorted(r["mb_s" + key] for r in rows)
            costs = sorted(r["us" + key] for r in rows)
            print(
                f"{name}, {label}: {statistics.median(rates):.1f} ({rates[0]:.1f}-"
                f"{rates[-1]:.1f}) MB/s, {statistics.median(costs):.1f} ({costs[0]:.1f}-"
                f"{costs[-1]:.1f}) us per {len(BENIGN)}-byte benign field"
            )
    if args.hostile_kb:
        _report_pathological(trees, _hostile_sizes(args.hostile_kb))
    ours = statistics.median(r["mb_s"] for r in results["this tree"])
    theirs = statistics.median(r["mb_s"] for r in results["against"])
    ours_us = statistics.median(r["us"] for r in results["this tree"])
    theirs_us = statistics.median(r["us"] for r in results["against"])
    ours_cpu = statistics.median(r["mb_s_cpu"] for r in results["this tree"])
    theirs_cpu = statistics.median(r["mb_s_cpu"] for r in results["against"])
    print(
        f"ratio (this / against): throughput {ours / theirs:.2f}x (CPU time"
        f" {ours_cpu / theirs_cpu:.2f}x), short-field cost {ours_us / theirs_us:.2f}x"
    )


def _hostile_sizes(spec: str) -> tuple[int, int]:
    small, large = (int(kb) * 1000 for kb in spec.split(","))
    return small, large


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=20.0, help="transcript size in MB")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--naive-mb", type=float, default=4.0, help="size for the baseline")
    parser.add_argument("--against", help="another checkout to measure side by side")
    parser.add_argument("--rounds", type=int, default=3, help="rounds for --against")
    parser.add_argument(
        "--hostile-kb", default="50,200",
        help="two sizes in KB for the hostile inputs (empty: skip them)",
    )  # fmt: skip
    parser.add_argument(
        "--keyword-heavy", action="store_true",
        help="the earlier text: every sensitive word (password, ...) ~1%% of the prose",
    )  # fmt: skip
    parser.add_argument("--one-round", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--one-pathological", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    global KEYWORD_HEAVY
    KEYWORD_HEAVY = args.keyword_heavy
    if args.one_round:
        _one_round(args.mb, args.seed)
        return
    if args.one_pathological:
        _pathological(_hostile_sizes(args.hostile_kb))
        return
    if args.against:
        _side_by_side(args)
        return

    text, planted = make_transcript(int(args.mb * 1_000_000), args.seed)
    mb = len(text.encode()) / 1e6
    print(f"transcript: {mb:.1f} MB, {text.count(chr(10)) + 1} lines, {planted} planted secrets")

    runs = [timed(redact_text, text) for _ in range(3)]
    median = statistics.median(runs)
    found = scan(text)
    per_rule: dict[str, int] = {}
    for m in found:
        per_rule[m.rule] = per_rule.get(m.rule, 0) + 1
    print(f"redact_text: median {median * 1000:.0f} ms of {[round(r * 1000) for r in runs]} ms")
    print(f"  found {len(found)} secrets: {dict(sorted(per_rule.items()))}")
    with standard_library_engine():
        runs_stdlib = [timed(redact_text, text) for _ in range(3)]
        assert scan(text) == found, "the two engines disagree"
    print(f"  standard-library engine (the hook's): {mb / statistics.median(runs_stdlib):.1f} MB/s")

    sample = text[: int(args.naive_mb * 1_000_000)]
    sample_mb = len(sample.encode()) / 1e6
    naive = timed(naive_scan, sample)
    ours = statistics.median(timed(redact_text, sample) for _ in range(3))
    print(
        f"naive baseline ({len(NAIVE_PATTERNS)} gitleaks-style patterns over the whole text,"
        f" {sample_mb:.1f} MB): {sample_mb / naive:.1f} MB/s;"
        f" redact_text on the same text: {sample_mb / ours:.1f} MB/s"
        f" ({naive / ours:.1f}x faster)"
    )

    per_call = per_call_us(BENIGN, 20_000)
    with standard_library_engine():
        per_call_stdlib = per_call_us(BENIGN, 20_000)
    print(
        f"redact_text on a {len(BENIGN)}-byte benign JSON string: {per_call:.2f} us per call"
        f" (standard-library engine: {per_call_stdlib:.2f} us)"
    )

    if args.hostile_kb:
        here = str(Path(__file__).resolve().parent.parent / "src")
        _report_pathological({"this tree": here}, _hostile_sizes(args.hostile_kb))

    throughput = mb / median
    print(f"redact: {throughput:.1f} MB/s (target >= 100)")


if __name__ == "__main__":
    main()
