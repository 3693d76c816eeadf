"""Paired comparison of two variants: B - A for every metric both have, with its uncertainty.

Rows pair when they measure the same thing: same evaluator, metric, device and context,
the context taken without what describes the variant rather than the measurement (its
fingerprint, scan, chunk size, dtype, compile settings, its own fidelity reference) unless
the suite overrode that field for the run (a chunk-size sweep's ``chunk_size`` is a
measurement coordinate, so it stays). A re-run of the same measurement is represented by
its latest row. Rows of different devices never pair: when the only rows of a measurement
are on different devices, the output says so (``method`` "none") instead of a difference.

Metrics with per-item scores on common items get a paired bootstrap (``stats.paired_bootstrap``,
seeded) of the mean per-item difference; others (perf) get a normal interval from the two
stored standard errors (``stats.stderr_difference``). "within noise" when the 95% interval
covers 0; otherwise "better" or "worse" for B, by the metric's direction.
"""
from __future__ import annotations

import json
from typing import Any, Iterable

from ssmboard.errors import SsmboardError

# context keys that identify a run or a variant, not the measurement
RUN_KEYS = frozenset({"fingerprint", "effective_fingerprint", "effective_variant", "reference_fingerprint",
                      "reference_chunk_size"})
VARIANT_KEYS = frozenset({"chunk_size", "dtype", "compile", "compile_scope", "n_layers", "scan", "decoder"})


class CompareError(SsmboardError):
    """A comparison cannot be made as asked (a variant without results)."""


def measurement_key(record: dict[str, Any]) -> tuple[str, str, str]:
    """(evaluator, metric, canonical context) that rows of two variants must share to pair."""
    ctx = dict(record.get("context") or {})
    overridden = set()
    eff = ctx.get("effective_variant")
    if isinstance(eff, dict):
        spec = record.get("spec") or {}
        overridden = {k for k in VARIANT_KEYS if k in eff and eff.get(k) != spec.get(k)}
    kept = {k: v for k, v in ctx.items()
            if k not in RUN_KEYS and (k not in VARIANT_KEYS or k in overridden)}
    return record["evaluator"], record["metric"], json.dumps(kept, sort_keys=True, default=str)


def _latest(records: Iterable[dict[str, Any]]) -> dict[tuple, dict[str, dict[str, Any]]]:
    """{measurement key: {device: latest record}}."""
    out: dict[tuple, dict[str, dict[str, Any]]] = {}
    for r in sorted(records, key=lambda r: r["id"]):
        out.setdefault(measurement_key(r), {})[r.get("device_name") or "unknown"] = r
    return out


def _difference(ra: dict, rb: dict, items: dict[int, dict[str, float]], resamples: int, seed: int):
    from ssmboard.evaluators.stats import paired_bootstrap, stderr_difference

    ia, ib = items.get(ra["id"]) or {}, items.get(rb["id"]) or {}
    common = sorted(set(ia) & set(ib))
    if len(common) >= 2:
        d = paired_bootstrap([ia[k] for k in common], [ib[k] for k in common], resamples=resamples, seed=seed)
        return d, len(common)
    d = stderr_difference(ra["value"], ra.get("stderr"), rb["value"], rb.get("stderr"))
    return d, min(ra.get("n") or 1, rb.get("n") or 1)


def compare_records(records_a: list[dict[str, Any]], records_b: list[dict[str, Any]],
                    items: dict[int, dict[str, float]], *, resamples: int = 2000, seed: int = 0) -> list[dict]:
    """Pair the result records of A and B (``db.queries.results_records`` dicts) and give B - A.

    ``items`` holds the per-item scores by result id (``db.queries.item_scores``). Returns one
    dict per measurement both have: metric, evaluator, context, unit, higher_is_better, a, b,
    delta, lo, hi, method ("paired-bootstrap", "stderr" or "none"), n, verdict, device.
    """
    la, lb = _latest(records_a), _latest(records_b)
    out = []
    for key in sorted(set(la) & set(lb)):
        evaluator, metric, ctx_text = key
        by_a, by_b = la[key], lb[key]
        devices = sorted(set(by_a) & set(by_b))
        if not devices:
            ra, rb = next(iter(by_a.values())), next(iter(by_b.values()))
            out.append({"metric": metric, "evaluator": evaluator, "context": json.loads(ctx_text),
                        "unit": ra["unit"], "higher_is_better": ra["higher_is_better"],
                        "a": ra["value"], "b": rb["value"], "delta": None, "lo": None, "hi": None,
                        "method": "none", "n": None,
                        "verdict": f"not compared: A measured on {', '.join(sorted(by_a))}, "
                                   f"B on {', '.join(sorted(by_b))}",
                        "device": None})
            continue
        for dev in devices:
            ra, rb = by_a[dev], by_b[dev]
            d, n = _difference(ra, rb, items, resamples, seed)
            row = {"metric": metric, "evaluator": evaluator, "context": json.loads(ctx_text),
                   "unit": ra["unit"], "higher_is_better": ra["higher_is_better"],
                   "a": ra["value"], "b": rb["value"], "device": dev, "n": n}
            if d is None:
                row.update(delta=rb["value"] - ra["value"], lo=None, hi=None, method="none",
                           verdict="no interval (no common items, no stderr)")
            else:
                row.update(delta=d.delta, lo=d.lo, hi=d.hi, method=d.method,
                           verdict=d.verdict(bool(ra["higher_is_better"])))
            out.append(row)
    return out


def compare_variants(a: str, b: str, *, metric: str | None = None, resamples: int = 2000,
                     seed: int = 0) -> list[dict]:
    """:func:`compare_records` over the store's rows of the active variants ``a`` and ``b``."""
    from ssmboard.db.queries import item_scores, results_records
    from ssmboard.registry.api import get_variant

    recs = {}
    for name in (a, b):
        get_variant(name)  # an unknown name says so, listing the known ones
        rows = results_records(variants=[name], metric=metric, active_only=True)
        if not rows:
            what = f" for metric {metric!r}" if metric else ""
            raise CompareError(f"variant {name!r} has no results{what}; measure it first, e.g. "
                               f"`ssmboard eval {name} --suite accuracy-quick` (or --suite quick for speed)")
        recs[name] = rows
    ids = [r["id"] for rows in recs.values() for r in rows]
    return compare_records(recs[a], recs[b], item_scores(ids), resamples=resamples, seed=seed)
