"""Shared fixtures. Nothing here touches the network: the hub is switched off for the session.

The model fixtures run on the CPU even where a GPU is present, so that results compare exactly with
the CPU references the tests compute; ``tests/test_cuda.py`` covers the GPU."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# ``make test`` runs the suite in a few processes at once (pytest-xdist; below). Each
# process (and the notebook kernels and Ray workers it starts, which inherit the variable) then
# gets its share of the cores for torch, instead of every process starting a thread per core.
if "PYTEST_XDIST_WORKER_COUNT" in os.environ and "OMP_NUM_THREADS" not in os.environ:
    _cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    _share = (_cpus or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])
    os.environ["OMP_NUM_THREADS"] = str(max(1, _share))

import re  # noqa: E402
from pathlib import Path  # noqa: E402

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


# How ``make test`` shares the tests out among its processes (pytest-xdist, ``--dist loadscope``
# with the scopes below): a work unit is a whole file, so that a module's fixtures are made once,
# except that the notebook tests split by notebook (each unit runs one notebook once: the lazy
# ``executed`` fixture of tests/test_notebooks.py), and the files whose tests share nothing costly
# split by test. The files that take longest come first, so that they are not left to the end.
PER_TEST = {"test_milvus_server.py", "test_paper_notebooks.py"}
LONGEST_FIRST = ("test_scale.py", "test_notebooks.py", "test_runner.py", "test_paper_notebooks.py")
_NOTEBOOK_TEST = re.compile(r"\[(\d\d_\w+)\]$|^test_(\d\d_[a-z_]+)$")


def xdist_scope(nodeid: str) -> str:
    """The work unit of a test, from its id alone (see above)."""
    path, _, test = nodeid.partition("::")
    name = Path(path).name
    if name == "test_notebooks.py":
        match = _NOTEBOOK_TEST.search(test)
        return f"notebook {match.group(1) or match.group(2)}" if match else nodeid
    return nodeid if name in PER_TEST else path


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """``--dist loadscope`` with ``xdist_scope``'s units; other modes as pytest-xdist has them.
    (Its ``loadgroup`` marks do not group on pytest 9.2: pytest-xdist issue #1386.)"""
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class SharedSetups(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return xdist_scope(nodeid)

    return SharedSetups(config, log)


def pytest_collection_modifyitems(config, items):
    """The longest files first (above). Stress tests (``@pytest.mark.stress``: a whole job
    repeated many times to catch a rare crash) take minutes and prove nothing new on each run,
    so they run only when selected: ``make test-stress`` (``pytest -m stress``)."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
    if "stress" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="a stress test: run it with make test-stress (pytest -m stress)")
    for item in items:
        if "stress" in item.keywords:
            item.add_marker(skip)
