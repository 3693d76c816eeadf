#!/usr/bin/env python3
"""Time, memory and accuracy of the Triton SSD kernels on a GPU, beside mamba_ssm's.

Shapes: Bamba-9B's mixer (h=128, p=64, n=128, g=1, bfloat16) at b x L in {1x1024,
1x2048, 1x8192, 1x32768, 8x8192} with chunk 256, plus chunk 64 and 128 at 1x2048; then
the decode step at batch 1, 8, 64, 256 (float32 state).

Per shape: median time by CUDA events, twice: ``ms`` from triton.testing.do_bench (the
L2 is flushed before each call, and the flush keeps the GPU busy while the host
launches, so host overhead is mostly hidden) and ``ms_loop`` (events around a loop of
back-to-back calls: what a caller sees, host overhead included when the host is the
bottleneck). Peak extra memory: the allocator's max allocated above what was allocated
before the call (the output included). Relative error: ‖y − ref‖/‖ref‖ against a
float64 chunked recurrence on the GPU over the same bf16 inputs, over the whole sequence
(for 8x8192 on batch row 0). Floors: bytes in and out once at the copy bandwidth, and the
chunked scan's matrix work (C·B once per group and chunk) at the matrix rate.

Decode step: ``wall us/call`` = wall time per call over 2000 back-to-back calls,
CUDA-synchronised at both ends (what a decode loop pays); ``do_bench`` = GPU time with the
L2 flushed before each call; ``graph`` = GPU time per call replaying 50 calls captured in
a CUDA graph (no host overhead); ``host`` = host time per call without synchronisation;
``jit-path`` = ours with the cached launch plans dropped before every call (the launch
path of 2026-11-28: checks and Triton's JITFunction.run on every call).

The peer (``mamba_chunk_scan_combined`` and ``selective_state_update`` from the
mamba-ssm sdist) is used when ``--peer DIR`` holds ``mamba_ssm/ops/triton/*.py`` under
an empty ``mamba_ssm/__init__.py`` (benchmarks/NOTES-triton.md says how to lay it out).

    PYTHONPATH=. python3 scripts/bench_ssd.py --peer .peer --out $OUT/ssd.json
    PYTHONPATH=. python3 scripts/bench_ssd.py --peer .peer --sweep --budget 262 --out $OUT/ssd.json
    PYTHONPATH=. python3 scripts/bench_ssd.py --check          # correctness only, quick
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import triton  # noqa: E402
import triton.testing  # noqa: E402

from ssmboard.variants.triton import _launch, ssd, ssd_independent  # noqa: E402

BW = 4.25e12  # copy bandwidth, bytes/s (anchors.md; re-measured in each run)
MM = 790e12  # bf16 matrix rate, FLOP/s (anchors.md)
H, P, N, G = 128, 64, 128, 1
SHAPES = [(1, 1024, 256), (1, 2048, 256), (1, 8192, 256), (1, 32768, 256), (8, 8192, 256),
          (1, 2048, 64), (1, 2048, 128)]
STEP_BATCHES = [1, 8, 64, 256]


T_START = time.perf_counter()


def log(*a):
    print(*a, flush=True)


# --------------------------------------------------------------------------- inputs, reference
def make_inputs(b, L, h=H, p=P, g=G, n=N, dtype=torch.bfloat16, seed=0, device="cuda"):
    gen = torch.Generator(device=device).manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=gen, device=device)
    return dict(
        x=r(b, L, h, p).to(dtype), dt=(r(b, L, h) - 1.0).to(dtype),
        A=-torch.exp(torch.rand(h, generator=gen, device=device) * 2.0),
        B=r(b, L, g, n).to(dtype), C=r(b, L, g, n).to(dtype),
        D=r(h), dt_bias=r(h) * 0.5,
    )


@torch.no_grad()
def ref_scan64(x, dt, A, B, C, D=None, dt_bias=None, chunk=64, **_):
    """The exact scan in float64 on the GPU, chunk by chunk (fast enough for L <= 8192)."""
    b, L, h, p = x.shape
    g, n = B.shape[2], B.shape[3]
    x, B, C, A = x.double(), B.double(), C.double(), A.double()
    dt = dt.double() + (dt_bias.double() if dt_bias is not None else 0.0)
    dt = F.softplus(dt)
    state = torch.zeros(b, h, p, n, dtype=torch.float64, device=x.device)
    ys = []
    for s in range(0, L, chunk):
        xs, dts = x[:, s:s + chunk], dt[:, s:s + chunk]
        Bh = B[:, s:s + chunk].repeat_interleave(h // g, dim=2)
        Ch = C[:, s:s + chunk].repeat_interleave(h // g, dim=2)
        cs = torch.cumsum(dts * A, dim=1)  # (b, l, h)
        l = xs.shape[1]
        seg = cs[:, :, None, :] - cs[:, None, :, :]  # (b, t, s, h)
        causal = torch.ones(l, l, dtype=torch.bool, device=x.device).tril()[None, :, :, None]
        W = torch.einsum("bthn,bshn->btsh", Ch, Bh) * torch.exp(seg.masked_fill(~causal, -math.inf))
        W = W * dts[:, None, :, :]
        y = torch.einsum("btsh,bshp->bthp", W, xs)
        y = y + torch.einsum("bthn,bhpn->bthp", Ch, state) * torch.exp(cs)[..., None]
        ys.append(y)
        w_end = torch.exp(cs[:, -1:, :] - cs) * dts  # (b, l, h)
        state = state * torch.exp(cs[:, -1])[:, :, None, None] + torch.einsum("bshp,bshn->bhpn", xs * w_end[..., None], Bh)
    y = torch.cat(ys, dim=1)
    if D is not None:
        y = y + x * (D.double()[:, None] if D.dim() == 1 else D.double())
    return y, state


def rel(a, ref):
    a = a.double()
    if not torch.isfinite(a).all():
        return float("nan")
    return ((a - ref).norm() / ref.norm()).item()


# --------------------------------------------------------------------------- timing, memory
def time_ms(fn):
    return triton.testing.do_bench(fn, warmup=25, rep=100, return_mode="median")


def loop_ms(fn, est_ms, reps=5):
    n = int(min(200, max(3, 20.0 / max(est_ms, 1e-3))))
    fn()
    torch.cuda.synchronize()
    out = []
    for _ in range(reps):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        for _ in range(n):
            fn()
        e.record()
        torch.cuda.synchronize()
        out.append(s.elapsed_time(e) / n)
    return statistics.median(out)


def host_us(fn, n=200):
    """Host time per call with no synchronisation: the launch overhead a decode loop pays."""
    fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    t1 = time.perf_counter()
    torch.cuda.synchronize()
    return (t1 - t0) / n * 1e6


def peak_extra_mib(fn):
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    out = fn()
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() - base
    del out
    return peak / 2**20


def warm_gpu(seconds=1.5):
    """Matrix products for ``seconds`` so that the first timed shape runs at working clocks
    (an idle H200 reads 345 MHz; the first row of the 2026-12-01 run came out 1.8x slow)."""
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    t = time.perf_counter()
    while time.perf_counter() - t < seconds:
        for _ in range(10):
            a @ a
        torch.cuda.synchronize()


def copy_bandwidth():
    a = torch.empty(2**30 // 2, dtype=torch.float32, device="cuda").normal_()  # 2 GiB
    b = torch.empty_like(a)
    ms = time_ms(lambda: b.copy_(a))
    del a, b
    return 2 * 2**31 / (ms * 1e-3)


# --------------------------------------------------------------------------- peer
def load_peer(path):
    if not path:
        return None, None, "not asked for (--peer)"
    sys.path.insert(0, str(Path(path).resolve()))
    try:
        from mamba_ssm.ops.triton.ssd_combined import mamba_chunk_scan_combined
    except Exception as e:  # noqa: BLE001 - report why, run without the peer
        return None, None, f"import failed: {e!r}"
    try:
        from mamba_ssm.ops.triton.selective_state_update import selective_state_update
    except Exception as e:  # noqa: BLE001
        selective_state_update = None
        log("peer selective_state_update import failed:", repr(e))
    return mamba_chunk_scan_combined, selective_state_update, "mamba-ssm 2.3.2.post1 (sdist Triton files)"


# --------------------------------------------------------------------------- floors
def floors(b, L, chunk, h=H, p=P, g=G, n=N, esize=2):
    io = b * L * (2 * h * p + h + 2 * g * n) * esize  # x, y, dt, B, C
    c = math.ceil(L / chunk)
    flops = b * c * (2 * chunk * chunk * n * g + h * (2 * chunk * chunk * p + 4 * chunk * n * p))
    return io / BW * 1e3, flops / MM * 1e3, io, flops


# --------------------------------------------------------------------------- modes
def run_check():
    """Correctness on the GPU: small shapes against the float64 recurrence, then Bamba's shape."""
    from ssmboard.variants.scans import independent as torch_ind, sequential
    ok = True
    torch.manual_seed(0)
    for dtype, tol in ((torch.float32, 1e-4), (torch.bfloat16, 1e-2), (torch.float16, 5e-3)):
        for (b, L, h, p, g, n, chunk) in ((2, 77, 4, 32, 2, 32, 32), (1, 1, 4, 64, 1, 128, 256),
                                          (2, 200, 8, 48, 4, 24, 64), (1, 130, 4, 64, 1, 128, 64)):
            inp = make_inputs(b, L, h, p, g, n, dtype=dtype, seed=L)
            init = torch.randn(b, h, p, n, device="cuda")
            y, fs = ssd.scan(**inp, chunk_size=chunk, initial_state=init, return_final_state=True,
                             dt_limit=(0.001, 5.0))
            yr, fr = sequential.scan(**inp, initial_state=init, return_final_state=True, dt_limit=(0.001, 5.0))
            e1, e2 = rel(y, yr.double()), rel(fs, fr.double())
            yi, fi = ssd_independent.scan(**inp, chunk_size=chunk, initial_state=init, return_final_state=True)
            d64 = {k: v.double() for k, v in inp.items()}
            yt, ft = torch_ind.scan(**d64, chunk_size=chunk, initial_state=init.double(), return_final_state=True)
            e3, e4 = rel(yi, yt), rel(fi, ft)
            st, st64 = init.clone(), init.double().clone()
            tok = {k: (v[:, 0] if k in ("x", "dt", "B", "C") else v) for k, v in inp.items()}
            e5 = rel(ssd.step(st, **tok), sequential.step(st64, **tok).double())
            e6 = rel(st, st64)
            good = max(e1, e2, e3, e4, e5, e6) <= tol
            ok &= good
            log(f"check {str(dtype):15s} b{b} L{L} h{h} p{p} g{g} n{n} c{chunk}: scan {e1:.1e} final {e2:.1e} "
                f"indep {e3:.1e}/{e4:.1e} step {e5:.1e}/{e6:.1e} {'ok' if good else 'FAIL'}")
    # the segment-parallel exact scan (three launches), forced at small shapes with ragged
    # lengths, groups, initial and final states; the segment-state pass on its own tile
    for dtype, tol in ((torch.float32, 1e-4), (torch.bfloat16, 1e-2)):
        for (b, L, h, p, g, n, cfg) in ((1, 1500, 4, 64, 1, 128, dict(NSEG=3)),
                                        (2, 1100, 4, 32, 2, 64, dict(NSEG=4, BLOCK_L1=32)),
                                        (1, 777, 8, 64, 2, 128, dict(SEG=96, BLOCK_L=32))):
            inp = make_inputs(b, L, h, p, g, n, dtype=dtype, seed=L)
            init = torch.randn(b, h, p, n, device="cuda")
            y, fs = _launch.run_scan(**inp, chunk_size=256, initial_state=init, return_final_state=True,
                                     config=cfg)
            yr, fr = sequential.scan(**inp, initial_state=init, return_final_state=True)
            e1, e2 = rel(y, yr.double()), rel(fs, fr.double())
            good = max(e1, e2) <= tol
            ok &= good
            log(f"check segmented {str(dtype):15s} b{b} L{L} h{h} p{p} g{g} n{n} {cfg}: scan {e1:.1e} "
                f"final {e2:.1e} {'ok' if good else 'FAIL'}")
    # the decode step's cached direct launch: several steps in a row against float64
    for b in (1, 3):
        inp = make_inputs(b, 5, 8, 64, 2, 128, seed=b)
        st = torch.randn(b, 8, 64, 128, device="cuda")
        st64 = st.double().clone()
        errs = []
        for t in range(5):
            tok = {k: (v[:, t] if k in ("x", "dt", "B", "C") else v) for k, v in inp.items()}
            errs.append(rel(ssd.step(st, **tok), sequential.step(st64, **tok).double()))
        e = max(max(errs), rel(st, st64))
        good = e <= 1e-2
        ok &= good
        log(f"check step x5 b{b}: {e:.1e} {'ok' if good else 'FAIL'}")
    inp = make_inputs(1, 1024, seed=1)
    y = ssd.scan(**inp, chunk_size=256)
    yr, _ = ref_scan64(**inp)
    e = rel(y, yr)
    ok &= e <= 3e-3
    log(f"check bamba 1x1024 bf16: rel err {e:.2e} {'ok' if e <= 3e-3 else 'FAIL'}")
    return ok


