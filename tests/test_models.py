"""Model loading: offline resolution that never hangs, remote-code safety, pooling detection."""

import json
import re
import socket
import time
import types

import pytest

import lc_utils as lc
from lc_utils.models import loading as models

from .conftest import build_tiny_bert


def test_local_directory_loads_with_its_attributes(tiny_model):
    assert tiny_model.dim == 32 and tiny_model.max_length == 512
    assert tiny_model.pooling == "mean" and tiny_model.source == "local"
    assert tiny_model.special_token_ids == ([101], [102])
    assert tiny_model.tokenizer.is_fast


def test_hub_probe_is_fast_and_honours_offline(monkeypatch):
    models.hub_reachable.cache_clear()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    started = time.perf_counter()
    assert models.hub_reachable() is False
    assert time.perf_counter() - started < 0.1
    models.hub_reachable.cache_clear()
    monkeypatch.delenv("HF_HUB_OFFLINE")
    # Port 9 on loopback: nothing listens, so the probe must say no at once.
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    started = time.perf_counter()
    assert models.hub_reachable() is False
    assert time.perf_counter() - started < 4
    models.hub_reachable.cache_clear()
    # A socket that accepts connections but never answers (as some sandboxes do): a TCP
    # connect alone would say "reachable"; the probe must wait for HTTP and give up in time.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(4)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{silent.getsockname()[1]}")
    started = time.perf_counter()
    assert models.hub_reachable(timeout=1.0) is False
    assert time.perf_counter() - started < 3
    silent.close()
    models.hub_reachable.cache_clear()


def test_unknown_model_offline_fails_fast_with_advice():
    started = time.perf_counter()
    with pytest.raises(lc.ModelLoadError, match='not in the Hugging Face cache.*"auto"'):
        lc.load_model("nobody/no-such-embedding-model", verbose=False)
    assert time.perf_counter() - started < 10


def test_a_file_instead_of_a_directory_is_refused(tmp_path):
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"")
    with pytest.raises(lc.ModelLoadError, match="is a file; pass the model's directory"):
        lc.load_model(str(path), verbose=False)


def test_models_with_their_own_code_are_refused_without_trust(tmp_path):
    directory = build_tiny_bert(tmp_path / "remote")
    config_path = directory / "config.json"
    config = json.loads(config_path.read_text())
    config["auto_map"] = {"AutoModel": "someone/impl--modeling_bert.CustomBert"}
    config_path.write_text(json.dumps(config))
    with pytest.raises(lc.ModelLoadError, match="ships its own modelling code.*trust_remote_code"):
        lc.load_model(str(directory), verbose=False)


def test_known_models_never_run_hub_code(monkeypatch):
    # jina-embeddings-v2 and the other registry models run natively: their hub code is never
    # trusted, even when the caller passes trust_remote_code=True.
    monkeypatch.setattr(models, "_cached_snapshot", lambda repo: None)
    monkeypatch.setattr(models, "hub_reachable", lambda timeout=3.0: True)
    for name in ("jinaai/jina-embeddings-v2-small-en", "nomic-ai/nomic-embed-text-v1.5"):
        choice = models._resolve(name, True)
        assert (choice.target, choice.source, choice.trusted) == (name, "hub", False)
    choice = models._resolve("auto", None)
    assert (choice.target, choice.source, choice.trusted) == (lc.LONG_CONTEXT_DEFAULT, "hub", False)
    monkeypatch.setattr(models, "hub_reachable", lambda timeout=3.0: False)
    choice = models._resolve("auto", None)
    assert choice.source == "package" and choice.target == str(lc.packaged_minilm_path())
    assert "no files of jinaai/jina-embeddings-v2-base-en are cached" in choice.reason


def _with_pooling(directory, mode):
    (directory / "modules.json").write_text(
        json.dumps([{"idx": 1, "name": "1", "path": "1_Pooling", "type": "x.Pooling"}])
    )
    (directory / "1_Pooling").mkdir(exist_ok=True)
    (directory / "1_Pooling" / "config.json").write_text(json.dumps({mode: True}))
    return directory


@pytest.mark.parametrize("mode", ["pooling_mode_max_tokens", "pooling_mode_lasttoken"])
def test_pooling_the_pipeline_does_not_compute_is_refused(tmp_path, mode):
    directory = _with_pooling(build_tiny_bert(tmp_path / "pool"), mode)
    with pytest.raises(lc.ModelLoadError, match="pooling, which lc_utils does not compute"):
        lc.load_model(str(directory), verbose=False)
    # Chosen knowingly, it loads, and late chunking warns only for non-mean pooling.
    assert lc.load_model(str(directory), pooling="mean", verbose=False).pooling == "mean"
    with pytest.raises(ValueError, match="pooling='max'"):
        lc.load_model(str(directory), pooling="max", verbose=False)


def test_a_slow_tokenizer_is_refused(tiny_model_dir, monkeypatch):
    import transformers

    slow = types.SimpleNamespace(is_fast=False)
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", lambda *a, **k: slow)
    with pytest.raises(lc.ModelLoadError, match="not a fast .* character offsets"):
        lc.load_model(str(tiny_model_dir), verbose=False)
    with pytest.raises(TypeError, match="fast tokenizer"):
        lc.tokenize_document(slow, "text")


