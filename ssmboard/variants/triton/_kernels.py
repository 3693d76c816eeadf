"""The Triton kernels, as plain functions, turned into kernels on first use.

Why not ``@triton.jit`` at import time: Triton decides at decoration time whether a
kernel is compiled for a GPU or run by its CPU interpreter (``TRITON_INTERPRET=1``). A
test process may import this module before it sets the variable, and a GPU process must
be able to import it on a machine with no GPU. So the functions here stay plain Python
until :func:`kernel` wraps one, for the mode the environment asks for at call time.

The scan and the decode step:

``ssd_scan_kernel``
    One program per (batch, head, block of head_dim channels, segment) walks its segment
    of the sequence, BLOCK_L tokens at a time, and carries the (channels x d_state)
    state in registers.
    For each block it forms the masked, decaying C·Bᵀ product (the within-block part),
    adds C·state (the part coming from before the block), writes y, then advances the
    state by the block's own contribution. Discretisation (bias, softplus, clamp), the
    cumulative decay and the skip term are done in the same pass: one launch, no
    intermediate tensor in device memory. The result does not depend on the tile
    BLOCK_L; for independent chunks the state is zeroed at each chunk boundary
    (chunk_size is then a multiple of BLOCK_L). With one segment the whole scan is one
    launch; with several (long sequences, few heads x batch) the exact scan takes two:
    segments' own end states and total decays (MODE 1, all segments but the last, state
    update only, with its own tile), then the outputs (MODE 2: each program first folds the
    earlier segments' results into its entering state, then walks its segment; the last
    one's end state is the final state).

``ssd_step_kernel``
    One decode token: state ← exp(dt·A)·state + dt·x⊗B, y = state·C + D·x, the state
    updated in place; one program per (batch, head, block of channels). Memory-bound:
    the state is read and written once.

The fused kernels of one greedy decode token (``mamba_decode_kernel``, ``rope_kv_kernel``,
``attn_decode_*``, ``argmax_*``) are launched by ``ssmboard.variants.triton.decode``.
"""
from __future__ import annotations

import os
from typing import Callable

import triton
import triton.language as tl


def _add(a, b):
    return a + b


# Reductions go through tl.reduce / tl.associative_scan (builtins) with this combine
# function rather than tl.sum / tl.cumsum (and tl.full, not tl.zeros): those are jitted functions whose
# mode was fixed when triton was imported. Triton's own combine function is used where
# it exists, so that the interpreter takes its fast numpy path.
_sum_combine = getattr(getattr(tl, "standard", None), "_sum_combine", None) or triton.runtime.jit.JITFunction(_add)


