"""Smoke tests: each real service answers through its fixture (see tests/conftest_services.py).

Start the services with scripts/services/start.sh; under CI=true a missing one fails here.
"""
from __future__ import annotations

import operator
import socket
import subprocess
import sys
import time

import pytest


def _wait_done(job, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not job.done(force_check=True):
        if time.monotonic() > deadline:
            job.cancel(check=False)
            pytest.fail(f"Slurm job {job.job_id} not done after {timeout} s (state {job.state})")
        time.sleep(0.5)


def test_postgres_select_and_skip_locked(pg_url):
    import sqlalchemy as sa

    engine = sa.create_engine(pg_url)
    try:
        with engine.begin() as conn:
            assert conn.execute(sa.text("SELECT 1")).scalar() == 1
            assert conn.execute(sa.text("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
                                ).scalar() == 0  # a fresh database
            conn.execute(sa.text("CREATE TABLE q (id int PRIMARY KEY, status text NOT NULL)"))
            conn.execute(sa.text("INSERT INTO q VALUES (1, 'pending'), (2, 'pending'), (3, 'pending')"))
        claim = sa.text("SELECT id FROM q WHERE status = 'pending' ORDER BY id LIMIT 1 "
                        "FOR UPDATE SKIP LOCKED")
        with engine.connect() as first, engine.connect() as second:
            first.begin()
            second.begin()
            assert first.execute(claim).scalar() == 1
            assert second.execute(claim).scalar() == 2  # row 1 is locked by `first`: skipped
            first.rollback()
            second.rollback()
    finally:
        engine.dispose()


def test_postgres_databases_are_per_test(pg_url, pg_server_url):
    import sqlalchemy as sa

    assert sa.make_url(pg_url).database != sa.make_url(pg_server_url).database
    engine = sa.create_engine(pg_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM pg_tables WHERE tablename = 'q'")
                                ).scalar() == 0
    finally:
        engine.dispose()


def test_slurm_submitit_round_trip(slurm, tmp_path):
    executor = slurm.executor(tmp_path / "submitit")
    job = executor.submit(operator.add, 2, 2)
    _wait_done(job, timeout=60)
    assert job.result() == 4
    # The result file can come before accounting has the job's end: ask sacct until it does.
    deadline = time.monotonic() + 20
    while (state := job.get_info().get("State")) != "COMPLETED" and time.monotonic() < deadline:
        time.sleep(0.5)
    assert state == "COMPLETED"


def test_slurm_cancel_reaches_accounting(slurm, tmp_path):
    import submitit

    executor = slurm.executor(tmp_path / "submitit")
    job = executor.submit(time.sleep, 120)
    deadline = time.monotonic() + 30
    while job.state in ("UNKNOWN", "PENDING") and time.monotonic() < deadline:
        time.sleep(0.5)  # let it start, so the cancel hits a running job
    job.cancel()
    _wait_done(job, timeout=30)  # without slurmdbd this never ends
    assert job.get_info().get("State", "").startswith("CANCELLED")  # get_info() asks sacct now
    # result() waits 15 s (30 s on a cached state) for a result file a cancelled job never writes;
    # submitit's own tests shorten that wait the same way.
    job._results_timeout_s = 0
    with pytest.raises(submitit.core.utils.UncompletedJobError):
        job.result()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_chromium_reads_a_page_title(page, tmp_path):
    (tmp_path / "index.html").write_text(
        "<!doctype html><html><head><title>ssmboard smoke</title></head>"
        "<body><h1 id='h'>hello</h1></body></html>")
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
         "--directory", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    pytest.fail("python -m http.server did not start")
                time.sleep(0.1)
        page.goto(f"http://127.0.0.1:{port}/index.html")
        assert page.title() == "ssmboard smoke"
        assert page.locator("#h").inner_text() == "hello"
    finally:
        server.terminate()
        server.wait(timeout=10)
