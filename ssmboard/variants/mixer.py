"""Our replacement for a transformers Mamba2-family mixer: same parameters, our scan.

A :class:`ScanMixer` is built from one loaded mixer (Bamba, Mamba2, GraniteMoeHybrid,
FalconH1, Zamba2, NemotronH: they share one design in transformers 5.x). It registers the
original's own submodules and parameters under the same names (no weight is copied, and
``state_dict`` keys are unchanged), and reproduces transformers' torch path step by step:
padding mask, projection, causal conv (with the conv cache), scan, gated RMSNorm, output
projection. Only the scan (prefill, chunked) and the one-token decode step are swapped for a
named backend (plus the prefill's causal conv + SiLU where the backend brings a fused one, as
the triton backends do), so that with the exact ``reference`` backend the patched model gives
the unpatched model's outputs.

Precision: the scan returns y in the activations' dtype (the scan interface), as mamba_ssm's
kernels do; transformers' torch fallback instead hands a float32 y to the gated norm. So in
float32 the patched model equals the unpatched one (~1e-6), while in bfloat16 it differs from
the torch fallback by bf16 rounding of y and matches what a user with the fused kernels runs.

The cache is read through :func:`_cached_states`, which understands both cache APIs of the
supported transformers range (5.17 ``has_previous_state`` + ``layers[i].conv_states``;
5.24 ``get_conv_state`` / ``get_recurrent_state``).
"""
from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from ssmboard.errors import SsmboardError

# Parameters / submodules of the original mixer reused by reference (same names).
_SHARED = ("in_proj", "conv1d", "dt_bias", "A_log", "D", "norm", "out_proj", "act")
# Plain attributes describing the mixer's shape.
_ATTRS = ("num_heads", "head_dim", "n_groups", "ssm_state_size", "intermediate_size", "conv_dim",
          "conv_kernel_size", "layer_idx", "activation", "time_step_limit", "chunk_size")


