"""Shared fixtures. Every test gets its own SSMBOARD_HOME, so nothing touches ~/.ssmboard."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def ssmboard_home(tmp_path_factory, monkeypatch) -> Path:
    """Point SSMBOARD_HOME at a fresh folder and clear SSMBOARD_DB, for every test."""
    home = tmp_path_factory.mktemp("ssmboard_home")
    monkeypatch.setenv("SSMBOARD_HOME", str(home))
    monkeypatch.delenv("SSMBOARD_DB", raising=False)
    yield home
    engine = sys.modules.get("ssmboard.db.engine")  # only if a test opened a store
    if engine is not None:
        engine.dispose_stores()


@pytest.fixture
def db_path(ssmboard_home) -> Path:
    """Where the default SQLite store of this test lives."""
    return ssmboard_home / "ssmboard.db"


def run_cli_process(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run `python -m ssmboard.cli ARGS` in a child process with this test's environment."""
    return subprocess.run(
        [sys.executable, "-m", "ssmboard.cli", *args],
        capture_output=True, text=True, timeout=timeout, cwd=REPO,
        env={**os.environ, **(env or {})},
    )


def run_python(code: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run a Python snippet in a child process with this test's environment."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO, env=dict(os.environ))


@pytest.fixture
def cli_process():
    return run_cli_process


@pytest.fixture
def python_process():
    return run_python
pytest_plugins = ["conftest_services"]  # fixtures for the real services (tests/services.py, scripts/services/)
