"""The two Ray steps of ``embed_to_milvus``, and what passes between them.

The chunking task (``chunk_batch``, Ray CPU tasks) does all the host work of ``embed_corpus``
for a batch of documents: chunk, tokenize once, map chunks to token spans, and check what is
already stored. Each document to embed leaves it as numpy arrays in the batch's columns
(``PREPARED_COLUMNS``). The embedding actor (``Embedder``, one model each) rebuilds those
documents without the tokenizer, packs their forward batches and runs the model through
``embed_prepared``, the code ``embed_corpus`` runs per group; then it writes the rows or returns
them to the driver. The names of both show in Ray's process titles, which the tests look for.
"""

from __future__ import annotations

import numpy as np
import torch

from .. import store
from ..corpus import corpus_preparer, embed_prepared
from ..late.prepare import PreparedDocument, Preparer
from ..models.loading import load_model
from .resume import fingerprint, stored_layouts, stored_text

__all__ = ["PREPARED_COLUMNS", "chunk_batch", "chunking_task_resources", "Embedder"]

# What a chunking task sends an actor per document, beside its id, text and status: everything
# the model step needs, as arrays, so that the actor never tokenizes (empty for a document that
# is not embedded).
PREPARED_COLUMNS = ("spans", "token_spans", "input_ids", "naive_ids", "naive_lengths")


def chunk_batch(batch: dict, *, preparer: Preparer, stored, target) -> dict:
    """Ray CPU task: chunk and tokenize each document, and decide what to embed.

    A document's status becomes ``"embed"``, ``"empty"`` (no text) or ``"stored"`` (its chunk
    layout and this job's windows are already in Milvus for this model, method and chunking).
    The batch's texts are tokenized in one call (``preparer``, the job's method's own, as
    ``embed_corpus`` runs it). A document to embed leaves with its prepared arrays
    (``PREPARED_COLUMNS``): its chunks' character and token spans, its int32 ids for late
    chunking, or for the naive method its chunks' ids end to end with each chunk's length.
    """
    names = ("doc_id", "text", "status", "tokens", "tokenless", *PREPARED_COLUMNS)
    out = {k: [] for k in names}
    layouts = {}
    rows = list(zip(batch["doc_id"], batch["text"], strict=True))
    nonempty = [row for row, (_, text) in enumerate(rows) if text.strip()]
    prepared = preparer([(*rows[row], None) for row in nonempty]) if nonempty else None
    found = dict(zip(nonempty, prepared.documents if prepared else [], strict=True))
    tokenless_of: dict[str, int] = {}
    for doc_id, *_ in prepared.skipped if prepared else []:
        tokenless_of[doc_id] = tokenless_of.get(doc_id, 0) + 1
    first_chunk = 0  # the document's first row in the group's records (naive ids)
    for row, (doc_id, text) in enumerate(rows):
        arrays, n_tokens, tokenless = _no_arrays(), 0, 0
        if row in found:
            document = found[row]
            n_chunks = len(document.spans)
            bounds = prepared.naive_bounds[first_chunk : first_chunk + n_chunks + 1]
            if len(bounds) < 2:  # late chunking (no naive ids), or a document without chunks
                bounds = np.zeros(1, np.int64)
            arrays = {
                "spans": document.spans,
                "token_spans": document.token_spans,
                "input_ids": document.input_ids,
                "naive_ids": prepared.naive_ids[bounds[0] : bounds[-1]],
                "naive_lengths": np.diff(bounds),
            }
            first_chunk += n_chunks
            n_tokens, tokenless = document.n_tokens, tokenless_of.get(doc_id, 0)
            layouts[doc_id] = fingerprint(
                (i, a, b, stored_text(text[a:b]), target["window"], target["overlap"])
                for i, (a, b) in enumerate(document.spans.tolist())
            )
        out["doc_id"].append(doc_id)
        out["text"].append(text)
        out["status"].append("embed" if text.strip() else "empty")
        out["tokens"].append(n_tokens)
        out["tokenless"].append(tokenless)
        for name in PREPARED_COLUMNS:
            out[name].append(arrays[name])
    if layouts:
        found = stored_layouts(list(layouts), stored, target)
        for row, doc_id in enumerate(out["doc_id"]):
            if doc_id in layouts and found.get(doc_id) == layouts[doc_id]:
                out["status"][row] = "stored"
                out["text"][row] = ""
                for name, empty in _no_arrays().items():
                    out[name][row] = empty
    return {k: _column(v) for k, v in out.items()}