def bench_scan(peer_scan, sizes, results):
    for (b, L, chunk) in sizes:
        inp = make_inputs(b, L, seed=b * L + chunk)
        row = dict(b=b, L=L, chunk=chunk)
        bw_ms, mm_ms, io, flops = floors(b, L, chunk)
        row.update(floor_bw_ms=bw_ms, floor_matrix_ms=mm_ms, bytes=io, flops=flops)
        # reference over the whole sequence (segmented launches must be checked past their
        # first segment), on batch row 0 where b > 1
        rb, rL = (1 if b > 1 else b), L
        sub = {k: (v[:rb, :rL] if v.dim() >= 3 else v) for k, v in inp.items()}
        yref, _ = ref_scan64(**sub)
        row["err_on"] = f"{rb}x{rL}"
        fns = {"triton": lambda: ssd.scan(**inp, chunk_size=chunk),
               "triton-independent": lambda: ssd_independent.scan(**inp, chunk_size=chunk)}
        if peer_scan is not None:
            fns["peer"] = lambda: peer_scan(inp["x"], inp["dt"], inp["A"], inp["B"], inp["C"], chunk,
                                            D=inp["D"], dt_bias=inp["dt_bias"], dt_softplus=True)
        for name, fn in fns.items():
            t0 = time.perf_counter()
            y = fn()
            torch.cuda.synchronize()
            first = time.perf_counter() - t0
            err = rel(y[:rb, :rL], yref) if name != "triton-independent" else None
            del y
            mem = peak_extra_mib(fn)
            ms = time_ms(fn)
            ms_loop = loop_ms(fn, ms)
            row[name] = dict(ms=ms, ms_loop=ms_loop, mem_mib=mem, rel_err=err, first_call_s=first)
        if "peer" in row:
            for k in ("ms", "ms_loop", "mem_mib"):
                row[f"ratio_{k}_vs_peer"] = row["triton"][k] / row["peer"][k]
        row["ratio_vs_bw_floor"] = row["triton"]["ms"] / bw_ms
        row["ratio_vs_matrix_floor"] = row["triton"]["ms"] / mm_ms
        results["scan"].append(row)
        del inp, yref
        torch.cuda.empty_cache()
        log(fmt_scan_row(row))


