"""``lc.scale.embed_to_milvus``: Ray Data in, Milvus out, equal to ``embed_corpus``, resumable.

Everything is real: a local Ray (2 CPUs, no dashboard) shared by the module, the tiny random BERT
of ``conftest.py``, Milvus Lite files, and, for the tests marked ``server``, the Milvus 2.3.5
server that ``scripts/test_server.sh`` starts (``LC_MILVUS_SERVER_URI``). Each ``embed_to_milvus``
call starts its actors afresh (a model load each), about 10 s here, so the corpora are tiny and
the calls few.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lc_utils as lc
from lc_utils import store

ROOT = Path(__file__).resolve().parents[1]
SERVER_URI = os.environ.get("LC_MILVUS_SERVER_URI", "")
needs_server = pytest.mark.skipif(
    not SERVER_URI,
    reason="needs a real Milvus server: run `bash scripts/test_server.sh -- "
    "tests/test_scale.py` (Milvus 2.3.5 on loopback), or set LC_MILVUS_SERVER_URI",
)
CHUNKING = {"strategy": "fixed", "chunk_options": {"chunk_size": 32}}
FIELDS = ["doc_id", "chunk_index", "start", "end", "text", "vector"]


@pytest.fixture(scope="module")
def ray_session():
    ray = pytest.importorskip("ray")
    # A short private folder: Ray's socket paths must stay under ~100 characters.
    temp_dir = tempfile.mkdtemp(prefix="lcray", dir="/tmp")
    started = lc.scale.start_ray(num_cpus=2, object_store_memory=300 * 2**20, temp_dir=temp_dir)
    yield ray
    if started:
        ray.shutdown()


@pytest.fixture(scope="module")
def documents():
    """Eleven documents of a few hundred tokens, one with unicode, and one empty text."""
    topics = lc.datasets.load_pydoc_topics(limit=10)
    docs = {doc_id: text[:2500] for doc_id, text in topics.items()}
    docs["unicode"] = "Ünïcödé text — with dashes… and 漢字. " * 20
    docs["blank"] = "  \n "
    return docs


def stored_rows(client, collection, method, model_name):
    client.load_collection(collection)
    expression = f'method == "{method}" and model == {json.dumps(model_name)}'
    rows = client.query(collection, filter=expression, output_fields=FIELDS, limit=16384)
    return {(r["doc_id"], r["chunk_index"]): r for r in rows}


def assert_equal_to_embed_corpus(rows, expected):
    assert len(rows) == len(expected.records)
    worst = 0.0
    for record, vector in zip(expected.records, expected.vectors, strict=True):
        row = rows[(record["doc_id"], record["chunk_index"])]
        assert (row["start"], row["end"], row["text"]) == (
            record["start"],
            record["end"],
            record["text"],
        )
        worst = max(worst, float(np.abs(np.asarray(row["vector"], np.float32) - vector).max()))
    assert worst <= 1e-5, f"vectors differ from embed_corpus by up to {worst}"


def reference(model, documents, method):
    texts = {d: t for d, t in documents.items() if t.strip()}
    return lc.embed_corpus(model, texts, method=method, progress=False, **CHUNKING)


@pytest.mark.slow  # starts Ray (tens of seconds on 2 cores)
@pytest.mark.parametrize("method", ["late", "naive"])
def test_rows_and_vectors_equal_embed_corpus_on_lite(
    ray_session, tiny_model, tiny_model_dir, documents, tmp_path, method
):
    uri = str(tmp_path / "lite.db")
    # Batches of 3 documents split the corpus differently from embed_corpus's 32: the vectors
    # must not depend on which documents share a forward batch.
    stats = lc.scale.embed_to_milvus(
        documents, str(tiny_model_dir), uri=uri, method=method, documents_per_batch=3,
        progress=False, **CHUNKING,
    )  # fmt: skip
    expected = reference(tiny_model, documents, method)
    assert stats.documents == len(documents)
    assert stats.empty == 1 and stats.embedded == len(documents) - 1
    assert stats.chunks == len(expected.records) and stats.writers == "driver"
    assert stats.tokens > 0 and stats.rate("tokens") > 0
    client = store.connect(uri)
    try:
        assert_equal_to_embed_corpus(
            stored_rows(client, "chunks", method, tiny_model.name), expected
        )
    finally:
        store.close(client)
    if method == "late":
        # A finished job run again embeds nothing and writes nothing.
        again = lc.scale.embed_to_milvus(
            documents, str(tiny_model_dir), uri=uri, method=method, progress=False, **CHUNKING
        )
        assert (again.embedded, again.chunks) == (0, 0)
        assert again.already_stored == len(documents) - 1 and again.empty == 1
        client = store.connect(uri)
        try:
            assert store.count_chunks(client, "chunks") == len(expected.records)
        finally:
            store.close(client)


@pytest.mark.parametrize("method", ["late", "naive"])
@pytest.mark.parametrize(
    "chunking, window",
    [(CHUNKING, None), ({"strategy": "sentences"}, None), ({"strategy": "sentences"}, 48)],
    ids=["fixed-32", "sentences", "sentences-window-48"],
)
def test_the_actor_step_never_tokenizes_and_equals_embed_corpus(
    tiny_model, tiny_model_dir, documents, monkeypatch, method, chunking, window
):
    """The chunking task and the actor of one job, in this process (no Ray): the actor embeds
    what the task prepared without one call to the tokenizer, and its rows equal
    ``embed_corpus``'s, over batches of 4 documents (one empty, one already stored)."""
    from lc_utils.corpus import windowing
    from lc_utils.late.prepare import Preparer
    from lc_utils.scale import steps
    from lc_utils.scale.resume import fingerprint, stored_text
    from lc_utils.text import tokens
    from lc_utils.text.strategies import chunking_label

    label = chunking_label(chunking["strategy"], **chunking.get("chunk_options", {}))
    positions, shared = windowing(tiny_model, method, window)
    target = {
        "uri": "unused", "token": None, "collection": "chunks", "method": method,
        "model": tiny_model.name, "writers": "driver", "chunking": label, "window": positions,
        "overlap": shared,
    }  # fmt: skip
    texts = {d: t for d, t in documents.items() if t.strip()}
    expected = lc.embed_corpus(
        tiny_model, texts, method=method, window=window, progress=False, **chunking
    )
    # One document counts as stored already: its exact layout is "in Milvus".
    stored_id = expected.records[0]["doc_id"]
    layout = fingerprint(
        (r["chunk_index"], r["start"], r["end"], stored_text(r["text"]), positions, shared)
        for r in expected.records
        if r["doc_id"] == stored_id
    )
    monkeypatch.setattr(steps, "stored_layouts", lambda ids, stored, target: {stored_id: layout})
    preparer = Preparer(
        tiny_model.tokenizer, tiny_model.document_prefix, chunking["strategy"],
        dict(chunking.get("chunk_options", {})), method, tiny_model.tokenizer.unk_token_id,
    )  # fmt: skip
    settings = {"method": method, "window": window, "overlap": None, "batch_tokens": None}
    embedder = steps.Embedder(str(tiny_model_dir), {"device": "cpu"}, settings, target, None)

    calls = []
    encode = tokens._encode

    def counted(tokenizer, texts):
        calls.append(len(texts))
        return encode(tokenizer, texts)

    ids = list(documents)
    records, vectors, counts = [], [], {"tokens": 0, "tokenless": 0, "stored": 0}
    for start in range(0, len(ids), 4):
        batch = {
            "doc_id": np.array(ids[start : start + 4], dtype=object),
            "text": np.array([documents[d] for d in ids[start : start + 4]], dtype=object),
        }
        chunked = steps.chunk_batch(batch, preparer=preparer, stored=None, target=target)
        monkeypatch.setattr(tokens, "_encode", counted)
        out = embedder(chunked)
        monkeypatch.setattr(tokens, "_encode", encode)
        for i, status in enumerate(out["status"]):
            counts["stored"] += status == "stored"
            if status == "embed":
                counts["tokens"] += int(out["tokens"][i])
                counts["tokenless"] += int(out["tokenless"][i])
            if out["rows"][i] is not None:
                records.extend(out["rows"][i]["records"])
                vectors.append(np.frombuffer(out["rows"][i]["vectors"], dtype=np.float32))
    assert calls == [], f"the actor step tokenized {sum(calls)} text(s) in {len(calls)} call(s)"
    want = [(i, r) for i, r in enumerate(expected.records) if r["doc_id"] != stored_id]
    assert records == [r for _, r in want]
    matrix = np.concatenate(vectors).reshape(len(records), -1)
    reference_vectors = expected.vectors[[i for i, _ in want]]
    cosine = (matrix * reference_vectors).sum(axis=1) / (
        np.linalg.norm(matrix, axis=1) * np.linalg.norm(reference_vectors, axis=1)
    )
    assert cosine.min() >= 0.99999 and np.abs(matrix - reference_vectors).max() <= 1e-5
    assert counts["stored"] == 1
    assert counts["tokenless"] == sum(1 for s in expected.skipped if s[0] != stored_id)
    assert counts["tokens"] == sum(
        len(d) for doc_id, d in zip(texts, tokens.tokenize_documents(
            tiny_model.tokenizer, list(texts.values()), tiny_model.document_prefix
        ), strict=True) if doc_id != stored_id
    )  # fmt: skip


