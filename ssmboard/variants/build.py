"""``build(spec) -> Built``: a variant, ready to evaluate.

Steps, in this order: load the model the spec names (keeping its first ``n_layers``), cast to
the spec's dtype, replace its Mamba2 mixers by ones running the spec's scan backend and chunk
size, eval mode, then torch.compile with the spec's mode, options and scope. ``spec`` is the
registry's ``VariantSpec``: its fields are validated once, there, so nothing here checks them
again (only what depends on this machine: the backend being registered, a GPU being present).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from ssmboard.errors import DeviceError, ModelLoadError
from ssmboard.variants.compile import compile_model
from ssmboard.variants.loading import load_model
from ssmboard.variants.patch import apply_scan


class SpecLike(Protocol):
    """The fields of ``ssmboard.registry.VariantSpec`` that building reads."""

    name: str
    model: str
    scan: str
    chunk_size: int | None
    dtype: str
    compile: str | None
    compile_options: tuple[tuple[str, Any], ...]
    compile_scope: str
    n_layers: int | None
    use_cache: bool
    decoder: str


@dataclass
class Built:
    """One built variant: what every evaluator receives, as lm-eval's ``LM`` wraps a model.

    ``generate`` and ``forward`` are the only ways evaluators run the model, so the decode
    loop the spec names (transformers' ``generate`` or the static CUDA-graph decoder) is
    chosen here, once.
    """

    model: Any
    tokenizer: Any
    spec: SpecLike  # the spec actually built (a suite may have overridden fields)
    device: torch.device
    chunk_size: int | None  # the scan's chunk size: the spec's, else the model's own

    @property
    def pad_token_id(self) -> int:
        pad = getattr(self.tokenizer, "pad_token_id", None) if self.tokenizer is not None else None
        return pad if pad is not None else (getattr(self.model.config, "pad_token_id", None) or 0)

    @property
    def vocab_size(self) -> int:
        return int(self.model.config.vocab_size)

    @property
    def random_weights(self) -> bool:
        """True for ``config:`` models: random weights, fit for speed and memory only."""
        return self.spec.model.startswith("config:")

    @torch.inference_mode()
    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Next-token logits for every position, (batch, length, vocab) float32, without a cache.

        Left padding is honoured as in ``generate`` (positions follow the mask).
        """
        input_ids = input_ids.to(self.device)
        kwargs: dict[str, Any] = {"input_ids": input_ids, "use_cache": False}
        if attention_mask is not None:
            attention_mask = attention_mask.to(self.device)
            kwargs["attention_mask"] = attention_mask
            kwargs["position_ids"] = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        return self.model(**kwargs).logits.float()

    @torch.inference_mode()
    def generate(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, *,
                 max_new_tokens: int, use_cache: bool = True) -> torch.Tensor:
        """Greedy decoding of exactly ``max_new_tokens`` tokens (EOS never picked, as benchmarks
        count): a LongTensor (batch, prompt + max_new_tokens). Pad prompts on the left."""
        input_ids = input_ids.to(self.device)
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        attention_mask = attention_mask.to(self.device)
        if self.spec.decoder == "static" and use_cache:
            from ssmboard.variants.graph_decode import generate

            return generate(self.model, input_ids, attention_mask, max_new_tokens=max_new_tokens)
        return self.model.generate(input_ids=input_ids, attention_mask=attention_mask, max_new_tokens=max_new_tokens,
                                   min_new_tokens=max_new_tokens, do_sample=False, num_beams=1, use_cache=use_cache,
                                   pad_token_id=self.pad_token_id)


def check_cache_support(model: Any, use_cache: bool) -> None:
    """transformers' Bamba cannot run its cache without an attention layer: say so up front."""
    config = model.config
    if use_cache is False or getattr(config, "model_type", None) != "bamba":
        return
    if "full_attention" not in list(getattr(config, "layers_block_type", []) or []):
        raise ModelLoadError(
            f"this Bamba model keeps no attention layer ({config.num_hidden_layers} layers, attention at "
            f"{list(getattr(config, 'attn_layer_indices', None) or [])}), and transformers' Bamba cannot use a "
            "cache without one (forward and generate fail in get_seq_length); keep more layers (n_layers past the "
            "first attention layer) or set use_cache=False"
        )


def resolve_device(device: Any = None) -> torch.device:
    """None picks the GPU when there is one, else the CPU."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def check_backend_device(scan: str, device: torch.device) -> None:
    """An unregistered backend, or a GPU-only one on a machine without a GPU: say so before loading anything."""
    from ssmboard.variants.backends import get_backend

    backend = get_backend(scan)
    if backend.needs_gpu and device.type not in ("cuda", "meta") and os.environ.get("TRITON_INTERPRET") != "1":
        raise DeviceError(
            f"scan backend {scan!r} runs Triton kernels and needs a CUDA GPU, but the variant would run on "
            f"{device.type}; run it on a GPU machine (or `ssmboard eval ... --out FILE.json` there and "
            "`ssmboard import FILE.json` here), or set TRITON_INTERPRET=1 to use Triton's slow CPU interpreter"
        )


def model_chunk_size(model: Any) -> int | None:
    cfg = getattr(model, "config", None)
    return getattr(cfg, "mamba_chunk_size", None) or getattr(cfg, "chunk_size", None)


def build(spec: SpecLike, device: Any = None) -> Built:
    """Load, trim, cast, place, patch and compile the model of ``spec``.

    ``device`` None means the GPU when there is one; ``"meta"`` builds the structure without
    weights (enough to read the config). The native ``transformers`` backend keeps the
    model's own mixers (the baseline every variant is compared with).
    """
    from ssmboard.variants.backends import get_backend

    dev = resolve_device(device)
    check_backend_device(spec.scan, dev)
    dtype = getattr(torch, spec.dtype)
    model, tokenizer = load_model(spec.model, spec.n_layers, device=dev, dtype=dtype)
    check_cache_support(model, spec.use_cache)
    model = model.to(device=dev, dtype=dtype)
    if not get_backend(spec.scan).native:
        apply_scan(model, spec.scan, spec.chunk_size)
    elif spec.chunk_size is not None:
        model.config.mamba_chunk_size = spec.chunk_size  # transformers' own mixers read it at init only
        for module in model.modules():
            if hasattr(module, "ssm_state_size") and isinstance(getattr(module, "chunk_size", None), int):
                module.chunk_size = spec.chunk_size
    model.eval()
    if spec.decoder == "static":
        from ssmboard.variants.graph_decode import check_model

        check_model(model)  # refuses models it cannot decode, before any measurement
    model.config.use_cache = spec.use_cache
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.use_cache = spec.use_cache
    compile_model(model, spec.compile, dict(spec.compile_options), scope=spec.compile_scope)
    return Built(model=model, tokenizer=tokenizer, spec=spec, device=dev,
                 chunk_size=spec.chunk_size or model_chunk_size(model))
