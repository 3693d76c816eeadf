"""Greedy cached decoding with one CUDA graph per token, for patched Bamba models.

Why: at batch 1 a decode step of a hybrid Mamba2 model does little arithmetic per weight
byte, so the GPU is idle most of the time while Python, transformers' generation loop, the
cache bookkeeping and ~20 kernel launches per layer run on the host. transformers'
``model.generate`` decodes a 4-layer Bamba-9B-shape model at ~110-170 tokens/s on an H200,
where reading the weights once per token would allow ~1300. The fix is to remove the host
from the token loop: :class:`GraphDecoder` keeps every piece of decode state in static
tensors (conv and SSM state per Mamba layer, a fixed-size K/V cache per attention layer, the
current position as a device tensor, the token sequence and the last logits), runs one token
through the whole model with the model's own submodules (embedding, norms, our
:class:`~ssmboard.variants.mixer.ScanMixer` decode step, attention over the static cache,
MLP, final norm, lm_head, argmax), and on CUDA captures that step once in a
``torch.cuda.CUDAGraph``. Decoding a token is then one ``graph.replay()``; the host syncs once,
at the end.

Use::

    from ssmboard.variants.graph_decode import generate
    apply_scan(model, "triton")                    # GraphDecoder needs ScanMixer mixers
    ids = generate(model, input_ids, max_new_tokens=128)   # (batch, L + 128), greedy

The prefill is the model's normal forward (with ``use_cache=True``); its cache is copied into
the static buffers, and the following ``max_new_tokens - 1`` tokens come from the step.

Limits:
- Bamba (``BambaForCausalLM``) only, patched with :func:`~ssmboard.variants.patch.apply_scan`;
  default/linear RoPE (dynamic and longrope RoPE sync the host and are refused).
- Greedy only, exactly ``max_new_tokens`` tokens: no stop at EOS and no logits processors. With
  ``ban_eos`` (the default) EOS is never picked, as in ``model.generate(..., max_new_tokens=N,
  min_new_tokens=N)`` (the exact-length convention of benchmarks); with ``ban_eos=False`` an EOS
  is just another token and decoding runs on past it.
- Padding on the left is supported (positions and the key mask follow the attention mask, as
  transformers' generate does); a right-padded batch (a 0 in the mask's last column) is refused.
- Decoders are cached on the model, one per (batch, length bucket); the bucket is the next power
  of two >= prompt + new tokens (at least 64), so new prompt lengths reuse the captured graph.
  Each holds its K/V cache at the bucket length and, on CUDA, a graph memory pool;
  :func:`detach` frees them. A decoder whose model changed (re-patched backend, moved, cast) is
  rebuilt on the next call.
- The graph bakes in the kernels of the backend's decode step at capture time; a step that
  syncs the host or changes shape per call cannot be captured (the built-in ones do neither).
- bf16 results match ``model.generate`` up to rounding: attention here is one SDPA call over
  the fixed-size cache, which accumulates in a different order than transformers' path, so
  greedy tokens may part ways after some steps where two logits are nearly tied.
"""
from __future__ import annotations

import inspect
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ssmboard.errors import SsmboardError
from ssmboard.variants.mixer import ScanMixer, _cached_states

SUPPORTED = "BambaForCausalLM"
_ATTR = "_ssmboard_graph_decoders"
MIN_BUCKET = 64


# -- small helpers --------------------------------------------------------------------------
def bucket_length(total: int) -> int:
    """The static cache length for ``total`` tokens: the next power of two, at least MIN_BUCKET."""
    return max(MIN_BUCKET, 1 << max(0, math.ceil(math.log2(max(1, total)))))


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def _rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """transformers' ``apply_rotary_pos_emb`` for one tensor (partial rotary kept)."""
    dim = cos.shape[-1]
    rot, rest = x[..., :dim], x[..., dim:]
    return torch.cat([rot * cos + _rotate_half(rot) * sin, rest], dim=-1)