@pytest.mark.parametrize("method", ["late", "naive"])
def test_embed_prepared_of_a_regrouped_subset_is_embed_corpus_of_that_subset(
    tiny_model, documents, method
):
    """What the actors run: documents prepared in one group, a subset of them rebuilt with
    ``regroup`` and embedded with ``embed_prepared``, equal bitwise to ``embed_corpus`` of that
    subset in one group. A group packed for the other method is refused, saying so."""
    from lc_utils.corpus import corpus_preparer, embed_prepared

    texts = {d: t for d, t in documents.items() if t.strip()}
    preparer = corpus_preparer(tiny_model, method, **CHUNKING)
    prepared = preparer([(d, t, None) for d, t in texts.items()])
    keep = [i for i in range(len(prepared.documents)) if i % 3 != 1]
    subset = [prepared.documents[i] for i in keep]
    bounds = np.r_[0, np.cumsum([len(d.spans) for d in prepared.documents])]
    pieces = prepared.naive_chunk_ids()  # none for late chunking
    chunk_ids = [pieces[k] for i in keep for k in range(bounds[i], bounds[i + 1]) if pieces]
    group = preparer.regroup(
        subset,
        np.concatenate([np.zeros(0, np.int32), *chunk_ids]),
        np.array([len(ids) for ids in chunk_ids], dtype=np.int64),
    )
    pairs = [(d.doc_id, texts[d.doc_id]) for d in subset]
    got = embed_prepared(tiny_model, pairs, group, method=method, chunking="fixed-32")
    want = lc.embed_corpus(
        tiny_model, dict(pairs), method=method, progress=False, workers=0, **CHUNKING
    )
    assert got.records == want.records and got.doc_ids == want.doc_ids
    # The records come from the worker that prepared a group, or, for a regrouped one, from
    # the texts on the model's side: the same either way.
    assert group.records is None and prepared.records is not None
    assert np.array_equal(got.vectors, want.vectors)
    assert (got.chunking, got.window, got.overlap) == (want.chunking, want.window, want.overlap)
    other = "naive" if method == "late" else "late"
    with pytest.raises(ValueError, match=f"holds no {other} batches"):
        embed_prepared(tiny_model, pairs, group, method=other)


