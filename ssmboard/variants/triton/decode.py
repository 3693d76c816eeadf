"""Fused kernels for one greedy decode token (the static CUDA-graph decoder's step).

At batch 1 a decode token is weight reading plus ~100 tiny kernels whose fixed cost, not
their bytes, is what shows (``scripts/profile_model.py``). These launchers replace runs of
them with one kernel each; every function writes into buffers it is given (nothing is
allocated per call except where it says so) and reads the token position from a device
tensor, so the calls can be captured in a CUDA graph once and replayed per token.

- :func:`mamba_step`: a Mamba2 mixer's token after in_proj: causal conv + SiLU from a
  ring-buffer conv state, dt, the state update and y (``_kernels.mamba_decode_kernel``).
- :func:`rope_kv`: rotary embedding of the token's queries and keys, the K/V cache write
  and the key mask's new slot (``_kernels.rope_kv_kernel``).
- :func:`attend`: the token's attention over the static K/V cache, split along the keys
  (flash-decoding) and reading only the slots up to the token (``_kernels.attn_decode_*``).
- :func:`argmax_into`: the greedy token of each row (banned ids excluded), written
  straight into the token buffer (``_kernels.argmax_partial_kernel`` + ``argmax_final_kernel``).

All run on a CUDA GPU or on Triton's CPU interpreter (``TRITON_INTERPRET=1``, the tests).
"""
from __future__ import annotations

import math

import torch

from ssmboard.variants.triton import _kernels
from ssmboard.variants.triton._launch import _limit_args, _next_pow2, check_device, triton_cdiv


def ring_from_conv_state(conv_state: torch.Tensor, length: int) -> torch.Tensor:
    """transformers' conv state (b, c, K), oldest input first and the input of token
    ``length - 1`` last, as the ring :func:`mamba_step` reads: token t in slot t % K."""
    k = conv_state.shape[-1]
    return torch.roll(conv_state, shifts=length % k, dims=-1)


def conv_state_from_ring(ring: torch.Tensor, length: int) -> torch.Tensor:
    """The inverse of :func:`ring_from_conv_state`: ``length`` tokens seen so far."""
    k = ring.shape[-1]
    return torch.roll(ring, shifts=-(length % k), dims=-1)