class _StaticStates:
    """The face of a transformers cache that ScanMixer's one-token path reads: our static states.

    ScanMixer's decode branch (conv-state roll + conv + backend step, all in place) runs
    unchanged on these tensors; nothing here allocates or syncs.
    """

    def __init__(self, conv: dict[int, torch.Tensor], ssm: dict[int, torch.Tensor]) -> None:
        self.conv, self.ssm = conv, ssm

    def get_conv_state(self, layer_idx: int, state_idx: int = 0) -> torch.Tensor:
        return self.conv[layer_idx]

    def get_recurrent_state(self, layer_idx: int, state_idx: int = 0) -> torch.Tensor:
        return self.ssm[layer_idx]

    def is_recording_past(self, layer_idx: int) -> bool:
        return False


def _hf_mamba_states(cache: Any, layer_idx: int) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    conv, ssm = _cached_states(cache, layer_idx)
    if conv is None and hasattr(cache, "conv_states") and isinstance(cache.conv_states, list):  # older hybrid cache
        conv, ssm = cache.conv_states[layer_idx], cache.ssm_states[layer_idx]
    return conv, ssm


def _hf_kv(cache: Any, layer_idx: int) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    layers = getattr(cache, "layers", None)
    if layers is not None and layer_idx < len(layers) and getattr(layers[layer_idx], "keys", None) is not None:
        return layers[layer_idx].keys, layers[layer_idx].values
    if hasattr(cache, "key_cache"):  # older hybrid cache
        return cache.key_cache[layer_idx], cache.value_cache[layer_idx]
    try:  # legacy indexing: cache[i] -> (keys, values)
        keys, values = tuple(cache[layer_idx])[:2]
        return keys, values
    except (TypeError, IndexError, KeyError, ValueError, AttributeError):
        return None, None


def _output_cache(out: Any) -> Any:
    for name in ("cache", "past_key_values", "cache_params"):
        value = getattr(out, name, None)
        if value is not None:
            return value
    raise SsmboardError("the model's forward returned no cache with use_cache=True; GraphDecoder needs "
                        "transformers >= 5.17 (a Bamba forward that returns its cache)")


def check_model(model: nn.Module) -> None:
    """Raise SsmboardError unless ``model`` is a Bamba causal LM whose mixers are ScanMixers."""
    config = getattr(model, "config", None)
    model_type = getattr(config, "model_type", None)
    if model_type != "bamba" or not hasattr(getattr(model, "model", None), "layers") or not hasattr(model, "lm_head"):
        raise SsmboardError(
            f"graph decoding supports {SUPPORTED} (model type 'bamba') only, got model type {model_type!r} "
            f"({type(model).__name__}); use model.generate for other models")
    layers = list(model.model.layers)
    unpatched = [i for i, layer in enumerate(layers) if hasattr(layer, "mamba") and not isinstance(layer.mamba, ScanMixer)]
    if unpatched:
        raise SsmboardError(
            f"graph decoding needs ssmboard's mixers, but layers {unpatched} still hold transformers' "
            f"{type(layers[unpatched[0]].mamba).__name__}; apply a scan backend first, e.g. "
            "ssmboard.variants.patch.apply_scan(model, 'reference') (or build a variant with a non-native scan)")
    if not any(hasattr(layer, "mamba") or hasattr(layer, "self_attn") for layer in layers):
        raise SsmboardError(f"this {SUPPORTED} has no mamba or attention layer to decode with")
    rope = getattr(getattr(model.model, "rotary_emb", None), "rope_type", "default")
    if "dynamic" in str(rope) or rope == "longrope":
        raise SsmboardError(f"graph decoding cannot capture {rope!r} RoPE (it resizes on the host per token); "
                            "use model.generate for this model")


_FUSED_SCANS = ("triton", "triton-independent")  # both decode with the exact Triton step


