"""Where a claimed job's child runs: a local subprocess, or a Slurm job through submitit.

Both run :mod:`ssmboard.jobs.child` on a task file and give back a handle the worker polls
(and stops, on cancel or timeout). The child writes a report file; the worker, not the
child, imports it into the store, so a Slurm compute node needs no database access.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ssmboard.errors import SsmboardError
from ssmboard.jobs.child import error_path

EXECUTORS = ("local", "slurm")


class ExecutorError(SsmboardError):
    """An executor cannot be used here (submitit missing, no sbatch on PATH, bad Slurm settings)."""


@dataclass
class Outcome:
    """How a child ended: ``ok`` with its report file, or an error text for the job row."""

    ok: bool
    error: str | None = None
    state: str | None = None  # Slurm's final state


class Handle(Protocol):
    fields: dict[str, Any]  # what to record on the job row (slurm_job_id, slurm_state)

    def poll(self) -> Outcome | None:
        """None while the child runs; its Outcome once it ended."""

    def stop(self) -> None:
        """Kill the child (local) or cancel the Slurm job, and wait until it is gone."""


def _read_error(report: Path) -> str | None:
    try:
        text = error_path(report).read_text().strip()
    except OSError:
        return None
    return text or None


# -- local -----------------------------------------------------------------------------------
def _die_with_parent() -> None:
    """In the child, before exec: on Linux, get SIGKILL when the worker dies (a worker killed with
    SIGKILL must not leave its job running unwatched while another worker re-runs it)."""
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except OSError:
            pass

class LocalHandle:
    def __init__(self, proc: subprocess.Popen, report: Path, log) -> None:
        self.proc = proc
        self.report = report
        self.log = log
        self.fields: dict[str, Any] = {}

    def poll(self) -> Outcome | None:
        rc = self.proc.poll()
        if rc is None:
            return None
        self.log.close()
        if rc == 0 and self.report.exists():
            return Outcome(True)
        if rc < 0:
            name = signal.Signals(-rc).name if -rc in signal.Signals._value2member_map_ else str(-rc)
            return Outcome(False, f"the job's process was killed by {name}")
        return Outcome(False, _read_error(self.report) or f"the job's process exited with status {rc}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)  # the child leads its own process group
            except ProcessLookupError:
                pass
            self.proc.wait()
        self.log.close()


@dataclass
class LocalExecutor:
    """Each job in a fresh ``python -m ssmboard.jobs.child`` process of its own session (a Ctrl-C
    meant for the worker does not reach it; the worker decides what happens to it)."""

    name: str = "local"

    def check(self) -> None:
        pass

    def start(self, task: Path, log: Path, report: Path) -> LocalHandle:
        fh = open(log, "ab")
        proc = subprocess.Popen([sys.executable, "-m", "ssmboard.jobs.child", str(task)], stdout=fh,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"}, preexec_fn=_die_with_parent)
        return LocalHandle(proc, report, fh)


# -- Slurm -----------------------------------------------------------------------------------
SLURM_KEYS = ("partition", "gpus", "cpus", "mem_gb", "time_min", "account", "qos", "constraint")


def load_slurm_config(path: str | os.PathLike) -> dict[str, Any]:
    """Slurm settings from a TOML or JSON file: partition, gpus, cpus, mem_gb, time_min, account,
    qos, constraint (a ``[slurm]`` table in TOML is read when present)."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ExecutorError(f"cannot read the Slurm config {p} ({exc.strerror}); pass an existing file") from None
    try:
        if p.suffix == ".json":
            data = json.loads(text)
        else:
            import tomllib

            data = tomllib.loads(text)
    except ValueError as exc:
        raise ExecutorError(f"the Slurm config {p} is not valid {p.suffix.lstrip('.') or 'TOML'} ({exc})") from None
    data = data.get("slurm", data) if isinstance(data, dict) else data
    if not isinstance(data, dict):
        raise ExecutorError(f"the Slurm config {p} must hold a table of settings")
    unknown = sorted(set(data) - set(SLURM_KEYS))
    if unknown:
        raise ExecutorError(f"unknown Slurm setting(s) {unknown} in {p}; known: {', '.join(SLURM_KEYS)}")
    return data


# Slurm states that are not an end (yet).
_NOT_FINAL = ("PENDING", "RUNNING", "COMPLETING", "CONFIGURING", "REQUEUED", "RESIZING", "SUSPENDED", "UNKNOWN",
              "READY")


