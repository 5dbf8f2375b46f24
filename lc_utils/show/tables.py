"""Tables the notebooks show: the comparisons of ``lc_utils.eval`` laid out for reading.

Nothing here computes a method or a metric; each function arranges results computed elsewhere.

Introduced in notebook 06_chunking_strategies.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from ..eval.metrics import LEVELS
from ..eval.scoring import MethodComparison
from ..vectors import within_document_cosine

__all__ = [
    "chunk_lengths",
    "results_table",
    "kind_differences",
    "within_document_table",
    "relevant_text_differences",
]


def chunk_lengths(model, comparisons: Mapping[str, MethodComparison]) -> pd.DataFrame:
    """How long the chunks of each chunking are, in model tokens, and how many naive truncates.

    Args:
        model: the model whose tokenizer counts the tokens.
        comparisons: ``{label: MethodComparison}``, e.g. from ``compare_chunkings``.
    Returns:
        One row per label with ``n_chunks`` (int), ``mean_tokens`` (float), ``longest_tokens``
        (int) and ``truncated_by_naive`` (int: chunks longer than naive chunking keeps, the
        model's ``window().content_tokens``).
    Introduced in notebook 06_chunking_strategies.
    """
    content_tokens = model.window().content_tokens  # where naive chunking cuts a text
    rows = {}
    for label, comparison in comparisons.items():
        texts = [record["text"] for record in comparison.records]
        ids = model.tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]
        lengths = np.array([len(i) for i in ids], dtype=np.int64)
        rows[label] = {
            "n_chunks": len(texts),
            "mean_tokens": float(lengths.mean()) if len(lengths) else 0.0,
            "longest_tokens": int(lengths.max()) if len(lengths) else 0,
            "truncated_by_naive": int((lengths > content_tokens).sum()),
        }
    table = pd.DataFrame(rows).T.rename_axis("chunking")
    return table.astype(
        {"n_chunks": int, "mean_tokens": float, "longest_tokens": int, "truncated_by_naive": int}
    )


def results_table(
    comparisons: Mapping[str, MethodComparison], *, baselines: Mapping[str, Mapping] | None = None
) -> pd.DataFrame:
    """Every method's means, one row per ``(chunking, level, method)``, for tables and plots.

    Args:
        comparisons: ``{label: MethodComparison}``, e.g. from ``compare_chunkings``.
        baselines: ``{method: results}`` scored at document level only and shared by every
            chunking, e.g. ``{"document vector": evaluate_document_vectors(...).results}``.
    Returns:
        DataFrame with columns ``chunking``, ``level``, ``method`` and one per metric mean (and
        ``num_queries``), in the order of ``comparisons``, levels and methods.
    Introduced in notebook 06_chunking_strategies.
    """
    rows = []
    for label, comparison in comparisons.items():
        for level in LEVELS:
            for method in comparison.methods:
                rows.append(
                    {"chunking": label, "level": level, "method": method}
                    | comparison.results[method][level]
                )
            if level == "document":
                for method, results in (baselines or {}).items():
                    rows.append({"chunking": label, "level": level, "method": method} | results)
    return pd.DataFrame(rows)


def kind_differences(
    comparisons: Mapping[str, MethodComparison],
    kind_of: Callable | Mapping,
    *,
    level: str = "chunk",
    metric: str = "ndcg@10",
    method: str = "late",
    baseline: str = "naive",
) -> pd.DataFrame:
    """Mean ``method − baseline`` per kind of query, one column per chunking.

    Args:
        comparisons: ``{label: MethodComparison}``.
        kind_of, level, metric, method, baseline: as in ``MethodComparison.by_kind``.
    Returns:
        float DataFrame indexed by kind (and ``"all"`` last), one column per label.
    Introduced in notebook 06_chunking_strategies.
    """
    columns = {
        label: comparison.by_kind(
            kind_of, metric=metric, level=level, method=method, baseline=baseline
        )["difference"]
        for label, comparison in comparisons.items()
    }
    return pd.DataFrame(columns).astype(float)


def within_document_table(
    comparisons: Mapping[str, MethodComparison], methods: Sequence[str] = ("naive", "late")
) -> pd.DataFrame:
    """Mean ``within_document_cosine`` over the documents, per chunking and method.

    Returns:
        float DataFrame, one row per label, one column per method.
    Introduced in notebook 06_chunking_strategies.
    """
    return pd.DataFrame(
        {
            label: {
                method: within_document_cosine(
                    comparison.records, comparison.vectors[method]
                ).mean()
                for method in methods
            }
            for label, comparison in comparisons.items()
        }
    ).T.astype(float)


def relevant_text_differences(
    comparisons: Mapping[str, MethodComparison],
    matches: Callable[[object, str], bool],
    kind_of: Callable | Mapping,
    **options,
) -> pd.DataFrame:
    """``MethodComparison.split_by_relevant_text`` for every chunking, stacked.

    Returns:
        DataFrame with a ``chunking`` column followed by ``split_by_relevant_text``'s columns.
    Introduced in notebook 06_chunking_strategies.
    """
    parts = [
        comparison.split_by_relevant_text(matches, kind_of, **options).assign(chunking=label)
        for label, comparison in comparisons.items()
    ]
    table = pd.concat(parts, ignore_index=True)
    return table[["chunking", *[c for c in table if c != "chunking"]]]
