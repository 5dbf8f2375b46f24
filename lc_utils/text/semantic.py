"""Semantic chunking: sentences grouped until the topic shifts.

The third chunker of the late-chunking paper (Günther et al. 2024), next to fixed-size and
sentence chunks. Each sentence (from ``chunk_sentences``) is embedded on its own; where the
cosine between two neighbouring sentences drops further than at most other neighbours, a new
chunk begins. "Further than at most" is a percentile: with ``percentile=90`` a boundary falls
after the 10% of sentence pairs whose cosine distance ``1 - cos`` is highest, so a text of ``n``
sentences gives about ``1 + 0.1 (n - 1)`` chunks whatever the model's cosine scale is.

Chunks are character spans like every other strategy's: ``text[c.start:c.end] == c.text``,
sorted, disjoint and stripped, and each chunk is a run of whole sentences.

``chunk_text(text, "semantic", model=model, percentile=90)`` calls ``chunk_semantic``. The
sentences are embedded through the model object's own ``encode`` (``EmbeddingModel.encode``, the
model's pooling over each text alone), so this module imports no model code: text stays the
first stage of the package, and the model is an argument.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ..vectors import unit_vectors
from .chunking import Chunk, chunk_sentences

__all__ = ["chunk_semantic", "neighbour_distances", "semantic_breakpoints"]


def neighbour_distances(sentence_vectors) -> np.ndarray:
    """Cosine distance ``1 - cos(v_i, v_{i+1})`` between consecutive sentence vectors.

    Args:
        sentence_vectors: float ``(n_sentences, dim)``.
    Returns:
        float64 ``(max(n_sentences - 1, 0),)``; a zero vector has distance 1 to its neighbours.
    """
    unit = unit_vectors(sentence_vectors, label="sentence vectors").astype(np.float64)
    if len(unit) < 2:
        return np.zeros(0, dtype=np.float64)
    return 1.0 - np.einsum("ij,ij->i", unit[:-1], unit[1:])


def semantic_breakpoints(distances, percentile: float = 90.0) -> np.ndarray:
    """Indices ``i`` after which a new chunk starts: ``distances[i]`` above the percentile.

    Args:
        distances: float ``(n_sentences - 1,)`` from ``neighbour_distances``.
        percentile: in ``[0, 100]``. The threshold is ``numpy.percentile(distances,
            percentile)`` and a boundary needs a distance strictly above it, so ``100`` never
            splits and equal distances never split.
    Returns:
        int64 sorted indices into ``distances``.
    """
    _check_percentile(percentile)
    distances = np.asarray(distances, dtype=np.float64)
    if distances.size == 0:
        return np.zeros(0, dtype=np.int64)
    threshold = np.percentile(distances, percentile)
    return np.flatnonzero(distances > threshold).astype(np.int64)


def _check_percentile(percentile) -> None:
    if isinstance(percentile, bool) or not isinstance(percentile, (int, float)):
        raise TypeError(f"percentile={percentile!r}; expected a number in [0, 100], e.g. 90")
    if not 0 <= percentile <= 100:
        raise ValueError(f"percentile={percentile}; expected a number in [0, 100], e.g. 90")


def _embedder(model) -> Callable[[list[str]], np.ndarray]:
    encode = getattr(model, "encode", None)
    if callable(encode) and hasattr(model, "document_prefix"):  # an EmbeddingModel
        return lambda texts: encode(
            texts, prefix=model.document_prefix, progress=False, what="sentences"
        )
    if callable(model):
        return model
    raise TypeError(
        'strategy "semantic" embeds sentences, so it needs model=: an EmbeddingModel from '
        "lc.load_model, or a function from a list of n strings to an (n, dim) array; e.g. "
        'chunk_text(text, "semantic", model=model, percentile=90)'
    )


def chunk_semantic(
    text: str,
    *,
    model=None,
    percentile: float = 90.0,
) -> list[Chunk]:
    """Runs of whole sentences, split where neighbouring sentences are least alike.

    Args:
        text: the document.
        model: embeds the sentences, each on its own: an ``EmbeddingModel`` (its own pooling, as
            ``naive_chunking``; sentences beyond its window are truncated with a warning) or a
            callable ``list[str] -> float (n, dim)``.
        percentile: in ``[0, 100]``; a chunk ends after a sentence whose cosine distance to the
            next is above this percentile of all neighbour distances in ``text``. Lower values
            give more, smaller chunks; ``100`` gives one chunk per text.
    Returns:
        ``Chunk`` objects with half-open character spans, each from the start of its first
        sentence to the end of its last; sorted, disjoint, stripped. ``[]`` for blank text; a
        text of one sentence is one chunk and is never embedded.
    """
    _check_percentile(percentile)
    embed = _embedder(model)
    sentences = chunk_sentences(text)
    if len(sentences) < 2:
        return sentences
    vectors = np.asarray(embed([s.text for s in sentences]), dtype=np.float32)
    if vectors.ndim != 2 or len(vectors) != len(sentences):
        raise ValueError(
            f"model returned an array of shape {vectors.shape} for {len(sentences)} sentences; "
            "expected one row per sentence, (n, dim)"
        )
    breaks = semantic_breakpoints(neighbour_distances(vectors), percentile)
    firsts = [0, *(int(i) + 1 for i in breaks)]
    lasts = [*(int(i) for i in breaks), len(sentences) - 1]
    return [_span(text, sentences, a, b) for a, b in zip(firsts, lasts, strict=True)]


def _span(text: str, sentences: Sequence[Chunk], first: int, last: int) -> Chunk:
    # Sentences are already stripped, so the run from one's start to another's end is too.
    start, end = sentences[first].start, sentences[last].end
    return Chunk(text[start:end], start, end)
