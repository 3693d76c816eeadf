#!/usr/bin/env python3
"""Whole-model performance of several variants side by side, into one JSON file of reports.

Runs each variant in its own subprocess (so that peak memory and compile caches are its
own, and so that the peer's mamba_ssm kernels, which transformers picks up at import
time, are visible only to the `transformers+peer` path). Needs no database: the reports
are written with ssmboard's file sink, and `ssmboard import FILE` loads them later.

    python scripts/bench_model.py --model config:bamba-9b-4l --dtype bfloat16 \
        --variants transformers transformers+peer reference independent reference-compiled triton \
        --suites h200-targets llm-perf --peer .peer --out benchmarks/model-h200.json

Variant names: `transformers` (the unpatched model), `transformers+peer` (unpatched, with
mamba_ssm's Triton files importable from --peer), or any scan backend name, optionally
with `-static` (ssmboard's CUDA-graph decoder), `-compiled` (torch.compile default mode, whole model)
or `-fused` (compile scope "parts": norms and MLPs compiled, the scan eager), and `-c<chunk>`, in that
order (e.g. `triton-static-fused`, `reference-compiled-c128`).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

EXTRA_SUITES = {
    # the whole-model targets of anchors.md: prefill 512/2048/8192 and cached decode of 128 tokens
    "h200-targets": dict(evaluator="perf", params=dict(prompt_lengths=(512, 2048, 8192), batch_sizes=(1,),
                                                       new_tokens=128, modes=("prefill", "decode"),
                                                       warmup=1, iterations=5, min_seconds=1.0)),
    "uncached-32": dict(evaluator="perf", params=dict(prompt_lengths=(512,), batch_sizes=(1,), new_tokens=32,
                                                      modes=("generate-nocache",), warmup=1, iterations=3)),
}


def spec_for(name: str, args):
    from ssmboard.registry.spec import VariantSpec
    scan, compile_mode, chunk, decoder, scope = name, None, None, "generate", "model"
    if name.startswith("transformers"):
        scan = "transformers"
    while True:  # suffixes, in any order
        head, _, last = scan.rpartition("-")
        if not head:
            break
        if last == "static":
            decoder = "static"
        elif last == "compiled":
            compile_mode = "default"
        elif last == "fused":
            compile_mode, scope = "default", "parts"
        elif last.startswith("c") and last[1:].isdigit():
            chunk = int(last[1:])
        else:
            break
        scan = head
    safe = name.replace("+", "-")
    return VariantSpec(name=safe, model=args.model, scan=scan, chunk_size=chunk, dtype=args.dtype,
                       compile=compile_mode, compile_scope=scope, n_layers=args.n_layers or None, decoder=decoder)


def suite_for(name: str):
    from ssmboard.evaluators.suites import Suite, get_suite
    if name in EXTRA_SUITES:
        e = EXTRA_SUITES[name]
        return Suite(name, name, e["evaluator"], e["params"])
    return get_suite(name)


def child(args) -> None:
    if args.with_peer:
        sys.path.insert(0, str(Path(args.peer).resolve()))
    import torch  # noqa: F401
    from ssmboard.jobs.runner import run_suite
    from ssmboard.jobs.sinks import FileSink
    spec = spec_for(args.variant, args)
    sink = FileSink(args.child_out)
    for s in args.suites:
        t0 = time.time()
        summary = run_suite(spec, suite_for(s), sink, progress=False)
        print(f"[{args.variant}] {s}: {summary.rows} rows, {summary.points_done}/{summary.points_total} points, "
              f"{time.time() - t0:.0f} s", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="config:bamba-9b-4l",
                    help="default: the Bamba-9B shape at 4 layers with attention at layer 2 (anchors.md)")
    ap.add_argument("--n-layers", type=int, default=0, help="keep the first N layers (0: all of the model's)")
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--variants", nargs="+", default=["transformers", "reference", "independent"])
    ap.add_argument("--suites", nargs="+", default=["h200-targets"])
    ap.add_argument("--peer", default=".peer", help="folder holding mamba_ssm's Triton files (git-ignored)")
    ap.add_argument("--timeout", type=float, default=900, help="seconds per variant")
    ap.add_argument("--out", required=True)
    ap.add_argument("--variant", help=argparse.SUPPRESS)
    ap.add_argument("--child-out", help=argparse.SUPPRESS)
    ap.add_argument("--with-peer", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.variant:
        child(args)
        return

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    reports, failures = [], {}
    for v in args.variants:
        part = out.with_name(out.stem + f".{v.replace('+', '-')}.part.json")
        cmd = [sys.executable, __file__, "--variant", v, "--child-out", str(part), "--model", args.model,
               "--n-layers", str(args.n_layers), "--dtype", args.dtype, "--peer", args.peer, "--suites", *args.suites,
               "--out", str(out)] + (["--with-peer"] if v.endswith("+peer") else [])
        print(f"== {v}", flush=True)
        try:
            proc = subprocess.run(cmd, timeout=args.timeout, text=True, capture_output=True)
            print(proc.stdout[-3000:], end="", flush=True)
            if proc.returncode:
                failures[v] = (proc.stderr.strip().splitlines() or ["?"])[-1]
                print(proc.stderr[-3000:], flush=True)
        except subprocess.TimeoutExpired:
            failures[v] = f"timed out after {args.timeout} s"
        if part.exists():
            reports += json.loads(part.read_text())
            part.unlink()
    out.write_text(json.dumps(reports, indent=1))
    print_table(reports, failures)
    print(f"wrote {out} ({len(reports)} reports)")


def print_table(reports, failures) -> None:
    keys = ("ttft", "prefill_extra_allocated", "prefill_max_allocated", "decode_tokens_per_s", "decode_tpot",
            "generate_nocache_tokens_per_s", "decode_max_allocated")
    rows = {}
    for r in reports:
        for m in r["metrics"]:
            if m["name"] in keys:
                c = m["context"]
                k = (r["variant"]["name"], r["suite"], c.get("prompt_len"))
                rows.setdefault(k, {})[m["name"]] = m["value"]
    fmt = {"ttft": lambda v: f"{v * 1e3:.2f} ms", "decode_tpot": lambda v: f"{v * 1e3:.2f} ms",
           "decode_tokens_per_s": lambda v: f"{v:.0f} tok/s", "generate_nocache_tokens_per_s": lambda v: f"{v:.1f} tok/s"}
    print(f"\n{'variant':<22} {'suite':<13} {'prompt':>6}  " + "  ".join(f"{k}" for k in keys))
    for (v, s, L), vals in sorted(rows.items(), key=lambda kv: (kv[0][1], kv[0][2] or 0, kv[0][0])):
        cells = []
        for k in keys:
            if k not in vals:
                cells.append("-")
            elif k.endswith(("allocated",)):
                cells.append(f"{vals[k] / 2**20:.0f} MiB")
            else:
                cells.append(fmt[k](vals[k]))
        print(f"{v:<22} {s:<13} {L!s:>6}  " + "  ".join(cells))
    for v, why in failures.items():
        print(f"{v}: FAILED: {why}")


if __name__ == "__main__":
    main()
