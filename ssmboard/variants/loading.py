"""Load the model (and tokenizer) that a variant spec names.

Spec forms of ``model``:
- ``embedded:<name>``: ``ssmboard/assets/<name>/`` through ``from_pretrained`` (offline): the
  trained ``tiny-bamba`` ships there. Missing weights are an error, never a silent stand-in.
- ``config:<name-or-path>``: random init (fixed seed) from a shipped config
  (``ssmboard/assets/configs/<name>.json``), a config.json file, or a folder holding one.
  Random weights are for speed and memory measurements only.
- anything else: a local checkpoint folder or a hub id, through AutoModelForCausalLM /
  AutoTokenizer.

``n_layers`` trims the config before the model is built, so a 4-layer slice of a large
checkpoint never materialises the other layers.
"""
from __future__ import annotations

import contextlib
import json
import logging
from pathlib import Path
from typing import Any

import torch

from ssmboard.config import assets_dir
from ssmboard.errors import ModelLoadError

log = logging.getLogger(__name__)

SEED = 0
TINY_BAMBA = "tiny-bamba"
_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                 "pytorch_model.bin.index.json")


def configs_dir() -> Path:
    return assets_dir() / "configs"


def shipped_configs() -> list[str]:
    return sorted(p.stem for p in configs_dir().glob("*.json"))


