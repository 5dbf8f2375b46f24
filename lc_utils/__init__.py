"""lc_utils: late chunking for retrieval-augmented generation.

The notebooks in ``notebooks/`` introduce each function; users call the same API on their data::

    import lc_utils as lc
    model = lc.load_model("auto")
    chunks = lc.chunk_text(text, "sentences")
    late = lc.late_chunking(model, text, chunks)     # (len(chunks), model.dim) float32
    naive = lc.naive_chunking(model, chunks)         # each chunk embedded alone

The names below load on first use (PEP 562), so ``import lc_utils.run`` needs neither torch
nor a working library: the runner can still run, and report, while a module here is broken.

The package follows the data: ``text`` (chunks and token spans) -> ``models`` (the networks) ->
``late`` (token states to chunk vectors) -> ``corpus`` -> ``store`` (Milvus) and ``scale`` (Ray);
``eval`` scores methods on a task, ``studies`` holds what the notebooks investigate, ``show``
what they display, and ``run`` executes them.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

# Public name -> the submodule that defines it.
_EXPORTS = {
    "text.chunking": [
        "Chunk",
        "chunk_fixed",
        "chunk_paragraphs",
        "chunk_sentences",
        "validate_chunks",
    ],
    "text.semantic": ["chunk_semantic"],
    "text.strategies": ["STRATEGIES", "chunk_text", "chunking_label"],
    "text.tokens": [
        "TokenizedDocument",
        "chunk_of_tokens",
        "token_offsets",
        "token_spans",
        "tokenize_document",
        "whitespace_mask",
    ],
    "models.loading": [
        "LONG_CONTEXT_DEFAULT",
        "PACKAGED_MINILM",
        "ModelLoadError",
        "SUPPORTED_POOLING",
        "hub_reachable",
        "load_model",
        "packaged_minilm_path",
    ],
    "models.model": ["EmbeddingModel", "Window"],
    "models.batching": ["NonFiniteStatesError"],
    "models.registry": ["KNOWN_MODELS", "KnownModel", "known_model"],
    "late.windows": ["WindowPlan", "plan_windows"],
    "late.pooling": [
        "DocumentEmbedding",
        "encode_document",
        "late_chunking",
        "pool_records",
        "pool_spans",
        "prepare_document",
    ],
    "late.naive": ["embed_queries", "naive_chunking"],
    "corpus": [
        "CorpusEmbeddings",
        "as_documents",
        "embed_corpus",
        "iter_documents",
        "iter_embed_corpus",
    ],
    "outputs": ["load_metrics", "prepare_output_dir", "save_figure", "save_metrics", "set_seed"],
}
# Submodules and subpackages that are part of the public API (lc.store, lc.eval, ...). lc.scale
# is reachable too, but left out of __all__: it needs the optional extra "scale" (Ray).
_SUBMODULES = [
    "corpus",
    "datasets",
    "eval",
    "late",
    "models",
    "outputs",
    "progress",
    "show",
    "store",
    "studies",
    "text",
    "vectors",
]
_ORIGIN = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = [*_SUBMODULES, *_ORIGIN]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name in _ORIGIN:
        value = getattr(importlib.import_module(f"{__name__}.{_ORIGIN[name]}"), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    # Submodules (lc.store, lc.metrics, ...) import on first use as well.
    if not name.startswith("_") and importlib.util.find_spec(f"{__name__}.{name}") is not None:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
