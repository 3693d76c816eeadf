"""The slurm executor on the real one-node cluster (scripts/services/start.sh): each job is a Slurm
job through submitit that writes a report file the worker imports; cancel reaches Slurm; a job
that raises is failed with its error; several jobs run at once."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
from jobs_support import LONG, TINY, TINY_ROWS, wait_for

pytestmark = pytest.mark.slow
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _sacct_state(job_id: str) -> str:
    out = subprocess.run(["sacct", "-n", "-X", "-P", "-j", job_id, "-o", "State"], capture_output=True, text=True)
    return out.stdout.strip()


def _slurm_worker(slurm, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "ssmboard.cli", "worker", "--executor", "slurm", "--partition",
                             slurm.partition, "--time-min", "10", "--cpus", "1", "--poll", "0.5", "--backoff", "0",
                             *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO,
                            env={**os.environ})


def _rows(job_id: int) -> int:
    from ssmboard.db.queries import results_records

    return sum(1 for r in results_records() if r["job_id"] == job_id)


def test_quick_job_and_a_failing_job_through_slurm(slurm):
    import ssmboard
    from ssmboard.jobs.queue import get_job, submit
    from ssmboard.jobs.worker import run_worker

    ssmboard.register_variant("broken", scan="reference", chunk_size=64, model="/nonexistent/model")
    good = submit("reference-c64", "quick", TINY)["job_id"]
    bad = submit("broken", "quick", TINY, max_attempts=1)["job_id"]
    summary = run_worker(executor="slurm", until_empty=True, poll=0.5, backoff_s=0,
                         slurm={"partition": slurm.partition, "time_min": 10, "cpus": 1})
    assert summary.finished == 1 and summary.failed == 1
    ok, failed = get_job(good), get_job(bad)
    assert ok["status"] == "finished" and ok["slurm_state"] == "COMPLETED" and _rows(good) == TINY_ROWS
    assert _sacct_state(ok["slurm_job_id"]) == "COMPLETED"  # it really ran as a Slurm job
    assert failed["status"] == "failed" and failed["slurm_state"] == "FAILED"
    assert "ModelLoadError" in failed["error"] and "/nonexistent/model" in failed["error"]
    assert _rows(bad) == 0
    assert "rows from 1/1 points" in open(ok["log_path"]).read()


def test_cancel_reaches_slurm(slurm):
    from ssmboard.jobs.queue import cancel, get_job, submit

    jid = submit("reference-c64", "quick", LONG)["job_id"]
    worker = _slurm_worker(slurm, "--lease", "6")
    try:
        job = wait_for(lambda: (lambda j: j if j["slurm_state"] == "RUNNING" else None)(get_job(jid)), 120,
                       "the Slurm job to run")
        cancel(jid)
        wait_for(lambda: get_job(jid)["history"][-1]["outcome"] == "cancelled", 90, "the worker to stop it")
        assert worker.poll() is None
    finally:
        worker.send_signal(signal.SIGINT)
        out = worker.communicate(timeout=120)[0]
    assert _sacct_state(job["slurm_job_id"]).startswith("CANCELLED"), out
    final = get_job(jid)
    assert final["status"] == "cancelled" and final["slurm_state"].startswith("CANCELLED") and _rows(jid) == 0


def test_several_slurm_jobs_at_once(slurm):
    from ssmboard.jobs.queue import list_jobs, submit

    ids = [submit(v, "quick", TINY)["job_id"] for v in ("reference-c16", "reference-c32", "reference-c64")]
    workers = [_slurm_worker(slurm, "--until-empty") for _ in range(3)]
    outs = [w.communicate(timeout=600)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0, 0], outs
    jobs = list_jobs()
    assert {j["status"] for j in jobs} == {"finished"} and len({j["slurm_job_id"] for j in jobs}) == 3
    assert all(_rows(i) == TINY_ROWS for i in ids)
