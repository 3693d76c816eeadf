"""`ssmboard eval`: run a suite on a variant in this process, into the store or a file.

It lives with the runner and the sinks, not with the evaluators, since it chooses where rows
go (the store, through a sink): evaluators only measure and never touch the store.

Kept light at import (no torch): the runner and the evaluators load inside the command.
The table printed at the end is the same rows that were written, so what a user reads is
what the leaderboard will show.
"""
from __future__ import annotations

import argparse
from typing import Any

from ssmboard.errors import EvaluationError

# How each unit is shown: (scale, shown unit).
_DISPLAY = {"s": (1e3, "ms"), "bytes": (1 / 2**20, "MiB"), "tokens/s": (1.0, "tok/s")}
_CONTEXT_COLUMNS = ("mode", "batch", "prompt_len", "new_tokens", "chunk_size")


def metric_rows(reports: list[Any]) -> list[dict[str, Any]]:
    """Flat display rows (metric, value, unit, context) from reports."""
    rows = []
    for report in reports:
        for m in report.metrics:
            scale, unit = _DISPLAY.get(m.unit, (1.0, m.unit))
            row = {"variant": report.variant["name"], "metric": m.name, "value": f"{m.value * scale:.4g}",
                   "unit": unit, "n": m.n}
            row.update({k: m.context.get(k) for k in _CONTEXT_COLUMNS})
            rows.append(row)
    return rows


def print_rows(reports: list[Any]) -> None:
    from ssmboard.cli import print_table

    columns = ("variant", "mode", "batch", "prompt_len", "new_tokens", "chunk_size", "metric", "value", "unit", "n")
    print_table(metric_rows(reports), columns, [c.upper() for c in columns])


def parse_params(items: list[str] | None) -> dict[str, Any]:
    """--param NAME=VALUE (comma lists become tuples) for overriding a suite's parameters."""
    from ssmboard.cli import parse_option_value

    out: dict[str, Any] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise EvaluationError(f"invalid --param {item!r}: write NAME=VALUE, e.g. prompt_lengths=128,512")
        parts = [parse_option_value(v.strip()) for v in value.split(",")]
        out[key.strip()] = tuple(parts) if "," in value else parts[0]
    return out


def resolve_variant(name: str, *, touch_store: bool) -> Any:
    """The spec of ``name``. With ``--out`` a built-in is taken without opening the store, so a GPU
    machine with no copy of the store measures built-ins; other variants come from the store."""
    if not touch_store:
        from ssmboard.registry.builtins import builtin_specs

        for spec in builtin_specs():
            if spec.name == name:
                return spec
    from ssmboard.registry.api import ensure_builtins, get_variant

    ensure_builtins()
    return get_variant(name)


def cmd_eval(args: argparse.Namespace) -> int:
    import dataclasses
    import json

    from ssmboard.evaluators.suites import get_suite
    from ssmboard.jobs.runner import run_suite
    from ssmboard.jobs.sinks import FileSink, StoreSink

    suite = get_suite(args.suite)
    overrides = parse_params(args.param)
    if overrides:
        from ssmboard.evaluators.base import get_evaluator

        params = {**suite.params, **overrides}
        get_evaluator(suite.evaluator).points(params)  # validates names and values before any work
        suite = dataclasses.replace(suite, params=params)
    spec = resolve_variant(args.variant, touch_store=not args.out)
    sink: Any = FileSink(args.out) if args.out else StoreSink()
    summary = run_suite(spec, suite, sink, progress=not args.no_progress, device=args.device)
    if args.json:
        print(json.dumps([r.to_dict() for r in summary.reports], indent=2))
    else:
        print_rows(summary.reports)
        where = args.out or "the store"
        print(f"\n{summary.rows} rows from {summary.points_done}/{summary.points_total} points written to {where}")
    if summary.interrupted:
        print(f"interrupted: the {summary.rows} rows of the finished points are kept", flush=True)
        return 130
    return 0


def add_eval_parser(sub: Any) -> None:
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


def demo_eval(args: argparse.Namespace) -> None:
    """Part 2 of `ssmboard demo`: the quick suite on two built-in variants of the embedded model."""
    from ssmboard.jobs.runner import run_suite
    from ssmboard.jobs.sinks import StoreSink
    from ssmboard.evaluators.suites import get_suite
    from ssmboard.registry.api import ensure_builtins, get_variant

    ensure_builtins()
    print("\nMeasuring the quick suite (prefill and cached decode, short prompts) on the embedded model:")
    reports = []
    for name in ("reference-c64", "independent-c64"):
        summary = run_suite(get_variant(name), get_suite("quick"), StoreSink(), progress=True)
        reports += summary.reports
        if summary.interrupted:
            break
    wanted = {"ttft", "prefill_tokens_per_s", "decode_tokens_per_s"}
    for r in reports:
        r.metrics = [m for m in r.metrics if m.name in wanted]
    print_rows(reports)
    print("\nAll rows are in the store: `ssmboard db info`; rerun one with `ssmboard eval reference-c64`.")
