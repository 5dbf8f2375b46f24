"""The networks: loading them (``loading``), the known models (``registry``), jina-embeddings-v2 in
plain PyTorch (``jina_v2``), the loaded model with its window and pooling (``model``), and running
id sequences through it in batches (``batching``).
"""

from .loading import LONG_CONTEXT_DEFAULT as LONG_CONTEXT_DEFAULT
from .loading import PACKAGED_MINILM as PACKAGED_MINILM
from .loading import SUPPORTED_POOLING as SUPPORTED_POOLING
from .loading import ModelLoadError as ModelLoadError
from .loading import hub_reachable as hub_reachable
from .loading import load_model as load_model
from .loading import packaged_minilm_path as packaged_minilm_path
from .model import EmbeddingModel as EmbeddingModel
from .model import Window as Window
from .registry import KNOWN_MODELS as KNOWN_MODELS
from .registry import KnownModel as KnownModel
from .registry import known_model as known_model
