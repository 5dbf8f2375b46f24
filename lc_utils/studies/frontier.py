"""The cost/quality frontier of late chunking's window and overlap, and a default chosen from it.

A document longer than one window runs in overlapping windows (``lc_utils.late.windows``). Two
settings decide what that costs and what it gives: the window (positions per forward pass) and the
overlap (content tokens a window shares with the one before). This module measures a grid of
them on one set of chunks and queries and picks the cheapest setting that is not significantly
worse than the best:

* ``window_settings``: the grid, by default the model's trained length (sentence-transformers'
  ``max_seq_length``, where declared) and its position limit, times overlaps of 0, 1/16, 1/8 and
  1/4 of the content window (1/16 is the library's default since this frontier chose it, 1/4
  the convention before);
* ``encode_settings``: late-chunking vectors of the same chunk records under every setting, with
  the tokens each setting computes and the time it took (documents outer, settings inner and
  rotated, so that a slow spell of a shared machine falls on every setting alike);
* ``frontier_table``: per setting, the mean metric at chunk and document level and its paired
  bootstrap difference from the best setting of that level;
* ``measure_frontier``: all of the above for one retrieval task, in one call;
* ``choose_setting``: among the settings whose interval against the best reaches zero at every
  level of every table, the one computing the fewest tokens (then the least attention work).

Cost is counted in computed tokens, which are exact and the same on every machine, rather than
in seconds, which drift on shared machines; seconds are recorded alongside.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..corpus import embed_corpus
from ..datasets.task import RetrievalTask
from ..eval.metrics import LEVELS
from ..eval.scoring import MethodComparison, evaluate_methods
from ..eval.stats import paired_difference
from ..late.naive import embed_queries
from ..late.pooling import encode_document, pool_records
from ..late.windows import plan_windows
from ..models.model import EmbeddingModel
from ..progress import progress_bar
from ..text.tokens import tokenize_document

__all__ = [
    "DEFAULT_OVERLAP_FRACTIONS",
    "WindowSetting",
    "FrontierRun",
    "window_settings",
    "encode_settings",
    "frontier_table",
    "choose_setting",
    "measure_frontier",
]

DEFAULT_OVERLAP_FRACTIONS = (0.0, 1 / 16, 1 / 8, 1 / 4)


@dataclass(frozen=True)
class WindowSetting:
    """One window plan: ``window`` positions per pass, ``overlap`` content tokens shared.

    ``fraction`` is the overlap as a share of the content window it was derived from.
    """

    window: int
    overlap: int
    fraction: float

    @property
    def label(self) -> str:
        """``"<window>/<overlap>"``, e.g. ``"512/127"``; unique within a grid."""
        return f"{self.window}/{self.overlap}"


def window_settings(
    model: EmbeddingModel,
    *,
    windows: Sequence[int] | None = None,
    overlap_fractions: Sequence[float] = DEFAULT_OVERLAP_FRACTIONS,
) -> list[WindowSetting]:
    """The grid of window plans to measure, windows outer and overlaps inner.

    Args:
        model: from ``load_model``; gives the position limit and the trained length.
        windows: positions per pass, special tokens included. ``None`` takes the model's
            ``trained_length`` (when declared and below the limit) and its ``max_length``.
        overlap_fractions: each in ``[0, 1)``; the overlap is ``floor(fraction * content
            window)``, so ``1/16`` reproduces the library's default and ``1/4`` the former one.
    Returns:
        ``WindowSetting`` list without duplicates.
    """
    if windows is None:
        windows = [model.max_length]
        if model.trained_length and model.trained_length < model.max_length:
            windows.insert(0, int(model.trained_length))
    fractions = [float(f) for f in overlap_fractions]
    if not fractions or not all(0 <= f < 1 for f in fractions):
        raise ValueError(f"overlap_fractions={fractions}; give fractions in [0, 1), e.g. 0.25")
    settings: dict[str, WindowSetting] = {}
    for window in windows:
        shape = model.window(window)
        window, content = shape.positions, shape.content_tokens
        for fraction in fractions:
            setting = WindowSetting(window, int(fraction * content), fraction)
            settings.setdefault(setting.label, setting)
    return list(settings.values())


@dataclass
class FrontierRun:
    """Late-chunking vectors of the same records under several window settings.

    Attributes:
        settings: the ``WindowSetting`` of every run, in grid order.
        vectors: ``{label: float32 (len(records), dim)}``, rows following the records.
        costs: one row per label: ``window``, ``overlap``, ``fraction``, ``n_tokens`` (the
            documents' content tokens), ``tokens_computed`` (content tokens run through the
            model), ``token_ratio`` (computed / n_tokens), ``attention`` (sum over passes of the
            squared pass length: the part of the cost that grows with the window), ``passes``
            and ``seconds`` (wall time of the forward passes and tokenization).
    """

    settings: list[WindowSetting]
    vectors: dict[str, np.ndarray]
    costs: pd.DataFrame


def encode_settings(
    model: EmbeddingModel,
    documents: Mapping[str, str],
    records: Sequence[Mapping],
    settings: Sequence[WindowSetting],
    *,
    batch_tokens: int | None = None,
    progress: bool = True,
) -> FrontierRun:
    """Late-pool the same chunk records under every window setting.

    Args:
        model: from ``load_model``.
        documents: ``{doc_id: text}``; every document named by ``records`` must be here.
        records: chunk records with ``doc_id``, ``start``, ``end`` (half-open characters), e.g.
            ``MethodComparison.records`` from ``compare_naive_late``, so that every setting
            and the naive baseline score the same chunks.
        settings: from ``window_settings``.
        batch_tokens: as in ``encode_document``.
        progress: a bar over the documents, echoed to the runner's console; it moves between
            documents, outside the timed passes.
    Returns:
        ``FrontierRun``. Each document is encoded once per distinct window plan and pooled at
        once, so memory holds one document's token embeddings at a time. A setting whose plan
        on a document equals an earlier one's (a document within one window) reuses its vectors
        and is charged the same tokens and seconds.
    """
    settings = list(settings)
    if not settings:
        raise ValueError("settings is empty; pass window_settings(model)")
    labels = [s.label for s in settings]
    if len(set(labels)) != len(labels):
        raise ValueError(f"settings repeat a window/overlap pair: {labels}")
    rows_of: dict = {}
    for row, record in enumerate(records):
        rows_of.setdefault(record["doc_id"], []).append(row)
    missing = [doc for doc in rows_of if doc not in documents]
    if missing:
        raise KeyError(f"records name document {missing[0]!r}, which is not in documents")
    vectors = {label: np.full((len(records), model.dim), np.nan, np.float32) for label in labels}
    cost = {label: dict.fromkeys(("tokens_computed", "attention", "passes"), 0) for label in labels}
    seconds = dict.fromkeys(labels, 0.0)
    n_tokens = 0
    bar = progress_bar(len(rows_of), "window settings", "doc", disable=not progress)
    for position, (doc_id, rows) in enumerate(rows_of.items()):
        doc_records = [records[r] for r in rows]
        n_doc = len(tokenize_document(model.tokenizer, documents[doc_id], model.document_prefix))
        # Settings whose windows fall alike on this document (one that fits a window, whatever
        # the overlap) give the same vectors: compute those once and charge each its cost.
        done: dict = {}
        # Rotate which setting goes first, so that no setting always pays for a cold start.
        shift = position % len(settings)
        for setting in settings[shift:] + settings[:shift]:
            content = model.window(setting.window).content_tokens
            plan = plan_windows(n_doc, content, setting.overlap)
            key = (setting.window, plan.windows)
            if key not in done:
                began = time.perf_counter()
                embedding = encode_document(
                    model,
                    documents[doc_id],
                    window=setting.window,
                    overlap=setting.overlap,
                    batch_tokens=batch_tokens,
                    progress=False,
                )
                pooled = pool_records({doc_id: embedding}, doc_records)
                done[key] = (pooled, time.perf_counter() - began)
            pooled, elapsed = done[key]
            seconds[setting.label] += elapsed
            vectors[setting.label][rows] = pooled
            lengths = np.array([b - a for a, b in plan.windows], dtype=np.int64)
            cost[setting.label]["tokens_computed"] += int(lengths.sum())
            cost[setting.label]["attention"] += int((lengths**2).sum())
            cost[setting.label]["passes"] += len(lengths)
        n_tokens += n_doc
        bar.update(1)
    bar.close()
    costs = pd.DataFrame(
        [
            {
                "window": s.window,
                "overlap": s.overlap,
                "fraction": s.fraction,
                "n_tokens": n_tokens,
                **cost[s.label],
                "token_ratio": cost[s.label]["tokens_computed"] / max(n_tokens, 1),
                "seconds": seconds[s.label],
            }
            for s in settings
        ],
        index=pd.Index(labels, name="setting"),
    )
    return FrontierRun(settings, vectors, costs)


def frontier_table(
    comparison: MethodComparison,
    costs: pd.DataFrame,
    *,
    metric: str = "ndcg@10",
    levels: Sequence[str] = LEVELS,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """Quality against cost for every setting, with each setting's distance from the best.

    Args:
        comparison: from ``lc.eval.evaluate_methods`` with one method per row of
            ``costs`` (its labels; other methods, such as ``"naive"``, are ignored).
        costs: ``FrontierRun.costs``.
        metric, levels: what is compared, at which levels.
        n_resamples, confidence, seed: the paired bootstrap (``paired_difference``).
    Returns:
        ``costs`` with, per level, columns ``<level>`` (the mean metric), ``<level>_vs_best``,
        ``<level>_low``, ``<level>_high`` (mean difference from the level's best setting and its
        interval) and ``<level>_not_worse`` (``True`` when the interval's upper end is ``>= 0``:
        the queries cannot tell this setting from the best). The best setting is the one with
        the highest mean; ties go to the cheaper (fewer tokens, then less attention).
    """
    missing = [label for label in costs.index if label not in comparison.per_query]
    if missing:
        raise KeyError(f"no results for setting(s) {missing}; evaluated: {comparison.methods}")
    table = costs.copy()
    for level in levels:
        means = pd.Series(
            {label: comparison.results[label][level][metric] for label in costs.index}
        )
        order = pd.DataFrame(
            {"mean": -means, "tokens": costs["tokens_computed"], "attention": costs["attention"]}
        ).sort_values(["mean", "tokens", "attention"], kind="stable")
        best = order.index[0]
        table[level] = means
        for label in costs.index:
            difference = paired_difference(
                comparison.per_query[label][level][metric],
                comparison.per_query[best][level][metric],
                n_resamples=n_resamples,
                confidence=confidence,
                seed=seed,
            )
            table.loc[label, f"{level}_vs_best"] = difference["mean"]
            table.loc[label, f"{level}_low"] = difference["low"]
            table.loc[label, f"{level}_high"] = difference["high"]
        table[f"{level}_not_worse"] = table[f"{level}_high"] >= 0
        table.attrs[f"{level}_best"] = best
    return table


def choose_setting(
    tables: Mapping[str, pd.DataFrame],
    levels: Sequence[str] = LEVELS,
    *,
    baseline: str | None = None,
) -> dict:
    """The cheapest setting that is not significantly worse than the best, in every table.

    Cheapest means the fewest computed tokens over all tables, then the least attention work,
    then the highest sum of the level means.

    Args:
        tables: ``{task name: frontier_table(...)}`` over the same settings (e.g. one for the
            pydoc corpus and one for the long-document tasks).
        levels: the levels that must hold.
        baseline: a setting label (e.g. the library default) to compare the choice with.
    Returns:
        ``{"setting", "window", "overlap", "fraction", "holds_everywhere", "acceptable",
        "tokens_computed", "token_ratio"}``: ``acceptable`` lists every setting not worse
        anywhere; ``tokens_computed`` is summed over the tables and ``token_ratio`` averaged.
        When no setting is acceptable everywhere, the choice is the one acceptable in the most
        (table, level) pairs, and ``holds_everywhere`` is ``False``. With ``baseline``, also
        ``"baseline"``, ``"tokens_vs_baseline"`` (the choice's tokens over the baseline's, all
        tables together) and, where the tables have ``time_ratio`` against that baseline,
        ``"time_vs_baseline"`` (its mean over the tables).
    """
    if not tables:
        raise ValueError("tables is empty; pass {name: frontier_table(...)}")
    labels = list(next(iter(tables.values())).index)
    for name, table in tables.items():
        if list(table.index) != labels:
            raise ValueError(f"table {name!r} has settings {list(table.index)}; expected {labels}")
    passed = sum(
        table[f"{level}_not_worse"].astype(int) for table in tables.values() for level in levels
    )
    needed = len(tables) * len(levels)
    tokens = sum(table["tokens_computed"] for table in tables.values())
    attention = sum(table["attention"] for table in tables.values())
    ratio = sum(table["token_ratio"] for table in tables.values()) / len(tables)
    # Equal costs are common (the last window is moved left to end with the document, so a small
    # overlap often adds no window): among equally cheap settings, take the better one.
    quality = sum(table[level] for table in tables.values() for level in levels)
    ranking = pd.DataFrame(
        {"missed": needed - passed, "tokens": tokens, "attention": attention, "quality": -quality}
    ).sort_values(["missed", "tokens", "attention", "quality"], kind="stable")
    chosen = ranking.index[0]
    first = next(iter(tables.values()))
    compared = {}
    if baseline is not None:
        if baseline not in labels:
            raise KeyError(f"baseline={baseline!r} is not a setting; settings: {labels}")
        compared["baseline"] = baseline
        compared["tokens_vs_baseline"] = float(tokens[chosen] / tokens[baseline])
        if all("time_ratio" in table for table in tables.values()):
            times = [
                table.loc[chosen, "seconds"] / table.loc[baseline, "seconds"]
                for table in tables.values()
            ]
            compared["time_vs_baseline"] = float(np.mean(times))
    return {
        "setting": chosen,
        "window": int(first.loc[chosen, "window"]),
        "overlap": int(first.loc[chosen, "overlap"]),
        "fraction": float(first.loc[chosen, "fraction"]),
        "holds_everywhere": bool(ranking.loc[chosen, "missed"] == 0),
        "acceptable": [label for label in labels if passed[label] == needed],
        "tokens_computed": int(tokens[chosen]),
        "token_ratio": float(ratio[chosen]),
        **compared,
    }


def measure_frontier(
    model: EmbeddingModel,
    task: RetrievalTask,
    settings: Sequence[WindowSetting],
    *,
    strategy: str = "fixed",
    chunk_options: Mapping | None = None,
    baseline: str | None = None,
    n_resamples: int = 2000,
    seed: int = 0,
    progress: bool = True,
) -> tuple[pd.DataFrame, MethodComparison]:
    """The whole frontier on one corpus: chunk, embed naive, encode every setting, evaluate.

    Args:
        model, settings: as in ``encode_settings``.
        task: the documents, queries and judgments (``qrels_spans``, ``qrels_doc``, as in
            ``evaluate_methods``).
        strategy / chunk_options: the one chunking every setting and the naive baseline share
            (passed to ``embed_corpus``; default fixed chunks of 64 tokens).
        baseline: a setting label (e.g. the library default ``"512/127"``) whose seconds divide
            every setting's into the column ``time_ratio``; ``None`` leaves the column out.
        n_resamples, seed: the paired bootstrap of ``frontier_table``.
        progress: the bars of the naive run and of ``encode_settings``, echoed to the runner's
            console.
    Returns:
        ``(table, comparison)``: ``frontier_table`` of nDCG@10 at both levels, and the
        ``MethodComparison`` of ``"naive"`` and every setting label, for further differences.
    """
    documents, queries = task.documents, task.queries
    options = dict(chunk_options or ({"chunk_size": 64} if strategy == "fixed" else {}))
    naive = embed_corpus(
        model,
        documents,
        method="naive",
        strategy=strategy,
        chunk_options=options,
        progress=progress,
    )
    run = encode_settings(model, documents, naive.records, settings, progress=progress)
    query_ids = list(queries)
    query_vectors = embed_queries(model, [queries[q] for q in query_ids], progress=False)
    comparison = evaluate_methods(
        query_vectors,
        query_ids,
        naive.records,
        {"naive": naive.vectors, **run.vectors},
        qrels_spans=task.qrels_spans,
        qrels_doc=task.qrels_doc,
    )
    table = frontier_table(comparison, run.costs, n_resamples=n_resamples, seed=seed)
    if baseline is not None:
        if baseline not in table.index:
            raise KeyError(f"baseline={baseline!r} is not a setting; settings: {list(table.index)}")
        table["time_ratio"] = table["seconds"] / table.loc[baseline, "seconds"]
    return table, comparison
