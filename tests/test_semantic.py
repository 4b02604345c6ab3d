"""Optional semantic ranking (agentkeep.semantic): a model2vec model built here, in a temp
dir, loads with no network; similar texts rank above unrelated ones; reciprocal rank
fusion keeps its properties; a store without ``semantic.model`` never imports the model's
libraries; a bad model is a clear error, never a traceback."""

from __future__ import annotations

import itertools
import json
import math
import os
import socket
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import agentkeep
from agentkeep import semantic
from agentkeep.config import Config
from agentkeep.errors import InvalidInput

from helpers.tinymodel import FILLER, TOPICS, build_tiny_model, topic_text, vocabulary

SRC = Path(__file__).resolve().parents[1] / "src"
HEAVY = ("numpy", "model2vec", "tokenizers", "safetensors", "huggingface_hub")


def config(model: str | Path) -> Config:
    return Config.load(overrides={"semantic.model": str(model)}, env={})


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny-model")


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """No network at all: every socket connection attempt is recorded and refused."""
    attempts: list[Any] = []

    def refuse(self: socket.socket, address: Any) -> None:
        attempts.append(address)
        raise OSError("network access in a test")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(semantic, "_LOADED", {})
    yield attempts


@pytest.fixture
def embedder(tiny_model: Path, offline: list[Any]) -> semantic.Embedder:
    return semantic.Embedder.load(config(tiny_model))


def unpack(vector: bytes) -> list[float]:
    return list(struct.unpack(f"<{len(vector) // 2}e", vector))


# -- the model built at test time --------------------------------------------------------


def test_the_tiny_model_loads_offline(tiny_model: Path, offline: list[Any]) -> None:
    assert sorted(p.name for p in tiny_model.iterdir()) == [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
    ]
    loaded = semantic.Embedder.load(config(tiny_model))
    assert loaded.dim == 16
    assert loaded.model_id.startswith("tiny-model@")
    assert offline == []  # not one connection was tried
    assert semantic.Embedder.load(config(tiny_model)) is loaded  # once per process


def test_vectors_are_unit_float16_little_endian(embedder: semantic.Embedder) -> None:
    texts = ["database schema migration", "PASTA and garlic", "zzz qqq", ""]
    vectors = embedder.encode(texts)
    assert [len(v) for v in vectors] == [embedder.dim * 2] * 4
    norms = [math.sqrt(sum(x * x for x in unpack(v))) for v in vectors]
    assert norms[0] == pytest.approx(1.0, abs=1e-3)
    assert norms[1] == pytest.approx(1.0, abs=1e-3)
    assert norms[2:] == [0.0, 0.0]  # no known word: no direction, not NaN
    assert embedder.encode([]) == []
    # the mean of the words' made-up vectors, normalised: "database" points along axis 0
    first = unpack(vectors[0])
    assert first[0] > 0.99 and max(abs(x) for x in first[1:5]) < 1e-3


