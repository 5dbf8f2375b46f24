"""Embed a corpus on Ray Data and write it to Milvus: for corpora that outgrow one process.

``embed_to_milvus`` runs the same chunking, batching, windowing and pooling as ``embed_corpus``,
spread over a Ray cluster (or a local Ray on this machine's cores):

1. **Read.** A ``ray.data.Dataset``, JSON Lines / Parquet files, a BEIR ``corpus.jsonl`` (title
   joined before the text, as ``load_beir(...).documents`` holds them), or an in-memory
   ``{doc_id: text}`` mapping. Each row is one document: an id and a text.
2. **Check.** Before any chunking or embedding: the Milvus URI answers (within seconds), and no
   document id appears twice (the error names it). One pass reads only the id column and keeps
   8 bytes per document.
3. **Prepare** in Ray CPU tasks, with the ``Preparer`` that ``embed_corpus`` builds for the
   job's method (``corpus_preparer``): chunk (``chunk_text`` or your callable), tokenize each
   batch of texts once, and map the chunks to token spans, so chunks holding no token are
   dropped the same way; for the naive method also each chunk's own ids. Empty texts are
   counted and skipped. A document whose chunks are already stored for this model, method and
   chunking, with the same chunk indices, spans, texts and windows (positions and overlap,
   defaults resolved), is skipped too: that is what makes a re-run resume where the last one
   stopped, and a finished job's re-run a no-op. Every document left to embed goes on with
   its prepared arrays (character and token spans, ids) in the batch's columns.
4. **Embed** in an actor pool, one model per actor (``num_gpus=1`` each when the cluster has
   GPUs). An actor never tokenizes: it rebuilds the batch's documents to embed from their
   arrays (``Preparer.regroup``), packs their forward batches, and runs the model, pooling and
   warnings through ``embed_prepared``, the code ``embed_corpus`` runs for each of its groups.
   So a GPU is not kept waiting on the tokenizer. A killed actor is restarted and its batch
   retried by Ray.
5. **Write** through ``lc.store.ingest`` (idempotent upserts under the same chunk ids as
   ``lc.store.ingest`` of ``embed_corpus``'s output). A server or cluster URI takes one writer per
   actor; Milvus Lite takes one process, so its rows are funnelled to the driver, which writes.

Memory stays bounded: Ray Data streams blocks of ``documents_per_batch`` documents with
backpressure, and the driver holds one output batch at a time. Chunks are written per whole
document in one ``ingest`` call, and a retried batch rewrites the same ids, so every chunk ends up
stored exactly once whatever dies and is retried. A document cut off mid-write (the process
killed between two upserts) holds rows that match no fingerprint, so a re-run embeds it again.
When Ray itself fails, the driver first finishes the documents it has received, then raises
``RayJobError``.

Introduced in notebook 09_scaling_out.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from .. import store
from ..corpus import METHODS, corpus_chunking, corpus_preparer, windowing
from ..models.loading import load_model
from ..models.model import EmbeddingModel
from ..store.connection import is_lite
from .resume import check_resumable, stored_fingerprints
from .runtime import RayJobError, import_ray, is_ray_failure, ray_failure_message, start_ray
from .sources import count_unique_documents, read_documents
from .steps import Embedder, chunk_batch, chunking_task_resources

__all__ = ["embed_to_milvus", "ScaleStats"]

WRITERS = ("auto", "driver", "actors")
# Seconds between two progress lines.
PROGRESS_EVERY = 5.0
# Restarts of one embedding actor before the job fails. Ray Data's default restarts forever,
# so an actor that dies on the same batch every time (a document too big for memory) would
# loop instead of failing; a few restarts still ride out a one-off kill.
ACTOR_RESTARTS = 3


@dataclass
class ScaleStats:
    """What one ``embed_to_milvus`` run did, and how fast.

    Attributes:
        documents: documents in the input.
        embedded: documents chunked, embedded and written in this run.
        already_stored: documents skipped because their chunks were already stored.
        empty: documents whose text is empty or only whitespace (skipped).
        chunks: chunk vectors written in this run.
        tokens: model tokens of the embedded documents (document tokens, without the extra
            positions that overlapping windows recompute).
        tokenless_chunks: chunks left out because they hold no model token (as ``.skipped`` of
            ``embed_corpus``).
        seconds: wall time from the first check to the last write.
        actors / writers: embedding actors, and who wrote (``"actors"`` or ``"driver"``).
    Introduced in notebook 09_scaling_out.
    """

    documents: int = 0
    embedded: int = 0
    already_stored: int = 0
    empty: int = 0
    chunks: int = 0
    tokens: int = 0
    tokenless_chunks: int = 0
    seconds: float = 0.0
    actors: int = 0
    writers: str = ""
    uri: str = ""
    collection: str = ""
    method: str = ""
    model: str = ""
    chunking: str = ""
    ray_address: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def done(self) -> int:
        """Documents accounted for so far: embedded, already stored or empty."""
        return self.embedded + self.already_stored + self.empty

    def rate(self, what: str) -> float:
        """``what`` (``"embedded"``, ``"chunks"`` or ``"tokens"``) per second of wall time."""
        return getattr(self, what) / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict:
        """Plain values, rates included, for ``lc.save_metrics`` or JSON."""
        values = asdict(self)
        values.update(
            documents_per_second=self.rate("embedded"),
            chunks_per_second=self.rate("chunks"),
            tokens_per_second=self.rate("tokens"),
        )
        return values

    def line(self) -> str:
        """One progress line: documents done, and documents, chunks and tokens per second."""
        return (
            f"{self.done}/{self.documents} documents ({self.already_stored} already stored, "
            f"{self.empty} empty), {self.chunks} chunks | {self.rate('embedded'):.1f} doc/s, "
            f"{self.rate('chunks'):.1f} chunks/s, {self.rate('tokens'):,.0f} tokens/s"
        )


def _pool_shape(actors, gpus_per_actor):
    """Actors, their resources and torch threads, from what the cluster offers."""
    import ray  # optional: the extra "scale"

    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    cpus = float(resources.get("CPU", 1))
    nodes = max(1, sum(1 for n in ray.nodes() if n.get("Alive")))
    use_gpus = gpus > 0 if gpus_per_actor is None else gpus_per_actor > 0
    if actors is None:
        actors = gpus if use_gpus else nodes
    if isinstance(actors, bool) or not isinstance(actors, int) or actors < 1:
        raise ValueError(f"actors={actors!r}; must be an int >= 1 (or None for one per GPU/node)")
    if use_gpus:
        return actors, {"num_gpus": gpus_per_actor or 1, "num_cpus": 1}, None
    # Leave one CPU's worth for the chunking tasks, so that they are never starved.
    per_actor = max(0.1, min(1.0, (cpus - 1) / actors)) if cpus > 1 else 0.5
    threads = max(1, round(cpus / nodes / max(1, actors // nodes)))
    return actors, {"num_cpus": per_actor}, threads


def embed_to_milvus(
    source,
    model="auto",
    *,
    uri: str | Path = "auto",
    token: str | None = None,
    collection: str = "chunks",
    method: str = "late",
    strategy: str | Callable = "sentences",
    chunk_options: dict | None = None,
    chunking: str | None = None,
    window: int | None = None,
    overlap: int | None = None,
    batch_tokens: int | None = None,
    documents_per_batch: int = 32,
    actors: int | None = None,
    gpus_per_actor: float | None = None,
    writers: str = "auto",
    index: str = "FLAT",
    id_column: str | None = None,
    text_column: str = "text",
    model_options: dict | None = None,
    address: str | None = None,
    num_cpus: int | None = None,
    object_store_memory: int | None = 500 * 2**20,
    runtime_env: dict | None = None,
    progress: bool = True,
    on_progress: Callable[[ScaleStats], None] | None = None,
    connect_timeout: float = 10,
) -> ScaleStats:
    """Chunk, embed and store a corpus on Ray, resumably; the rows equal ``embed_corpus``'s.

    Args:
        source: documents, see ``read_documents`` (a Ray Dataset, files, a BEIR folder, a
            mapping). Each document needs a unique id.
        model: a model name or path as for ``lc.load_model`` (each actor loads its own copy), or
            a loaded ``EmbeddingModel`` (its ``name`` is loaded in the actors).
        uri / token / collection: where to write, as for ``lc.store.connect``; the collection
            is created (FLAT or ``index``, COSINE) if it does not exist.
        method, strategy, chunk_options, window, overlap, batch_tokens: as for
            ``lc.embed_corpus``, with the same results. The window and overlap, defaults
            resolved (``lc.corpus.windowing``), are stored on every row, so a re-run with other
            windows embeds the documents again and replaces their rows.
        chunking: the chunking label the rows are stored under (``lc.chunking.chunking_label``);
            derived from a named ``strategy``, required with a callable one.
        documents_per_batch: documents per Ray batch (one chunking task, one actor call, one
            write).
        actors: embedding actors; default one per GPU, or one per node without GPUs.
        gpus_per_actor: GPUs per actor; default 1 when the cluster has GPUs, else 0.
        writers: ``"auto"`` (actors write to a server; the driver writes to Milvus Lite),
            ``"driver"`` or ``"actors"`` (refused for Milvus Lite, which takes one process).
        model_options: extra ``lc.load_model`` arguments for the actors (``device``,
            ``dtype``, ``trust_remote_code``).
        address: a Ray cluster to attach to (else ``RAY_ADDRESS``, else a local Ray with
            ``num_cpus`` cores, default all, and ``object_store_memory`` bytes). A Ray already
            initialised in this process is used as it is. A Ray started here is shut down at
            the end.
        runtime_env: Ray runtime environment for a cluster whose nodes lack ``lc_utils``, e.g.
            ``{"py_modules": [lc_utils]}`` or ``{"pip": ["lc-utils[scale]"]}``.
        progress: print a progress line (documents, chunks, tokens per second) while running.
        on_progress: called with the running ``ScaleStats`` after every output batch.
    Returns:
        ``ScaleStats`` of this run (``already_stored`` counts documents a previous run wrote).
    Raises:
        MilvusConnectionError: an unreachable or malformed URI, within about
            ``connect_timeout`` seconds and before Ray starts.
        DuplicateDocumentError: a repeated document id, before any chunking or embedding.
        ValueError: bad options (named), or a collection created before rows stored their
            windows, before any work.
        RayJobError: Ray itself failed mid-run (one line: what, and that a re-run resumes).
            A document the failure left part-written matches no stored fingerprint, so the
            re-run embeds it again instead of skipping it.
    Introduced in notebook 09_scaling_out.
    """
    if method not in METHODS:
        raise ValueError(f"method={method!r}; valid: {METHODS}")
    if writers not in WRITERS:
        raise ValueError(f"writers={writers!r}; valid: {WRITERS}")
    if (
        isinstance(documents_per_batch, bool)
        or not isinstance(documents_per_batch, int)
        or documents_per_batch < 1
    ):
        raise ValueError(f"documents_per_batch={documents_per_batch!r}; must be an int >= 1")
    label = corpus_chunking(strategy, dict(chunk_options or {}), None, chunking)
    if label is None:
        raise ValueError(
            "a callable strategy needs chunking=, the label its rows are stored under "
            "(e.g. chunking='my-splitter-v1')"
        )
    import_ray()
    started = time.perf_counter()
    client = store.connect(uri, token, timeout=connect_timeout)
    lite = is_lite(client)  # the rule connect() applied to this URI
    if writers == "actors" and lite:
        store.close(client)
        raise ValueError(
            f"writers='actors' with Milvus Lite ({uri!r}): Lite allows one process per database "
            "file; use writers='driver' (the default for Lite) or a Milvus server URI"
        )
    writers = ("driver" if lite else "actors") if writers == "auto" else writers
    ray_started = False
    stats = None
    try:
        ray_started = start_ray(
            address,
            num_cpus=num_cpus,
            object_store_memory=object_store_memory,
            runtime_env=runtime_env,
        )
        import ray  # optional: the extra "scale"

        # Ray Data logs every execution at INFO; our own progress line says what matters.
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        context.print_on_execution_start = False
        dataset = read_documents(source, id_column=id_column, text_column=text_column)
        n_documents = count_unique_documents(dataset)

        options = dict(model_options or {})
        if isinstance(model, EmbeddingModel):
            loaded, model_name = model, model.name
        else:
            loaded = load_model(model, device="cpu", verbose=progress, **options)
            model_name = loaded.name
        # The pass shape this job's vectors get, defaults resolved: part of every row and of the
        # resume check, so a run with other windows embeds the documents again. A bad window or
        # overlap fails here, before any actor starts.
        positions, shared = windowing(loaded, method, window, overlap)
        store.create_collection(client, collection, loaded.dim, index=index)
        check_resumable(client, collection)
        stats = ScaleStats(
            documents=n_documents, writers=writers, uri=str(uri), collection=collection,
            method=method, model=model_name, chunking=label,
            ray_address=ray.get_runtime_context().gcs_address,
        )  # fmt: skip

        target = {
            "uri": str(uri), "token": token, "collection": collection, "method": method,
            "model": model_name, "writers": writers, "chunking": label, "window": positions,
            "overlap": shared,
        }  # fmt: skip
        stored = None
        if lite:
            stored = ray.put(stored_fingerprints(client, collection, method, model_name, label))
        # The chunking tasks prepare with the job's method, as embed_corpus would, but pack
        # nothing: the actors pack the documents that are left to embed.
        preparer = replace(
            corpus_preparer(
                loaded, method, strategy, chunk_options, window=window, overlap=overlap,
                batch_tokens=batch_tokens,
            ),
            shape=None,
        )  # fmt: skip
        n_actors, resources, threads = _pool_shape(actors, gpus_per_actor)
        stats.actors = n_actors
        settings = {
            "method": method, "window": window, "overlap": overlap, "batch_tokens": batch_tokens,
        }  # fmt: skip
        # One block per batch of documents (a streaming split, no shuffle): otherwise one
        # JSON Lines file is one block, which one task and one actor would process alone.
        blocks = dataset.repartition(target_num_rows_per_block=documents_per_batch)
        with warnings.catch_warnings():
            # Ray 2.60 (pinned) warns that ray_remote_args_fn and the remote args below go in
            # Ray 2.64, and has nothing else for them yet (see the comments below); the
            # warnings would only alarm a user of this pinned version.
            warnings.filterwarnings("ignore", message="`ray_remote_args(_fn)?` is deprecated")
            chunked = blocks.map_batches(
                chunk_batch,
                fn_kwargs={
                    "preparer": preparer, "stored": stored, "target": target,
                },
                batch_size=documents_per_batch,
                batch_format="numpy",
                # A remote-args function keeps Ray Data from fusing these tasks into the model
                # actors: chunking then runs on any free CPU while the actors (GPUs) embed.
                ray_remote_args_fn=chunking_task_resources,
            )  # fmt: skip
            embedded = chunked.map_batches(
                Embedder,
                fn_constructor_args=(model_name, options, settings, target, threads),
                batch_size=documents_per_batch,
                batch_format="numpy",
                compute=ray.data.ActorPoolStrategy(size=n_actors),
                # A dead actor is restarted (at most ACTOR_RESTARTS times, not Ray Data's forever)
                # and its batches retried; writes are upserts, so a retried batch rewrites the same
                # rows. Ray warns that such an actor "has constructor arguments in the object
                # store": Ray Data always passes its transformer and context to the actors as
                # object refs, which the operator holds for the whole run, so a restart finds them.
                max_restarts=ACTOR_RESTARTS,
                max_task_retries=-1,
                # Batches run in the order they were sent to an actor. Ray Data lets actor tasks
                # run out of order by default, which only helps actors that wait on I/O; ours
                # compute, so in order costs nothing. The driver crash of issue 20 (a reply for a
                # task the driver no longer tracks, TaskManager::CompletePendingTask) is in the
                # bookkeeping of actor-task replies and retries; the ordered path is the older,
                # simpler one there. That it caused the crash is a suspicion, not a proof.
                # (These three go to Ray as remote args; Ray 2.60, pinned, warns that they are
                # deprecated from 2.64 but has no named parameter for them yet.)
                allow_out_of_order_execution=False,
                **resources,
            )
        del loaded

        shown = [0.0]
        emptied: list[str] = []
        failures: list[BaseException] = []

        def outputs():
            batches = iter(embedded.iter_batches(batch_size=None, batch_format="numpy"))
            try:
                yield from _written(batches)
            except Exception as error:
                if not is_ray_failure(error):
                    raise
                # End the stream normally, so that the writer finishes the documents it has
                # (stale rows of their earlier versions go too) before the job fails.
                failures.append(error)
            finally:
                # Ray Data's executor stops its tasks here, while Ray is still up.
                close = getattr(batches, "close", None)
                if close is not None:
                    close()

        def _written(batches):
            for batch in batches:
                records, vectors = [], []
                for i, status in enumerate(batch["status"]):
                    if status == "stored":
                        stats.already_stored += 1
                    elif status == "empty":
                        stats.empty += 1
                        emptied.append(str(batch["doc_id"][i]))
                    else:
                        stats.embedded += 1
                        stats.chunks += int(batch["chunks"][i])
                        stats.tokens += int(batch["tokens"][i])
                        stats.tokenless_chunks += int(batch["tokenless"][i])
                    payload = batch["rows"][i]
                    if isinstance(payload, dict):
                        records.extend(payload["records"])
                        vectors.append(np.frombuffer(payload["vectors"], dtype=np.float32))
                if records:
                    yield records, np.concatenate(vectors).reshape(len(records), -1)
                stats.seconds = time.perf_counter() - started
                if progress and stats.seconds - shown[0] >= PROGRESS_EVERY:
                    shown[0] = stats.seconds
                    print(stats.line(), flush=True)
                if on_progress is not None:
                    on_progress(stats)

        stream = outputs()
        try:
            if writers == "driver":
                store.ingest_batches(
                    client, collection, stream, method=method, model=model_name,
                    chunking=label, window=positions, overlap=shared, progress=False,
                )  # fmt: skip
            else:
                for _ in stream:
                    pass
        finally:
            # Whatever failed, Ray Data's executor stops now, not when the garbage collector
            # gets to the stream: shutting Ray down under a running executor is a crash risk.
            stream.close()
        if failures:
            raise RayJobError(ray_failure_message(failures[0], stats)) from failures[0]
        # A document emptied since an earlier run loses its rows, as store.ingest of an
        # embed_corpus result would remove them: nothing stale stays searchable.
        labels = {"method": method, "model": model_name, "chunking": label}
        for start in range(0, len(emptied), 1_000):
            ids = emptied[start : start + 1_000]
            if store.count_chunks(client, collection, doc_id=ids, **labels):
                client.delete(collection, filter=store.filter_expression(doc_id=ids, **labels))
        stats.seconds = time.perf_counter() - started
        if progress:
            print(stats.line(), f"in {stats.seconds:.1f} s", flush=True)
        return stats
    except Exception as error:
        # Ray failing outside the stream (planning, counting, starting actors): the same line.
        if is_ray_failure(error):
            raise RayJobError(ray_failure_message(error, stats)) from error
        raise
    finally:
        store.close(client)
        if ray_started:
            import ray  # optional: the extra "scale"

            ray.shutdown()
