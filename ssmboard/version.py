"""The package version, in one place: the CLI, the package root and the environment probe read it.

An installed distribution names its own version. A checkout run from source (as scripts do on a
GPU box) reads pyproject.toml and says ``+source``, so its rows still name a version.
"""
from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=1)
def package_version() -> str:
    try:
        from importlib.metadata import PackageNotFoundError, version

        return version("ssmboard")
    except PackageNotFoundError:
        pass
    try:
        import tomllib
        from pathlib import Path

        pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
        return tomllib.loads(pyproject.read_text())["project"]["version"] + "+source"
    except (OSError, KeyError, ValueError):
        return "0.0.0+unknown"
