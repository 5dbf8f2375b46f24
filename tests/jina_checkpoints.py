"""Tiny random jina-embeddings-v2 checkpoints written in the published layout.

The files are those of the hub repository jinaai/jina-embeddings-v2-base-en, shrunk: the same
``config.json`` fields (model_type "bert", position_embedding_type "alibi", feed_forward_type
"geglu", the auto_map that points at the hub code lc_utils never runs), the same tensor names in
``model.safetensors`` (including the unused ``pooler.dense``), and a fast BERT tokenizer (the
packaged MiniLM's, which has the same uncased WordPiece vocabulary family).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

PUBLISHED_CONFIG = {
    "_name_or_path": "jinaai/jina-bert-implementation",
    "architectures": ["JinaBertForMaskedLM"],
    "attention_probs_dropout_prob": 0.0,
    "auto_map": {
        "AutoConfig": "jinaai/jina-bert-implementation--configuration_bert.JinaBertConfig",
        "AutoModel": "jinaai/jina-bert-implementation--modeling_bert.JinaBertModel",
        "AutoModelForMaskedLM": (
            "jinaai/jina-bert-implementation--modeling_bert.JinaBertForMaskedLM"
        ),
        "AutoModelForSequenceClassification": (
            "jinaai/jina-bert-implementation--modeling_bert.JinaBertForSequenceClassification"
        ),
    },
    "classifier_dropout": None,
    "gradient_checkpointing": False,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "hidden_size": 768,
    "initializer_range": 0.02,
    "intermediate_size": 3072,
    "layer_norm_eps": 1e-12,
    "max_position_embeddings": 8192,
    "model_type": "bert",
    "num_attention_heads": 12,
    "num_hidden_layers": 12,
    "pad_token_id": 0,
    "position_embedding_type": "alibi",
    "torch_dtype": "float32",
    "transformers_version": "4.26.0",
    "type_vocab_size": 2,
    "use_cache": True,
    "vocab_size": 30528,
    "feed_forward_type": "geglu",
    "emb_pooler": "mean",
}


def published_tensor_shapes(config: dict) -> dict[str, tuple[int, ...]]:
    """Every tensor name of the published base-en layout with its shape, for ``config``."""
    d, i = config["hidden_size"], config["intermediate_size"]
    shapes = {
        "embeddings.word_embeddings.weight": (config["vocab_size"], d),
        "embeddings.token_type_embeddings.weight": (config["type_vocab_size"], d),
        "embeddings.LayerNorm.weight": (d,),
        "embeddings.LayerNorm.bias": (d,),
        "pooler.dense.weight": (d, d),
        "pooler.dense.bias": (d,),
    }
    for n in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{n}"
        for name in ("query", "key", "value"):
            shapes[f"{p}.attention.self.{name}.weight"] = (d, d)
            shapes[f"{p}.attention.self.{name}.bias"] = (d,)
        shapes[f"{p}.attention.output.dense.weight"] = (d, d)
        shapes[f"{p}.attention.output.dense.bias"] = (d,)
        shapes[f"{p}.attention.output.LayerNorm.weight"] = (d,)
        shapes[f"{p}.attention.output.LayerNorm.bias"] = (d,)
        shapes[f"{p}.mlp.gated_layers.weight"] = (2 * i, d)
        shapes[f"{p}.mlp.wo.weight"] = (d, i)
        shapes[f"{p}.mlp.wo.bias"] = (d,)
        shapes[f"{p}.mlp.layernorm.weight"] = (d,)
        shapes[f"{p}.mlp.layernorm.bias"] = (d,)
    return shapes


def random_tensors(config: dict, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights of the published names and shapes (norm weights near 1)."""
    generator = torch.Generator().manual_seed(seed)
    tensors = {}
    for name, shape in published_tensor_shapes(config).items():
        value = torch.randn(shape, generator=generator) * 0.2
        if "LayerNorm.weight" in name or "layernorm.weight" in name:
            value = 1.0 + 0.1 * value
        tensors[name] = value.contiguous()
    return tensors


def tiny_config(**overrides) -> dict:
    """The published config with a tiny shape: 2 layers, 6 heads (not a power of two), hidden 48."""
    config = dict(PUBLISHED_CONFIG)
    config.update(
        hidden_size=48,
        intermediate_size=64,
        num_attention_heads=6,
        num_hidden_layers=2,
    )
    config.update(overrides)
    return config


def write_checkpoint(
    directory,
    config: dict | None = None,
    tensors: dict[str, torch.Tensor] | None = None,
    *,
    seed: int = 0,
    prefix: str = "",
    fmt: str = "safetensors",
) -> Path:
    """Write ``config.json``, weights (``fmt``: safetensors or bin) and a fast tokenizer."""
    from safetensors.torch import save_file
    from transformers import AutoTokenizer

    import lc_utils as lc

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config = config or tiny_config()
    tensors = random_tensors(config, seed) if tensors is None else tensors
    tensors = {prefix + name: t for name, t in tensors.items()}
    (directory / "config.json").write_text(json.dumps(config, indent=2))
    if fmt == "safetensors":
        save_file(tensors, str(directory / "model.safetensors"))
    else:
        torch.save(tensors, directory / "pytorch_model.bin")
    tokenizer = AutoTokenizer.from_pretrained(lc.packaged_minilm_path())
    tokenizer.model_max_length = config["max_position_embeddings"]
    tokenizer.save_pretrained(directory)
    return directory
