#!/usr/bin/env python3
"""The full 32-layer Bamba-9B shape (``config:bamba-9b``, ~18 GB of bf16 weights made on the GPU):
prefill 2048 / 8192 / 32768 and cached decode of 128 tokens after 2048, ssmboard's best variant
beside transformers + mamba_ssm, with peak memory and the time to build each model.

    python3 scripts/bench_bamba9b.py --peer .peer --out $OUT/model-bamba9b-h200.json

Each variant runs in its own subprocess (its own peak memory; the peer's files importable only
for ``transformers+peer``) and builds the model once (random weights, fixed seed, created on the
GPU; ``build_seconds`` is that time, CUDA context and imports excluded), then measures the points
of the suites ``bamba-9b-prefill`` and ``bamba-9b-decode`` (``ssmboard.evaluators.suites``) with
the perf evaluator, exactly as ``run_suite`` would, without building the model a second time. An
out-of-memory point is recorded as such and the rest still run. Variants and the model are named as
in ``scripts/bench_model.py`` (built-ins, ``transformers``, ``transformers+peer``).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

SUITES = ("bamba-9b-prefill", "bamba-9b-decode")


def child(args) -> None:
    if args.variant.endswith("+peer"):
        sys.path.insert(0, str(Path(args.peer).resolve()))
    import torch
    from transformers import logging as hf_logging

    from bench_model import spec_for
    from ssmboard.evaluators.base import EvalContext, get_evaluator
    from ssmboard.evaluators.environment import collect_environment
    from ssmboard.evaluators.report import Metric, Report
    from ssmboard.evaluators.suites import get_suite, resolve
    from ssmboard.jobs.runner import _context
    from ssmboard.jobs.sinks import FileSink
    from ssmboard.variants.build import build

    hf_logging.set_verbosity_error()
    spec = spec_for(args.variant, args)
    sink = FileSink(args.child_out)
    env = collect_environment()
    cuda = torch.cuda.is_available()
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    if cuda:
        torch.zeros(1, device="cuda")  # the CUDA context, outside the build time
    sync()
    t0 = time.perf_counter()
    built = build(spec, device="cuda" if cuda else "cpu")
    sync()
    build_s = time.perf_counter() - t0
    model = built.model
    context = EvalContext(built=built, build=lambda other: build(other, device=built.device))
    weights = torch.cuda.memory_allocated() if cuda else 0
    n_layers = len(model.model.layers)
    print(f"[{args.variant}] built {n_layers} layers in {build_s:.1f} s, {weights / 2**30:.2f} GiB allocated",
          flush=True)
    chunk = built.chunk_size
    evaluator = get_evaluator("perf")
    first = True
    for name in args.suites:
        suite = get_suite(name)
        for step in resolve(suite, spec, chunk):
            for point in evaluator.points(step.params):
                t = time.perf_counter()
                ctx = {**_context(spec, chunk, suite.name), **point}
                try:
                    metrics = evaluator.run_point(context, point, step.params)
                except torch.cuda.OutOfMemoryError as e:
                    torch.cuda.empty_cache()
                    metrics = [Metric("out_of_memory", 1.0, "", False, context={**point, "error": str(e)[:300]})]
                extra = _context(spec, chunk, suite.name)
                for m in metrics:
                    m.context = {**extra, **m.context}
                if first:  # the build, once per variant
                    metrics += [Metric("build_seconds", build_s, "s", False, context=ctx),
                                Metric("weights_allocated", float(weights), "bytes", False, context=ctx)]
                    first = False
                sink.write(Report(variant=spec.to_dict(), evaluator="perf", suite=suite.name, environment=env,
                                  metrics=metrics, effective_variant=spec.to_dict(), params=step.params.to_dict()))
                got = {m.name: m.value for m in metrics}
                print(f"[{args.variant}] {suite.name} {point}: " + ", ".join(
                    f"{k} {got[k]:.4g}" for k in ("ttft", "decode_tokens_per_s", "prefill_extra_allocated",
                                                  "decode_max_allocated", "out_of_memory") if k in got)
                      + f" ({time.perf_counter() - t:.0f} s)", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="config:bamba-9b")
    ap.add_argument("--n-layers", type=int, default=0)
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--variants", nargs="+", default=["transformers+peer", "triton-fast"])
    ap.add_argument("--suites", nargs="+", default=list(SUITES))
    ap.add_argument("--peer", default=".peer")
    ap.add_argument("--timeout", type=float, default=290, help="seconds per variant")
    ap.add_argument("--out", required=True)
    ap.add_argument("--variant", help=argparse.SUPPRESS)
    ap.add_argument("--child-out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.variant:
        child(args)
        return
    from bench_model import print_table

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    reports, failures = [], {}
    for v in args.variants:
        part = out.with_name(out.stem + f".{v.replace('+', '-')}.part.json")
        cmd = [sys.executable, __file__, "--variant", v, "--child-out", str(part), "--model", args.model,
               "--n-layers", str(args.n_layers), "--dtype", args.dtype, "--peer", args.peer,
               "--suites", *args.suites, "--out", str(out)]
        print(f"== {v}", flush=True)
        try:
            proc = subprocess.run(cmd, timeout=args.timeout)
            if proc.returncode:
                failures[v] = f"exit status {proc.returncode}"
        except subprocess.TimeoutExpired:
            failures[v] = f"timed out after {args.timeout} s"
        if part.exists():
            reports += json.loads(part.read_text())
            part.unlink()
    out.write_text(json.dumps(reports, indent=1))
    print_table(reports, failures)
    print(f"wrote {out} ({len(reports)} reports)")


if __name__ == "__main__":
    main()
