"""Naive against late chunking on the passkey and needle tasks, pool by pool.

``evaluate_needles`` runs ``lc_utils.evaluation.compare_naive_late`` on every ``(kind, length)``
pool of ``lc_utils.datasets.needles.NeedleTasks`` (a query competes only with its own pool's
documents) and gathers, per query, nDCG@10 at chunk and document level and the cosine between the
query and its best relevant chunk, the quantity that explains who wins. ``NeedleResults.gains``
gives late − naive by length, depth or kind with paired bootstrap intervals.
``build_needle_tasks`` (from ``lc_utils.datasets.needles``) is re-exported here, so that
``lc.long_documents`` alone gives the tasks and their evaluation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pandas as pd

from .chunking import chunk_text
from .datasets.needles import NeedleTasks, build_needle_tasks
from .evaluation import MethodComparison, compare_naive_late, paired_difference
from .judgments import chunk_keys
from .late import embed_queries
from .metrics import LEVELS
from .models import EmbeddingModel
from .vectors import cosine_scores

__all__ = [
    "NeedleResults",
    "build_needle_tasks",
    "evaluate_needles",
    "plot_gains",
    "plot_gain_heatmap",
]

_METHODS = ("naive", "late")


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
    tasks: NeedleTasks,
    *,
    strategy: str = "fixed",
    chunk_options: Mapping | None = None,
    window: int | None = None,
    overlap: int | None = None,
) -> NeedleResults:
    """Naive and late chunking on every pool of ``tasks``, on the same chunks.

    Args:
        model: from ``load_model``.
        tasks: from ``lc_utils.datasets.needles.build_needle_tasks``.
        strategy / chunk_options: the chunking (``chunk_text``), by default fixed chunks of 64
            tokens; a ``"semantic"`` chunking gets ``model`` added to its options.
        window / overlap: late chunking's windows (default: the library's).
    Returns:
        ``NeedleResults``.
    """
    options = dict(chunk_options or ({"chunk_size": 64} if strategy == "fixed" else {}))
    if strategy == "fixed":
        options.setdefault("tokenizer", model.tokenizer)
    if strategy == "semantic":
        options.setdefault("model", model)
    rows, comparisons = [], {}
    for kind, length in tasks.pools:
        pool = tasks.pool(kind, length)
        chunks = {d: chunk_text(text, strategy, **options) for d, text in pool.documents.items()}
        comparison = compare_naive_late(
            model,
            pool.documents,
            chunks,
            pool.queries,
            qrels_spans=pool.qrels_spans,
            qrels_doc=pool.qrels_doc,
            window=window,
            overlap=overlap,
            progress=False,
        )
        comparisons[kind, length] = comparison
        query_vectors = embed_queries(model, [pool.queries[q] for q in comparison.query_ids])
        column = {key: i for i, key in enumerate(chunk_keys(comparison.records))}
        for method in _METHODS:
            cosine = cosine_scores(query_vectors, comparison.vectors[method])
            best = {
                query_id: max(
                    float(cosine[i, column[key]]) for key in comparison.chunk_qrels[query_id]
                )
                for i, query_id in enumerate(comparison.query_ids)
            }
            for level in LEVELS:
                frame = pool.needles[["kind", "length", "depth"]].copy()
                frame["method"], frame["level"] = method, level
                frame["ndcg@10"] = comparison.per_query[method][level]["ndcg@10"]
                frame["relevant_cosine"] = pd.Series(best)
                rows.append(frame)
    per_query = pd.concat(rows).rename_axis("query_id").reset_index()
    return NeedleResults(per_query, comparisons)


def plot_gains(gains: pd.DataFrame, *, title: str):
    """Late − naive with its intervals: one panel per grouping, one line per level.

    Args:
        gains: rows with ``by`` (the grouping: ``"length"`` is drawn on a log scale), ``value``
            (the group), ``level``, ``mean``, ``low`` and ``high``, e.g. ``NeedleResults.gains``
            of several groupings concatenated with the grouping's column renamed to ``value``.
        title: the figure's title.
    Returns:
        the matplotlib ``Figure``.
    """
    import matplotlib.pyplot as plt
    import numpy as np

    groupings = list(dict.fromkeys(gains["by"]))
    fig, axes = plt.subplots(1, len(groupings), figsize=(6 * len(groupings), 4), sharey=True)
    for ax, by in zip(np.atleast_1d(axes), groupings, strict=True):
        part = gains[gains["by"] == by]
        ticks = sorted(part["value"].unique())
        position = dict(zip(ticks, range(len(ticks)), strict=True))
        for i, (level, rows) in enumerate(part.groupby("level", sort=False)):
            x = rows["value"].map(position) + 0.08 * (i - 0.5)  # levels side by side
            errors = [rows["mean"] - rows["low"], rows["high"] - rows["mean"]]
            ax.errorbar(x, rows["mean"], yerr=errors, marker="o", capsize=4, label=f"{level} level")
        ax.set_xticks(range(len(ticks)), [f"{t:g}" for t in ticks])
        ax.axhline(0, color="grey", linewidth=1)
        ax.set(title=f"by {by}", xlabel=by, ylabel="late − naive (95% interval)")
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_gain_heatmap(cells: pd.DataFrame, *, title: str, label: str = "late − naive"):
    """A heat map per level of the mean difference by document length (rows) and depth (columns).

    Args:
        cells: ``NeedleResults.gains(["length", "depth"])``.
        title / label: the figure's title and the colour bar's label.
    Returns:
        the matplotlib ``Figure``.
    """
    import matplotlib.pyplot as plt
    import seaborn as sns

    table = cells.pivot_table(index=["level", "length"], columns="depth", values="mean")
    levels = list(dict.fromkeys(cells["level"]))
    fig, axes = plt.subplots(1, len(levels), figsize=(6 * len(levels), 3.8), squeeze=False)
    for ax, level in zip(axes[0], levels, strict=True):
        sns.heatmap(
            table.loc[level], annot=True, fmt="+.2f", center=0, vmin=-1, vmax=1, cmap="vlag_r",
            cbar_kws={"label": label}, ax=ax,
        )  # fmt: skip
        ax.set(title=f"{level} level", xlabel="depth of the fact", ylabel="document length")
    fig.suptitle(title)
    fig.tight_layout()
    return fig
