"""The Milvus store on real Milvus Lite, in temporary folders.

``StoreContract`` holds the behaviour every deployment must show; ``TestLiteStore`` runs it on
Milvus Lite here and ``tests/test_milvus_server.py`` runs the very same class on a real server.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lc_utils import store
from lc_utils.corpus import CorpusEmbeddings

UNICODE_TEXTS = [
    "naïve café, composed é and decomposed e\u0301 are different strings",
    "🧑‍🔬 ZWJ sequences 👩🏽‍💻, flags 🇰🇷🇩🇪 and a keycap 1\ufe0f\u20e3",
    "日本語のテキスト、中文文本和한국어 텍스트",
    "שלום עולם, مرحبا بالعالم (right to left) with digits ١٢٣",
    "\u202eoverride\u202c, zero\u200bwidth, soft\u00adhyphen, BOM\ufeff",
    "Z\u0324\u0354\u0367\u0311a\u0308\u0356\u032dl\u036e\u0312g\u030co\u0319 stacked marks",
    "line\nbreak\ttab\r\nCRLF and a NUL \x00 inside",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 outside the BMP: 𐍈 𓀀 🀄",
]

TRICKY_DOC_IDS = [
    'he said "hi"',
    "it's",
    "back\\slash",
    'both \\" mixed',
    "trailing backslash\\",
    "new\nline",
    "tab\there",
    "ctrl\x01char",
    "carriage\rreturn",
    "nul\x00byte",
    'snow ☃ "quoted"',
    "' or 1 == 1 or doc_id == '",
]


@dataclass
class Backend:
    """One Milvus deployment under test and how to reach it again."""

    kind: str
    uri: str
    client: object

    def reopen(self):
        store.close(self.client)
        self.client = store.connect(self.uri)
        return self.client


def make_chunks(n_docs: int, per_doc: int, dim: int, *, seed: int = 0, prefix: str = "doc"):
    """Records shaped like ``embed_corpus`` output and random float32 vectors, row for row."""
    rng = np.random.default_rng(seed)
    records = [
        {
            "doc_id": f"{prefix}{d}",
            "chunk_index": c,
            "start": 10 * c,
            "end": 10 * c + 9,
            "text": f"document {d} chunk {c}",
        }
        for d in range(n_docs)
        for c in range(per_doc)
    ]
    return records, rng.normal(size=(len(records), dim)).astype(np.float32)


def stored_rows(client, name, expression=""):
    fields = ["doc_id", "chunk_index", "start", "end", "method", "text", "text_truncated"]
    rows = client.query(
        name,
        filter=expression or "chunk_index >= 0",
        output_fields=fields,
        consistency_level="Strong",
    )
    return sorted(rows, key=lambda r: (r["doc_id"], r["chunk_index"], r["method"]))


class StoreContract:
    """Tests that every backend passes; subclasses provide a class-scoped ``backend`` fixture."""

    @pytest.fixture
    def name(self, backend):
        name = f"t_{uuid.uuid4().hex[:12]}"
        yield name
        if backend.client.has_collection(name):
            backend.client.drop_collection(name)

    def test_flat_search_agrees_exactly_with_brute_force(self, backend, name):
        client = backend.client
        records, vectors = make_chunks(60, 25, 32)
        # Exact duplicates under other documents create ties at every rank.
        duplicates = [dict(r, doc_id="copy-" + r["doc_id"]) for r in records[:40]]
        records, vectors = records + duplicates, np.concatenate([vectors, vectors[:40]])
        info = store.create_collection(client, name, 32)
        assert info == {
            "name": name,
            "dim": 32,
            "index": "FLAT",
            "metric": "COSINE",
            "created": True,
        }
        assert (
            store.ingest(client, name, records, vectors, method="late", model="m", progress=False)
            == 1540
        )
        rng = np.random.default_rng(1)
        queries = np.concatenate([rng.normal(size=(40, 32)), vectors[:10]]).astype(np.float32)
        ids = store.chunk_ids(records, method="late", model="m")
        report = store.validate_against_brute_force(client, name, queries, vectors, ids, k=10)
        assert report["agreement_at_k"] == 1.0, report["per_query"]
        assert report["index"] == "FLAT" and report["n_queries"] == 50 and report["k"] == 10
        assert report["max_abs_score_diff"] < 1e-5
        assert abs(report["mean_rank_score_gap"]) < 1e-5
        assert (report["per_query"]["hits"] == 10).all()
        hits = store.search(client, name, vectors[3], k=1)
        assert hits.loc[0, "score"] == pytest.approx(1.0, abs=1e-5)
        assert hits.loc[0, "doc_id"] in (records[3]["doc_id"], "copy-" + records[3]["doc_id"])

    def test_ties_at_the_kth_place_count_as_agreement(self, backend, name):
        client = backend.client
        records, vectors = make_chunks(1, 26, 8, seed=8)
        vectors[:6] = vectors[0]  # six equal vectors compete for three places
        store.create_collection(client, name, 8)
        store.ingest(client, name, records, vectors, method="late", model="m", progress=False)
        ids = store.chunk_ids(records, method="late", model="m")
        report = store.validate_against_brute_force(client, name, vectors[:1], vectors, ids, k=3)
        assert report["agreement_at_k"] == 1.0
        hits = store.search(client, name, vectors[0], k=3)
        assert set(hits["id"]) <= set(ids[:6])
        # Strict agreement credits only the brute-force pick among equals (the lowest rows).
        assert report["strict_agreement_at_k"] <= report["agreement_at_k"]

    def test_hnsw_agreement_is_measured(self, backend, name):
        client = backend.client
        records, vectors = make_chunks(100, 30, 32, seed=2)
        info = store.create_collection(client, name, 32, index="HNSW")
        assert info["index"] == "HNSW"
        store.ingest(client, name, records, vectors, method="late", model="m", progress=False)
        queries = np.random.default_rng(3).normal(size=(50, 32)).astype(np.float32)
        ids = store.chunk_ids(records, method="late", model="m")
        report = store.validate_against_brute_force(client, name, queries, vectors, ids, k=10)
        print(f"\n{backend.kind} HNSW agreement@10 = {report['agreement_at_k']:.3f}")
        assert 0.8 <= report["agreement_at_k"] <= 1.0, report
        assert report["max_abs_score_diff"] < 1e-4
        assert report["mean_rank_score_gap"] >= -1e-5

    def test_dimension_mismatch_is_refused_before_writing(self, backend, name):
        client = backend.client
        records, vectors = make_chunks(2, 3, 16)
        store.create_collection(client, name, 8)
        with pytest.raises(ValueError, match=r"dimension 16 but collection .* dimension 8"):
            store.ingest(client, name, records, vectors, method="late", model="m", progress=False)
        assert store.count_chunks(client, name) == 0
        good_records, good_vectors = make_chunks(2, 3, 8)
        store.ingest(
            client, name, good_records, good_vectors, method="late", model="m", progress=False
        )
        with pytest.raises(ValueError, match="exists with dim 8, not 16"):
            store.create_collection(client, name, 16)
        with pytest.raises(ValueError, match=r"expected \(n_queries, 8\)"):
            store.search(client, name, np.ones((1, 16), np.float32))
        assert store.count_chunks(client, name) == 6
        assert store.create_collection(client, name, 8)["created"] is False
        with pytest.raises(ValueError, match="exists with index FLAT"):
            store.create_collection(client, name, 8, index="HNSW")
        assert store.create_collection(client, name, 16, overwrite=True)["created"] is True
        assert store.count_chunks(client, name) == 0

    def test_reingesting_adds_no_rows(self, backend, name):
        client = backend.client
        records, vectors = make_chunks(5, 8, 16)
        store.create_collection(client, name, 16)
        for _ in range(2):
            store.ingest(client, name, records, vectors, method="late", model="m", progress=False)
            assert store.count_chunks(client, name) == 40
        moved = vectors[::-1].copy()
        store.ingest(client, name, records, moved, method="late", model="m", progress=False)
        assert store.count_chunks(client, name) == 40
        top = store.search(client, name, moved[0], k=1)
        assert top.loc[0, "id"] == store.chunk_id("doc0", 0, "late", "m")
        assert top.loc[0, "score"] == pytest.approx(1.0, abs=1e-5)
        store.ingest(client, name, records, vectors, method="naive", model="m", progress=False)
        assert store.count_chunks(client, name) == 80
        assert store.count_chunks(client, name, method="naive") == 40

    def test_data_survives_close_and_reopen(self, backend, name):
        records, vectors = make_chunks(4, 5, 8)
        store.create_collection(backend.client, name, 8)
        store.ingest(
            backend.client, name, records, vectors, method="late", model="m", progress=False
        )
        store.close(backend.client)
        # Another process must see the data: for Lite this also proves close() released the lock.
        code = textwrap.dedent(f"""
            from lc_utils import store
            client = store.connect({backend.uri!r})
            print(store.count_chunks(client, {name!r}))
            store.close(client)
        """)
        other = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
        )
        assert other.returncode == 0, other.stderr[-2000:]
        assert other.stdout.strip().splitlines()[-1] == "20"
        client = backend.reopen()
        assert store.count_chunks(client, name) == 20
        hits = store.search(client, name, vectors[7], k=1)
        assert hits.loc[0, "id"] == store.chunk_id("doc1", 2, "late", "m")

    def test_delete_document_leaves_the_others(self, backend, name):
        client = backend.client
        records, vectors = make_chunks(3, 6, 8)
        store.create_collection(client, name, 8)
        store.ingest(client, name, records, vectors, method="late", model="m", progress=False)
        store.ingest(client, name, records, vectors * 2, method="naive", model="m", progress=False)
        before = {
            r["doc_id"] + r["method"] + str(r["chunk_index"]) for r in stored_rows(client, name)
        }
        assert store.delete_document(client, name, "doc1") == 12
        assert store.count_chunks(client, name, doc_id="doc1") == 0
        after = {
            r["doc_id"] + r["method"] + str(r["chunk_index"]) for r in stored_rows(client, name)
        }
        assert after == {key for key in before if not key.startswith("doc1")}
        hits = store.search(client, name, vectors[6:12], k=5)
        assert "doc1" not in set(hits["doc_id"]) and len(hits) == 30
        assert store.delete_document(client, name, "doc0", method="naive") == 6
        assert store.count_chunks(client, name, doc_id="doc0") == 6
        assert store.count_chunks(client, name, doc_id="doc2") == 12
        assert store.delete_document(client, name, "no such document") == 0

    def test_unicode_round_trips_exactly(self, backend, name):
        client = backend.client
        doc_ids = ["문서-1", "données", "📄 file.txt"]
        records = [
            {"doc_id": doc_ids[i % 3], "chunk_index": i, "start": 0, "end": len(t), "text": t}
            for i, t in enumerate(UNICODE_TEXTS)
        ]
        vectors = np.random.default_rng(4).normal(size=(len(records), 8)).astype(np.float32)
        store.create_collection(client, name, 8)
        store.ingest(client, name, records, vectors, method="late", model="m", progress=False)
        rows = stored_rows(client, name)
        assert sorted((r["doc_id"], r["chunk_index"], r["text"]) for r in rows) == sorted(
            (r["doc_id"], r["chunk_index"], r["text"]) for r in records
        )
        assert not any(r["text_truncated"] for r in rows)
        hits = store.search(client, name, vectors, k=1)
        assert hits["text"].tolist() == UNICODE_TEXTS
        for doc_id in doc_ids:
            assert store.count_chunks(client, name, doc_id=doc_id) == sum(
                r["doc_id"] == doc_id for r in records
            )

    def test_long_text_is_truncated_at_a_character_and_flagged(self, backend, name):
        client = backend.client
        document = "a" * 38 + "é" + "😀" * 3 + "b" * 39 + "é" + "tail"
        spans = [(0, 42), (42, 82), (82, len(document))]
        records = [
            {"doc_id": "long", "chunk_index": i, "start": a, "end": b, "text": document[a:b]}
            for i, (a, b) in enumerate(spans)
        ]
        vectors = np.random.default_rng(5).normal(size=(3, 8)).astype(np.float32)
        store.create_collection(client, name, 8, text_max_bytes=40)
        with pytest.warns(UserWarning, match="2 chunk text"):
            store.ingest(client, name, records, vectors, method="late", model="m", progress=False)
        rows = stored_rows(client, name)
        # 38 ASCII bytes + 2 for "é" fill 40 exactly; "b" * 39 + "é" would need 41, so é goes.
        assert [r["text"] for r in rows] == ["a" * 38 + "é", "b" * 39, "tail"]
        assert [r["text_truncated"] for r in rows] == [True, True, False]
        for row in rows:
            full = document[row["start"] : row["end"]]
            assert full.startswith(row["text"]) and len(row["text"].encode()) <= 40

    def test_long_text_can_be_refused_instead(self, backend, name):
        client = backend.client
        records = [
            {"doc_id": "d", "chunk_index": 0, "start": 0, "end": 70_000, "text": "x" * 70_000}
        ]
        vectors = np.ones((1, 8), np.float32)
        store.create_collection(client, name, 8)
        with pytest.raises(ValueError, match="70000 UTF-8 bytes.*allows 65535"):
            store.ingest(
                client,
                name,
                records,
                vectors,
                method="late",
                model="m",
                progress=False,
                on_long_text="error",
            )
        assert store.count_chunks(client, name) == 0
        with pytest.warns(UserWarning, match="stored truncated"):
            store.ingest(client, name, records, vectors, method="late", model="m", progress=False)
        (row,) = stored_rows(client, name)
        assert row["text"] == "x" * 65_535 and row["text_truncated"]

    def test_filters_by_method_and_document(self, backend, name):
        client = backend.client
        records, vectors = make_chunks(4, 10, 16)
        store.create_collection(client, name, 16)
        store.ingest(client, name, records, vectors, method="late", model="m", progress=False)
        store.ingest(client, name, records, -vectors, method="naive", model="m", progress=False)
        queries = vectors[:3]
        late = store.search(client, name, queries, k=8, method="late")
        assert set(late["method"]) == {"late"} and len(late) == 24
        naive = store.search(client, name, queries, k=8, method="naive")
        assert set(naive["method"]) == {"naive"}
        one = store.search(client, name, queries, k=20, doc_id="doc2")
        assert set(one["doc_id"]) == {"doc2"} and len(one) == 60
        some = store.search(
            client,
            name,
            queries,
            k=50,
            doc_id=["doc1", "doc3"],
            method="late",
            filter="chunk_index < 5",
        )
        assert set(some["doc_id"]) == {"doc1", "doc3"} and (some["chunk_index"] < 5).all()
        assert len(some) == 30 and set(some["method"]) == {"late"}
        assert list(some.columns[:4]) == ["query", "rank", "id", "score"]
        assert (some.groupby("query")["score"].apply(lambda s: s.is_monotonic_decreasing)).all()
        few = store.search(client, name, queries, k=3, output_fields=["doc_id"])
        assert list(few.columns) == ["query", "rank", "id", "score", "doc_id"]

    def test_quotes_and_control_characters_in_doc_ids(self, backend, name):
        client = backend.client
        records = [
            {"doc_id": doc_id, "chunk_index": c, "start": c, "end": c + 1, "text": doc_id}
            for doc_id in TRICKY_DOC_IDS
            for c in range(3)
        ]
        vectors = np.random.default_rng(6).normal(size=(len(records), 8)).astype(np.float32)
        store.create_collection(client, name, 8)
        store.ingest(client, name, records, vectors, method="late", model="m", progress=False)
        for doc_id in TRICKY_DOC_IDS:
            assert store.count_chunks(client, name, doc_id=doc_id) == 3, doc_id
            hits = store.search(client, name, vectors[:2], k=10, doc_id=doc_id)
            assert set(hits["doc_id"]) == {doc_id}
        victim = TRICKY_DOC_IDS[-1]
        assert store.delete_document(client, name, victim) == 3
        assert store.count_chunks(client, name) == 3 * (len(TRICKY_DOC_IDS) - 1)

    @pytest.fixture(scope="class")
    @classmethod
    def shared_name(cls, backend):
        name = f"t_shared_{uuid.uuid4().hex[:8]}"
        store.create_collection(backend.client, name, 4)
        yield name
        backend.client.drop_collection(name)

    @settings(max_examples=25, deadline=None)
    @given(doc_id=st.text(min_size=1, max_size=24))
    def test_any_doc_id_filters_exactly(self, backend, shared_name, doc_id):
        client, name = backend.client, shared_name
        record = {"doc_id": doc_id, "chunk_index": 0, "start": 0, "end": 1, "text": doc_id}
        vector = np.ones((1, 4), np.float32)
        store.ingest(client, name, [record], vector, method="late", model="m", progress=False)
        assert store.count_chunks(client, name, doc_id=doc_id) == 1
        hits = store.search(client, name, vector, k=5, doc_id=doc_id)
        assert hits["doc_id"].tolist() == [doc_id] and hits["text"].tolist() == [doc_id]

    def test_batches_stream_and_corpus_parts_are_accepted(self, backend, name):
        client = backend.client
        store.create_collection(client, name, 8)
        written_before_each_part = []

        def parts():
            for i in range(4):
                written_before_each_part.append(store.count_chunks(client, name))
                records, vectors = make_chunks(2, 5, 8, seed=i, prefix=f"p{i}-")
                yield (pd.DataFrame(records) if i % 2 else records), vectors

        total = store.ingest_batches(
            client, name, parts(), method="late", model="m", batch_size=3, progress=False
        )
        assert total == 40 and store.count_chunks(client, name) == 40
        # Each part was written before the next one was even produced: memory holds one part.
        assert written_before_each_part == [0, 10, 20, 30]
        corpus_parts = [
            CorpusEmbeddings(*make_chunks(3, 2, 8, seed=i, prefix=f"c{i}-"), "naive", "m2")
            for i in range(2)
        ]
        assert store.ingest_batches(client, name, iter(corpus_parts), progress=False) == 12
        assert store.count_chunks(client, name, method="naive", filter='model == "m2"') == 12
        with pytest.raises(ValueError, match="method=None"):
            store.ingest_batches(client, name, [make_chunks(1, 1, 8)], progress=False)
        assert store.count_chunks(client, name) == 52

    def test_bad_records_write_nothing(self, backend, name):
        client = backend.client
        store.create_collection(client, name, 4)
        records, vectors = make_chunks(1, 3, 4)

        def attempt(records=records, vectors=vectors, **options):
            options = {"method": "late", "model": "m", "progress": False, **options}
            store.ingest(client, name, records, vectors, **options)

        cases = [
            ({"records": records[:2]}, r"shape \(3, 4\); expected \(2, 4\)"),
            ({"records": [dict(records[0], end=-1)] + records[1:]}, "0 <= start <= end"),
            ({"records": [records[0], records[0], records[2]]}, "appears twice"),
            ({"records": [{"doc_id": "d", "text": "t"}] + records[1:]}, "lacks"),
            ({"records": [dict(records[0], text="bad \ud800")] + records[1:]}, "surrogate"),
            ({"records": [dict(records[0], doc_id="")] + records[1:]}, "non-empty str"),
            ({"vectors": np.where(np.eye(3, 4) > 0, np.nan, vectors)}, "not finite"),
            ({"vectors": np.zeros((3, 4))}, "zero"),
            ({"method": ""}, "method=''"),
            ({"on_long_text": "cut"}, "on_long_text='cut'"),
        ]
        for arguments, message in cases:
            with pytest.raises(ValueError, match=message):
                attempt(**arguments)
        assert store.count_chunks(client, name) == 0
        with pytest.raises(ValueError, match="does not exist"):
            store.ingest(client, "t_missing", records, vectors, method="late", model="m")

    def test_validation_needs_exactly_the_searched_rows(self, backend, name):
        client = backend.client
        records, vectors = make_chunks(3, 4, 8)
        store.create_collection(client, name, 8)
        store.ingest(client, name, records, vectors, method="late", model="m", progress=False)
        store.ingest(client, name, records, vectors, method="naive", model="m", progress=False)
        ids = store.chunk_ids(records, method="late", model="m")
        with pytest.raises(ValueError, match="holds 24 rows"):
            store.validate_against_brute_force(client, name, vectors[:2], vectors, ids, k=3)
        report = store.validate_against_brute_force(
            client, name, vectors[:2], vectors, ids, k=50, method="late"
        )
        # k beyond the row count is clipped to it, and every row comes back.
        assert report["k"] == 12 and report["agreement_at_k"] == 1.0


class TestLiteStore(StoreContract):
    @pytest.fixture(scope="class")
    @classmethod
    def backend(cls, tmp_path_factory):
        uri = str(tmp_path_factory.mktemp("milvus-lite") / "store.db")
        backend = Backend("lite", uri, store.connect(uri))
        yield backend
        store.close(backend.client)


# Connecting: everything here stays on loopback.


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_auto_uses_a_lite_file_under_outputs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    client = store.connect("auto")
    try:
        assert (tmp_path / "outputs" / "milvus" / "lc.db").exists()
        assert client.list_collections() == []
    finally:
        store.close(client)


def test_lite_path_creates_parent_folders(tmp_path):
    client = store.connect(tmp_path / "a" / "b" / "x.db")
    store.close(client)
    assert (tmp_path / "a" / "b" / "x.db").exists()


@pytest.mark.parametrize("uri", ["ftp://example", "grpc://127.0.0.1:19530", "data.sqlite", "", 42])
def test_malformed_uris_name_the_valid_forms(uri):
    with pytest.raises(store.MilvusConnectionError, match="Valid|valid:") as caught:
        store.connect(uri)
    assert repr(str(uri))[1:-1] in str(caught.value) or uri == 42


def test_refused_port_fails_fast():
    uri = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(ConnectionError, match=re.escape(f"no Milvus server answers at '{uri}'")):
        store.connect(uri, timeout=3)
    assert time.monotonic() - started < 15


def test_silent_listener_times_out_instead_of_hanging():
    # A port that accepts connections but never speaks gRPC, like a wrong service or a firewall.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        uri = f"tcp://127.0.0.1:{silent.getsockname()[1]}"
        started = time.monotonic()
        expected = re.escape(f"could not open Milvus at '{uri}'")
        with pytest.raises(store.MilvusConnectionError, match=expected):
            store.connect(uri, timeout=2)
        assert time.monotonic() - started < 15


def test_lite_database_open_in_another_process_is_named(tmp_path):
    path = tmp_path / "held.db"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import sys; from lc_utils import store; store.connect({str(path)!r}); "
            "print('open', flush=True); sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "open"
        started = time.monotonic()
        with pytest.raises(store.MilvusConnectionError, match="another process has this"):
            store.connect(path)
        assert time.monotonic() - started < 15
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)


def test_a_local_milvus_lite_py_is_reported(tmp_path, monkeypatch):
    (tmp_path / "milvus_lite.py").write_text("# a notebook helper that happens to share the name\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "milvus_lite", raising=False)
    with pytest.raises(store.MilvusConnectionError, match="milvus_lite.py shadows"):
        store.connect(tmp_path / "x.db")


# Pure functions.


def test_brute_force_matches_a_full_sort_and_breaks_ties_by_row():
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(300, 12)).astype(np.float32)
    vectors[[10, 20, 30]] = vectors[5]
    queries = np.concatenate([rng.normal(size=(9, 12)), vectors[5:6] * 3]).astype(np.float32)
    scores, indices = store.brute_force_search(queries, vectors, 7)
    assert scores.shape == indices.shape == (10, 7) and indices.dtype == np.int64
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    expected = (queries / np.linalg.norm(queries, axis=1, keepdims=True)) @ unit.T
    for row in range(9):
        assert indices[row].tolist() == np.argsort(-expected[row], kind="stable")[:7].tolist()
    assert indices[9, :4].tolist() == [5, 10, 20, 30]
    np.testing.assert_allclose(scores[9, :4], 1.0, atol=1e-6)
    assert store.brute_force_search(queries[0], vectors[:3], 10)[1].shape == (1, 3)
    with pytest.raises(ValueError, match="non-zero"):
        store.brute_force_search(np.zeros(12), vectors, 3)


def test_filter_expressions_quote_values():
    assert store.filter_expression() == ""
    assert store.filter_expression(method="late") == 'method == "late"'
    assert (
        store.filter_expression(method=["late", "naive"], doc_id='a"b\\c\n', filter="start > 3")
        == 'method in ["late", "naive"] and doc_id == "a\\"b\\\\c\\n" and (start > 3)'
    )
    with pytest.raises(ValueError, match="matches nothing"):
        store.filter_expression(doc_id=[])


def test_chunk_ids_are_stable_and_distinct():
    first = store.chunk_id("doc", 1, "late", "m")
    assert first == store.chunk_id("doc", 1, "late", "m") and len(first) == 32
    others = {
        store.chunk_id("doc", 1, "naive", "m"),
        store.chunk_id("doc", 2, "late", "m"),
        store.chunk_id("doc1", 1, "late", "m"),
        store.chunk_id("doc", 1, "late", "m2"),
        store.chunk_id('doc", 1', 1, "late", "m"),
    }
    assert first not in others and len(others) == 5
    assert store.chunk_ids(
        pd.DataFrame([{"doc_id": "doc", "chunk_index": 1}]), method="late", model="m"
    ) == [first]


def test_invalid_collection_arguments(tmp_path):
    client = store.connect(tmp_path / "args.db")
    try:
        for kwargs, message in [
            ({"name": "1bad", "dim": 8}, "not valid"),
            ({"name": "ok", "dim": 0}, "dim=0"),
            ({"name": "ok", "dim": 8, "index": "IVF_PQ"}, "valid: \\('FLAT'"),
            ({"name": "ok", "dim": 8, "text_max_bytes": 70_000}, "text_max_bytes=70000"),
        ]:
            with pytest.raises(ValueError, match=message):
                store.create_collection(client, **kwargs)
        assert client.list_collections() == []
    finally:
        store.close(client)