def wall_us(fn, n=2000):
    """Wall time per call over n back-to-back calls, CUDA-synchronised at both ends: what a
    decode loop pays per step (host overhead included whenever the host is the bottleneck)."""
    for _ in range(20):
        fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - t0) / n * 1e6


def graph_us(fn, n=50, reps=20):
    """GPU time per call with no host overhead: n calls captured in a CUDA graph, replayed."""
    try:
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            for _ in range(3):
                fn()
        torch.cuda.current_stream().wait_stream(s)
        torch.cuda.synchronize()
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            for _ in range(n):
                fn()
        g.replay()
        torch.cuda.synchronize()
        e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        e0.record()
        for _ in range(reps):
            g.replay()
        e1.record()
        torch.cuda.synchronize()
        return e0.elapsed_time(e1) * 1e3 / (n * reps)
    except Exception as e:  # noqa: BLE001 - a result too
        log("graph capture failed:", repr(e)[:200])
        return None


def _jit_path(fn):
    """fn with the decode step's cached launch plans dropped before each call: every call
    then checks its inputs and launches through Triton's JITFunction.run (the launch path of
    2026-11-28)."""
    def call():
        _launch._STEP_PLANS.clear()
        return fn()
    return call


def bench_step(peer_ssu, results, batches=STEP_BATCHES):
    for b in batches:
        inp = make_inputs(b, 1, seed=b)
        tok = {k: (v[:, 0] if k in ("x", "dt", "B", "C") else v) for k, v in inp.items()}
        state = torch.randn(b, H, P, N, device="cuda")
        sbytes = 2 * state.numel() * 4
        row = dict(batch=b, state_bytes_rw=sbytes, floor_us=sbytes / BW * 1e6)
        fns = {"triton": lambda: ssd.step(state, **tok)}
        if b == 1:
            fns["triton-jit-path"] = _jit_path(fns["triton"])
        if peer_ssu is not None:
            A3 = tok["A"][:, None, None].expand(H, P, N)
            dt3 = tok["dt"][:, :, None].expand(b, H, P)
            D2 = tok["D"][:, None].expand(H, P)
            bias2 = tok["dt_bias"][:, None].expand(H, P)
            fns["peer"] = lambda: peer_ssu(state, tok["x"], dt3, A3, tok["B"], tok["C"], D=D2,
                                           dt_bias=bias2, dt_softplus=True)
        # correctness of ours on this shape, against float64, over 3 steps (the first call
        # launches through Triton's JIT, the later ones through the cached direct launch)
        from ssmboard.variants.scans import sequential
        s64 = state.double().clone()
        st = state.clone()
        errs = [rel(ssd.step(st, **tok), sequential.step(s64, **tok).double()) for _ in range(3)]
        row["rel_err"] = max(errs)
        row["state_rel_err"] = rel(st, s64)
        for name, fn in fns.items():
            ms = time_ms(fn)
            ms_loop = loop_ms(fn, ms)
            w = wall_us(fn)
            row[name] = dict(us=ms * 1e3, us_loop=ms_loop * 1e3, bw_fraction=sbytes / (ms * 1e-3) / BW,
                             bw_fraction_loop=sbytes / (ms_loop * 1e-3) / BW, host_us=host_us(fn),
                             wall_us=w, bw_fraction_wall=sbytes / (w * 1e-6) / BW,
                             gpu_us_graph=graph_us(fn) if name != "triton-jit-path" else None)
        if b == 1:  # what one launch costs the host, for scale
            row["host_us_torch_add"] = host_us(lambda: state.add_(0.0))
            row["wall_us_torch_add"] = wall_us(lambda: state.add_(0.0))
        results["step"].append(row)
        log(fmt_step_row(row))


