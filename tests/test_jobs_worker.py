"""Workers as separate processes, their jobs in child processes: draining, SIGKILL of a job's
process and of a worker, timeout, cancel, Ctrl-C, and the CLI's one-line errors."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from jobs_support import LONG, TINY, TINY_ROWS, alive, child_pids, job_status, store_url, wait_for  # noqa: F401

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _worker(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "ssmboard.cli", "worker", "--poll", "0.2", "--backoff", "0", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO,
                            env={**os.environ})


def _stop(proc: subprocess.Popen, sig=signal.SIGINT, timeout: float = 60) -> str:
    if proc.poll() is None:
        proc.send_signal(sig)
    out, _ = proc.communicate(timeout=timeout)
    return out


def _rows_by_job() -> dict[int, int]:
    from ssmboard.db.queries import results_records

    counts: dict[int, int] = {}
    for r in results_records():
        counts[r["job_id"]] = counts.get(r["job_id"], 0) + 1
    return counts


@pytest.mark.slow
def test_three_workers_drain_thirty_jobs_each_once(store_url):
    from ssmboard.jobs.queue import list_jobs, submit

    ids = [submit("reference-c64", "quick", {**TINY, "seed": i})["job_id"] for i in range(30)]
    workers = [_worker("--until-empty", "--lease", "60", "--worker-id", f"w{i}") for i in range(3)]
    outs = [w.communicate(timeout=900)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0, 0], outs
    jobs = list_jobs()
    assert sorted(j["id"] for j in jobs) == sorted(ids)
    assert {j["status"] for j in jobs} == {"finished"} and {j["attempts"] for j in jobs} == {1}
    assert {j["worker"] for j in jobs} <= {"w0", "w1", "w2"}
    assert _rows_by_job() == {i: TINY_ROWS for i in ids}  # exactly 30 jobs' worth of rows
    lasts = [[line for line in o.splitlines() if line.startswith("worker w")][-1] for o in outs]
    done = sum(int(line.split(": ")[1].split()[0]) for line in lasts)  # "worker w0: N finished, ..."
    assert done == 30


def test_sigkill_of_the_jobs_process_retries_without_duplicate_rows(store_url):
    from ssmboard.jobs.queue import get_job, submit

    jid = submit("reference-c64", "quick", TINY)["job_id"]
    worker = _worker("--until-empty")
    try:
        (pid,) = wait_for(lambda: child_pids(jid), 60, "the job's child process", every=0.05)
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: job_status(jid) == "finished", 120, "the retried job to finish")
    finally:
        out = _stop(worker)
    job = get_job(jid)
    assert job["attempts"] == 2, out
    assert [h["outcome"] for h in job["history"]] == ["failed", "finished"]
    assert job["history"][0]["error"] == "the job's process was killed by SIGKILL"
    assert _rows_by_job() == {jid: TINY_ROWS}
    assert "--- attempt 2" in open(job["log_path"]).read()


def test_sigkill_of_a_worker_requeues_after_the_lease(store_url):
    from ssmboard.jobs.queue import get_job, submit

    jid = submit("reference-c64", "quick", TINY)["job_id"]
    a = _worker("--lease", "3", "--worker-id", "A")
    (pid,) = wait_for(lambda: child_pids(jid), 60, "the job's child process", every=0.05)
    a.kill()
    a.wait()
    killed = time.monotonic()
    wait_for(lambda: not alive(pid), 10, "the orphaned child to die with its worker")
    assert job_status(jid) == "running"  # nobody knows yet
    b = _worker("--until-empty", "--lease", "3", "--worker-id", "B")
    try:
        wait_for(lambda: get_job(jid)["worker"] == "B", 30, "worker B to take the job over")
        waited = time.monotonic() - killed
        wait_for(lambda: job_status(jid) == "finished", 120, "worker B to finish the job")
    finally:
        _stop(b)
    job = get_job(jid)
    assert job["worker"] == "B" and job["attempts"] == 2 and waited >= 2.5
    assert [(h["worker"], h["outcome"]) for h in job["history"]] == [("A", "lost"), ("B", "finished")]
    assert _rows_by_job() == {jid: TINY_ROWS}


def test_timeout_fails_the_job_with_its_reason(store_url):
    from ssmboard.jobs.queue import get_job, submit

    jid = submit("reference-c64", "quick", LONG, max_attempts=1)["job_id"]
    worker = _worker("--until-empty", "--timeout", "4")
    out, _ = worker.communicate(timeout=120)
    job = get_job(jid)
    assert (job["status"], job["error"]) == ("failed", "timed out after 4 s"), out
    assert child_pids(jid) == [] and _rows_by_job() == {}


def test_cancel_of_a_running_job_stops_its_process(store_url):
    from ssmboard.jobs.queue import cancel, get_job, submit

    jid = submit("reference-c64", "quick", LONG)["job_id"]
    worker = _worker("--lease", "4")
    try:
        (pid,) = wait_for(lambda: child_pids(jid), 60, "the job's child process", every=0.05)
        assert cancel(jid)["was"] == "running"
        wait_for(lambda: not alive(pid), 15, "the cancelled job's process to be killed")
        wait_for(lambda: get_job(jid)["history"][-1]["outcome"] == "cancelled", 10, "the attempt to close")
        assert worker.poll() is None  # the worker goes on
    finally:
        _stop(worker)
    assert job_status(jid) == "cancelled" and _rows_by_job() == {}


def test_ctrl_c_on_a_worker_releases_its_job(store_url):
    from ssmboard.jobs.queue import get_job, submit

    jid = submit("reference-c64", "quick", LONG)["job_id"]
    worker = _worker()
    (pid,) = wait_for(lambda: child_pids(jid), 60, "the job's child process", every=0.05)
    out = _stop(worker, signal.SIGINT)
    assert worker.returncode == 130 and "1 released" in out
    job = get_job(jid)
    assert (job["status"], job["attempts"], job["worker"]) == ("pending", 0, None)
    # the worker SIGKILLs the child's process group; on a loaded machine the kernel may take a moment
    wait_for(lambda: not alive(pid), 10, "the released job's child to be gone")


_DRAIN = """
import json, sys
from ssmboard.jobs.worker import drain
summary = drain(progress=True, backoff_s=0)
heavy = sorted(m for m in ("torch", "transformers", "ssmboard.evaluators.perf", "ssmboard.jobs.runner")
               if m in sys.modules)
