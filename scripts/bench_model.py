#!/usr/bin/env python3
"""Whole-model performance of registered variants under named suites, into one JSON file of reports.

A thin driver over ``ssmboard.registry`` (built-in variants) and ``ssmboard.evaluators.suites``
(named suites): each variant runs in its own subprocess (so that peak memory and compile caches
are its own, and so that the peer's mamba_ssm kernels, which transformers picks up at import
time, are visible only to the ``transformers+peer`` path), through the same ``run_suite`` as
``ssmboard eval VARIANT --suite NAME --out FILE``. The one thing the script adds is the model:
built-ins are registered on the embedded tiny model, and ``--model`` / ``--dtype`` / ``--n-layers``
replace those fields of every spec (default: the 4-layer Bamba-9B shape in bfloat16). Needs no
database: the reports are written with ssmboard's file sink, and ``ssmboard import FILE`` loads them.

    python3 scripts/bench_model.py --variants transformers+peer triton-fast --suites bamba-4l-targets \
        --peer .peer --out benchmarks/model-h200.json

Variants: any built-in name (``ssmboard variants list``: ``triton-fast``, ``triton-c64``,
``reference-c64``, ``reference-compiled``, ...), plus two special cases for the baseline:
``transformers`` (the unpatched model, i.e. the ``transformers`` scan backend: its torch
fallback) and ``transformers+peer`` (the same, with mamba_ssm's Triton files importable from
``--peer``; causal_conv1d is not installed there, so its conv runs in PyTorch).
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

PEER_PATHS = {"transformers": "transformers", "transformers+peer": "transformers-peer"}


def spec_for(name: str, args):
    """The spec measured for ``name``: a built-in (or the unpatched model) with the script's
    model, dtype and layer count."""
    from ssmboard.registry.builtins import builtin_specs
    from ssmboard.registry.spec import VariantSpec

    if name in PEER_PATHS:
        base = VariantSpec(name=PEER_PATHS[name], scan="transformers",
                           description="transformers' own Bamba mixer (mamba_ssm's kernels where importable)")
    else:
        specs = {s.name: s for s in builtin_specs()}
        if name not in specs:
            raise SystemExit(f"unknown variant {name!r}: use a built-in ({', '.join(sorted(specs))}) "
                             f"or one of {', '.join(PEER_PATHS)}")
        base = specs[name]
    return dataclasses.replace(base, model=args.model, dtype=args.dtype, n_layers=args.n_layers or None)


def child(args) -> None:
    if args.with_peer:
        sys.path.insert(0, str(Path(args.peer).resolve()))
    import torch  # noqa: F401
    from ssmboard.jobs.runner import run_suite
    from ssmboard.jobs.sinks import FileSink
    from ssmboard.evaluators.suites import get_suite

    spec = spec_for(args.variant, args)
    sink = FileSink(args.child_out)
    for s in args.suites:
        t0 = time.time()
        summary = run_suite(spec, get_suite(s), sink, progress=False)
        print(f"[{args.variant}] {s}: {summary.rows} rows, {summary.points_done}/{summary.points_total} points, "
              f"{time.time() - t0:.0f} s", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="config:bamba-9b-4l",
                    help="default: the Bamba-9B shape at 4 layers with attention at layer 2 (anchors.md)")
    ap.add_argument("--n-layers", type=int, default=0, help="keep the first N layers (0: all of the model's)")
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--variants", nargs="+", default=["transformers+peer", "triton-fast"])
    ap.add_argument("--suites", nargs="+", default=["bamba-4l-targets"], help="names in ssmboard.evaluators.suites")
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
        except subprocess.TimeoutExpired as e:
            print((e.stdout or b"")[-3000:].decode() if isinstance(e.stdout, bytes) else (e.stdout or "")[-3000:])
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
                k = (r["variant"]["name"], r["suite"], c.get("prompt_len"), c.get("batch"))
                rows.setdefault(k, {})[m["name"]] = m["value"]
    fmt = {"ttft": lambda v: f"{v * 1e3:.2f} ms", "decode_tpot": lambda v: f"{v * 1e3:.2f} ms",
           "decode_tokens_per_s": lambda v: f"{v:.0f} tok/s", "generate_nocache_tokens_per_s": lambda v: f"{v:.1f} tok/s"}
    print(f"\n{'variant':<22} {'suite':<16} {'prompt':>6} {'batch':>5}  " + "  ".join(f"{k}" for k in keys))
    for (v, s, L, b), vals in sorted(rows.items(), key=lambda kv: (kv[0][1], kv[0][2] or 0, kv[0][3] or 0, kv[0][0])):
        cells = []
        for k in keys:
            if k not in vals:
                cells.append("-")
            elif k.endswith(("allocated",)):
                cells.append(f"{vals[k] / 2**20:.0f} MiB")
            else:
                cells.append(fmt[k](vals[k]))
        print(f"{v:<22} {s:<16} {L!s:>6} {b!s:>5}  " + "  ".join(cells))
    for v, why in failures.items():
        print(f"{v}: FAILED: {why}")


if __name__ == "__main__":
    main()