def _mask_padding(hidden_states: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
    """Zero padded positions, as transformers' ``apply_mask_to_padding_states`` does."""
    if attention_mask is None or attention_mask.dim() != 2:
        return hidden_states
    mask = attention_mask[:, -hidden_states.shape[1]:]
    return (hidden_states * mask[:, :, None]).to(hidden_states.dtype)


def _cached_states(cache: Any, layer_idx: int) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(conv_state, recurrent_state) of a layer, or (None, None) before its first update."""
    if cache is None:
        return None, None
    if hasattr(cache, "get_conv_state"):  # transformers >= 5.2x
        return cache.get_conv_state(layer_idx, state_idx=0), cache.get_recurrent_state(layer_idx, state_idx=0)
    if hasattr(cache, "has_previous_state") and hasattr(cache, "layers"):  # transformers 5.17
        if cache.has_previous_state(layer_idx):
            layer = cache.layers[layer_idx]
            return layer.conv_states[0], layer.recurrent_states[0]
        return None, None
    raise SsmboardError(
        f"unsupported cache object {type(cache).__name__}: ssmboard mixers need a transformers 5.x "
        "Cache with linear-attention layers; upgrade transformers to >= 5.17 or generate with use_cache=False"
    )


def _recording_past(cache: Any, layer_idx: int) -> bool:
    if hasattr(cache, "is_recording_past"):
        return bool(cache.is_recording_past(layer_idx))
    return bool(getattr(cache.layers[layer_idx], "record_past", False))


class ScanMixer(nn.Module):
    """A Mamba2 mixer whose scan and decode step come from an ssmboard backend.

    Built with :meth:`from_mixer`; ``scan_name`` names the backend (see
    ``ssmboard.variants.list_scans()``), ``chunk_size`` the prefill chunk.
    """

    def __init__(self, original: nn.Module, scan_name: str, scan: Callable, step: Callable,
                 chunk_size: int, conv: Callable | None = None) -> None:
        super().__init__()
        for name in _SHARED:
            value = getattr(original, name)
            setattr(self, name, value)  # registers the very same Parameter / Module objects
        for name in _ATTRS:
            setattr(self, name, getattr(original, name))
        self.time_step_limit = tuple(self.time_step_limit) if self.time_step_limit is not None else (0.0, float("inf"))
        # FalconH1: muP multipliers around in_proj and an optional gated norm.
        self.ssm_in_multiplier = getattr(original, "ssm_in_multiplier", None)
        if "mup_vector" in getattr(original, "_buffers", {}):
            self.register_buffer("mup_vector", original.mup_vector, persistent=False)
        else:
            self.mup_vector = None
        self.gated_norm = getattr(original, "mamba_rms_norm", True)
        self.original_class = type(original).__name__
        self.scan_name = scan_name
        self.chunk_size = chunk_size
        self._scan = scan
        self._step = step
        self._fused_conv = conv

    @classmethod
    def from_mixer(cls, original: nn.Module, scan_name: str, chunk_size: int | None) -> "ScanMixer":
        from ssmboard.variants.backends import get_conv, get_scan, get_step

        if isinstance(original, ScanMixer):  # re-patching swaps the backend only
            chunk = chunk_size or original.chunk_size
            original.scan_name, original.chunk_size = scan_name, chunk
            original._scan, original._step = get_scan(scan_name), get_step(scan_name)
            original._fused_conv = get_conv(scan_name)
            return original
        return cls(original, scan_name, get_scan(scan_name), get_step(scan_name),
                   int(chunk_size or original.chunk_size), get_conv(scan_name))

    def extra_repr(self) -> str:
        return (f"scan={self.scan_name!r}, chunk_size={self.chunk_size}, heads={self.num_heads}x{self.head_dim}, "
                f"d_state={self.ssm_state_size}, groups={self.n_groups}, from={self.original_class}")

    # -- the causal depthwise conv, with its cache -------------------------------------------
    def _conv(self, xBC: torch.Tensor, cache: Any, conv_state: torch.Tensor | None) -> torch.Tensor:
        """xBC (b, conv_dim, L) -> activated conv output (b, conv_dim, L); updates the conv cache."""
        seq_len = xBC.shape[-1]
        weight, bias = self.conv1d.weight, self.conv1d.bias  # (conv_dim, 1, k)
        if conv_state is not None and seq_len == 1 and not _recording_past(cache, self.layer_idx):
            full = torch.cat([conv_state, xBC], dim=-1).to(weight.dtype)
            conv_state.copy_(full[:, :, -conv_state.shape[-1]:])
            out = F.conv1d(full, weight, bias, padding=0, groups=self.conv_dim)[:, :, -seq_len:]
            return self.act(out).to(xBC.dtype)
        if cache is not None:
            xBC = cache.update_conv_state(xBC, self.layer_idx, conv_kernel_size=self.conv_kernel_size)
        length = xBC.shape[-1]
        if self._fused_conv is not None and self.activation in ("silu", "swish"):
            # (b, seq_len, conv_dim) straight from the kernel; returned as the (b, conv_dim, L) view
            return self._fused_conv(xBC, weight, bias, last=seq_len if cache is not None else length,
                                    silu=True).to(xBC.dtype).transpose(1, 2)
        out = F.conv1d(xBC.to(weight.dtype), weight, bias, padding=weight.shape[-1] - 1,
                       groups=self.conv_dim)[:, :, :length]
        out = self.act(out).to(xBC.dtype)
        return out[:, :, -seq_len:] if cache is not None else out

    def forward(self, hidden_states: torch.Tensor, cache: Any = None, attention_mask: torch.Tensor | None = None,
                cache_params: Any = None, **kwargs: Any) -> torch.Tensor:
        """Same call signature as transformers' mixers (``cache`` in 5.2x, ``cache_params`` in 5.17)."""
        cache = cache if cache is not None else cache_params
        batch, seq_len, _ = hidden_states.shape
        dtype = hidden_states.dtype
        h, p, g, n = self.num_heads, self.head_dim, self.n_groups, self.ssm_state_size
        conv_state, ssm_state = _cached_states(cache, self.layer_idx)

        hidden_states = _mask_padding(hidden_states, attention_mask)
        if self.ssm_in_multiplier is not None:
            hidden_states = hidden_states * self.ssm_in_multiplier
        projected = self.in_proj(hidden_states)
        if self.mup_vector is not None:
            projected = projected * self.mup_vector
        gate, xBC, dt = projected.split([self.intermediate_size, self.conv_dim, h], dim=-1)

        xBC = self._conv(xBC.transpose(1, 2), cache, conv_state)
        xBC = _mask_padding(xBC.transpose(1, 2), attention_mask)
        x, B, C = torch.split(xBC, [self.intermediate_size, g * n, g * n], dim=-1)

        A = -torch.exp(self.A_log.float())
        common = dict(D=self.D, dt_bias=self.dt_bias, dt_softplus=True, dt_limit=self.time_step_limit)
        if ssm_state is not None and seq_len == 1:
            state = ssm_state if ssm_state.dtype == torch.float32 else ssm_state.float()
            y = self._step(state, x.view(batch, h, p), dt.view(batch, h), A,
                           B.view(batch, g, n), C.view(batch, g, n), **common)
            if state is not ssm_state:
                ssm_state.copy_(state)
            y = y.reshape(batch, 1, h * p)
        else:
            initial = ssm_state.float() if ssm_state is not None else None
            result = self._scan(x.reshape(batch, seq_len, h, p), dt, A, B.reshape(batch, seq_len, g, n),
                                C.reshape(batch, seq_len, g, n), chunk_size=self.chunk_size,
                                initial_state=initial, return_final_state=cache is not None, **common)
            if cache is not None:
                y, final = result
                cache.update_recurrent_state(final.float(), layer_idx=self.layer_idx)
            else:
                y = result
            y = y.reshape(batch, seq_len, h * p)

        if self.gated_norm:
            y = self.norm(y, gate)
        else:  # FalconH1 without the gated RMSNorm
            y = y * F.silu(gate)
        return self.out_proj(y.to(dtype))
