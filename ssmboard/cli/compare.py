"""`ssmboard compare A B`: B - A for every metric both variants have, with a 95% interval.

A thin call of ``ssmboard.leaderboard.compare.compare_variants`` (the function the
leaderboard uses); see there for how rows pair and which interval each gets.
"""
from __future__ import annotations

import argparse
from typing import Any

from ssmboard.cli.output import print_json, print_table

_CONTEXT_SHOWN = ("task", "prompt_len", "chunk_index", "single_chunk", "mode", "batch", "new_tokens")


def _num(x: Any) -> str:
    return "-" if x is None else f"{x:.4g}"


def cmd_compare(args: argparse.Namespace) -> int:
    from ssmboard.leaderboard.compare import compare_variants

    rows = compare_variants(args.a, args.b, metric=args.metric, resamples=args.resamples, seed=args.seed)
    if args.format == "json":
        print_json(rows)
        return 0
    if not rows:
        print(f"{args.a} and {args.b} have no measurement in common (same evaluator, metric, context and suite); "
              "run the same suite on both")
        return 0
    shown = []
    for r in rows:
        ctx = ",".join(f"{k}={r['context'][k]}" for k in _CONTEXT_SHOWN if k in r["context"])
        ci = "-" if r["lo"] is None else f"[{_num(r['lo'])}, {_num(r['hi'])}]"
        shown.append({"evaluator": r["evaluator"], "metric": r["metric"], "context": ctx or "-",
                      "a": _num(r["a"]), "b": _num(r["b"]), "delta": _num(r["delta"]), "ci": ci,
                      "method": r["method"], "n": r["n"], "verdict": r["verdict"], "device": r["device"]})
    print(f"B - A with A = {args.a}, B = {args.b} (95% intervals: paired bootstrap over common items, "
          "else from stored standard errors)")
    cols = ("evaluator", "metric", "context", "a", "b", "delta", "ci", "method", "n", "verdict", "device")
    print_table(shown, cols, [c.upper() if c != "ci" else "95% CI" for c in cols])
    return 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser("compare", help="B - A for every metric two variants share, with 95%% intervals",
                       description="Pair the rows of two variants (same evaluator, metric, context, device) and "
                                   "show B - A with a 95%% paired-bootstrap interval over per-item scores, or "
                                   "one from stored standard errors; 'within noise' when it covers 0.")
    p.add_argument("a", help="variant A (the baseline)")
    p.add_argument("b", help="variant B")
    p.add_argument("--metric", help="only this metric (e.g. kl_mean or shakespeare_cloze/acc)")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples (>= 1000; default 2000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.set_defaults(func=cmd_compare)
