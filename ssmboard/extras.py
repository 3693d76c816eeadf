"""Optional dependencies (pyproject extras), imported only by the functions that need them.

``require("gradio", "board")`` returns the module, or raises one clear error naming the
``pip install`` that fixes it, so a GPU box or a speed-only user never needs the heavy ones.
"""
from __future__ import annotations

import importlib
from types import ModuleType

from ssmboard.errors import SsmboardError

EXTRAS = {"lm-eval": "lm_eval", "board": "gradio", "slurm": "submitit", "postgres": "psycopg",
          "schedules": "croniter"}


class MissingExtraError(SsmboardError, ImportError):
    """An optional dependency is not installed."""


def require(module: str, extra: str, what: str | None = None) -> ModuleType:
    """Import ``module`` or say which extra brings it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        if exc.name is not None and exc.name.split(".")[0] != module.split(".")[0]:
            raise  # the package is there but something it imports is broken: show the real error
        need = f" for {what}" if what else ""
        raise MissingExtraError(
            f"{module} is not installed{need}; install it with: pip install 'ssmboard[{extra}]' "
            "(or 'ssmboard[all]' for every optional piece)") from None
