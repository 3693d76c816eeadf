"""The queue's state machine in the store, on SQLite and on PostgreSQL: dedup, atomic claims by
concurrent processes, retries with backoff, lease expiry, cancel and retry, one-transaction
finish, schedules fired once per due time, regressions, and the 0003 -> 0004 migration."""
from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta

import pytest
from jobs_support import TINY, store_url  # noqa: F401

from ssmboard.evaluators.report import Environment, Metric, Report

T0 = datetime(2026, 12, 1, 2, 0, 0)


def _report(spec, value: float, stderr: float | None = 0.01, items: dict | None = None) -> Report:
    return Report.for_spec(spec, evaluator="perf", environment=Environment(device_name="cpu", cpu_model="x"),
                           metrics=[Metric("ttft", value, "s", False, stderr=stderr, context={"prompt_len": 16},
                                           items=items or {})])


def _finish_with(job: dict, value: float, worker: str = "w", now=None, **kw) -> dict | None:
    import ssmboard
    from ssmboard.db import jobs as store_jobs
    from ssmboard.jobs.sinks import report_keys

    rep = _report(ssmboard.get_variant(job["variant"]), value, **kw)
    return store_jobs.finish(job["id"], worker, [(rep, *report_keys(rep))], now=now)


def test_submit_dedups_active_identical_jobs(store_url):
    from ssmboard.db import jobs as store_jobs
    from ssmboard.jobs.queue import get_job, list_jobs, submit

    a = submit("reference-c64", "quick", TINY)
    assert a["created"] and get_job(a["job_id"])["status"] == "pending"
    b = submit("reference-c64", "quick", dict(TINY))
    assert b == {**a, "created": False}
    c = submit("reference-c64", "quick", {**TINY, "iterations": 2})
    d = submit("reference-c16", "quick", TINY)
    assert c["created"] and d["created"] and len({a["job_id"], c["job_id"], d["job_id"]}) == 3
    job = store_jobs.claim("w", lease_s=60)
    assert job["id"] == a["job_id"] and not submit("reference-c64", "quick", TINY)["created"]  # running counts
    assert _finish_with(job, 1.0) == {"added": 1, "skipped": 0, "items": 0}
    again = submit("reference-c64", "quick", TINY)  # the finished one no longer blocks a new run
    assert again["created"] and again["job_id"] not in (a["job_id"], c["job_id"], d["job_id"])
    assert [j["status"] for j in list_jobs()] == ["pending", "pending", "pending", "finished"]
    assert [j["id"] for j in list_jobs("finished")] == [a["job_id"]] and len(list_jobs(limit=2)) == 2


def test_unknown_suite_and_bad_params_queue_nothing(store_url):
    from ssmboard.errors import EvaluationError, VariantNotFoundError
    from ssmboard.jobs.queue import list_jobs, submit

    with pytest.raises(EvaluationError, match="unknown suite 'nope'"):
        submit("reference-c64", "nope")
    with pytest.raises(EvaluationError, match="perf mode"):
        submit("reference-c64", "quick", {"modes": ("bogus",)})
    with pytest.raises(VariantNotFoundError):
        submit("no-such-variant", "quick")
    assert list_jobs() == []


def test_register_variant_with_evaluate_enqueues(store_url):
    import ssmboard
    from ssmboard.jobs.queue import list_jobs

    spec = ssmboard.register_variant("mine-c32", scan="reference", chunk_size=32, evaluate=["quick"])
    (job,) = list_jobs()
    assert (job["variant"], job["suite"], job["fingerprint"], job["status"]) == ("mine-c32", "quick",
                                                                                spec.fingerprint, "pending")
    ssmboard.register_variant("mine-c32", scan="reference", chunk_size=32, evaluate="quick")
    assert len(list_jobs()) == 1  # same spec, same suite, still pending: not queued twice


_CLAIMER = """
import json, sys
from ssmboard.db import jobs as store_jobs
from ssmboard.db.engine import get_store
get_store()
print("ready", flush=True)
sys.stdin.readline()
got = []
while True:
    job = store_jobs.claim(sys.argv[1], lease_s=600)
    if job is None:
        break
    got.append(job["id"])
    assert store_jobs.finish(job["id"], sys.argv[1], []) is not None
print(json.dumps(got))
"""