print(json.dumps({"outcomes": [j["outcome"] for j in summary.jobs], "heavy": heavy}))
"""


def test_drain_runs_jobs_in_children_with_progress(store_url, python_process):
    from ssmboard.jobs.queue import get_job, submit

    ids = [submit(v, "quick", TINY)["job_id"] for v in ("reference-c64", "reference-c32")]
    r = python_process(_DRAIN, timeout=300)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out == {"outcomes": ["finished", "finished"], "heavy": []}  # evaluator code ran in the children only
    assert "2/2" in r.stderr  # the progress bar
    assert _rows_by_job() == {i: TINY_ROWS for i in ids}
    assert all(get_job(i)["log_path"] for i in ids)


def test_cli_queue_commands(cli_process):
    r = cli_process("submit", "reference-c64", "--param", "prompt_lengths=16", "--param", "iterations=1")
    assert r.returncode == 0 and r.stdout.startswith("queued job 1"), r.stderr
    r = cli_process("submit", "reference-c64", "--param", "prompt_lengths=16", "--param", "iterations=1")
    assert r.returncode == 0 and "not queued: an identical job 1" in r.stdout
    r = cli_process("jobs", "--json")
    assert [j["status"] for j in json.loads(r.stdout)] == ["pending"]
    r = cli_process("jobs", "show", "1")
    assert "status:         pending" in r.stdout
    r = cli_process("jobs", "cancel", "1")
    assert r.returncode == 0 and "cancelled job 1 (was pending)" in r.stdout
    r = cli_process("jobs", "--status", "cancelled")
    assert "cancelled" in r.stdout.splitlines()[1]
    r = cli_process("jobs", "retry", "1")
    assert r.returncode == 0 and "pending again" in r.stdout
    r = cli_process("schedule", "add", "nightly", "--cron", "0 3 * * *", "--variants", "reference-*")
    assert r.returncode == 0 and "first run" in r.stdout, r.stderr
    r = cli_process("schedule", "list")
    assert "nightly" in r.stdout and "0 3 * * *" in r.stdout
    r = cli_process("regressions", "--fail")
    assert r.returncode == 0 and "no regressions" in r.stdout


@pytest.mark.parametrize("args, message", [
    (("submit", "reference-c64", "--suite", "nope"), "unknown suite 'nope'"),
    (("schedule", "add", "x", "--cron", "every day", "--variants", "a"), "bad cron expression"),
    (("jobs", "show", "42"), "no job 42"),
    (("regressions", "--since", "yesterday"), "bad date"),
])
def test_cli_bad_input_is_one_line_and_exit_2(cli_process, args, message):
    r = cli_process(*args)
    assert r.returncode == 2 and message in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_unreachable_database_is_one_line(cli_process):
    r = cli_process("jobs", env={"SSMBOARD_DB": "postgresql+psycopg://u:secret@127.0.0.1:9/none"})
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "secret" not in r.stderr
    assert "cannot open the database" in r.stderr


def test_slurm_executor_not_installed_is_one_line(cli_process, python_process, tmp_path):
    r = cli_process("worker", "--executor", "slurm", "--once", env={"PATH": str(tmp_path)})
    assert r.returncode == 2 and "sbatch" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    code = ("import sys; sys.modules['submitit'] = None\n"  # as if submitit were not installed
            "from ssmboard.cli import main; sys.exit(main(['worker', '--executor', 'slurm', '--once']))")
    r = python_process(code)
    assert r.returncode == 2 and "pip install 'ssmboard[slurm]'" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_slurm_settings_from_a_config_file(tmp_path):
    from ssmboard.jobs.executors import ExecutorError, load_slurm_config

    good = tmp_path / "slurm.toml"
    good.write_text('[slurm]\npartition = "gpu"\ngpus = 1\ncpus = 8\nmem_gb = 64\ntime_min = 120\n')
    assert load_slurm_config(good) == {"partition": "gpu", "gpus": 1, "cpus": 8, "mem_gb": 64, "time_min": 120}
    js = tmp_path / "slurm.json"
    js.write_text('{"partition": "debug", "cpus": 2}')
    assert load_slurm_config(js) == {"partition": "debug", "cpus": 2}
    bad = tmp_path / "bad.toml"
    bad.write_text('partition = "gpu"\ngpu = 1\n')
    with pytest.raises(ExecutorError, match=r"unknown Slurm setting\(s\) \['gpu'\]"):
        load_slurm_config(bad)
    with pytest.raises(ExecutorError, match="cannot read"):
        load_slurm_config(tmp_path / "missing.toml")
