#!/usr/bin/env python3
"""Time and peak memory of the PyTorch scan backends against transformers' torch fallback.

Each (backend, shape) is measured in a fresh subprocess so that peak memory is its own:
on CPU the peak RSS above the RSS with the inputs in place (Linux clear_refs resets the
peak), on GPU the allocator's max allocated above the inputs. Times are medians after a
warm-up (perf_counter on CPU, CUDA events on GPU). Relative error is against the float64
``sequential`` recurrence on the same inputs when L <= --max-check-len, else against
``reference`` in float64.

    python scripts/bench_scan.py                       # Bamba-9B mixer shape, b=1, L=2048, chunk 256
    python scripts/bench_scan.py --shapes 1x2048x256 1x8192x256 --out benchmarks/scan-cpu.json
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

BACKENDS = ["reference", "independent", "transformers"]


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _transformers_scan():
    from transformers.models.bamba import modeling_bamba
    fn = getattr(modeling_bamba, "mamba2_chunk_scan", None)
    if fn is None:
        return None

    def scan(x, dt, A, B, C, *, chunk_size, D=None, dt_bias=None, return_final_state=False, **_):
        return fn(x, dt, A, B, C, chunk_size, D=D, dt_bias=dt_bias, dt_softplus=True,
                  return_final_states=return_final_state)
    return scan


def make_inputs(b, L, h, p, g, n, dtype, device, seed=0):
    import torch
    gen = torch.Generator(device="cpu").manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=gen)
    x, dtr = r(b, L, h, p), r(b, L, h) - 1.0
    A = -torch.exp(torch.rand(h, generator=gen) * 2.0)
    B, C, D, bias = r(b, L, g, n), r(b, L, g, n), r(h), r(h) * 0.5
    cast = lambda t: t.to(device=device, dtype=dtype)
    return dict(x=cast(x), dt=cast(dtr), A=A.to(device), B=cast(B), C=cast(C), D=D.to(device), dt_bias=bias.to(device))


def worker(args) -> dict:
    import torch
    from ssmboard.variants import get_scan
    b, L, chunk = (int(v) for v in args.shape.split("x"))
    dtype = getattr(torch, args.dtype)
    dev = torch.device(args.device)
    inp = make_inputs(b, L, args.heads, args.head_dim, args.groups, args.d_state, dtype, dev)
    fn = _transformers_scan() if args.backend == "transformers" else get_scan(args.backend)
    if fn is None:
        return {"error": "transformers' mamba2_chunk_scan is not in this transformers version"}
    run = lambda: fn(inp["x"], inp["dt"], inp["A"], inp["B"], inp["C"], chunk_size=chunk, D=inp["D"], dt_bias=inp["dt_bias"])
    cuda = dev.type == "cuda"
    with torch.inference_mode():
        if cuda:
            torch.cuda.synchronize()
            base = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
        else:
            Path("/proc/self/clear_refs").write_text("5")
            base = _rss_kib("VmRSS") * 1024
        y = run()
        if cuda:
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated() - base
        else:
            peak = _rss_kib("VmHWM") * 1024 - base
        times = []
        for _ in range(args.warmup):
            run()
        t_end = time.perf_counter() + args.min_seconds
        while len(times) < args.repeats or time.perf_counter() < t_end:
            if cuda:
                s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                s.record(); run(); e.record(); torch.cuda.synchronize()
                times.append(s.elapsed_time(e) / 1e3)
            else:
                t0 = time.perf_counter(); run(); times.append(time.perf_counter() - t0)
        # accuracy against float64
        ref_name = "sequential" if L <= args.max_check_len else "reference"
        ref = get_scan(ref_name)(inp["x"].double(), inp["dt"].double(), inp["A"].double(), inp["B"].double(),
                                 inp["C"].double(), chunk_size=chunk, D=inp["D"].double(), dt_bias=inp["dt_bias"].double())
        rel = ((y.double() - ref).norm() / ref.norm()).item()
    return {"median_s": statistics.median(times), "p90_s": sorted(times)[int(0.9 * (len(times) - 1))],
            "iterations": len(times), "peak_extra_bytes": int(peak), "rel_err_vs_float64": rel,
            "error_reference": ref_name}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shapes", nargs="+", default=["1x2048x256"], help="BATCHxLENGTHxCHUNK")
    ap.add_argument("--backends", nargs="+", default=BACKENDS)
    ap.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--heads", type=int, default=128)
    ap.add_argument("--head-dim", type=int, default=64)
    ap.add_argument("--d-state", type=int, default=128)
    ap.add_argument("--groups", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--min-seconds", type=float, default=0.0)
    ap.add_argument("--max-check-len", type=int, default=256, help="use the float64 recurrence up to this L")
    ap.add_argument("--out", default=None, help="JSON path (default benchmarks/scan-<device>-<date>.json)")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--backend", help=argparse.SUPPRESS)
    ap.add_argument("--shape", help=argparse.SUPPRESS)
    args = ap.parse_args()
    import torch
    if args.device is None:
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.worker:
        print(json.dumps(worker(args)))
        return

    import transformers
    rows = []
    for shape in args.shapes:
        for backend in args.backends:
            cmd = [sys.executable, __file__, "--worker", "--backend", backend, "--shape", shape]
            for k in ("device", "dtype", "heads", "head_dim", "d_state", "groups", "warmup", "repeats", "min_seconds", "max_check_len"):
                cmd += ["--" + k.replace("_", "-"), str(getattr(args, k))]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
                res = {"error": f"exit {proc.returncode}: {tail}"}
            else:
                res = json.loads(proc.stdout.strip().splitlines()[-1])
            rows.append({"backend": backend, "shape": shape, **res})
            print(f"  {shape:>12} {backend:>12}: {res}", file=sys.stderr, flush=True)

    base = {r["shape"]: r for r in rows if r["backend"] == "transformers" and "median_s" in r}
    print(f"\n{'shape':>12} {'backend':>12} {'median':>10} {'peak extra':>12} {'rel err':>9} {'speed-up':>9} {'mem ratio':>9}")
    for r in rows:
        if "median_s" not in r:
            print(f"{r['shape']:>12} {r['backend']:>12}  {r['error']}")
            continue
        t = base.get(r["shape"])
        sp = f"{t['median_s'] / r['median_s']:.2f}x" if t else "-"
        mr = f"{t['peak_extra_bytes'] / max(r['peak_extra_bytes'], 1):.2f}x" if t else "-"
        print(f"{r['shape']:>12} {r['backend']:>12} {r['median_s'] * 1e3:>8.1f}ms {r['peak_extra_bytes'] / 2**20:>9.0f}MiB "
              f"{r['rel_err_vs_float64']:>9.1e} {sp:>9} {mr:>9}")
    device_name = torch.cuda.get_device_name() if args.device == "cuda" else platform.processor() or platform.machine()
    if args.device == "cpu":
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                device_name = line.split(":", 1)[1].strip(); break
    report = {"device": device_name, "device_type": args.device, "cpu_count": os.cpu_count(),
              "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "torch": torch.__version__, "transformers": transformers.__version__,
              "command": " ".join([Path(sys.executable).name] + sys.argv),
              "mixer": {"heads": args.heads, "head_dim": args.head_dim, "d_state": args.d_state, "groups": args.groups,
                        "dtype": args.dtype}, "rows": rows}
    out = Path(args.out or f"benchmarks/scan-{args.device}-{dt.date.today()}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
