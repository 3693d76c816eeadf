"""`ssmboard submit | worker | jobs | schedule | regressions`: the queue from the command line.

Thin over :mod:`ssmboard.jobs.queue`, :mod:`ssmboard.jobs.worker`,
:mod:`ssmboard.jobs.schedules` and :mod:`ssmboard.jobs.regressions`; light at import.
"""
from __future__ import annotations

import argparse
import sys
from typing import Any

from ssmboard.cli.output import cell, parse_assignments, print_json, print_table

_JOB_COLUMNS = ("id", "variant", "suite", "status", "attempts", "worker", "created_at", "finished_at",
                "slurm_job_id", "error")


def _short(text: Any, n: int = 60) -> Any:
    if isinstance(text, str) and len(text) > n:
        return text[: n - 3] + "..."
    return text


def cmd_submit(args: argparse.Namespace) -> int:
    from ssmboard.jobs.queue import submit_many

    params = parse_assignments(args.param, "--param", "prompt_lengths=128,512", lists=True)
    for r in submit_many(args.variant, [args.suite], params, max_attempts=args.max_attempts):
        if r["created"]:
            print(f"queued job {r['job_id']}: {r['variant']} [{r['suite']}]")
        else:
            print(f"not queued: an identical job {r['job_id']} ({r['variant']} [{r['suite']}]) is already "
                  f"{r['status']}")
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    import logging

    from ssmboard.jobs.executors import load_slurm_config
    from ssmboard.jobs.worker import run_worker

    logging.getLogger("ssmboard.jobs").setLevel(logging.INFO)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    slurm: dict[str, Any] = load_slurm_config(args.slurm_config) if args.slurm_config else {}
    for key in ("partition", "gpus", "cpus", "mem_gb", "time_min"):
        if getattr(args, key) is not None:
            slurm[key] = getattr(args, key)
    options: dict[str, Any] = dict(device=args.device, poll=args.poll, lease_s=args.lease, timeout_s=args.timeout,
                                   backoff_s=args.backoff, slurm=slurm)
    if args.worker_id:
        options["worker_id"] = args.worker_id
    summary = run_worker(executor=args.executor, max_jobs=args.max_jobs, once=args.once,
                         until_empty=args.until_empty, **options)
    print(f"worker {summary.worker}: {summary.finished} finished, {summary.failed} failed attempts, "
          f"{summary.cancelled} cancelled, {summary.lost} lost, {summary.released} released")
    return 130 if summary.interrupted else 0


def cmd_jobs(args: argparse.Namespace) -> int:
    from ssmboard.jobs.queue import list_jobs

    rows = list_jobs(args.status, args.limit)
    if args.json:
        print_json(rows)
        return 0
    shown = [{**r, "error": _short(r["error"]), "worker": _short(r["worker"], 24)} for r in rows]
    print_table(shown, _JOB_COLUMNS, [c.upper() for c in _JOB_COLUMNS])
    return 0


def cmd_jobs_show(args: argparse.Namespace) -> int:
    from ssmboard.jobs.queue import get_job, log_tail

    job = get_job(args.id)
    if args.json:
        print_json({**job, "log_tail": log_tail(job, args.lines)})
        return 0
    for key in ("id", "variant", "fingerprint", "suite", "params", "status", "attempts", "max_attempts", "worker",
                "created_at", "started_at", "finished_at", "not_before", "log_path", "slurm_job_id",
                "slurm_state", "error"):
        print(f"{key + ':':15} {cell(job.get(key))}")
    if job["history"]:
        print("\nattempts:")
        print_table(job["history"], ("attempt", "worker", "started_at", "ended_at", "outcome", "slurm_state", "error"),
                    ("ATTEMPT", "WORKER", "STARTED", "ENDED", "OUTCOME", "SLURM", "ERROR"))
    tail = log_tail(job, args.lines)
    if tail:
        print(f"\nlog ({job['log_path']}, last {len(tail)} lines):")
        print("\n".join(tail))
    return 0


def cmd_jobs_cancel(args: argparse.Namespace) -> int:
    from ssmboard.jobs.queue import cancel

    job = cancel(args.id)
    how = "its worker stops it at its next heartbeat" if job["was"] == "running" else "it will not run"
    print(f"cancelled job {job['id']} (was {job['was']}): {how}")
    return 0


def cmd_jobs_retry(args: argparse.Namespace) -> int:
    from ssmboard.jobs.queue import retry

    job = retry(args.id)
    print(f"job {job['id']} is pending again ({job['variant']} [{job['suite']}])")
    return 0


def cmd_schedule_add(args: argparse.Namespace) -> int:
    from ssmboard.jobs.schedules import add_schedule, next_due

    params = parse_assignments(args.param, "--param", "iterations=5", lists=True)
    variants = [v for item in args.variants for v in item.split(",") if v]
    sch = add_schedule(args.name, args.cron, args.suite, variants, params)
    print(f"schedule {sch['name']}: {sch['suite']} on {', '.join(sch['variants'])} at '{sch['cron']}' (UTC); "
          f"first run {next_due(sch['cron'], sch['created_at']):%Y-%m-%d %H:%M}")
    return 0


def cmd_schedule_list(args: argparse.Namespace) -> int:
    from ssmboard.jobs.schedules import list_schedules

    rows = list_schedules()
    if args.json:
        print_json(rows)
        return 0
    print_table(rows, ("name", "cron", "suite", "variants", "last_due_at", "next_due", "note"),
                ("NAME", "CRON", "SUITE", "VARIANTS", "LAST RUN", "NEXT", "NOTE"))
    return 0


def cmd_schedule_remove(args: argparse.Namespace) -> int:
    from ssmboard.jobs.schedules import remove_schedule

    remove_schedule(args.name)
    print(f"removed schedule {args.name}")
    return 0