def test_similar_texts_rank_above_unrelated_ones(embedder: semantic.Embedder) -> None:
    chunks = {
        topic_id * 100 + n: topic_text(topic, 12, seed=n)
        for topic_id, topic in enumerate(TOPICS)
        for n in range(5)
    }
    candidates = list(zip(chunks, embedder.encode(list(chunks.values())), strict=True))
    ranked = embedder.similar("how to write a database schema migration", candidates, 50)
    assert sorted(chunk for chunk, _ in ranked[:5]) == [0, 1, 2, 3, 4]  # database = topic 0
    assert all(score > 0.9 for _, score in ranked[:5])
    assert all(score < 0.2 for _, score in ranked[5:])  # unrelated: near zero or absent
    scores = [score for _, score in ranked]
    assert scores == sorted(scores, reverse=True)
    assert {c // 100 for c, _ in embedder.similar("oauth login token", candidates, 5)} == {1}
    assert len(embedder.similar("oauth login token", candidates, 3)) == 3


def test_similar_handles_the_edges(embedder: semantic.Embedder) -> None:
    one, two = embedder.encode(["sql table", "sql table"])
    assert embedder.similar("sql", [], 5) == []
    assert embedder.similar("sql", [(1, one)], 0) == []
    assert embedder.similar("zzz", [(1, one)], 5) == []  # a query the model cannot read
    # equal vectors tie, and ties keep the candidates' order
    assert [c for c, _ in embedder.similar("sql", [(7, two), (3, one)], 5)] == [7, 3]
    # a vector of another size (another model's) takes no part
    assert embedder.similar("sql", [(1, one + b"\0\0"), (2, two)], 5)[0][0] == 2
    # bytes from a database driver may come as memoryview
    assert embedder.similar("sql", [(5, memoryview(one))], 5)[0][0] == 5  # type: ignore[list-item]


# -- errors ------------------------------------------------------------------------------


def test_no_model_configured_is_off(offline: list[Any]) -> None:
    assert not semantic.enabled(config(""))
    assert not semantic.enabled(config("   "))
    assert semantic.enabled(config("./models/potion"))
    with pytest.raises(InvalidInput, match="no model is configured"):
        semantic.Embedder.load(config(""))


def test_a_missing_path_is_a_clear_error(tmp_path: Path, offline: list[Any]) -> None:
    with pytest.raises(InvalidInput, match="no model folder at") as caught:
        semantic.Embedder.load(config("./no-such-model"), root=tmp_path)
    assert str(tmp_path / "no-such-model") in caught.value.message
    assert caught.value.hint and "model.safetensors" in caught.value.hint
    with pytest.raises(InvalidInput, match="no model folder"):
        semantic.Embedder.load(config(tmp_path / "absent"))
    assert offline == []  # a path is never looked up on the hub


def test_a_folder_that_is_not_a_model_is_a_clear_error(
    tmp_path: Path, tiny_model: Path, offline: list[Any]
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InvalidInput, match=r"not a model2vec model \(no config.json"):
        semantic.Embedder.load(config(empty))
    afile = tmp_path / "model.bin"
    afile.write_bytes(b"x")
    with pytest.raises(InvalidInput, match="is a file"):
        semantic.Embedder.load(config(afile))
    broken = build_tiny_model(tmp_path / "broken")
    (broken / "model.safetensors").write_bytes(b"\x08\0\0\0\0\0\0\0not json")
    with pytest.raises(InvalidInput, match="cannot load") as caught:
        semantic.Embedder.load(config(broken))
    assert caught.value.hint and "model2vec model" in caught.value.hint


def test_a_relative_folder_is_taken_from_the_project_root(
    tmp_path: Path, tiny_model: Path, offline: list[Any]
) -> None:
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "mine").symlink_to(tiny_model)
    loaded = semantic.Embedder.load(config("models/mine"), root=tmp_path)
    assert loaded.model_id.startswith("mine@")
    # the same model under another name: the same content hash
    assert (
        loaded.model_id.split("@")[1]
        == semantic.Embedder.load(config(tiny_model)).model_id.split("@")[1]
    )


def test_changed_files_are_a_new_model(tmp_path: Path, offline: list[Any]) -> None:
    folder = build_tiny_model(tmp_path / "m")
    before = semantic.Embedder.load(config(folder)).model_id
    build_tiny_model(folder, dim=8)
    after = semantic.Embedder.load(config(folder))
    assert after.dim == 8 and after.model_id != before


def test_without_the_extra_the_error_says_how_to_install(
    tiny_model: Path, offline: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "model2vec", None)  # `import model2vec` fails
    with pytest.raises(InvalidInput, match="model2vec is not installed") as caught:
        semantic.Embedder.load(config(tiny_model))
    assert caught.value.hint and "agentkeep[semantic]" in caught.value.hint


# -- reciprocal rank fusion --------------------------------------------------------------

ids = st.integers(min_value=0, max_value=40)
rankings_st = st.lists(st.lists(ids, max_size=25), max_size=5)


def test_fuse_by_hand() -> None:
    fused = semantic.fuse([[1, 2, 3], [3, 1, 4]], k=0)
    assert fused == [(1, 1 + 1 / 2), (3, 1 / 3 + 1), (2, 1 / 2), (4, 1 / 3)]
    # 1 and 3 tie (ranks {1, 2} each): 1 appears first reading rank by rank
    assert semantic.fuse([]) == [] and semantic.fuse([[], []]) == []
    assert semantic.fuse([[5, 5, 6]], k=1) == [(5, 1 / 2), (6, 1 / 4)]  # repeats: first place
    for bad in (-1, 1.5, True):
        with pytest.raises(InvalidInput):
            semantic.fuse([[1]], k=bad)  # type: ignore[arg-type]


@given(rankings_st, st.integers(min_value=0, max_value=100))
def test_fuse_scores_every_id_once_best_first(rankings: list[list[int]], k: int) -> None:
    fused = semantic.fuse(rankings, k=k)
    assert sorted(item for item, _ in fused) == sorted({i for r in rankings for i in r})
    scores = [score for _, score in fused]
    assert scores == sorted(scores, reverse=True)
    for item, score in fused:
        expected = sum(1 / (k + r.index(item) + 1) for r in rankings if item in r)
        assert score == pytest.approx(expected)


