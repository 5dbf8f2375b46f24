"""The Milvus store on real Milvus Lite, in temporary folders.

``StoreContract`` holds the behaviour every deployment must show; ``TestLiteStore`` runs it on
Milvus Lite here and ``tests/test_milvus_server.py`` runs the very same class on a real server.
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
import zlib
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


# Filters that try to break out of the scope they are ANDed with (issue 20, item 6).
HOSTILE_FILTERS = [
    "chunk_index >= 0) or (1 == 1",
    'chunk_index >= 0) or (model == "tenantB"',
    ") or (",
    "1 == 1) or (1 == 1",
    "chunk_index >= 0 or 1 == 1",
    "chunk_index >= 0 // ) or (1 == 1",
    "chunk_index >= 0 /* ) or (1 == 1 */",
    "chunk_index >= 0 # ) or (1 == 1",
    'doc_id == ") or (1 == 1',
    "doc_id == ') or (1 == 1",
    'doc_id == "x\\") or (1 == 1',
    "(chunk_index >= 0",
    "chunk_index >= 0))((",
    'doc_id in ["doc0"]) or (1 == 1',
    'doc_id == "a) or (1 == 1"',
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


# The labels most tests file their rows under.
LABELS = {"method": "late", "model": "m", "chunking": "c"}


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


# Hypothesis examples of the versions property, each a fresh collection (seconds on a server).
PROPERTY_EXAMPLES = 6


def version_of(doc_id: str, n: int, version: str, dim: int = 8):
    """``n`` chunk records of one version of a document, texts naming the version, and vectors
    that differ from version to version."""
    records = [
        {
            "doc_id": doc_id,
            "chunk_index": i,
            "start": 10 * i,
            "end": 10 * i + 9,
            "text": f"{doc_id} {version} chunk {i}",
        }
        for i in range(n)
    ]
    rng = np.random.default_rng(zlib.crc32(f"{doc_id}/{version}".encode()))
    return records, rng.normal(size=(n, dim)).astype(np.float32) + 0.1


def corpus_version(sizes: dict, version: str, *, chunking: str = "fixed-8"):
    """A ``CorpusEmbeddings`` holding ``sizes[doc_id]`` chunks of each document (0 is allowed:
    a document whose text gave no chunk)."""
    records, vectors = [], []
    for doc_id, n in sorted(sizes.items()):
        part_records, part_vectors = version_of(doc_id, n, version)
        records += part_records
        vectors.append(part_vectors)
    return CorpusEmbeddings(
        records, np.concatenate(vectors), "late", "m", [], chunking, doc_ids=sorted(sizes)
    )


def split_corpus(corpus, start: int, stop: int | None = None):
    """Rows ``start:stop`` of a corpus as a part of a stream; documents without rows go into the
    last part. A document may run on from one part into the next."""
    records = corpus.records[start:stop]
    doc_ids = list(dict.fromkeys(r["doc_id"] for r in records))
    if stop is None or stop >= len(corpus.records):
        with_rows = {r["doc_id"] for r in corpus.records}
        doc_ids += [d for d in corpus.doc_ids if d not in with_rows]
    return CorpusEmbeddings(
        records, corpus.vectors[start:stop], "late", "m", [], corpus.chunking, doc_ids
    )


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
        assert store.ingest(client, name, records, vectors, progress=False, **LABELS) == 1540
        rng = np.random.default_rng(1)
        queries = np.concatenate([rng.normal(size=(40, 32)), vectors[:10]]).astype(np.float32)
        ids = store.chunk_ids(records, method="late", model="m", chunking="c")
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
        store.ingest(
            client, name, records, vectors, method="late", model="m", chunking="c", progress=False
        )
        ids = store.chunk_ids(records, method="late", model="m", chunking="c")
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
        store.ingest(
            client, name, records, vectors, method="late", model="m", chunking="c", progress=False
        )
        queries = np.random.default_rng(3).normal(size=(50, 32)).astype(np.float32)
        ids = store.chunk_ids(records, method="late", model="m", chunking="c")
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
            store.ingest(client, name, records, vectors, progress=False, **LABELS)
        assert store.count_chunks(client, name) == 0
        good_records, good_vectors = make_chunks(2, 3, 8)
        store.ingest(
            client,
            name,
            good_records,
            good_vectors,
            method="late",
            model="m",
            chunking="c",
            progress=False,
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
            store.ingest(client, name, records, vectors, progress=False, **LABELS)
            assert store.count_chunks(client, name) == 40
        moved = vectors[::-1].copy()
        store.ingest(
            client, name, records, moved, method="late", model="m", chunking="c", progress=False
        )
        assert store.count_chunks(client, name) == 40
        top = store.search(client, name, moved[0], k=1)
        assert top.loc[0, "id"] == store.chunk_id("doc0", 0, "late", "m", "c")
        assert top.loc[0, "score"] == pytest.approx(1.0, abs=1e-5)
        store.ingest(
            client, name, records, vectors, method="naive", model="m", chunking="c", progress=False
        )
        assert store.count_chunks(client, name) == 80
        assert store.count_chunks(client, name, method="naive") == 40

    def test_data_survives_close_and_reopen(self, backend, name):
        records, vectors = make_chunks(4, 5, 8)
        store.create_collection(backend.client, name, 8)
        store.ingest(
            backend.client,
            name,
            records,
            vectors,
            method="late",
            model="m",
            chunking="c",
            progress=False,
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
        assert hits.loc[0, "id"] == store.chunk_id("doc1", 2, "late", "m", "c")

    def test_delete_document_leaves_the_others(self, backend, name):
        client = backend.client
        records, vectors = make_chunks(3, 6, 8)
        store.create_collection(client, name, 8)
        store.ingest(
            client, name, records, vectors, method="late", model="m", chunking="c", progress=False
        )
        store.ingest(
            client,
            name,
            records,
            vectors * 2,
            method="naive",
            model="m",
            chunking="c",
            progress=False,
        )
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
        store.ingest(
            client, name, records, vectors, method="late", model="m", chunking="c", progress=False
        )
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
            store.ingest(client, name, records, vectors, progress=False, **LABELS)
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
                chunking="c",
                progress=False,
                on_long_text="error",
            )
        assert store.count_chunks(client, name) == 0
        with pytest.warns(UserWarning, match="stored truncated"):
            store.ingest(client, name, records, vectors, progress=False, **LABELS)
        (row,) = stored_rows(client, name)
        assert row["text"] == "x" * 65_535 and row["text_truncated"]

    def test_filters_by_method_and_document(self, backend, name):
        client = backend.client
        records, vectors = make_chunks(4, 10, 16)
        store.create_collection(client, name, 16)
        store.ingest(
            client, name, records, vectors, method="late", model="m", chunking="c", progress=False
        )
        store.ingest(
            client, name, records, -vectors, method="naive", model="m", chunking="c", progress=False
        )
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

    def test_no_hostile_filter_reaches_another_scope(self, backend, name):
        client = backend.client
        records, vectors = make_chunks(2, 4, 8)
        store.create_collection(client, name, 8)
        for tenant in ("tenantA", "tenantB"):
            labels = {**LABELS, "model": tenant}
            store.ingest(client, name, records, vectors, progress=False, **labels)
        refused = 0
        for hostile in HOSTILE_FILTERS:
            try:
                rows = store.search(
                    client, name, vectors[:2], k=16, model="tenantA", filter=hostile
                )
                count = store.count_chunks(client, name, model="tenantA", filter=hostile)
            except ValueError:
                refused += 1
                continue
            except Exception as error:  # Milvus refusing the expression's syntax is also safe
                assert "tenantB" not in str(error)
                continue
            assert set(rows["model"]) <= {"tenantA"}, hostile
            assert count <= 8, hostile
        assert refused >= 6

    def test_quotes_and_control_characters_in_doc_ids(self, backend, name):
        client = backend.client
        records = [
            {"doc_id": doc_id, "chunk_index": c, "start": c, "end": c + 1, "text": doc_id}
            for doc_id in TRICKY_DOC_IDS
            for c in range(3)
        ]
        vectors = np.random.default_rng(6).normal(size=(len(records), 8)).astype(np.float32)
        store.create_collection(client, name, 8)
        store.ingest(
            client, name, records, vectors, method="late", model="m", chunking="c", progress=False
        )
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
        store.ingest(
            client, name, [record], vector, method="late", model="m", chunking="c", progress=False
        )
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
            client,
            name,
            parts(),
            method="late",
            model="m",
            chunking="c",
            batch_size=3,
            progress=False,
        )
        assert total == 40 and store.count_chunks(client, name) == 40
        # Each part was written before the next one was even produced: memory holds one part.
        assert written_before_each_part == [0, 10, 20, 30]
        corpus_parts = [
            CorpusEmbeddings(
                *make_chunks(3, 2, 8, seed=i, prefix=f"c{i}-"), "naive", "m2", chunking="c"
            )
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
            options = {
                "method": "late",
                "model": "m",
                "chunking": "c",
                "progress": False,
                **options,
            }
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
            ({"chunking": ""}, "chunking=''"),
            ({"chunking": None}, "chunking=None; pass chunking="),
            ({"on_long_text": "cut"}, "on_long_text='cut'"),
        ]
        for arguments, message in cases:
            with pytest.raises(ValueError, match=message):
                attempt(**arguments)
        assert store.count_chunks(client, name) == 0
        with pytest.raises(ValueError, match="does not exist"):
            store.ingest(
                client, "t_missing", records, vectors, method="late", model="m", chunking="c"
            )

    def test_validation_needs_exactly_the_searched_rows(self, backend, name):
        client = backend.client
        records, vectors = make_chunks(3, 4, 8)
        store.create_collection(client, name, 8)
        store.ingest(
            client, name, records, vectors, method="late", model="m", chunking="c", progress=False
        )
        store.ingest(
            client, name, records, vectors, method="naive", model="m", chunking="c", progress=False
        )
        ids = store.chunk_ids(records, method="late", model="m", chunking="c")
        with pytest.raises(ValueError, match="holds 24 rows"):
            store.validate_against_brute_force(client, name, vectors[:2], vectors, ids, k=3)
        report = store.validate_against_brute_force(
            client, name, vectors[:2], vectors, ids, k=50, method="late"
        )
        # k beyond the row count is clipped to it, and every row comes back.
        assert report["k"] == 12 and report["agreement_at_k"] == 1.0

    # Re-ingestion replaces a document (issue 11).

    def test_reingesting_a_document_replaces_all_of_it(self, backend, name):
        client = backend.client
        store.create_collection(client, name, 8)
        key = {"method": "late", "model": "m", "chunking": "fixed-8"}

        def write(n, version, doc_id="docA", **labels):
            records, vectors = version_of(doc_id, n, version)
            store.ingest(client, name, records, vectors, **{**key, **labels}, progress=False)
            return records, vectors

        def texts_of(doc_id="docA", **labels):
            expression = store.filter_expression(doc_id=doc_id, **{**key, **labels})
            return [r["text"] for r in stored_rows(client, name, expression)]

        write(10, "v1")
        bystanders = [
            write(5, "b", doc_id="docB"),
            write(7, "naive", method="naive"),
            write(6, "other chunking", chunking="fixed-4"),
        ]
        assert texts_of() == [f"docA v1 chunk {i}" for i in range(10)]

        old_records, old_vectors = version_of("docA", 10, "v1")
        write(4, "v2")  # shrink
        assert store.count_chunks(client, name, doc_id="docA", **key) == 4
        assert texts_of() == [f"docA v2 chunk {i}" for i in range(4)]
        hits = store.search(client, name, old_vectors[4:], k=1, doc_id="docA", **key)
        assert set(hits["text"]) <= {f"docA v2 chunk {i}" for i in range(4)}, hits

        write(12, "v3")  # grow
        assert store.count_chunks(client, name, doc_id="docA", **key) == 12
        assert texts_of() == [f"docA v3 chunk {i}" for i in range(12)]

        # Re-chunk: other spans, texts and chunk indices with gaps (records given by hand).
        records, vectors = version_of("docA", 12, "v4")
        keep = [0, 2, 3, 7]
        records = [dict(records[i], start=100 + i, end=200 + i) for i in keep]
        store.ingest(client, name, records, vectors[keep], **key, progress=False)
        rows = stored_rows(client, name, store.filter_expression(doc_id="docA", **key))
        assert [(r["chunk_index"], r["start"], r["text"]) for r in rows] == [
            (i, 100 + i, f"docA v4 chunk {i}") for i in keep
        ]

        # Nothing else moved: another document, the other method, the other chunking.
        assert texts_of("docB") == [f"docB b chunk {i}" for i in range(5)]
        assert texts_of(method="naive") == [f"docA naive chunk {i}" for i in range(7)]
        assert texts_of(chunking="fixed-4") == [f"docA other chunking chunk {i}" for i in range(6)]
        assert store.count_chunks(client, name) == 4 + sum(len(r) for r, _ in bystanders)

    def test_streams_and_corpora_replace_documents_too(self, backend, name):
        client = backend.client
        store.create_collection(client, name, 8)
        first = corpus_version({"a": 6, "b": 3, "c": 4}, "v1")
        store.ingest(client, name, first, progress=False)
        # A new version in a stream: "a" shrinks and runs on across two parts, "b" grows,
        # and "c" has no chunk any more (its text became empty).
        second = corpus_version({"a": 2, "b": 5, "c": 0}, "v2")
        parts = [split_corpus(second, 0, 1), split_corpus(second, 1)]
        assert [len(p) for p in parts] == [1, 6]
        assert store.ingest_batches(client, name, iter(parts), progress=False) == 7
        expected = [(r["doc_id"], r["chunk_index"], r["text"]) for r in second.records]
        rows = stored_rows(client, name)
        assert [(r["doc_id"], r["chunk_index"], r["text"]) for r in rows] == expected
        # A corpus ingested whole replaces the same way, here back to the first version.
        store.ingest(client, name, first, progress=False)
        rows = stored_rows(client, name)
        assert [(r["doc_id"], r["chunk_index"], r["text"]) for r in rows] == [
            (r["doc_id"], r["chunk_index"], r["text"]) for r in first.records
        ]

    def test_a_writer_killed_between_upsert_and_delete_leaves_no_fewer_rows(self, backend, name):
        key = {"method": "late", "model": "m", "chunking": "fixed-8"}
        store.create_collection(backend.client, name, 8)
        old_records, old_vectors = version_of("docA", 10, "v1")
        store.ingest(backend.client, name, old_records, old_vectors, **key, progress=False)
        store.close(backend.client)
        # The writer ingests a shorter version and is killed (SIGKILL) the moment the store
        # asks Milvus to delete the old version's extra rows: after the new rows went in.
        code = textwrap.dedent(f"""
            import os, signal
            import pymilvus
            from lc_utils import store
            from tests.test_store import version_of

            def killed(*args, **kwargs):
                print("killed at delete", flush=True)
                os.kill(os.getpid(), signal.SIGKILL)

            pymilvus.MilvusClient.delete = killed
            client = store.connect({backend.uri!r})
            records, vectors = version_of("docA", 4, "v2")
            store.ingest(client, {name!r}, records, vectors, **{key!r}, progress=False)
            print("not killed", flush=True)
        """)
        writer = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=180
        )
        assert writer.returncode == -signal.SIGKILL, writer.stderr[-2000:]
        assert writer.stdout.strip() == "killed at delete"
        client = backend.reopen()
        assert store.count_chunks(client, name, doc_id="docA", **key) == 10
        expression = store.filter_expression(doc_id="docA", **key)
        rows = stored_rows(client, name, expression)
        # Never fewer rows than either version: the new four, and the old six beyond them.
        assert [r["text"] for r in rows] == [f"docA v2 chunk {i}" for i in range(4)] + [
            f"docA v1 chunk {i}" for i in range(4, 10)
        ]
        # Running the ingestion again finishes the job.
        records, vectors = version_of("docA", 4, "v2")
        store.ingest(client, name, records, vectors, **key, progress=False)
        rows = stored_rows(client, name, expression)
        assert [r["text"] for r in rows] == [f"docA v2 chunk {i}" for i in range(4)]
        assert store.count_chunks(client, name) == 4

    def test_search_refuses_degenerate_queries_naming_the_row(self, backend, name):
        client = backend.client
        records, vectors = make_chunks(2, 3, 8)
        store.create_collection(client, name, 8)
        store.ingest(client, name, records, vectors, method="late", model="m", chunking="c")
        for row, bad, kind in [
            (1, np.nan, "not finite"),
            (2, np.inf, "not finite"),
            (0, 0, "zero"),
        ]:
            queries = vectors[:3].copy()
            queries[row] = bad
            with pytest.raises(ValueError, match=f"query vectors: row {row} is .*{kind}"):
                store.search(client, name, queries, k=2)
        with pytest.raises(ValueError, match="row 0 is all zero"):
            store.search(client, name, np.zeros(8, np.float32), k=2)
        assert len(store.search(client, name, vectors[:3], k=2)) == 6

    @pytest.fixture(scope="class")
    @classmethod
    def versions_name(cls, backend):
        name = f"t_versions_{uuid.uuid4().hex[:8]}"
        yield name
        if backend.client.has_collection(name):
            backend.client.drop_collection(name)

    @settings(max_examples=PROPERTY_EXAMPLES, deadline=None)
    @given(
        versions=st.lists(
            st.fixed_dictionaries({d: st.integers(0, 5) for d in ("a", "b", "c")}),
            min_size=1,
            max_size=4,
        ),
        cuts=st.lists(st.integers(0, 16), min_size=4, max_size=4),
        streamed=st.lists(st.booleans(), min_size=4, max_size=4),
    )
    def test_any_sequence_of_versions_leaves_exactly_the_last(
        self, backend, versions_name, versions, cuts, streamed
    ):
        client, name = backend.client, versions_name
        store.create_collection(client, name, 8, overwrite=True)
        bystander = corpus_version({"a": 3}, "bystander", chunking="sentences")
        store.ingest(client, name, bystander, progress=False)
        for number, sizes in enumerate(versions):
            corpus = corpus_version(sizes, f"v{number}")
            if streamed[number]:
                parts = [split_corpus(corpus, 0, cuts[number]), split_corpus(corpus, cuts[number])]
                store.ingest_batches(client, name, iter(parts), progress=False)
            else:
                store.ingest(client, name, corpus, progress=False)
        last = corpus
        expression = store.filter_expression(chunking="fixed-8")
        rows = client.query(
            name,
            filter=expression,
            output_fields=["id", "doc_id", "chunk_index", "start", "end", "text", "vector"],
            consistency_level="Strong",
        )
        rows = sorted(rows, key=lambda r: (r["doc_id"], r["chunk_index"]))
        assert [r["id"] for r in rows] == store.chunk_ids(last)
        assert [{k: r[k] for k in store.schema.RECORD_KEYS} for r in rows] == last.records
        if rows:
            stored = np.array([r["vector"] for r in rows], dtype=np.float32)
            np.testing.assert_allclose(stored, last.vectors, atol=1e-6)
        assert store.count_chunks(client, name, chunking="sentences") == 3


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
        with pytest.raises(store.MilvusConnectionError, match="another process has this") as caught:
            store.connect(path)
        assert "lc.store.close(client)" in str(caught.value)
        assert time.monotonic() - started < 15
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)


@pytest.mark.parametrize("where", ["/proc/x.db", "a_file/x.db"])
def test_an_unusable_lite_path_names_the_cause(tmp_path, monkeypatch, capfd, where):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a_file").write_text("not a folder")
    with pytest.raises(store.MilvusConnectionError) as caught:
        store.connect(where)
    message = str(caught.value)
    assert where in message and "\n" not in message
    assert re.search(r"No such file or directory|Not a directory|Permission denied", message)
    assert "Traceback" not in capfd.readouterr().err


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
    assert store.filter_expression(model="a", filter='doc_id == "x)"') == (
        'model == "a" and (doc_id == "x)")'
    )
    for hostile, message in [
        ("x >= 0) or (1 == 1", "did not open"),
        ("(x >= 0", "open"),
        ('doc_id == "x', "unterminated"),
        ("x >= 0 // c", "comment"),
        ("x in [1, 2)", "did not open"),
    ]:
        with pytest.raises(ValueError, match=message):
            store.filter_expression(model="a", filter=hostile)


def test_chunk_ids_are_stable_and_distinct():
    first = store.chunk_id("doc", 1, "late", "m", "fixed-64")
    assert first == store.chunk_id("doc", 1, "late", "m", "fixed-64") and len(first) == 32
    others = {
        store.chunk_id("doc", 1, "naive", "m", "fixed-64"),
        store.chunk_id("doc", 2, "late", "m", "fixed-64"),
        store.chunk_id("doc1", 1, "late", "m", "fixed-64"),
        store.chunk_id("doc", 1, "late", "m2", "fixed-64"),
        store.chunk_id("doc", 1, "late", "m", "fixed-32"),
        store.chunk_id('doc", 1', 1, "late", "m", "fixed-64"),
    }
    assert first not in others and len(others) == 6
    frame = pd.DataFrame([{"doc_id": "doc", "chunk_index": 1}])
    assert store.chunk_ids(frame, method="late", model="m", chunking="fixed-64") == [first]
    corpus = CorpusEmbeddings(
        frame.to_dict("records"), np.ones((1, 2)), "late", "m", [], "fixed-64"
    )
    assert store.chunk_ids(corpus) == [first]
    with pytest.raises(ValueError, match="chunking=None"):
        store.chunk_ids(frame, method="late", model="m")
    with pytest.raises(ValueError, match="contradicts the corpus"):
        store.chunk_ids(corpus, chunking="fixed-32")


def test_a_collection_without_the_chunking_field_is_refused(tmp_path):
    from pymilvus import DataType

    client = store.connect(tmp_path / "old.db")
    try:
        schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=32)
        for field in ("doc_id", "method", "model", "text"):
            schema.add_field(field, DataType.VARCHAR, max_length=256)
        for field in ("chunk_index", "start", "end"):
            schema.add_field(field, DataType.INT64)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=4)
        indexes = client.prepare_index_params()
        indexes.add_index("vector", index_type="FLAT", metric_type="COSINE")
        client.create_collection("old", schema=schema, index_params=indexes)
        records, vectors = make_chunks(1, 2, 4)
        with pytest.raises(ValueError, match="has no chunking field.*overwrite=True"):
            store.ingest(client, "old", records, vectors, method="late", model="m", chunking="c")
        with pytest.raises(ValueError, match="has no chunking field"):
            store.search(client, "old", vectors, k=1)
        assert store.create_collection(client, "old", 4, overwrite=True)["created"] is True
    finally:
        store.close(client)


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


def test_validation_tables_keep_every_report_and_its_queries():
    import pandas as pd

    def report(agreement, n):
        per_query = pd.DataFrame({"query": range(n), "agreement": [agreement] * n})
        return {"agreement_at_k": agreement, "strict_agreement_at_k": agreement,
                "max_abs_score_diff": 1e-7, "n_queries": n, "per_query": per_query}  # fmt: skip

    reports = {"FLAT": {"late": report(1.0, 3), "naive": report(1.0, 3)},
               "HNSW": {"late": report(0.9, 2)}}  # fmt: skip
    summary, per_query = store.validation_tables(reports)
    assert summary.loc[("HNSW", "late"), "agreement_at_k"] == 0.9
    assert summary["agreement_at_k"].unstack().to_dict("index")["FLAT"] == {
        "late": 1.0, "naive": 1.0
    }  # fmt: skip
    assert len(per_query) == 8
    assert per_query.groupby(["index", "method"]).size().to_dict() == {
        ("FLAT", "late"): 3, ("FLAT", "naive"): 3, ("HNSW", "late"): 2
    }  # fmt: skip


def test_rows_keep_the_pass_shape_and_older_collections_still_work(tmp_path):
    from pymilvus import DataType

    from lc_utils.scale.resume import check_resumable

    def shapes(name):
        rows = client.query(
            name, filter="chunk_index >= 0", output_fields=["window", "overlap"],
            consistency_level="Strong",
        )  # fmt: skip
        return {(r["window"], r["overlap"]) for r in rows}

    client = store.connect(tmp_path / "shape.db")
    try:
        store.create_collection(client, "c", 4)
        records, vectors = version_of("doc", 3, "v1", dim=4)
        corpus = CorpusEmbeddings(
            records, vectors, "late", "m", [], "fixed-8", ["doc"], window=64, overlap=4
        )
        store.ingest(client, "c", corpus, progress=False)
        assert shapes("c") == {(64, 4)}
        # Parts without a pass shape store -1 ("not known"), which no scale-out run matches.
        store.ingest(client, "c", records, vectors, method="late", model="m", chunking="fixed-8",
                     progress=False)  # fmt: skip
        assert shapes("c") == {(-1, -1)}
        store.ingest(client, "c", records, vectors, method="late", model="m", chunking="fixed-8",
                     window=32, overlap=0, progress=False)  # fmt: skip
        assert shapes("c") == {(32, 0)}
        assert store.count_chunks(client, "c") == 3
        with pytest.raises(ValueError, match="window=128 contradicts the corpus"):
            store.ingest(client, "c", corpus, window=128, progress=False)
        with pytest.raises(ValueError, match="overlap=-2; must be an int >= 0"):
            store.ingest(client, "c", records, vectors, method="late", model="m",
                         chunking="fixed-8", overlap=-2, progress=False)  # fmt: skip
        assert shapes("c") == {(32, 0)}
        check_resumable(client, "c")

        # A collection from before the window fields: still written and searched, but refused
        # for resuming, with one line that says what to do.
        schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=32)
        for field in ("doc_id", "method", "model", "chunking", "text"):
            schema.add_field(field, DataType.VARCHAR, max_length=256)
        for field in ("chunk_index", "start", "end"):
            schema.add_field(field, DataType.INT64)
        schema.add_field("text_truncated", DataType.BOOL)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=4)
        indexes = client.prepare_index_params()
        indexes.add_index("vector", index_type="FLAT", metric_type="COSINE")
        client.create_collection("before", schema=schema, index_params=indexes)
        assert store.ingest(client, "before", corpus, progress=False) == 3
        assert len(store.search(client, "before", vectors[:1], k=3)) == 3
        with pytest.raises(ValueError, match="'before' was created before") as caught:
            check_resumable(client, "before")
        assert "\n" not in str(caught.value) and "overwrite=True" in str(caught.value)
    finally:
        store.close(client)
