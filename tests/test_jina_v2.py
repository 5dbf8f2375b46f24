"""The native jina-embeddings-v2 module, on tiny random checkpoints in the published layout.

Everything here is offline and loads through the public ``lc.load_model(path)``. The module is
checked against an independent float64 numpy computation written from the architecture's
description (explicit softmax, a loop over heads, the ALiBi bias written out), not against
itself.

The online test compares the native module with the hub code for the real
jina-embeddings-v2-base-en. It needs the hub and a throwaway venv with ``transformers<5``::

    python -m venv /tmp/jina-ref && /tmp/jina-ref/bin/pip install torch 'transformers<5' \\
        safetensors numpy
    LC_JINA_REFERENCE_PYTHON=/tmp/jina-ref/bin/python \\
        .venv/bin/python -m pytest tests/test_jina_v2.py -m online -k hub_code

It is skipped, with its reason, when the hub is unreachable or the venv is not given.
"""

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

import lc_utils as lc
from lc_utils.models import jina_v2
from lc_utils.models import loading as models

from .jina_checkpoints import random_tensors, tiny_config, write_checkpoint


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return write_checkpoint(tmp_path_factory.mktemp("jina-tiny"))


@pytest.fixture(scope="module")
def tiny(tiny_dir):
    return lc.load_model(str(tiny_dir), device="cpu", verbose=False)


# -- ALiBi ------------------------------------------------------------------------------------


def test_slopes_follow_the_mosaicbert_rule():
    assert jina_v2.alibi_slopes(8).tolist() == [2.0**-k for k in range(1, 9)]
    twelve = [2.0**-k for k in range(1, 9)] + [2.0**-e for e in (0.5, 1.5, 2.5, 3.5)]
    assert np.allclose(jina_v2.alibi_slopes(12).numpy(), twelve, rtol=0, atol=1e-7)
    # 6 heads: the 4-head slopes, then every other slope of 8 heads (k = 1, 3).
    six = [2.0**-2, 2.0**-4, 2.0**-6, 2.0**-8, 2.0**-1, 2.0**-3]
    assert np.allclose(jina_v2.alibi_slopes(6).numpy(), six, rtol=0, atol=1e-7)


def test_bias_is_symmetric_and_decays_with_distance():
    slopes = jina_v2.alibi_slopes(4)
    bias = jina_v2.alibi_bias(slopes, torch.arange(5), 5)
    assert bias.shape == (4, 5, 5)
    assert torch.equal(bias, bias.transpose(1, 2))
    assert torch.all(bias.diagonal(dim1=1, dim2=2) == 0)
    assert float(bias[0, 0, 3]) == pytest.approx(-3 * float(slopes[0]))
    # A block of queries gets the rows of the full bias.
    assert torch.equal(jina_v2.alibi_bias(slopes, torch.arange(2, 4), 5), bias[:, 2:4])


def test_bias_line_is_exact_near_the_diagonal_in_half_precision():
    # Positions of a long pass are not exact integers in bfloat16 (spacing 64 near 8192), so
    # the line is computed in float32 and cast; near-diagonal biases must stay right.
    slopes = jina_v2.alibi_slopes(12)
    exact = jina_v2._distance_line(slopes, 8192)
    for dtype in (torch.bfloat16, torch.float16):
        line = jina_v2._distance_line(slopes.to(dtype), 8192)
        near = slice(8191 - 8, 8191 + 9)
        assert torch.allclose(line[:, near].float(), exact[:, near], rtol=1e-2, atol=1e-3)


def test_bfloat16_states_follow_float32(tiny_dir):
    # The half-precision path (meant for CUDA) runs on CPU in bfloat16 for this check.
    model, _ = jina_v2.load_jina_v2(tiny_dir)
    ids = torch.tensor([[101, *range(2000, 2300), 102]])
    with torch.inference_mode():
        full = model(input_ids=ids)[0][0]
        half = model.to(torch.bfloat16)(input_ids=ids)[0][0].float()
    cosine = torch.nn.functional.cosine_similarity(full, half, dim=-1)
    assert float(cosine.min()) > 0.99