@given(st.lists(ids, unique=True, max_size=30), st.integers(min_value=0, max_value=100))
def test_fuse_keeps_a_single_ranking(ranking: list[int], k: int) -> None:
    assert [item for item, _ in semantic.fuse([ranking], k=k)] == ranking
    assert [item for item, _ in semantic.fuse([ranking, ranking], k=k)] == ranking


@given(rankings_st, st.permutations(range(5)))
def test_fuse_does_not_depend_on_the_order_of_the_rankings_but_for_ties(
    rankings: list[list[int]], order: list[int]
) -> None:
    shuffled = [rankings[i] for i in order if i < len(rankings)]
    assert dict(semantic.fuse(shuffled)) == dict(semantic.fuse(rankings))  # exactly equal


@given(rankings_st)
def test_fuse_ties_follow_first_appearance_rank_by_rank(rankings: list[list[int]]) -> None:
    fused = semantic.fuse(rankings)
    first: dict[int, tuple[int, int]] = {}
    for which, ranking in enumerate(rankings):
        for position, item in enumerate(ranking):
            first.setdefault(item, (position, which))
            first[item] = min(first[item], (position, which))
    for (a, score_a), (b, score_b) in itertools.pairwise(fused):
        if score_a == score_b:
            assert first[a] < first[b]


@given(rankings_st, ids)
def test_an_id_first_in_every_ranking_is_first(rankings: list[list[int]], item: int) -> None:
    ranked = [[item, *(i for i in r if i != item)] for r in rankings]
    fused = semantic.fuse(ranked)
    if fused:
        assert fused[0][0] == item


# -- nothing loads unless configured -----------------------------------------------------

IMPORTED = (
    "import sys; from agentkeep.__main__ import main; code = main(sys.argv[1:]); "
    f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r}), file=sys.stderr); "
    "sys.exit(code)"
)


def run_imported(
    code: str, args: list[str], cwd: Path, env: dict[str, str] | None = None
) -> tuple[int, list[str], str]:
    environ = {**os.environ, "PYTHONPATH": str(SRC), "HF_HUB_OFFLINE": "1", **(env or {})}
    done = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=cwd, env=environ, capture_output=True, text=True
    )
    *rest, last = done.stderr.rstrip("\n").split("\n")
    return done.returncode, json.loads(last.replace("'", '"')), done.stdout + "\n".join(rest)


def _commands() -> list[list[str]]:
    from agentkeep.cli.main import COMMANDS

    out = [["search", "database migration", "--json"], ["search", "--help"]]
    if "context" in COMMANDS:  # the spec context command (issue 13) ranks semantically
        out += [["context", "--help"], ["context", "--query", "database", "--json"]]
    return out


@pytest.mark.parametrize("args", _commands(), ids=" ".join)
def test_without_a_model_no_command_imports_the_model_libraries(
    project: Path, args: list[str]
) -> None:
    code, imported, output = run_imported(IMPORTED, args, project)
    assert code == 0, output
    assert imported == []


def test_the_import_check_sees_a_loaded_model(project: Path, tiny_model: Path) -> None:
    """The check above can fail: with the setting, loading the model imports them."""
    load = (
        "import sys; from agentkeep import semantic; import agentkeep; "
        "store = agentkeep.open(); semantic.Embedder.load(store.config, root=store.root); "
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r}), "
        "file=sys.stderr)"
    )
    code, imported, output = run_imported(
        load, [], project, env={"AGENTKEEP_SEMANTIC_MODEL": str(tiny_model)}
    )
    assert code == 0, output
    assert {"numpy", "model2vec", "tokenizers", "safetensors"} <= set(imported)


def test_the_vocabulary_helper_is_what_the_model_holds(tiny_model: Path) -> None:
    vocab = json.loads((tiny_model / "tokenizer.json").read_text())["model"]["vocab"]
    assert list(vocab) == vocabulary()
    assert set(FILLER) <= set(vocab)


def test_a_model_id_not_downloaded_is_a_clear_error_offline(
    tmp_path: Path, offline: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InvalidInput, match="cannot find model id 'someone/no-such-model'") as e:
        semantic.Embedder.load(config("someone/no-such-model"))
    assert e.value.hint and "HF_HUB_OFFLINE" in e.value.hint


# -- the store's vectors (both backends) -------------------------------------------------

