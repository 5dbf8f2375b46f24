"""jina-embeddings-v3 with its task adapters, on a tiny native checkpoint in the published layout.

The checkpoint is a 2-layer ``JinaEmbeddingsV3Model`` (hidden 32) with the MiniLM tokenizer, and
beside it two LoRA adapters laid out as ``jinaai/jina-embeddings-v3-hf`` lays them out: one
subfolder per task (``retrieval_passage``, ``retrieval_query``), each with PEFT's
``adapter_config.json`` and ``adapter_model.safetensors`` under PEFT's tensor names, rank 4 and
alpha 1 on the nine targets the published adapters have. The factors are random and non-zero,
so every adapter moves every vector.

The reference is computed by hand: the base weights read again, ``W + alpha / r * B @ A``
written into every target weight (transposed for embedding tables), and the masked mean over
the network's output. lc_utils applies the adapters unmerged, through forward hooks, so the two
agree to float rounding only.
"""

import dataclasses
import json
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

import lc_utils as lc

TARGETS = ["word_embeddings", "token_type_embeddings", "q_proj", "k_proj", "v_proj", "o_proj",
           "fc1", "fc2", "dense"]  # fmt: skip
RANK, ALPHA = 4, 1
QUERY_PROMPT = "Represent the query for retrieving evidence documents: "
DOCUMENT_PROMPT = "Represent the document for retrieval: "
TEXTS = ["The moon pulls the oceans twice a day.", "Bees dance to show where food is."]
DOCUMENT = (
    "Tides follow the moon. High tide comes twice a day, a little later each day. Sailors read "
    "the tide tables of each harbour before they leave, because a falling tide can strand a boat."
)


def build_tiny_v3(directory, seed=0):
    from transformers import AutoTokenizer, JinaEmbeddingsV3Config, JinaEmbeddingsV3Model

    tokenizer = AutoTokenizer.from_pretrained(lc.packaged_minilm_path())
    config = JinaEmbeddingsV3Config(
        vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
        num_attention_heads=2, intermediate_size=64, max_position_embeddings=8194,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.cls_token_id,
        eos_token_id=tokenizer.sep_token_id, type_vocab_size=1,
    )  # fmt: skip
    torch.manual_seed(seed)
    JinaEmbeddingsV3Model(config).save_pretrained(directory)
    tokenizer.model_max_length = 8194
    tokenizer.save_pretrained(directory)
    return directory


def write_lora(directory, name, seed):
    """``directory/name/``: a PEFT LoRA adapter over every target module, random factors."""
    from transformers import AutoModel

    network = AutoModel.from_pretrained(directory)
    generator = torch.Generator().manual_seed(seed)

    def factor(*shape):
        return torch.randn(*shape, generator=generator) * 0.3

    tensors = {}
    for module_name, module in network.named_modules():
        if module_name.split(".")[-1] not in TARGETS:
            continue
        key = f"base_model.model.{module_name}"
        if isinstance(module, torch.nn.Embedding):
            tensors[f"{key}.lora_embedding_A"] = factor(RANK, module.num_embeddings)
            tensors[f"{key}.lora_embedding_B"] = factor(module.embedding_dim, RANK)
        else:
            tensors[f"{key}.lora_A.weight"] = factor(RANK, module.in_features)
            tensors[f"{key}.lora_B.weight"] = factor(module.out_features, RANK)
    folder = directory / name
    folder.mkdir()
    save_file(tensors, str(folder / "adapter_model.safetensors"))
    config = {"peft_type": "LORA", "r": RANK, "lora_alpha": ALPHA, "lora_dropout": 0.0,
              "target_modules": TARGETS, "bias": "none", "use_rslora": False, "use_dora": False,
              "fan_in_fan_out": False, "task_type": "FEATURE_EXTRACTION",
              "base_model_name_or_path": "jinaai/jina-embeddings-v3-hf"}  # fmt: skip
    (folder / "adapter_config.json").write_text(json.dumps(config, indent=2))
    return folder


@pytest.fixture(scope="module")
def v3_dir(tmp_path_factory):
    directory = build_tiny_v3(tmp_path_factory.mktemp("tiny-v3"))
    write_lora(directory, "retrieval_passage", seed=1)
    write_lora(directory, "retrieval_query", seed=2)
    return directory


@pytest.fixture(scope="module")
def v3(v3_dir):
    return lc.load_model(str(v3_dir), device="cpu", verbose=False)