def test_sentence_transformers_settings_are_read(tmp_path):
    directory = build_tiny_bert(tmp_path / "cls")
    (directory / "modules.json").write_text(
        json.dumps([{"idx": 1, "name": "1", "path": "1_Pooling", "type": "x.Pooling"}])
    )
    (directory / "1_Pooling").mkdir()
    (directory / "1_Pooling" / "config.json").write_text('{"pooling_mode_cls_token": true}')
    (directory / "sentence_bert_config.json").write_text('{"max_seq_length": 128}')
    (directory / "config_sentence_transformers.json").write_text(
        '{"prompts": {"query": "search_query: ", "document": "search_document: "}}'
    )
    with pytest.warns(UserWarning, match="'cls' pooling; late chunking .* mean-pooling"):
        model = lc.load_model(str(directory), verbose=False)
    assert model.pooling == "cls" and model.trained_length == 128
    assert model.query_prefix == "search_query: "
    assert model.document_prefix == "search_document: "
    # CLS pooling: the naive vector is the first position's hidden state.
    vector = lc.naive_chunking(model, ["a test"])
    ids = model.tokenizer("search_document: a test", return_tensors="pt")
    import torch

    with torch.no_grad():
        expected = model.model(**ids).last_hidden_state[0, 0].numpy()
    assert abs(vector[0] - expected).max() < 1e-5
    # The document prefix takes part in the forward pass but belongs to no chunk.
    text = "Alpha beta. Gamma delta."
    late = lc.late_chunking(model, text, lc.chunk_text(text, "sentences"))
    assert late.shape == (2, 32)


def test_load_model_prints_its_choice(tiny_model_dir, capsys):
    lc.load_model(str(tiny_model_dir))
    assert "lc_utils: loaded" in capsys.readouterr().out


@pytest.mark.slow
def test_auto_offline_falls_back_to_the_packaged_minilm(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    models.hub_reachable.cache_clear()
    started = time.perf_counter()
    model = lc.load_model("auto", verbose=False)
    assert time.perf_counter() - started < 30
    assert model.name == lc.PACKAGED_MINILM and model.source == "package"
    assert (model.dim, model.max_length, model.trained_length) == (384, 512, 256)
    models.hub_reachable.cache_clear()


@pytest.fixture(scope="module")
def nan_model(tmp_path_factory):
    """A tiny BERT checkpoint with one NaN weight: it loads, and every forward is NaN."""
    import torch
    from transformers import BertModel

    import lc_utils as lc

    directory = build_tiny_bert(tmp_path_factory.mktemp("nan-bert"))
    network = BertModel.from_pretrained(directory)
    with torch.no_grad():
        network.encoder.layer[-1].output.dense.bias[0] = float("nan")
    network.save_pretrained(directory)
    return lc.load_model(str(directory), device="cpu", verbose=False)


NAN_TEXT = "One sentence here. Another sentence there."


@pytest.mark.parametrize(
    ("call", "named"),
    [
        (lambda m: lc.late_chunking(m, NAN_TEXT, [(0, 18), (19, 42)]), "texts item 0|item 0"),
        (lambda m: lc.naive_chunking(m, ["a text", NAN_TEXT]), r"item [01]\b"),
        (lambda m: lc.embed_queries(m, ["what is here?"]), "item 0"),
        (
            lambda m: lc.embed_corpus(m, {"ok-id": NAN_TEXT}, progress=False),
            "document 'ok-id'",
        ),
        (
            lambda m: lc.embed_corpus(m, {"doc-7": NAN_TEXT}, method="naive", progress=False),
            "document 'doc-7'",
        ),
    ],
)
def test_nan_weights_are_refused_after_the_forward_naming_model_and_document(
    nan_model, call, named
):
    with pytest.raises(lc.NonFiniteStatesError, match="NaN or infinite") as caught:
        call(nan_model)
    assert nan_model.name in str(caught.value)
    assert re.search(named, str(caught.value)), str(caught.value)


@pytest.mark.parametrize("name", ["", "   "])
def test_an_empty_model_name_is_refused_rather_than_loading_the_current_folder(name):
    with pytest.raises(lc.ModelLoadError, match="give a model name"):
        lc.load_model(name, device="cpu", verbose=False)


def test_a_vocabulary_larger_than_the_embedding_table_is_refused_at_load(tmp_path):
    from transformers import AutoTokenizer, BertConfig, BertModel

    tokenizer = AutoTokenizer.from_pretrained(lc.packaged_minilm_path())
    config = BertConfig(
        vocab_size=1000, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=64,
    )  # fmt: skip
    BertModel(config).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    with pytest.raises(
        lc.ModelLoadError, match=r"knows 30522 tokens but the network embeds only 1000"
    ):
        lc.load_model(str(tmp_path), device="cpu", verbose=False)


@pytest.mark.parametrize(
    ("field", "value", "said"),
    [
        ("num_attention_heads", 0, "num_attention_heads: 0"),
        ("num_hidden_layers", -1, "num_hidden_layers: -1"),
        ("hidden_size", "32", "hidden_size: '32'"),
        ("num_attention_heads", 5, "num_attention_heads 5 does not divide"),
    ],
)
@pytest.mark.parametrize("architecture", ["bert", "jina-v2"])
def test_impossible_sizes_in_config_are_named_before_any_network_is_built(
    tmp_path, architecture, field, value, said
):
    import json

    from .conftest import build_tiny_bert
    from .jina_checkpoints import write_checkpoint

    if architecture == "bert":
        directory = build_tiny_bert(tmp_path / "m")
    else:
        directory = write_checkpoint(tmp_path / "m")
    config = json.loads((directory / "config.json").read_text())
    config[field] = value
    (directory / "config.json").write_text(json.dumps(config))
    with pytest.raises(lc.ModelLoadError, match=said) as caught:
        lc.load_model(str(directory), device="cpu", verbose=False)
    assert "with transformers" not in str(caught.value)