@pytest.mark.slow  # starts Ray (tens of seconds on 2 cores)
def test_a_rerun_replaces_changed_words_and_removes_emptied_documents(
    ray_session, tiny_model, tiny_model_dir, tmp_path
):
    uri = str(tmp_path / "lite.db")
    first = {
        "d0": "The cat sat on the mat. It was warm there.",
        "d1": "Another document stays as it is. Nothing changes here.",
        "d2": "This one will be emptied. Its rows must go.",
    }
    # The same spans with other words: before the fix the rows kept "cat" and "mat".
    second = {**first, "d0": "The dog sat on the rug. It was cold there.", "d2": "   "}
    for version in (first, second):
        lc.scale.embed_to_milvus(
            version, str(tiny_model_dir), uri=uri, method="late", documents_per_batch=2,
            progress=False, **CHUNKING,
        )  # fmt: skip
    expected = reference(tiny_model, second, "late")
    client = store.connect(uri)
    try:
        rows = stored_rows(client, "chunks", "late", tiny_model.name)
        assert {doc_id for doc_id, _ in rows} == {"d0", "d1"}
        assert_equal_to_embed_corpus(rows, expected)
    finally:
        store.close(client)


@pytest.mark.slow  # starts Ray (tens of seconds on 2 cores)
def test_reads_json_lines_parquet_and_a_beir_folder(ray_session, tmp_path):
    import pandas as pd

    rows = [{"doc_id": "a", "text": "first"}, {"doc_id": "b", "text": "second"}]
    (tmp_path / "docs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    pd.DataFrame({"id": [7, 8], "text": ["x", None]}).to_parquet(tmp_path / "docs.parquet")
    beir = tmp_path / "beir"
    beir.mkdir()
    (beir / "corpus.jsonl").write_text(
        json.dumps({"_id": "d1", "title": "Title", "text": "Body."})
        + "\n"
        + json.dumps({"_id": "d2", "title": "", "text": "No title."})
        + "\n"
    )

    def read(source):
        taken = lc.scale.read_documents(source).take_all()
        return {r["doc_id"]: r["text"] for r in taken}

    assert read(tmp_path / "docs.jsonl") == {"a": "first", "b": "second"}
    assert read(str(tmp_path / "docs.parquet")) == {"7": "x", "8": ""}
    # As lc.datasets.load_beir(...).documents holds them: title, blank line, text.
    assert read(beir) == {"d1": "Title\n\nBody.", "d2": "No title."}
    with pytest.raises(ValueError, match="id column"):
        lc.scale.read_documents({"a": "b"}, id_column="nope")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        lc.scale.read_documents(tmp_path / "missing.jsonl")


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (
            ['{"doc_id": "a", "text": "ok"}', '{"doc_id": "b", "text": 42}'],
            r":2: document 'b' has a int text \(42\)",
        ),
        (['{"doc_id": "a", "text": ["x", "y"]}'], r":1: document 'a' has a list text"),
        (['{"doc_id": "a", "title": 3, "text": "x"}'], r":1: document 'a' has a int title"),
        (['{"doc_id": "a", "text": "ok"}', '{"text": "no id"}'], r":2 has no document id"),
        (
            ['{"doc_id": "a", "text": "ok"}', "", '{"doc_id": "b", "text": '],
            r":3 is not valid JSON",
        ),
        (['["a", "b"]'], r":1 holds a list, not an object"),
        ([], r"no documents"),
    ],
)
def test_a_bad_json_lines_file_is_refused_before_ray_starts_naming_file_and_line(
    tmp_path, lines, message
):
    path = tmp_path / "docs.jsonl"
    path.write_text("".join(line + "\n" for line in lines))
    with pytest.raises((TypeError, ValueError), match=message) as caught:
        lc.scale.read_documents(path)
    assert str(path) in str(caught.value)