def test_concurrent_processes_claim_each_job_once(store_url):
    from ssmboard.jobs.queue import list_jobs, submit

    ids = [submit("reference-c64", "quick", {**TINY, "iterations": i + 1})["job_id"] for i in range(40)]
    procs = [subprocess.Popen([sys.executable, "-c", _CLAIMER, f"w{i}"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True) for i in range(4)]
    for p in procs:
        assert p.stdout.readline().strip() == "ready"
    for p in procs:  # start them together
        p.stdin.write("go\n")
        p.stdin.flush()
    claimed = []
    for p in procs:
        out, _ = p.communicate(timeout=120)
        assert p.returncode == 0
        claimed += json.loads(out.strip().splitlines()[-1])
    assert sorted(claimed) == sorted(ids)  # every job once, none twice
    jobs = list_jobs()
    assert {j["status"] for j in jobs} == {"finished"} and {j["attempts"] for j in jobs} == {1}


def test_failures_retry_with_backoff_then_fail_with_error(store_url):
    from ssmboard.db import jobs as store_jobs
    from ssmboard.jobs.queue import get_job, submit

    jid = submit("reference-c64", "quick", TINY, max_attempts=3)["job_id"]
    now = T0
    for attempt, delay in ((1, 10), (2, 20)):
        job = store_jobs.claim("w", lease_s=60, now=now)
        assert job["id"] == jid and job["attempts"] == attempt
        assert store_jobs.fail(jid, "w", f"boom {attempt}", backoff_s=10, now=now) == "pending"
        assert get_job(jid)["error"] == f"boom {attempt}"
        assert store_jobs.claim("w", lease_s=60, now=now + timedelta(seconds=delay - 1)) is None  # backing off
        now += timedelta(seconds=delay)
    job = store_jobs.claim("w", lease_s=60, now=now)
    assert job["attempts"] == 3
    assert store_jobs.fail(jid, "w", "boom 3", backoff_s=10, now=now) == "failed"
    final = get_job(jid)
    assert final["status"] == "failed" and final["error"] == "boom 3" and final["attempts"] == 3
    assert [(h["attempt"], h["outcome"], h["error"]) for h in final["history"]] == [
        (1, "failed", "boom 1"), (2, "failed", "boom 2"), (3, "failed", "boom 3")]
    assert store_jobs.claim("w", lease_s=60, now=now + timedelta(days=1)) is None
    again = store_jobs.retry(jid)
    assert again["id"] == jid and again["status"] == "pending" and again["attempts"] == 0


def test_expired_lease_requeues_and_the_old_worker_cannot_finish(store_url):
    from ssmboard.db import jobs as store_jobs
    from ssmboard.db.queries import results_records
    from ssmboard.jobs.queue import get_job, submit

    jid = submit("reference-c64", "quick", TINY)["job_id"]
    assert store_jobs.claim("A", lease_s=10, now=T0)["id"] == jid
    assert store_jobs.heartbeat(jid, "A", lease_s=10, now=T0 + timedelta(seconds=8)) == "running"
    assert store_jobs.claim("B", lease_s=10, now=T0 + timedelta(seconds=17)) is None  # renewed to 18 s
    job = store_jobs.claim("B", lease_s=10, now=T0 + timedelta(seconds=19))
    assert job["id"] == jid and job["worker"] == "B" and job["attempts"] == 2
    assert store_jobs.heartbeat(jid, "A", lease_s=10) == "lost"
    assert _finish_with(get_job(jid), 1.0, worker="A") is None  # A's rows never land
    assert results_records() == []
    assert _finish_with(job, 2.0, worker="B")["added"] == 1
    done = get_job(jid)
    assert done["status"] == "finished" and [r["value"] for r in results_records()] == [2.0]
    assert [h["outcome"] for h in done["history"]] == ["lost", "finished"]
    assert "stopped heartbeating" in done["history"][0]["error"]


def test_cancel_pending_and_running(store_url):
    from ssmboard.db import jobs as store_jobs
    from ssmboard.db.queries import results_records
    from ssmboard.errors import JobError
    from ssmboard.jobs.queue import cancel, get_job, submit

    running = submit("reference-c64", "quick", TINY)["job_id"]
    pending = submit("reference-c16", "quick", TINY)["job_id"]
    assert store_jobs.claim("w", lease_s=60)["id"] == running
    assert cancel(pending)["was"] == "pending" and cancel(running)["was"] == "running"
    assert store_jobs.claim("w", lease_s=60) is None
    assert store_jobs.heartbeat(running, "w", lease_s=60, slurm_state="CANCELLED") == "cancelled"
    assert _finish_with(get_job(running), 1.0) is None and results_records() == []
    assert get_job(running)["status"] == "cancelled" and get_job(running)["slurm_state"] == "CANCELLED"
    with pytest.raises(JobError, match="only a pending or running job"):
        cancel(running)
    with pytest.raises(JobError, match="no job 999"):
        cancel(999)


def test_release_gives_the_job_back_uncounted(store_url):
    from ssmboard.db import jobs as store_jobs
    from ssmboard.jobs.queue import get_job, submit

    jid = submit("reference-c64", "quick", TINY)["job_id"]
    store_jobs.claim("w", lease_s=60)
    assert store_jobs.release(jid, "w")
    job = get_job(jid)
    assert job["status"] == "pending" and job["attempts"] == 0 and job["history"][0]["outcome"] == "released"


# -- schedules -------------------------------------------------------------------------------
_FIRE = """
import json, sys
from datetime import datetime
from ssmboard.jobs.schedules import run_due
from ssmboard.db.engine import get_store
get_store()
print("ready", flush=True)
sys.stdin.readline()
print(json.dumps(run_due(now=datetime.fromisoformat(sys.argv[1])), default=str))
"""


def _fire_in_processes(now: datetime, n: int = 2) -> list[list[dict]]:
    procs = [subprocess.Popen([sys.executable, "-c", _FIRE, now.isoformat()], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True) for _ in range(n)]
    for p in procs:
        assert p.stdout.readline().strip() == "ready"
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    outs = []
    for p in procs:
        out, _ = p.communicate(timeout=120)
        assert p.returncode == 0
        outs.append(json.loads(out.strip().splitlines()[-1]))
    return outs


def test_schedule_fires_once_per_due_time_across_workers_and_restarts(store_url):
    from ssmboard.jobs.queue import list_jobs
    from ssmboard.jobs.schedules import add_schedule, list_schedules, schedule_runs

    add_schedule("nightly", "0 3 * * *", "quick", ["reference-c6*", "reference-c12*"], TINY, now=T0)
    # two workers at 03:00:30 of the first day: one run, two jobs (reference-c64 and reference-c128)
    outs = _fire_in_processes(T0 + timedelta(hours=1, seconds=30))
    fired = [f for out in outs for f in out]
    assert len(fired) == 1 and fired[0]["created"] == 2 and fired[0]["missed"] == 0
    assert sorted(j["variant"] for j in list_jobs()) == ["reference-c128", "reference-c64"]
    # a restarted worker later the same day enqueues nothing more
    assert _fire_in_processes(T0 + timedelta(hours=20), n=1) == [[]]
    # nobody up for three days: only the latest missed run is enqueued, and the list says so
    later = T0 + timedelta(days=3, hours=2)
    (sched,) = list_schedules(now=later)
    assert sched["missing"] == 2 and "skipping 2 earlier missed run" in sched["note"]  # Dec 2 and 3
    outs = _fire_in_processes(later)
    fired = [f for out in outs for f in out]
    assert len(fired) == 1 and fired[0]["missed"] == 2 and fired[0]["due_at"].startswith("2026-12-04 03:00")
    assert fired[0]["created"] == 0  # the day-1 jobs are still pending: not queued twice
    (sched,) = list_schedules(now=later)
    assert sched["last_missed"] == 2 and "2 missed run(s)" in sched["note"] and sched["due_now"] is None
    assert [r["due_at"] for r in schedule_runs("nightly")] == [datetime(2026, 12, 1, 3), datetime(2026, 12, 4, 3)]


def test_bad_cron_and_duplicate_schedule(store_url):
    from ssmboard.errors import JobError
    from ssmboard.jobs.schedules import add_schedule, list_schedules, remove_schedule

    with pytest.raises(JobError, match="bad cron expression"):
        add_schedule("x", "61 * * * *", "quick", ["reference-c64"])
    add_schedule("x", "*/5 * * * *", "quick", ["reference-c64"])
    with pytest.raises(JobError, match="exists"):
        add_schedule("x", "*/5 * * * *", "quick", ["reference-c64"])
    remove_schedule("x")
    assert list_schedules() == []
    with pytest.raises(JobError, match="no schedule"):
        remove_schedule("x")


# -- regressions -----------------------------------------------------------------------------
def _run_job_with(value: float, now: datetime, **kw) -> int:
    from ssmboard.db import jobs as store_jobs
    from ssmboard.jobs.queue import submit

    jid = submit("reference-c64", "quick", TINY)["job_id"]
    job = store_jobs.claim("w", lease_s=60, now=now)
    assert _finish_with(job, value, now=now, **kw) is not None
    return jid


def test_regressions_flag_worse_beyond_noise_only(store_url):
    from ssmboard.jobs.regressions import check_job, list_regressions

    first = _run_job_with(1.00, T0)
    assert check_job(first) == []  # nothing to compare with
    same = _run_job_with(1.01, T0 + timedelta(days=1))  # within two standard errors
    assert check_job(same) == []
    better = _run_job_with(0.50, T0 + timedelta(days=2))  # faster: not a regression
    assert check_job(better) == []
    worse = _run_job_with(0.80, T0 + timedelta(days=3))  # slower than the previous run beyond noise
    (reg,) = check_job(worse)
    assert (reg["previous_job_id"], reg["metric"], reg["method"]) == (better, "ttft", "stderr")
    assert reg["before"] == 0.5 and reg["after"] == 0.8 and reg["lo"] > 0
    assert [r["job_id"] for r in list_regressions()] == [worse]
    assert list_regressions(since="2100-01-01") == []


def test_regressions_pair_item_scores(store_url):
    from ssmboard.jobs.regressions import check_job

    base = {str(i): 1.0 + 0.01 * i for i in range(20)}
    _run_job_with(1.1, T0, stderr=None, items=base)
    shifted = _run_job_with(1.3, T0 + timedelta(days=1), stderr=None, items={k: v + 0.2 for k, v in base.items()})
    (reg,) = check_job(shifted)
    assert reg["method"] == "paired-bootstrap" and reg["delta"] == pytest.approx(0.2)


# -- migration -------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_migration_0004_from_0003_with_data(backend, tmp_path, request):
    import sqlalchemy as sa

    from ssmboard.db import migrate

    url = f"sqlite:///{tmp_path / 'old.db'}" if backend == "sqlite" else request.getfixturevalue("pg_url")
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        migrate.upgrade(conn, "0003")
        conn.execute(sa.text("INSERT INTO variants (id, name, fingerprint, spec, model, scan, chunk_size, dtype, "
                             "active, builtin, created_at) VALUES (1, 'v', 'fp1', '{}', 'm', 'reference', 64, "
                             "'float32', :t, :f, '2026-11-30 00:00:00')"), {"t": True, "f": False})
        for jid, status in ((1, "PENDING"), (2, "FINISHED"), (3, "FAILED"), (4, "RUNNING")):
            conn.execute(sa.text("INSERT INTO jobs (id, variant_id, suite, params, status, created_at, attempts) "
                                 "VALUES (:i, 1, 'quick', '{}', :s, '2026-11-30 00:00:00', 1)"), {"i": jid, "s": status})
        conn.execute(sa.text("INSERT INTO results (id, row_key, variant_id, fingerprint, job_id, evaluator, metric, "
                             "value, unit, higher_is_better, n, context, created_at) VALUES (1, 'k', 1, 'fp1', 2, "
                             "'perf', 'ttft', 1.5, 's', :f, 1, '{}', '2026-11-30 00:00:00')"), {"f": False})
        conn.commit()
        migrate.upgrade(conn, "0004")
        rows = conn.execute(sa.text("SELECT id, status, fingerprint, max_attempts FROM jobs ORDER BY id")).all()
        assert [tuple(r) for r in rows] == [(1, "pending", "fp1", 3), (2, "finished", "fp1", 3),
                                            (3, "failed", "fp1", 3), (4, "running", "fp1", 3)]
        assert conn.execute(sa.text("SELECT job_id, value FROM results")).one() == (2, 1.5)
        names = set(sa.inspect(conn).get_table_names())
        assert {"schedules", "schedule_runs", "regressions"} <= names
    engine.dispose()
