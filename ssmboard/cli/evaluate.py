"""`ssmboard eval VARIANT --suite S` and `ssmboard demo`: thin calls of ``ssmboard.evaluate``.

Light at import (no torch): the runner and the evaluators load inside the commands. The
table printed at the end is the rows that were written, so what a user reads is what the
leaderboard will show.
"""
from __future__ import annotations

import argparse
import json
from typing import Any

from ssmboard.cli.output import parse_assignments, print_metric_rows


def cmd_eval(args: argparse.Namespace) -> int:
    from ssmboard.jobs.evaluate import evaluate

    params = parse_assignments(args.param, "--param", "prompt_lengths=128,512", lists=True)
    summary = evaluate(args.variant, args.suite, params=params, out=args.out, device=args.device,
                       progress=not args.no_progress)
    if args.json:
        print(json.dumps([r.to_dict() for r in summary.reports], indent=2))
    else:
        print_metric_rows(summary.reports)
        where = args.out or "the store"
        print(f"\n{summary.rows} rows from {summary.points_done}/{summary.points_total} points written to {where}")
    if summary.interrupted:
        print(f"interrupted: the {summary.rows} rows of the finished points are kept", flush=True)
        return 130
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from ssmboard.cli import main
    from ssmboard.cli.variants import print_variants_table
    from ssmboard.jobs.demo import DEMO_SUITES, DEMO_VARIANTS, run_demo
    from ssmboard.registry.api import list_variants, store_location
    from ssmboard.registry.builtins import builtin_names

    names = set(builtin_names())
    print("Built-in variants:")
    print_variants_table([s for s in list_variants() if s.name in names])
    print(f"\nDatabase: {store_location()}")
    print(f"\nQueueing {', '.join(DEMO_SUITES)} for {', '.join(DEMO_VARIANTS)} (the embedded model) and draining "
          "the queue with a local worker (each job in its own process):", flush=True)
    result = run_demo(progress=True)
    for job in result.failed:
        print(f"job {job.get('id')}: {job.get('outcome')}: {job.get('error')}")
    print("\nRanking (`ssmboard leaderboard`):", flush=True)
    main(["leaderboard"])
    print(f"\n`ssmboard compare {DEMO_VARIANTS[0]} {DEMO_VARIANTS[1]}`:", flush=True)
    main(["compare", DEMO_VARIANTS[0], DEMO_VARIANTS[1]])
    print("\nAll rows are in the store: `ssmboard serve` shows them in the leaderboard; `ssmboard jobs` lists the jobs.")
    if result.interrupted:
        return 130
    return 1 if result.failed else 0


def add_parser(sub: Any) -> None:
    from ssmboard.evaluators.suites import SUITES

    p = sub.add_parser("eval", help="measure a variant with a suite (in this process)",
                       description="Run a named suite on a registered variant and write one row per metric "
                                   "per point, with its context and environment, to the store (default) or "
                                   "to a JSON file that `ssmboard import` loads later.")
    p.add_argument("variant", help="a registered variant name (see `ssmboard variants list`)")
    p.add_argument("--suite", default="quick", choices=sorted(SUITES),
                   help="what to measure (default: quick). " + "; ".join(f"{s.name}: {s.description}"
                                                                       for s in SUITES.values()))
    p.add_argument("--param", action="append", metavar="NAME=VALUE",
                   help="override a suite parameter, e.g. prompt_lengths=128,512 or iterations=5 (repeatable)")
    p.add_argument("--out", metavar="FILE.json", help="write the reports to this file instead of the store")
    p.add_argument("--device", help="cuda or cpu (default: the GPU when there is one)")
    p.add_argument("--json", action="store_true", help="print the reports as JSON instead of a table")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_eval)

    d = sub.add_parser("demo", help="show what ssmboard does on this machine")
    d.set_defaults(func=cmd_demo)