@pytest.mark.slow  # starts Ray (tens of seconds on 2 cores)
def test_a_repeated_document_id_is_refused_before_any_work(ray_session, tiny_model_dir, tmp_path):
    path = tmp_path / "docs.jsonl"
    lines = [{"doc_id": f"d{i}", "text": "some text"} for i in range(50)]
    lines.append({"doc_id": "d17", "text": "the same id again"})
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    uri = str(tmp_path / "lite.db")
    with pytest.raises(lc.scale.DuplicateDocumentError, match="'d17'"):
        lc.scale.embed_to_milvus(path, str(tiny_model_dir), uri=uri, progress=False)
    client = store.connect(uri)
    try:
        assert not client.has_collection("chunks"), "a collection was created before the check"
    finally:
        store.close(client)


def test_an_unreachable_milvus_fails_within_seconds_before_ray_or_the_model(tiny_model_dir):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens here once the socket closes
    started = time.perf_counter()
    with pytest.raises(store.MilvusConnectionError, match=str(port)):
        lc.scale.embed_to_milvus(
            {"a": "text"}, str(tiny_model_dir), uri=f"http://127.0.0.1:{port}",
            connect_timeout=3, progress=False,
        )  # fmt: skip
    assert time.perf_counter() - started < 15


def test_milvus_lite_refuses_parallel_writers(tiny_model_dir, tmp_path):
    with pytest.raises(ValueError, match="one process per database file"):
        lc.scale.embed_to_milvus(
            {"a": "text"}, str(tiny_model_dir), uri=str(tmp_path / "lite.db"), writers="actors",
            progress=False,
        )  # fmt: skip


def test_bad_options_name_the_argument(tiny_model_dir, tmp_path):
    uri = str(tmp_path / "lite.db")
    with pytest.raises(ValueError, match="method="):
        lc.scale.embed_to_milvus({"a": "x"}, str(tiny_model_dir), uri=uri, method="early")
    with pytest.raises(ValueError, match="documents_per_batch="):
        lc.scale.embed_to_milvus({"a": "x"}, str(tiny_model_dir), uri=uri, documents_per_batch=0)


# ----------------------------------------------------------------------------- real server


def _server_collection(name):
    client = store.connect(SERVER_URI)
    if client.has_collection(name):
        client.drop_collection(name)
    return client