def ssd_scan_kernel(
    x_ptr, dt_ptr, A_ptr, B_ptr, C_ptr, D_ptr, bias_ptr, init_ptr, y_ptr, final_ptr, seg_ptr, dec_ptr,
    L, H, P, N, HEADS_PER_GROUP, CHUNK, SEG, NSEG, dt_lo, dt_hi,
    sx_b, sx_l, sx_h, sx_p,
    sdt_b, sdt_l, sdt_h,
    sB_b, sB_l, sB_g, sB_n,
    sC_b, sC_l, sC_g, sC_n,
    sD_h, sD_p,
    sy_b, sy_l, sy_h, sy_p,
    si_b, si_h, si_p, si_n,
    sf_b, sf_h, sf_p, sf_n,
    sS_b, sS_s, sS_h, sS_p, sS_n,
    BLOCK_L: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_N: tl.constexpr,
    HAS_D: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr, HAS_LIMIT: tl.constexpr,
    HAS_INIT: tl.constexpr, STORE_FINAL: tl.constexpr, INDEPENDENT: tl.constexpr,
    MODE: tl.constexpr, LOWP: tl.constexpr, DOT_PREC: tl.constexpr, CB_UPCAST: tl.constexpr,
):
    """The scan (module docstring). The state is kept as (channels x d_state) and outputs are
    formed transposed (channels x tokens): the state is then the accumulator of its own
    update and the register operand of C·state, and every shared-memory operand is a loaded
    tile (or the small within-block weight matrix).
    """
    # MODE 0: outputs; segment 0 starts from initial_state, later segments from zero
    #         (one segment: the whole exact scan; several: independent chunks).
    # MODE 1: no outputs; each segment's own end state from zero -> seg_ptr, and its
    #         total decay -> dec_ptr (first pass of the segment-parallel exact scan;
    #         launched for segments 0..NSEG-2 only).
    # MODE 2: outputs; each segment starts from its true entering state, formed from the
    #         initial state and the MODE 1 results of the segments before it (second pass).
    pid_bh = tl.program_id(0)
    pid_p = tl.program_id(1)
    seg = tl.program_id(2)
    b = (pid_bh // H).to(tl.int64)  # batch offsets can pass 2**31 elements
    h = pid_bh % H
    g = h // HEADS_PER_GROUP

    offs_l = tl.arange(0, BLOCK_L)
    offs_p = pid_p * BLOCK_P + tl.arange(0, BLOCK_P)
    offs_n = tl.arange(0, BLOCK_N)
    mask_p = offs_p < P
    mask_n = offs_n < N

    A = tl.load(A_ptr + h).to(tl.float32)
    if HAS_BIAS:
        bias = tl.load(bias_ptr + h).to(tl.float32)
    if HAS_D:
        Dv = tl.load(D_ptr + h * sD_h + offs_p * sD_p, mask=mask_p, other=0.0).to(tl.float32)

    seg_ptrs = seg_ptr + b * sS_b + seg * sS_s + h * sS_h + offs_p[:, None] * sS_p + offs_n[None, :] * sS_n
    mask_pn = mask_p[:, None] & mask_n[None, :]
    if MODE == 2:
        # the state entering this segment, from the initial state and the earlier segments'
        # own end states and total decays (MODE 1): entering[j+1] = exp(dec[j]) entering[j] + own[j]
        if HAS_INIT:
            init_ptrs = init_ptr + b * si_b + h * si_h + offs_p[:, None] * si_p + offs_n[None, :] * si_n
            state = tl.load(init_ptrs, mask=mask_pn, other=0.0).to(tl.float32)
        else:
            state = tl.full((BLOCK_P, BLOCK_N), 0.0, tl.float32)
        own_ptrs = seg_ptr + b * sS_b + h * sS_h + offs_p[:, None] * sS_p + offs_n[None, :] * sS_n
        for j in range(0, seg):
            own = tl.load(own_ptrs + j * sS_s, mask=mask_pn, other=0.0)
            state = state * tl.exp(tl.load(dec_ptr + pid_bh * NSEG + j)) + own
    elif MODE == 0 and HAS_INIT:
        init_ptrs = init_ptr + b * si_b + h * si_h + offs_p[:, None] * si_p + offs_n[None, :] * si_n
        state = tl.load(init_ptrs, mask=mask_pn, other=0.0).to(tl.float32)
        state = state * tl.where(seg == 0, 1.0, 0.0)  # later segments: independent chunks
    else:
        state = tl.full((BLOCK_P, BLOCK_N), 0.0, tl.float32)

    causal_st = offs_l[:, None] <= offs_l[None, :]  # [s, t]: s <= t
    x_base = x_ptr + b * sx_b + h * sx_h
    dt_base = dt_ptr + b * sdt_b + h * sdt_h
    B_base = B_ptr + b * sB_b + g * sB_g
    C_base = C_ptr + b * sC_b + g * sC_g
    y_base = y_ptr + b * sy_b + h * sy_h
    seg_total = A * 0.0

    first_blk = seg * (SEG // BLOCK_L)
    last_blk = tl.minimum((L + BLOCK_L - 1) // BLOCK_L, first_blk + SEG // BLOCK_L)
    for blk in range(first_blk, last_blk):
        t = blk * BLOCK_L + offs_l
        mask_t = t < L
        if INDEPENDENT:
            restart = ((blk * BLOCK_L) % CHUNK == 0) & (blk > 0)
            state = state * tl.where(restart, 0.0, 1.0)

        dt = tl.load(dt_base + t * sdt_l, mask=mask_t, other=0.0).to(tl.float32)
        if HAS_BIAS:
            dt = dt + bias
        if SOFTPLUS:
            dt = tl.where(dt <= 20.0, tl.log(1.0 + tl.exp(dt)), dt)
        if HAS_LIMIT:
            dt = tl.minimum(tl.maximum(dt, dt_lo), dt_hi)
        dt = tl.where(mask_t, dt, 0.0)
        dA = dt * A
        cs = tl.associative_scan(dA, 0, _sum_combine)
        total = tl.reduce(dA, 0, _sum_combine)

        xT = tl.load(x_base + offs_p[:, None] * sx_p + t[None, :] * sx_l,
                     mask=mask_p[:, None] & mask_t[None, :], other=0.0)  # (channels, tokens)
        Bb = tl.load(B_base + t[:, None] * sB_l + offs_n[None, :] * sB_n,
                     mask=mask_t[:, None] & mask_n[None, :], other=0.0)  # (tokens, d_state)
        xTf = xT.to(tl.float32)
        if CB_UPCAST:  # the CPU interpreter multiplies bfloat16 tiles wrongly (triton 3.9)
            Bd = Bb.to(tl.float32)
        else:
            Bd = Bb

        if MODE != 1:
            CT = tl.load(C_base + offs_n[:, None] * sC_n + t[None, :] * sC_l,
                         mask=mask_n[:, None] & mask_t[None, :], other=0.0)  # (d_state, tokens)
            if CB_UPCAST:
                CTd = CT.to(tl.float32)
            else:
                CTd = CT
            # wT[s, t] = (B_s·C_t) exp(cs_t - cs_s) dt_s for s <= t;  yT = xT @ wT
            cbT = tl.dot(Bd, CTd, input_precision=DOT_PREC)
            decay = tl.where(causal_st, cs[None, :] - cs[:, None], float("-inf"))
            wT = cbT * tl.exp(decay) * dt[:, None]
            if (LOWP & 1) != 0:
                if CB_UPCAST:
                    yT = tl.dot(xTf, wT.to(xT.dtype).to(tl.float32))
                else:
                    yT = tl.dot(xT, wT.to(xT.dtype))
            else:
                yT = tl.dot(xTf, wT, input_precision=DOT_PREC)
            if (LOWP & 2) != 0:
                if CB_UPCAST:
                    prevT = tl.dot(state.to(xT.dtype).to(tl.float32), CTd)
                else:
                    prevT = tl.dot(state.to(xT.dtype), CTd)
            else:
                prevT = tl.dot(state, CTd.to(tl.float32), input_precision=DOT_PREC)
            yT += prevT * tl.exp(cs)[None, :]
            if HAS_D:
                yT += xTf * Dv[:, None]
            tl.store(y_base + offs_p[:, None] * sy_p + t[None, :] * sy_l, yT.to(y_ptr.dtype.element_ty),
                     mask=mask_p[:, None] & mask_t[None, :])

        # state = exp(total) state + sum_s exp(total - cs_s) dt_s x_s ⊗ B_s, as the dot's accumulator
        xsT = xTf * (tl.exp(total - cs) * dt)[None, :]
        if (LOWP & 4) != 0:
            if CB_UPCAST:
                state = tl.dot(xsT.to(xT.dtype).to(tl.float32), Bd, acc=state * tl.exp(total))
            else:
                state = tl.dot(xsT.to(xT.dtype), Bd, acc=state * tl.exp(total))
        else:
            state = tl.dot(xsT, Bd.to(tl.float32), acc=state * tl.exp(total), input_precision=DOT_PREC)
        seg_total += total

    if MODE == 1:
        tl.store(seg_ptrs, state, mask=mask_pn)
        if pid_p == 0:
            tl.store(dec_ptr + pid_bh * NSEG + seg, seg_total)
    if MODE != 1 and STORE_FINAL:
        # the last segment's end state is the final state (MODE 2: it started from the true state)
        if seg == NSEG - 1:
            final_ptrs = final_ptr + b * sf_b + h * sf_h + offs_p[:, None] * sf_p + offs_n[None, :] * sf_n
            tl.store(final_ptrs, state, mask=mask_pn)


def ssd_step_kernel(
    state_ptr, x_ptr, dt_ptr, A_ptr, B_ptr, C_ptr, D_ptr, bias_ptr, y_ptr,
    H, P, N, HEADS_PER_GROUP, dt_lo, dt_hi,
    ss_b, ss_h, ss_p, ss_n,
    sx_b, sx_h, sx_p,
    sdt_b, sdt_h,
    sB_b, sB_g, sB_n,
    sC_b, sC_g, sC_n,
    sD_h, sD_p,
    sy_b, sy_h, sy_p,
    BLOCK_P: tl.constexpr, BLOCK_N: tl.constexpr,
    HAS_D: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr, HAS_LIMIT: tl.constexpr,
):
    pid_bh = tl.program_id(0)
    pid_p = tl.program_id(1)
    b = (pid_bh // H).to(tl.int64)  # batch offsets can pass 2**31 elements
    h = pid_bh % H
    g = h // HEADS_PER_GROUP
    offs_p = pid_p * BLOCK_P + tl.arange(0, BLOCK_P)
    offs_n = tl.arange(0, BLOCK_N)
    mask_p = offs_p < P
    mask_n = offs_n < N
    mask = mask_p[:, None] & mask_n[None, :]

    dt = tl.load(dt_ptr + b * sdt_b + h * sdt_h).to(tl.float32)
    if HAS_BIAS:
        dt = dt + tl.load(bias_ptr + h).to(tl.float32)
    if SOFTPLUS:
        dt = tl.where(dt <= 20.0, tl.log(1.0 + tl.exp(dt)), dt)
    if HAS_LIMIT:
        dt = tl.minimum(tl.maximum(dt, dt_lo), dt_hi)
    decay = tl.exp(dt * tl.load(A_ptr + h).to(tl.float32))

    s_ptrs = state_ptr + b * ss_b + h * ss_h + offs_p[:, None] * ss_p + offs_n[None, :] * ss_n
    s = tl.load(s_ptrs, mask=mask, other=0.0)
    x = tl.load(x_ptr + b * sx_b + h * sx_h + offs_p * sx_p, mask=mask_p, other=0.0).to(tl.float32)
    Bv = tl.load(B_ptr + b * sB_b + g * sB_g + offs_n * sB_n, mask=mask_n, other=0.0).to(tl.float32)
    Cv = tl.load(C_ptr + b * sC_b + g * sC_g + offs_n * sC_n, mask=mask_n, other=0.0).to(tl.float32)
    s = s * decay + (dt * x)[:, None] * Bv[None, :]
    tl.store(s_ptrs, s, mask=mask)
    y = tl.reduce(s * Cv[None, :], 1, _sum_combine)
    if HAS_D:
        y += x * tl.load(D_ptr + h * sD_h + offs_p * sD_p, mask=mask_p, other=0.0).to(tl.float32)
    tl.store(y_ptr + b * sy_b + h * sy_h + offs_p * sy_p, y.to(y_ptr.dtype.element_ty), mask=mask_p)


def _argmax_combine_left(v1, i1, v2, i2):
    take1 = (v1 > v2) | ((v1 == v2) & (i1 < i2))
    return tl.where(take1, v1, v2), tl.where(take1, i1, i2)


_argmax_combine = triton.runtime.jit.JITFunction(_argmax_combine_left)


def mamba_decode_kernel(
    proj_ptr, conv_ptr, cw_ptr, cb_ptr, pos_ptr, state_ptr, Alog_ptr, D_ptr, bias_ptr, y_ptr,
    H, P, N, HEADS_PER_GROUP, G, I, K, dt_lo, dt_hi,
    sp_b, sc_b, sc_c, sc_k, scw_c, scw_k,
    ss_b, ss_h, ss_p, ss_n, sD_h, sD_p, sy_b,
    BLOCK_P: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    HAS_CONV_BIAS: tl.constexpr, HAS_D: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
    HAS_LIMIT: tl.constexpr, ROUND: tl.constexpr,
):
    """One decode token of a Mamba2 mixer after its input projection, in one launch.

    ``proj`` (b, 2I + 2GN + H) is the in_proj output [gate | x | B | C | dt]; the conv state
    ``conv`` (b, I + 2GN, K) is a ring: the input of token t sits in slot t % K, and ``pos``
    (a device scalar) is the token being decoded. Per program (batch, head, block of
    channels): the causal conv + SiLU of its x channels and of its group's B and C from the
    ring and the new input, the new input written into slot pos % K (x channels by their
    program, B and C by the group's first head; the slot written is the one no tap reads),
    dt (bias, softplus, clamp), A = -exp(A_log), the state update
    state <- exp(dt A) state + dt x (x) B in place, and y = state C + D x.
    """
    pid_bh = tl.program_id(0)
    pid_p = tl.program_id(1)
    b = (pid_bh // H).to(tl.int64)
    h = pid_bh % H
    g = h // HEADS_PER_GROUP
    offs_p = pid_p * BLOCK_P + tl.arange(0, BLOCK_P)
    offs_n = tl.arange(0, BLOCK_N)
    offs_k = tl.arange(0, BLOCK_K)
    mask_p = offs_p < P
    mask_n = offs_n < N
    mask_k = offs_k < K
    pos = tl.load(pos_ptr)
    # tap j reads token pos - (K - 1) + j, kept in slot (pos + 1 + j) % K; tap K - 1 is the new input
    slot = (pos + 1 + offs_k) % K
    old = mask_k & (offs_k < K - 1)
    is_new = offs_k == K - 1
    wslot = pos % K
    proj = proj_ptr + b * sp_b
    ring = conv_ptr + b * sc_b

    # x channels of this program
    cx = h * P + offs_p
    new_x = tl.load(proj + I + cx, mask=mask_p, other=0.0)
    vx = tl.load(ring + cx[:, None] * sc_c + slot[None, :] * sc_k, mask=mask_p[:, None] & old[None, :], other=0.0)
    vx = tl.where(is_new[None, :], new_x[:, None], vx).to(tl.float32)
    wx = tl.load(cw_ptr + cx[:, None] * scw_c + offs_k[None, :] * scw_k, mask=mask_p[:, None] & mask_k[None, :],
                 other=0.0).to(tl.float32)
    ax = tl.reduce(vx * wx, 1, _sum_combine)
    # B and C channels of this head's group
    cB = I + g * N + offs_n
    cC = I + G * N + g * N + offs_n
    new_B = tl.load(proj + I + cB, mask=mask_n, other=0.0)
    new_C = tl.load(proj + I + cC, mask=mask_n, other=0.0)
    m2 = mask_n[:, None] & old[None, :]
    vB = tl.load(ring + cB[:, None] * sc_c + slot[None, :] * sc_k, mask=m2, other=0.0)
    vC = tl.load(ring + cC[:, None] * sc_c + slot[None, :] * sc_k, mask=m2, other=0.0)
    vB = tl.where(is_new[None, :], new_B[:, None], vB).to(tl.float32)
    vC = tl.where(is_new[None, :], new_C[:, None], vC).to(tl.float32)
    mw = mask_n[:, None] & mask_k[None, :]
    wB = tl.load(cw_ptr + cB[:, None] * scw_c + offs_k[None, :] * scw_k, mask=mw, other=0.0).to(tl.float32)
    wC = tl.load(cw_ptr + cC[:, None] * scw_c + offs_k[None, :] * scw_k, mask=mw, other=0.0).to(tl.float32)
    aB = tl.reduce(vB * wB, 1, _sum_combine)
    aC = tl.reduce(vC * wC, 1, _sum_combine)
    if HAS_CONV_BIAS:
        ax += tl.load(cb_ptr + cx, mask=mask_p, other=0.0).to(tl.float32)
        aB += tl.load(cb_ptr + cB, mask=mask_n, other=0.0).to(tl.float32)
        aC += tl.load(cb_ptr + cC, mask=mask_n, other=0.0).to(tl.float32)
    xv = ax / (1.0 + tl.exp(-ax))  # SiLU
    Bv = aB / (1.0 + tl.exp(-aB))
    Cv = aC / (1.0 + tl.exp(-aC))
    if ROUND:  # the mixer hands the scan the conv output in the activations' type
        xv = xv.to(proj_ptr.dtype.element_ty).to(tl.float32)
        Bv = Bv.to(proj_ptr.dtype.element_ty).to(tl.float32)
        Cv = Cv.to(proj_ptr.dtype.element_ty).to(tl.float32)
    # the new input into the ring: after the loads above (same program), in the slot no tap reads
    tl.store(ring + cx * sc_c + wslot * sc_k, new_x, mask=mask_p)
    mask_first = mask_n & ((offs_n * 0 + (h % HEADS_PER_GROUP) + pid_p) == 0)  # the group's first program
    tl.store(ring + cB * sc_c + wslot * sc_k, new_B, mask=mask_first)
    tl.store(ring + cC * sc_c + wslot * sc_k, new_C, mask=mask_first)

    dt = tl.load(proj + I + I + 2 * G * N + h).to(tl.float32)
    if HAS_BIAS:
        dt = dt + tl.load(bias_ptr + h).to(tl.float32)
    if SOFTPLUS:
        dt = tl.where(dt <= 20.0, tl.log(1.0 + tl.exp(dt)), dt)
    if HAS_LIMIT:
        dt = tl.minimum(tl.maximum(dt, dt_lo), dt_hi)
    A = -tl.exp(tl.load(Alog_ptr + h).to(tl.float32))
    decay = tl.exp(dt * A)

    mask = mask_p[:, None] & mask_n[None, :]
    s_ptrs = state_ptr + b * ss_b + h * ss_h + offs_p[:, None] * ss_p + offs_n[None, :] * ss_n
    s = tl.load(s_ptrs, mask=mask, other=0.0)
    s = s * decay + (dt * xv)[:, None] * Bv[None, :]
    tl.store(s_ptrs, s, mask=mask)
    y = tl.reduce(s * Cv[None, :], 1, _sum_combine)
    if HAS_D:
        y += xv * tl.load(D_ptr + h * sD_h + offs_p * sD_p, mask=mask_p, other=0.0).to(tl.float32)
    tl.store(y_ptr + b * sy_b + h * P + offs_p, y.to(y_ptr.dtype.element_ty), mask=mask_p)


def rope_kv_kernel(
    q_ptr, k_ptr, v_ptr, cos_ptr, sin_ptr, pos_ptr, npad_ptr, qo_ptr, kc_ptr, vc_ptr, valid_ptr,
    HEADS, KV, D, ROT,
    sq_b, sk_b, sv_b, scos_l, sqo_b, sqo_h, skc_b, skc_h, skc_l, svc_b, svc_h, svc_l, sval_b,
    BLOCK_D: tl.constexpr,
):
    """Rotary embedding of one decode token's queries and keys, and the K/V cache write.

    Programs (batch, head) for head < HEADS rotate query head ``head`` into ``qo`` (b, HEADS,
    D); the others rotate key head ``head - HEADS`` and write it and its value into slot
    ``pos`` of the caches, and the first of them marks slot ``pos`` valid in the key mask.
    Position = pos - npad[b] (left padding), cos/sin read from a table of every position.
    transformers' rotate-half convention: the first ROT channels rotate, the rest pass.
    """
    bidx = tl.program_id(0).to(tl.int64)
    head = tl.program_id(1)
    pos = tl.load(pos_ptr)
    where = pos - tl.load(npad_ptr + bidx)
    offs = tl.arange(0, BLOCK_D)
    half = ROT // 2
    in_rot = offs < ROT
    partner = tl.where(offs < half, offs + half, offs - half)
    sign = tl.where(offs < half, -1.0, 1.0)
    cos = tl.load(cos_ptr + where * scos_l + offs, mask=in_rot, other=1.0).to(tl.float32)
    sin = tl.load(sin_ptr + where * scos_l + offs, mask=in_rot, other=0.0).to(tl.float32)
    mask = offs < D
    if head < HEADS:
        src = q_ptr + bidx * sq_b + head * D
        x = tl.load(src + offs, mask=mask, other=0.0).to(tl.float32)
        xp = tl.load(src + partner, mask=in_rot, other=0.0).to(tl.float32)
        out = tl.where(in_rot, x * cos + sign * xp * sin, x)
        tl.store(qo_ptr + bidx * sqo_b + head * sqo_h + offs, out.to(qo_ptr.dtype.element_ty), mask=mask)
    else:
        kh = head - HEADS
        src = k_ptr + bidx * sk_b + kh * D
        x = tl.load(src + offs, mask=mask, other=0.0).to(tl.float32)
        xp = tl.load(src + partner, mask=in_rot, other=0.0).to(tl.float32)
        out = tl.where(in_rot, x * cos + sign * xp * sin, x)
        tl.store(kc_ptr + bidx * skc_b + kh * skc_h + pos * skc_l + offs, out.to(kc_ptr.dtype.element_ty),
                 mask=mask)
        v = tl.load(v_ptr + bidx * sv_b + kh * D + offs, mask=mask, other=0.0)
        tl.store(vc_ptr + bidx * svc_b + kh * svc_h + pos * svc_l + offs, v.to(vc_ptr.dtype.element_ty), mask=mask)
        if kh == 0:
            tl.store(valid_ptr + bidx * sval_b + pos, 1)


def argmax_partial_kernel(
    x_ptr, banned_ptr, val_ptr, idx_ptr, V, NBLK, sx_b,
    BLOCK: tl.constexpr, HAS_BAN: tl.constexpr,
):
    """First stage of a row-wise argmax over (b, V): block ``pid1`` of row ``pid0``, banned
    entries excluded, to (max, first index of the max) per block."""
    row = tl.program_id(0).to(tl.int64)
    blk = tl.program_id(1)
    offs = blk * BLOCK + tl.arange(0, BLOCK)
    m = offs < V
    x = tl.load(x_ptr + row * sx_b + offs, mask=m, other=float("-inf")).to(tl.float32)
    x = tl.where(x != x, float("inf"), x)  # NaN ranks first, as in torch.argmax: never an invalid index
    if HAS_BAN:
        ban = tl.load(banned_ptr + offs, mask=m, other=0)
        x = tl.where(ban != 0, float("-inf"), x)
    v, i = tl.reduce((x, offs), 0, _argmax_combine)
    tl.store(val_ptr + row * NBLK + blk, v)
    tl.store(idx_ptr + row * NBLK + blk, i)


def argmax_final_kernel(
    val_ptr, idx_ptr, pos_ptr, tok_ptr, NBLK, st_b,
    BLOCK: tl.constexpr,
):
    """Second stage: the row's argmax from its blocks, written at ``tokens[row, pos + 1]``."""
    row = tl.program_id(0).to(tl.int64)
    offs = tl.arange(0, BLOCK)
    m = offs < NBLK
    v = tl.load(val_ptr + row * NBLK + offs, mask=m, other=float("-inf"))
    i = tl.load(idx_ptr + row * NBLK + offs, mask=m, other=2147483647)
    _, best = tl.reduce((v, i), 0, _argmax_combine)
    pos = tl.load(pos_ptr)
    tl.store(tok_ptr + row * st_b + pos + 1, best.to(tok_ptr.dtype.element_ty))


def _max2(a, b):
    return tl.maximum(a, b)


_max_combine = triton.runtime.jit.JITFunction(_max2)


def attn_decode_partial_kernel(
    q_ptr, k_ptr, v_ptr, valid_ptr, pos_ptr, o_ptr, m_ptr, l_ptr,
    KV, REP, D, scale,
    sq_b, sq_h, sk_b, sk_h, sk_l, sv_b, sv_h, sv_l, sval_b, so_b, so_h, so_s, sm_b, sm_h,
    BLOCK_R: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, DOT_PREC: tl.constexpr,
):
    """One decode token's attention over a static K/V cache, split along the keys
    (flash-decoding): program (batch x kv head, split) takes keys [split * BLOCK_N, ...) up to
    the token's own slot ``pos`` for the REP query heads sharing the kv head (query head =
    kv_head * REP + r), and writes its partial output, row max and row sum. Splits past
    ``pos`` do nothing (the combine reads only splits up to pos // BLOCK_N)."""
    pid = tl.program_id(0)
    split = tl.program_id(1)
    bidx = (pid // KV).to(tl.int64)
    kvh = pid % KV
    pos = tl.load(pos_ptr)
    start = split * BLOCK_N
    if start <= pos:
        offs_r = tl.arange(0, BLOCK_R)
        offs_n = start + tl.arange(0, BLOCK_N)
        offs_d = tl.arange(0, BLOCK_D)
        mask_r = offs_r < REP
        mask_d = offs_d < D
        heads = kvh * REP + offs_r
        q = tl.load(q_ptr + bidx * sq_b + heads[:, None] * sq_h + offs_d[None, :],
                    mask=mask_r[:, None] & mask_d[None, :], other=0.0)
        upto = offs_n <= pos
        ok = tl.load(valid_ptr + bidx * sval_b + offs_n, mask=upto, other=0) != 0
        ok = ok & upto
        k = tl.load(k_ptr + bidx * sk_b + kvh * sk_h + offs_n[:, None] * sk_l + offs_d[None, :],
                    mask=ok[:, None] & mask_d[None, :], other=0.0)
        sc = tl.dot(q, tl.trans(k), input_precision=DOT_PREC) * scale  # (BLOCK_R, BLOCK_N)
        sc = tl.where(ok[None, :], sc, float("-inf"))
        m = tl.reduce(sc, 1, _max_combine)
        m_safe = tl.where(m == float("-inf"), 0.0, m)
        pr = tl.exp(sc - m_safe[:, None])
        lsum = tl.reduce(pr, 1, _sum_combine)
        v = tl.load(v_ptr + bidx * sv_b + kvh * sv_h + offs_n[:, None] * sv_l + offs_d[None, :],
                    mask=ok[:, None] & mask_d[None, :], other=0.0)
        o = tl.dot(pr.to(v.dtype), v, input_precision=DOT_PREC)  # (BLOCK_R, BLOCK_D)
        tl.store(o_ptr + bidx * so_b + heads[:, None] * so_h + split * so_s + offs_d[None, :], o,
                 mask=mask_r[:, None] & mask_d[None, :])
        tl.store(m_ptr + bidx * sm_b + heads * sm_h + split, m, mask=mask_r)
        tl.store(l_ptr + bidx * sm_b + heads * sm_h + split, lsum, mask=mask_r)


def attn_decode_combine_kernel(
    o_ptr, m_ptr, l_ptr, pos_ptr, out_ptr, H, D,
    so_b, so_h, so_s, sm_b, sm_h, sout_b, sout_h,
    SPLIT_N: tl.constexpr, BLOCK_S: tl.constexpr, BLOCK_D: tl.constexpr,
):
    """Second stage of the split attention: per (batch, query head), the splits up to the
    token's slot weighted by exp(their max - the overall max), normalised by the weighted sums."""
    pid = tl.program_id(0)
    bidx = (pid // H).to(tl.int64)
    h = pid % H
    pos = tl.load(pos_ptr)
    nused = pos // SPLIT_N + 1
    offs_s = tl.arange(0, BLOCK_S)
    offs_d = tl.arange(0, BLOCK_D)
    mask_d = offs_d < D
    mrow = m_ptr + bidx * sm_b + h * sm_h
    big = tl.full((BLOCK_S,), float("-inf"), tl.float32)
    for s0 in range(0, nused, BLOCK_S):
        big = tl.maximum(big, tl.load(mrow + s0 + offs_s, mask=(s0 + offs_s) < nused, other=float("-inf")))
    M = tl.reduce(big, 0, _max_combine)
    acc = tl.full((BLOCK_D,), 0.0, tl.float32)
    den = tl.full((BLOCK_S,), 0.0, tl.float32)
    for s0 in range(0, nused, BLOCK_S):
        ms = (s0 + offs_s) < nused
        mv = tl.load(mrow + s0 + offs_s, mask=ms, other=float("-inf"))
        w = tl.where(ms & (mv > float("-inf")), tl.exp(mv - M), 0.0)
        lv = tl.load(l_ptr + bidx * sm_b + h * sm_h + s0 + offs_s, mask=ms, other=0.0)
        den += w * lv
        ov = tl.load(o_ptr + bidx * so_b + h * so_h + (s0 + offs_s)[:, None] * so_s + offs_d[None, :],
                     mask=ms[:, None] & mask_d[None, :], other=0.0)
        acc += tl.reduce(ov * w[:, None], 0, _sum_combine)
    out = acc / tl.reduce(den, 0, _sum_combine)
    tl.store(out_ptr + bidx * sout_b + h * sout_h + offs_d, out.to(out_ptr.dtype.element_ty), mask=mask_d)


def interpreting() -> bool:
    """True when Triton's CPU interpreter is asked for (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


_CACHE: dict[tuple[str, bool], Callable] = {}


def kernel(fn: Callable) -> Callable:
    """``fn`` as a launchable Triton kernel for the mode asked for now (GPU or interpreter)."""
    interp = interpreting()
    key = (fn.__name__, interp)
    k = _CACHE.get(key)
    if k is None:
        if interp:
            from triton.runtime.interpreter import InterpretedFunction
            k = InterpretedFunction(fn)
        else:
            k = triton.runtime.jit.JITFunction(fn)
        _CACHE[key] = k
    return k
