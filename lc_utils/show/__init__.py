"""What the notebooks display: tables (``tables``) and figures (``plots``) built from results that
``lc_utils.eval`` and ``lc_utils.studies`` computed. Nothing here is part of the method."""

from .plots import plot_frontier as plot_frontier
from .plots import plot_gain_heatmap as plot_gain_heatmap
from .plots import plot_gains as plot_gains
from .tables import chunk_lengths as chunk_lengths
from .tables import kind_differences as kind_differences
from .tables import relevant_text_differences as relevant_text_differences
from .tables import results_table as results_table
from .tables import within_document_table as within_document_table