@pytest.mark.server
@needs_server
@pytest.mark.usefixtures("ray_session")
def test_server_parallel_writers_equal_embed_corpus_and_a_rerun_changes_nothing(
    tiny_model, tiny_model_dir, documents
):
    collection = "scale_parallel"
    client = _server_collection(collection)
    try:
        stats = lc.scale.embed_to_milvus(
            documents, str(tiny_model_dir), uri=SERVER_URI, collection=collection, actors=2,
            documents_per_batch=2, progress=False, **CHUNKING,
        )  # fmt: skip
        assert stats.writers == "actors" and stats.actors == 2
        expected = reference(tiny_model, documents, "late")
        assert_equal_to_embed_corpus(
            stored_rows(client, collection, "late", tiny_model.name), expected
        )
        again = lc.scale.embed_to_milvus(
            documents, str(tiny_model_dir), uri=SERVER_URI, collection=collection, actors=2,
            progress=False, **CHUNKING,
        )  # fmt: skip
        assert (again.embedded, again.chunks, again.already_stored) == (0, 0, stats.embedded)
        assert store.count_chunks(client, collection) == len(expected.records)
    finally:
        store.close(client)


_KILLED_RUN = """
import os, sys
import psutil
import lc_utils as lc

def stop(stats):
    # Kill the whole job, Ray included, as soon as the first documents are written.
    if stats.embedded >= 1:
        for child in psutil.Process().children(recursive=True):
            child.kill()
        os._exit(3)

lc.scale.embed_to_milvus(
    sys.argv[1], sys.argv[2], uri=sys.argv[3], collection=sys.argv[4], actors=2,
    documents_per_batch=1, strategy="fixed", chunk_options={"chunk_size": 32},
    num_cpus=2, object_store_memory=200 * 2**20, on_progress=stop, progress=False,
)
sys.exit(0)
"""


@pytest.mark.server
@needs_server
@pytest.mark.usefixtures("ray_session")
def test_server_a_run_killed_halfway_resumes_to_every_chunk_exactly_once(
    tiny_model, tiny_model_dir, tmp_path
):
    collection = "scale_killed"
    client = _server_collection(collection)
    # Many short documents, so that most are still unwritten when the first one is reported.
    topics = lc.datasets.load_pydoc_topics(limit=40)
    documents = {doc_id: text[:400] for doc_id, text in topics.items()}
    path = tmp_path / "docs.jsonl"
    path.write_text(
        "".join(json.dumps({"doc_id": d, "text": t}) + "\n" for d, t in documents.items())
    )
    expected = reference(tiny_model, documents, "late")
    try:
        environment = {**os.environ, "RAY_TMPDIR": tempfile.mkdtemp(prefix="lcray", dir="/tmp")}
        environment.pop("RAY_ADDRESS", None)
        killed = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(_KILLED_RUN), str(path), str(tiny_model_dir),
             SERVER_URI, collection],
            cwd=ROOT, env=environment, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert killed.returncode == 3, killed.stderr[-3000:]
        partial = store.count_chunks(client, collection)
        assert 0 < partial < len(expected.records), "the run was not interrupted halfway"
        resumed = lc.scale.embed_to_milvus(
            path, str(tiny_model_dir), uri=SERVER_URI, collection=collection, actors=2,
            progress=False, **CHUNKING,
        )  # fmt: skip
        assert resumed.already_stored > 0 and resumed.embedded > 0
        assert resumed.already_stored + resumed.embedded == len(documents)
        assert store.count_chunks(client, collection) == len(expected.records)
        assert_equal_to_embed_corpus(
            stored_rows(client, collection, "late", tiny_model.name), expected
        )
    finally:
        store.close(client)


@pytest.mark.server
@needs_server
@pytest.mark.usefixtures("ray_session")
def test_server_an_actor_killed_mid_run_is_retried_with_nothing_lost_or_doubled(
    tiny_model, tiny_model_dir, documents
):
    import psutil

    collection = "scale_actor_killed"
    client = _server_collection(collection)
    killed = []

    def kill_an_actor(stats):
        if killed:
            return
        for process in psutil.Process().children(recursive=True):
            try:
                title = " ".join(process.cmdline())
            except psutil.Error:
                continue
            if "MapBatches(Embedder)" in title and "chunk_batch" not in title:
                process.send_signal(signal.SIGKILL)
                killed.append(process.pid)
                return

    try:
        stats = lc.scale.embed_to_milvus(
            documents, str(tiny_model_dir), uri=SERVER_URI, collection=collection, actors=2,
            documents_per_batch=1, on_progress=kill_an_actor, progress=False, **CHUNKING,
        )  # fmt: skip
        assert killed, "no embedding actor was found to kill"
        assert not psutil.pid_exists(killed[0]) or psutil.Process(killed[0]).status() == "zombie"
        expected = reference(tiny_model, documents, "late")
        assert stats.embedded == len(documents) - 1
        assert store.count_chunks(client, collection) == len(expected.records)
        assert_equal_to_embed_corpus(
            stored_rows(client, collection, "late", tiny_model.name), expected
        )
    finally:
        store.close(client)


