"""What runs one job, in a process of its own: ``python -m ssmboard.jobs.child TASK.json``.

The worker writes a task file (the variant's stored spec, suite, parameters, job id, device,
where to write the report) and runs this module in a child process, locally or as a Slurm
job. It calls ``ssmboard.evaluate(..., out=REPORT)``: the rows go to a report file, never to
the database, so a compute node needs no access to the store and a crash here (segfault,
CUDA error, out of memory, SIGKILL) costs the worker nothing. The worker imports the file.
On an error the one-line reason is written beside the report (``REPORT.error``).
"""
from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path
from typing import Any


def error_path(report_path: str | Path) -> Path:
    return Path(str(report_path) + ".error")


def run_task(task_path: str | Path) -> str:
    """Evaluate what the task file says; returns the report path. Raises what the evaluation raised."""
    from ssmboard.jobs.evaluate import evaluate
    from ssmboard.registry.spec import VariantSpec

    task: dict[str, Any] = json.loads(Path(task_path).read_text())
    spec = VariantSpec.from_stored(task["spec"])
    out = task["report"]
    print(f"job {task.get('job_id')}: {spec.name} [{task['suite']}] params={task.get('params') or {}}", flush=True)
    summary = evaluate(spec, task["suite"], params=task.get("params") or {}, out=out,
                       device=task.get("device"), progress=bool(task.get("progress", False)),
                       job_id=task.get("job_id"))
    if summary.interrupted:
        raise KeyboardInterrupt("the evaluation was interrupted")
    print(f"job {task.get('job_id')}: {summary.rows} rows from {summary.points_done}/{summary.points_total} "
          f"points written to {out}", flush=True)
    if not Path(out).exists():  # a suite with no points still leaves a (empty) report
        from ssmboard.evaluators.report import Report

        Report.dump_many([], out)
    return str(out)


def run_task_logged(task_path: str) -> str:
    """:func:`run_task` with stdout and stderr appended to the task's log file (the Slurm road:
    submitit calls this on the compute node)."""
    import os

    task = json.loads(Path(task_path).read_text())
    log = task.get("log")
    if log:
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
    try:
        return run_task(task_path)
    except BaseException as exc:
        _write_error(task["report"], exc)
        traceback.print_exc()
        raise


def _write_error(report: str, exc: BaseException) -> None:
    text = f"{type(exc).__name__}: {exc}".strip().splitlines()
    try:
        error_path(report).write_text((text[0] if text else type(exc).__name__)[:2000])
    except OSError:
        pass


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m ssmboard.jobs.child TASK.json", file=sys.stderr)
        return 2
    task = json.loads(Path(args[0]).read_text())
    try:
        run_task(args[0])
    except BaseException as exc:  # noqa: BLE001 - every failure becomes the job's error text
        _write_error(task["report"], exc)
        traceback.print_exc()
        return 130 if isinstance(exc, KeyboardInterrupt) else 1
    return 0


if __name__ == "__main__":
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sys.exit(main())
