"""The late-chunking paper's benchmark table, and the datasets to set beside it.

Günther et al. (2024), "Late Chunking: Contextual Chunk Embeddings Using Long-Context Embedding
Models", arXiv 2409.04701, report nDCG@10 on four BEIR datasets with jina-embeddings-v2-small-en
and fixed chunks of 256 tokens, for naive chunking, late chunking and no chunking (one vector per
document). ``PAPER_NDCG10`` holds those published values as facts, in percent.

``load_benchmark`` gives one dataset as the ``RetrievalTask`` ``lc_utils.eval`` takes: Python's own
reference topics (``"pydoc"``, offline, with the queries of ``build_pydoc_queries``), a BEIR
folder on disk, or a BEIR dataset by name, downloaded on first use through
``lc_utils.datasets.download_beir`` into a cache folder and read from there afterwards.
"""

from __future__ import annotations

import os
import random
from dataclasses import replace
from pathlib import Path

from ..datasets.beir import download_beir, load_beir
from ..datasets.pydoc_topics import load_pydoc_task
from ..datasets.task import RetrievalTask

__all__ = ["PAPER_NDCG10", "PAPER_SETTINGS", "load_benchmark", "paper_values"]

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


def paper_values(task: RetrievalTask) -> dict[str, float] | None:
    """The published ``{"naive", "late", "no_chunking"}`` nDCG@10 in percent for the task's
    dataset (``PAPER_NDCG10``, looked up by the task's name), or ``None`` when the paper has no
    value for it.

    Introduced in notebook 11_paper_benchmarks.
    """
    return PAPER_NDCG10.get(task.name.lower())


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
) -> RetrievalTask:
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
        ``RetrievalTask`` named ``"pydoc"``, the BEIR name, or the folder's name, of source
        ``"pydoc"``, ``"folder"`` (read from a path) or ``"beir"`` (a cached download). For
        BEIR, documents join title and text with a blank line and ``qrels_spans`` hold one
        span over each relevant document; judgments are restricted to the documents kept.
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
    if dataset == "pydoc":
        task = load_pydoc_task(n_documents, seed=seed)
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
        task = load_beir(path, split)
        if n_documents:
            task = task.subset(doc_ids=list(task.documents)[:n_documents])
        task = replace(task, name=dataset if source == "beir" else path.name, source=source)
    kept = [q for q in task.queries if task.qrels_doc.get(q) and task.qrels_spans.get(q)]
    if max_queries and len(kept) > max_queries:
        chosen = set(random.Random(seed).sample(kept, max_queries))
        kept = [q for q in kept if q in chosen]
    if not kept:
        raise ValueError(
            f"no query of {task.name!r} has a relevant document among the "
            f"{len(task.documents)} kept; raise n_documents or check the qrels split"
        )
    return task.subset(query_ids=kept)
