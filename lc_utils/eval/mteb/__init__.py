"""MTEB 2.x retrieval tasks with naive, late or no chunking, scored by MTEB itself.

MTEB evaluates a retrieval system that is not one vector per document through its
``SearchProtocol``. ``BestChunkSearch`` (``search``) is such a system built from this package:
it chunks every document (any ``chunk_text`` strategy), embeds the chunks naive or late
(``embed_corpus``) or each whole document as one vector (``"none"``, ``naive_chunking``), embeds
the queries with the model's query prompt (``embed_queries``) and scores a document by its best
chunk (``document_scores``), as the late-chunking paper does. MTEB then scores its answers with
its own evaluator (pytrec_eval); none of MTEB's evaluation is copied here.

``beir_folder_task`` (``tasks``) makes an MTEB retrieval task of a BEIR folder on disk, so the
whole path runs offline; ``evaluate_tasks`` runs MTEB tasks by name or folder with each method;
``python -m lc_utils.eval.mteb`` (``__main__``) does so from the command line.
docs/evaluation.md says how these numbers relate to notebook 11's and where MTEB's conventions
differ.

mteb is an optional dependency (``pip install 'lc-utils[mteb]'``): it is imported inside the
functions that need it, so importing this package works without it.
"""

from .search import METHODS as METHODS
from .search import BestChunkSearch as BestChunkSearch
from .search import require_mteb as require_mteb
from .tasks import LONGEMBED_TASKS as LONGEMBED_TASKS
from .tasks import PAPER_TASKS as PAPER_TASKS
from .tasks import beir_folder_task as beir_folder_task
from .tasks import evaluate_tasks as evaluate_tasks
from .tasks import resolve_tasks as resolve_tasks
