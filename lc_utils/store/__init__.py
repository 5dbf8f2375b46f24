"""Chunk vectors in Milvus: connect, an explicit schema, idempotent ingestion, search, validation.

A thin layer over ``pymilvus.MilvusClient``; anything not wrapped here is called on the client.

* **Where.** ``connect("auto")`` opens Milvus Lite at ``outputs/milvus/lc.db``; a path ending in
  ``.db`` opens Milvus Lite there; an ``http(s)://`` or ``tcp://`` URL (and a token) reaches a
  Milvus server or a managed cluster. The same calls work against all of them.
* **Schema.** One row per chunk: ``id`` (VARCHAR primary key, see ``chunk_id``), ``doc_id``,
  ``chunk_index``, half-open character offsets ``start``/``end`` into the document, ``method``
  (``"late"``, ``"naive"``, ...), ``model``, ``text``, ``text_truncated``, ``window`` and
  ``overlap`` (the pass shape the vector was made with; -1 where not known) and a FLOAT_VECTOR
  ``vector`` searched with the COSINE metric.
* **Ids.** ``chunk_id`` hashes ``(doc_id, chunk_index, method, model)``, so ingesting the same
  chunks again overwrites them (upsert) instead of adding rows, and the late and naive vectors of
  one chunk live side by side.
* **Long text.** VARCHAR limits are counted in UTF-8 bytes (Milvus servers count bytes).
  By default a text longer than the collection's limit is cut at a character boundary and the row
  gets ``text_truncated=True``; the full text is always ``document[start:end]``. Pass
  ``on_long_text="error"`` to refuse such rows instead.
* **Consistency.** Collections default to ``Session`` consistency: a client reads its own writes
  at once, and searches do not wait for the server's clock as ``Strong`` ones do (about 200 ms on
  Milvus 2.3). Counts, deletions and validation ask for ``Strong`` explicitly.

The package has four modules: ``connection``, ``schema`` (the collection, its layout, filter
expressions), ``ingest`` (ids and ingestion) and ``search`` (search, counts, deletion, brute-force
validation). Import everything from here.

Introduced in notebook 05_milvus_validation.
"""

from .connection import DEFAULT_LITE_PATH as DEFAULT_LITE_PATH
from .connection import MilvusConnectionError as MilvusConnectionError
from .connection import close as close
from .connection import connect as connect
from .ingest import chunk_id as chunk_id
from .ingest import chunk_ids as chunk_ids
from .ingest import ingest as ingest
from .ingest import ingest_batches as ingest_batches
from .schema import INDEX_TYPES as INDEX_TYPES
from .schema import OUTPUT_FIELDS as OUTPUT_FIELDS
from .schema import TEXT_MAX_BYTES as TEXT_MAX_BYTES
from .schema import check_filter as check_filter
from .schema import create_collection as create_collection
from .schema import filter_expression as filter_expression
from .search import brute_force_search as brute_force_search
from .search import count_chunks as count_chunks
from .search import delete_document as delete_document
from .search import search as search
from .search import validate_against_brute_force as validate_against_brute_force
from .search import validation_tables as validation_tables
