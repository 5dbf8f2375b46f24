"""Chunking every document of a corpus, with one strategy or several.

``chunk_documents`` applies one ``chunk_text`` strategy to ``{doc_id: text}``; ``chunkings``
labels several (``"fixed"`` once per chunk size), as the comparisons of ``lc_utils.eval`` take
them. Split from ``pydoc_topics``: these work on any corpus, not only the reference topics.

Introduced in notebook 04_naive_vs_late.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..progress import progress_bar
from ..text.strategies import chunk_text

__all__ = ["chunk_documents", "chunkings"]


def chunk_documents(
    documents: Mapping[str, str],
    strategy: str = "sentences",
    *,
    tokenizer=None,
    chunk_size: int | None = None,
    **options,
) -> dict[str, list]:
    """Chunk every document of a corpus with one strategy.

    Args:
        documents: ``{doc_id: text}``.
        strategy: ``"sentences"``, ``"fixed"``, ``"paragraphs"`` or ``"semantic"`` (see
            ``chunk_text``; ``"semantic"`` needs ``model=`` and shows a progress bar).
        tokenizer: the model's tokenizer; required by ``"fixed"``.
        chunk_size: model tokens per chunk for ``"fixed"``; ignored by the other strategies, so
            one notebook parameter can serve every strategy.
        options: further options for ``chunk_text`` (``sentences_per_chunk``, ...).
    Returns:
        ``{doc_id: [Chunk, ...]}`` in the order of ``documents``.
    Introduced in notebook 04_naive_vs_late.
    """
    if strategy == "fixed" and chunk_size is not None:
        options = {**options, "chunk_size": chunk_size}
    # "semantic" embeds every sentence: a minute or more for a whole corpus on a CPU.
    shown = strategy == "semantic"
    bar = progress_bar(len(documents), f"{strategy} chunking", "doc", disable=not shown)
    chunked = {}
    for doc_id, text in documents.items():
        chunked[doc_id] = chunk_text(text, strategy, tokenizer=tokenizer, **options)
        bar.update(1)
    bar.close()
    return chunked


def chunkings(
    documents: Mapping[str, str],
    strategies: Sequence[str],
    *,
    tokenizer=None,
    chunk_sizes: Sequence[int] = (64,),
    model=None,
    percentile: float = 90.0,
) -> dict[str, dict[str, list]]:
    """Several chunkings of one corpus, labelled: ``"fixed"`` gives one per chunk size.

    Args:
        documents: ``{doc_id: text}``.
        strategies: e.g. ``["sentences", "fixed", "paragraphs", "semantic"]``.
        tokenizer: the model's tokenizer (for ``"fixed"``).
        chunk_sizes: the sizes of ``"fixed"``, each labelled ``"fixed-<size>"``.
        model: the embedding model that places ``"semantic"`` boundaries (its sentence vectors).
        percentile: ``"semantic"``'s breakpoint threshold (see ``lc_utils.text.semantic``).
    Returns:
        ``{label: {doc_id: [Chunk, ...]}}``: the strategy's name as label, or ``"fixed-<size>"``.
    Introduced in notebook 06_chunking_strategies.
    """
    if isinstance(strategies, str):
        raise TypeError(f"strategies={strategies!r} is one str; pass a list, e.g. [{strategies!r}]")
    labelled: dict[str, dict[str, list]] = {}
    for strategy in strategies:
        if strategy == "fixed":
            if not chunk_sizes:
                raise ValueError("chunk_sizes is empty; give at least one size for 'fixed'")
            for size in chunk_sizes:
                labelled[f"fixed-{int(size)}"] = chunk_documents(
                    documents, "fixed", tokenizer=tokenizer, chunk_size=int(size)
                )
        elif strategy == "semantic":
            if model is None:
                raise ValueError("the 'semantic' strategy needs model=: its sentence vectors")
            labelled[strategy] = chunk_documents(
                documents, strategy, model=model, percentile=percentile
            )
        else:
            labelled[strategy] = chunk_documents(documents, strategy)
    return labelled
