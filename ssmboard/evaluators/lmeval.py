"""lm-eval tasks through ``lm_eval.simple_evaluate``, on the variant as built.

The tasks shipped in ``ssmboard/assets/tasks`` (built from the held-out test plays) load
offline; any task the installed lm-eval knows works too (``tasks``), with ``num_fewshot``
and ``limit``. Each metric is stored under lm-eval's own name, ``<task>/<metric>`` (plus
``/<filter>`` when the filter is not ``none``), with the stderr lm-eval reports
(``bootstrap_iters`` resamples where lm-eval bootstraps). Per-item scores come from
lm-eval's logged samples (keyed by ``doc_id``): for a metric averaged over documents
(``acc``, ``acc_norm``) each document's value; for rolling log-likelihood tasks (perplexity,
whose per-document values are not averages) an extra row ``<task>/loglikelihood``: the mean
per-document log-likelihood, with each document's as its items.
"""
from __future__ import annotations

import functools
import math
import os
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ssmboard.config import assets_dir
from ssmboard.errors import EvaluationError
from ssmboard.evaluators.base import EvalContext, Params, register_evaluator
from ssmboard.evaluators.report import Metric


def tasks_path() -> Path:
    """The folder of the shipped offline tasks (lm-eval's ``--include_path``)."""
    return assets_dir() / "tasks"


def shipped_tasks() -> list[str]:
    """Task names (and the ``shakespeare`` tag) defined by the shipped YAML files."""
    names = sorted(p.stem for p in tasks_path().glob("*.yaml"))
    return names + (["shakespeare"] if names else [])


def lm_eval_module():
    from ssmboard.extras import require

    return require("lm_eval", "lm-eval", "the lmeval evaluator")


@functools.lru_cache(maxsize=4)
def task_manager(include_path: str = "", defaults: bool = False):
    """lm-eval's TaskManager over the shipped tasks (+ ``include_path``); lm-eval's own with ``defaults``."""
    lm_eval_module()
    from lm_eval.tasks import TaskManager

    paths = [str(tasks_path())] + ([include_path] if include_path else [])
    return TaskManager(include_path=paths, include_defaults=defaults)


def check_tasks(tasks: tuple[str, ...], include_path: str = "") -> bool:
    """Raise for a task no index knows (listing the shipped ones); True when all are shipped."""
    shipped = set(shipped_tasks())
    rest = [t for t in tasks if t not in shipped]
    if not rest:
        return True
    known = set(task_manager(include_path, defaults=True).all_tasks)
    unknown = [t for t in rest if t not in known]
    if unknown:
        raise EvaluationError(f"unknown lm-eval task(s) {', '.join(unknown)}; shipped tasks: "
                              f"{', '.join(shipped_tasks())} (or any of the {len(known)} tasks `lm_eval ls tasks` "
                              "lists)")
    return False


@dataclass(frozen=True)
class LmEvalParams(Params):
    tasks: tuple[str, ...] = ("shakespeare_cloze",)
    num_fewshot: int | None = None
    limit: float | None = None  # documents per task: a count (>= 1) or a fraction (< 1); None for all
    batch_size: int = 8
    bootstrap_iters: int = 1000
    include_path: str = ""  # an extra folder of task YAMLs (the shipped tasks are always included)
    seed: int = 0

    def validate(self) -> None:
        if not self.tasks:
            raise EvaluationError("lmeval needs at least one task, e.g. tasks=shakespeare_cloze")
        if self.batch_size < 1 or self.bootstrap_iters < 0 or (self.limit is not None and self.limit <= 0):
            raise EvaluationError("lmeval needs batch_size >= 1, bootstrap_iters >= 0 and limit > 0 (or none)")
        if self.include_path and not Path(self.include_path).is_dir():
            raise EvaluationError(f"lmeval include_path {self.include_path!r} is not a folder of task YAMLs")
        check_tasks(self.tasks, self.include_path)


