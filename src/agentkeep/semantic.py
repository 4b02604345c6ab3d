"""Optional semantic ranking: static embeddings of document chunks, fused with full text.

Off unless the ``semantic.model`` setting names a model: a local folder in model2vec's
layout (``config.json``, ``model.safetensors``, ``tokenizer.json``, e.g. a downloaded
``potion-base-8M``) or a Hugging Face model id (fetched into huggingface_hub's cache the
first time unless ``HF_HUB_OFFLINE=1``). It needs the ``semantic`` extra
(``pip install 'agentkeep[semantic]'``: model2vec, which brings numpy, tokenizers and
safetensors).

What is cheap and always there: :func:`enabled` reads the setting and :func:`fuse`
(reciprocal rank fusion) is pure Python. Nothing else here imports model2vec or numpy
until an :class:`Embedder` is loaded, and only a configured model loads one, so a store
without the setting never pays for either (``tests/test_semantic.py`` checks
``sys.modules`` after real commands).

Vectors are derived data, like the full-text index: ``doc_vectors`` holds one per chunk
(``chunk_id`` → ``doc_chunks.id``) with the :attr:`Embedder.model_id` that made it, as
float16 little-endian bytes of unit length. :func:`refresh_vectors` embeds the chunks that
lack a vector of the configured model (and replaces those of another model);
:func:`rank` (which calls it first on a writable store) ranks chunks by cosine similarity
to a query, brute force over the stored vectors (10k chunks of 256 dimensions are 5 MB:
a matrix-vector product, no index needed). Dropping every vector loses nothing the files
cannot give back.

A model is named by its content, not its path (a store holds no absolute paths): the
folder's name (or the model id) and a hash of its three files (:func:`model_identity`,
which loads nothing), so replacing the files in place re-embeds, the same model at
another path does not, and :func:`refresh_vectors` with nothing to embed never loads the
model.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentkeep.errors import Busy, InvalidInput

if TYPE_CHECKING:
    from agentkeep.config import Config
    from agentkeep.store import Store

__all__ = [
    "Embedder",
    "enabled",
    "fuse",
    "model_identity",
    "rank",
    "refresh_vectors",
]

SETTING = "semantic.model"
INSTALL_HINT = "install the semantic extra: pip install 'agentkeep[semantic]'"
MODEL_FILES = ("config.json", "model.safetensors", "tokenizer.json")
# Chunks embedded per write transaction by refresh_vectors: a batch of potion-base-8M
# vectors is 128 KiB and its transaction a few milliseconds.
REFRESH_BATCH = 256
# How much of a chunk's text is embedded: model2vec truncates to its max_length tokens
# anyway (512 by default); this bounds the tokenizer's work on a huge chunk.
MAX_TEXT_CHARS = 16_384
# Rows scored at a time by Embedder.similar (256 × 256 float32: 256 KiB, cache-sized).
SCORE_BLOCK = 256
# rank(chunk_ids=…) reads just those vectors up to this many ids (one IN list; SQLite
# allows 32,766 parameters), and every vector of the model, filtered here, beyond it.
MAX_LISTED_CHUNKS = 1000


def enabled(config: Config) -> bool:
    """Whether a model is configured (``semantic.model`` is not empty). Imports nothing."""
    return bool(str(config[SETTING]).strip())


# -- reciprocal rank fusion ----------------------------------------------------------------


def fuse(rankings: Sequence[Sequence[int]], *, k: int = 60) -> list[tuple[int, float]]:
    """Reciprocal rank fusion: each id scores ``sum(1 / (k + rank))`` over the rankings
    that hold it (``rank`` from 1; an id repeated within one ranking counts at its first,
    best, place), best first.

    Ties keep the order in which the ids first appear reading the rankings rank by rank
    (every ranking's first id in the order of ``rankings``, then every second id, …), so
    the same input always gives the same output. Each id's terms are added in one fixed
    order, so two ids holding the same ranks tie exactly. ``k`` (at least 0) damps the
    weight of the top places: 60 is the value of Cormack et al. and of the tools that fuse
    FTS5 with vectors.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise InvalidInput(f"fuse: k must be a whole number of at least 0, not {k!r}")
    ranks: dict[int, list[int]] = {}
    first_seen: dict[int, tuple[int, int]] = {}
    for which, ranking in enumerate(rankings):
        seen: set[int] = set()
        for position, item in enumerate(ranking, 1):
            if item in seen:
                continue
            seen.add(item)
            ranks.setdefault(item, []).append(position)
            place = (position, which)
            first_seen[item] = min(first_seen.get(item, place), place)
    scored = [(item, sum(1.0 / (k + r) for r in sorted(held))) for item, held in ranks.items()]
    scored.sort(key=lambda pair: (-pair[1], first_seen[pair[0]]))
    return scored


# -- the model ---------------------------------------------------------------------------


class Embedder:
    """A loaded static-embedding model (model2vec): texts in, unit vectors out.

    Made by :meth:`load`; holds numpy and model2vec, which are imported there."""

    def __init__(self, model: Any, model_id: str) -> None:
        self._model = model
        self.model_id = model_id
        self.dim = int(model.dim)

    @classmethod
    def load(cls, config: Config, *, root: Path | None = None) -> Embedder:
        """The model ``semantic.model`` names, loaded once per process (again when its
        files change). A relative folder is taken from ``root`` (the project's root; the
        working directory when None).

        Raises :class:`~agentkeep.errors.InvalidInput` with a hint when no model is
        configured, the extra is not installed, or the model cannot be loaded."""
        folder, model_id = model_identity(config, root=root)
        cached = _LOADED.get(model_id)
        if cached is not None:
            return cached
        embedder = cls(_load_model(folder), model_id)
        _LOADED.clear()  # one model per process: a changed setting or file replaces it
        _LOADED[model_id] = embedder
        return embedder

    def encode(self, texts: Sequence[str]) -> list[bytes]:
        """One vector per text, as float16 little-endian bytes of unit length (all zeros
        for a text with no word the model knows)."""
        if not texts:
            return []
        matrix = self._unit_rows(texts).astype("<f2")
        return [row.tobytes() for row in matrix]

    def similar(
        self, query: str, candidates: Sequence[tuple[int, bytes]], limit: int
    ) -> list[tuple[int, float]]:
        """The ``limit`` candidates most similar to ``query`` as ``(id, cosine)``, best
        first (ties in the candidates' order). Only candidates with a positive similarity
        are returned (0 is unrelated); a vector of another size (another model's) is
        skipped."""
        import numpy as np

        if limit <= 0 or not candidates:
            return []
        wanted = self.dim * 2
        kept: list[int] = []
        blobs: list[bytes] = []
        for item, blob in candidates:
            if len(blob) == wanted:
                kept.append(item)
                blobs.append(blob)
        if not kept:
            return []
        query_vector = self._unit_rows([query])[0]
        if not query_vector.any():
            return []
        matrix = np.frombuffer(b"".join(blobs), dtype="<f2").reshape(len(kept), self.dim)
        # numpy has no fast float16 product, so rows are widened to float32 a block at a
        # time into one small buffer that stays in the CPU's cache: widening all 10k × 256
        # at once took 2.7x as long (a fresh 10 MB array per query).
        scores = np.empty(len(kept), dtype=np.float32)
        block = np.empty((min(SCORE_BLOCK, len(kept)), self.dim), dtype=np.float32)
        for start in range(0, len(kept), SCORE_BLOCK):
            rows = matrix[start : start + SCORE_BLOCK]
            widened = block[: len(rows)]
            np.copyto(widened, rows)
            np.dot(widened, query_vector, out=scores[start : start + len(rows)])
        count = min(limit, len(kept))
        if count < len(kept):  # every candidate tied with the last place stays in the running
            last = np.partition(scores, len(kept) - count)[len(kept) - count]
            picked = np.flatnonzero(scores >= last)
        else:
            picked = np.arange(len(kept))
        order = picked[np.lexsort((picked, -scores[picked]))][:count]
        return [(kept[i], float(scores[i])) for i in order if scores[i] > 0]

    def _unit_rows(self, texts: Sequence[str]) -> Any:
        import numpy as np

        clipped = [text[:MAX_TEXT_CHARS] for text in texts]
        matrix = np.asarray(
            self._model.encode(clipped, show_progress_bar=False, use_multiprocessing=False),
            dtype=np.float32,
        ).reshape(len(clipped), self.dim)
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        return np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0)


