"""Measure the job queue: jobs/minute drained by 1 and 3 local workers (a trivial `quick` run per
job) on SQLite and PostgreSQL, the submitit round trip on the Slurm cluster, and how long a killed
worker's job waits before another worker takes it over. Prints a table, writes JSON.

    python scripts/bench_queue.py [--jobs 9] [--pg postgresql+psycopg://...] [--out benchmarks/queue.json]

PostgreSQL: --pg names a server database whose role may CREATE DATABASE (default: the
SSMBOARD_TEST_PG_URL of scripts/services/start.sh's env file); a scratch database is made and dropped.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TINY = ["--param", "prompt_lengths=16", "--param", "iterations=1", "--param", "modes=prefill", "--param", "warmup=0"]


def _env(url: str, home: Path) -> dict[str, str]:
    return {**os.environ, "SSMBOARD_DB": url, "SSMBOARD_HOME": str(home),
            "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}


def _cli(env: dict[str, str], *args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "ssmboard.cli", *args], env=env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def _run(env, *args) -> str:
    p = _cli(env, *args)
    out = p.communicate()[0]
    if p.returncode != 0:
        raise SystemExit(f"`ssmboard {' '.join(args)}` failed:\n{out}")
    return out


def drain_rate(url: str, home: Path, jobs: int, workers: int) -> dict:
    env = _env(url, home)
    for i in range(jobs):
        _run(env, "submit", "reference-c64", "--suite", "quick", *TINY, "--param", f"seed={i}")
    t0 = time.perf_counter()
    procs = [_cli(env, "worker", "--until-empty", "--poll", "0.2") for _ in range(workers)]
    for p in procs:
        p.communicate()
    seconds = time.perf_counter() - t0
    listed = json.loads(_run(env, "jobs", "--json"))
    finished = sum(1 for j in listed if j["status"] == "finished")
    return {"workers": workers, "jobs": jobs, "finished": finished, "seconds": round(seconds, 2),
            "jobs_per_min": round(60 * finished / seconds, 2)}


def _pg_scratch(server_url: str):
    import sqlalchemy as sa

    base = sa.make_url(server_url)
    name = f"bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return base.set(database=name).render_as_string(hide_password=False), drop


def submitit_round_trip(partition: str, folder: Path, n: int = 3) -> dict:
    import operator

    import submitit

    ex = submitit.AutoExecutor(folder=str(folder), cluster="slurm")
    ex.update_parameters(slurm_partition=partition, timeout_min=10, cpus_per_task=1)
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        assert ex.submit(operator.add, 2, 2).result() == 4
        times.append(time.perf_counter() - t0)
    return {"runs": n, "median_s": round(statistics.median(times), 2), "max_s": round(max(times), 2),
            "first_s": round(times[0], 2)}


def lease_takeover(home: Path, lease: float, n: int = 3) -> dict:
    """Worker A runs a long job and is SIGKILLed; worker B (already polling) takes the job over."""
    url = f"sqlite:///{home / 'lease.db'}"
    env = _env(url, home)
    waits = []
    for i in range(n):
        _run(env, "submit", "reference-c64", "--suite", "quick", "--param", "prompt_lengths=16",
             "--param", "iterations=100000", "--param", "min_seconds=600", "--param", "modes=prefill",
             "--param", f"seed={1000 + i}", "--max-attempts", "5")
        a = _cli(env, "worker", "--lease", str(lease), "--worker-id", f"A{i}", "--max-jobs", "1")
        jid = None
        while jid is None:
            time.sleep(0.1)
            running = json.loads(_run(env, "jobs", "--status", "running", "--json"))
            jid = next((j["id"] for j in running if j["worker"] == f"A{i}"), None)
        time.sleep(lease)  # let it heartbeat for a while, as a real job would
        a.send_signal(signal.SIGKILL)
        a.wait()
        killed = time.perf_counter()
        b = _cli(env, "worker", "--lease", str(lease), "--worker-id", f"B{i}", "--poll", "0.2")
        while True:
            job = json.loads(_run(env, "jobs", "show", str(jid), "--json"))
            if job["worker"] == f"B{i}":
                waits.append(time.perf_counter() - killed)
                break
            time.sleep(0.05)
        b.send_signal(signal.SIGINT)
        b.communicate()
        _run(env, "jobs", "cancel", str(jid))
    return {"lease_s": lease, "runs": n, "waits_s": [round(w, 2) for w in waits], "max_s": round(max(waits), 2)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=9, help="jobs per drain measurement (default 9)")
    ap.add_argument("--pg", default=None, help="PostgreSQL server URL (default: SSMBOARD_TEST_PG_URL)")
    ap.add_argument("--lease", type=float, default=5.0)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "queue.json"))
    ap.add_argument("--skip", action="append", default=[], choices=["sqlite", "postgresql", "slurm", "lease"])
    args = ap.parse_args()
    sys.path.insert(0, str(REPO / "tests"))
    pg = args.pg or os.environ.get("SSMBOARD_TEST_PG_URL")
    if not pg:
        try:
            import services

            pg = services.setting("SSMBOARD_TEST_PG_URL")
        except ImportError:
            pg = None
    result: dict = {"machine": {"host": platform.node(), "cpus": os.cpu_count(), "python": platform.python_version(),
                                "load_avg": os.getloadavg()}, "drain": [], "trivial_job": "quick: 1 prefill of "
                                "16 tokens, 1 iteration, reference-c64 (embedded tiny-bamba), CPU"}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        backends = [b for b in ("sqlite", "postgresql") if b not in args.skip and (b != "postgresql" or pg)]
        for backend in backends:
            for workers in (1, 3):
                home = tmp / f"{backend}-{workers}"
                home.mkdir()
                if backend == "sqlite":
                    url, drop = f"sqlite:///{home / 'ssmboard.db'}", (lambda: None)
                else:
                    url, drop = _pg_scratch(pg)
                try:
                    row = {"backend": backend, **drain_rate(url, home, args.jobs, workers)}
                finally:
                    drop()
                result["drain"].append(row)
                print(row, flush=True)
        if "slurm" not in args.skip and shutil.which("sbatch"):
            result["submitit"] = submitit_round_trip(os.environ.get("SSMBOARD_TEST_SLURM_PARTITION", "debug"),
                                                     tmp / "submitit")
            print(result["submitit"], flush=True)
        if "lease" not in args.skip:
            home = tmp / "lease"
            home.mkdir()
            result["lease_takeover"] = lease_takeover(home, args.lease)
            print(result["lease_takeover"], flush=True)
    print("\nbackend     workers  jobs  seconds  jobs/min")
    for r in result["drain"]:
        print(f"{r['backend']:<11} {r['workers']:>7}  {r['finished']:>4}  {r['seconds']:>7}  {r['jobs_per_min']:>8}")
    if "submitit" in result:
        s = result["submitit"]
        print(f"submitit round trip (2+2 on Slurm): median {s['median_s']} s, max {s['max_s']} s over {s['runs']}")
    if "lease_takeover" in result:
        t = result["lease_takeover"]
        print(f"killed worker's job taken over after at most {t['max_s']} s (lease {t['lease_s']} s, poll 0.2 s)")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