DOCS = {
    "notes/db": "# Database\n\n{database}\n\n## Migrations\n\n{database2}\n",
    "notes/auth": "# Login\n\n{auth}\n",
    "notes/kitchen": "# Dinner\n\n{cooking}\n\n## Sauce\n\n{cooking2}\n",
}


def write_docs(store: agentkeep.Store) -> None:
    for ref, template in DOCS.items():
        texts = {
            f"{topic}{n}": topic_text(topic, 15, seed=n) for topic in TOPICS for n in ("", "2")
        }
        store.docs.write_doc(ref, body=template.format(**texts))


def chunk_docs(store: agentkeep.Store) -> dict[int, str]:
    """chunk id -> the ref of its document"""
    with store.maintenance.snapshot() as read:
        rows = read.rows(
            "SELECT c.id, d.namespace, d.name FROM doc_chunks c JOIN docs d ON d.id = c.doc_id"
        )
    return {int(r["id"]): f"{r['namespace']}/{r['name']}" for r in rows}


def vectors(store: agentkeep.Store) -> dict[int, tuple[str, bytes]]:
    with store.maintenance.snapshot() as read:
        rows = read.rows("SELECT chunk_id, model, vector FROM doc_vectors")
    return {int(r["chunk_id"]): (r["model"], bytes(r["vector"])) for r in rows}


@pytest.fixture
def semantic_store(
    store: agentkeep.Store, project: Path, tiny_model: Path, offline: list[Any]
) -> Iterator[agentkeep.Store]:
    """The project's store opened with the tiny model configured."""
    with agentkeep.open(project, config={"semantic.model": str(tiny_model)}) as opened:
        yield opened


