"""MTEB tasks for the search system: a BEIR folder on disk as a task, MTEB's own tasks by name,
and one call that runs them all with each method.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from huggingface_hub import constants

from ...datasets.beir import read_beir_folder
from ...models.loading import hub_reachable, load_model
from ...models.model import EmbeddingModel
from .search import METHODS, BestChunkSearch, require_mteb

__all__ = ["PAPER_TASKS", "LONGEMBED_TASKS", "beir_folder_task", "resolve_tasks", "evaluate_tasks"]

PAPER_TASKS = ("SciFact", "NFCorpus", "FiQA2018", "TRECCOVID")
"""The MTEB names of the four BEIR datasets of the late-chunking paper's table."""

LONGEMBED_TASKS = ("LEMBNeedleRetrieval", "LEMBPasskeyRetrieval")
"""LongEmbed's needle and passkey tasks (documents of 256 to 32768 tokens, one split each)."""


def beir_folder_task(folder, *, split: str = "test", name: str | None = None):
    """An MTEB retrieval task over a BEIR folder on disk; nothing is downloaded.

    The folder is read with ``lc.datasets.read_beir_folder`` as BEIR has it (titles apart from
    the texts, every grade, every query judged or not: MTEB drops the queries without judgments
    itself) and handed to MTEB in its own corpus, queries and
    judgments form, so every step after loading is MTEB's. Besides MTEB's scores, which it
    rounds to 5 decimals, the result holds ``ndcg_at_10_unrounded`` and
    ``ndcg_at_10_per_query`` (pytrec_eval's values as MTEB computed them).

    Args:
        folder: a BEIR folder (``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``).
        split: the qrels split; it becomes the task's one evaluation split.
        name: the task's name (default ``BEIR-<folder name>``).
    Returns:
        an ``mteb.abstasks.AbsTaskRetrieval`` instance for ``mteb.evaluate``.
    """
    mteb = require_mteb()
    from mteb.abstasks.retrieval import AbsTaskRetrieval  # optional dependency: extra "mteb"

    folder = Path(folder)
    corpus, queries, qrels = read_beir_folder(folder, split, only_judged_queries=False)
    task_metadata = mteb.TaskMetadata(
        name=name or f"BEIR-{folder.name}",
        description=f"The BEIR-format folder {folder}, read from disk.",
        dataset={"path": str(folder.resolve()), "revision": "local"},
        type="Retrieval",
        category="t2t",
        modalities=["text"],
        eval_splits=[split],
        eval_langs=["eng-Latn"],
        main_score="ndcg_at_10",
    )

    class BeirFolderTask(AbsTaskRetrieval):
        metadata = task_metadata

        def load_data(self, num_proc=None, **kwargs) -> None:
            # MTEB's own retrieval tasks on local files fill these split-keyed attributes too;
            # AbsTaskRetrieval.evaluate converts them to its datasets.
            self.corpus = {split: {d: dict(fields) for d, fields in corpus.items()}}
            self.queries = {split: dict(queries)}
            self.relevant_docs = {split: {q: dict(g) for q, g in qrels.items()}}
            self.data_loaded = True

        def task_specific_scores(self, scores, qrels, results, hf_split, hf_subset) -> dict:
            # ``scores`` holds pytrec_eval's per-query measures, before MTEB rounds their means.
            per_query = {query: values["ndcg_cut_10"] for query, values in scores.items()}
            return {
                "ndcg_at_10_unrounded": float(np.mean(list(per_query.values()))),
                "ndcg_at_10_per_query": per_query,
            }

    return BeirFolderTask()


def _is_folder(task: str) -> bool:
    return Path(task).expanduser().is_dir()


def _dataset_cached(path: str) -> bool:
    return (Path(constants.HF_HUB_CACHE) / f"datasets--{path.replace('/', '--')}").is_dir()


