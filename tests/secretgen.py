"""Secrets generated at test time (never committed): one look-alike per format the
redactor must catch. Each is assembled from a public prefix and random characters."""

from __future__ import annotations

import base64
import json
import random
import re
import secrets
import string
import subprocess
import tarfile
from pathlib import Path

ALNUM = string.ascii_letters + string.digits
UPPER_DIGITS = string.ascii_uppercase + "234567"
WORD = ALNUM + "_"
URLSAFE = ALNUM + "-_"


def rand(alphabet: str, n: int) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(n))


def _jwt() -> str:
    def part(obj: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    header = part({"alg": "HS256", "typ": "JWT"})
    body = part({"sub": rand(ALNUM, 12), "iat": 1700000000})
    return f"{header}.{body}.{rand(URLSAFE, 43)}"


def _pem() -> str:
    lines = "\n".join(rand(ALNUM + "+/", 64) for _ in range(6))
    kind = "RSA PRIVATE KEY"
    return f"-----BEGIN {kind}-----\n{lines}\n-----END {kind}-----"


def generate() -> dict[str, tuple[str, str]]:
    """name -> (text to store, the secret part that must never reach disk)."""
    out: dict[str, tuple[str, str]] = {}

    def token(name: str, value: str) -> None:
        out[name] = (value, value)

    token("aws", "AKIA" + rand(UPPER_DIGITS, 16))
    token("github-classic", "ghp_" + rand(ALNUM, 36))
    token("github-fine-grained", "github_pat_" + rand(WORD, 82))
    token("gitlab", "glpat-" + rand(URLSAFE, 20))
    token("openai-project", "sk-proj-" + rand(URLSAFE, 74) + "T3BlbkFJ" + rand(URLSAFE, 74))
    token("anthropic", "sk-ant-api03-" + rand(URLSAFE, 93) + "AA")
    token(
        "slack-bot",
        "xoxb-" + "-".join(rand(string.digits, 12) for _ in range(2)) + "-" + rand(ALNUM, 24),
    )
    webhook_path = f"T{rand(UPPER_DIGITS, 10)}/B{rand(UPPER_DIGITS, 10)}/{rand(ALNUM, 24)}"
    out["slack-webhook"] = (f"https://hooks.slack.com/services/{webhook_path}", webhook_path)
    token("google", "AIza" + rand(URLSAFE, 35))
    token("huggingface", "hf_" + rand(string.ascii_letters, 34))
    token("npm", "npm_" + rand(ALNUM, 36))
    token("pypi", "pypi-AgEIcHlwaS5vcmc" + rand(URLSAFE, 70))
    token("stripe", "sk_live_" + rand(ALNUM, 32))
    token("jwt", _jwt())
    pem = _pem()
    out["pem"] = (pem, pem.splitlines()[2])
    open_pem = pem.rsplit("\n-----END", 1)[0]
    out["pem-unterminated"] = (open_pem, open_pem.splitlines()[3])
    bearer = rand(ALNUM, 40)
    out["authorization"] = (f"Authorization: Bearer {bearer}", bearer)
    password = rand(ALNUM, 20)
    out["url-password"] = (f"postgres://app:{password}@db.internal:5432/app", password)
    env_value = rand(ALNUM + "+/", 40)
    out["env-assignment"] = (f"DATABASE_SECRET={env_value}", env_value)
    return out


def fragments(secret: str) -> list[str]:
    """What a leak check greps for: the whole secret and 12 characters past its prefix."""
    prefix_end = next((i for i, c in enumerate(secret[:12]) if c in "_-"), -1) + 1
    return [secret, secret[prefix_end : prefix_end + 12]]


LIVE_DB = re.compile(r"(^|/)(state|global)\.db(-wal|-shm|-journal)?$")
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def leaks(directory: Path, needles: list[str]) -> list[str]:
    """Every file under ``directory`` holding a needle: the raw bytes of every file, read
    by grep (a separate process: live database files are never opened by this one), and
    the decompressed content of every zstd file (sealed streams, objects, the zstd members
    of a bundle's tar), which grep cannot see into. A grep that fails (exit 2: a missing
    directory, an unreadable file) fails the check instead of reading as "no leaks"."""
    if not directory.is_dir():
        raise AssertionError(f"leak check: {directory} is not a directory")
    hits = []
    for needle in needles:
        done = subprocess.run(
            ["grep", "-r", "-l", "-a", "-F", "--", needle, str(directory)],
            capture_output=True,
            text=True,
        )
        if done.returncode not in (0, 1):
            raise AssertionError(f"leak check: grep exited {done.returncode}: {done.stderr}")
        hits += [f"{line} contains {needle[:6]}…" for line in done.stdout.splitlines()]
    for name, content in decompressed(directory):
        hits += [
            f"{name} (decompressed) contains {n[:6]}…" for n in needles if n.encode() in content
        ]
    return hits


def decompressed(directory: Path) -> list[tuple[str, bytes]]:
    """(name, content) of every zstd file under ``directory``, decompressed, and of every
    zstd member of a tar file (a bundle). Live database files are skipped (grep reads
    them; tests never open them in-process)."""
    from agentkeep.files import zstd

    out = []
    for path in sorted(directory.rglob("*")):
        if LIVE_DB.search(path.as_posix()) or path.is_symlink() or not path.is_file():
            continue
        with path.open("rb") as handle:
            head = handle.read(4)
        if head == ZSTD_MAGIC:
            out.append((str(path), zstd().decompress(path.read_bytes())))
        elif tarfile.is_tarfile(path):
            with tarfile.open(path) as tar:
                for member in tar.getmembers():
                    extracted = tar.extractfile(member) if member.isfile() else None
                    data = extracted.read() if extracted is not None else b""
                    if data[:4] == ZSTD_MAGIC:
                        out.append((f"{path}:{member.name}", zstd().decompress(data)))
    return out


# --- positives generated from a rule's regex ---------------------------------------------------

_SAFE = ALNUM


def from_regex(pattern: str, rng: random.Random) -> str:
    """A string that ``pattern`` (Python ``re`` syntax, ASCII) can match, built at random.

    Bounded repetitions take their minimum count plus up to 3 (0 to 2 for an optional one),
    ``+`` and ``{n,}`` 4 to 12 more, ``*`` and lazy ones their minimum; a lone ``.`` gives a dot;
    each character class gives a random member (``\\s`` a blank); alternations a random
    branch; anchors and lookarounds give nothing (the caller checks the result with the
    regex itself and draws again when a lookaround said no).
    """
    import re._constants as c  # type: ignore[import-not-found]
    import re._parser as parser  # type: ignore[import-not-found]

    categories = {
        c.CATEGORY_DIGIT: string.digits,
        c.CATEGORY_WORD: WORD,
        c.CATEGORY_SPACE: " ",
        c.CATEGORY_NOT_DIGIT: string.ascii_letters,
        c.CATEGORY_NOT_WORD: " .-:/",
        c.CATEGORY_NOT_SPACE: ALNUM,
    }

    def members(items: list[tuple[object, object]]) -> str:
        negate = False
        chars: set[str] = set()
        for op, av in items:
            if op is c.NEGATE:
                negate = True
            elif op is c.LITERAL:
                chars.add(chr(av))  # type: ignore[arg-type]
            elif op is c.RANGE:
                lo, hi = av  # type: ignore[misc]
                chars.update(chr(x) for x in range(lo, hi + 1))
            elif op is c.CATEGORY:
                chars.update(categories[av])
        if negate:
            return "".join(ch for ch in _SAFE + "._-" if ch not in chars)
        return "".join(sorted(chars))

    def emit(items: object, repeated: bool = False) -> str:
        out = []
        for op, av in items:  # type: ignore[attr-defined]
            if op is c.LITERAL:
                out.append(chr(av))
            elif op is c.NOT_LITERAL:
                out.append(rng.choice([ch for ch in _SAFE if ord(ch) != av]))
            elif op is c.ANY:
                # A lone "." stands for a dot more often than not (hooks.slack.com).
                out.append(rng.choice(_SAFE) if repeated else ".")
            elif op is c.IN:
                chars = members(av)
                # Blanks as people type them: a space where one may go, no control characters.
                if " " in chars:
                    chars = " "
                out.append(rng.choice(chars.strip("\t\r\n\x0b\x0c") or chars))
            elif op in (c.MAX_REPEAT, c.MIN_REPEAT, c.POSSESSIVE_REPEAT):
                lo, hi, sub = av
                if op is c.MIN_REPEAT or (lo == 0 and hi == c.MAXREPEAT):
                    count = lo  # lazy, or "*" filler: as few as it takes
                elif hi == c.MAXREPEAT:  # "+", "*", "{n,}": a realistic length
                    count = lo + rng.randint(4, 12)
                else:
                    count = rng.randint(lo, min(hi, lo + (2 if lo == 0 else 3)))
                out.extend(emit(sub, True) for _ in range(count))
            elif op is c.SUBPATTERN:
                out.append(emit(av[3]))
            elif op is c.ATOMIC_GROUP:
                out.append(emit(av))
            elif op is c.BRANCH:
                # Not the end-of-text branch of a terminator ("(?:[\s;]|$)"): the caller
                # puts text after the secret.
                ends = [b for b in av[1] if not (len(b) == 1 and b[0][0] is c.AT)]
                out.append(emit(rng.choice(ends or av[1])))
            elif op is c.CATEGORY:
                out.append(rng.choice(categories[av]))
            # AT (anchors), ASSERT, ASSERT_NOT: nothing
        return "".join(out)

    return emit(parser.parse(pattern, re.ASCII))
