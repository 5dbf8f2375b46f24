"""Statistics for comparing two methods on the same queries: paired differences with bootstrap
intervals.

Introduced in notebook 11_paper_benchmarks.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["paired_difference"]


def paired_difference(
    method_values,
    baseline_values,
    *,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, float | int]:
    """Mean per-query difference ``method - baseline`` with a paired bootstrap interval.

    Both methods must have been scored on the same queries: the pairs are what make a small
    difference readable, since most of a metric's spread comes from how hard each query is.

    Args:
        method_values / baseline_values: per-query values of one metric (pandas Series indexed
            by query id, aligned on the index; or equally long arrays). Queries where either is
            NaN (no relevant item) are left out.
        n_resamples: bootstrap resamples of the queries, ``>= 1``.
        confidence: width of the percentile interval, in ``(0, 1)``.
        seed: seeds the resampling, so the interval is reproducible.
    Returns:
        ``{"mean", "low", "high"}`` (floats: the mean difference and its interval) and
        ``{"method_better", "baseline_better", "ties", "num_queries"}`` (counts of queries).
    Introduced in notebook 11_paper_benchmarks.
    """
    if n_resamples < 1:
        raise ValueError(f"n_resamples={n_resamples}; expected >= 1")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence={confidence}; expected a number in (0, 1), e.g. 0.95")
    if isinstance(method_values, pd.Series) and isinstance(baseline_values, pd.Series):
        pairs = pd.concat([method_values, baseline_values], axis=1, join="inner").to_numpy(float)
    else:
        method_array = np.asarray(method_values, dtype=np.float64)
        baseline_array = np.asarray(baseline_values, dtype=np.float64)
        if method_array.shape != baseline_array.shape or method_array.ndim != 1:
            raise ValueError(
                f"method_values has shape {method_array.shape} and baseline_values "
                f"{baseline_array.shape}; pass two 1-D arrays of one value per query"
            )
        pairs = np.stack([method_array, baseline_array], axis=1)
    pairs = pairs[~np.isnan(pairs).any(axis=1)]
    if not len(pairs):
        raise ValueError(
            "no query has a value for both methods; were they evaluated on the same queries "
            "(pandas Series must share their query-id index)?"
        )
    difference = pairs[:, 0] - pairs[:, 1]
    rng = np.random.default_rng(seed)
    resampled = difference[rng.integers(0, len(difference), size=(n_resamples, len(difference)))]
    tail = (1 - confidence) / 2
    low, high = np.quantile(resampled.mean(axis=1), [tail, 1 - tail])
    return {
        "mean": float(difference.mean()),
        "low": float(low),
        "high": float(high),
        "method_better": int((difference > 0).sum()),
        "baseline_better": int((difference < 0).sum()),
        "ties": int((difference == 0).sum()),
        "num_queries": int(len(difference)),
    }