def cmd_regressions(args: argparse.Namespace) -> int:
    from ssmboard.jobs.regressions import list_regressions

    rows = list_regressions(args.since)
    if args.json:
        print_json(rows)
    elif rows:
        shown = [{**r, "before": f"{r['before']:.4g}", "after": f"{r['after']:.4g}",
                  "interval": f"[{r['lo']:.3g}, {r['hi']:.3g}]", "context": _short(cell(r["context"]), 50)}
                 for r in rows]
        print_table(shown, ("created_at", "job_id", "previous_job_id", "variant", "suite", "metric", "before",
                            "after", "unit", "interval", "method", "context"),
                    ("WHEN", "JOB", "PREVIOUS", "VARIANT", "SUITE", "METRIC", "BEFORE", "AFTER", "UNIT",
                     "95% INTERVAL", "METHOD", "CONTEXT"))
    else:
        print("no regressions" + (f" since {args.since}" if args.since else ""))
    if args.fail and rows:
        print(f"{len(rows)} regression(s)", file=sys.stderr)
        return 1
    return 0


def add_parser(sub: Any) -> None:
    from ssmboard.evaluators.suites import SUITES

    s = sub.add_parser("submit", help="queue a suite on one or more variants (workers run it)")
    s.add_argument("variant", nargs="+", help="registered variant names")
    s.add_argument("--suite", default="quick", help=f"the suite (default quick; known: {', '.join(sorted(SUITES))})")
    s.add_argument("--param", action="append", metavar="NAME=VALUE", help="override a suite parameter (repeatable)")
    s.add_argument("--max-attempts", type=int, default=3, help="tries before the job is failed (default 3)")
    s.set_defaults(func=cmd_submit)

    w = sub.add_parser("worker", help="drain the job queue (jobs run in child processes or Slurm jobs)")
    w.add_argument("--executor", choices=("local", "slurm"), default="local")
    w.add_argument("--max-jobs", type=int, help="stop after this many jobs")
    w.add_argument("--once", action="store_true", help="run at most one job, then stop")
    w.add_argument("--until-empty", action="store_true", help="stop when no job is pending or running")
    w.add_argument("--device", help="cuda or cpu, for the jobs (default: the GPU when there is one)")
    w.add_argument("--poll", type=float, default=2.0, help="seconds between claims when idle (default 2)")
    w.add_argument("--lease", type=float, default=60.0,
                   help="seconds without a heartbeat after which another worker re-queues a job (default 60)")
    w.add_argument("--timeout", type=float, default=4 * 3600.0, help="per-job time limit in seconds (default 4 h)")
    w.add_argument("--backoff", type=float, default=30.0, help="first retry delay in seconds, doubled per attempt")
    w.add_argument("--worker-id", help="a name for this worker (default host:pid:random)")
    g = w.add_argument_group("slurm executor")
    g.add_argument("--slurm-config", metavar="FILE", help="TOML/JSON with partition, gpus, cpus, mem_gb, time_min, ...")
    g.add_argument("--partition")
    g.add_argument("--gpus", type=int, help="GPUs per job")
    g.add_argument("--cpus", type=int, help="CPUs per job")
    g.add_argument("--mem-gb", dest="mem_gb", type=float, help="memory per job in GB")
    g.add_argument("--time-min", dest="time_min", type=int, help="Slurm time limit per job in minutes")
    w.set_defaults(func=cmd_worker)

    j = sub.add_parser("jobs", help="the job queue: list, show, cancel, retry")
    j.add_argument("--status", help="only jobs with this status (pending, running, finished, failed, cancelled)")
    j.add_argument("--limit", type=int, default=None)
    j.add_argument("--json", action="store_true")
    j.set_defaults(func=cmd_jobs)
    jsub = j.add_subparsers(dest="jobs_command", metavar="{show,cancel,retry}")
    show = jsub.add_parser("show", help="one job with its attempts, error, log tail and Slurm state")
    show.add_argument("id", type=int)
    show.add_argument("--lines", type=int, default=20, help="log lines to show (default 20)")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=cmd_jobs_show)
    can = jsub.add_parser("cancel", help="cancel a pending or running job")
    can.add_argument("id", type=int)
    can.set_defaults(func=cmd_jobs_cancel)
    ret = jsub.add_parser("retry", help="re-queue a failed or cancelled job")
    ret.add_argument("id", type=int)
    ret.set_defaults(func=cmd_jobs_retry)

    sc = sub.add_parser("schedule", help="cron-like recurring suites (fired by running workers)")
    scsub = sc.add_subparsers(dest="schedule_command", metavar="{add,list,remove}", required=True)
    add = scsub.add_parser("add", help="add a schedule")
    add.add_argument("name")
    add.add_argument("--cron", required=True, help="five cron fields in UTC, e.g. '0 3 * * *'")
    add.add_argument("--suite", default="quick")
    add.add_argument("--variants", action="append", required=True, help="names or patterns, e.g. 'triton-*'")
    add.add_argument("--param", action="append", metavar="NAME=VALUE")
    add.set_defaults(func=cmd_schedule_add)
    lst = scsub.add_parser("list", help="schedules, their last and next runs, and missed runs")
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(func=cmd_schedule_list)
    rm = scsub.add_parser("remove", help="remove a schedule (its queued jobs stay)")
    rm.add_argument("name")
    rm.set_defaults(func=cmd_schedule_remove)

    r = sub.add_parser("regressions", help="metrics that got worse beyond noise between scheduled runs")
    r.add_argument("--since", help="only those recorded since this date (ISO, UTC)")
    r.add_argument("--fail", action="store_true", help="exit 1 when there is any (for CI pipelines)")
    r.add_argument("--json", action="store_true")
    r.set_defaults(func=cmd_regressions)
