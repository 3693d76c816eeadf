"""Describe the machine and software a measurement ran on.

Imports torch only inside :func:`collect_environment`, so reading or writing reports stays
light. Every probe is best effort: a missing piece is None, never an exception.
"""
from __future__ import annotations

import platform
import socket
import subprocess
import os
from functools import lru_cache
from importlib import metadata
from pathlib import Path

from ssmboard.evaluators.report import Environment
from ssmboard.version import package_version


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def cpu_model() -> str | None:
    """The CPU's model name from /proc/cpuinfo (Linux), else what platform reports."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _run(cmd: list[str], cwd: Path | None = None) -> str | None:
    try:
        out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else None


@lru_cache(maxsize=1)
def git_sha() -> str | None:
    """The commit of the ssmboard source tree (suffixed '+dirty' with local edits), if a git checkout.

    ``SSMBOARD_GIT_SHA`` names it for a copy of the tree without ``.git`` (a GPU box sent a copy)."""
    if os.environ.get("SSMBOARD_GIT_SHA"):
        return os.environ["SSMBOARD_GIT_SHA"]
    here = Path(__file__).resolve().parent
    sha = _run(["git", "rev-parse", "HEAD"], cwd=here)
    if sha is None:
        return None
    dirty = _run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here)
    return sha + ("+dirty" if dirty else "")


def _driver_version() -> str | None:
    out = _run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"])
    return out.splitlines()[0].strip() if out else None


def collect_environment(device: str | None = None) -> Environment:
    """The current machine: device (GPU name via torch.cuda, else the CPU), versions, git sha.

    ``device`` ('cpu' or 'cuda[:i]') picks which device to describe; default: the first GPU
    when one is visible, else the CPU.
    """
    env = Environment(
        cpu_model=cpu_model(),
        torch_version=_version("torch"),
        triton_version=_version("triton"),
        transformers_version=_version("transformers"),
        ssmboard_version=package_version(),
        git_sha=git_sha(),
        hostname=socket.gethostname() or None,
        python_version=platform.python_version(),
    )
    try:
        import torch
    except ImportError:
        env.device_name = env.cpu_model
        return env
    env.torch_version = torch.__version__ or env.torch_version
    want_cuda = device is None or str(device).startswith("cuda")
    if want_cuda and torch.cuda.is_available():
        index = torch.device(device).index if device and ":" in str(device) else torch.cuda.current_device()
        env.device_name = torch.cuda.get_device_name(index)
        env.cuda_version = getattr(torch.version, "cuda", None) or getattr(torch.version, "hip", None)
        env.driver_version = _driver_version()
    else:
        env.device_name = env.cpu_model or "CPU"
    return env