def fusable(model: nn.Module) -> bool:
    """True when :class:`GraphDecoder` can run ``model``'s token with the fused Triton kernels
    (``ssmboard.variants.triton.decode``): every Mamba layer on a triton backend with SiLU conv
    activation and the gated norm (Bamba's), no muP multipliers, and the model on a CUDA
    device (or Triton's interpreter asked for, as in the tests)."""
    from ssmboard.variants.triton._kernels import interpreting

    layers = list(model.model.layers)
    emb = model.model.embed_tokens.weight
    if emb.device.type != "cuda" and not interpreting():
        return False
    for layer in layers:
        m = getattr(layer, "mamba", None)
        if m is None:
            continue
        if not (isinstance(m, ScanMixer) and m.scan_name in _FUSED_SCANS and m.activation in ("silu", "swish")
                and m.gated_norm and m.ssm_in_multiplier is None and m.mup_vector is None
                and m.conv1d.weight.shape[-1] >= 2):
            return False
    return True


def _fingerprint(model: nn.Module) -> tuple:
    """Changes when a captured graph would be stale: weights moved or cast, backend swapped."""
    steps = tuple((id(m._step), m.scan_name) for m in model.modules() if isinstance(m, ScanMixer))
    return steps, tuple(p.data_ptr() for p in model.parameters())


class _Decoders(dict):
    """The decoders cached on a model; a deep copy of the model starts with none."""

    fingerprint: tuple = ()

    def __deepcopy__(self, memo: dict) -> "_Decoders":
        return _Decoders()


