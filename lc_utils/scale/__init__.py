"""Embed a corpus on Ray Data and write it to Milvus: for corpora that outgrow one process.

``sources`` reads the corpus, ``resume`` knows what a collection already holds, ``steps`` holds
the chunking task and the embedding actor, and ``job`` runs them and the writes
(``embed_to_milvus``). Needs the extra
"scale" (Ray Data): ``pip install 'lc-utils[scale]'``.

Introduced in notebook 09_scaling_out.
"""

from .job import ScaleStats as ScaleStats
from .job import embed_to_milvus as embed_to_milvus
from .runtime import RayJobError as RayJobError
from .runtime import start_ray as start_ray
from .sources import DuplicateDocumentError as DuplicateDocumentError
from .sources import read_documents as read_documents
