"""The baseline: every chunk embedded alone; and queries, embedded the same way.

Both wrap ``EmbeddingModel.encode`` (the model's own pooling, each text cut at the model's
window): naive chunks take the model's document prompt and role, queries its query prompt and
role (``EmbeddingModel.use_role``).

Introduced in notebooks 03_late_pooling and 04_naive_vs_late.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..models.model import EmbeddingModel
from ..text.chunking import Chunk
from ..text.tokens import check_encodable

__all__ = ["naive_chunking", "embed_queries"]


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


def naive_chunking(
    model: EmbeddingModel,
    chunks_or_texts: Sequence,
    *,
    max_tokens: int | None = None,
    batch_tokens: int | None = None,
    progress: bool | None = None,
    what: str = "chunks",
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
        what: what the texts are, as the warnings and the progress bar name them: "chunks",
            or "documents" for the no-chunking baseline's whole documents.
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
    model.use_role("document")
    return model.encode(
        texts,
        prefix=model.document_prefix,
        max_tokens=max_tokens,
        batch_tokens=batch_tokens,
        progress=progress,
        what=what,
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
    with model.use_role("query"):  # back to documents after, for callers that never switch
        return model.encode(
            texts,
            prefix=prefix,
            max_tokens=max_tokens,
            batch_tokens=batch_tokens,
            progress=progress,
            what="queries",
        )
