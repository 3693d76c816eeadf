"""Issue 12 on a GPU: the `accuracy` suite for triton-c64, triton-independent-c64 and
reference-c64 on the embedded model, in bfloat16 and float32, one JSON file of reports each.

Run from the repository root on the GPU machine (no store needed: rows go to files that
`ssmboard import FILE` loads later)::

    python3 scripts/h200_accuracy.py --out-dir "$OUT"            # all 6 (variant, dtype) runs
    python3 scripts/h200_accuracy.py --out-dir "$OUT" --dtypes bfloat16 --variants triton-c64

The bfloat16 variants are the built-ins with ``dtype="bfloat16"`` and ``-bf16`` added to the
name (made here as VariantSpecs; `ssmboard import` registers them). fidelity's reference is
always float32. When lm_eval is not importable (the H200 box has none) the lmeval part of the
suite is left out, and the script says so: those rows come from a CPU run instead.
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

VARIANTS = ("reference-c64", "triton-c64", "triton-independent-c64")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out-dir", default="benchmarks")
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS))
    ap.add_argument("--dtypes", nargs="+", default=["bfloat16", "float32"])
    ap.add_argument("--suite", default="accuracy")
    ap.add_argument("--device", default="cuda")
    args = ap.parse_args()

    from ssmboard.evaluators.suites import get_suite, register_suite
    from ssmboard.jobs.evaluate import evaluate
    from ssmboard.registry.builtins import builtin_specs

    suite = get_suite(args.suite)
    if importlib.util.find_spec("lm_eval") is None:
        kept = tuple(p for p in suite.all_parts() if p.evaluator != "lmeval")
        print(f"lm_eval is not importable here: suite {suite.name!r} runs without its lmeval part "
              f"({', '.join(p.evaluator for p in kept)} only); run the lm-eval tasks on a CPU machine", flush=True)
        # the same name, so these rows pair with other runs of the suite's fidelity/gptscore parts
        register_suite(dataclasses.replace(suite, parts=kept, evaluator="", params={}))
    specs = {s.name: s for s in builtin_specs()}
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    date = time.strftime("%Y-%m-%d", time.gmtime())
    failed = 0
    for dtype in args.dtypes:
        for name in args.variants:
            spec = specs[name]
            if dtype != spec.dtype:
                spec = dataclasses.replace(spec, name=f"{name}-{'bf16' if dtype == 'bfloat16' else dtype}",
                                           dtype=dtype, description=f"{spec.description}; {dtype}")
            out = out_dir / f"accuracy-{spec.name}-h200-{date}.json"
            t0 = time.perf_counter()
            try:
                summary = evaluate(spec, args.suite, out=out, device=args.device, progress=False)
            except Exception as exc:  # keep going: one failing variant must not cost the others
                failed += 1
                print(f"{spec.name}: FAILED {type(exc).__name__}: {exc}", flush=True)
                continue
            print(f"{spec.name}: {summary.rows} rows from {summary.points_done}/{summary.points_total} points "
                  f"in {time.perf_counter() - t0:.0f} s -> {out}", flush=True)
            for report in summary.reports:
                for m in report.metrics:
                    if m.name in ("kl_mean", "top1_agreement", "greedy_token_agreement", "gptscore_mean") \
                            or "/" in m.name:
                        where = m.context.get("prompt_len") or m.context.get("task")
                        print(f"  {report.evaluator:9s} {m.name:28s} {str(where):>20s} {m.value:.6g}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