def network(directory, adapter=None):
    """The base network, or with ``adapter`` merged into its weights by hand."""
    from transformers import AutoModel

    model = AutoModel.from_pretrained(directory).eval()
    if adapter is None:
        return model
    folder = directory / adapter
    config = json.loads((folder / "adapter_config.json").read_text())
    scale = config["lora_alpha"] / config["r"]
    tensors = load_file(str(folder / "adapter_model.safetensors"))
    modules = dict(model.named_modules())
    merged = 0
    with torch.no_grad():
        for key, a in tensors.items():
            name = key.removeprefix("base_model.model.")
            if name.endswith(".lora_A.weight"):
                b = tensors[key.replace(".lora_A.", ".lora_B.")]
                modules[name.removesuffix(".lora_A.weight")].weight += scale * b @ a
            elif name.endswith(".lora_embedding_A"):
                b = tensors[key.replace("lora_embedding_A", "lora_embedding_B")]
                modules[name.removesuffix(".lora_embedding_A")].weight += scale * (b @ a).T
            else:
                continue
            merged += 1
    assert merged == 2 * 6 + 3  # q, k, v, o, fc1, fc2 per layer; two embeddings; the pooler
    return model


def mean_pooled(directory, net, texts, prompt=""):
    """Masked mean of the network's output over ``prompt + text``, each text alone."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(directory)
    rows = []
    for text in texts:
        encoded = tokenizer(prompt + text, return_tensors="pt")
        with torch.no_grad():
            hidden = net(**encoded).last_hidden_state[0]
        rows.append(hidden.mean(0).numpy())
    return np.stack(rows)


def test_the_registry_records_the_adapters():
    v3 = lc.known_model("jinaai/jina-embeddings-v3-hf")
    assert (v3.document_adapter, v3.query_adapter) == ("retrieval_passage", "retrieval_query")
    assert (v3.query_prefix, v3.document_prefix) == (QUERY_PROMPT, DOCUMENT_PROMPT)
    rules = lc.models.registry.adapter_rules
    assert rules("/some/fine-tune", "jina_embeddings_v3") is v3  # by architecture, any name
    assert rules("jinaai/jina-embeddings-v2-small-en", "bert") is None
    assert all(m.document_adapter is None for m in lc.KNOWN_MODELS.values() if m is not v3)


def test_queries_and_naive_chunks_equal_hand_merged_weights(v3, v3_dir):
    assert v3.adapters.names() == {"document": "retrieval_passage", "query": "retrieval_query"}
    assert (v3.query_prefix, v3.document_prefix) == (QUERY_PROMPT, DOCUMENT_PROMPT)
    assert "retrieval_passage" in repr(v3)
    queries = lc.embed_queries(v3, TEXTS)
    chunks = lc.naive_chunking(v3, TEXTS)
    by_hand = {
        "query": mean_pooled(v3_dir, network(v3_dir, "retrieval_query"), TEXTS, QUERY_PROMPT),
        "passage": mean_pooled(
            v3_dir, network(v3_dir, "retrieval_passage"), TEXTS, DOCUMENT_PROMPT
        ),  # fmt: skip
    }
    np.testing.assert_allclose(queries, by_hand["query"], atol=1e-5, rtol=0)
    np.testing.assert_allclose(chunks, by_hand["passage"], atol=1e-5, rtol=0)
    base = network(v3_dir)
    assert np.abs(queries - mean_pooled(v3_dir, base, TEXTS, QUERY_PROMPT)).max() > 0.1
    assert np.abs(chunks - mean_pooled(v3_dir, base, TEXTS, DOCUMENT_PROMPT)).max() > 0.1
    assert np.abs(by_hand["query"] - by_hand["passage"]).max() > 0.1


def test_late_chunking_runs_through_the_document_adapter(v3, v3_dir):
    chunks = lc.chunk_text(DOCUMENT, "fixed", tokenizer=v3.tokenizer, chunk_size=8)
    assert len(chunks) > 3
    merged = dataclasses.replace(v3, model=network(v3_dir, "retrieval_passage"), adapters=None)
    base = dataclasses.replace(v3, model=network(v3_dir), adapters=None)
    lc.embed_queries(v3, ["a query first, so that the role must switch back"])
    for window in (None, 16):  # one pass, then overlapping windows
        late = lc.late_chunking(v3, DOCUMENT, chunks, window=window)
        expected = lc.late_chunking(merged, DOCUMENT, chunks, window=window)
        np.testing.assert_allclose(late, expected, atol=1e-5, rtol=0)
        assert np.abs(late - lc.late_chunking(base, DOCUMENT, chunks, window=window)).max() > 0.1
    tokens = lc.encode_document(v3, DOCUMENT).token_embeddings
    np.testing.assert_allclose(
        tokens, lc.encode_document(merged, DOCUMENT).token_embeddings, atol=1e-5, rtol=0
    )
    corpus = lc.embed_corpus(v3, {"d": DOCUMENT}, chunks={"d": chunks}, method="late",
                             progress=False)  # fmt: skip
    np.testing.assert_allclose(corpus.vectors, lc.late_chunking(merged, DOCUMENT, chunks),
                               atol=1e-5, rtol=0)  # fmt: skip


def test_use_role_switches_and_restores(v3, v3_dir):
    assert v3.role == "document"
    with v3.use_role("query") as inside:
        assert inside is v3 and v3.role == "query" and v3.adapters.active == "query"
    assert v3.role == "document" and v3.adapters.active == "document"
    with pytest.raises(ValueError, match="role='passage'; valid"):
        v3.use_role("passage")
    by_hand = mean_pooled(v3_dir, network(v3_dir, "retrieval_passage"), TEXTS, DOCUMENT_PROMPT)
    lc.embed_queries(v3, TEXTS)  # leaves the model as it found it
    assert v3.role == "document"
    np.testing.assert_allclose(v3.encode(TEXTS, prefix=DOCUMENT_PROMPT), by_hand, atol=1e-5)


def test_a_v3_checkpoint_without_its_adapters_is_refused_unless_asked(v3_dir, tmp_path):
    copy = shutil.copytree(v3_dir, tmp_path / "v3")
    shutil.rmtree(copy / "retrieval_query")
    with pytest.raises(lc.ModelLoadError) as error:
        lc.load_model(str(copy), device="cpu", verbose=False)
    message = str(error.value)
    assert "retrieval_query/adapter_config.json" in message and "base_weights=True" in message
    assert "retrieval_passage/" not in message.split("lacks")[1].split(".")[0]
    base = lc.load_model(str(copy), device="cpu", verbose=False, base_weights=True)
    assert base.adapters is None and base.query_prefix == base.document_prefix == ""
    expected = mean_pooled(copy, network(copy), TEXTS)
    np.testing.assert_allclose(lc.embed_queries(base, TEXTS), expected, atol=1e-5, rtol=0)
    np.testing.assert_allclose(lc.naive_chunking(base, TEXTS), expected, atol=1e-5, rtol=0)


def test_base_weights_on_a_model_without_adapters_is_refused(tiny_model_dir):
    with pytest.raises(lc.ModelLoadError, match="base_weights=True .* has none"):
        lc.load_model(str(tiny_model_dir), device="cpu", verbose=False, base_weights=True)


def rewrite(folder, *, config=None, rename=None):
    if config is not None:
        path = folder / "adapter_config.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), **config}))
    if rename is not None:
        tensors = load_file(str(folder / "adapter_model.safetensors"))
        tensors = {key.replace(*rename): value for key, value in tensors.items()}
        save_file(tensors, str(folder / "adapter_model.safetensors"))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"rename": ("self_attn.q_proj", "self_attn.qkv")}, "no module 'layers.0.self_attn.qkv'"),
        ({"config": {"use_dora": True}}, r"sets \['use_dora'\]"),
        ({"config": {"r": 8}}, r"ranks \[4\]; adapter_config.json says r=8"),
        ({"config": {"peft_type": "IA3"}}, "only LoRA is supported"),
    ],
)
def test_an_adapter_that_cannot_be_applied_exactly_is_refused(v3_dir, tmp_path, change, message):
    copy = shutil.copytree(v3_dir, tmp_path / "v3")
    rewrite(copy / "retrieval_query", **change)
    with pytest.raises(lc.ModelLoadError, match=message):
        lc.load_model(str(copy), device="cpu", verbose=False)


def test_the_adapters_follow_the_network_and_stay_out_of_its_state(v3):
    names = set(v3.model.state_dict())
    assert not any("lc_adapter" in name for name in names)
    buffers = [name for name, _ in v3.model.named_buffers() if "lc_adapter" in name]
    assert len(buffers) == 2 * 2 * (2 * 6 + 3)  # two roles, A and B, every target
