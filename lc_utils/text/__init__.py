"""Text to chunks to token spans: the first stage of the package, which needs no model.

``chunking`` holds the chunkers and the span checks, ``sentences`` the sentence splitter they
share (spaCy's sentencizer, and a fast path with the same answers), ``semantic`` the chunker that
takes a model as an argument, ``strategies`` the choice by name (``chunk_text``), and ``tokens``
the bridge from character spans to model tokens.
"""

from .chunking import Chunk as Chunk
from .chunking import check_integer as check_integer
from .chunking import chunk_fixed as chunk_fixed
from .chunking import chunk_paragraphs as chunk_paragraphs
from .chunking import chunk_sentences as chunk_sentences
from .chunking import strip_span as strip_span
from .chunking import validate_chunks as validate_chunks
from .semantic import chunk_semantic as chunk_semantic
from .sentences import sentence_spans as sentence_spans
from .strategies import STRATEGIES as STRATEGIES
from .strategies import chunk_text as chunk_text
from .strategies import chunking_label as chunking_label
from .tokens import TokenizedDocument as TokenizedDocument
from .tokens import chunk_of_tokens as chunk_of_tokens
from .tokens import token_offsets as token_offsets
from .tokens import token_spans as token_spans
from .tokens import tokenize_document as tokenize_document
from .tokens import whitespace_mask as whitespace_mask
