"""Shared fixtures. Nothing here touches the network: the hub is switched off for the session.

The model fixtures run on the CPU even where a GPU is present, so that results compare exactly with
the CPU references the tests compute; ``tests/test_cuda.py`` covers the GPU."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402


def build_tiny_bert(directory, *, max_positions=512, seed=0, **config_overrides):
    """Save a randomly initialised 2-layer BERT (hidden 32) with the MiniLM tokenizer."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    import lc_utils as lc

    tokenizer = AutoTokenizer.from_pretrained(lc.packaged_minilm_path())
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=max_positions,
        **config_overrides,
    )
    torch.manual_seed(seed)
    BertModel(config).save_pretrained(directory)
    tokenizer.model_max_length = max_positions
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def tiny_model(tiny_model_dir):
    import lc_utils as lc

    return lc.load_model(str(tiny_model_dir), device="cpu", verbose=False)


@pytest.fixture(scope="session")
def minilm():
    import lc_utils as lc

    return lc.load_model("sentence-transformers/all-MiniLM-L6-v2", device="cpu", verbose=False)


def pytest_collection_modifyitems(config, items):
    """Stress tests (``@pytest.mark.stress``: a whole job repeated many times to catch a rare
    crash) take minutes and prove nothing new on each run, so they run only when selected:
    ``make test-stress`` (``pytest -m stress``)."""
    if "stress" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="a stress test: run it with make test-stress (pytest -m stress)")
    for item in items:
        if "stress" in item.keywords:
            item.add_marker(skip)