def _reference_states(directory, ids: list[int]) -> np.ndarray:
    """The encoder written out in float64 numpy from the safetensors file, one head at a time."""
    from safetensors.numpy import load_file

    config = json.loads((directory / "config.json").read_text())
    w = {
        k: v.astype(np.float64) for k, v in load_file(str(directory / "model.safetensors")).items()
    }
    eps, heads = config["layer_norm_eps"], config["num_attention_heads"]
    inter = config["intermediate_size"]

    def norm(x, name):
        mean = x.mean(-1, keepdims=True)
        var = ((x - mean) ** 2).mean(-1, keepdims=True)
        return (x - mean) / np.sqrt(var + eps) * w[name + ".weight"] + w[name + ".bias"]

    def linear(x, name, bias=True):
        out = x @ w[name + ".weight"].T
        return out + w[name + ".bias"] if bias else out

    from math import erf

    gelu = np.vectorize(lambda v: 0.5 * v * (1.0 + erf(v / np.sqrt(2.0))))
    n = len(ids)
    x = (
        w["embeddings.word_embeddings.weight"][ids]
        + w["embeddings.token_type_embeddings.weight"][0]
    )
    x = norm(x, "embeddings.LayerNorm")
    slopes = jina_v2.alibi_slopes(heads).double().numpy()
    for layer in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{layer}"
        q, k, v = (linear(x, f"{p}.attention.self.{m}") for m in ("query", "key", "value"))
        size = x.shape[1] // heads
        context = np.zeros_like(x)
        for h in range(heads):
            cols = slice(h * size, (h + 1) * size)
            scores = q[:, cols] @ k[:, cols].T / np.sqrt(size)
            for i in range(n):
                for j in range(n):
                    scores[i, j] -= slopes[h] * abs(i - j)
            scores = np.exp(scores - scores.max(1, keepdims=True))
            context[:, cols] = (scores / scores.sum(1, keepdims=True)) @ v[:, cols]
        x = norm(
            x + linear(context, f"{p}.attention.output.dense"), f"{p}.attention.output.LayerNorm"
        )
        both = linear(x, f"{p}.mlp.gated_layers", bias=False)
        x = norm(
            x + linear(gelu(both[:, :inter]) * both[:, inter:], f"{p}.mlp.wo"), f"{p}.mlp.layernorm"
        )
    return x


def test_states_match_an_independent_explicit_computation(tiny, tiny_dir):
    ids = [101] + list(range(2000, 2030)) + [102]
    hidden, _ = tiny.forward([np.asarray(ids)])
    expected = _reference_states(tiny_dir, ids)
    assert np.abs(hidden[0].numpy() - expected).max() < 1e-4
    # A model that got the ALiBi sign wrong (as one public port does) would not match.
    assert np.abs(expected - _reference_states_with_flipped_sign(tiny_dir, ids)).max() > 1e-2


def _reference_states_with_flipped_sign(directory, ids):
    original = jina_v2.alibi_slopes
    try:
        jina_v2.alibi_slopes = lambda n: -original(n)
        return _reference_states(directory, ids)
    finally:
        jina_v2.alibi_slopes = original


def test_query_blocks_do_not_change_the_states(tiny):
    ids = np.asarray([101] + list(range(3000, 3200)) + [102])
    whole, _ = tiny.forward([ids])
    network = tiny.model
    saved = network.block_elements
    try:
        network.block_elements = 6 * 202 * 7  # 7 queries per block: 29 blocks
        assert network.query_block(1, 202) == 7
        blocked, _ = tiny.forward([ids])
    finally:
        network.block_elements = saved
    assert torch.allclose(whole, blocked, atol=1e-5)