def byte_tokenizer() -> Any:
    """A byte-level tokenizer (256 byte tokens + <|pad|>, <|bos|>, <|eos|> = ids 0, 1, 2).

    Pads on the left, as batched generation with a decoder-only model needs.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<|pad|>", "<|bos|>", "<|eos|>"]
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {tok: i for i, tok in enumerate(specials)}
    for ch in sorted(alphabet):
        vocab[ch] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(specials)
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<|pad|>", bos_token="<|bos|>",
                                   eos_token="<|eos|>", padding_side="left")


def truncate_config(config: Any, n_layers: int | None) -> Any:
    """Keep the first ``n_layers`` layers: layer count, attention indices and layer patterns."""
    if n_layers is None:
        return config
    total = getattr(config, "num_hidden_layers", None)
    if total is None:
        raise ModelLoadError(f"cannot keep {n_layers} layers: config {type(config).__name__} has no num_hidden_layers")
    if not 1 <= n_layers <= total:
        raise ModelLoadError(f"n_layers={n_layers} is out of range: the model has {total} layers; "
                             f"choose 1..{total} or leave n_layers unset")
    config.num_hidden_layers = n_layers
    if getattr(config, "attn_layer_indices", None) is not None:
        config.attn_layer_indices = [i for i in config.attn_layer_indices if i < n_layers]
    for name in ("layer_types", "layers_block_type", "hybrid_override_pattern", "layers_block_types"):
        value = config.__dict__.get(name)  # stored fields only; properties derive from the above
        if isinstance(value, (list, tuple, str)) and len(value) == total:
            setattr(config, name, value[:n_layers])
    if isinstance(config.__dict__.get("hybrid_layer_ids"), list):
        config.hybrid_layer_ids = [i for i in config.hybrid_layer_ids if i < n_layers]
    return config


def _random_init(config: Any, device: Any = None, dtype: Any = None) -> Any:
    """Random weights with a fixed seed, created directly on ``device`` in ``dtype``: a Bamba-9B
    shape is billions of parameters, too slow to initialise on the CPU and then move."""
    from transformers import AutoModelForCausalLM

    device = torch.device(device or "cpu")
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(SEED)
        with device:
            return AutoModelForCausalLM.from_config(config, dtype=dtype or torch.float32)


def _has_weights(folder: Path) -> bool:
    return folder.is_dir() and any((folder / f).exists() for f in _WEIGHT_FILES)


def _config_from_json(path: Path) -> Any:
    from transformers import AutoConfig

    try:
        data = json.loads(path.read_text())
        model_type = data.pop("model_type")
    except (OSError, ValueError, KeyError) as exc:
        raise ModelLoadError(f"cannot read model config {path}: {exc}; it must be a JSON file with a 'model_type'") from exc
    try:
        return AutoConfig.for_model(model_type, **data)
    except (ValueError, TypeError) as exc:
        raise ModelLoadError(f"invalid model config {path}: {exc}") from exc


def resolve_config(ref: str) -> Any:
    """The config behind ``config:<ref>``: a shipped name, a JSON file, or a folder with config.json."""
    shipped = configs_dir() / f"{ref}.json"
    if shipped.is_file():
        return _config_from_json(shipped)
    path = Path(ref).expanduser()
    if path.is_file():
        return _config_from_json(path)
    if (path / "config.json").is_file():
        return _config_from_json(path / "config.json")
    raise ModelLoadError(
        f"no model config {ref!r}: not a shipped config ({', '.join(shipped_configs()) or 'none'}), "
        "nor a config.json file or a folder holding one; use config:<one of those> or a path"
    )


def _tokenizer_for(config: Any) -> Any:
    tok = byte_tokenizer()
    vocab = getattr(config, "vocab_size", None)
    if vocab is not None and vocab < len(tok):
        raise ModelLoadError(f"the model's vocab_size ({vocab}) is smaller than the built-in byte tokenizer "
                             f"({len(tok)} tokens); use a config with vocab_size >= {len(tok)}")
    return tok


@contextlib.contextmanager
def _quiet_progress(quiet: bool):
    """No "Loading weights" bar for a local checkpoint (it loads in a blink and clutters the
    evaluators' own progress bars); downloads keep theirs."""
    from transformers.utils import logging as hf_logging

    was_disabled = not hf_logging.is_progress_bar_enabled()
    if quiet:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if quiet and not was_disabled:
            hf_logging.enable_progress_bar()


@contextlib.contextmanager
def _quiet_load_report(quiet: bool):
    """Keeping the first n_layers leaves the other layers' weights unused on purpose: no report
    listing them as UNEXPECTED (real load errors still raise)."""
    from transformers.utils import logging as hf_logging

    before = hf_logging.get_verbosity()
    if quiet:
        hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        if quiet:
            hf_logging.set_verbosity(before)


def _from_pretrained(ref: str, n_layers: int | None, local_only: bool) -> tuple[Any, Any]:
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    try:
        config = AutoConfig.from_pretrained(ref, local_files_only=local_only)
        config = truncate_config(config, n_layers)
        with _quiet_progress(local_only), _quiet_load_report(n_layers is not None):
            model = AutoModelForCausalLM.from_pretrained(ref, config=config, local_files_only=local_only)
    except ModelLoadError:
        raise
    except Exception as exc:  # hub / IO / config errors all mean "cannot load": say what to do
        raise ModelLoadError(
            f"cannot load model {ref!r}: {exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else ''}. "
            "Give an existing checkpoint folder, a hub id that is cached or reachable (HF_HUB_OFFLINE unset), "
            "'embedded:<name>' or 'config:<name-or-path>'"
        ) from exc
    try:
        tokenizer = AutoTokenizer.from_pretrained(ref, local_files_only=local_only)
    except (OSError, ValueError, KeyError) as exc:
        log.warning("no tokenizer for %s (%s); using the byte-level tokenizer", ref, exc)
        tokenizer = _tokenizer_for(model.config)
    return model, tokenizer


def load_model(ref: str, n_layers: int | None = None, *, device: Any = None, dtype: Any = None) -> tuple[Any, Any]:
    """(model, tokenizer) for a spec's ``model`` string, in eval mode.

    ``device`` and ``dtype`` are where and how ``config:`` random weights are created (CPU,
    float32 by default); checkpoints load in float32 on the CPU and the caller moves them.
    """
    if not isinstance(ref, str) or not ref.strip():
        raise ModelLoadError(f"model must be a non-empty string, got {ref!r}")
    if ref.startswith("embedded:"):
        name = ref.split(":", 1)[1]
        folder = assets_dir() / name
        if _has_weights(folder):
            model, tokenizer = _from_pretrained(str(folder), n_layers, local_only=True)
        elif name == TINY_BAMBA:
            raise ModelLoadError(
                f"the embedded model's weights are missing ({folder / 'model.safetensors'}): this ssmboard was "
                "installed without its package data; reinstall it from a checkout (`pip install .`) or a wheel, "
                "which ship them, or retrain them with scripts/train_tiny.py")
        else:
            shipped = sorted(p.name for p in assets_dir().iterdir() if _has_weights(p)) if assets_dir().is_dir() else []
            raise ModelLoadError(f"no embedded model {name!r} (no weights in {folder}); "
                                 f"embedded models: {', '.join(shipped)}")
    elif ref.startswith("config:"):
        config = truncate_config(resolve_config(ref.split(":", 1)[1]), n_layers)
        tokenizer = _tokenizer_for(config)
        model = _random_init(config, device, dtype)
    else:
        path = Path(ref).expanduser()
        looks_local = path.exists() or ref.startswith((".", "/", "~")) or ref.count("/") > 1
        if looks_local and not path.is_dir():
            raise ModelLoadError(f"model folder {ref!r} does not exist; give an existing checkpoint folder, "
                                 "a hub id, 'embedded:<name>' or 'config:<name-or-path>'")
        model, tokenizer = _from_pretrained(str(path) if path.is_dir() else ref, n_layers, local_only=path.is_dir())
    if getattr(tokenizer, "pad_token", None) is None and getattr(tokenizer, "eos_token", None) is not None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return model.eval(), tokenizer