def sweep(sizes, configs, results, deadline=float("inf")):
    for (b, L, chunk) in sizes:
        if time.perf_counter() > deadline:
            log("sweep: out of time")
            break
        inp = make_inputs(b, L, seed=7)
        # error over the whole sequence (segments past the first must be checked), batch row 0
        yref, _ = ref_scan64(**{k: (v[:1] if v.dim() >= 3 else v) for k, v in inp.items()}, chunk=256)
        for cfg in configs:
            if time.perf_counter() > deadline:
                break
            fn = lambda: _launch.run_scan(**inp, chunk_size=chunk, config=cfg)
            try:
                err = rel(fn()[:1], yref)
                ms = time_ms(fn)
            except Exception as e:  # noqa: BLE001 - a config that does not compile is a result too
                ms = err = float("nan")
                log("sweep error", cfg, repr(e)[:300])
            nseg = -(-L // _launch._scan_config(b, L, H, P, N, chunk, False, True, cfg,
                                                sms=_launch._multiprocessors(inp["x"].device)).SEG)
            results["sweep"].append(dict(b=b, L=L, chunk=chunk, config=cfg, nseg=nseg, ms=ms, rel_err=err))
            log(f"sweep {b}x{L} {cfg} ({nseg} segments): {ms:.4f} ms err {err:.2e}")
        del inp, yref
        torch.cuda.empty_cache()


