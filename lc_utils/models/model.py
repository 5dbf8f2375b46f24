"""The loaded embedding model: its tokenizer, its network, its limits, and its own pooling.

``EmbeddingModel.forward`` runs complete id sequences; ``EmbeddingModel.encode`` embeds texts each
on its own with the model's own pooling (what naive chunking, queries and the semantic chunker
use); ``EmbeddingModel.window`` says how many positions one pass holds and why;
``EmbeddingModel.use_role`` says whether the passes that follow embed documents or queries, for
models whose weights differ by role (jina-embeddings-v3's task adapters).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import torch

from ..text.chunking import check_integer
from ..text.tokens import encode_texts, warn_unknown_chunks
from .adapters import ROLES, RoleAdapters
from .batching import (
    NonFiniteStatesError,
    PackedBatch,
    PassShape,
    TextStats,
    pack_jobs,
    run_packed,
    text_jobs,
)

__all__ = ["EmbeddingModel", "Window"]


@dataclass(frozen=True)
class Window:
    """The positions of one forward pass, and why there are that many.

    Attributes:
        positions: positions per pass, special tokens included.
        content_tokens: the positions left for text: ``positions`` minus the special tokens.
        reason: what set ``positions``: ``"the length it was trained on"``, ``"its position
            limit"``, or the argument that was given (``"window"``, ``"max_tokens"``).
    """

    positions: int
    content_tokens: int
    reason: str


@dataclass
class EmbeddingModel:
    """A loaded embedding model and what the pipeline needs to know about it.

    Attributes:
        name: what the model was loaded as (a hub id or a local path).
        tokenizer: a *fast* Hugging Face tokenizer (offsets are required).
        model: the ``torch.nn.Module`` returning final hidden states, in eval mode (for
            jina-embeddings-v2 an ``lc_utils.jina_v2.JinaV2Model``).
        max_length: the most positions one forward pass may hold, special tokens included.
        dim: the embedding dimension.
        pooling: the model's own pooling, ``"mean"`` or ``"cls"`` (from the registry for
            known models, else from its sentence-transformers config where present, else
            ``"mean"``; other poolings are refused at load time).
        trained_length: sentence-transformers' ``max_seq_length`` when the model declares one,
            the length it was trained on; ``None`` otherwise.
        query_prefix / document_prefix: text prepended to queries / documents, for models
            trained with instructions (from the sentence-transformers ``prompts``).
        source: where the weights came from: ``"package"``, ``"local"``, ``"cache"`` or ``"hub"``.
        adapters: the task adapters attached to ``model``, one per role (``RoleAdapters``), or
            ``None`` when documents and queries share the same weights.
        role: the role of the forward passes that follow, ``"document"`` or ``"query"`` (set by
            ``use_role``).
    """

    name: str
    tokenizer: object
    model: torch.nn.Module
    max_length: int
    dim: int
    pooling: str = "mean"
    trained_length: int | None = None
    query_prefix: str = ""
    document_prefix: str = ""
    source: str = "local"
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    adapters: RoleAdapters | None = None
    role: str = "document"

    def __repr__(self) -> str:
        adapters = f", adapters={self.adapters.names()}" if self.adapters is not None else ""
        return (
            f"EmbeddingModel(name={self.name!r}, dim={self.dim}, max_length={self.max_length}, "
            f"pooling={self.pooling!r}, trained_length={self.trained_length}, "
            f"device={str(self.device)!r}, source={self.source!r}{adapters})"
        )

    def use_role(self, role: str) -> _RoleScope:
        """Run the forward passes that follow as ``role``: ``"document"`` or ``"query"``.

        A model with task adapters switches its weights here (jina-embeddings-v3:
        ``retrieval.passage`` for documents, ``retrieval.query`` for queries; see
        ``lc_utils.models.adapters``); for any other model both roles are the same weights and
        only ``role`` is checked. The pipeline calls it before its forward passes: naive chunks,
        whole documents and late chunking's windows are documents, ``embed_queries`` embeds
        queries. A loaded model starts as ``"document"``. Used as a context manager,
        ``with model.use_role("query"): ...`` restores the previous role on exit. One role at a
        time per model: threads that share a model must not switch it under each other.
        """
        if role not in ROLES:
            raise ValueError(f"role={role!r}; valid: {ROLES}")
        previous, self.role = self.role, role
        if self.adapters is not None:
            self.adapters.activate(role)
        return _RoleScope(self, previous)

    @property
    def special_token_ids(self) -> tuple[list[int], list[int]]:
        """The ids the tokenizer puts before and after a text, e.g. ``([101], [102])`` for BERT."""
        return _special_affixes(self.tokenizer)

    def window(self, positions: int | None = None, *, argument: str = "window") -> Window:
        """The ``Window`` of a pass of ``positions`` positions (default: the model's own).

        The default is the model's trained length (sentence-transformers' ``max_seq_length``, or
        the registry's) where it declares one below its position limit, else the position limit.
        Notebook 10's cost/quality frontier chose it: for all-MiniLM-L6-v2, 256-position windows
        were never significantly worse than 512-position ones and computed fewer tokens. Late
        chunking's windows, naive chunks and queries all default to it. ``argument`` names the
        caller's parameter in errors and in ``reason``. Raises ``ValueError`` for more positions
        than the model takes or too few to hold any text.
        """
        before, after = self.special_token_ids
        n_special = len(before) + len(after)
        if positions is None:
            trained = self.trained_length
            if trained and trained < self.max_length:
                positions, reason = int(trained), "the length it was trained on"
            else:
                positions, reason = self.max_length, "its position limit"
        else:
            positions, reason = check_integer(argument, positions), argument
        if positions > self.max_length:
            raise ValueError(
                f"{argument}={positions} exceeds {self.name}'s maximum length of "
                f"{self.max_length} positions; use {argument} <= {self.max_length}"
            )
        if positions <= n_special:
            raise ValueError(
                f"{argument}={positions} leaves no room for text next to {n_special} special "
                f"tokens; use {argument} > {n_special}"
            )
        return Window(positions, positions - n_special, reason)

    def encode(
        self,
        texts: Sequence[str],
        *,
        prefix: str = "",
        max_tokens: int | None = None,
        batch_tokens: int | None = None,
        progress: bool | None = None,
        what: str = "texts",
    ) -> np.ndarray:
        """Embed each text on its own with the model's own pooling.

        For mean-pooling models that is the attention-masked mean over all positions, special
        tokens included (what sentence-transformers computes); for CLS models the first state.
        Texts are batched by length, so padding never changes a vector.

        Args:
            texts: a list of str (checked by the callers, ``naive_chunking`` and
                ``embed_queries``).
            prefix: prepended to every text (the model's query or document prompt).
            max_tokens: positions per text, special tokens included; default ``window()``.
                Longer texts are cut there, with a warning that says where.
            what: what the texts are, for the warnings and the progress bar ("chunks").
        Returns:
            float32 ``(len(texts), dim)``.
        """
        encoded = encode_texts(self.tokenizer, [prefix + t for t in texts])
        return self.encode_ids(
            encoded, max_tokens=max_tokens, batch_tokens=batch_tokens, progress=progress,
            what=what, stacklevel=4,
        )  # fmt: skip

    def encode_ids(
        self,
        encoded: Sequence[np.ndarray],
        *,
        max_tokens: int | None = None,
        batch_tokens: int | None = None,
        progress: bool | None = None,
        what: str = "texts",
        stacklevel: int = 2,
    ) -> np.ndarray:
        """``encode`` for texts already tokenized: each item the content ids of one text (its
        prefix included, no special tokens), as ``lc_utils.text.tokens.encode_texts`` gives
        them. Returns float32 ``(len(encoded), dim)``."""
        window = self.window(max_tokens, argument="max_tokens")
        jobs, stats = text_jobs(encoded, window.content_tokens, self.tokenizer.unk_token_id)
        self.warn_encoded(stats, window, what, stacklevel=stacklevel + 1)
        packed = pack_jobs(jobs, PassShape.of(self, batch_tokens))
        return self.encode_packed(packed, len(encoded), progress=progress, what=what)

    def warn_encoded(self, stats: TextStats, window: Window, what: str, stacklevel: int) -> None:
        """The warnings of ``encode``: texts cut at the window, texts mostly unknown tokens
        (``stacklevel`` as ``warnings.warn`` counts it from here)."""
        if stats.too_long:
            hint = (
                f"; pass max_tokens={self.max_length} to use all {self.max_length} positions"
                if window.positions < self.max_length
                else ""
            )
            special = window.positions - window.content_tokens
            index, length = stats.first_too_long
            # The limit is the text a pass holds, not its positions: with 256 positions a text
            # of 256 tokens is over it, and the message says so in those numbers.
            warnings.warn(
                f"{stats.too_long} of {stats.n_texts} {what} are longer than "
                f"{window.content_tokens} tokens, the text one pass holds ({window.positions} "
                f"positions, set by {window.reason} of {self.name}, less {special} special "
                f"tokens), and were truncated to {window.content_tokens} (first: item {index}, "
                f"{length} tokens){hint}",
                stacklevel=stacklevel,
            )
        warn_unknown_chunks(stats.n_unknown, stats.n_texts, self, stacklevel=stacklevel)

    def encode_packed(
        self, packed: Sequence[PackedBatch], n_texts: int, *, progress=None, what: str = "texts"
    ) -> np.ndarray:
        """Pool packed batches of whole texts (``pack_jobs`` over ``text_jobs``) with the
        model's own pooling; float32 ``(n_texts, dim)``, row ``job.document`` for each job."""
        out = np.empty((n_texts, self.dim), dtype=np.float32)
        # Short texts batch well, so the progress bar only appears for large collections.
        n_jobs = sum(len(b.jobs) for b in packed)
        shown = progress if progress is not None else n_jobs > 512
        for batch, hidden, mask in run_packed(self, packed, shown, what, check_finite=False):
            if self.pooling == "cls":
                pooled = hidden[:, 0]
            else:
                # The masked sum as one batched product: no (B, L, dim) temporary.
                weights = mask.to(hidden.dtype).unsqueeze(1)  # (B, 1, L)
                pooled = torch.bmm(weights, hidden).squeeze(1) / weights.sum(2)
            # A NaN state anywhere in a text is NaN in its pooled vector (for CLS pooling only
            # the first state counts, and only it reaches the vector).
            finite = torch.isfinite(pooled).all(dim=1)
            if not bool(finite.all()):
                row = int((~finite).nonzero()[0, 0])
                raise NonFiniteStatesError(self.name, batch.jobs[row].document, what)
            out[[j.document for j in batch.jobs]] = pooled.cpu().numpy()
        return out

    def forward(self, sequences: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the model on complete id sequences (special tokens included), right-padded.

        Args:
            sequences: ``B`` int arrays, each at most ``max_length`` long.
        Returns:
            ``(hidden, mask)``: float32 final hidden states ``(B, L, dim)`` on the model's device,
            and the bool attention mask ``(B, L)``, where ``L`` is the longest sequence.
        """
        lengths = np.array([len(s) for s in sequences], dtype=np.int64)
        input_ids = np.full((len(sequences), int(lengths.max())), self.pad_id, dtype=np.int64)
        for row, ids in enumerate(sequences):
            input_ids[row, : len(ids)] = ids
        return self.forward_padded(input_ids, lengths)

    def forward_padded(
        self, input_ids: np.ndarray, lengths: np.ndarray
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``forward`` for a batch already padded: int ``(B, L)`` ids and each row's length."""
        longest = input_ids.shape[1]
        if longest > self.max_length:
            raise ValueError(
                f"a sequence of {longest} tokens exceeds the model's limit of {self.max_length}"
            )
        mask = np.arange(longest)[None, :] < np.asarray(lengths)[:, None]
        input_ids_t = torch.from_numpy(input_ids.astype(np.int64, copy=False)).to(self.device)
        mask_t = torch.from_numpy(mask).to(self.device)
        with torch.inference_mode():
            output = self.model(input_ids=input_ids_t, attention_mask=mask_t.long())
        hidden = output[0] if isinstance(output, tuple) else output.last_hidden_state
        return hidden.float(), mask_t

    @property
    def pad_id(self) -> int:
        """The id that pads a batch to its longest sequence (0 where the tokenizer has none)."""
        return int(self.tokenizer.pad_token_id or 0)


class _RoleScope:
    """What ``use_role`` returns: leaving a ``with`` block restores the role before it."""

    def __init__(self, model: EmbeddingModel, previous: str) -> None:
        self.model, self.previous = model, previous

    def __enter__(self) -> EmbeddingModel:
        return self.model

    def __exit__(self, *exc_info) -> None:
        self.model.use_role(self.previous)


@lru_cache(maxsize=64)
def _special_affixes(tokenizer) -> tuple[list[int], list[int]]:
    ids = tokenizer("x", add_special_tokens=True, return_special_tokens_mask=True)
    mask = ids["special_tokens_mask"]
    content = [i for i, m in enumerate(mask) if not m]
    first, last = content[0], content[-1]
    return list(ids["input_ids"][:first]), list(ids["input_ids"][last + 1 :])