_LOADED: dict[str, Embedder] = {}
_IDENTITIES: dict[tuple[Path, tuple[tuple[str, int, int], ...]], str] = {}


def model_identity(config: Config, *, root: Path | None = None) -> tuple[Path, str]:
    """The folder of the configured model and its :attr:`Embedder.model_id`, without
    loading it (a hash of its three files: ~20 ms for potion-base-8M's 30 MB, once per
    process while the files are unchanged). For a model id, the folder in huggingface_hub's
    cache (downloaded there the first time unless ``HF_HUB_OFFLINE=1``)."""
    name = str(config[SETTING]).strip()
    if not name:
        raise InvalidInput(
            "semantic ranking is off: no model is configured",
            hint="agentkeep config set semantic.model PATH (a model2vec model folder)",
        )
    folder = _local_folder(name, root)
    label = name
    if folder is None:
        folder = _hub_folder(name)
    else:
        label = folder.name
    missing = [f for f in MODEL_FILES if not (folder / f).is_file()]
    if missing:
        raise InvalidInput(
            f"semantic.model: {folder} is not a model2vec model (no {', '.join(missing)})",
            hint=f"a model2vec model is a folder holding {', '.join(MODEL_FILES)}",
        )
    key = (folder.resolve(), _files_signature(folder))
    digest = _IDENTITIES.get(key)
    if digest is None:
        hashed = hashlib.sha256()
        for name_ in MODEL_FILES:
            hashed.update(f"{name_}\0".encode())
            with open(folder / name_, "rb") as file:
                hashed.update(hashlib.file_digest(file, "sha256").digest())
        digest = _IDENTITIES[key] = hashed.hexdigest()[:16]
    return folder, f"{label}@{digest}"