def test_query_blocks_are_larger_on_a_gpu():
    # base-en's shape: 12 heads, an 8192-position pass; CPU keeps 128 MiB blocks, CUDA 8x that.
    config = jina_v2.JinaV2Config.from_dict(tiny_config(num_attention_heads=12))
    network = jina_v2.JinaV2Model(config)
    assert network.query_block(1, 8192) == 341
    assert network.query_block(1, 8192, on_gpu=True) == 2730
    assert network.query_block(64, 512, on_gpu=True) == 512  # a short batch is one block


# -- Strict loading ---------------------------------------------------------------------------


def test_published_layout_loads_and_unused_tensors_are_skipped(tiny):
    assert isinstance(tiny.model, jina_v2.JinaV2Model)
    assert (tiny.dim, tiny.max_length, tiny.pooling) == (48, 8192, "mean")
    names = set(tiny.model.state_dict())
    assert "pooler.dense.weight" not in names
    assert "encoder.layer.1.mlp.gated_layers.weight" in names
    # No dense ALiBi buffer is kept: only the per-head slopes.
    assert not any(b.numel() > 1000 for b in tiny.model.buffers())


def _states(directory):
    model = lc.load_model(str(directory), device="cpu", verbose=False)
    hidden, _ = model.forward([np.asarray([101, 2001, 2002, 2003, 102])])
    return hidden


def test_bert_prefix_and_pytorch_bin_give_the_same_states(tmp_path, tiny_dir):
    reference = _states(tiny_dir)
    prefixed = write_checkpoint(tmp_path / "prefixed", prefix="bert.")
    binary = write_checkpoint(tmp_path / "binary", fmt="bin")
    assert torch.equal(_states(prefixed), reference)
    assert torch.equal(_states(binary), reference)


@pytest.mark.parametrize(
    "change, message",
    [
        ("drop", r"missing tensor\(s\): encoder\.layer\.1\.mlp\.wo\.weight"),
        (
            "rename",
            r"missing tensor\(s\): encoder\.layer\.1\.mlp\.wo\.weight.*"
            r"unexpected tensor\(s\): encoder\.layer\.1\.mlp\.w0\.weight",
        ),
        (
            "shape",
            r"wrong shape\(s\): encoder\.layer\.1\.mlp\.wo\.weight \(48, 32\) "
            r"\(expected \(48, 64\)\)",
        ),
        ("extra", r"unexpected tensor\(s\): encoder\.layer\.0\.attention\.self\.rotary\.weight"),
    ],
)
def test_a_wrong_tensor_is_an_error_that_names_it(tmp_path, change, message):
    config = tiny_config()
    tensors = random_tensors(config)
    name = "encoder.layer.1.mlp.wo.weight"
    if change == "drop":
        del tensors[name]
    elif change == "rename":
        tensors["encoder.layer.1.mlp.w0.weight"] = tensors.pop(name)
    elif change == "shape":
        tensors[name] = tensors[name][:, :32].contiguous()
    else:
        tensors["encoder.layer.0.attention.self.rotary.weight"] = torch.zeros(3)
    directory = write_checkpoint(tmp_path / change, config, tensors)
    with pytest.raises(lc.ModelLoadError, match=message):
        lc.load_model(str(directory), verbose=False)


def test_base_code_layout_and_other_configs_are_refused(tmp_path):
    config = tiny_config()
    tensors = random_tensors(config)
    tensors["encoder.layer.0.attention.self.layer_norm_q.weight"] = torch.ones(48)
    directory = write_checkpoint(tmp_path / "code", config, tensors)
    with pytest.raises(lc.ModelLoadError, match="base-code.*different layout"):
        lc.load_model(str(directory), verbose=False)
    with pytest.raises(lc.ModelLoadError, match="base-code is not supported.*QK layer norms"):
        lc.load_model("jinaai/jina-embeddings-v2-base-code", verbose=False)
    with pytest.raises(jina_v2.JinaV2LoadError, match="feed_forward_type is 'swiglu'"):
        jina_v2.JinaV2Config.from_dict(tiny_config(feed_forward_type="swiglu"))
    with pytest.raises(jina_v2.JinaV2LoadError, match="position_embedding_type is 'absolute'"):
        jina_v2.JinaV2Config.from_dict(tiny_config(position_embedding_type="absolute"))


