"""Figures the notebooks show: the frontier of window settings and the needle gains.

Each function takes results computed elsewhere (``lc_utils.studies``) and returns a matplotlib
``Figure`` with a title and labelled axes, ready for ``lc.save_figure``.

Introduced in notebook 10_long_documents.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from ..eval.metrics import LEVELS
from ..eval.scoring import MethodComparison

__all__ = ["plot_frontier", "plot_gains", "plot_gain_heatmap"]


def plot_frontier(
    tables: Mapping[str, pd.DataFrame],
    *,
    title: str,
    comparisons: Mapping[str, MethodComparison] | None = None,
    levels: Sequence[str] = LEVELS,
):
    """Quality against computed tokens: one panel per (table, level), one line per window.

    Args:
        tables: ``{task name: frontier_table(...)}``.
        title: the figure's title.
        comparisons: ``{task name: MethodComparison}`` from ``measure_frontier``; its
            ``"naive"`` nDCG@10 is drawn as a dashed reference line.
        levels: the levels to draw.
    Returns:
        the matplotlib ``Figure``. Error bars are each setting's 95% interval against the best
        setting of its panel, drawn around the setting's mean.
    """
    fig, axes = plt.subplots(
        len(tables), len(levels), figsize=(6 * len(levels), 4 * len(tables)), squeeze=False
    )
    for row, (name, table) in enumerate(tables.items()):
        for column, level in enumerate(levels):
            ax = axes[row, column]
            for window, part in table.groupby("window"):
                part = part.sort_values(["token_ratio", "overlap"])  # draw lines left to right
                below = part[f"{level}_vs_best"] - part[f"{level}_low"]
                above = part[f"{level}_high"] - part[f"{level}_vs_best"]
                ax.errorbar(
                    part["token_ratio"], part[level], yerr=[below, above], marker="o", capsize=3,
                    label=f"window {window}",
                )  # fmt: skip
                for _, point in part.iterrows():
                    ax.annotate(
                        f"+{point['overlap']}", (point["token_ratio"], point[level]), fontsize=8,
                        xytext=(4, 4), textcoords="offset points",
                    )  # fmt: skip
            if comparisons is not None:
                naive = comparisons[name].results["naive"][level]["ndcg@10"]
                ax.axhline(naive, color="grey", linestyle="--", label="naive")
            ax.set(
                title=f"{name}, {level} level",
                xlabel="tokens computed / document tokens (labels: overlap)",
                ylabel="nDCG@10 (bars: 95% interval vs best)",
            )
            ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


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
