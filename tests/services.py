"""Where the tests find the real services (PostgreSQL, a one-node Slurm cluster, headless Chromium).

`scripts/services/start.sh` starts them and writes an env file (default
/tmp/ssmboard-services/env, or $SSMBOARD_SERVICES_DIR/env, or the file $SSMBOARD_SERVICES_ENV
names). A variable set in the environment wins over the file:

    SSMBOARD_TEST_PG_URL     postgresql+psycopg://USER:PASS@127.0.0.1:PORT/DB (role may CREATEDB)
    SSMBOARD_TEST_SLURM      1 when a Slurm cluster with accounting runs here (0 turns it off)
    SSMBOARD_TEST_SLURM_PARTITION   the partition to submit to (default: debug)
    SSMBOARD_TEST_CHROMIUM   the Chromium executable (default: /usr/bin/chromium)

A service that is missing fails the test under CI (CI=true) and skips it elsewhere, with a
message that names the service and the script that starts it (`require` below).
Nothing here imports psycopg, sqlalchemy, submitit or playwright at module import time.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

START_HINT = "sudo bash scripts/services/install.sh && sudo bash scripts/services/start.sh"

# Headless Chromium on a closed network: without the networking flags it keeps trying hosts
# that are refused (see shared/services.md).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

NODE_UP_STATES = {"idle", "mixed", "allocated", "completing"}


def env_file() -> Path:
    if os.environ.get("SSMBOARD_SERVICES_ENV"):
        return Path(os.environ["SSMBOARD_SERVICES_ENV"])
    return Path(os.environ.get("SSMBOARD_SERVICES_DIR", "/tmp/ssmboard-services")) / "env"


def read_env_file(path: Path | None = None) -> dict[str, str]:
    """The `export NAME=VALUE` lines of the env file start.sh writes ({} when there is none)."""
    path = path or env_file()
    values: dict[str, str] = {}
    try:
        text = path.read_text()
    except OSError:
        return values
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export "):]
        name, sep, value = line.partition("=")
        if sep:
            values[name.strip()] = value.strip().strip("'\"")
    return values


def setting(name: str, default: str | None = None) -> str | None:
    """`name` from the environment, else from the env file, else `default`."""
    value = os.environ.get(name)
    if value:
        return value
    return read_env_file().get(name) or default


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def require(service: str, why: str) -> None:
    """Fail (under CI) or skip (elsewhere) a test whose `service` is missing; never returns."""
    message = (f"{service} is not available: {why}. Start it with `{START_HINT}` "
               f"(it writes {env_file()}), or set the SSMBOARD_TEST_* variables")
    if in_ci():
        pytest.fail(f"{message} [CI=true: a missing service fails the test]", pytrace=False)
    pytest.skip(message)


# ------------------------------------------------------------------ PostgreSQL

def pg_server_url() -> str:
    """The URL of the test PostgreSQL server, checked with a real connection (else `require`)."""
    url = setting("SSMBOARD_TEST_PG_URL")
    if not url:
        require("PostgreSQL", "SSMBOARD_TEST_PG_URL is not set and no env file names it")
    try:
        import sqlalchemy as sa
    except ImportError as exc:
        require("PostgreSQL", f"sqlalchemy is not installed ({exc})")
    try:
        import psycopg  # noqa: F401
    except ImportError as exc:
        require("PostgreSQL", f"psycopg is not installed: pip install 'psycopg[binary]' ({exc})")
    engine = sa.create_engine(url, connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any failure to connect means the service is missing
        require("PostgreSQL", f"cannot connect to {_hide_password(url)} ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''})")
    finally:
        engine.dispose()
    return url


@contextlib.contextmanager
def fresh_database(server_url: str, prefix: str = "t") -> Iterator[str]:
    """Create an empty database on the server, yield its URL, drop it after (closing connections)."""
    import sqlalchemy as sa

    base = sa.make_url(server_url)
    name = f"{prefix}_{uuid.uuid4().hex[:16]}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        try:
            yield base.set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                # WITH (FORCE): a test that left an engine open does not keep its database alive.
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def _hide_password(url: str) -> str:
    try:
        import sqlalchemy as sa
        return sa.make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001
        return url.split("@")[-1]


# ------------------------------------------------------------------ Slurm

@dataclass(frozen=True)
class SlurmCluster:
    """The local one-node cluster: submit with `executor(folder)` (submitit's AutoExecutor)."""

    partition: str
    node_state: str

    def executor(self, folder: str | os.PathLike, **parameters):
        import submitit

        executor = submitit.AutoExecutor(folder=str(folder), cluster="slurm")
        # timeout_min well above 3: submitit asks for USR2 90 s before the limit and Slurm may send
        # it up to 60 s early (sbatch --signal), which submitit reads as a timeout: a job of
        # timeout_min=2 can fail at once with "timed-out and not checkpointable".
        defaults = {"slurm_partition": self.partition, "timeout_min": 10, "cpus_per_task": 1}
        executor.update_parameters(**{**defaults, **parameters})
        return executor


def _run(cmd: list[str], timeout: float = 15) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def slurm_cluster() -> SlurmCluster:
    """The local Slurm cluster, checked: sbatch on PATH, the node up, accounting answering,
    submitit importable (else `require`)."""
    if setting("SSMBOARD_TEST_SLURM", "") == "0":
        require("Slurm", "SSMBOARD_TEST_SLURM=0")
    for tool in ("sbatch", "sinfo", "sacct", "scancel"):
        if shutil.which(tool) is None:
            require("Slurm", f"`{tool}` is not on PATH")
    try:
        import submitit  # noqa: F401
    except ImportError as exc:
        require("Slurm", f"submitit is not installed ({exc})")
    partition = setting("SSMBOARD_TEST_SLURM_PARTITION", "debug") or "debug"
    try:
        info = _run(["sinfo", "-h", "-N", "-p", partition, "-o", "%T"])
    except (OSError, subprocess.TimeoutExpired) as exc:
        require("Slurm", f"sinfo did not answer ({exc})")
    states = {s.strip().rstrip("*~#") for s in info.stdout.split()}
    if info.returncode != 0 or not states & NODE_UP_STATES:
        require("Slurm", f"no node of partition {partition!r} is idle "
                         f"(sinfo: {(info.stdout or info.stderr).strip() or 'no answer'})")
    try:
        acct = _run(["sacct", "-n", "-X", "-S", "now", "-o", "JobID"])
    except (OSError, subprocess.TimeoutExpired) as exc:
        require("Slurm accounting (slurmdbd)", f"sacct did not answer ({exc})")
    if acct.returncode != 0 or "error" in acct.stderr.lower():
        require("Slurm accounting (slurmdbd)",
                f"sacct failed: {acct.stderr.strip() or acct.returncode}; without accounting submitit "
                "cannot see a cancelled job end")
    return SlurmCluster(partition=partition, node_state=sorted(states & NODE_UP_STATES)[0])


# ------------------------------------------------------------------ Chromium

def chromium_executable() -> str:
    """The Chromium executable for Playwright, checked to exist (else `require`)."""
    path = setting("SSMBOARD_TEST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not (Path(path).is_file() and os.access(path, os.X_OK)):
        require("Chromium", f"no executable at {path}")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as exc:
        require("Chromium (playwright)",
                f"the playwright package is not installed ({exc}); pip install playwright, "
                "never `playwright install`: the tests use Debian's chromium")
    return path
