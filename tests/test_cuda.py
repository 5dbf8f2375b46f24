"""The CUDA path: the same vectors on a GPU as on the CPU, and half precision close to float32.

Skipped where torch sees no CUDA device, which includes CI. It runs on a GPU machine with
``benchmarks/gpu_check.sh`` (docs/performance.md, "GPU", quotes the last such run).

The models are the tiny random jina-embeddings-v2 checkpoint of ``tests/jina_checkpoints.py``
(8192 positions, so an 8,000-token document fits one pass) and the packaged all-MiniLM-L6-v2.
Each comparison runs the public pipeline twice, on ``cpu`` in float32 and on ``cuda``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import lc_utils as lc
from lc_utils.vectors import row_cosine

from .jina_checkpoints import write_checkpoint

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture(scope="module")
def jina_dir(tmp_path_factory):
    return write_checkpoint(tmp_path_factory.mktemp("jina-cuda"))


@pytest.fixture(scope="module")
def document():
    """Python's reference topics joined, cut to exactly 8,000 tokens of the MiniLM tokenizer."""
    topics = lc.datasets.load_pydoc_topics()
    text = "\n\n".join(topics[name] for name in sorted(topics))[:60_000]
    tokenizer = lc.load_model("sentence-transformers/all-MiniLM-L6-v2", device="cpu", verbose=False)
    tokens = lc.tokenize_document(tokenizer.tokenizer, text)
    return text[: int(tokens.ends[7999])]


def _late(model, text, window=None):
    chunks = lc.chunk_text(text, "fixed", tokenizer=model.tokenizer, chunk_size=128)
    encoded = lc.encode_document(model, text, window=window)
    return chunks, encoded, lc.late_chunking(model, text, chunks, window=window, progress=False)


def test_load_model_picks_cuda_when_present(jina_dir):
    model = lc.load_model(str(jina_dir), verbose=False)
    assert model.device.type == "cuda"
    assert next(model.model.parameters()).dtype == torch.float32


@pytest.mark.parametrize("window", [None, 2048])
def test_jina_on_cuda_equals_cpu_in_float32(jina_dir, document, window):
    cpu = lc.load_model(str(jina_dir), device="cpu", verbose=False)
    gpu = lc.load_model(str(jina_dir), device="cuda", verbose=False)
    chunks, cpu_states, cpu_vectors = _late(cpu, document, window)
    _, gpu_states, gpu_vectors = _late(gpu, document, window)
    assert len(cpu_states.token_embeddings) == 8000
    assert (len(cpu_states.plan.windows) == 1) == (window is None)
    # TF32 is off by default for matmuls in torch, so float32 on the GPU is float32.
    assert np.abs(cpu_states.token_embeddings - gpu_states.token_embeddings).max() < 1e-3
    assert row_cosine(cpu_vectors, gpu_vectors).min() > 0.99999
    assert len(gpu_vectors) == len(chunks)


@pytest.mark.parametrize(("dtype", "floor"), [(torch.float16, 0.999), (torch.bfloat16, 0.99)])
def test_jina_half_precision_on_cuda_follows_float32(jina_dir, document, dtype, floor):
    full = lc.load_model(str(jina_dir), device="cuda", verbose=False)
    half = lc.load_model(str(jina_dir), device="cuda", dtype=dtype, verbose=False)
    _, full_states, full_vectors = _late(full, document)
    _, half_states, half_vectors = _late(half, document)
    assert np.isfinite(half_states.token_embeddings).all()
    token_cosine = row_cosine(full_states.token_embeddings, half_states.token_embeddings)
    assert token_cosine.min() > floor
    assert row_cosine(full_vectors, half_vectors).min() > floor
    # The ranking a user sees: each chunk's nearest neighbour among the chunks is unchanged.
    full_nn = np.argsort(-(full_vectors @ full_vectors.T), axis=1)[:, 1]
    half_nn = np.argsort(-(half_vectors @ half_vectors.T), axis=1)[:, 1]
    assert (full_nn == half_nn).mean() > 0.95


def test_minilm_on_cuda_equals_cpu_for_late_naive_and_queries(document):
    cpu = lc.load_model("sentence-transformers/all-MiniLM-L6-v2", device="cpu", verbose=False)
    gpu = lc.load_model("sentence-transformers/all-MiniLM-L6-v2", device="cuda", verbose=False)
    chunks, cpu_states, cpu_late = _late(cpu, document)
    _, gpu_states, gpu_late = _late(gpu, document)
    assert len(cpu_states.plan.windows) > 1  # the long document runs in overlapping windows
    assert row_cosine(cpu_late, gpu_late).min() > 0.99999
    cpu_naive = lc.naive_chunking(cpu, chunks, progress=False)
    gpu_naive = lc.naive_chunking(gpu, chunks, progress=False)
    assert row_cosine(cpu_naive, gpu_naive).min() > 0.99999
    questions = ["How do I open a file?", "What does the with statement do?"]
    on_cpu, on_gpu = lc.embed_queries(cpu, questions), lc.embed_queries(gpu, questions)
    assert row_cosine(on_cpu, on_gpu).min() > 0.99999
