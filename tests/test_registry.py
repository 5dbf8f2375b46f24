"""The registry of known models, loaded by hub id from a Hugging Face cache, offline.

A temporary hub cache stands in for the real one: tiny random checkpoints of each registry model
are placed where ``huggingface_hub`` keeps a downloaded snapshot
(``models--ORG--NAME/snapshots/REV`` with ``refs/main``), so ``lc.load_model(hub_id)`` runs its
real resolution path: found in the cache, loaded offline, with the registry's settings. The
transformers-native models are built by transformers' own classes (``save_pretrained``), with
the ``auto_map`` their published configs carry, which must be ignored rather than trusted.
"""

import json

import numpy as np
import pytest

import lc_utils as lc
from lc_utils.models import jina_v2
from lc_utils.models import loading as models

from .jina_checkpoints import write_checkpoint
from .test_adapters import write_lora

REVISION = "0" * 40


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    import huggingface_hub.constants

    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    models.hub_reachable.cache_clear()
    yield cache
    models.hub_reachable.cache_clear()


def _snapshot(cache, repo_id):
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(REVISION)
    snapshot = repo / "snapshots" / REVISION
    snapshot.mkdir(parents=True)
    return snapshot


def _save_native(directory, config, model_class, auto_map=None):
    from transformers import AutoTokenizer

    model_class(config).save_pretrained(directory)
    if auto_map:
        path = directory / "config.json"
        data = json.loads(path.read_text())
        data["auto_map"] = auto_map
        path.write_text(json.dumps(data))
    tokenizer = AutoTokenizer.from_pretrained(lc.packaged_minilm_path())
    tokenizer.model_max_length = 8192
    tokenizer.save_pretrained(directory)


def _tiny(config_class, **extra):
    return config_class(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        pad_token_id=0,
        **extra,
    )


def test_every_entry_is_complete():
    for name, entry in lc.KNOWN_MODELS.items():
        assert entry.name == name
        assert entry.loader in {"jina_v2", "transformers", "package", "unsupported"}
        assert entry.pooling in lc.SUPPORTED_POOLING
        assert entry.max_positions >= 512 and entry.dim > 0 and entry.note
        assert entry.trained_length is None or entry.trained_length <= entry.max_positions
    assert lc.known_model("nobody/unknown") is None
    assert lc.known_model(lc.LONG_CONTEXT_DEFAULT).loader == "jina_v2"


def test_auto_picks_cached_jina_v2_natively_and_says_why(hub_cache, capsys):
    write_checkpoint(_snapshot(hub_cache, lc.LONG_CONTEXT_DEFAULT))
    model = lc.load_model("auto")
    out = capsys.readouterr().out
    assert f"auto chose {lc.LONG_CONTEXT_DEFAULT}: its files are cached" in out
    assert isinstance(model.model, jina_v2.JinaV2Model)
    assert (model.name, model.source, model.trained_length) == (
        lc.LONG_CONTEXT_DEFAULT,
        "cache",
        512,
    )


@pytest.mark.parametrize(
    "repo_id, class_names, extra, auto_map",
    [
        (
            "nomic-ai/nomic-embed-text-v1.5",
            ("NomicBertConfig", "NomicBertModel"),
            {"max_position_embeddings": 8192},
            {"AutoModel": "nomic-ai/nomic-bert-2048--modeling_hf_nomic_bert.NomicBertModel"},
        ),
        (
            "nomic-ai/modernbert-embed-base",
            ("ModernBertConfig", "ModernBertModel"),
            {"max_position_embeddings": 8192},
            None,
        ),
        (
            "jinaai/jina-embeddings-v3-hf",
            ("JinaEmbeddingsV3Config", "JinaEmbeddingsV3Model"),
            {"max_position_embeddings": 8194},
            None,
        ),
    ],
)
def test_transformers_native_models_load_by_hub_id_with_registry_settings(
    hub_cache, repo_id, class_names, extra, auto_map
):
    import transformers

    config_class, model_class = (getattr(transformers, n) for n in class_names)
    snapshot = _snapshot(hub_cache, repo_id)
    _save_native(snapshot, _tiny(config_class, **extra), model_class, auto_map)
    entry = lc.known_model(repo_id)
    if entry.document_adapter is not None:  # jina-v3: refused without its adapters, then given
        with pytest.raises(lc.ModelLoadError, match=f"{entry.document_adapter}/adapter_config"):
            lc.load_model(repo_id, verbose=False)
        write_lora(snapshot, entry.document_adapter, seed=1)
        write_lora(snapshot, entry.query_adapter, seed=2)
    model = lc.load_model(repo_id, verbose=False)
    assert type(model.model).__name__ == class_names[1]
    if entry.document_adapter is not None:
        assert model.adapters.names() == {"document": entry.document_adapter,
                                          "query": entry.query_adapter}  # fmt: skip
    assert (model.query_prefix, model.document_prefix) == (
        entry.query_prefix,
        entry.document_prefix,
    )
    assert (model.pooling, model.trained_length, model.max_length) == (
        "mean",
        entry.trained_length,
        8192,
    )
    text = "First point. Second point follows. " * 30
    chunks = lc.chunk_text(text, "sentences")
    late = lc.late_chunking(model, text, chunks)
    naive = lc.naive_chunking(model, chunks)
    queries = lc.embed_queries(model, ["a question"])
    assert late.shape == naive.shape == (len(chunks), 32) and queries.shape == (1, 32)
    assert all(np.isfinite(v).all() for v in (late, naive, queries))


def test_a_jina_v2_checkpoint_outside_the_registry_runs_natively_from_the_cache(hub_cache):
    # e.g. someone's fine-tuned copy: its config still points at the hub code, never run.
    write_checkpoint(_snapshot(hub_cache, "someone/jina-v2-finetuned"))
    model = lc.load_model("someone/jina-v2-finetuned", verbose=False)
    assert isinstance(model.model, jina_v2.JinaV2Model)
    assert (model.source, model.trained_length) == ("cache", None)


def test_the_repository_declared_max_seq_length_wins_over_the_registry(hub_cache):
    snapshot = write_checkpoint(_snapshot(hub_cache, lc.LONG_CONTEXT_DEFAULT))
    (snapshot / "sentence_bert_config.json").write_text('{"max_seq_length": 8192}')
    model = lc.load_model(lc.LONG_CONTEXT_DEFAULT, verbose=False)
    assert model.trained_length == 8192
    assert lc.known_model(lc.LONG_CONTEXT_DEFAULT).trained_length == 512
