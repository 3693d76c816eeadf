"""Where ssmboard keeps its files, from the environment.

``SSMBOARD_HOME`` (default ``~/.ssmboard``) holds the default SQLite store;
``SSMBOARD_DB`` overrides the store with any SQLAlchemy URL.
"""
from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    return Path(os.environ.get("SSMBOARD_HOME") or Path.home() / ".ssmboard").expanduser()


def db_url() -> str:
    url = os.environ.get("SSMBOARD_DB")
    if url:
        return url
    return f"sqlite:///{home() / 'ssmboard.db'}"


def assets_dir() -> Path:
    return Path(__file__).resolve().parent / "assets"