# ----------------------------------------------------------- windows, failures and Ray's start

# Same-length words that are one token each: swapping them changes the words under the same spans.
SWAPS = {"cat": "dog", "mat": "rug", "red": "big", "sun": "sky"}
SENTENCES = [
    "The cat sat on the red mat while the sun was warm.",
    "A second line says that the cat likes the mat more than the sun.",
    "Nothing here is red, yet the cat will not leave the mat.",
    "When the sun sets, the mat gets cold and the cat goes inside.",
]
# (window, overlap) of a version; None takes the default. The tiny model's default pass is its
# 512 positions, which holds these documents whole; 32 and 48 cut them into overlapping windows.
WINDOWS = [(None, None), (32, 4), (32, None), (48, 0)]
SHAPE_FIELDS = ["id", "doc_id", "chunk_index", "start", "end", "text", "method", "model",
                "chunking", "window", "overlap", "vector"]  # fmt: skip


def swapped(text: str) -> str:
    return " ".join(SWAPS.get(word, word) for word in text.split(" "))


def every_row(uri: str, collection: str = "chunks") -> dict:
    client = store.connect(uri)
    try:
        client.load_collection(collection)
        rows = client.query(
            collection, filter="chunk_index >= 0", output_fields=SHAPE_FIELDS, limit=16384,
            consistency_level="Strong",
        )  # fmt: skip
    finally:
        store.close(client)
    return {r["id"]: r for r in rows}


def assert_same_rows(rows: dict, expected: dict) -> None:
    """Row for row: the same ids, every field equal, vectors within 1e-5."""
    assert sorted(rows) == sorted(expected)
    for key, row in rows.items():
        want = expected[key]
        assert {k: v for k, v in row.items() if k != "vector"} == {
            k: v for k, v in want.items() if k != "vector"
        }
        difference = np.abs(np.asarray(row["vector"]) - np.asarray(want["vector"])).max()
        assert difference <= 1e-5, f"row {key} of {row['doc_id']!r}: vectors differ by {difference}"


def ingested_fresh(model, texts: dict, uri: str, window=None, overlap=None) -> dict:
    """What ``store.ingest`` of ``embed_corpus`` makes of ``texts`` in a new collection."""
    corpus = lc.embed_corpus(
        model, texts, window=window, overlap=overlap, progress=False, **CHUNKING_16
    )
    client = store.connect(uri)
    try:
        store.create_collection(client, "chunks", model.dim)
        store.ingest(client, "chunks", corpus, progress=False)
    finally:
        store.close(client)
    return every_row(uri)


CHUNKING_16 = {"strategy": "fixed", "chunk_options": {"chunk_size": 16}}


@pytest.mark.slow  # starts Ray actors three times (tens of seconds on 2 cores)
def test_a_rerun_with_other_windows_embeds_again_as_ingest_would(
    ray_session, tiny_model, tiny_model_dir, tmp_path
):
    texts = {f"d{i}": " ".join(SENTENCES[i:] + SENTENCES[:i]) for i in range(3)}
    uri = str(tmp_path / "lite.db")
    run = dict(uri=uri, documents_per_batch=2, progress=False, **CHUNKING_16)
    first = lc.scale.embed_to_milvus(texts, str(tiny_model_dir), **run)
    assert first.embedded == 3
    # Same chunks, other windows: before the fix all three were skipped as already stored.
    other = lc.scale.embed_to_milvus(texts, str(tiny_model_dir), window=32, overlap=4, **run)
    assert (other.embedded, other.already_stored) == (3, 0)
    expected = ingested_fresh(tiny_model, texts, str(tmp_path / "ref.db"), 32, 4)
    rows = every_row(uri)
    assert {(r["window"], r["overlap"]) for r in rows.values()} == {(32, 4)}
    assert_same_rows(rows, expected)
    # The default overlap of a 32-position window resolves to 1, not 4: embedded again too.
    default = lc.scale.embed_to_milvus(texts, str(tiny_model_dir), window=32, **run)
    assert (default.embedded, default.already_stored) == (3, 0)
    assert {(r["window"], r["overlap"]) for r in every_row(uri).values()} == {(32, 1)}
    same = lc.scale.embed_to_milvus(texts, str(tiny_model_dir), window=32, overlap=1, **run)
    assert (same.embedded, same.already_stored) == (0, 3)


