"""Corpora, queries and relevance judgments for evaluating late chunking.

Every loader returns one type, ``RetrievalTask`` (``task``): documents, queries, span judgments
and document judgments, under a name. Four sources, none of which downloads anything unless the
user calls ``download_beir``:

* **BEIR-format folders** (``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``) through
  ``load_beir``, so that users who are online can point the evaluation at SciFact, NFCorpus, ...
* **Python's own reference topics** (``pydoc_data.topics``), real long documents that ship with
  every Python, through ``load_pydoc_topics``, with queries and judgments built from the
  documents' own structure by ``build_pydoc_queries``; ``load_pydoc_task`` gives the task in one
  call; ``chunk_documents`` / ``chunkings`` (``chunked``) chunk any corpus.
* **Needles in long documents** (``needles``): a fact hidden at a chosen depth in pydoc text, in
  pools of one kind and length each, through ``build_needle_tasks``.
* **A release-note paragraph** (``RELEASE_NOTES``, ``RELEASE_QUERY``) written for this project,
  where only the first sentence names the release: the setting of the blog's cosine table.

Spans are half-open character offsets ``(start, end)`` into a document, the package's one
currency, so judgments made here apply to every chunking strategy; which chunks a span makes
relevant is evaluation's business (``lc_utils.eval.chunk_qrels``).

The BEIR loader is in ``beir``, the reference topics and their queries in ``pydoc_topics``;
everything is importable from here.

Introduced in notebook 01_chunking.
"""

from .beir import BEIR_URL as BEIR_URL
from .beir import download_beir as download_beir
from .beir import join_title as join_title
from .beir import load_beir as load_beir
from .beir import read_beir_folder as read_beir_folder
from .chunked import chunk_documents as chunk_documents
from .chunked import chunkings as chunkings
from .needles import NEEDLE_KINDS as NEEDLE_KINDS
from .needles import build_needle_tasks as build_needle_tasks
from .needles import needle_pools as needle_pools
from .needles import select_needles as select_needles
from .pydoc_topics import QUERY_KINDS as QUERY_KINDS
from .pydoc_topics import build_pydoc_queries as build_pydoc_queries
from .pydoc_topics import count_query_kinds as count_query_kinds
from .pydoc_topics import load_pydoc_task as load_pydoc_task
from .pydoc_topics import load_pydoc_topics as load_pydoc_topics
from .pydoc_topics import query_kind as query_kind
from .pydoc_topics import query_name as query_name
from .pydoc_topics import spells_query_name as spells_query_name
from .task import RetrievalTask as RetrievalTask

RELEASE_NOTES = (
    "Vectorbase 3.7.2 is a maintenance release of the open-source vector database, published on "
    "14 March 2025. It fixes a race condition that could lose writes when two clients flushed "
    "the same partition at the same moment. This version also halves the memory needed to "
    "rebuild the HNSW index after a crash, so recovery no longer fails on small machines. "
    "Searches that name a partition which does not exist now stop with a clear error instead of "
    "quietly returning nothing. The on-disk format is unchanged from the previous patch, which "
    "means upgrading needs no migration and rolling back stays possible. Its Python client gains "
    "a timeout argument on every call. We recommend the update to everyone on the 3.7 series."
)
"""A release note written for this project (not taken from the blog). Only its first sentence
names the release; the others refer to it as "it", "this version", "its". Embedding each sentence
alone loses that link, which is what late chunking restores. Introduced in notebook
04_naive_vs_late."""

RELEASE_QUERY = "vectorbase 3.7.2"
"""The query of the release-note experiment: it names the release and nothing else. Introduced
in notebook 04_naive_vs_late."""
