"""Host side of the Triton SSD kernels: checks, launch configuration, launches.

Shared by the exact backend (``ssd``) and the independent-chunks backend
(``ssd_independent``); they differ by one flag. Launch configurations are fixed per
shape class (no autotuning), so a new prompt length never triggers tuning or a new
compilation: the sequence length is a runtime argument of the kernel, not a constant.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ssmboard.errors import DeviceError, SpecError
from ssmboard.variants.triton import _kernels

_SUPPORTED = (torch.float32, torch.bfloat16, torch.float16)


def _next_pow2(v: int) -> int:
    return 1 << max(0, (int(v) - 1).bit_length())


def check_device(*tensors: torch.Tensor) -> None:
    """Raise DeviceError unless the kernels can run here (a CUDA GPU, or the interpreter)."""
    if _kernels.interpreting():
        return
    if not torch.cuda.is_available():
        raise DeviceError("the triton scan backends need a CUDA GPU and none is available; "
                          "run on a GPU machine, pick a PyTorch backend (reference, independent), "
                          "or set TRITON_INTERPRET=1 to run the kernels on the CPU interpreter (slow)")
    for t in tensors:
        if t is not None and t.device.type != "cuda":
            raise DeviceError(f"the triton scan backends need CUDA tensors, got one on {t.device}; "
                              "move the model and inputs to the GPU (or set TRITON_INTERPRET=1 for CPU)")


def _check_inputs(x, dt, A, B, C, D, dt_bias):
    if x.dim() != 4:
        raise ValueError(f"x must be (batch, length, heads, head_dim), got shape {tuple(x.shape)}")
    b, L, h, p = x.shape
    if B.dim() != 4 or B.shape != C.shape or tuple(B.shape[:2]) != (b, L):
        raise ValueError(f"B and C must both be (batch, length, groups, d_state) = ({b}, {L}, g, n); "
                         f"got {tuple(B.shape)} and {tuple(C.shape)}")
    g, n = B.shape[2], B.shape[3]
    if g < 1 or h % g:
        raise ValueError(f"heads ({h}) must be a multiple of groups ({g})")
    if tuple(dt.shape) != (b, L, h) or tuple(A.shape) != (h,):
        raise ValueError(f"dt must be ({b}, {L}, {h}) and A ({h},); got {tuple(dt.shape)} and {tuple(A.shape)}")
    if x.dtype not in _SUPPORTED:
        raise ValueError(f"x must be float32, bfloat16 or float16 for the triton backends, got {x.dtype}")
    if D is not None and tuple(D.shape) not in ((h,), (h, p)):
        raise ValueError(f"D must be ({h},) or ({h}, {p}), got {tuple(D.shape)}")
    if dt_bias is not None and tuple(dt_bias.shape) != (h,):
        raise ValueError(f"dt_bias must be ({h},), got {tuple(dt_bias.shape)}")
    return b, L, h, p, g, n


def _dot_precision(dtype: torch.dtype) -> str:
    # float32 inputs: full float32 products (tf32 would cost ~3e-4 of relative error);
    # bf16/fp16 inputs: the derived float32 operands go through tf32, finer than the inputs.
    return "ieee" if dtype == torch.float32 else "tf32"


def _limit_args(dt_limit) -> tuple[bool, float, float]:
    lo, hi = float(dt_limit[0]), float(dt_limit[1])
    has = lo > 0.0 or hi != math.inf
    return has, lo, (hi if hi != math.inf else 3.0e38)


def _scan_block_l(chunk_size: int, independent: bool, L: int) -> int:
    """Tokens per step of the kernel's walk along the sequence.

    The exact scan's result does not depend on it (32, with 64 channels a program, was
    fastest on an H200 for the Bamba-9B shape: benchmarks/NOTES-triton.md). Independent
    chunks zero the state at chunk boundaries, so the tile must divide chunk_size: the
    largest power of two dividing it, at most 32.
    """
    if independent:
        blk = chunk_size & -chunk_size  # largest power of two dividing chunk_size
        blk = min(blk, 32)
        if blk < 16:
            raise SpecError(f"triton-independent needs chunk_size to be a multiple of 16, got {chunk_size}; "
                            "use a chunk size such as 64, 128 or 256, or the PyTorch 'independent' backend")
        return blk
    return 32 if L > 16 else 16


@dataclass(frozen=True)
class ScanConfig:
    """How one scan is launched; chosen per shape class, never per sequence length alone."""
    BLOCK_L: int
    BLOCK_P: int
    num_warps: int
    num_stages: int
    LOWP: int  # bits: bf16/fp16 operands for derived products (1 within-block, 2 C·state, 4 update);
    # all three by default for bf16/fp16 inputs: 2.3e-3 relative error on Bamba's shape (the
    # peer's), against 1.7e-3 with none, at up to 2.7x the speed (NOTES-triton.md)
    SEG: int  # tokens per segment (a multiple of BLOCK_L and BLOCK_L1); >= L means one fused launch
    BLOCK_L1: int = 0  # tile of the segment-state pass (MODE 1) of the segmented exact scan
    num_warps1: int = 0


# Independent chunks: programs wanted in flight (segments of whole chunks cost nothing extra).
_TARGET_PROGRAMS = 8 * 132
# The exact scan is split into segments (two launches: the segments' own end states, then
# the outputs) only when one program per (batch, head, channel block) leaves the GPU short of
# programs: fewer than _SEG_BELOW per multiprocessor. The segment count then minimises a model
# of the two passes' time (_segment_cost), with at least _MIN_SEG tokens a segment (below
# 2 * _MIN_SEG tokens the second launch costs the host more than it saves the GPU).
_SEG_BELOW = 2
_MIN_SEG = 1536
_MAX_SEG = 16
# Programs of the scan resident per multiprocessor (registers: 2 for the Bamba-9B tile).
_RESIDENT = 2
# Tile and warps of the segment-state pass (state update only, no within-tile product, so a
# longer tile than the output pass).
_BLOCK_L1 = 128
_WARPS1 = 4
# The time model, in microseconds: per wave of programs, per tile of the output pass
# (BLOCK_L tokens) and of the state pass (BLOCK_L1 tokens); per earlier segment folded into a
# program's entering state; per extra launch. Fitted to one H200 run of the Bamba-9B shape
# (benchmarks/NOTES-triton.md, 2026-12-01); only their ratios matter for the choice.
_COST_TILE2 = 2.15
_COST_TILE1 = 2.4
_COST_FOLD = 1.5
_COST_LAUNCH = 5.0


def _segment_cost(nseg: int, base: int, L: int, block_l: int, block_l1: int, sms: int) -> float:
    """Modelled time of the exact scan in ``nseg`` segments of ``base`` programs each."""
    slots = _RESIDENT * sms
    seg = triton_cdiv(L, nseg)
    t = triton_cdiv(base * nseg, slots) * triton_cdiv(seg, block_l) * _COST_TILE2
    if nseg > 1:
        t += triton_cdiv(base * (nseg - 1), slots) * triton_cdiv(seg, block_l1) * _COST_TILE1
        t += (nseg - 1) * _COST_FOLD + _COST_LAUNCH
    return t


_SM_COUNT: dict = {}


def _multiprocessors(device) -> int:
    """Multiprocessors of ``device`` (132 on an H200; also the interpreter's stand-in)."""
    if _kernels.interpreting() or device is None or getattr(device, "type", "cpu") != "cuda":
        return 132
    idx = device.index if device.index is not None else torch.cuda.current_device()
    n = _SM_COUNT.get(idx)
    if n is None:
        n = _SM_COUNT[idx] = int(torch.cuda.get_device_properties(idx).multi_processor_count)
    return n


def _scan_config(b: int, L: int, h: int, p: int, n: int, chunk_size: int, independent: bool,
                 low_precision_input: bool, override: dict | None = None, sms: int = 132) -> ScanConfig:
    """Launch configuration by shape class (batch x heads x head_dim, d_state); L only sets
    the number of segments (a runtime argument and a grid size), so no new length ever
    recompiles or re-tunes. ``override`` (benchmarks, tests) may set any field, or NSEG."""
    o = dict(override or {})
    block_l = o.get("BLOCK_L") or _scan_block_l(chunk_size, independent, L)
    if independent and chunk_size % block_l:
        raise SpecError(f"BLOCK_L {block_l} must divide chunk_size {chunk_size} for independent chunks")
    block_p = o.get("BLOCK_P") or min(64, max(16, _next_pow2(p)))
    num_warps = o.get("num_warps") or 4
    num_stages = o.get("num_stages") or 2
    lowp = o.get("LOWP", 7) if low_precision_input else 0
    warps1 = o.get("num_warps1") or _WARPS1
    if independent:
        block_l1, unit = block_l, chunk_size
    else:
        block_l1 = o.get("BLOCK_L1") or max(block_l, _BLOCK_L1)
        if o.get("SEG") and o["SEG"] % block_l1:
            block_l1 = block_l  # an explicit segment length is kept; the state pass then walks it in BLOCK_L
        unit = max(block_l, block_l1)
    base = b * h * triton_cdiv(p, block_p)  # programs of one segment
    if o.get("SEG"):
        seg = o["SEG"]
    elif o.get("NSEG"):
        seg = triton_cdiv(L, o["NSEG"])
    elif independent or o.get("AUTO_SEG"):
        # independent chunks: segments of whole chunks cost nothing extra, so spread them
        nseg = max(1, min(triton_cdiv(_TARGET_PROGRAMS, base), triton_cdiv(L, o.get("MIN_SEG", 256))))
        seg = triton_cdiv(L, nseg)
    elif base < _SEG_BELOW * sms:
        # exact scan, few programs: segments (a state pass first) for more programs in flight;
        # the count with the least modelled time (a smaller one unless 3% faster)
        best, best_t = 1, _segment_cost(1, base, L, block_l, block_l1, sms)
        for k in range(2, max(1, min(_MAX_SEG, L // _MIN_SEG)) + 1):
            t = _segment_cost(k, base, L, block_l, block_l1, sms)
            if t < 0.97 * best_t:
                best, best_t = k, t
        seg = triton_cdiv(L, best)
    else:
        seg = L
    seg = max(unit, triton_cdiv(seg, unit) * unit)
    return ScanConfig(block_l, block_p, num_warps, num_stages, lowp, seg, block_l1, warps1)


def triton_cdiv(a: int, b: int) -> int:
    return -(-a // b)


def run_scan(x, dt, A, B, C, *, chunk_size, D=None, dt_bias=None, dt_softplus=True,
             dt_limit=(0.0, float("inf")), initial_state=None, return_final_state=False,
             independent=False, config=None):
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise SpecError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    b, L, h, p, g, n = _check_inputs(x, dt, A, B, C, D, dt_bias)
    check_device(x, dt, A, B, C, D, dt_bias, initial_state)
    if B.dtype != C.dtype:
        C = C.to(B.dtype)
    if B.dtype != x.dtype and x.dtype == torch.float32:
        B, C = B.float(), C.float()
    if initial_state is not None and tuple(initial_state.shape) != (b, h, p, n):
        raise ValueError(f"initial_state must be ({b}, {h}, {p}, {n}), got {tuple(initial_state.shape)}")

    y = torch.empty((b, L, h, p), dtype=x.dtype, device=x.device)
    final = torch.empty((b, h, p, n), dtype=torch.float32, device=x.device) if return_final_state else None
    if L == 0:
        if final is not None:
            final.copy_(initial_state if initial_state is not None else torch.zeros_like(final))
            return y, final
        return y

    cfg = _scan_config(b, L, h, p, n, chunk_size, independent,
                       x.dtype != torch.float32 and B.dtype == x.dtype, config, sms=_multiprocessors(x.device))
    nseg = triton_cdiv(L, cfg.SEG)
    block_n = max(16, _next_pow2(n))
    has_limit, lo, hi = _limit_args(dt_limit)
    Dt = D if D is not None else A
    sD = (Dt.stride(0), Dt.stride(1) if (D is not None and D.dim() == 2) else 0)
    segmented = nseg > 1 and not independent
    if initial_state is not None and segmented:
        initial_state = initial_state.contiguous()
    init = initial_state if initial_state is not None else y
    fin = final if final is not None else y
    si = initial_state.stride() if initial_state is not None else (0, 0, 0, 0)
    sf = final.stride() if final is not None else (0, 0, 0, 0)
    if segmented:
        seg_buf = torch.empty((b, nseg, h, p, n), dtype=torch.float32, device=x.device)
        dec = torch.empty((b * h, nseg), dtype=torch.float32, device=x.device)
    else:
        seg_buf, dec = y.new_empty((1, 1, 1, 1, 1), dtype=torch.float32), A
    kern = _kernels.kernel(_kernels.ssd_scan_kernel)
    common = (x, dt, A, B, C, Dt, dt_bias if dt_bias is not None else A, init, y, fin, seg_buf, dec,
              L, h, p, n, h // g, chunk_size, cfg.SEG, nseg, lo, hi,
              *x.stride(), *dt.stride(), *B.stride(), *C.stride(), *sD, *y.stride(), *si, *sf, *seg_buf.stride())
    flags = dict(BLOCK_P=cfg.BLOCK_P, BLOCK_N=block_n,
                 HAS_D=D is not None, HAS_BIAS=dt_bias is not None, SOFTPLUS=bool(dt_softplus),
                 HAS_LIMIT=has_limit, HAS_INIT=initial_state is not None, STORE_FINAL=final is not None,
                 INDEPENDENT=bool(independent), LOWP=cfg.LOWP, DOT_PREC=_dot_precision(x.dtype),
                 CB_UPCAST=_kernels.interpreting() and B.dtype == torch.bfloat16, num_stages=cfg.num_stages)
    grid = (b * h, triton_cdiv(p, cfg.BLOCK_P), nseg)
    if not segmented:
        kern[grid](*common, MODE=0, BLOCK_L=cfg.BLOCK_L, num_warps=cfg.num_warps, **flags)
    else:
        # 1: own end states and total decays of segments 0..nseg-2 (the last one's is never needed)
        kern[(grid[0], grid[1], nseg - 1)](*common, MODE=1, BLOCK_L=cfg.BLOCK_L1, num_warps=cfg.num_warps1,
                                           **flags)
        # 2: outputs, every segment from its entering state; the last one stores the final state
        kern[grid](*common, MODE=2, BLOCK_L=cfg.BLOCK_L, num_warps=cfg.num_warps, **flags)
    return (y, final) if return_final_state else y


_NO_LIMIT = (0.0, float("inf"))


class _StepPlan:
    """One decode-step launch, minus its tensors: everything that depends only on shapes,
    strides, dtypes, devices and flags, checked and computed once per such key.

    ``fast`` (GPU only): the compiled kernel's own launcher, taken from the first launch
    that went through Triton's ``JITFunction.run``; later calls hand it the arguments
    directly and skip Triton's per-call binding, specialisation and cache-key work
    (about 30 us of host time a call on an H200 host, benchmarks/NOTES-triton.md).
    """
    __slots__ = ("grid", "tail", "consts", "launch_kw", "y_shape", "kern", "fast")

    def __init__(self, grid, tail, consts, launch_kw, y_shape, kern):
        self.grid, self.tail, self.consts, self.launch_kw = grid, tail, consts, launch_kw
        self.y_shape, self.kern, self.fast = y_shape, kern, None


_STEP_PLANS: dict = {}
_STEP_PLANS_MAX = 64


def _step_plan(state, x, dt, A, B, C, D, dt_bias, dt_softplus, dt_limit) -> _StepPlan:
    """Check one decode step's inputs and work out its launch (no tensor is kept)."""
    if x.dim() != 3 or state.dim() != 4:
        raise ValueError(f"step needs x (batch, heads, head_dim) and state (batch, heads, head_dim, d_state); "
                         f"got {tuple(x.shape)} and {tuple(state.shape)}")
    b, h, p = x.shape
    if B.dim() != 3:
        raise ValueError(f"step needs B and C (batch, groups, d_state), got {tuple(B.shape)}")
    g, n = B.shape[1], B.shape[2]
    if tuple(state.shape) != (b, h, p, n) or tuple(C.shape) != tuple(B.shape) or tuple(dt.shape) != (b, h) \
            or B.shape[0] != b or tuple(A.shape) != (h,):
        raise ValueError(f"step shapes disagree: state {tuple(state.shape)}, x {tuple(x.shape)}, "
                         f"dt {tuple(dt.shape)}, A {tuple(A.shape)}, B {tuple(B.shape)}, C {tuple(C.shape)}")
    if g < 1 or h % g:
        raise ValueError(f"heads ({h}) must be a multiple of groups ({g})")
    if D is not None and tuple(D.shape) not in ((h,), (h, p)):
        raise ValueError(f"D must be ({h},) or ({h}, {p}), got {tuple(D.shape)}")
    if dt_bias is not None and tuple(dt_bias.shape) != (h,):
        raise ValueError(f"dt_bias must be ({h},), got {tuple(dt_bias.shape)}")
    if state.dtype != torch.float32:
        raise ValueError(f"the triton decode step keeps the state in float32, got {state.dtype}")
    check_device(state, x, dt, A, B, C, D, dt_bias)
    block_n = max(16, _next_pow2(n))
    block_p = max(1, min(_next_pow2(p), 8192 // block_n))
    if b * h * triton_cdiv(p, block_p) < 1024:  # small batch: more, smaller programs
        block_p = max(1, block_p // 4)
    has_limit, lo, hi = _limit_args(dt_limit)
    Dt = D if D is not None else A
    sD = (Dt.stride(0), Dt.stride(1) if (D is not None and D.dim() == 2) else 0)
    sy = (h * p, p, 1)  # y is allocated contiguous per call
    tail = (h, p, n, h // g, lo, hi, *state.stride(), *x.stride(), *dt.stride(), *B.stride(), *C.stride(), *sD, *sy)
    consts = (block_p, block_n, D is not None, dt_bias is not None, bool(dt_softplus), has_limit)
    launch_kw = dict(BLOCK_P=block_p, BLOCK_N=block_n, HAS_D=D is not None, HAS_BIAS=dt_bias is not None,
                     SOFTPLUS=bool(dt_softplus), HAS_LIMIT=has_limit,
                     num_warps=4 if block_p * block_n <= 4096 else 8)
    return _StepPlan((b * h, triton_cdiv(p, block_p)), tail, consts, launch_kw, (b, h, p),
                     _kernels.kernel(_kernels.ssd_step_kernel))


def _fast_launcher(compiled):
    """(run, function, packed metadata, current-device fn, current-stream fn, runtime knobs) of a
    compiled kernel, for launching it without ``JITFunction.run``; None where this Triton lays
    its objects out otherwise (then every call takes the ordinary path)."""
    try:
        from triton.runtime import driver
        active = driver.active
        run = compiled.run  # loads the module on first use
        fn, md = compiled.function, compiled.packed_metadata
        get_dev, get_stream = active.get_current_device, active.get_current_stream
        knobs = getattr(getattr(triton_module(), "knobs", None), "runtime", None)
        if knobs is None:
            return None
        return (run, fn, md, get_dev, get_stream, knobs, compiled, get_dev())
    except Exception:  # noqa: BLE001 - any other layout: keep Triton's own launch path
        return None


def triton_module():
    import triton
    return triton


def run_step(state, x, dt, A, B, C, *, D=None, dt_bias=None, dt_softplus=True, dt_limit=_NO_LIMIT):
    """One decode token; ``state`` (b, h, p, n) float32 is updated in place.

    Host overhead matters here (one token of one layer is a few microseconds of GPU
    work), so the checks and launch arguments are cached per key of shapes, strides,
    dtypes, devices and flags, and on a GPU the compiled kernel is launched directly
    once Triton has compiled and launched it once (``_StepPlan``)."""
    try:
        key = (_kernels.interpreting(), state.shape, state.stride(), state.dtype, state.device,
               x.shape, x.stride(), x.dtype, x.device, dt.shape, dt.stride(), dt.dtype, dt.device,
               A.shape, A.stride(), A.dtype, A.device, B.shape, B.stride(), B.dtype, B.device,
               C.shape, C.stride(), C.dtype, C.device,
               None if D is None else (D.shape, D.stride(), D.dtype, D.device),
               None if dt_bias is None else (dt_bias.shape, dt_bias.stride(), dt_bias.dtype, dt_bias.device),
               dt_softplus, dt_limit)
        plan = _STEP_PLANS.get(key)
    except (AttributeError, TypeError):  # not tensors, or an unhashable option: no caching
        key = plan = None
    if plan is None:
        plan = _step_plan(state, x, dt, A, B, C, D, dt_bias, dt_softplus, dt_limit)
        if key is not None:
            if len(_STEP_PLANS) >= _STEP_PLANS_MAX:
                _STEP_PLANS.clear()
            _STEP_PLANS[key] = plan
    y = torch.empty(plan.y_shape, dtype=x.dtype, device=x.device)
    Dt = D if D is not None else A
    bias = dt_bias if dt_bias is not None else A
    fast = plan.fast
    aligned = not ((state.data_ptr() | x.data_ptr() | dt.data_ptr() | A.data_ptr() | B.data_ptr()
                    | C.data_ptr() | Dt.data_ptr() | bias.data_ptr()) & 15)
    if fast is not None and aligned:
        run, fn, md, get_dev, get_stream, knobs, compiled, dev = fast
        if get_dev() == dev:
            stream = get_stream(dev)
            grid = plan.grid
            args = (state, x, dt, A, B, C, Dt, bias, y, *plan.tail, *plan.consts)
            enter, leave = knobs.launch_enter_hook, knobs.launch_exit_hook
            meta = None
            if enter is not None and getattr(enter, "calls", True):  # a profiler's hooks want metadata
                meta = compiled.launch_metadata(grid, stream, *args)
            run(grid[0], grid[1], 1, stream, fn, md, meta, enter, leave, *args)
            return y
    compiled = plan.kern[plan.grid](state, x, dt, A, B, C, Dt, bias, y, *plan.tail, **plan.launch_kw)
    if fast is None and aligned and not _kernels.interpreting() and compiled is not None:
        plan.fast = _fast_launcher(compiled)
    return y