def test_half_precision_is_refused_on_cpu(tiny_dir):
    with pytest.raises(ValueError, match="float32 on CPU"):
        jina_v2.load_jina_v2(tiny_dir, dtype=torch.float16)


# -- Behaviour --------------------------------------------------------------------------------


def test_a_padded_batch_equals_each_sequence_alone(tiny):
    rng = np.random.default_rng(0)
    sequences = [np.concatenate([[101], rng.integers(1000, 29000, n), [102]]) for n in (40, 7, 23)]
    batch, mask = tiny.forward(sequences)
    assert mask.sum(1).tolist() == [42, 9, 25]
    for row, ids in enumerate(sequences):
        alone, _ = tiny.forward([ids])
        assert torch.allclose(batch[row, : len(ids)], alone[0], atol=1e-5)


def test_results_are_deterministic(tiny_dir, tiny):
    ids = np.asarray([101, 2054, 2003, 102])
    again = lc.load_model(str(tiny_dir), device="cpu", verbose=False)
    assert torch.equal(tiny.forward([ids])[0], again.forward([ids])[0])
    assert torch.equal(tiny.forward([ids])[0], tiny.forward([ids])[0])


@pytest.fixture(scope="module")
def long_document():
    words = ["river", "stone", "light", "garden", "music", "paper", "window", "city"]
    return " ".join(words[(i * 7 + i // 8) % 8] for i in range(6000))  # one token per word


def test_a_6000_token_document_in_one_pass_equals_any_window_that_holds_it(tiny, long_document):
    tokens = lc.tokenize_document(tiny.tokenizer, long_document)
    assert len(tokens) == 6000
    whole = lc.encode_document(tiny, long_document)  # window = 8192: one pass
    assert len(whole.plan.windows) == 1
    fits = lc.encode_document(tiny, long_document, window=len(tokens) + 2)
    assert len(fits.plan.windows) == 1
    assert np.array_equal(whole.token_embeddings, fits.token_embeddings)
    # Independently: the same states from a direct call to the network.
    ids = torch.tensor([[101, *tokens.input_ids.tolist(), 102]])
    with torch.inference_mode():
        direct = tiny.model(input_ids=ids)[0][0, 1:-1].numpy()
    assert np.abs(direct - whole.token_embeddings).max() < 1e-5
    # A window that does not hold it changes the far tokens' context, and says so.
    split = lc.encode_document(tiny, long_document, window=2048, overlap=256)
    assert len(split.plan.windows) > 1
    assert np.isfinite(split.token_embeddings).all()
    assert np.abs(split.token_embeddings - whole.token_embeddings).max() > 1e-3


def test_late_naive_and_query_vectors_are_finite_and_shaped(tiny, long_document):
    chunks = lc.chunk_text(long_document, "fixed", tokenizer=tiny.tokenizer, chunk_size=256)
    late = lc.late_chunking(tiny, long_document, chunks)
    naive = lc.naive_chunking(tiny, chunks)
    queries = lc.embed_queries(tiny, ["river stone", "city"])
    assert late.shape == naive.shape == (len(chunks), 48) and len(chunks) > 20
    assert queries.shape == (2, 48)
    for vectors in (late, naive, queries):
        assert vectors.dtype == np.float32 and np.isfinite(vectors).all()


# -- Registry and "auto" ----------------------------------------------------------------------


def test_registry_models_offline_fail_fast_and_say_how_to_get_the_files(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    models.hub_reachable.cache_clear()
    for name in ("jinaai/jina-embeddings-v2-base-en", "nomic-ai/nomic-embed-text-v1.5"):
        started = time.perf_counter()
        with pytest.raises(
            lc.ModelLoadError, match=r"huggingface-cli download .*load_model\(DIR\)"
        ):
            lc.load_model(name, verbose=False)
        assert time.perf_counter() - started < 5
    models.hub_reachable.cache_clear()


def test_auto_says_why_it_chose(monkeypatch):
    monkeypatch.setattr(models, "_cached_snapshot", lambda repo: None)
    monkeypatch.setattr(models, "hub_reachable", lambda timeout=3.0: True)
    choice = models._resolve("auto", None)
    assert (choice.target, choice.source, choice.trusted) == (lc.LONG_CONTEXT_DEFAULT, "hub", False)
    assert choice.reason == "the hub answered"
    monkeypatch.setattr(models, "hub_reachable", lambda timeout=3.0: False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    choice = models._resolve("auto", None)
    assert choice.source == "package"
    assert choice.reason == (
        f"HF_HUB_OFFLINE is set and no files of {lc.LONG_CONTEXT_DEFAULT} are cached"
    )
    monkeypatch.setattr(models, "_cached_snapshot", lambda repo: "somewhere")
    choice = models._resolve("auto", None)
    assert (choice.source, choice.reason) == ("cache", "its files are cached")


def test_a_cached_registry_jina_model_loads_natively_with_registry_settings(tiny_dir, monkeypatch):
    # The hub cache is stood in for by the tiny directory: resolution says "cache", and the
    # native loader reads the files from there without touching the network.
    monkeypatch.setattr(models, "_cached_snapshot", lambda repo: tiny_dir)
    monkeypatch.setattr(models, "_native_directory", lambda target, source: tiny_dir)
    model = lc.load_model("jinaai/jina-embeddings-v2-small-en", verbose=False)
    assert isinstance(model.model, jina_v2.JinaV2Model)
    assert (model.name, model.source, model.trained_length) == (
        "jinaai/jina-embeddings-v2-small-en",
        "cache",
        512,
    )


# -- Online: the native module against the hub code --------------------------------------------

_REFERENCE_SCRIPT = r"""
import json, sys, torch
from transformers import AutoModel
ids = json.loads(sys.argv[1])
model = AutoModel.from_pretrained("jinaai/jina-embeddings-v2-base-en", trust_remote_code=True)
with torch.no_grad():
    out = model(input_ids=torch.tensor([ids])).last_hidden_state[0]
json.dump(out.tolist(), sys.stdout)
"""


@pytest.mark.online
def test_native_states_match_the_hub_code_on_real_weights():
    """Cosine >= 0.9999 per token between this module and the hub code (transformers < 5)."""
    models.hub_reachable.cache_clear()
    if not models.hub_reachable():
        pytest.skip("needs the Hugging Face hub (unreachable here, or HF_HUB_OFFLINE is set)")
    python = os.environ.get("LC_JINA_REFERENCE_PYTHON")
    if not python:
        pytest.skip("set LC_JINA_REFERENCE_PYTHON to a venv's python with transformers<5")
    model = lc.load_model("jinaai/jina-embeddings-v2-base-en", verbose=False)
    text = "Late chunking embeds the whole document first. " * 40
    ids = [int(i) for i in model.tokenizer(text)["input_ids"]]
    native, _ = model.forward([np.asarray(ids)])
    result = subprocess.run(
        [python, "-c", _REFERENCE_SCRIPT, json.dumps(ids)],
        capture_output=True,
        text=True,
        check=True,
        timeout=1800,
    )
    reference = torch.tensor(json.loads(result.stdout))
    cosine = torch.nn.functional.cosine_similarity(native[0], reference, dim=-1)
    assert float(cosine.min()) >= 0.9999, float(cosine.min())


def test_online_test_is_marked_and_documented():
    assert "online" in test_native_states_match_the_hub_code_on_real_weights.pytestmark[0].name
    assert "LC_JINA_REFERENCE_PYTHON" in (sys.modules[__name__].__doc__ or "")
