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
from ..text.tokens import mostly_unknown

__all__ = [
    "NonFiniteStatesError",
    "Job",
    "plan_batches",
    "default_batch_tokens",
    "pass_cost",
    "PassShape",
    "PackedBatch",
    "pack_jobs",
    "TextStats",
    "text_jobs",
    "run_packed",
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


@dataclass(frozen=True)
class PassShape:
    """How jobs become forward batches, for one model: what ``pack_jobs`` needs, and nothing of
    the network, so that it travels to a worker process.

    Attributes:
        before / after: the special ids put around every job's content ids.
        pad_id: the id that pads a batch to its longest sequence.
        batch_tokens: padded tokens per batch (``plan_batches``'s budget).
        pass_cost: the fixed cost of one pass, in tokens (``pass_cost``).
    """

    before: tuple[int, ...]
    after: tuple[int, ...]
    pad_id: int
    batch_tokens: int
    pass_cost: int

    @classmethod
    def of(cls, model, batch_tokens: int | None = None) -> PassShape:
        """The shape of ``model``'s passes; ``batch_tokens`` None takes ``default_batch_tokens``."""
        if batch_tokens is not None:
            batch_tokens = check_integer("batch_tokens", batch_tokens, minimum=1)
        before, after = model.special_token_ids
        return cls(
            tuple(before), tuple(after), model.pad_id,
            batch_tokens or default_batch_tokens(model), pass_cost(model),
        )  # fmt: skip


@dataclass
class PackedBatch:
    """One forward batch, padded and ready for the device.

    Attributes:
        jobs: the batch's jobs, one per row.
        ids: int32 ``(B, L)``, each row ``before + job.ids + after`` then padding.
        lengths: int32 ``(B,)``, the unpadded length of each row.
        rows: int64 ``(B, L)`` or None: for late pooling, the row of the chunk-sum table that each
            position adds to (``pool_packed``); filled by the caller of ``pack_jobs``.
    """

    jobs: list[Job]
    ids: np.ndarray
    lengths: np.ndarray
    rows: np.ndarray | None = None

    @property
    def content_tokens(self) -> int:
        """Content tokens in the batch (what the progress bar counts)."""
        return sum(len(job.ids) for job in self.jobs)


@dataclass
class TextStats:
    """What ``text_jobs`` found, for ``EmbeddingModel.warn_encoded``: ``too_long`` texts cut at
    the window (``first_too_long`` is the first one's index and length), ``n_unknown`` texts
    mostly the unknown token, of ``n_texts``."""

    n_texts: int
    too_long: int
    first_too_long: tuple[int, int]
    n_unknown: int


def text_jobs(
    encoded: Sequence[np.ndarray], content_tokens: int, unknown_id: int | None
) -> tuple[list[Job], TextStats]:
    """One job per whole text, cut to ``content_tokens``; with what the warnings need."""
    too_long = [i for i, ids in enumerate(encoded) if len(ids) > content_tokens]
    first = (too_long[0], len(encoded[too_long[0]])) if too_long else (0, 0)
    jobs = [Job(i, ids[:content_tokens], 0, (0, 0)) for i, ids in enumerate(encoded)]
    n_unknown = 0
    if unknown_id is not None and jobs:
        # Texts that are mostly the unknown token, counted over all of them at once: each text
        # is a span of the texts' ids end to end.
        lengths = np.fromiter((len(job.ids) for job in jobs), dtype=np.int64, count=len(jobs))
        ends = np.cumsum(lengths)
        spans = np.stack([ends - lengths, ends], axis=1)
        ids = np.concatenate([job.ids for job in jobs])
        n_unknown = int(mostly_unknown(ids, spans, unknown_id).sum())
    return jobs, TextStats(len(encoded), len(too_long), first, n_unknown)


def pack_jobs(jobs: Sequence[Job], shape: PassShape) -> list[PackedBatch]:
    """Group ``jobs`` into batches (``plan_batches``) and pad each one: host work only, which a
    worker can do while the device runs the batches before."""
    before = np.asarray(shape.before, dtype=np.int32)
    after = np.asarray(shape.after, dtype=np.int32)
    extra = len(before) + len(after)
    lengths = [extra + len(job.ids) for job in jobs]
    packed = []
    for indices in plan_batches(lengths, shape.batch_tokens, shape.pass_cost):
        batch = [jobs[j] for j in indices]
        row_lengths = np.array([lengths[j] for j in indices], dtype=np.int32)
        ids = np.full((len(batch), int(row_lengths.max())), shape.pad_id, dtype=np.int32)
        for row, job in enumerate(batch):
            ids[row, : len(before)] = before
            ids[row, len(before) : len(before) + len(job.ids)] = job.ids
            ids[row, len(before) + len(job.ids) : row_lengths[row]] = after
        packed.append(PackedBatch(batch, ids, row_lengths))
    return packed


def _bar(total: int, description: str, progress: bool | None, n_jobs: int):
    if progress is None:
        progress = n_jobs > 16
    if not progress:
        return None
    return progress_bar(total, description, "tok", unit_scale=True, leave=False)


def run_packed(
    model,
    packed: Sequence[PackedBatch],
    progress: bool | None,
    description: str,
    *,
    check_finite: bool = True,
) -> Iterator[tuple[PackedBatch, torch.Tensor, torch.Tensor]]:
    """Run packed batches through the model; yields ``(batch, hidden, mask)`` with hidden
    ``(B, L, dim)`` float32. ``progress`` None shows a token bar for more than 16 jobs. With
    ``check_finite`` a batch with a NaN or infinite state raises ``NonFiniteStatesError``;
    callers that pool check their pooled vectors instead, which costs less than a pass over
    every state."""
    n_jobs = sum(len(b.jobs) for b in packed)
    bar = _bar(sum(b.content_tokens for b in packed), description, progress, n_jobs)
    try:
        for batch in packed:
            hidden, mask = model.forward_padded(batch.ids, batch.lengths)
            if check_finite:
                # One reduction per batch (2.2 ms against a 750 ms MiniLM pass of 16 x 256
                # tokens on 2 CPU cores, 0.3%, measured 2026-12-02): a NaN weight would
                # otherwise give NaN vectors that only the store refuses, much later.
                finite = torch.isfinite(hidden).all(dim=-1) | ~mask
                if not bool(finite.all()):
                    row = int((~finite.all(dim=1)).nonzero()[0, 0])
                    raise NonFiniteStatesError(model.name, batch.jobs[row].document, description)
            yield batch, hidden, mask
            if bar is not None:
                bar.update(batch.content_tokens)
    finally:
        if bar is not None:
            bar.close()


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
    ``len(before) + i`` holds content token ``i`` of each job; see ``run_packed``.
    """
    packed = pack_jobs(jobs, PassShape.of(model, batch_tokens))
    for batch, hidden, mask in run_packed(
        model, packed, progress, description, check_finite=check_finite
    ):
        yield batch.jobs, hidden, mask


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
