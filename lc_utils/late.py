"""Late chunking, the naive baseline, and query embedding.

Conventions used throughout:

* **Token positions.** A document is tokenized once, without special tokens; each content token
  gets the character position of its first non-whitespace character (``token_offsets``).
* **Token to chunk.** Token ``t`` belongs to chunk ``i`` when its position lies in the chunk's
  half-open character span ``[start, end)``. Since chunks are sorted and disjoint, each chunk's
  tokens form a contiguous half-open *token span* (``token_spans``). Special tokens ([CLS],
  [SEP], ...) belong to no chunk.
* **Windows ("long late chunking").** A pass holds at most ``window`` positions, special tokens
  included, so ``window - n_special`` content tokens. A document that fits is encoded in one pass,
  exactly as a single call to the model would. A longer one runs in windows whose starts are
  ``stride = content_window - overlap`` apart; every window after the first contributes only the
  tokens after its first ``overlap`` positions, so each token takes its embedding from exactly one
  window and has at least ``overlap`` tokens of left context there. The last window is moved left
  to end at the document's end, so it is always full and its tokens get more context, not less.
* **Pooling.** A chunk's vector is the mean of the final hidden states of its tokens. Pooling is
  a segment sum (``index_add_``) accumulated window by window, so a million-token document never
  holds its whole token-embedding matrix.

Introduced in notebooks 02_token_embeddings and 03_late_pooling.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .chunking import Chunk, check_integer, validate_chunks
from .models import EmbeddingModel
from .outputs import progress_bar
from .tokens import (
    TokenizedDocument,
    check_encodable,
    chunk_of_tokens,
    mostly_unknown,
    token_spans,
    tokenize_document,
)

# Inside functions whose token spans are called token_spans, the function goes by this name.
find_token_spans = token_spans

# Default overlap of consecutive windows, as a fraction of the content window. Notebook 10's
# frontier chose it with ``default_window`` (README, "The window default"); it was 1/4 before.
DEFAULT_OVERLAP_FRACTION = 1 / 16

__all__ = [
    "WindowPlan",
    "DocumentEmbedding",
    "DEFAULT_OVERLAP_FRACTION",
    "default_window",
    "content_window",
    "text_window",
    "default_batch_tokens",
    "pass_cost",
    "plan_windows",
    "plan_batches",
    "encode_document",
    "pool_spans",
    "prepare_document",
    "late_chunking",
    "late_pool",
    "naive_chunking",
    "embed_queries",
]


@dataclass(frozen=True)
class WindowPlan:
    """Where the forward passes fall over a document's content tokens.

    ``windows[k] = (a, b)``: pass k sees content tokens ``[a, b)``. ``kept[k] = (c, d)``: pass k
    supplies the embeddings of tokens ``[c, d)``. The kept ranges tile ``[0, n_tokens)`` exactly.
    Introduced in notebook 02_token_embeddings.
    """

    n_tokens: int
    content_window: int
    overlap: int
    windows: tuple[tuple[int, int], ...]
    kept: tuple[tuple[int, int], ...]

    @property
    def tokens_computed(self) -> int:
        """Content tokens the model runs over in all passes (>= n_tokens when windows overlap)."""
        return sum(b - a for a, b in self.windows)


def default_window(model: EmbeddingModel) -> tuple[int, str]:
    """``(positions, why)``: the window a pass uses when none is given.

    The model's trained length (sentence-transformers' ``max_seq_length``, or the registry's)
    where it declares one below its position limit, else the position limit. Notebook 10's
    cost/quality frontier chose it: for all-MiniLM-L6-v2, 256-position windows were never
    significantly worse than 512-position ones and computed fewer tokens (README, "The window
    default"). Naive chunks and queries are cut at the same length (``text_window``).
    """
    trained = getattr(model, "trained_length", None)
    if trained and trained < model.max_length:
        return int(trained), "the length it was trained on"
    return model.max_length, "its position limit"


def content_window(model: EmbeddingModel, window: int | None = None) -> tuple[int, int]:
    """``(window, content_window)``: positions per pass, and the content tokens that leave room for.

    ``window`` defaults to ``default_window(model)``: the model's trained length where it declares
    one, else ``model.max_length``. The content window is ``window`` minus the model's special
    tokens ([CLS] and [SEP] for BERT). Raises ``ValueError`` for a window above the model's limit
    or one with no room for text. Introduced in notebook 02_token_embeddings.
    """
    before, after = model.special_token_ids
    n_special = len(before) + len(after)
    window = default_window(model)[0] if window is None else check_integer("window", window)
    if window > model.max_length:
        raise ValueError(
            f"window={window} exceeds {model.name}'s maximum length of {model.max_length} "
            "positions; use a window <= max_length"
        )
    if window <= n_special:
        raise ValueError(
            f"window={window} leaves no room for text next to {n_special} special tokens; "
            f"use a window > {n_special}"
        )
    return window, window - n_special


def plan_windows(n_tokens: int, content_window: int, overlap: int | None = None) -> WindowPlan:
    """Plan overlapping windows over ``n_tokens`` content tokens (see the module docstring).

    ``overlap`` defaults to 1/16 of the content window (``DEFAULT_OVERLAP_FRACTION``, chosen by
    notebook 10's frontier together with ``default_window``). Raises ``ValueError`` unless
    ``0 <= overlap < content_window``. Introduced in notebook 02_token_embeddings.
    """
    n_tokens = check_integer("n_tokens", n_tokens, minimum=0)
    content_window = check_integer("content_window", content_window, minimum=1)
    if overlap is None:
        overlap = int(content_window * DEFAULT_OVERLAP_FRACTION)
    overlap = check_integer("overlap", overlap)
    if not 0 <= overlap < content_window:
        raise ValueError(
            f"overlap={overlap} with a content window of {content_window} tokens; it must "
            f"satisfy 0 <= overlap < {content_window}"
        )
    if n_tokens <= content_window:
        span = ((0, n_tokens),)
        return WindowPlan(n_tokens, content_window, overlap, span, span)
    stride = content_window - overlap
    windows, kept = [(0, content_window)], [(0, content_window)]
    while kept[-1][1] < n_tokens:
        start = min(len(windows) * stride, n_tokens - content_window)
        windows.append((start, start + content_window))
        kept.append((kept[-1][1], min(start + content_window, n_tokens)))
    return WindowPlan(n_tokens, content_window, overlap, tuple(windows), tuple(kept))


@dataclass
class _Job:
    document: int
    ids: np.ndarray  # content ids of this pass
    keep_from: int  # offset of the first kept token inside ids
    kept: tuple[int, int]  # kept token range in document positions


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


def default_batch_tokens(model: EmbeddingModel) -> int:
    """Padded tokens per forward batch when ``batch_tokens`` is not given: 2048 on CPU, 65536
    on a GPU.

    On CPU, batching full windows gains nothing (measured ~20% slower at 16x512), while short
    sequences gain from batching; a token budget gives both. GPUs want large batches.
    """
    return 65_536 if model.device.type == "cuda" else 2_048


def pass_cost(model: EmbeddingModel) -> int:
    """The fixed cost of one forward pass, in tokens, as ``plan_batches`` weighs it.

    On 2 CPU cores a MiniLM pass costs ~3.7 ms beyond its tokens, about 50 tokens' worth, and
    padding costs as much as a real token: 64. On a GPU padding is nearly free and each pass
    pays for its kernel launches: 4096.
    """
    return 4_096 if model.device.type == "cuda" else 64


def _forward_batches(
    model: EmbeddingModel,
    jobs: list[_Job],
    batch_tokens: int | None,
    progress: bool | None,
    description: str,
) -> Iterator[tuple[list[_Job], torch.Tensor, torch.Tensor]]:
    """Run every job's ids between the model's special tokens, batched by length.

    Yields ``(batch, hidden, mask)`` with hidden ``(len(batch), L, dim)`` float32, where position
    ``len(before) + i`` holds content token ``i`` of each job. The one place where late and naive
    chunking meet the model.
    """
    before, after = model.special_token_ids
    before, after = np.asarray(before, np.int64), np.asarray(after, np.int64)
    if batch_tokens is not None:
        batch_tokens = check_integer("batch_tokens", batch_tokens, minimum=1)
    budget = batch_tokens or default_batch_tokens(model)
    bar = _progress_bar(sum(len(job.ids) for job in jobs), description, progress, len(jobs))
    lengths = [len(before) + len(job.ids) + len(after) for job in jobs]
    try:
        for indices in plan_batches(lengths, budget, pass_cost(model)):
            batch = [jobs[j] for j in indices]
            hidden, mask = model.forward([np.concatenate([before, j.ids, after]) for j in batch])
            yield batch, hidden, mask
            if bar is not None:
                bar.update(sum(len(j.ids) for j in batch))
    finally:
        if bar is not None:
            bar.close()


def _run_jobs(
    model: EmbeddingModel,
    jobs: list[_Job],
    batch_tokens: int | None,
    progress: bool | None,
    description: str,
) -> Iterator[tuple[_Job, torch.Tensor]]:
    """Yield each job with the hidden states of its kept tokens, ``(d - c, dim)`` float32."""
    n_before = len(model.special_token_ids[0])
    for batch, hidden, _ in _forward_batches(model, jobs, batch_tokens, progress, description):
        for row, job in enumerate(batch):
            first = n_before + job.keep_from
            yield job, hidden[row, first : first + job.kept[1] - job.kept[0]]


def _progress_bar(total: int, description: str, progress: bool | None, n_jobs: int):
    if progress is None:
        progress = n_jobs > 16
    if not progress:
        return None
    return progress_bar(total, description, "tok", unit_scale=True, leave=False)


def _window_jobs(document: int, tokens: TokenizedDocument, plan: WindowPlan) -> list[_Job]:
    return [
        _Job(document, tokens.input_ids[a:b], c - a, (c, d))
        for (a, b), (c, d) in zip(plan.windows, plan.kept, strict=True)
    ]


@dataclass
class DocumentEmbedding:
    """All content-token embeddings of one document, with offsets and the window plan.

    Attributes:
        token_embeddings: float32 ``(n_tokens, dim)`` final hidden states (no special tokens).
        tokens: the ``TokenizedDocument`` they belong to.
        plan: the ``WindowPlan`` that produced them.
    """

    token_embeddings: np.ndarray
    tokens: TokenizedDocument
    plan: WindowPlan


def encode_document(
    model: EmbeddingModel,
    text: str,
    *,
    window: int | None = None,
    overlap: int | None = None,
    batch_tokens: int | None = None,
    progress: bool | None = None,
) -> DocumentEmbedding:
    """Embed every token of ``text`` in context, in one pass or overlapping windows.

    Returns the full token-embedding matrix, which is what notebooks inspect. For pooling alone
    use ``late_chunking``, which never materialises this matrix. Introduced in notebook
    02_token_embeddings.
    """
    tokens = tokenize_document(model.tokenizer, text, model.document_prefix)
    _, content_tokens = content_window(model, window)
    plan = plan_windows(len(tokens), content_tokens, overlap)
    out = np.empty((len(tokens), model.dim), dtype=np.float32)
    jobs = _window_jobs(0, tokens, plan)
    for job, hidden in _run_jobs(model, jobs, batch_tokens, progress, "encoding"):
        out[job.kept[0] : job.kept[1]] = hidden.cpu().numpy()
    keep = tokens.starts >= 0  # drop the tokens of a document prefix
    kept_tokens = TokenizedDocument(tokens.input_ids[keep], tokens.starts[keep], tokens.ends[keep])
    return DocumentEmbedding(out[keep], kept_tokens, plan)


def pool_spans(token_embeddings: np.ndarray, token_spans: np.ndarray) -> np.ndarray:
    """Mean of ``token_embeddings[a:b]`` for every half-open token span ``(a, b)``.

    Args:
        token_embeddings: float ``(n_tokens, dim)``.
        token_spans: int ``(n_chunks, 2)``, each with ``a < b``.
    Returns:
        float32 ``(n_chunks, dim)``, via one cumulative sum (no loop over chunks or tokens).
    Introduced in notebook 03_late_pooling.
    """
    token_spans = np.asarray(token_spans, dtype=np.int64).reshape(-1, 2)
    lengths = token_spans[:, 1] - token_spans[:, 0]
    if (lengths <= 0).any():
        bad = int(np.flatnonzero(lengths <= 0)[0])
        raise ValueError(
            f"span {bad} covers tokens {token_spans[bad].tolist()}; every span must hold "
            "at least one token (start < end)"
        )
    cumulative = np.zeros((len(token_embeddings) + 1, token_embeddings.shape[1]), np.float64)
    np.cumsum(token_embeddings, axis=0, out=cumulative[1:])
    sums = cumulative[token_spans[:, 1]] - cumulative[token_spans[:, 0]]
    return (sums / lengths[:, None]).astype(np.float32)


def prepare_document(model: EmbeddingModel, text: str, chunks: Sequence, *, strict: bool = True):
    """Tokenize ``text`` and map its chunks to token spans: ``(tokens, char_spans, token_spans)``.

    With ``strict`` a chunk that holds no token raises ``ValueError`` naming it; otherwise its
    token span is empty (``a == b``). Introduced in notebook 03_late_pooling.
    """
    check_encodable(text)
    spans = validate_chunks(text, chunks)
    tokens = tokenize_document(model.tokenizer, text, model.document_prefix)
    token_spans = find_token_spans(tokens.starts, spans)
    empty = np.flatnonzero(token_spans[:, 1] <= token_spans[:, 0])
    if strict and len(empty):
        i = int(empty[0])
        a, b = spans[i]
        raise ValueError(
            f"chunk {i} (characters {a}–{b}, {text[a:b][:40]!r}) contains no model token, so it "
            "has no late-chunking vector; merge it into a neighbouring chunk or drop it "
            f"({len(empty)} such chunk(s) in this document)"
        )
    return tokens, spans, token_spans


def warn_unknown_chunks(n_unknown: int, n_chunks: int, model: EmbeddingModel, stacklevel: int):
    """Warn that ``n_unknown`` of ``n_chunks`` chunks are mostly the unknown token, if any."""
    if n_unknown:
        warnings.warn(
            f"{n_unknown} of {n_chunks} chunk(s) are mostly {model.tokenizer.unk_token} tokens "
            f"({model.name}'s tokenizer turns a run of over 100 characters without a space, such "
            "as a URL or a long identifier, into one unknown token), so their vectors say little "
            "and are alike",
            stacklevel=stacklevel + 1,
        )


def late_chunking(
    model: EmbeddingModel,
    text: str,
    chunks: Sequence,
    *,
    window: int | None = None,
    overlap: int | None = None,
    batch_tokens: int | None = None,
    progress: bool | None = None,
) -> np.ndarray:
    """Late chunking: embed the whole document once, then mean-pool each chunk's tokens.

    Args:
        model: from ``load_model``.
        text: the document.
        chunks: ``Chunk`` objects or ``(start, end)`` character spans of ``text``, sorted and
            disjoint (as ``chunk_text`` returns them).
        window: positions per forward pass, special tokens included (default
            ``default_window(model)``: the trained length where declared, else
            ``model.max_length``). Longer documents run in overlapping windows.
        overlap: content tokens shared by consecutive windows (default: 1/16 of the content
            window).
        batch_tokens: padded tokens per forward batch (default 2048 on CPU, 65536 on GPU).
    Returns:
        float32 ``(len(chunks), model.dim)``. Chunk ``i``'s row is the mean of the final hidden
        states of the tokens whose first non-whitespace character lies in ``[start, end)``.
        Special tokens are excluded. A chunk holding no token raises ``ValueError`` naming it.
    Introduced in notebook 03_late_pooling.
    """
    tokens, _, token_spans = prepare_document(model, text, chunks, strict=True)
    unknown = mostly_unknown(tokens.input_ids, token_spans, model.tokenizer.unk_token_id)
    warn_unknown_chunks(int(unknown.sum()), len(token_spans), model, stacklevel=2)
    return late_pool(model, [(tokens, token_spans)], window, overlap, batch_tokens, progress)[0]


def late_pool(
    model: EmbeddingModel,
    prepared: Sequence[tuple[TokenizedDocument, np.ndarray]],
    window: int | None = None,
    overlap: int | None = None,
    batch_tokens: int | None = None,
    progress: bool | None = None,
) -> list[np.ndarray]:
    """Late-pool several prepared documents, with all their windows batched together.

    ``prepared`` holds ``(tokens, token_spans)`` per document, as from ``prepare_document``.
    Returns per document float32 ``(n_chunks, dim)``; rows of chunks without tokens are NaN.
    """
    _, content_tokens = content_window(model, window)
    jobs, owners, counts = [], [], []
    for d, (tokens, spans) in enumerate(prepared):  # spans: token spans, (n_chunks, 2)
        owner = chunk_of_tokens(len(tokens), spans)
        owners.append(torch.from_numpy(owner).to(model.device))
        counts.append(spans[:, 1] - spans[:, 0])
        if len(tokens):
            jobs.extend(_window_jobs(d, tokens, plan_windows(len(tokens), content_tokens, overlap)))
    sums = [torch.zeros((len(c), model.dim), device=model.device) for c in counts]
    for job, hidden in _run_jobs(model, jobs, batch_tokens, progress, "late chunking"):
        owner = owners[job.document][job.kept[0] : job.kept[1]]
        pooled = owner >= 0
        sums[job.document].index_add_(0, owner[pooled], hidden[pooled])
    vectors = []
    for total, count in zip(sums, counts, strict=True):
        mean = total.cpu().numpy() / np.maximum(count, 1)[:, None]
        mean[count == 0] = np.nan
        vectors.append(mean.astype(np.float32))
    return vectors


def _texts_of(items, what: str, argument: str) -> list[str]:
    """Any sequence of str (list, tuple, numpy array, pandas Series) or of ``Chunk``."""
    if items is None or isinstance(items, str | bytes | dict) or not hasattr(items, "__iter__"):
        raise TypeError(
            f"{argument} is {type(items).__name__}; expected a sequence of str (a list, tuple, "
            f"numpy array or pandas Series) of {what}"
        )
    texts = []
    for i, item in enumerate(items):
        if isinstance(item, Chunk):
            item = item.text
        elif not isinstance(item, str):
            raise TypeError(
                f"{argument}[{i}] is a {type(item).__name__}; expected a Chunk or a str"
            )
        texts.append(check_encodable(item, f"{argument}[{i}]"))
    return texts


def text_window(model: EmbeddingModel, max_tokens: int | None = None) -> tuple[int, int, str]:
    """``(positions, content tokens, why)`` for one text embedded alone, as ``naive_chunking`` and
    ``embed_queries`` cut it: ``max_tokens`` positions, by default ``default_window(model)`` (the
    model's trained length where it declares one). ``why`` names the limit that applied."""
    if max_tokens is None:
        positions, why = default_window(model)
        return (*content_window(model, positions), why)
    return (*content_window(model, max_tokens), "max_tokens")


def _embed_texts(
    model: EmbeddingModel,
    texts: Sequence[str],
    prefix: str,
    max_tokens: int | None,
    batch_tokens: int | None,
    progress: bool | None,
    what: str,
) -> np.ndarray:
    """Each text on its own, with the model's own pooling; truncated as ``naive_chunking`` says."""
    positions, content_tokens, why = text_window(model, max_tokens)
    encoded = model.tokenizer(
        [prefix + t for t in texts],
        add_special_tokens=False,
        truncation=False,
        verbose=False,
        split_special_tokens=True,
    )["input_ids"]
    too_long = [i for i, ids in enumerate(encoded) if len(ids) > content_tokens]
    if too_long:
        hint = (
            f"; pass max_tokens={model.max_length} to use all {model.max_length} positions"
            if positions < model.max_length
            else ""
        )
        warnings.warn(
            f"{len(too_long)} of {len(texts)} {what} exceed {positions} tokens ({why}, for "
            f"{model.name}) and were truncated there (first: item {too_long[0]}, "
            f"{len(encoded[too_long[0]])} tokens){hint}",
            stacklevel=3,
        )
    jobs = [
        _Job(i, np.asarray(ids[:content_tokens], dtype=np.int64), 0, (0, 0))
        for i, ids in enumerate(encoded)
    ]
    unknown_id = model.tokenizer.unk_token_id
    if unknown_id is not None:
        n_unknown = sum(
            2 * int((job.ids == unknown_id).sum()) > len(job.ids) for job in jobs if len(job.ids)
        )
        warn_unknown_chunks(n_unknown, len(jobs), model, stacklevel=3)
    out = np.empty((len(texts), model.dim), dtype=np.float32)
    # Short texts batch well, so the progress bar only appears for large collections.
    shown = progress if progress is not None else len(jobs) > 512
    for batch, hidden, mask in _forward_batches(model, jobs, batch_tokens, shown, what):
        if model.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            weights = mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(1) / weights.sum(1)
        out[[j.document for j in batch]] = pooled.cpu().numpy()
    return out


def naive_chunking(
    model: EmbeddingModel,
    chunks_or_texts: Sequence,
    *,
    max_tokens: int | None = None,
    batch_tokens: int | None = None,
    progress: bool | None = None,
) -> np.ndarray:
    """The baseline: embed every chunk on its own, with the model's standard pooling.

    For mean-pooling models that is the attention-masked mean over all positions, special tokens
    included (what sentence-transformers computes). Chunks are batched by length, so padding
    never changes a vector.

    Args:
        chunks_or_texts: a sequence of ``Chunk`` or str (list, tuple, numpy array, pandas
            Series). A lone str is refused: it is usually a whole document passed by mistake;
            wrap it, ``[text]``, to embed it as one chunk.
        max_tokens: positions per text, special tokens included. By default the length the model
            was trained on where it declares one (sentence-transformers' ``max_seq_length``, 256
            for all-MiniLM-L6-v2, which is where sentence-transformers truncates), else
            ``model.max_length``. Pass ``model.max_length`` for the position limit. Longer texts
            are truncated with a warning that says where.
    Returns:
        float32 ``(len(chunks_or_texts), model.dim)``. Warns when chunks are mostly the
        tokenizer's unknown token. Introduced in notebook 03_late_pooling.
    """
    if isinstance(chunks_or_texts, str):
        raise TypeError(
            "naive_chunking embeds each chunk of a list; it got one str, which would be one "
            "chunk per character. Pass [text] to embed it as one chunk, or chunk it first"
        )
    texts = _texts_of(chunks_or_texts, "chunks", "chunks_or_texts")
    if not texts:
        return np.empty((0, model.dim), dtype=np.float32)
    return _embed_texts(
        model, texts, model.document_prefix, max_tokens, batch_tokens, progress, "chunks"
    )


def embed_queries(
    model: EmbeddingModel,
    queries: Sequence[str] | str,
    *,
    prefix: str | None = None,
    max_tokens: int | None = None,
    batch_tokens: int | None = None,
    progress: bool | None = None,
) -> np.ndarray:
    """Embed queries with the same pooling and truncation as ``naive_chunking``.

    ``queries`` is one str (giving shape ``(1, dim)``) or any sequence of str: a list, tuple,
    numpy array or pandas Series; None or a number is refused. ``prefix`` defaults to
    ``model.query_prefix`` (empty for MiniLM and jina-v2; e.g. ``"search_query: "`` for models
    trained with instructions). ``max_tokens`` as in ``naive_chunking``. Returns float32
    ``(n_queries, model.dim)``. Introduced in notebook 04_naive_vs_late.
    """
    if isinstance(queries, str):
        queries = [queries]
    texts = _texts_of(queries, "queries", "queries")
    if not texts:
        return np.empty((0, model.dim), dtype=np.float32)
    prefix = model.query_prefix if prefix is None else prefix
    return _embed_texts(model, texts, prefix, max_tokens, batch_tokens, progress, "queries")
