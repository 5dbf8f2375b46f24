"""Token states to chunk vectors: windows over long documents (``windows``), late pooling
(``pooling``) and the naive baseline that embeds each chunk alone (``naive``)."""

from .naive import embed_queries as embed_queries
from .naive import naive_chunking as naive_chunking
from .pooling import DocumentEmbedding as DocumentEmbedding
from .pooling import encode_document as encode_document
from .pooling import late_chunking as late_chunking
from .pooling import pool_records as pool_records
from .pooling import pool_spans as pool_spans
from .pooling import prepare_document as prepare_document
from .windows import DEFAULT_OVERLAP_FRACTION as DEFAULT_OVERLAP_FRACTION
from .windows import WindowPlan as WindowPlan
from .windows import plan_windows as plan_windows