@st.composite
def corpus_versions(draw):
    """2-3 versions of a corpus of up to 4 documents. A document, once added, stays (its text
    may be emptied or come back); each version has its own window settings."""
    present: list[str] = []
    versions = []
    for _ in range(draw(st.integers(2, 3))):
        new = [d for d in ("a", "b", "c", "d") if d not in present]
        present += draw(
            st.lists(st.sampled_from(new), unique=True, min_size=0 if present else 1, max_size=2)
            if new
            else st.just([])
        )
        texts = {}
        for index, doc_id in enumerate(present):
            base = " ".join(SENTENCES[index:] + SENTENCES[:index])
            texts[doc_id] = draw(st.sampled_from([base, swapped(base), "  "]))
        versions.append((texts, draw(st.sampled_from(WINDOWS))))
    return versions


@pytest.mark.slow  # several Ray jobs per example
@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(versions=corpus_versions())
def test_scale_out_equals_ingest_of_the_last_version(
    ray_session, tiny_model, tiny_model_dir, versions
):
    with tempfile.TemporaryDirectory(prefix="lcprop", dir="/tmp") as folder:
        uri = str(Path(folder) / "lite.db")
        for texts, (window, overlap) in versions:
            lc.scale.embed_to_milvus(
                texts, str(tiny_model_dir), uri=uri, window=window, overlap=overlap,
                documents_per_batch=2, progress=False, **CHUNKING_16,
            )  # fmt: skip
        texts, (window, overlap) = versions[-1]
        expected = ingested_fresh(tiny_model, texts, str(Path(folder) / "ref.db"), window, overlap)
        assert_same_rows(every_row(uri), expected)


@pytest.mark.slow  # starts Ray actors three times
def test_a_ray_failure_mid_run_is_one_line_and_leaves_whole_documents(
    ray_session, tiny_model, tiny_model_dir, tmp_path, monkeypatch
):
    ray = ray_session
    # Version 2 has fewer chunks per document than version 1, so a document whose old rows
    # were not cleared after its new ones were written would hold a mix of both.
    first = {f"d{i}": " ".join(SENTENCES[i:] + SENTENCES[:i]) for i in range(6)}
    second = {d: swapped(text.split(". ")[0]) + "." for d, text in first.items()}
    uri = str(tmp_path / "lite.db")
    run = dict(uri=uri, documents_per_batch=2, progress=False, **CHUNKING_16)
    lc.scale.embed_to_milvus(first, str(tiny_model_dir), **run)

    real = ray.data.Dataset.iter_batches

    def fails_after_one_batch(self, *args, **kwargs):
        batches = iter(real(self, *args, **kwargs))
        if kwargs.get("batch_size", 256) is not None:  # not the job's output stream
            yield from batches
            return
        try:
            yield next(batches)
            raise ray.exceptions.ActorDiedError()
        finally:
            getattr(batches, "close", lambda: None)()

    monkeypatch.setattr(ray.data.Dataset, "iter_batches", fails_after_one_batch)
    with pytest.raises(lc.scale.RayJobError) as caught:
        lc.scale.embed_to_milvus(second, str(tiny_model_dir), **run)
    message = str(caught.value)
    assert "\n" not in message, message
    assert "ActorDiedError" in message and "again" in message and "resume" in message
    assert isinstance(caught.value.__cause__, ray.exceptions.ActorDiedError)
    monkeypatch.undo()

    rows = every_row(uri)
    references = {
        name: ingested_fresh(tiny_model, texts, str(tmp_path / f"{name}.db"))
        for name, texts in (("first", first), ("second", second))
    }
    versions = {}
    for doc_id in first:
        mine = {k: r for k, r in rows.items() if r["doc_id"] == doc_id}
        for name, reference_rows in references.items():
            theirs = {k: r for k, r in reference_rows.items() if r["doc_id"] == doc_id}
            if sorted(mine) == sorted(theirs):
                try:
                    assert_same_rows(mine, theirs)
                except AssertionError:
                    continue
                versions[doc_id] = name
        assert doc_id in versions, f"{doc_id} holds neither version whole"
    assert "second" in versions.values() and "first" in versions.values(), versions
    resumed = lc.scale.embed_to_milvus(second, str(tiny_model_dir), **run)
    rewritten = sum(name == "second" for name in versions.values())
    assert (resumed.already_stored, resumed.embedded) == (rewritten, len(second) - rewritten)
    assert_same_rows(every_row(uri), references["second"])