def mamba_step(proj: torch.Tensor, ring: torch.Tensor, conv_weight: torch.Tensor, conv_bias: torch.Tensor | None,
               pos: torch.Tensor, state: torch.Tensor, A_log: torch.Tensor, D: torch.Tensor | None,
               dt_bias: torch.Tensor | None, y: torch.Tensor, *, heads: int, head_dim: int, groups: int,
               d_state: int, intermediate: int, dt_limit=(0.0, float("inf")), dt_softplus: bool = True) -> torch.Tensor:
    """One token of a Mamba2 mixer from its projection ``proj`` (b, 2I + 2GN + H), in place.

    ``ring`` (b, I + 2GN, K) conv inputs by slot t % K (the new one is written into slot
    pos % K); ``state`` (b, H, P, N) float32, updated; ``y`` (b, H * P) receives the output
    (before the gated norm). ``pos`` (1,) int64 on the device: the token's position.
    """
    check_device(proj, ring, state, y)
    b = proj.shape[0]
    h, p, g, n, i = heads, head_dim, groups, d_state, intermediate
    proj = proj.reshape(b, -1)
    if proj.stride(-1) != 1 or proj.shape[1] != 2 * i + 2 * g * n + h:
        raise ValueError(f"proj must be (b, {2 * i + 2 * g * n + h}) with unit stride, got {tuple(proj.shape)}")
    k = ring.shape[-1]
    if tuple(ring.shape) != (b, i + 2 * g * n, k) or tuple(state.shape) != (b, h, p, n) or state.dtype != torch.float32:
        raise ValueError(f"ring (b, {i + 2 * g * n}, K) and float32 state ({b}, {h}, {p}, {n}) expected, "
                         f"got {tuple(ring.shape)} and {tuple(state.shape)} {state.dtype}")
    if y.shape[0] != b or y.numel() != b * h * p or y.stride(-1) != 1:
        raise ValueError(f"y must hold (b, {h * p}) contiguous per row, got {tuple(y.shape)}")
    w = conv_weight.reshape(conv_weight.shape[0], -1)  # (c, K)
    block_n = max(16, _next_pow2(n))
    block_p = max(1, min(_next_pow2(p), 8192 // block_n))
    if b * h * triton_cdiv(p, block_p) < 1024:  # small batch: more, smaller programs
        block_p = max(1, block_p // 4)
    has_limit, lo, hi = _limit_args(dt_limit)
    Dt = D if D is not None else A_log
    sD = (Dt.stride(0), Dt.stride(1) if (D is not None and D.dim() == 2) else 0)
    _kernels.kernel(_kernels.mamba_decode_kernel)[(b * h, triton_cdiv(p, block_p))](
        proj, ring, w, conv_bias if conv_bias is not None else w, pos, state, A_log, Dt,
        dt_bias if dt_bias is not None else A_log, y,
        h, p, n, h // g, g, i, k, lo, hi,
        proj.stride(0), ring.stride(0), ring.stride(1), ring.stride(2), w.stride(0), w.stride(1),
        *state.stride(), *sD, y.stride(0),
        BLOCK_P=block_p, BLOCK_N=block_n, BLOCK_K=max(2, _next_pow2(k)),
        HAS_CONV_BIAS=conv_bias is not None, HAS_D=D is not None, HAS_BIAS=dt_bias is not None,
        SOFTPLUS=bool(dt_softplus), HAS_LIMIT=has_limit, ROUND=proj.dtype != torch.float32,
        num_warps=4 if block_p * block_n <= 4096 else 8)
    return y


def rope_kv(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cos_table: torch.Tensor, sin_table: torch.Tensor,
            pos: torch.Tensor, n_pad: torch.Tensor, q_out: torch.Tensor, k_cache: torch.Tensor,
            v_cache: torch.Tensor, key_valid: torch.Tensor, *, heads: int, kv_heads: int, head_dim: int) -> torch.Tensor:
    """Rotate the token's queries into ``q_out`` (b, heads, head_dim) and its keys into slot
    ``pos`` of ``k_cache`` (b, kv, max_len, head_dim), write its values into ``v_cache``, and
    set ``key_valid[:, pos]``. q (b, heads * head_dim), k and v (b, kv * head_dim), rows
    contiguous; cos/sin tables (max_len, rot) by position (pos - n_pad[b])."""
    check_device(q, k, v, q_out, k_cache)
    b = q.shape[0]
    q, k, v = q.reshape(b, -1), k.reshape(b, -1), v.reshape(b, -1)
    for t in (q, k, v, cos_table, sin_table):
        if t.stride(-1) != 1:
            raise ValueError("rope_kv needs unit stride along the last dimension")
    if q_out.stride(-1) != 1 or k_cache.stride(-1) != 1 or v_cache.stride(-1) != 1:
        raise ValueError("rope_kv needs unit-stride outputs along the head dimension")
    rot = cos_table.shape[-1]
    valid = key_valid.view(torch.uint8) if key_valid.dtype == torch.bool else key_valid
    _kernels.kernel(_kernels.rope_kv_kernel)[(b, heads + kv_heads)](
        q, k, v, cos_table, sin_table, pos, n_pad, q_out, k_cache, v_cache, valid,
        heads, kv_heads, head_dim, rot,
        q.stride(0), k.stride(0), v.stride(0), cos_table.stride(0), q_out.stride(0), q_out.stride(1),
        k_cache.stride(0), k_cache.stride(1), k_cache.stride(2), v_cache.stride(0), v_cache.stride(1),
        v_cache.stride(2), valid.stride(0),
        BLOCK_D=max(16, _next_pow2(head_dim)), num_warps=1)
    return q_out


ATTN_SPLIT = 128  # keys per program of the split attention


def attention_scratch(batch: int, heads: int, max_len: int, head_dim: int, device):
    """(partial outputs, row maxima, row sums) buffers :func:`attend` needs."""
    nsplit = math.ceil(max_len / ATTN_SPLIT)
    return (torch.empty(batch, heads, nsplit, head_dim, dtype=torch.float32, device=device),
            torch.empty(batch, heads, nsplit, dtype=torch.float32, device=device),
            torch.empty(batch, heads, nsplit, dtype=torch.float32, device=device))


def attend(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, key_valid: torch.Tensor,
           pos: torch.Tensor, out: torch.Tensor, scratch, *, scale: float) -> torch.Tensor:
    """One token's attention over a static cache: q (b, heads, d) -> ``out`` (b, heads, d).

    Keys are slots 0..pos of ``k_cache``/``v_cache`` (b, kv, max_len, d) where ``key_valid``
    (b, max_len) is set; query head j reads kv head j // (heads / kv) (transformers' repeat_kv
    order). Split along the keys (flash-decoding) so that one query still fills the GPU, and
    only the slots up to ``pos`` are read: unlike one SDPA call over the whole bucket."""
    check_device(q, k_cache, v_cache, out)
    b, heads, d = q.shape
    kv, max_len = k_cache.shape[1], k_cache.shape[2]
    rep = heads // kv
    o, m, l = scratch
    nsplit = o.shape[2]
    if nsplit * ATTN_SPLIT < max_len or o.shape[:2] != (b, heads):
        raise ValueError("attention scratch does not match the cache")
    valid = key_valid.view(torch.uint8) if key_valid.dtype == torch.bool else key_valid
    prec = "ieee" if q.dtype == torch.float32 else "tf32"
    _kernels.kernel(_kernels.attn_decode_partial_kernel)[(b * kv, nsplit)](
        q, k_cache, v_cache, valid, pos, o, m, l, kv, rep, d, float(scale),
        q.stride(0), q.stride(1), k_cache.stride(0), k_cache.stride(1), k_cache.stride(2),
        v_cache.stride(0), v_cache.stride(1), v_cache.stride(2), valid.stride(0),
        o.stride(0), o.stride(1), o.stride(2), m.stride(0), m.stride(1),
        BLOCK_R=max(16, _next_pow2(rep)), BLOCK_N=ATTN_SPLIT, BLOCK_D=max(16, _next_pow2(d)), DOT_PREC=prec,
        num_warps=4)
    _kernels.kernel(_kernels.attn_decode_combine_kernel)[(b * heads,)](
        o, m, l, pos, out, heads, d, o.stride(0), o.stride(1), o.stride(2), m.stride(0), m.stride(1),
        out.stride(0), out.stride(1), SPLIT_N=ATTN_SPLIT, BLOCK_S=32, BLOCK_D=max(16, _next_pow2(d)), num_warps=4)
    return out


_ARGMAX_BLOCK = 2048


def argmax_scratch(batch: int, vocab: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """The per-block (max, index) buffers :func:`argmax_into` needs for (batch, vocab)."""
    nblk = math.ceil(vocab / _ARGMAX_BLOCK)
    return (torch.empty(batch, nblk, dtype=torch.float32, device=device),
            torch.empty(batch, nblk, dtype=torch.int32, device=device))


def argmax_into(logits: torch.Tensor, banned: torch.Tensor | None, tokens: torch.Tensor, pos: torch.Tensor,
                scratch: tuple[torch.Tensor, torch.Tensor]) -> None:
    """``tokens[r, pos + 1] = argmax(logits[r])`` over ids not ``banned`` (first index on ties)."""
    check_device(logits, tokens)
    b, vocab = logits.shape
    if logits.stride(-1) != 1:
        raise ValueError("argmax_into needs logits with unit stride along the vocabulary")
    vals, idx = scratch
    nblk = vals.shape[1]
    ban = banned.view(torch.uint8) if banned is not None and banned.dtype == torch.bool else banned
    _kernels.kernel(_kernels.argmax_partial_kernel)[(b, nblk)](
        logits, ban if ban is not None else logits, vals, idx, vocab, nblk, logits.stride(0),
        BLOCK=_ARGMAX_BLOCK, HAS_BAN=ban is not None, num_warps=4)
    _kernels.kernel(_kernels.argmax_final_kernel)[(b,)](
        vals, idx, pos, tokens, nblk, tokens.stride(0), BLOCK=max(16, _next_pow2(nblk)), num_warps=1)
