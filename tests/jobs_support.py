"""Helpers shared by the tests/test_jobs_*.py modules: the store backend fixture (SQLite file or
a fresh PostgreSQL database from conftest_services' pg_url), small suite parameters, and waiting
for job states and processes."""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

# The smallest real `quick` run: one prefill of 16 tokens, one iteration (4 rows).
TINY = {"prompt_lengths": (16,), "iterations": 1, "modes": ("prefill",), "warmup": 0}
TINY_ROWS = 4
# A `quick` run that takes long enough to be killed, cancelled or timed out mid-way.
LONG = {"prompt_lengths": (16,), "iterations": 100000, "min_seconds": 600.0, "modes": ("prefill",), "warmup": 0}


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, monkeypatch, ssmboard_home) -> str:
    """SSMBOARD_DB pointing at a fresh SQLite file or a fresh PostgreSQL database."""
    from ssmboard.db.engine import dispose_stores

    if request.param == "sqlite":
        url = f"sqlite:///{ssmboard_home / 'queue.db'}"
    else:
        url = request.getfixturevalue("pg_url")
    monkeypatch.setenv("SSMBOARD_DB", url)
    dispose_stores()
    yield url
    dispose_stores()


def wait_for(predicate, timeout: float, what: str, every: float = 0.2):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


def job_status(job_id: int) -> str:
    from ssmboard.jobs.queue import get_job

    return get_job(job_id)["status"]


def child_pids(job_id: int) -> list[int]:
    """PIDs of running `python -m ssmboard.jobs.child .../job-N/...` processes."""
    out = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"ssmboard.jobs.child" in cmd and any(f"/job-{job_id}/".encode() in c for c in cmd):
            out.append(int(proc.name))
    return out


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return (Path(f"/proc/{pid}/stat").read_text().split()[2]) != "Z"
    except OSError:
        return False