def _last_line(text: str) -> str | None:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else None


class SlurmHandle:
    POLL_S = 1.0  # sacct once a second at most (submitit itself polls no faster)

    def __init__(self, job: Any, report: Path) -> None:
        self.job = job
        self.report = report
        self.fields: dict[str, Any] = {"slurm_job_id": str(job.job_id), "slurm_state": "PENDING"}
        self._last = 0.0

    def _state(self) -> str:
        try:
            return str(self.job.get_info().get("State") or self.job.state or "UNKNOWN")
        except Exception:  # noqa: BLE001 - sacct may lag right after submission
            return str(self.job.state or "UNKNOWN")

    def poll(self) -> Outcome | None:
        if time.monotonic() - self._last < self.POLL_S:
            return None
        self._last = time.monotonic()
        if not self.job.done(force_check=True):
            self.fields["slurm_state"] = str(self.job.state)
            return None
        try:  # done() sees the result file (or a final state); result() says which
            self.job.result()
            ok, reason = True, None
        except Exception as exc:  # noqa: BLE001 - FailedJobError, UncompletedJobError (killed, cancelled)
            ok, reason = False, _read_error(self.report) or _last_line(str(exc))
        state = self._final_state()
        self.fields["slurm_state"] = state
        if ok and self.report.exists():
            return Outcome(True, state=state)
        where = f"Slurm job {self.job.job_id} ended {state}"
        return Outcome(False, f"{where}: {reason}" if reason else f"{where} without a report", state=state)

    def _final_state(self, wait_s: float = 10.0) -> str:
        """Slurm's final state; sacct may still say RUNNING for a moment after the result file."""
        deadline = time.monotonic() + wait_s
        while True:
            state = self._state()
            if state.split()[0] not in _NOT_FINAL or time.monotonic() > deadline:
                return state
            time.sleep(0.5)

    def stop(self) -> None:
        try:
            self.job.cancel(check=False)
        except Exception:  # noqa: BLE001 - already gone
            pass
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if self.job.done(force_check=True):
                    break
            except Exception:  # noqa: BLE001
                break
            time.sleep(1.0)
        self.fields["slurm_state"] = self._final_state()


@dataclass
class SlurmExecutor:
    """Each job as one Slurm job through submitit's ``AutoExecutor``. ``folder`` (shared between
    this machine and the compute nodes) holds submitit's files, task files, logs and reports."""

    folder: Path
    settings: dict[str, Any] = field(default_factory=dict)
    name: str = "slurm"

    def check(self) -> None:
        from ssmboard.extras import require

        require("submitit", "slurm", "the slurm executor")
        if shutil.which("sbatch") is None:
            raise ExecutorError("the slurm executor needs Slurm's `sbatch` on PATH, and it is not there; "
                                "run the worker on a Slurm login node, or use --executor local")

    def _executor(self) -> Any:
        import submitit

        ex = submitit.AutoExecutor(folder=str(self.folder / "submitit"), cluster="slurm")
        st = self.settings
        params: dict[str, Any] = {"timeout_min": int(st.get("time_min") or 60), "nodes": 1, "tasks_per_node": 1,
                                  "cpus_per_task": int(st.get("cpus") or 1), "name": "ssmboard-job"}
        if st.get("partition"):
            params["slurm_partition"] = st["partition"]
        if st.get("gpus"):
            params["gpus_per_node"] = int(st["gpus"])
        if st.get("mem_gb"):
            params["mem_gb"] = float(st["mem_gb"])
        for key in ("account", "qos", "constraint"):
            if st.get(key):
                params[f"slurm_{key}"] = st[key]
        ex.update_parameters(**params)
        return ex

    def start(self, task: Path, log: Path, report: Path) -> SlurmHandle:
        from ssmboard.jobs.child import run_task_logged

        job = self._executor().submit(run_task_logged, str(task))
        return SlurmHandle(job, report)


def make_executor(name: str, *, folder: Path, settings: dict[str, Any] | None = None) -> Any:
    """The executor called ``name``, checked to be usable here (else ExecutorError / MissingExtraError)."""
    if name == "local":
        ex: Any = LocalExecutor()
    elif name == "slurm":
        ex = SlurmExecutor(folder=folder, settings=dict(settings or {}))
    else:
        raise ExecutorError(f"unknown executor {name!r}; choose one of {', '.join(EXECUTORS)}")
    ex.check()
    return ex