def _local_folder(name: str, root: Path | None) -> Path | None:
    """The folder ``name`` names, or None for a model id (``org/name`` on the hub).

    A value is a path when it is absolute, starts with ``.`` or ``~``, or exists; a
    missing path is an error here, never a hub request."""
    expanded = Path(name).expanduser()
    base = root if root is not None else Path.cwd()
    path = expanded if expanded.is_absolute() else base / expanded
    looks_like_path = name.startswith((".", "~", os.sep)) or expanded.is_absolute()
    if path.exists():
        if not path.is_dir():
            raise InvalidInput(
                f"semantic.model {name!r} is a file; it must be a model folder",
                hint=f"point it at the folder holding {', '.join(MODEL_FILES)}",
            )
        return path
    if looks_like_path:
        raise InvalidInput(
            f"semantic.model: no model folder at {path}",
            hint=f"a model2vec model is a folder holding {', '.join(MODEL_FILES)}",
        )
    return None


def _hub_folder(name: str) -> Path:
    """The cached snapshot of model id ``name``: what is already downloaded first, else a
    download (which ``HF_HUB_OFFLINE=1`` refuses)."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError as exc:
        raise _not_installed(name) from exc
    try:
        try:
            return Path(
                snapshot_download(name, allow_patterns=list(MODEL_FILES), local_files_only=True)
            )
        except Exception:  # not in the cache (the hub's own error types)
            return Path(snapshot_download(name, allow_patterns=list(MODEL_FILES)))
    except Exception as exc:
        raise InvalidInput(
            f"semantic.model: cannot find model id {name!r}: {_first_line(exc)}",
            hint="download the model once (or point semantic.model at its folder); "
            "HF_HUB_OFFLINE=1 uses only what is already downloaded",
        ) from exc


def _files_signature(folder: Path) -> tuple[tuple[str, int, int], ...]:
    out = []
    for name in MODEL_FILES:
        info = (folder / name).stat()
        out.append((name, info.st_size, info.st_mtime_ns))
    return tuple(out)


def _not_installed(name: str) -> InvalidInput:
    return InvalidInput(
        f"semantic.model is set ({name!r}) but model2vec is not installed",
        hint=INSTALL_HINT + "; or clear the setting: agentkeep config set semantic.model ''",
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


def _load_model(folder: Path) -> Any:
    try:
        from model2vec import StaticModel
    except ImportError as exc:
        raise _not_installed(str(folder)) from exc
    try:
        return StaticModel.from_pretrained(folder, force_download=False)
    except Exception as exc:  # safetensors and tokenizers raise their own types
        raise InvalidInput(
            f"semantic.model: cannot load {folder}: {_first_line(exc)}",
            hint="check that the folder holds a model2vec model (config.json, "
            "model.safetensors, tokenizer.json)",
        ) from exc


# -- the store's vectors -----------------------------------------------------------------


# The chunks without a vector of a model (its id), after a chunk id.
_LACKING = (
    "SELECT c.id, c.heading, c.text FROM doc_chunks c "
    "LEFT JOIN doc_vectors v ON v.chunk_id = c.id AND v.model = ? "
    "WHERE v.chunk_id IS NULL AND c.id > ?"
)


def refresh_vectors(store: Store, *, batch: int = REFRESH_BATCH) -> int:
    """Embed the chunks that have no vector of the configured model (a vector of another
    model is replaced) and return how many were written. 0 when semantic ranking is off.

    Chunks are read and embedded outside any transaction, then written ``batch`` at a time
    in short write transactions, each keeping only the chunks that still exist (a chunk
    re-indexed meanwhile is embedded by the next refresh)."""
    if not enabled(store.config):
        return 0
    _, model_id = model_identity(store.config, root=store.root)
    with store.maintenance.snapshot() as read:
        # one vector per chunk, gone with its chunk: equal counts mean none lacks one
        # (3x cheaper than looking for a chunk without one, which reads every chunk's row)
        chunks = read.scalar("SELECT count(*) FROM doc_chunks")
        embedded = read.scalar("SELECT count(*) FROM doc_vectors WHERE model = ?", (model_id,))
    if embedded >= chunks:
        return 0  # all embedded: the model is not even loaded
    embedder = Embedder.load(store.config, root=store.root)
    written = 0
    after = 0
    while True:
        with store.maintenance.snapshot() as read:
            rows = read.rows(_LACKING + " ORDER BY c.id LIMIT ?", (embedder.model_id, after, batch))
        if not rows:
            return written
        after = int(rows[-1]["id"])
        # the heading path ("Auth › Tokens") names what a section is about
        vectors = embedder.encode([f"{row['heading']}\n{row['text']}" for row in rows])
        written += _write_vectors(
            store,
            embedder.model_id,
            [(int(row["id"]), v) for row, v in zip(rows, vectors, strict=True)],
        )


def _write_vectors(store: Store, model_id: str, vectors: Iterable[tuple[int, bytes]]) -> int:
    written = 0
    with store.transaction() as tx:
        for chunk_id, vector in vectors:
            # The vector is numbers, not text: it is bound as it is (the privacy boundary
            # checked the chunk's text when it was indexed, and the query is never stored).
            cursor = tx.conn.execute(
                "INSERT INTO doc_vectors (chunk_id, model, vector) "
                "SELECT id, ?, ? FROM doc_chunks WHERE id = ? "
                "ON CONFLICT (chunk_id) DO UPDATE SET model = excluded.model, "
                "vector = excluded.vector",
                (model_id, vector, chunk_id),
            )
            written += max(int(cursor.rowcount), 0)
    return written


def rank(
    store: Store, query: str, *, limit: int, chunk_ids: Iterable[int] | None = None
) -> list[tuple[int, float]]:
    """The chunks most similar to ``query`` as ``(chunk_id, cosine)``, best first, among
    ``chunk_ids`` when given. [] when semantic ranking is off.

    On a writable store the chunks lacking a vector are embedded first
    (:func:`refresh_vectors`), as document reads refresh the index first: fewer vectors
    read than chunks counted says some lack one (a vector is one per chunk and goes with
    its chunk, so the counts are equal exactly when none does). When another writer holds
    the lock past the busy timeout, the chunks that have a vector are ranked. Not to be
    called inside a write transaction."""
    if not enabled(store.config) or limit <= 0 or not query.strip():
        return []
    embedder = Embedder.load(store.config, root=store.root)
    wanted = None if chunk_ids is None else {int(c) for c in chunk_ids}
    if wanted is not None and not wanted:
        return []
    listed = sorted(wanted) if wanted is not None and len(wanted) <= MAX_LISTED_CHUNKS else None
    rows, chunks = _stored_vectors(store, embedder.model_id, listed)
    if len(rows) < chunks and store.writable:
        # supplementary: when busy, rank what is embedded; the next call embeds the rest
        with contextlib.suppress(Busy):
            refresh_vectors(store)
            rows, _ = _stored_vectors(store, embedder.model_id, listed)
    if wanted is not None and listed is None:
        rows = [row for row in rows if row[0] in wanted]
    return embedder.similar(query, rows, limit)


def _stored_vectors(
    store: Store, model_id: str, listed: list[int] | None
) -> tuple[list[tuple[int, bytes]], int]:
    """The ``(chunk_id, vector)`` of the model's vectors (of the ``listed`` chunks, or of
    all) and how many chunks there are (of those listed, or in all), in one snapshot."""
    with store.maintenance.snapshot() as read:
        if listed is None:
            rows = read.rows(
                "SELECT chunk_id, vector FROM doc_vectors WHERE model = ? ORDER BY chunk_id",
                (model_id,),
            )
            chunks = read.scalar("SELECT count(*) FROM doc_chunks")
        else:
            marks = ", ".join("?" for _ in listed)
            rows = read.rows(
                "SELECT chunk_id, vector FROM doc_vectors WHERE model = ? "
                f"AND chunk_id IN ({marks}) ORDER BY chunk_id",
                (model_id, *listed),
            )
            chunks = read.scalar(f"SELECT count(*) FROM doc_chunks WHERE id IN ({marks})", listed)
    # by position: by column name, 2k rows took 1.7 ms more per query (bench_semantic)
    return [(row[0], row[1]) for row in rows], chunks
