"""lc_utils: late chunking for retrieval-augmented generation.

The notebooks in ``notebooks/`` introduce each function; users call the same API on their data::

    import lc_utils as lc
    model = lc.load_model("auto")
    chunks = lc.chunk_text(text, "sentences")
    late = lc.late_chunking(model, text, chunks)     # (len(chunks), model.dim) float32
    naive = lc.naive_chunking(model, chunks)         # each chunk embedded alone
"""

from . import datasets, evaluation, frontier, long_documents, metrics, paper, semantic, store
from .chunking import (
    STRATEGIES,
    Chunk,
    chunk_fixed,
    chunk_paragraphs,
    chunk_sentences,
    chunk_text,
    sentence_word_spans,
    validate_chunks,
)
from .corpus import (
    CorpusEmbeddings,
    as_documents,
    embed_corpus,
    iter_documents,
    iter_embed_corpus,
)
from .datasets import needles  # noqa: F401  (so that lc.datasets.needles is there)
from .late import (
    DocumentEmbedding,
    WindowPlan,
    content_window,
    embed_queries,
    encode_document,
    late_chunking,
    late_pool,
    naive_chunking,
    plan_batches,
    plan_windows,
    pool_spans,
    prepare_document,
)
from .models import (
    LONG_CONTEXT_DEFAULT,
    PACKAGED_MINILM,
    EmbeddingModel,
    ModelLoadError,
    hub_reachable,
    load_model,
    packaged_minilm_path,
)
from .outputs import load_metrics, prepare_output_dir, save_figure, save_metrics, set_seed
from .semantic import chunk_semantic
from .tokens import (
    TokenizedDocument,
    chunk_of_tokens,
    token_offsets,
    token_spans,
    tokenize_document,
    whitespace_mask,
)

__version__ = "0.1.0"
