"""The late-chunking paper's benchmark table, and the datasets to set beside it.

Günther et al. (2024), "Late Chunking: Contextual Chunk Embeddings Using Long-Context Embedding
Models", arXiv 2409.04701, report nDCG@10 on four BEIR datasets with jina-embeddings-v2-small-en
and fixed chunks of 256 tokens, for naive chunking, late chunking and no chunking (one vector per
document). ``PAPER_NDCG10`` holds those published values as facts, in percent.

``load_benchmark`` gives one dataset in the shape ``lc_utils.eval`` takes: Python's own
reference topics (``"pydoc"``, offline, with the queries of ``build_pydoc_queries``), a BEIR
folder on disk, or a BEIR dataset by name, downloaded on first use through
``lc_utils.datasets.download_beir`` into a cache folder and read from there afterwards.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path

from ..datasets.beir import download_beir, load_beir
from ..datasets.pydoc_topics import build_pydoc_queries, load_pydoc_topics

__all__ = ["PAPER_NDCG10", "PAPER_SETTINGS", "Benchmark", "load_benchmark"]

PAPER_NDCG10: dict[str, dict[str, float]] = {
    "scifact": {"naive": 64.20, "late": 66.10, "no_chunking": 63.89},
    "trec-covid": {"naive": 63.36, "late": 64.70, "no_chunking": 65.18},
    "fiqa": {"naive": 33.25, "late": 33.84, "no_chunking": 33.43},
    "nfcorpus": {"naive": 23.46, "late": 29.98, "no_chunking": 30.40},
}
"""nDCG@10 in percent, document level, as published in Günther et al. 2024 (arXiv 2409.04701)
for jina-embeddings-v2-small-en with fixed 256-token chunks: naive chunking, late chunking, and no
chunking (the whole document as one vector, up to the model's 8192 tokens)."""

PAPER_SETTINGS = {"model": "jinaai/jina-embeddings-v2-small-en", "chunk_size": 256}
"""The model and fixed chunk size behind ``PAPER_NDCG10``."""


@dataclass(repr=False)
class Benchmark:
    """One retrieval dataset, ready for ``lc_utils.eval.compare_naive_late``.

    Attributes:
        name: ``"pydoc"``, the BEIR name, or the folder's name.
        source: ``"pydoc"``, ``"folder"`` (read from a path) or ``"beir"`` (a cached download).
        path: the BEIR folder, ``None`` for pydoc.
        documents: ``{doc_id: text}`` (for BEIR: title and text joined by a blank line).
        queries: ``{query_id: text}``.
        qrels_spans: ``{query_id: [(doc_id, start, end[, grade]), ...]}``, half-open characters;
            for BEIR one span over each relevant document.
        qrels_doc: ``{query_id: {doc_id: grade}}``, restricted to ``documents``.
        paper: the published ``{"naive", "late", "no_chunking"}`` nDCG@10 in percent for this
            dataset (``PAPER_NDCG10``), or ``None`` when the paper has no value for it.
    """

    name: str
    source: str
    path: Path | None
    documents: dict[str, str]
    queries: dict[str, str]
    qrels_spans: dict
    qrels_doc: dict
    paper: dict[str, float] | None

    def __repr__(self) -> str:
        return (
            f"Benchmark({self.name!r}, source={self.source!r}, documents={len(self.documents)}, "
            f"queries={len(self.queries)})"
        )


def _is_path(dataset: str) -> bool:
    return os.sep in dataset or "/" in dataset or dataset.startswith(".") or Path(dataset).is_dir()


def load_benchmark(
    dataset: str,
    *,
    data_dir: str | os.PathLike[str] = "datasets",
    split: str = "test",
    n_documents: int = 0,
    max_queries: int = 0,
    seed: int = 0,
    timeout: float = 5.0,
) -> Benchmark:
    """Load ``"pydoc"``, a BEIR folder, or a BEIR dataset by name (downloading it once).

    Args:
        dataset: ``"pydoc"``; a path to a BEIR folder (``corpus.jsonl``, ``queries.jsonl``,
            ``qrels/<split>.tsv``); or a BEIR name such as ``"scifact"``, ``"nfcorpus"``,
            ``"fiqa"`` or ``"trec-covid"``, looked up in ``data_dir/<name>`` and downloaded there
            on first use.
        data_dir: the cache folder for downloads.
        split: the qrels split of a BEIR dataset.
        n_documents: ``0`` keeps every document; otherwise the first ``n`` in file (or id)
            order, and only judgments on those are kept: a smaller and easier task than the
            published one, for quick runs.
        max_queries: ``0`` keeps every query; otherwise a sample drawn with ``seed``, in order.
            Queries left without a relevant document are dropped.
        seed: draws the pydoc query templates and the query sample.
        timeout: seconds for the download's reachability probe.
    Returns:
        ``Benchmark``.
    Raises:
        ConnectionError within seconds when a BEIR name is not in ``data_dir`` and the machine
        is offline; the message says where to put the files. FileNotFoundError for a path
        without the BEIR layout. ValueError for a bad argument.
    """
    if not isinstance(dataset, str) or not dataset.strip():
        raise ValueError(
            f"dataset={dataset!r}; expected 'pydoc', a BEIR name such as 'scifact', or the path "
            "of a BEIR folder"
        )
    for name, value in (("n_documents", n_documents), ("max_queries", max_queries)):
        if not isinstance(value, int) or value < 0:
            raise ValueError(f"{name}={value!r}; expected 0 (all) or a positive count")
    path = None
    if dataset == "pydoc":
        documents = load_pydoc_topics(limit=n_documents or None)
        queries, qrels_doc, qrels_spans = build_pydoc_queries(documents, seed=seed)
        name, source, paper = "pydoc", "pydoc", None
    else:
        if _is_path(dataset):
            path, source = Path(dataset), "folder"
        else:
            try:
                path = download_beir(dataset, data_dir, timeout=timeout)
            except ConnectionError as error:
                raise ConnectionError(
                    f"{error} Or run the notebook with -p DATASET <path of that folder>."
                ) from None
            source = "beir"
        data = load_beir(path, split)
        documents = data.documents()
        if n_documents:
            documents = dict(list(documents.items())[:n_documents])
        queries, qrels_spans = data.queries, data.document_spans()
        name = dataset if source == "beir" else path.name
        paper = PAPER_NDCG10.get(name.lower())
        qrels_doc = {
            q: {d: g for d, g in grades.items() if g > 0 and d in documents}
            for q, grades in data.qrels.items()
        }
    qrels_spans = {q: [s for s in spans if s[0] in documents] for q, spans in qrels_spans.items()}
    kept = [q for q in queries if qrels_doc.get(q) and qrels_spans.get(q)]
    if max_queries and len(kept) > max_queries:
        chosen = set(random.Random(seed).sample(kept, max_queries))
        kept = [q for q in kept if q in chosen]
    if not kept:
        raise ValueError(
            f"no query of {name!r} has a relevant document among the {len(documents)} kept; "
            "raise n_documents or check the qrels split"
        )
    return Benchmark(
        name=name,
        source=source,
        path=path,
        documents=documents,
        queries={q: queries[q] for q in kept},
        qrels_spans={q: qrels_spans[q] for q in kept},
        qrels_doc={q: qrels_doc[q] for q in kept},
        paper=paper,
    )
