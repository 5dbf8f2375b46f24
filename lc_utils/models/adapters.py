"""Task adapters: low-rank (LoRA) weight updates that give one network a weight set per role.

jina-embeddings-v3 was trained with one LoRA adapter per task. Its transformers-native checkpoint
(``jinaai/jina-embeddings-v3-hf``) ships each adapter in a subfolder of the repository, in PEFT's
format: ``retrieval_passage/adapter_config.json`` and
``retrieval_passage/adapter_model.safetensors``, and likewise ``retrieval_query`` and the other
tasks. Documents are meant to run through
``retrieval.passage`` and queries through ``retrieval.query``.

An adapter changes a target module's weight ``W`` (``out, in``) into ``W + s * B @ A``, with
``A`` (``r, in``), ``B`` (``out, r``) and ``s = lora_alpha / r`` (``/ sqrt(r)`` with rsLoRA). For an
embedding table (``vocab, dim``) the factors are ``lora_embedding_A`` (``r, vocab``) and
``lora_embedding_B`` (``dim, r``), and the update is ``s * (B @ A)^T``.

This module reads those folders without PEFT and applies them *unmerged*: a forward hook on every
target module adds ``s * B(A(x))`` to the module's output for the role that is active, and adds
nothing when no role's adapter targets it. So one network serves both roles, the adapters cost
their own size only (rank 4 on v3: under 1% of its weights), and a switch of role is a change of
one attribute. The alternatives were weighed and set aside:

* PEFT's ``set_adapter`` through transformers 5.24 needs peft >= 0.22, newer than the 0.21.2 that
  installs here; PEFT's own ``PeftModel`` works with 0.21.2 but ties loading to the pair of
  versions of two fast-moving packages, which the project would then have to pin together;
* merging each adapter into its own copy of the network is exact but doubles the memory of a
  572M-parameter model;
* merging in place and un-merging on every switch accumulates rounding in the base weights.

Reading is strict: every tensor must name a module of the network, with the shapes that module
needs, and features this module does not compute (DoRA, per-module ranks or alphas, trained
biases, replaced modules) are refused by name, so that an adapter is applied exactly or not at
all.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file

__all__ = [
    "ROLES",
    "ADAPTER_FILES",
    "AdapterLoadError",
    "LoraAdapter",
    "RoleAdapters",
    "missing_adapter_files",
    "read_lora_adapter",
]

ROLES = ("document", "query")
"""What a text is to the model: a document (chunks, whole documents, late chunking's windows) or
a query."""

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
"""The files of one PEFT adapter folder."""

_PEFT_PREFIX = "base_model.model."
_FACTOR_SUFFIXES = {
    ".lora_A.weight": "A",
    ".lora_B.weight": "B",
    ".lora_embedding_A": "A",
    ".lora_embedding_B": "B",
}


class AdapterLoadError(RuntimeError):
    """An adapter folder cannot be applied exactly; the message names the file and the reason."""


@dataclass
class LoraAdapter:
    """One LoRA adapter, read and checked against the network it is for.

    Attributes:
        name: the adapter's folder name, e.g. ``"retrieval_passage"``.
        folder: where it was read from.
        scale: ``lora_alpha / r`` (``lora_alpha / sqrt(r)`` with rsLoRA).
        factors: ``{module name: (A, B)}`` with ``A`` float ``(r, in)`` and ``B`` float
            ``(out, r)`` for a linear module; ``A`` ``(r, vocab)`` and ``B`` ``(dim, r)`` for an
            embedding. Module names are those of ``network.named_modules()``.
    """

    name: str
    folder: Path
    scale: float
    factors: dict[str, tuple[torch.Tensor, torch.Tensor]]

    def __repr__(self) -> str:
        return f"LoraAdapter({self.name!r}, modules={len(self.factors)}, scale={self.scale:g})"


def missing_adapter_files(directory: Path, names) -> list[str]:
    """The files of the adapters ``names`` that ``directory`` lacks, as relative paths."""
    return [
        f"{name}/{file}"
        for name in names
        for file in ADAPTER_FILES
        if not (Path(directory) / name / file).is_file()
    ]


def _read_config(folder: Path) -> dict:
    path = folder / "adapter_config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise AdapterLoadError(f"{path} cannot be read as JSON ({error})") from None
    if config.get("peft_type") != "LORA":
        raise AdapterLoadError(
            f"{path} describes a {config.get('peft_type')!r} adapter; only LoRA is supported"
        )
    unsupported = {
        "use_dora": bool(config.get("use_dora")),
        "fan_in_fan_out": bool(config.get("fan_in_fan_out")),
        "rank_pattern": bool(config.get("rank_pattern")),
        "alpha_pattern": bool(config.get("alpha_pattern")),
        "modules_to_save": bool(config.get("modules_to_save")),
        "bias": config.get("bias", "none") != "none",
    }
    used = [name for name, on in unsupported.items() if on]
    if used:
        raise AdapterLoadError(
            f"{path} sets {used}, which lc_utils does not apply; only plain LoRA on linear and "
            "embedding modules is supported"
        )
    for key in ("r", "lora_alpha"):
        value = config.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise AdapterLoadError(f"{path} has {key}={value!r}; expected a positive number")
    return config


def _module_name(key: str, modules: dict, prefix: str) -> tuple[str, str] | None:
    """``(module name, "A" or "B")`` for a PEFT tensor key, or None if it is no LoRA factor."""
    for suffix, factor in _FACTOR_SUFFIXES.items():
        if key.endswith(suffix):
            name = key[: -len(suffix)]
            name = name[len(_PEFT_PREFIX) :] if name.startswith(_PEFT_PREFIX) else name
            # An adapter saved from a model with a head names the encoder by its prefix.
            if name not in modules and prefix and name.startswith(prefix + "."):
                name = name[len(prefix) + 1 :]
            return name, factor
    return None


def read_lora_adapter(folder: Path, network: torch.nn.Module) -> LoraAdapter:
    """Read the PEFT LoRA adapter in ``folder`` and check it against ``network``.

    Raises ``AdapterLoadError`` naming the file and the reason when a tensor names no module of
    the network, a factor is missing or has the wrong shape, or the adapter uses a feature that
    is not applied here (see the module docstring).
    """
    folder = Path(folder)
    config = _read_config(folder)
    weights_path = folder / "adapter_model.safetensors"
    try:
        tensors = load_file(str(weights_path))
    except Exception as error:  # safetensors raises several kinds for a bad file
        raise AdapterLoadError(f"{weights_path} cannot be read ({error})") from None
    modules = dict(network.named_modules())
    prefix = getattr(network, "base_model_prefix", "")
    pairs: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in tensors.items():
        found = _module_name(key, modules, prefix)
        if found is None:
            raise AdapterLoadError(f"{weights_path} holds {key!r}, which is not a LoRA factor")
        name, factor = found
        if name not in modules:
            raise AdapterLoadError(
                f"{weights_path} holds {key!r}, but the network has no module {name!r}; the "
                "adapter was made for another architecture"
            )
        pairs.setdefault(name, {})[factor] = tensor
    if not pairs:
        raise AdapterLoadError(f"{weights_path} holds no LoRA factor")
    factors = {}
    for name, pair in sorted(pairs.items()):
        if set(pair) != {"A", "B"}:
            raise AdapterLoadError(f"{weights_path}: module {name!r} has only factor {set(pair)}")
        a, b = pair["A"], pair["B"]
        factors[name] = (a, b)
        _check_shapes(weights_path, name, modules[name], a, b)
    ranks = sorted({a.shape[0] for a, _ in factors.values()})
    if ranks != [config["r"]]:
        raise AdapterLoadError(
            f"{weights_path}: the factors have ranks {ranks}; adapter_config.json says "
            f"r={config['r']}"
        )
    rank = ranks[0]
    divisor = math.sqrt(rank) if config.get("use_rslora") else rank
    return LoraAdapter(folder.name, folder, float(config["lora_alpha"]) / divisor, factors)


def _check_shapes(path: Path, name: str, module, a: torch.Tensor, b: torch.Tensor) -> None:
    if isinstance(module, torch.nn.Linear):
        expected_a, expected_b = (a.shape[0], module.in_features), (module.out_features, a.shape[0])
    elif isinstance(module, torch.nn.Embedding):
        expected_a = (a.shape[0], module.num_embeddings)
        expected_b = (module.embedding_dim, a.shape[0])
    else:
        raise AdapterLoadError(
            f"{path}: module {name!r} is a {type(module).__name__}; adapters are applied to "
            "Linear and Embedding modules only"
        )
    if a.ndim != 2 or tuple(a.shape) != expected_a or tuple(b.shape) != expected_b:
        raise AdapterLoadError(
            f"{path}: module {name!r} has factors {tuple(a.shape)} and {tuple(b.shape)}; it needs "
            f"{expected_a} and {expected_b}"
        )


@dataclass
class RoleAdapters:
    """Adapters attached to one network, one per role, and which role is active.

    Build it with ``RoleAdapters.attach``. ``activate(role)`` chooses the weights the following
    forward passes use; ``EmbeddingModel.use_role`` is how the pipeline calls it.

    Attributes:
        adapters: ``{role: LoraAdapter}``.
        active: the active role, or ``None`` for the base weights.
    """

    adapters: dict[str, LoraAdapter]
    active: str | None = None
    _hooks: list = field(default_factory=list, repr=False)

    @classmethod
    def attach(cls, network: torch.nn.Module, adapters: dict[str, LoraAdapter]) -> RoleAdapters:
        """Register the factors on their modules (as non-persistent buffers, so they follow
        ``network.to(...)`` and never enter a ``state_dict``) and hook each module once."""
        unknown = sorted(set(adapters) - set(ROLES))
        if unknown:
            raise ValueError(f"roles {unknown} are not known; valid: {ROLES}")
        attached = cls(dict(adapters))
        modules = dict(network.named_modules())
        targeted = sorted({name for adapter in adapters.values() for name in adapter.factors})
        for name in targeted:
            module = modules[name]
            reference = module.weight
            for role, adapter in adapters.items():
                if name in adapter.factors:
                    a, b = adapter.factors[name]
                    options = dict(dtype=reference.dtype, device=reference.device)
                    module.register_buffer(_buffer(role, "A"), a.to(**options), persistent=False)
                    module.register_buffer(_buffer(role, "B"), b.to(**options), persistent=False)
            hook = _embedding_update if isinstance(module, torch.nn.Embedding) else _linear_update
            attached._hooks.append(module.register_forward_hook(attached._hook(hook)))
        return attached

    def _hook(self, update):
        def hook(module, inputs, output):
            role = self.active
            a = getattr(module, _buffer(role, "A"), None) if role is not None else None
            if a is None:  # base weights, or a module this role's adapter leaves alone
                return None
            b = getattr(module, _buffer(role, "B"))
            return output + self.adapters[role].scale * update(inputs[0], a, b)

        return hook

    def activate(self, role: str | None) -> None:
        """Use ``role``'s adapter in the forward passes that follow (``None``: base weights)."""
        if role is not None and role not in self.adapters:
            raise ValueError(f"role {role!r} has no adapter; adapters: {sorted(self.adapters)}")
        self.active = role

    def names(self) -> dict[str, str]:
        """``{role: adapter name}``, e.g. ``{"document": "retrieval_passage", ...}``."""
        return {role: adapter.name for role, adapter in self.adapters.items()}

    def detach(self) -> None:
        """Remove the hooks; the network computes its base weights again."""
        for handle in self._hooks:
            handle.remove()
        self._hooks.clear()
        self.active = None


def _buffer(role: str, factor: str) -> str:
    return f"lc_adapter_{role}_{factor}"


def _linear_update(x: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.linear(torch.nn.functional.linear(x, a), b)


def _embedding_update(ids: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    # Row ``i`` of (B @ A)^T is B @ A[:, i]: look the ids up in A^T, then map through B.
    return torch.nn.functional.linear(torch.nn.functional.embedding(ids, a.T), b)