# --------------------------------------------------------------------------- output
def _f(v, spec=".3f"):
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def fmt_scan_row(r):
    t, pr = r["triton"], r.get("peer", {})
    return (f"| {r['b']}x{r['L']}, {r['chunk']} | {_f(t['ms'])} | {_f(t['ms_loop'])} | {_f(r['triton-independent']['ms'])} "
            f"| {_f(pr.get('ms'))} | {_f(pr.get('ms_loop'))} | {_f(r.get('ratio_ms_vs_peer'), '.2f')} "
            f"| {_f(r.get('ratio_ms_loop_vs_peer'), '.2f')} | {_f(t['mem_mib'], '.0f')} | {_f(pr.get('mem_mib'), '.0f')} "
            f"| {_f(t['rel_err'], '.2e')} | {_f(pr.get('rel_err'), '.2e')} | {_f(r['floor_bw_ms'], '.4f')} "
            f"| {_f(r['floor_matrix_ms'], '.4f')} | {_f(r['ratio_vs_bw_floor'], '.1f')} | {_f(r['ratio_vs_matrix_floor'], '.1f')} |")


SCAN_HEADER = ("| b x L, chunk | triton ms | triton ms (loop) | triton-indep ms | peer ms | peer ms (loop) | ratio | "
               "ratio (loop) | triton MiB | peer MiB | triton err | peer err | bw floor ms | matrix floor ms | "
               "x bw floor | x matrix floor |\n|" + "---|" * 16)