def resolve_tasks(tasks: Sequence) -> list:
    """MTEB task objects for names (``"SciFact"``) and BEIR folder paths, checked to be loadable.

    Raises ``ConnectionError`` within seconds when a named task's data is neither cached nor
    reachable (offline, or ``HF_HUB_OFFLINE`` set), naming the tasks and what to do, before any
    model is loaded. An unknown name raises MTEB's own error, which suggests close names.
    """
    mteb = require_mteb()
    if isinstance(tasks, str):
        tasks = [tasks]
    resolved, remote = [], []
    for task in tasks:
        if not isinstance(task, str):
            resolved.append(task)  # already an MTEB task
        elif _is_folder(task):
            resolved.append(beir_folder_task(Path(task).expanduser()))
        else:
            resolved.append(mteb.get_task(task))
            remote.append(resolved[-1])
    missing = [t for t in remote if not _dataset_cached(t.metadata.dataset["path"])]
    if missing and not hub_reachable():
        names = ", ".join(f"{t.metadata.name} ({t.metadata.dataset['path']})" for t in missing)
        raise ConnectionError(
            f"MTEB downloads its tasks' data from the Hugging Face hub, which this machine cannot "
            f"reach (or HF_HUB_OFFLINE is set), and nothing of {names} is cached. Run this on a "
            "machine that is online (its data is cached for later offline runs, with "
            "HF_HUB_OFFLINE=1), or pass the path of a BEIR folder in place of a task name."
        )
    return resolved


def evaluate_tasks(
    model: EmbeddingModel | str,
    tasks: Sequence,
    methods: Sequence[str] = METHODS,
    *,
    strategy: str = "fixed",
    chunk_options: Mapping | None = None,
    window: int | None = None,
    overlap: int | None = None,
    max_tokens: int | None = None,
    title_separator: str = "\n\n",
    batch_tokens: int | None = None,
    output_dir: str | Path | None = "outputs/mteb",
    overwrite: bool = False,
    progress: bool = True,
    model_options: Mapping | None = None,
) -> pd.DataFrame:
    """Run MTEB retrieval tasks with each method through ``mteb.evaluate``.

    Args:
        model: an ``EmbeddingModel``, or a name for ``lc.load_model`` (loaded after the tasks
            are found loadable, with ``model_options``).
        tasks: MTEB task names (``PAPER_TASKS``, ``LONGEMBED_TASKS``, any retrieval task), BEIR
            folder paths, or MTEB task objects.
        methods: any of ``METHODS``.
        strategy, chunk_options, window, overlap, max_tokens, title_separator, batch_tokens:
            as in ``BestChunkSearch``.
        output_dir: MTEB's result cache (``mteb.ResultCache``): one JSON per task under
            ``results/<model>/<revision>/experiments/<settings>/``. A result already there for
            the same model, revision and settings is reused unless ``overwrite``; ``None``
            writes nothing.
    Returns:
        one row per task, split, subset and method: ``task``, ``split``, ``subset``,
        ``method``, ``main_score`` (the metric's name, e.g. ``"ndcg_at_10"``) and ``score``
        (MTEB's value, rounded to 5 decimals by MTEB).
    """
    mteb = require_mteb()
    for method in methods:
        if method not in METHODS:
            raise ValueError(f"method={method!r}; valid: {METHODS}")
    resolved = resolve_tasks(tasks)
    if not isinstance(model, EmbeddingModel):
        model = load_model(model, **dict(model_options or {}))
    options = dict(chunk_options or {})
    if strategy == "semantic":
        options.setdefault("model", model)  # the semantic chunker embeds sentences
    cache = mteb.ResultCache(cache_path=str(output_dir)) if output_dir is not None else None
    rows = []
    for method in methods:
        search = BestChunkSearch(
            model, method, strategy=strategy, chunk_options=options, window=window,
            overlap=overlap, max_tokens=max_tokens, title_separator=title_separator,
            batch_tokens=batch_tokens, progress=progress,
        )  # fmt: skip
        result = mteb.evaluate(
            search, resolved, cache=cache, overwrite_strategy="always" if overwrite else
            "only-missing", show_progress_bar=progress, co2_tracker=False,
        )  # fmt: skip
        for task_result in result.task_results:
            for split, subsets in task_result.scores.items():
                for scores in subsets:
                    rows.append({
                        "task": task_result.task_name, "split": split,
                        "subset": scores.get("hf_subset", "default"), "method": method,
                        "main_score": next(t.metadata.main_score for t in resolved
                                           if t.metadata.name == task_result.task_name),
                        "score": scores["main_score"],
                    })  # fmt: skip
    return pd.DataFrame(rows, columns=["task", "split", "subset", "method", "main_score", "score"])
