"""Scoring retrieval methods on a task: judgments mapped to chunks (``judgments``), metrics over
score matrices (``metrics``), paired statistics (``stats``), the comparison of several methods on
the same chunks and queries (``scoring``), and the model runs behind each comparison
(``compare``).
"""

from .compare import compare_chunkings as compare_chunkings
from .compare import compare_naive_late as compare_naive_late
from .compare import compare_window_plans as compare_window_plans
from .compare import encode_documents as encode_documents
from .compare import evaluate_document_vectors as evaluate_document_vectors
from .judgments import chunk_key as chunk_key
from .judgments import chunk_keys as chunk_keys
from .judgments import chunk_qrels as chunk_qrels
from .metrics import DEFAULT_METRICS as DEFAULT_METRICS
from .metrics import LEVELS as LEVELS
from .metrics import document_scores as document_scores
from .metrics import evaluate_per_query as evaluate_per_query
from .metrics import mean_metrics as mean_metrics
from .scoring import DocumentVectorBaseline as DocumentVectorBaseline
from .scoring import MethodComparison as MethodComparison
from .scoring import evaluate_methods as evaluate_methods
from .stats import paired_difference as paired_difference