class _FakeRay:
    """Stands in for the ``ray`` module in ``start_ray``: ``init`` fails the first ``failures``
    calls with ``error``."""

    def __init__(self, error, failures):
        self.error, self.failures, self.inits, self.shutdowns = error, failures, 0, 0

    def is_initialized(self):
        return False

    def init(self, **options):
        self.inits += 1
        if self.inits <= self.failures:
            raise self.error

    def shutdown(self):
        self.shutdowns += 1


# Ray 2.60's own words when a local node misses its start deadline (ray/_private/node.py).
NODE_TIMEOUT = Exception(
    "The current node timed out during startup. This could happen because some of the raylet "
    "failed to startup or the GCS has become overloaded."
)


def test_start_ray_retries_a_node_start_timeout_once(monkeypatch):
    fake = _FakeRay(NODE_TIMEOUT, failures=1)
    monkeypatch.setattr(lc.scale.runtime, "import_ray", lambda: fake)
    with pytest.warns(RuntimeWarning, match="starting it once more"):
        assert lc.scale.start_ray(num_cpus=1) is True
    assert (fake.inits, fake.shutdowns) == (2, 1)


def test_start_ray_names_the_wait_setting_when_the_node_times_out_twice(monkeypatch):
    fake = _FakeRay(NODE_TIMEOUT, failures=2)
    monkeypatch.setattr(lc.scale.runtime, "import_ray", lambda: fake)
    with pytest.raises(RuntimeError, match="RAY_raylet_start_wait_time_s") as caught:
        with pytest.warns(RuntimeWarning, match="once more"):
            lc.scale.start_ray(num_cpus=1)
    assert "\n" not in str(caught.value) and "timed out during startup" in str(caught.value)
    assert (fake.inits, fake.shutdowns) == (2, 2)
    # Any other failure of ray.init is not retried and keeps its own type.
    other = _FakeRay(ValueError("num_cpus must be positive"), failures=1)
    monkeypatch.setattr(lc.scale.runtime, "import_ray", lambda: other)
    with pytest.raises(ValueError, match="num_cpus"):
        lc.scale.start_ray(num_cpus=1)
    assert other.inits == 1


_REPEATED_RUNS = """
import sys, time
import lc_utils as lc

texts = {f"d{i}": ("The cat sat on the red mat while the sun was warm. " * 8) + str(i)
         for i in range(6)}
for run in range(int(sys.argv[3])):
    started = time.perf_counter()
    stats = lc.scale.embed_to_milvus(
        texts, sys.argv[1], uri=sys.argv[2], collection=f"run{run}", documents_per_batch=2,
        strategy="fixed", chunk_options={"chunk_size": 16}, num_cpus=2,
        object_store_memory=200 * 2**20, progress=False,
    )
    assert stats.embedded == len(texts) and stats.chunks > 0, stats
    print(f"run {run} ok {time.perf_counter() - started:.1f} s", flush=True)
"""


@pytest.mark.slow
@pytest.mark.stress  # ten local Ray starts and jobs: 3-5 minutes on 2 cores (2026-12-04)
def test_ten_jobs_in_a_row_on_a_fresh_local_ray_each_never_crash(tiny_model_dir, tmp_path):
    # In a child process: a crash inside Ray's C++ code aborts the process, which would take
    # pytest down with it. Each run starts its own local Ray and shuts it down, as a user's does.
    environment = {**os.environ, "RAY_TMPDIR": tempfile.mkdtemp(prefix="lcray", dir="/tmp")}
    environment.pop("RAY_ADDRESS", None)
    uri = str(tmp_path / "lite.db")
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_REPEATED_RUNS), str(tiny_model_dir), uri, "10"],
        cwd=ROOT, env=environment, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    finished = [line for line in result.stdout.splitlines() if line.startswith("run ")]
    assert result.returncode == 0 and len(finished) == 10, (
        f"exit {result.returncode} after {len(finished)} runs in {seconds:.0f} s:\n"
        + result.stderr[-4000:]
    )
    print(f"10 runs in {seconds:.1f} s: " + "; ".join(finished))
    client = store.connect(uri)
    try:
        counts = {store.count_chunks(client, f"run{run}") for run in range(10)}
    finally:
        store.close(client)
    assert len(counts) == 1 and counts.pop() > 0
