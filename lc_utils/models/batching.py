"""Running id sequences through a model in batches: the one place token ids meet the network.

Late chunking (windows of one document) and naive chunking (each chunk alone) both hand the
model (an ``EmbeddingModel``, which builds on this module and so is not imported here) *jobs*:
the content ids of one pass. This module puts each job between the model's special tokens,
groups the jobs into padded batches under a token budget (``plan_batches``) and yields the
final hidden states batch by batch.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..progress import progress_bar
from ..text.chunking import check_integer

__all__ = [
    "NonFiniteStatesError",
    "Job",
    "plan_batches",
    "default_batch_tokens",
    "pass_cost",
    "forward_batches",
    "run_jobs",
]


class NonFiniteStatesError(ValueError):
    """The network gave NaN or infinite hidden states: its weights (or its dtype) are broken.

    ``document`` is the caller's index of the text whose pass failed; ``embed_corpus`` names
    the document id.
    """

    def __init__(self, model_name: str, document: int, what: str, label: str | None = None):
        self.model_name, self.document, self.what = model_name, document, what
        named = label if label is not None else f"{what} item {document}"
        super().__init__(
            f"{model_name} gave NaN or infinite hidden states for {named}; its weights hold "
            "NaN or overflow (check the checkpoint, or run it in float32)"
        )


@dataclass
class Job:
    """One forward pass's worth of content ids.

    Attributes:
        document: which document (or text) of the caller the pass belongs to.
        ids: int64 ``(n,)`` content ids of this pass, without special tokens.
        keep_from: offset inside ``ids`` of the first token whose state the caller keeps.
        kept: ``(c, d)``, the kept tokens' positions in the caller's document.
    """

    document: int
    ids: np.ndarray
    keep_from: int
    kept: tuple[int, int]


def plan_batches(lengths: Sequence[int], batch_tokens: int, pass_cost: int = 0) -> list[list[int]]:
    """Group sequences into forward batches; returns the indices of each batch, longest first.

    A batch is padded to its longest sequence and holds at most ``batch_tokens`` padded tokens
    (a longer sequence runs alone). Within that budget the grouping is the cheapest under a
    simple cost model: a pass costs its padded tokens plus ``pass_cost`` tokens' worth of fixed
    overhead. Sequences are sorted longest first and cut into contiguous runs by dynamic
    programming, so padding is accepted only where it saves more than a pass costs.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    order = np.argsort(-lengths, kind="stable")
    ordered = lengths[order]
    n = len(order)
    best = np.zeros(n + 1)  # best[i]: the cheapest cost of batching sorted sequences i..n-1
    cut = np.zeros(n, dtype=np.int64)
    for i in range(n - 1, -1, -1):
        # Sequence i is the longest in any batch it starts, so it sets the padded length.
        most = int(min(n - i, max(1, batch_tokens // max(int(ordered[i]), 1))))
        cost = pass_cost + np.arange(1, most + 1) * ordered[i] + best[i + 1 : i + 1 + most]
        k = int(np.argmin(cost))
        best[i], cut[i] = cost[k], i + 1 + k
    batches, i = [], 0
    while i < n:
        batches.append(order[i : cut[i]].tolist())
        i = int(cut[i])
    return batches


def default_batch_tokens(model) -> int:
    """Padded tokens per forward batch when ``batch_tokens`` is not given: 2048 on CPU, 65536
    on a GPU.

    On CPU, batching full windows gains nothing (measured ~20% slower at 16x512), while short
    sequences gain from batching; a token budget gives both. GPUs want large batches.
    """
    return 65_536 if model.device.type == "cuda" else 2_048


def pass_cost(model) -> int:
    """The fixed cost of one forward pass, in tokens, as ``plan_batches`` weighs it.

    On 2 CPU cores a MiniLM pass costs ~3.7 ms beyond its tokens, about 50 tokens' worth, and
    padding costs as much as a real token: 64. On a GPU padding is nearly free and each pass
    pays for its kernel launches: 4096.
    """
    return 4_096 if model.device.type == "cuda" else 64


def _bar(total: int, description: str, progress: bool | None, n_jobs: int):
    if progress is None:
        progress = n_jobs > 16
    if not progress:
        return None
    return progress_bar(total, description, "tok", unit_scale=True, leave=False)


def forward_batches(
    model,
    jobs: list[Job],
    batch_tokens: int | None,
    progress: bool | None,
    description: str,
    *,
    check_finite: bool = True,
) -> Iterator[tuple[list[Job], torch.Tensor, torch.Tensor]]:
    """Run every job's ids between the model's special tokens, batched by length.

    Yields ``(batch, hidden, mask)`` with hidden ``(len(batch), L, dim)`` float32, where position
    ``len(before) + i`` holds content token ``i`` of each job. ``progress`` None shows a token
    bar for more than 16 jobs. With ``check_finite`` a batch with a NaN or infinite state raises
    ``NonFiniteStatesError``; callers that pool check their pooled vectors instead, which costs
    less than a pass over every state.
    """
    before, after = model.special_token_ids
    before, after = np.asarray(before, np.int64), np.asarray(after, np.int64)
    if batch_tokens is not None:
        batch_tokens = check_integer("batch_tokens", batch_tokens, minimum=1)
    budget = batch_tokens or default_batch_tokens(model)
    bar = _bar(sum(len(job.ids) for job in jobs), description, progress, len(jobs))
    lengths = [len(before) + len(job.ids) + len(after) for job in jobs]
    try:
        for indices in plan_batches(lengths, budget, pass_cost(model)):
            batch = [jobs[j] for j in indices]
            hidden, mask = model.forward([np.concatenate([before, j.ids, after]) for j in batch])
            # One reduction per batch (2.2 ms against a 750 ms MiniLM pass of 16 x 256 tokens
            # on 2 CPU cores, 0.3%, measured 2026-12-02): a NaN weight would
            # otherwise give NaN vectors that only the store refuses, much later.
            if check_finite:
                finite = torch.isfinite(hidden).all(dim=-1) | ~mask
                if not bool(finite.all()):
                    row = int((~finite.all(dim=1)).nonzero()[0, 0])
                    raise NonFiniteStatesError(model.name, batch[row].document, description)
            yield batch, hidden, mask
            if bar is not None:
                bar.update(sum(len(j.ids) for j in batch))
    finally:
        if bar is not None:
            bar.close()


def run_jobs(
    model,
    jobs: list[Job],
    batch_tokens: int | None,
    progress: bool | None,
    description: str,
) -> Iterator[tuple[Job, torch.Tensor]]:
    """Yield each job with the hidden states of its kept tokens, ``(d - c, dim)`` float32."""
    n_before = len(model.special_token_ids[0])
    for batch, hidden, _ in forward_batches(model, jobs, batch_tokens, progress, description):
        for row, job in enumerate(batch):
            first = n_before + job.keep_from
            yield job, hidden[row, first : first + job.kept[1] - job.kept[0]]