def _no_arrays() -> dict[str, np.ndarray]:
    """The prepared arrays of a document that is not embedded: empty, of the usual types and
    shapes, so that every row of a column holds the same kind of array."""
    spans = np.zeros((0, 2), np.int64)
    return {
        "spans": spans,
        "token_spans": spans,
        "input_ids": np.zeros(0, np.int32),
        "naive_ids": np.zeros(0, np.int32),
        "naive_lengths": np.zeros(0, np.int64),
    }


def chunking_task_resources() -> dict:
    return {"num_cpus": 1}


def _column(values: list) -> np.ndarray:
    column = np.empty(len(values), dtype=object)
    # One by one: a slice assignment would let numpy read equal-shaped arrays as one array.
    for i, value in enumerate(values):
        column[i] = value
    return column


class Embedder:
    """Ray actor: one model; embeds a batch of prepared documents and writes or returns them.

    The actor runs only the model's side of ``embed_corpus``: it rebuilds the batch's documents
    to embed from the arrays the chunking task prepared, packs their forward batches, and
    embeds them with ``embed_prepared``; the tokenizer is never called here, so a GPU does not
    wait on it.
    """

    def __init__(self, model_name, model_options, settings, target, threads):
        if threads:
            torch.set_num_threads(threads)
        self.model = load_model(model_name, verbose=False, **model_options)
        self.settings = settings
        # Chunking options play no part here: the chunks come prepared.
        self.preparer = corpus_preparer(
            self.model, settings["method"], window=settings["window"],
            overlap=settings["overlap"], batch_tokens=settings["batch_tokens"],
        )  # fmt: skip
        self.target = target
        self.client = None
        if target["writers"] == "actors":
            self.client = store.connect(target["uri"], target["token"])

    def __call__(self, batch: dict) -> dict:
        part = self.embed(batch)
        per_document: dict[str, list[int]] = {}
        for row, record in enumerate(part.records):
            per_document.setdefault(record["doc_id"], []).append(row)
        if self.client is not None and len(part):
            store.ingest(
                self.client, self.target["collection"], part.records, part.vectors,
                method=part.method, model=part.model, chunking=self.target["chunking"],
                window=part.window, overlap=part.overlap, progress=False, flush=False,
            )  # fmt: skip
        to_driver = self.client is None
        out = {k: [] for k in ("doc_id", "status", "chunks", "tokens", "tokenless", "rows")}
        for i, doc_id in enumerate(batch["doc_id"]):
            rows = per_document.get(doc_id, [])
            out["doc_id"].append(doc_id)
            out["status"].append(batch["status"][i])
            out["chunks"].append(len(rows))
            out["tokens"].append(int(batch["tokens"][i]))
            out["tokenless"].append(int(batch["tokenless"][i]))
            if to_driver and rows:
                records = [part.records[r] for r in rows]
                payload = {
                    "records": records,
                    "vectors": part.vectors[rows].astype(np.float32).tobytes(),
                }
                out["rows"].append(payload)
            else:
                out["rows"].append(None)
        return {k: _column(v) for k, v in out.items()}

    def embed(self, batch: dict):
        """``CorpusEmbeddings`` of the batch's documents to embed, as one group of
        ``embed_corpus`` with their chunks would give."""
        pairs, documents, naive_ids, naive_lengths = [], [], [], []
        for i, status in enumerate(batch["status"]):
            if status != "embed":
                continue
            doc_id = str(batch["doc_id"][i])
            pairs.append((doc_id, batch["text"][i]))
            arrays = {name: np.asarray(batch[name][i]) for name in PREPARED_COLUMNS}
            documents.append(
                PreparedDocument(
                    doc_id, arrays["spans"].reshape(-1, 2), arrays["token_spans"].reshape(-1, 2),
                    arrays["input_ids"], int(batch["tokens"][i]),
                )
            )  # fmt: skip
            naive_ids.append(arrays["naive_ids"])
            naive_lengths.append(arrays["naive_lengths"])
        # (Late chunking leaves the naive ids empty, and regroup ignores them.)
        group = self.preparer.regroup(
            documents,
            np.concatenate([np.zeros(0, np.int32), *naive_ids]),
            np.concatenate([np.zeros(0, np.int64), *naive_lengths]),
        )
        return embed_prepared(
            self.model, pairs, group, method=self.settings["method"],
            window=self.settings["window"], overlap=self.settings["overlap"],
            chunking=self.target["chunking"],
        )  # fmt: skip
