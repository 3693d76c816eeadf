"""The small interface every evaluator fills in, and the registry that names them.

Like lm-eval's ``LM``: an evaluator is a class registered under a name. The runner resolves
a suite step's parameters once (``params_type.from_dict``), asks the evaluator for its points
(the grid it will measure), builds the variant, and calls ``run_point`` once per point with
an :class:`EvalContext`: the built variant and a way to build other models (a reference, a
scorer) on the same device. Evaluators return plain ``Metric`` rows (with per-item scores
where they have items) and never touch the store.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Iterable, Protocol

from ssmboard.errors import EvaluationError


@dataclass
class EvalContext:
    """What an evaluator gets for one step: the variant as built, and a builder for others.

    ``build(spec)`` returns a ``Built`` for any ``VariantSpec`` on the variant's device; the
    runner caches these for the run, so a reference model or a scorer is built once.
    """

    built: Any  # ssmboard.variants.build.Built
    build: Callable[[Any], Any]

    @property
    def spec(self) -> Any:
        return self.built.spec

    @property
    def device(self) -> Any:
        return self.built.device


class Params:
    """Base for evaluator parameters: a frozen dataclass built from a plain dict.

    Unknown names fail with the valid ones listed; a single value given for a tuple field
    stands for a tuple of one. Subclasses add checks in ``validate``.
    """

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Any:
        names = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - set(names))
        if unknown:
            kind = cls.__name__.removesuffix("Params").lower()
            raise EvaluationError(f"unknown {kind} parameter(s) {unknown}; valid: {sorted(names)}")
        values = {}
        for key, value in data.items():
            is_tuple = str(names[key].type).startswith("tuple")
            if is_tuple and not isinstance(value, (list, tuple)):
                value = (value,)
            values[key] = tuple(value) if isinstance(value, list) else value
        params = cls(**values)
        params.validate()
        return params

    def validate(self) -> None:
        """Raise EvaluationError for values out of range."""

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


class Evaluator(Protocol):
    name: ClassVar[str]
    params_type: ClassVar[type]  # a Params dataclass
    # True: refuses random-weight (config:) models, whose answers mean nothing
    needs_trained_weights: ClassVar[bool]

    def points(self, params: Any) -> list[dict[str, Any]]:
        """The measurement points (each a small dict that becomes part of the rows' context)."""

    def run_point(self, ctx: EvalContext, point: dict[str, Any], params: Any) -> Iterable:
        """Measure one point and return its Metric rows."""


_EVALUATORS: dict[str, type] = {}
# Modules whose import registers the built-in evaluators (kept lazy: they import torch).
BUILTIN_MODULES: list[str] = ["ssmboard.evaluators.perf", "ssmboard.evaluators.fidelity",
                                 "ssmboard.evaluators.gptscore", "ssmboard.evaluators.lmeval"]


def register_evaluator(name: str) -> Callable[[type], type]:
    def deco(cls: type) -> type:
        cls.name = name
        if not hasattr(cls, "needs_trained_weights"):
            cls.needs_trained_weights = False
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
    import importlib

    for module in BUILTIN_MODULES:
        importlib.import_module(module)
