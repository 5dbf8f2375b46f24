"""jina-embeddings-v2 (JinaBERT v2) in plain PyTorch: no hub code, no transformers model class.

jina-embeddings-v2 is a BERT encoder with three changes: no position embeddings, an ALiBi bias
on the attention scores instead, and a gated (GLU) feed-forward. Its modelling code lives on the
Hugging Face hub and does not import on transformers 5, and loading the checkpoint without that
code silently builds a plain BERT with wrong vectors. This module is the one piece of model code
lc_utils owns: it reads the published ``config.json`` and weights by their published tensor
names, strictly, and runs the encoder.

The architecture was read from two independent public implementations and checked against each
other (no code was copied):

* candle, ``candle-transformers/src/models/jina_bert.rs`` (Rust): the base-en tensor layout,
  the GLU half order (the first half of ``gated_layers`` goes through the activation and
  multiplies the second half), post-LayerNorm residuals, token-type embeddings.
* text-embeddings-inference, ``backends/python/server/text_embeddings_server/models/
  jinaBert_model.py`` (a port of the hub code), and an MLX port of base-en (Nexa AI): the ALiBi
  slopes and sign. candle adds ``+slope * |i - j|``; the hub code, TEI and MosaicBERT (from which
  the hub code descends) add ``-slope * |i - j|``, which is what a trained ALiBi model expects
  (attention decays with distance). We follow the latter.

Architecture (``H`` heads, hidden ``D``, intermediate ``I``, pass length ``L``)::

    x = LayerNorm(word_embeddings[ids] + token_type_embeddings[0])
    per layer:
        a = softmax(Q K^T / sqrt(D / H) - slope_h * |i - j| + padding mask) V
        x = LayerNorm(x + dense(a))                                  # attention.output
        g = gated_layers(x)                                          # (.., 2I), no bias
        x = LayerNorm(x + wo(act(g[..., :I]) * g[..., I:]))          # mlp
    slopes: 2^(-8k/n) for k = 1..n when n is a power of two; otherwise those of the largest
    power of two below n, followed by every other slope of twice that power (MosaicBERT).

The ALiBi bias is built for the current pass length only, and never as a dense ``(H, L, L)``
tensor (at 8192 positions and 12 heads that alone is 3.2 GB in float32): every row of it is a
slice of one line of ``2L - 1`` values per head, so each block of queries gets its bias as a
strided view (``_distance_line``). Attention runs through
``torch.nn.functional.scaled_dot_product_attention`` in blocks of queries, so that an
8192-position pass holds one block's scores at a time.

Supported: base-en, small-en, base-de, base-es, base-zh (one shared layout). base-code uses a
different layer layout (QK layer norms, ``up_gated_layer``/``down_layer``, ``layer_norm_1/2``,
and the GLU halves in the other order) and is refused with a clear error.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "JinaV2Config",
    "JinaV2Model",
    "JinaV2LoadError",
    "alibi_slopes",
    "alibi_bias",
    "is_jina_v2_checkpoint",
    "load_jina_v2",
    "UNUSED_TENSOR_PREFIXES",
]

# Tensors the published checkpoints carry that an encoder does not use, skipped by name only:
# the pooler (a tanh head on [CLS]), the masked-LM head, and the index buffer that BERT-style
# embeddings save. Any other tensor that is not part of the encoder is an error.
UNUSED_TENSOR_PREFIXES = ("pooler.", "cls.", "embeddings.position_ids")
_OPTIONAL_PREFIX = "bert."
_BASE_CODE_MARKERS = ("layer_norm_q", "layer_norm_k", "up_gated_layer", "down_layer")
# Float elements of one query block's attention bias (and of its score matrix): 2**25 floats is
# 128 MiB in float32, which keeps a whole 8192-position pass well under 4 GB of memory on CPU.
# On a GPU that block is too small: an 8192-token pass of base-en in float16 on an H200 took
# 70 ms with 341 queries per block and 38 ms with 1,365 (2**27 elements, 356 MiB more at peak);
# 2**28 (2,730 queries) sits on the flat part of that curve (benchmarks/gpu_check.sh).
_BLOCK_ELEMENTS = 2**25
_BLOCK_ELEMENTS_CUDA = 2**28


class JinaV2LoadError(RuntimeError):
    """A jina-embeddings-v2 checkpoint could not be loaded; the message names what is wrong."""


@dataclass(frozen=True)
class JinaV2Config:
    """The fields of a published jina-embeddings-v2 ``config.json`` that the encoder uses."""

    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    max_position_embeddings: int
    type_vocab_size: int
    layer_norm_eps: float
    feed_forward_type: str
    pad_token_id: int = 0

    @classmethod
    def from_dict(cls, config: dict, where: str = "config.json") -> JinaV2Config:
        """Validate a ``config.json`` dict; raises ``JinaV2LoadError`` naming a bad field."""
        if _looks_like_base_code(config):
            raise JinaV2LoadError(_base_code_message(where))
        position = config.get("position_embedding_type")
        if position != "alibi":
            raise JinaV2LoadError(
                f"{where}: position_embedding_type is {position!r}; jina-embeddings-v2 uses "
                "'alibi'. This is not a jina-embeddings-v2 checkpoint."
            )
        feed_forward = config.get("feed_forward_type")
        if feed_forward not in {"geglu", "reglu"}:
            raise JinaV2LoadError(
                f"{where}: feed_forward_type is {feed_forward!r}; jina-embeddings-v2 uses "
                "'geglu' (or 'reglu'); other feed-forward types are not implemented here."
            )
        needed = (
            "vocab_size",
            "hidden_size",
            "num_hidden_layers",
            "num_attention_heads",
            "intermediate_size",
            "max_position_embeddings",
        )
        missing = [name for name in needed if not isinstance(config.get(name), int)]
        if missing:
            raise JinaV2LoadError(f"{where}: missing or non-integer field(s) {missing}")
        if config["hidden_size"] % config["num_attention_heads"]:
            raise JinaV2LoadError(
                f"{where}: hidden_size {config['hidden_size']} is not a multiple of "
                f"num_attention_heads {config['num_attention_heads']}"
            )
        return cls(
            vocab_size=config["vocab_size"],
            hidden_size=config["hidden_size"],
            num_hidden_layers=config["num_hidden_layers"],
            num_attention_heads=config["num_attention_heads"],
            intermediate_size=config["intermediate_size"],
            max_position_embeddings=config["max_position_embeddings"],
            type_vocab_size=int(config.get("type_vocab_size", 2)),
            layer_norm_eps=float(config.get("layer_norm_eps", 1e-12)),
            feed_forward_type=feed_forward,
            pad_token_id=int(config.get("pad_token_id") or 0),
        )


def _looks_like_base_code(config: dict) -> bool:
    text = json.dumps({k: config.get(k) for k in ("_name_or_path", "auto_map")})
    return "qk-post-norm" in text or "base-code" in text


def _base_code_message(where: str) -> str:
    return (
        f"{where} is jina-embeddings-v2-base-code, whose layers have a different layout "
        "(QK layer norms, mlp.up_gated_layer/down_layer, layer_norm_1/2, GLU halves in the "
        "other order). lc_utils implements only the base-en/small-en/base-de/base-es/base-zh "
        "layout; use one of those models."
    )


def alibi_slopes(n_heads: int) -> torch.Tensor:
    """Per-head ALiBi slopes, float32 ``(n_heads,)``, in the MosaicBERT / jina-v2 order.

    For ``n`` a power of two: ``2^(-8k/n)`` for ``k = 1..n``. Otherwise the slopes of the
    largest power of two ``p < n``, followed by the first ``n - p`` of every other slope of
    ``2p`` (those at ``k = 1, 3, 5, ...``). 12 heads: ``2^-1 .. 2^-8, 2^-0.5, 2^-1.5, 2^-2.5,
    2^-3.5``.
    """
    if n_heads < 1:
        raise ValueError(f"n_heads={n_heads}; it must be >= 1")

    def power_of_two(n: int) -> list[float]:
        return [2.0 ** (-8.0 * k / n) for k in range(1, n + 1)]

    below = 2 ** int(math.floor(math.log2(n_heads)))
    slopes = power_of_two(below)
    if below != n_heads:
        slopes += power_of_two(2 * below)[0::2][: n_heads - below]
    return torch.tensor(slopes, dtype=torch.float32)


def alibi_bias(
    slopes: torch.Tensor, queries: torch.Tensor, n_keys: int, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """The symmetric ALiBi bias ``-slope_h * |i - j|`` for query positions ``queries``.

    Args:
        slopes: float ``(H,)`` from ``alibi_slopes``.
        queries: int ``(Q,)`` positions of the queries in the pass.
        n_keys: the pass length ``L``; keys are positions ``0..L-1``.
    Returns:
        ``(H, Q, L)`` in ``dtype`` (default: that of ``slopes``), on ``slopes``' device.
    """
    keys = torch.arange(n_keys, device=slopes.device)
    distance = (queries.to(slopes.device)[:, None] - keys[None, :]).abs().to(slopes.dtype)
    bias = distance.unsqueeze(0) * (-slopes)[:, None, None]
    return bias if dtype is None else bias.to(dtype)


def _distance_line(slopes: torch.Tensor, length: int) -> torch.Tensor:
    """``line[h, t] = -slope_h * |t - (length - 1)|`` for ``t`` in ``0 .. 2 * length - 2``.

    With the keys in reverse order (key ``j`` at column ``c = length - 1 - j``), the bias of
    query ``i`` and column ``c`` is ``-slope_h * |i - j| = line[h, i + c]``: row ``i`` of the bias
    is ``line[h, i : i + length]``. So a block of rows is a strided view of ``line`` (a Hankel
    matrix), and no ``(H, L, L)`` tensor is ever built: at 8192 positions ``line`` holds
    ``H * 16383`` floats. Returned in ``slopes``' dtype.
    """
    # Distances in float32 (exact up to 2^24), then cast: in float16 or bfloat16 the positions
    # of a long pass are not exact integers, and the small near-diagonal biases would be wrong.
    t = torch.arange(2 * length - 1, device=slopes.device, dtype=torch.float32)
    line = (-(t - (length - 1)).abs())[None, :] * slopes.float()[:, None]
    return line.to(slopes.dtype)


class _SelfAttention(nn.Module):
    def __init__(self, config: JinaV2Config):
        super().__init__()
        d = config.hidden_size
        self.query = nn.Linear(d, d)
        self.key = nn.Linear(d, d)
        self.value = nn.Linear(d, d)
        self.n_heads = config.num_attention_heads

    def forward(self, x: torch.Tensor, biases) -> torch.Tensor:
        batch, length, d = x.shape

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.view(batch, length, self.n_heads, d // self.n_heads).transpose(1, 2)

        q, k, v = heads(self.query(x)), heads(self.key(x)), heads(self.value(x))
        # Keys and values in reverse order, so that each query block's ALiBi bias is a strided
        # view of one line per head (see _distance_line). Attention is a weighted sum over keys,
        # so their order does not matter as long as the bias follows it.
        k, v = k.flip(2), v.flip(2)
        out = torch.empty_like(q)
        for start, stop, bias in biases():
            out[:, :, start:stop] = F.scaled_dot_product_attention(
                q[:, :, start:stop], k, v, attn_mask=bias
            )
        return out.transpose(1, 2).reshape(batch, length, d)


class _AttentionOutput(nn.Module):
    def __init__(self, config: JinaV2Config):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, attended: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(residual + self.dense(attended))


class _Attention(nn.Module):
    def __init__(self, config: JinaV2Config):
        super().__init__()
        # The published names are attention.self.* and attention.output.*.
        self.self = _SelfAttention(config)
        self.output = _AttentionOutput(config)

    def forward(self, x: torch.Tensor, biases) -> torch.Tensor:
        return self.output(self.self(x, biases), x)


class _GatedFeedForward(nn.Module):
    def __init__(self, config: JinaV2Config):
        super().__init__()
        self.intermediate = config.intermediate_size
        self.gated_layers = nn.Linear(config.hidden_size, 2 * config.intermediate_size, bias=False)
        self.wo = nn.Linear(config.intermediate_size, config.hidden_size)
        self.layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        # "geglu" uses the exact (erf) GELU, as torch.nn.GELU() does in the reference code.
        self.activation = F.gelu if config.feed_forward_type == "geglu" else F.relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        both = self.gated_layers(x)
        gated, linear = both[..., : self.intermediate], both[..., self.intermediate :]
        return self.layernorm(x + self.wo(self.activation(gated) * linear))


class _Layer(nn.Module):
    def __init__(self, config: JinaV2Config):
        super().__init__()
        self.attention = _Attention(config)
        self.mlp = _GatedFeedForward(config)

    def forward(self, x: torch.Tensor, biases) -> torch.Tensor:
        return self.mlp(self.attention(x, biases))


class _Embeddings(nn.Module):
    def __init__(self, config: JinaV2Config):
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor) -> torch.Tensor:
        x = self.word_embeddings(input_ids) + self.token_type_embeddings(token_type_ids)
        return self.LayerNorm(x)


class _Encoder(nn.Module):
    def __init__(self, config: JinaV2Config):
        super().__init__()
        self.layer = nn.ModuleList(_Layer(config) for _ in range(config.num_hidden_layers))


class JinaV2Model(nn.Module):
    """The jina-embeddings-v2 encoder; its ``state_dict`` keys are the published tensor names.

    ``forward(input_ids, attention_mask=None, token_type_ids=None)`` takes int64 ``(B, L)`` ids,
    an optional ``(B, L)`` mask (1 = token, 0 = padding; padded keys get zero attention weight)
    and optional token types (default 0), and returns a one-element tuple with the final hidden
    states ``(B, L, hidden_size)`` in the parameters' dtype.
    """

    def __init__(self, config: JinaV2Config, block_elements: int | None = None):
        super().__init__()
        self.config = config
        self.embeddings = _Embeddings(config)
        self.encoder = _Encoder(config)
        self.block_elements = block_elements  # None: by device, see _BLOCK_ELEMENTS
        self.register_buffer("slopes", alibi_slopes(config.num_attention_heads), persistent=False)

    def query_block(self, batch: int, length: int, on_gpu: bool = False) -> int:
        """Queries per attention block, so that a block's scores hold ~``block_elements``."""
        elements = self.block_elements or (_BLOCK_ELEMENTS_CUDA if on_gpu else _BLOCK_ELEMENTS)
        per_query = batch * self.config.num_attention_heads * length
        return max(1, min(length, elements // max(per_query, 1)))

    def forward(self, input_ids, attention_mask=None, token_type_ids=None):
        batch, length = input_ids.shape
        if length > self.config.max_position_embeddings:
            raise ValueError(
                f"a pass of {length} positions exceeds max_position_embeddings="
                f"{self.config.max_position_embeddings}"
            )
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        x = self.embeddings(input_ids, token_type_ids)
        dtype = x.dtype
        padding = None
        if attention_mask is not None and not bool(attention_mask.bool().all()):
            # (B, 1, 1, L): -inf on padded keys, so they get exactly zero weight.
            padding = torch.zeros((batch, 1, 1, length), dtype=dtype, device=x.device)
            padding.masked_fill_(~attention_mask.bool()[:, None, None, :], float("-inf"))
        on_gpu = x.device.type == "cuda"
        block = self.query_block(batch, length, on_gpu)
        line = _distance_line(self.slopes.to(device=x.device, dtype=dtype), length)
        if padding is not None:
            padding = padding.flip(-1)  # keys run in reverse order, see _distance_line

        def biases():
            for start in range(0, length, block):
                stop = min(start + block, length)
                # (1, H, Q, L): a view into `line`, no copy. With padding, the sum is a copy
                # of one block only.
                view = line.as_strided(
                    (1, line.shape[0], stop - start, length),
                    (line.numel(), line.stride(0), 1, 1),
                    line.storage_offset() + start,
                )
                if padding is not None:
                    view = view + padding
                elif on_gpu:
                    # GPU attention kernels want an aligned, contiguous mask; one block is cheap.
                    view = view.contiguous()
                yield start, stop, view

        for layer in self.encoder.layer:
            x = layer(x, biases)
        return (x,)


def is_jina_v2_checkpoint(directory: Path) -> bool:
    """Whether ``directory/config.json`` describes a jina-embeddings-v2 (ALiBi + GLU) BERT."""
    try:
        config = json.loads((Path(directory) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (
        config.get("model_type") == "bert"
        and config.get("position_embedding_type") == "alibi"
        and str(config.get("feed_forward_type", "")).endswith("glu")
    )


def _read_weights(directory: Path) -> dict[str, torch.Tensor]:
    """All tensors of a checkpoint directory: safetensors (single or sharded), else .bin."""
    from safetensors.torch import load_file

    single = directory / "model.safetensors"
    index = directory / "model.safetensors.index.json"
    if single.is_file():
        return load_file(str(single))
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        tensors = {}
        for shard in shards:
            tensors.update(load_file(str(directory / shard)))
        return tensors
    binary = directory / "pytorch_model.bin"
    if binary.is_file():
        return torch.load(str(binary), map_location="cpu", weights_only=True)
    raise JinaV2LoadError(
        f"{directory} holds no weights: expected model.safetensors, "
        "model.safetensors.index.json or pytorch_model.bin"
    )


def _encoder_tensors(raw: dict[str, torch.Tensor], where: Path) -> dict[str, torch.Tensor]:
    """Strip the optional ``bert.`` prefix and skip the named unused tensors; nothing else."""
    tensors = {}
    for name, tensor in raw.items():
        short = name[len(_OPTIONAL_PREFIX) :] if name.startswith(_OPTIONAL_PREFIX) else name
        if short.startswith(UNUSED_TENSOR_PREFIXES):
            continue
        if short in tensors:
            raise JinaV2LoadError(f"{where}: tensor {short!r} appears with and without 'bert.'")
        tensors[short] = tensor
    if any(marker in name for name in tensors for marker in _BASE_CODE_MARKERS):
        raise JinaV2LoadError(_base_code_message(str(where)))
    return tensors


def _check_names_and_shapes(model: JinaV2Model, tensors: dict, where: Path) -> None:
    expected = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    wrong = sorted(
        f"{name} {tuple(tensors[name].shape)} (expected {expected[name]})"
        for name in set(expected) & set(tensors)
        if tuple(tensors[name].shape) != expected[name]
    )
    problems = []
    if missing:
        problems.append(f"missing tensor(s): {', '.join(missing[:8])}")
    if unexpected:
        problems.append(f"unexpected tensor(s): {', '.join(unexpected[:8])}")
    if wrong:
        problems.append(f"wrong shape(s): {', '.join(wrong[:8])}")
    if problems:
        counts = f"({len(missing)} missing, {len(unexpected)} unexpected, {len(wrong)} wrong)"
        raise JinaV2LoadError(
            f"{where} is not a jina-embeddings-v2 checkpoint of the shape its config.json "
            f"declares {counts}: " + "; ".join(problems)
        )


def load_jina_v2(
    directory, *, device=None, dtype: torch.dtype | None = None
) -> tuple[JinaV2Model, JinaV2Config]:
    """Load a jina-embeddings-v2 checkpoint directory strictly, by its published tensor names.

    Reads ``config.json`` and ``model.safetensors`` (or the sharded index, or
    ``pytorch_model.bin``). Names may carry a ``bert.`` prefix; the pooler, the MLM head and
    ``embeddings.position_ids`` are skipped by name. Any other missing, unexpected or wrongly
    shaped tensor raises ``JinaV2LoadError`` naming it. ``dtype`` defaults to float32; float16
    and bfloat16 are for CUDA. Returns the model in eval mode on ``device`` (default CPU).
    """
    directory = Path(directory)
    config_path = directory / "config.json"
    try:
        raw_config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise JinaV2LoadError(f"cannot read {config_path}: {error}") from error
    config = JinaV2Config.from_dict(raw_config, str(config_path))
    dtype = dtype or torch.float32
    device = torch.device(device or "cpu")
    if dtype in {torch.float16, torch.bfloat16} and device.type == "cpu":
        raise ValueError(f"dtype={dtype} on CPU: use float32 on CPU (half precision is for CUDA)")
    tensors = _encoder_tensors(_read_weights(directory), directory)
    with torch.device("meta"):
        model = JinaV2Model(config)
    _check_names_and_shapes(model, tensors, directory)
    state = {name: t.to(device=device, dtype=dtype).contiguous() for name, t in tensors.items()}
    model.load_state_dict(state, strict=True, assign=True)
    model.slopes = alibi_slopes(config.num_attention_heads).to(device)
    return model.eval(), config
