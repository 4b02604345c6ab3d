"""A tiny model2vec model, built from nothing at test time (no hub, no download).

``model2vec.StaticModel.from_pretrained(path)`` loads a folder holding three files (its
"model2vec" layout, ``model2vec/persistence/datamodels.py``):

- ``tokenizer.json``: a Hugging Face ``tokenizers`` file; here a WordLevel model (one
  token per lower-cased word, split on whitespace and punctuation) with ``[UNK]``, which
  model2vec drops from a text's tokens;
- ``model.safetensors``: one float32 tensor ``embeddings`` of shape (vocabulary, dim), row
  *i* the vector of token id *i*; written here byte by byte (an 8-byte little-endian header
  length, the JSON header, the raw data);
- ``config.json``: ``normalize`` (unit-length output) and the rest of model2vec's keys.

The vectors are made up so that similarity is known in advance: every word of a
:data:`TOPICS` entry points along that topic's own axis (plus a small deterministic
wobble, so the words of one topic are near each other and not identical), and the
:data:`FILLER` words are short vectors on an axis of their own. Two texts about one topic
are then close, and texts about different topics are nearly orthogonal: a test can
assert an order. ``extra_words`` adds that many made-up words with pseudo-random vectors
(for a realistic vocabulary size in the benchmark); ``dim`` defaults to 16 (potion models
use 256).

    python tests/helpers/tinymodel.py DIR [--dim 256] [--extra-words 30000]
"""

from __future__ import annotations

import json
import math
import random
import struct
import sys
from pathlib import Path

TOPICS: dict[str, tuple[str, ...]] = {
    "database": (
        "database",
        "sql",
        "schema",
        "migration",
        "index",
        "table",
        "query",
        "postgres",
        "sqlite",
        "transaction",
    ),
    "auth": (
        "login",
        "password",
        "token",
        "session",
        "oauth",
        "credential",
        "authentication",
        "user",
        "permission",
        "role",
    ),
    "cooking": (
        "recipe",
        "pasta",
        "oven",
        "flour",
        "tomato",
        "garlic",
        "bake",
        "kitchen",
        "salt",
        "dinner",
    ),
    "music": (
        "guitar",
        "melody",
        "chord",
        "song",
        "rhythm",
        "piano",
        "concert",
        "note",
        "tempo",
        "album",
    ),
}
FILLER = ("the", "a", "an", "and", "of", "to", "in", "for", "with", "on", "is", "how")
SPECIAL = ("[PAD]", "[UNK]")


def vocabulary(extra_words: int = 0) -> list[str]:
    """Every token of the model, in id order."""
    words = [*SPECIAL, *FILLER]
    for topic_words in TOPICS.values():
        words += topic_words
    words += [f"w{n:05d}" for n in range(extra_words)]
    return words


def _vectors(words: list[str], dim: int) -> list[list[float]]:
    if dim < len(TOPICS) + 1:
        raise ValueError(f"dim must be at least {len(TOPICS) + 1}")
    axis = {word: i for i, topic_words in enumerate(TOPICS.values()) for word in topic_words}
    filler_axis = len(TOPICS)
    rng = random.Random(13)
    out: list[list[float]] = []
    for word in words:
        vector = [0.0] * dim
        if word in axis:
            vector[axis[word]] = 1.0
            for i in range(filler_axis + 1, dim):
                vector[i] = rng.uniform(-0.05, 0.05)
        elif word in FILLER:
            vector[filler_axis] = 0.1
        elif word not in SPECIAL:
            vector = [rng.gauss(0.0, 1.0) for _ in range(dim)]
        out.append(vector)
    return out


def _tokenizer(words: list[str]) -> dict[str, object]:
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [],
        "normalizer": {"type": "Lowercase"},
        "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": None,
        "decoder": None,
        "model": {
            "type": "WordLevel",
            "vocab": {word: i for i, word in enumerate(words)},
            "unk_token": "[UNK]",
        },
    }


def _safetensors(name: str, rows: list[list[float]]) -> bytes:
    count, dim = len(rows), len(rows[0])
    size = count * dim * 4
    header = json.dumps(
        {name: {"dtype": "F32", "shape": [count, dim], "data_offsets": [0, size]}},
        separators=(",", ":"),
    ).encode()
    header += b" " * (-len(header) % 8)  # the data starts 8-byte aligned
    data = struct.pack(f"<{count * dim}f", *(x for row in rows for x in row))
    return struct.pack("<Q", len(header)) + header + data


def build_tiny_model(folder: Path, *, dim: int = 16, extra_words: int = 0) -> Path:
    """Write a model2vec model into ``folder`` (created) and return ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    words = vocabulary(extra_words)
    rows = _vectors(words, dim)
    (folder / "tokenizer.json").write_text(json.dumps(_tokenizer(words)), encoding="utf-8")
    (folder / "model.safetensors").write_bytes(_safetensors("embeddings", rows))
    config = {
        "model_type": "model2vec",
        "architectures": ["StaticModel"],
        "tokenizer_name": "agentkeep-tiny-test-model",
        "apply_pca": None,
        "apply_zipf": False,
        "hidden_dim": dim,
        "seq_length": 1_000_000,
        "normalize": True,
    }
    (folder / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    return folder


def topic_text(topic: str, words: int, *, seed: int = 0) -> str:
    """A made-up sentence of ``words`` words about ``topic`` (filler words between)."""
    rng = random.Random(f"{topic}/{seed}")
    out: list[str] = []
    for _ in range(words):
        out.append(rng.choice(TOPICS[topic]))
        if rng.random() < 0.4:
            out.append(rng.choice(FILLER))
    return " ".join(out)


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norms = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norms if norms else 0.0


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--dim", type=int, default=16)
    parser.add_argument("--extra-words", type=int, default=0)
    args = parser.parse_args()
    print(build_tiny_model(args.folder, dim=args.dim, extra_words=args.extra_words))
    sys.exit(0)