def fmt_step_row(r):
    t, pr = r["triton"], r.get("peer", {})
    j = r.get("triton-jit-path", {})
    return (f"| {r['batch']} | {_f(t['wall_us'], '.1f')} ({_f(t['bw_fraction_wall'], '.2f')}) "
            f"| {_f(t['us'], '.1f')} ({_f(t['bw_fraction'], '.2f')}) | {_f(t.get('gpu_us_graph'), '.1f')} "
            f"| {_f(t.get('host_us'), '.1f')} | {_f(j.get('wall_us'), '.1f')} | {_f(j.get('host_us'), '.1f')} "
            f"| {_f(pr.get('wall_us'), '.1f')} ({_f(pr.get('bw_fraction_wall'), '.2f')}) "
            f"| {_f(pr.get('us'), '.1f')} ({_f(pr.get('bw_fraction'), '.2f')}) | {_f(pr.get('gpu_us_graph'), '.1f')} "
            f"| {_f(r['floor_us'], '.1f')} | {_f(r['rel_err'], '.1e')} |")


STEP_HEADER = ("| batch | triton wall us/call (bw frac) | triton do_bench us (bw frac) | triton graph us | "
               "triton host us | jit-path wall us | jit-path host us | peer wall us (bw frac) | "
               "peer do_bench us (bw frac) | peer graph us | floor us | triton err |\n|" + "---|" * 12)