def test_refresh_embeds_each_chunk_once_and_rank_finds_by_meaning(
    semantic_store: agentkeep.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = semantic_store
    write_docs(store)
    chunks = chunk_docs(store)
    assert len(chunks) == 5
    assert semantic.refresh_vectors(store, batch=2) == 5  # three transactions
    stored = vectors(store)
    model_id = semantic.Embedder.load(store.config, root=store.root).model_id
    assert set(stored) == set(chunks)
    assert {model for model, _ in stored.values()} == {model_id}
    assert {len(v) for _, v in stored.values()} == {16 * 2}

    # nothing lacks a vector: the model is not even loaded
    def no_load(folder: Path) -> Any:
        raise AssertionError("loaded the model with nothing to embed")

    loaded = semantic._LOADED
    monkeypatch.setattr(semantic, "_load_model", no_load)
    monkeypatch.setattr(semantic, "_LOADED", {})
    assert semantic.refresh_vectors(store) == 0
    monkeypatch.setattr(semantic, "_LOADED", loaded)

    ranked = semantic.rank(store, "a schema migration for the sql database", limit=10)
    assert [chunks[c] for c, _ in ranked[:2]] == ["notes/db", "notes/db"]
    assert all(chunks[c] != "notes/db" for c, _ in ranked[2:])
    cooking = [c for c, ref in chunks.items() if ref == "notes/kitchen"]
    assert {c for c, _ in semantic.rank(store, "garlic pasta", limit=2)} == set(cooking)
    # among given chunks only
    only = semantic.rank(store, "database", limit=10, chunk_ids=cooking)
    assert {c for c, _ in only} <= set(cooking)
    assert semantic.rank(store, "database", limit=10, chunk_ids=[]) == []
    assert semantic.rank(store, "database", limit=0) == []
    assert semantic.rank(store, "   ", limit=5) == []


def test_an_edited_document_is_embedded_again(semantic_store: agentkeep.Store) -> None:
    store = semantic_store
    write_docs(store)
    semantic.refresh_vectors(store)
    store.docs.write_doc("notes/auth", body="# Music\n\n" + topic_text("music", 20))
    # its old chunk (and vector) is gone; the new chunk lacks one
    assert len(vectors(store)) == 4
    assert semantic.refresh_vectors(store) == 1
    chunks = chunk_docs(store)
    top = semantic.rank(store, "guitar chord melody", limit=1)
    assert [chunks[c] for c, _ in top] == ["notes/auth"]


def test_another_model_replaces_every_vector(
    semantic_store: agentkeep.Store, project: Path, tmp_path: Path
) -> None:
    write_docs(semantic_store)
    assert semantic.refresh_vectors(semantic_store) == 5
    other = build_tiny_model(tmp_path / "other", dim=8)
    with agentkeep.open(project, config={"semantic.model": str(other)}) as store:
        assert semantic.refresh_vectors(store) == 5
        stored = vectors(store)
        model_id = semantic.model_identity(store.config, root=store.root)[1]
        assert model_id.startswith("other@")
        assert {(m, len(v)) for m, v in stored.values()} == {(model_id, 8 * 2)}
        assert semantic.rank(store, "oauth token", limit=1) != []


def test_a_chunk_gone_before_its_vector_is_written_is_skipped(
    semantic_store: agentkeep.Store,
) -> None:
    write_docs(semantic_store)
    missing = max(chunk_docs(semantic_store)) + 1000
    assert semantic._write_vectors(semantic_store, "m@1", [(missing, b"\0\0" * 16)]) == 0
    assert vectors(semantic_store) == {}


def test_without_a_model_the_store_functions_do_nothing(store: agentkeep.Store) -> None:
    write_docs(store)
    assert not semantic.enabled(store.config)
    assert semantic.refresh_vectors(store) == 0
    assert semantic.rank(store, "database", limit=5) == []
    assert vectors(store) == {}


def test_rank_embeds_what_is_missing_first_on_a_writable_store(
    store: agentkeep.Store, project: Path, tiny_model: Path, offline: list[Any]
) -> None:
    write_docs(store)
    model = {"semantic.model": str(tiny_model)}
    with agentkeep.open(project, read_only=True, config=model) as reader:
        assert semantic.rank(reader, "sql schema", limit=3) == []  # cannot embed: nothing
    with agentkeep.open(project, config=model) as writer:
        found = semantic.rank(writer, "sql schema", limit=3)
        assert len(vectors(writer)) == 5
        assert [chunk_docs(writer)[c] for c, _ in found] == ["notes/db", "notes/db"]
    with agentkeep.open(project, read_only=True, config=model) as reader:
        assert semantic.rank(reader, "sql schema", limit=3) == found


def test_rank_while_another_writer_holds_the_lock_ranks_what_is_embedded(
    store: agentkeep.Store, project: Path, tiny_model: Path, offline: list[Any]
) -> None:
    write_docs(store)
    model = {"semantic.model": str(tiny_model), "store.busy_timeout_ms": 50}
    with agentkeep.open(project, config=model) as writer:
        semantic.refresh_vectors(writer)
        store.docs.write_doc("notes/more", body="# Pasta\n\n" + topic_text("cooking", 10))
        with store.transaction():  # another writer holds the lock
            found = semantic.rank(writer, "sql schema", limit=10)
        assert len(found) == 2 and len(vectors(writer)) == 5  # the new chunk waits
        assert semantic.rank(writer, "sql schema", limit=10)[:2] == found
        assert len(vectors(writer)) == 6


def test_context_finds_by_meaning_what_full_text_cannot(
    project: Path, tiny_model: Path, offline: list[Any]
) -> None:
    """End to end through `agentkeep context`: no word of the query is in the document,
    so full text finds nothing; with the model configured, the document about the same
    topic comes first, with the reason."""
    with agentkeep.open(project) as store:
        store.docs.write_doc("notes/db", body="# Storage\n\nschema migration table index\n")
        store.docs.write_doc("notes/food", body="# Dinner\n\npasta garlic tomato\n")
    args = ["context", "--query", "sqlite transaction", "--json"]
    code, imported, output = run_imported(IMPORTED, args, project)
    assert (code, output.strip(), imported) == (0, "[]", [])
    code, imported, output = run_imported(
        IMPORTED, args, project, env={"AGENTKEEP_SEMANTIC_MODEL": str(tiny_model)}
    )
    assert code == 0, output
    found = json.loads(output)
    assert found[0]["ref"] == "notes/db"
    assert "semantically close to the query" in found[0]["reasons"]
    assert "model2vec" in imported


@pytest.mark.parametrize("model", ["./no-such-model", "empty-folder"])
def test_a_bad_model_is_a_clear_error_of_the_command(project: Path, model: str) -> None:
    """`agentkeep context` with a configured model it cannot load: exit 3, the reason and
    a hint as JSON on stderr, no traceback, not a silent fall back to full text."""
    (project / "empty-folder").mkdir()
    with agentkeep.open(project) as store:
        store.docs.write_doc("notes/db", body="# Storage\n\nschema migration\n")
    done = subprocess.run(
        [sys.executable, "-m", "agentkeep", "context", "--query", "schema", "--json"],
        cwd=project,
        env={**os.environ, "AGENTKEEP_SEMANTIC_MODEL": model, "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 3, done.stderr
    error = json.loads(done.stderr)
    assert error["code"] == "invalid_input"
    assert ("no model folder at" if model.startswith(".") else "not a model2vec model") in (
        error["error"]
    )
    assert "model.safetensors" in error["hint"]
    assert done.stdout == ""
