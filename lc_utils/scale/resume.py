"""What a collection already holds, so that a re-run of a scale-out job resumes where it stopped.

A document's *fingerprint* is a hash of its stored chunks: index, span, the text each was made
from, and the pass shape (window positions and overlap) its vector was made with. A document
whose fingerprint is already stored for this model, method and chunking is not embedded again; a
document whose words changed under the same spans is, and so is one stored with other windows.
A document written only in part (a crash between two upserts) never matches either.
"""

from __future__ import annotations

import hashlib
import json

from ..store import TEXT_MAX_BYTES, connect, filter_expression
from ..store.ingest import fit_text
from ..store.schema import WINDOW_FIELDS, collection_layout

__all__ = [
    "QUERY_LIMIT",
    "check_resumable",
    "fingerprint",
    "stored_fingerprints",
    "stored_layouts",
    "stored_text",
]

# A Milvus query returns at most this many rows; larger answers are asked document by document.
QUERY_LIMIT = 16_384
# Per worker process: Milvus clients opened by chunking tasks, by URI (tasks reuse processes).
_TASK_CLIENTS: dict = {}


def stored_text(text: str) -> str:
    """A chunk text as the store keeps it in a collection of the default ``TEXT_MAX_BYTES``."""
    return fit_text(text, TEXT_MAX_BYTES)[0]


def fingerprint(rows) -> str:
    """A document's stored chunks, independent of row order. Each row is ``(chunk_index, start,
    end, text as stored, window, overlap)``; the text enters as a hash."""
    layout = sorted(
        (
            int(i), int(a), int(b), hashlib.blake2b(t.encode(), digest_size=8).hexdigest(),
            int(w), int(o),
        )
        for i, a, b, t, w, o in rows
    )  # fmt: skip
    return hashlib.blake2b(json.dumps(layout).encode(), digest_size=8).hexdigest()


def stored_fingerprints(
    client, collection, method, model, chunking, doc_ids=None
) -> dict[str, str]:
    """``{doc_id: fingerprint}`` of what the collection holds for this method, model and
    chunking. The collection needs the window fields (``check_resumable``)."""
    expression = filter_expression(method=method, model=model, chunking=chunking, doc_id=doc_ids)
    fields = ["doc_id", "chunk_index", "start", "end", "text", *WINDOW_FIELDS]
    rows: dict[str, list] = {}
    # Milvus Lite reopens collections released; reading needs them loaded.
    if "NotLoad" in str(client.get_load_state(collection).get("state")):
        client.load_collection(collection)
    if doc_ids is None:
        iterator = client.query_iterator(
            collection, batch_size=4096, filter=expression, output_fields=fields
        )
        try:
            while page := iterator.next():
                for r in page:
                    rows.setdefault(r["doc_id"], []).append(_row(r))
        finally:
            iterator.close()
    else:
        found = client.query(
            collection,
            filter=expression,
            output_fields=fields,
            limit=QUERY_LIMIT,
            consistency_level="Strong",
        )
        if len(found) >= QUERY_LIMIT and len(doc_ids) > 1:
            merged = {}
            for doc_id in doc_ids:
                merged.update(
                    stored_fingerprints(client, collection, method, model, chunking, [doc_id])
                )
            return merged
        for r in found:
            rows.setdefault(r["doc_id"], []).append(_row(r))
    return {doc_id: fingerprint(layout) for doc_id, layout in rows.items()}


def _row(r: dict) -> tuple:
    return (r["chunk_index"], r["start"], r["end"], r["text"], r["window"], r["overlap"])


def check_resumable(client, collection: str) -> None:
    """Refuse a collection that cannot say which windows its vectors were made with.

    Collections created before the ``window`` and ``overlap`` fields existed stay readable and
    writable by ``lc.store``, but a resumed job could not tell their rows from rows of another
    window, so it would skip documents whose vectors should change.
    """
    if not collection_layout(client, collection, fresh=True)["has_window_fields"]:
        raise ValueError(
            f"collection {collection!r} was created before lc_utils stored each row's window and "
            "overlap, so a resumed job cannot tell which windows its vectors came from; write to "
            "a new collection= or recreate this one with lc.store.create_collection(client, "
            f"{collection!r}, dim, overwrite=True) (its rows are dropped)"
        )


def stored_layouts(doc_ids: list[str], stored, target) -> dict[str, str]:
    """``{doc_id: fingerprint}`` stored for ``doc_ids``: from ``stored`` (a Ray object of all
    fingerprints, for Milvus Lite) or by asking the ``target`` collection (one client per worker
    process)."""
    if stored is not None:  # known up front (Milvus Lite: only the driver may open it)
        import ray  # optional: the extra "scale"

        stored = ray.get(stored)
        return {d: stored[d] for d in doc_ids if d in stored}
    client = _TASK_CLIENTS.get((target["uri"], target["token"]))
    if client is None:
        client = _TASK_CLIENTS[(target["uri"], target["token"])] = connect(
            target["uri"], target["token"]
        )
    return stored_fingerprints(
        client,
        target["collection"],
        target["method"],
        target["model"],
        target["chunking"],
        doc_ids,
    )
