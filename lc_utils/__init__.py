"""lc_utils: late chunking for retrieval-augmented generation.

The notebooks in ``notebooks/`` introduce each function; users call the same API on their data::

    import lc_utils as lc
    model = lc.load_model("auto")
    chunks = lc.chunk_text(text, "sentences")
    late = lc.late_chunking(model, text, chunks)     # (len(chunks), model.dim) float32
    naive = lc.naive_chunking(model, chunks)         # each chunk embedded alone

The names below load on first use (PEP 562), so ``import lc_utils.runner`` needs neither torch
nor a working library: the runner can still run, and report, while a module here is broken.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

# Public name -> the submodule that defines it.
_EXPORTS = {
    "chunking": [
        "STRATEGIES",
        "Chunk",
        "chunk_fixed",
        "chunk_paragraphs",
        "chunk_sentences",
        "chunk_text",
        "validate_chunks",
    ],
    "corpus": [
        "CorpusEmbeddings",
        "as_documents",
        "embed_corpus",
        "iter_documents",
        "iter_embed_corpus",
    ],
    "late": [
        "DocumentEmbedding",
        "WindowPlan",
        "content_window",
        "default_window",
        "embed_queries",
        "encode_document",
        "late_chunking",
        "late_pool",
        "naive_chunking",
        "plan_batches",
        "plan_windows",
        "pool_spans",
        "prepare_document",
        "text_window",
    ],
    "models": [
        "LONG_CONTEXT_DEFAULT",
        "PACKAGED_MINILM",
        "EmbeddingModel",
        "ModelLoadError",
        "SUPPORTED_POOLING",
        "hub_reachable",
        "load_model",
        "packaged_minilm_path",
    ],
    "registry": ["KNOWN_MODELS", "KnownModel", "known_model"],
    "outputs": ["load_metrics", "prepare_output_dir", "save_figure", "save_metrics", "set_seed"],
    "semantic": ["chunk_semantic"],
    "tokens": [
        "TokenizedDocument",
        "chunk_of_tokens",
        "token_offsets",
        "token_spans",
        "tokenize_document",
        "whitespace_mask",
    ],
}
# Submodules that are part of the public API (lc.store, lc.vectors, ...). lc.scale is reachable
# too, but left out of __all__: it needs the optional extra "scale" (Ray).
_SUBMODULES = [
    "blog",
    "chunking",
    "datasets",
    "evaluation",
    "frontier",
    "jina_v2",
    "long_documents",
    "metrics",
    "paper",
    "registry",
    "semantic",
    "store",
    "tokens",
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
