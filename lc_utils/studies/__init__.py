"""What the notebooks investigate, beyond the method itself: the blog post's bug (``blog``), the
window/overlap frontier (``frontier``), needles in long documents (``long_documents``) and the
paper's benchmark table (``paper``). Import the modules: ``lc.studies.frontier.measure_frontier``.
"""

from . import blog as blog
from . import frontier as frontier
from . import long_documents as long_documents
from . import paper as paper