def environment():
    import subprocess
    drv = ""
    try:
        drv = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20).stdout.strip()
    except Exception:  # noqa: BLE001
        pass
    return dict(device=torch.cuda.get_device_name(), driver=drv, torch=torch.__version__, cuda=torch.version.cuda,
                triton=triton.__version__, python=platform.python_version(),
                date=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), command=" ".join(sys.argv))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--peer", default=None, help="folder holding mamba_ssm/ops/triton (the peer's Triton files)")
    ap.add_argument("--out", default=None, help="JSON path (default benchmarks/ssd-<device>-<date>.json)")
    ap.add_argument("--check", action="store_true", help="only check correctness on the GPU, quickly")
    ap.add_argument("--no-check", action="store_true", help="skip the correctness check before benchmarking")
    ap.add_argument("--sweep", action="store_true", help="also time a few launch configurations")
    ap.add_argument("--sweep-long", action="store_true",
                    help="time segment counts and state-pass tiles of the b=1 long-sequence scan (1x8192, 1x32768)")
    ap.add_argument("--skip-step", action="store_true")
    ap.add_argument("--shapes", nargs="*", default=None, help="BxLxCHUNK, e.g. 1x2048x256")
    ap.add_argument("--budget", type=float, default=float("inf"), metavar="SECONDS",
                    help="wall-clock budget from start: the sweep and the check run only while it lasts")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("bench_ssd.py needs a CUDA GPU (use the tests with TRITON_INTERPRET=1 on CPU)")
    global BW
    env = environment()
    log(json.dumps(env))
    if args.check:
        ok = run_check()
        raise SystemExit(0 if ok else 1)
    results = dict(environment=env, scan=[], step=[], sweep=[])
    deadline = T_START + args.budget
    BW = copy_bandwidth()
    results["copy_bandwidth_Bps"] = BW
    log(f"copy bandwidth {BW / 1e12:.2f} TB/s")
    peer_scan, peer_ssu, peer_note = load_peer(args.peer)
    results["peer"] = peer_note
    log("peer:", peer_note)
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.shapes] if args.shapes else SHAPES
    out = Path(args.out) if args.out else Path("benchmarks") / (
        f"ssd-{env['device'].replace(' ', '-').lower()}-{_dt.date.today().isoformat()}.json")
    out.parent.mkdir(parents=True, exist_ok=True)

    def save():
        results["elapsed_s"] = time.perf_counter() - T_START
        out.write_text(json.dumps(results, indent=1))

    warm_gpu()
    log(SCAN_HEADER)
    bench_scan(peer_scan, sizes, results)
    save()
    log(f"[{time.perf_counter() - T_START:.0f}s] scan done")
    if not args.skip_step:
        log(STEP_HEADER)
        bench_step(peer_ssu, results)
        save()
        log(f"[{time.perf_counter() - T_START:.0f}s] step done")
    if args.sweep:
        # the default (automatic segments), the one-launch default of 2026-11-28, other
        # segment counts and state-pass tiles
        cfgs = [{}, dict(NSEG=1), dict(NSEG=8), dict(NSEG=3), dict(BLOCK_L1=32), dict(BLOCK_L1=64),
                dict(num_warps=8), dict(num_warps=8, NSEG=1)]
        sweep([(1, 32768, 256), (1, 8192, 256), (1, 2048, 256)], cfgs, results, deadline=deadline - 30)
        save()
        log(f"[{time.perf_counter() - T_START:.0f}s] sweep done")
    if args.sweep_long:
        # the automatic count (the time model of _launch._segment_cost) against fixed counts
        cfgs = [{}] + [dict(NSEG=k) for k in (1, 2, 3, 4, 5, 6, 8, 16)]
        sweep([(1, 32768, 256), (1, 8192, 256), (1, 16384, 256), (1, 4096, 256)], cfgs, results,
              deadline=deadline - 30)
        save()
        log(f"[{time.perf_counter() - T_START:.0f}s] long sweep done")
    if not args.no_check:
        if time.perf_counter() < deadline - 20:
            results["check_ok"] = run_check()
        else:
            results["check_ok"] = None
            log("check skipped: out of time")
        save()
    log("\n## scan (bf16, h=128 p=64 n=128 g=1)\n" + SCAN_HEADER)
    for r in results["scan"]:
        log(fmt_scan_row(r))
    if results["step"]:
        log("\n## decode step (float32 state)\n" + STEP_HEADER)
        for r in results["step"]:
            log(fmt_step_row(r))
    log(f"\nwrote {out}")


if __name__ == "__main__":
    main()
