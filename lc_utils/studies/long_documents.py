"""Naive against late chunking on the passkey and needle tasks, pool by pool.

``evaluate_needles`` runs ``lc_utils.eval.compare.compare_naive_late`` on every ``(kind, length)``
pool of a ``lc_utils.datasets.build_needle_tasks`` task (a query competes only with its own pool's
documents) and gathers, per query, nDCG@10 at chunk and document level and the cosine between the
query and its best relevant chunk, the quantity that explains who wins. ``NeedleResults.gains``
gives late − naive by length, depth or kind with paired bootstrap intervals.
``build_needle_tasks`` (from ``lc_utils.datasets.needles``) is re-exported here, so that
``lc.studies.long_documents`` alone gives the tasks and their evaluation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pandas as pd

from ..corpus import METHODS
from ..datasets.needles import build_needle_tasks, needle_pools, select_needles
from ..datasets.task import RetrievalTask
from ..eval.compare import compare_naive_late
from ..eval.judgments import chunk_keys
from ..eval.metrics import LEVELS
from ..eval.scoring import MethodComparison
from ..eval.stats import paired_difference
from ..late.naive import embed_queries
from ..models.model import EmbeddingModel
from ..progress import progress_bar
from ..text.strategies import chunk_text
from ..vectors import cosine_scores

__all__ = [
    "NeedleResults",
    "build_needle_tasks",
    "evaluate_needles",
]


@dataclass
class NeedleResults:
    """Per-query results of naive and late chunking on needle tasks.

    Attributes:
        per_query: one row per ``(query, method, level)`` with columns ``query_id``, ``kind``,
            ``length``, ``depth``, ``method``, ``level``, ``ndcg@10`` and ``relevant_cosine``
            (the query's cosine with its best relevant chunk; the same at both levels).
        comparisons: ``{(kind, length): MethodComparison}``, one per pool.
    """

    per_query: pd.DataFrame
    comparisons: dict[tuple[str, int], MethodComparison] = field(repr=False)

    def table(self, values: str = "ndcg@10", by: Sequence[str] = ("kind", "length")):
        """Mean of ``values`` per group (rows) and ``(level, method)`` (columns)."""
        return self.per_query.pivot_table(
            index=list(by), columns=["level", "method"], values=values, sort=False
        )

    def gains(
        self,
        by: str | Sequence[str],
        *,
        values: str = "ndcg@10",
        n_resamples: int = 2000,
        seed: int = 0,
    ) -> pd.DataFrame:
        """Late − naive per group of queries, with paired bootstrap intervals.

        Args:
            by: ``"length"``, ``"depth"``, ``"kind"`` or a list of them.
            values: ``"ndcg@10"`` or ``"relevant_cosine"``.
        Returns:
            One row per ``(level, *by)`` with the columns of ``paired_difference``
            (``mean``, ``low``, ``high``, ``method_better``, ...).
        """
        by = [by] if isinstance(by, str) else list(by)
        wide = self.per_query.pivot_table(
            index=["query_id", "level", *by], columns="method", values=values
        ).reset_index()
        rows = []
        for key, part in wide.groupby(["level", *by]):
            difference = paired_difference(
                part["late"].to_numpy(),
                part["naive"].to_numpy(),
                n_resamples=n_resamples,
                seed=seed,
            )
            rows.append({**dict(zip(["level", *by], key, strict=True)), **difference})
        return pd.DataFrame(rows)


def evaluate_needles(
    model: EmbeddingModel,
    tasks: RetrievalTask,
    *,
    strategy: str = "fixed",
    chunk_options: Mapping | None = None,
    window: int | None = None,
    overlap: int | None = None,
    progress: bool = True,
) -> NeedleResults:
    """Naive and late chunking on every pool of ``tasks``, on the same chunks.

    Args:
        model: from ``load_model``.
        tasks: from ``lc_utils.datasets.needles.build_needle_tasks``.
        strategy / chunk_options: the chunking (``chunk_text``), by default fixed chunks of 64
            tokens; a ``"semantic"`` chunking gets ``model`` added to its options.
        window / overlap: late chunking's windows (default: the library's).
        progress: a bar over the pools, echoed to the runner's console.
    Returns:
        ``NeedleResults``.
    """
    options = dict(chunk_options or ({"chunk_size": 64} if strategy == "fixed" else {}))
    if strategy == "fixed":
        options.setdefault("tokenizer", model.tokenizer)
    if strategy == "semantic":
        options.setdefault("model", model)
    rows, comparisons = [], {}
    pools = needle_pools(tasks)
    bar = progress_bar(len(pools), "needle pools", "pool", disable=not progress)
    for kind, length in pools:
        pool = select_needles(tasks, kinds=[kind], lengths=[length])
        chunks = {d: chunk_text(text, strategy, **options) for d, text in pool.documents.items()}
        comparison = compare_naive_late(
            model,
            pool,
            chunks,
            window=window,
            overlap=overlap,
            progress=False,
        )
        comparisons[kind, length] = comparison
        query_vectors = embed_queries(model, [pool.queries[q] for q in comparison.query_ids])
        column = {key: i for i, key in enumerate(chunk_keys(comparison.records))}
        for method in METHODS:
            cosine = cosine_scores(query_vectors, comparison.vectors[method])
            best = {
                query_id: max(
                    float(cosine[i, column[key]]) for key in comparison.qrels_chunk[query_id]
                )
                for i, query_id in enumerate(comparison.query_ids)
            }
            for level in LEVELS:
                frame = pool.query_info[["kind", "length", "depth"]].copy()
                frame["method"], frame["level"] = method, level
                frame["ndcg@10"] = comparison.per_query[method][level]["ndcg@10"]
                frame["relevant_cosine"] = pd.Series(best)
                rows.append(frame)
        bar.update(1)
    bar.close()
    per_query = pd.concat(rows).rename_axis("query_id").reset_index()
    return NeedleResults(per_query, comparisons)