def _limit(limit: float | None) -> int | float | None:
    if limit is None:
        return None
    return int(limit) if limit >= 1 else float(limit)


def results_to_metrics(results: dict[str, Any], base_ctx: dict[str, Any]) -> list[Metric]:
    """simple_evaluate's results (with samples) as Metric rows with item scores."""
    rows: list[Metric] = []
    hib = results.get("higher_is_better", {})
    samples = results.get("samples", {}) or {}
    for task, res in results.get("results", {}).items():
        if task in results.get("groups", {}):
            continue  # a group's aggregate: its tasks have rows of their own
        n = (results.get("n-samples", {}).get(task) or {}).get("effective") or 1
        ctx = {**base_ctx, "task": task, "num_fewshot": (results.get("n-shot") or {}).get(task)}
        docs = samples.get(task, [])
        for key, value in res.items():
            if "," not in key or "_stderr," in key or not isinstance(value, (int, float)) or isinstance(value, bool):
                continue
            metric, flt = key.split(",", 1)
            if not math.isfinite(value):
                continue
            err = res.get(f"{metric}_stderr,{flt}")
            err = float(err) if isinstance(err, (int, float)) and math.isfinite(err) else None
            items = {}
            for d in docs:
                v = d.get(metric)
                if isinstance(v, (int, float)) and not isinstance(v, bool) and d.get("filter", flt) == flt:
                    items[str(d["doc_id"])] = float(v)
            name = f"{task}/{metric}" + ("" if flt == "none" else f"/{flt}")
            rows.append(Metric(name, float(value), "", bool(hib.get(task, {}).get(metric, True)), stderr=err,
                               n=int(n), context=dict(ctx), items=items if len(items) == n else {}))
        ll = {}
        for d in docs:
            resp = d.get("filtered_resps")
            if isinstance(resp, list) and len(resp) == 1 and isinstance(resp[0], (int, float)):
                ll[str(d["doc_id"])] = float(resp[0])  # a rolling log-likelihood: one float per document
        if ll and len(ll) == len(docs):
            vals = list(ll.values())
            rows.append(Metric(f"{task}/loglikelihood", statistics.fmean(vals), "nats", True,
                               stderr=statistics.stdev(vals) / math.sqrt(len(vals)) if len(vals) > 1 else None,
                               n=len(vals), context=dict(ctx), items=ll))
    return rows


@register_evaluator("lmeval")
class LmEvalEvaluator:
    name = "lmeval"
    params_type = LmEvalParams
    needs_trained_weights = True

    def points(self, params: LmEvalParams) -> list[dict[str, Any]]:
        return [{"task": t} for t in params.tasks]

    def run_point(self, context: EvalContext, point: dict[str, Any], params: LmEvalParams) -> list[Metric]:
        task = point["task"]
        shipped = check_tasks((task,), params.include_path)
        if shipped:
            os.environ.setdefault("HF_DATASETS_OFFLINE", "1")  # the shipped tasks never need the hub
        lm_eval = lm_eval_module()
        from ssmboard.evaluators.lm_eval_model import SsmboardLM

        lm = SsmboardLM(built=context.built, batch_size=params.batch_size)
        results = lm_eval.simple_evaluate(
            model=lm, tasks=[task], num_fewshot=params.num_fewshot, limit=_limit(params.limit),
            bootstrap_iters=params.bootstrap_iters, log_samples=True,
            task_manager=task_manager(params.include_path, defaults=not shipped),
            random_seed=params.seed, numpy_random_seed=params.seed, torch_random_seed=params.seed,
            fewshot_random_seed=params.seed)
        if results is None:
            raise EvaluationError(f"lm-eval returned no results for task {task!r}")
        version = getattr(lm_eval, "__version__", None)
        base = {"limit": params.limit, "lm_eval_version": version, "device": context.built.device.type}
        return results_to_metrics(results, base)