# -- the decoder ----------------------------------------------------------------------------
class GraphDecoder:
    """Static-buffer greedy decoder for one patched Bamba model, one batch size and cache length.

    Buffers (all allocated once): per Mamba layer ``conv[i]`` (batch, conv_dim, kernel) and
    ``ssm[i]`` (batch, heads, head_dim, d_state) float32; per attention layer ``k[i]``/``v[i]``
    (batch, kv_heads, max_len, head_dim); ``pos`` (1,) long, the slot of the token being
    decoded; ``tokens`` (batch, max_len) the sequence so far (the step reads ``tokens[:, pos]``
    and writes its argmax at ``pos + 1``); ``logits`` (batch, vocab) of the last step;
    ``key_valid`` (batch, max_len) the attention mask of the prompt; ``n_pad`` (batch,) the
    padding count, subtracted from ``pos`` for the RoPE position; ``banned`` (vocab,) bool, the
    tokens the argmax may not pick (EOS under ``ban_eos``).
    """

    def __init__(self, model: nn.Module, batch_size: int, max_len: int, use_graph: bool | None = None,
                 fused: bool | None = None) -> None:
        check_model(model)
        if batch_size < 1 or max_len < 2:
            raise SsmboardError(f"GraphDecoder needs batch_size >= 1 and max_len >= 2, got {batch_size}, {max_len}")
        self.model = model
        self.batch_size, self.max_len = int(batch_size), int(max_len)
        emb = model.model.embed_tokens.weight
        self.device, self.dtype = emb.device, emb.dtype
        self.use_graph = (self.device.type == "cuda") if use_graph is None else bool(use_graph)
        if self.use_graph and self.device.type != "cuda":
            raise SsmboardError(f"CUDA graphs need the model on a CUDA device; it is on {self.device}")
        b, dev = self.batch_size, self.device
        can_fuse = fusable(model)
        if fused and not can_fuse:
            raise SsmboardError("fused decode steps need every Mamba layer on a triton backend (SiLU conv, gated "
                                "norm) and a CUDA model or TRITON_INTERPRET=1")
        self.fused = can_fuse if fused is None else bool(fused)
        self.conv: dict[int, torch.Tensor] = {}
        self.ssm: dict[int, torch.Tensor] = {}
        self.k: dict[int, torch.Tensor] = {}
        self.v: dict[int, torch.Tensor] = {}
        for i, layer in enumerate(model.model.layers):
            if hasattr(layer, "mamba"):
                m = layer.mamba
                self.conv[i] = torch.zeros(b, m.conv_dim, m.conv_kernel_size, device=dev, dtype=m.conv1d.weight.dtype)
                self.ssm[i] = torch.zeros(b, m.num_heads, m.head_dim, m.ssm_state_size, device=dev, dtype=torch.float32)
            elif hasattr(layer, "self_attn"):
                a = layer.self_attn
                kv_heads = a.k_proj.out_features // a.head_dim
                self.k[i] = torch.zeros(b, kv_heads, self.max_len, a.head_dim, device=dev, dtype=self.dtype)
                self.v[i] = torch.zeros_like(self.k[i])
        self._states = _StaticStates(self.conv, self.ssm)
        self.pos = torch.zeros(1, dtype=torch.long, device=dev)
        self.tokens = torch.zeros(b, self.max_len, dtype=torch.long, device=dev)
        vocab = model.lm_head.out_features
        self.logits = torch.zeros(b, vocab, dtype=self.dtype, device=dev)
        self.key_valid = torch.ones(b, self.max_len, dtype=torch.bool, device=dev)
        self.n_pad = torch.zeros(b, dtype=torch.long, device=dev)
        self.banned = torch.zeros(vocab, dtype=torch.bool, device=dev)
        self._slots = torch.arange(self.max_len, device=dev)
        if self.fused:
            self._init_fused()
        self.host_pos = 0  # host mirror of ``pos`` (never read back from the device)
        self.graph: torch.cuda.CUDAGraph | None = None
        self.captures = 0

    # -- one token, eagerly (this is what the graph records) ------------------------------
    @torch.no_grad()
    def step(self) -> None:
        """Decode the token at ``tokens[:, pos]``: update every static state, set ``logits``,
        write the greedy next token at ``tokens[:, pos + 1]`` and advance ``pos``."""
        if self.fused:
            self._step_fused()
            return
        model = self.model.model
        token = self.tokens.index_select(1, self.pos)  # (b, 1)
        hidden = model.embed_tokens(token)  # (b, 1, H)
        position_ids = (self.pos - self.n_pad)[:, None]  # (b, 1)
        cos, sin = model.rotary_emb(hidden, position_ids)  # (b, 1, rot)
        cos, sin = cos[:, None], sin[:, None]  # (b, 1, 1, rot): broadcast over heads
        mask = (self.key_valid & (self._slots <= self.pos))[:, None, None, :]  # (b, 1, 1, max_len)
        for i, layer in enumerate(model.layers):
            residual = hidden
            x = layer.input_layernorm(hidden)
            if i in self.conv:
                x = layer.mamba(x, cache=self._states)
            else:
                x = self._attend(layer.self_attn, x, i, cos, sin, mask)
            hidden = residual + x
            hidden = hidden + layer.feed_forward(layer.pre_ff_layernorm(hidden))
        hidden = model.final_layernorm(hidden)
        logits = self.model.lm_head(hidden)[:, -1]  # (b, vocab)
        self.logits.copy_(logits)
        nxt = logits.masked_fill(self.banned, float("-inf")).argmax(dim=-1)  # (b,)
        self.tokens.index_copy_(1, self.pos + 1, nxt[:, None])
        self.pos.add_(1)

    def _attend(self, attn: nn.Module, x: torch.Tensor, i: int, cos: torch.Tensor, sin: torch.Tensor,
                mask: torch.Tensor) -> torch.Tensor:
        b, d = self.batch_size, attn.head_dim
        kc, vc = self.k[i], self.v[i]
        kv = kc.shape[1]
        q = attn.q_proj(x).view(b, 1, -1, d).transpose(1, 2)  # (b, heads, 1, d)
        k = attn.k_proj(x).view(b, 1, kv, d).transpose(1, 2)  # (b, kv, 1, d)
        v = attn.v_proj(x).view(b, 1, kv, d).transpose(1, 2)
        q, k = _rope(q, cos, sin), _rope(k, cos, sin)
        kc.index_copy_(2, self.pos, k.to(kc.dtype))
        vc.index_copy_(2, self.pos, v.to(vc.dtype))
        heads = q.shape[1]
        # grouped-query attention without repeating K/V: the query heads sharing a kv head
        # (repeat_kv order: head = kv_head * n_rep + r) stand in as that kv head's query rows
        q = q.reshape(b, kv, heads // kv, d)
        out = F.scaled_dot_product_attention(q, kc, vc, attn_mask=mask, scale=attn.scaling)  # (b, kv, n_rep, d)
        return attn.o_proj(out.reshape(b, 1, heads * d))

    # -- the fused step (triton backends): the same math in fewer kernels ------------------
    def _init_fused(self) -> None:
        from ssmboard.variants.triton import decode

        model, b, dev = self.model.model, self.batch_size, self.device
        self.y: dict[int, torch.Tensor] = {}
        self.q_rot: dict[int, torch.Tensor] = {}
        self.attn_out: dict[int, torch.Tensor] = {}
        self._attn_scratch: dict[tuple, tuple] = {}  # shared by layers of one shape (used one after another)
        for i, layer in enumerate(model.layers):
            if i in self.conv:
                m = layer.mamba
                self.y[i] = torch.empty(b, m.num_heads * m.head_dim, device=dev, dtype=self.dtype)
            elif i in self.k:
                a = layer.self_attn
                heads = a.q_proj.out_features // a.head_dim
                self.q_rot[i] = torch.empty(b, heads, a.head_dim, device=dev, dtype=self.dtype)
                self.attn_out[i] = torch.empty(b, heads, a.head_dim, device=dev, dtype=self.dtype)
                shape = (b, heads, self.max_len, a.head_dim)
                if shape not in self._attn_scratch:
                    self._attn_scratch[shape] = decode.attention_scratch(b, heads, self.max_len, a.head_dim, dev)
        if self.k:
            # cos/sin of every position, from the model's own rotary module (one table lookup a token)
            probe = torch.zeros(1, 1, 1, device=dev, dtype=self.dtype)
            cos, sin = model.rotary_emb(probe, torch.arange(self.max_len, device=dev)[None])
            self.cos_table, self.sin_table = cos[0].contiguous(), sin[0].contiguous()
        self.attn_valid = torch.ones(b, self.max_len, dtype=torch.bool, device=dev)  # key mask, grown per token
        self._argmax_scratch = decode.argmax_scratch(b, self.logits.shape[1], dev)
        lm = self.model.lm_head
        self._lm_direct = getattr(lm, "bias", None) is None and isinstance(getattr(lm, "weight", None), torch.Tensor)

    def _step_fused(self) -> None:
        from ssmboard.variants.triton import decode

        model = self.model.model
        b = self.batch_size
        token = self.tokens.index_select(1, self.pos)  # (b, 1)
        hidden = model.embed_tokens(token)  # (b, 1, H)
        for i, layer in enumerate(model.layers):
            residual = hidden
            x = layer.input_layernorm(hidden)
            if i in self.conv:
                m = layer.mamba
                proj = m.in_proj(x)  # (b, 1, 2I + 2GN + H)
                y = decode.mamba_step(proj, self.conv[i], m.conv1d.weight, m.conv1d.bias, self.pos, self.ssm[i],
                                      m.A_log, m.D, m.dt_bias, self.y[i], heads=m.num_heads, head_dim=m.head_dim,
                                      groups=m.n_groups, d_state=m.ssm_state_size, intermediate=m.intermediate_size,
                                      dt_limit=m.time_step_limit)
                y = m.norm(y.view(b, 1, -1), proj[..., :m.intermediate_size])
                x = m.out_proj(y.to(self.dtype))
            else:
                a = layer.self_attn
                kc, vc = self.k[i], self.v[i]
                d, kv = a.head_dim, kc.shape[1]
                q = decode.rope_kv(a.q_proj(x), a.k_proj(x), a.v_proj(x), self.cos_table, self.sin_table, self.pos,
                                   self.n_pad, self.q_rot[i], kc, vc, self.attn_valid,
                                   heads=self.q_rot[i].shape[1], kv_heads=kv, head_dim=d)
                heads = q.shape[1]
                out = decode.attend(q, kc, vc, self.attn_valid, self.pos, self.attn_out[i],
                                    self._attn_scratch[(b, heads, self.max_len, d)], scale=a.scaling)
                x = a.o_proj(out.reshape(b, 1, heads * d))
            hidden = residual + x
            hidden = hidden + layer.feed_forward(layer.pre_ff_layernorm(hidden))
        hidden = model.final_layernorm(hidden)[:, -1]  # (b, H)
        lm = self.model.lm_head
        if self._lm_direct:
            torch.mm(hidden, lm.weight.t(), out=self.logits)
        else:
            self.logits.copy_(lm(hidden))
        decode.argmax_into(self.logits, self.banned, self.tokens, self.pos, self._argmax_scratch)
        self.pos.add_(1)

    # -- state in and tokens out -----------------------------------------------------------
    @torch.no_grad()
    def load(self, cache: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
             first_token: torch.Tensor, banned: torch.Tensor | None = None) -> None:
        """Copy a prefill's transformers cache into the static buffers; ``first_token`` (b,) is the
        greedy token after the prompt, written at slot L (the next one to decode); ``banned``
        (vocab,) bool, the tokens never to pick (None: none)."""
        b, length = input_ids.shape
        if b != self.batch_size or length + 1 > self.max_len:
            raise SsmboardError(f"this decoder holds batch {self.batch_size} and {self.max_len} positions; "
                                f"got batch {b} with a {length}-token prompt")
        for i in self.conv:
            conv, ssm = _hf_mamba_states(cache, i)
            if conv is None or ssm is None:
                raise SsmboardError(f"the prefill cache holds no Mamba state for layer {i}; was the forward run "
                                    "with use_cache=True?")
            if tuple(conv.shape) != tuple(self.conv[i].shape) or ssm.shape[-3:] != self.ssm[i].shape[-3:]:
                raise SsmboardError(f"layer {i}: cache state shapes {tuple(conv.shape)}, {tuple(ssm.shape)} do not "
                                    f"match the decoder's {tuple(self.conv[i].shape)}, {tuple(self.ssm[i].shape)}")
            if self.fused:  # the fused step keeps the conv inputs as a ring (token t in slot t % K)
                from ssmboard.variants.triton.decode import ring_from_conv_state
                self.conv[i].copy_(ring_from_conv_state(conv, length))
            else:
                self.conv[i].copy_(conv)
            self.ssm[i].copy_(ssm.reshape(self.ssm[i].shape))
        for i in self.k:
            k, v = _hf_kv(cache, i)
            if k is None or k.shape[2] != length:
                got = None if k is None else tuple(k.shape)
                raise SsmboardError(f"layer {i}: the prefill cache holds keys {got}, expected {length} positions")
            self.k[i][:, :, :length].copy_(k)
            self.v[i][:, :, :length].copy_(v)
        self.tokens[:, :length].copy_(input_ids)
        self.tokens[:, length].copy_(first_token)
        self.key_valid.fill_(True)
        if attention_mask is not None:
            self.key_valid[:, :length].copy_(attention_mask.bool())
            self.n_pad.copy_(length - attention_mask.long().sum(-1))
        else:
            self.n_pad.zero_()
        if banned is not None:
            self.banned.copy_(banned)
        else:
            self.banned.zero_()
        if self.fused:  # slots before the prompt's end as the prompt's mask says; later ones set per token
            self.attn_valid.copy_(self.key_valid & (self._slots < length))
        self.pos.fill_(length)
        self.host_pos = length

    def capture(self) -> None:
        """Record :meth:`step` in a CUDA graph (warm-up on a side stream first, as PyTorch documents).

        The warm-up and capture run on whatever the buffers hold and advance ``pos``: call it
        before :meth:`load`, which overwrites every buffer a step reads.
        """
        if not self.use_graph:
            raise SsmboardError("this decoder runs eagerly (not on CUDA, or use_graph=False)")
        self.pos.zero_()
        stream = torch.cuda.Stream(device=self.device)
        stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(stream):
            for _ in range(3):
                self.step()
        torch.cuda.current_stream(self.device).wait_stream(stream)
        self.pos.zero_()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self.step()
        self.graph = graph
        self.captures += 1
        self.pos.zero_()
        self.host_pos = 0

    def advance(self, n: int, logits_out: torch.Tensor | None = None) -> None:
        """Decode ``n`` tokens (graph replays on CUDA, eager steps otherwise); no host sync.

        ``logits_out`` (b, >= n, vocab), when given, receives each step's logits.
        """
        if self.host_pos + n >= self.max_len:
            raise SsmboardError(f"decoding {n} more tokens from position {self.host_pos} would pass this decoder's "
                                f"{self.max_len} positions; build one with a larger max_len")
        if self.use_graph and self.graph is None:
            raise SsmboardError("no CUDA graph captured yet: call capture() before load()")
        for j in range(n):
            if self.graph is not None:
                self.graph.replay()
            else:
                self.step()
            if logits_out is not None:
                logits_out[:, j].copy_(self.logits)
            self.host_pos += 1


# -- the user-facing functions ----------------------------------------------------------------
def attach(model: nn.Module, batch_size: int = 1, max_len: int = 2048, use_graph: bool | None = None,
           fused: bool | None = None) -> GraphDecoder:
    """The decoder cached on ``model`` for ``batch_size`` and the bucket of ``max_len`` positions
    (built, and on CUDA captured, on first use; rebuilt when the model changed since).
    ``fused`` None: the fused Triton step where :func:`fusable` says it can run."""
    check_model(model)
    decoders = model.__dict__.get(_ATTR)
    fingerprint = _fingerprint(model)
    if not isinstance(decoders, _Decoders) or decoders.fingerprint != fingerprint:
        decoders = _Decoders()
        decoders.fingerprint = fingerprint
        model.__dict__[_ATTR] = decoders  # a plain attribute: no state_dict entry, no submodule
    emb = model.model.embed_tokens.weight
    graph = (emb.device.type == "cuda") if use_graph is None else bool(use_graph)
    fuse = fusable(model) if fused is None else bool(fused)
    key = (int(batch_size), bucket_length(max_len), emb.dtype, str(emb.device), graph, fuse)
    decoder = decoders.get(key)
    if decoder is None:
        decoder = GraphDecoder(model, key[0], key[1], use_graph=graph, fused=fuse)
        if graph:
            decoder.capture()
        decoders[key] = decoder
    return decoder


def detach(model: nn.Module) -> None:
    """Drop the decoders cached on ``model`` (their buffers and CUDA graph pools)."""
    model.__dict__.pop(_ATTR, None)


def eos_mask(model: nn.Module, vocab_size: int, device: torch.device) -> torch.Tensor:
    """(vocab,) bool: the model's EOS token ids (generation config first, then model config)."""
    eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if eos is None:
        eos = getattr(model.config, "eos_token_id", None)
    ids = [eos] if isinstance(eos, int) else list(eos or [])
    mask = torch.zeros(vocab_size, dtype=torch.bool, device=device)
    for i in ids:
        if 0 <= int(i) < vocab_size:
            mask[int(i)] = True
    return mask


def _accepts(module: nn.Module, name: str) -> bool:
    try:
        return name in inspect.signature(module.forward).parameters
    except (TypeError, ValueError):
        return False


@torch.no_grad()
def prefill(model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> tuple[Any, torch.Tensor]:
    """The model's own forward over the prompt with a cache: (cache, last logits (b, vocab))."""
    kwargs: dict[str, Any] = dict(input_ids=input_ids, attention_mask=attention_mask, use_cache=True)
    if attention_mask is not None:  # as transformers' generate does for a padded batch
        kwargs["position_ids"] = (attention_mask.long().cumsum(-1) - 1).masked_fill(attention_mask == 0, 1)
    if _accepts(model, "logits_to_keep"):
        kwargs["logits_to_keep"] = 1
    out = model(**kwargs)
    return _output_cache(out), out.logits[:, -1]


@torch.no_grad()
def generate(model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
             max_new_tokens: int = 16, *, ban_eos: bool = True, return_logits: bool = False,
             use_graph: bool | None = None, fused: bool | None = None) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Greedy decoding of exactly ``max_new_tokens`` tokens: a LongTensor (batch, L + max_new_tokens).

    ``ban_eos`` True never picks an EOS token: the same tokens as ``model.generate(...,
    do_sample=False, max_new_tokens=N, min_new_tokens=N)``. False: EOS is an ordinary token.

    With ``return_logits`` also the logits of each new token, (batch, max_new_tokens, vocab)
    float32 (the prefill's last logits first), as ``model.generate(output_logits=True)`` gives them.
    ``use_graph`` None: CUDA graphs on a CUDA model, eager steps otherwise. ``fused`` None: the
    fused Triton step kernels where :func:`fusable` allows them; False: the model's own modules.
    """
    check_model(model)
    if input_ids.dim() != 2 or input_ids.shape[1] < 1:
        raise SsmboardError(f"input_ids must be (batch, length) with length >= 1, got {tuple(input_ids.shape)}")
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise SsmboardError(f"max_new_tokens must be a positive integer, got {max_new_tokens!r}")
    device = model.model.embed_tokens.weight.device
    input_ids = input_ids.to(device)
    batch, length = input_ids.shape
    if attention_mask is not None:
        attention_mask = attention_mask.to(device)
        if tuple(attention_mask.shape) != (batch, length):
            raise SsmboardError(f"attention_mask has shape {tuple(attention_mask.shape)}, input_ids {(batch, length)}")
        if not bool(attention_mask[:, -1].all()):
            raise SsmboardError("right padding is not supported (the attention mask's last column has a 0); "
                                "pad prompts on the left (tokenizer.padding_side = 'left')")
        if bool(attention_mask.all()):
            attention_mask = None
    total = length + max_new_tokens
    decoder = attach(model, batch, total, use_graph=use_graph, fused=fused) if max_new_tokens > 1 else None
    cache, last = prefill(model, input_ids, attention_mask)
    banned = eos_mask(model, last.shape[-1], device) if ban_eos else None
    first = (last.masked_fill(banned, float("-inf")) if banned is not None else last).argmax(dim=-1)
    if decoder is None:  # one token is the prefill's: no state to hand to a decoder (time to first token)
        tokens = torch.cat([input_ids, first[:, None]], dim=1)
        return (tokens, last.float()[:, None]) if return_logits else tokens
    decoder.load(cache, input_ids, attention_mask, first, banned)
    del cache
    logits = None
    if return_logits:
        logits = torch.empty(batch, max_new_tokens, last.shape[-1], dtype=torch.float32, device=device)
        logits[:, 0].copy_(last)
    decoder.advance(max_new_tokens - 1, logits[:, 1:] if logits is not None else None)
    tokens = decoder.tokens[:, :total].clone()
    return (tokens, logits) if return_logits else tokens
