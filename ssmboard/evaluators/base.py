"""The small interface every evaluator fills in, and the registry that names them.

Like lm-eval's ``LM``: an evaluator is a class registered under a name; the runner builds
the variant, asks the evaluator for its points (the grid it will measure) and calls it
once per point. Evaluators return plain ``Metric`` rows and never touch the store.
"""
from __future__ import annotations

from typing import Any, Callable, ClassVar, Iterable, Protocol

from ssmboard.errors import EvaluationError


class Evaluator(Protocol):
    name: ClassVar[str]

    def points(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        """The measurement points (each a small dict that becomes part of the rows' context)."""

    def run_point(self, model, tokenizer, point: dict[str, Any], params: dict[str, Any]) -> Iterable:
        """Measure one point and return its Metric rows."""


_EVALUATORS: dict[str, type] = {}


def register_evaluator(name: str) -> Callable[[type], type]:
    def deco(cls: type) -> type:
        cls.name = name
        _EVALUATORS[name] = cls
        return cls
    return deco


def get_evaluator(name: str) -> Evaluator:
    _load_builtins()
    try:
        return _EVALUATORS[name]()
    except KeyError:
        raise EvaluationError(f"unknown evaluator {name!r}; known: {', '.join(sorted(_EVALUATORS))}") from None


def list_evaluators() -> list[str]:
    _load_builtins()
    return sorted(_EVALUATORS)


def _load_builtins() -> None:
    import ssmboard.evaluators.perf  # noqa: F401  (registers "perf")
