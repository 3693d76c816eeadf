"""Named suites: which evaluators, with which parameters, over which variant overrides.

A suite is plain data: one or more parts, each an evaluator with its parameters.
``resolve`` turns a suite into concrete steps for one variant, parsing each part's
parameters once (some depend on the variant: prompt lengths given in chunks, a default of 4
layers that a variant may already set).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ssmboard.errors import EvaluationError


@dataclass(frozen=True)
class Part:
    """One evaluator of a suite, with its parameters."""

    evaluator: str
    params: dict[str, Any]
    prompt_chunks: tuple[int, ...] = ()  # prompt lengths as multiples of the chunk size
    chunk_sizes: tuple[int, ...] = ()  # sweep the variant's chunk size over these
    spec_defaults: dict[str, Any] = field(default_factory=dict)  # applied where the spec leaves None


@dataclass(frozen=True)
class Suite:
    """A named set of parts. A one-part suite may give its part's fields directly."""

    name: str
    description: str
    evaluator: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    prompt_chunks: tuple[int, ...] = ()
    chunk_sizes: tuple[int, ...] = ()
    spec_defaults: dict[str, Any] = field(default_factory=dict)
    parts: tuple[Part, ...] = ()

    def all_parts(self) -> tuple[Part, ...]:
        if self.parts:
            return self.parts
        return (Part(self.evaluator, self.params, self.prompt_chunks, self.chunk_sizes, self.spec_defaults),)

    @property
    def evaluators(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(p.evaluator for p in self.all_parts()))


@dataclass(frozen=True)
class Step:
    evaluator: str
    params: Any  # the evaluator's parsed Params
    overrides: dict[str, Any]  # VariantSpec fields replaced for this step


SUITES: dict[str, Suite] = {s.name: s for s in [
    Suite("quick", "a few seconds per variant on CPU: prefill and cached decode of short prompts",
          "perf", dict(prompt_lengths=(64, 256), batch_sizes=(1,), new_tokens=8,
                       modes=("prefill", "decode"), warmup=1, iterations=3)),
    Suite("seed-perf", "the seed project's protocol done properly: 4 layers, prompts of 1 to 7 chunks, "
          "100 new tokens, cached and uncached, greedy, with warm-up",
          "perf", dict(batch_sizes=(1,), new_tokens=100, modes=("prefill", "decode", "generate-nocache"),
                       warmup=1, iterations=3),
          prompt_chunks=(1, 2, 3, 4, 5, 6, 7), spec_defaults={"n_layers": 4}),
    Suite("sweep", "prefill latency and memory over chunk size 16..256 x prompt length 256..8192",
          "perf", dict(prompt_lengths=(256, 512, 1024, 2048, 4096, 8192), batch_sizes=(1,), new_tokens=1,
                       modes=("prefill",), warmup=1, iterations=3),
          chunk_sizes=(16, 32, 64, 128, 256)),
    Suite("llm-perf", "as the LLM-Perf leaderboard measures: batch 1, 256-token prompt, 64 new tokens, "
          "greedy, >= 10 iterations and >= 10 s",
          "perf", dict(prompt_lengths=(256,), batch_sizes=(1,), new_tokens=64, modes=("prefill", "decode"),
                       warmup=2, iterations=10, min_seconds=10.0)),
    Suite("accuracy-quick", "under a minute per variant on a 2-core CPU: fidelity (512-token and single-chunk "
          "test prompts), GPTScore (256-token prompts) and lm-eval shakespeare_cloze on 40 documents",
          parts=(Part("fidelity", dict(prompt_lengths=(512,), prompts=2, new_tokens=8)),
                 Part("gptscore", dict(prompt_lengths=(256,), prompts=4, new_tokens=16)),
                 Part("lmeval", dict(tasks=("shakespeare_cloze",), limit=40)))),
    Suite("accuracy", "every accuracy evaluator in full: fidelity at 256/512/1024 tokens and one chunk (8 prompts, "
          "32 greedy tokens), GPTScore at 256/512 (16 prompts), every item of the four shipped lm-eval tasks",
          parts=(Part("fidelity", dict(prompt_lengths=(256, 512, 1024), prompts=8, new_tokens=32)),
                 Part("gptscore", dict(prompt_lengths=(256, 512), prompts=16, new_tokens=32)),
                 Part("lmeval", dict(tasks=("shakespeare_cloze", "shakespeare_next_line", "shakespeare_ppl",
                                            "shakespeare_recall"))))),
    Suite("bamba-4l-targets", "issue 15 on the 4-layer Bamba-9B shape (scripts/bench_model.py --model "
          "config:bamba-9b-4l): prefill of 2048 tokens and cached decode of 128 tokens after it, at "
          "batch 1, 4, 16 and 64; 1 warm-up, >= 5 runs and >= 1 s",
          "perf", dict(prompt_lengths=(2048,), batch_sizes=(1, 4, 16, 64), new_tokens=128,
                       modes=("prefill", "decode"), warmup=1, iterations=5, min_seconds=1.0)),
    Suite("h200-targets", "the whole-model targets of issue 5: prefill 512/2048/8192 and cached decode of 128 "
          "tokens at batch 1; 1 warm-up, >= 5 runs and >= 1 s",
          "perf", dict(prompt_lengths=(512, 2048, 8192), batch_sizes=(1,), new_tokens=128,
                       modes=("prefill", "decode"), warmup=1, iterations=5, min_seconds=1.0)),
    Suite("bamba-9b-prefill", "issue 15 on the full 32-layer Bamba-9B shape (config:bamba-9b): prefill of "
          "2048, 8192 and 32768 tokens at batch 1; 1 warm-up, >= 3 runs",
          "perf", dict(prompt_lengths=(2048, 8192, 32768), batch_sizes=(1,), new_tokens=1, modes=("prefill",),
                       warmup=1, iterations=3)),
    Suite("bamba-9b-decode", "issue 15 on the full 32-layer Bamba-9B shape: cached decode of 128 tokens after "
          "2048 at batch 1; 1 warm-up, >= 3 runs",
          "perf", dict(prompt_lengths=(2048,), batch_sizes=(1,), new_tokens=128, modes=("prefill", "decode"),
                       warmup=1, iterations=3)),
]}


def register_suite(suite: Suite) -> Suite:
    """Add (or replace) a named suite."""
    SUITES[suite.name] = suite
    return suite


def get_suite(name: str) -> Suite:
    try:
        return SUITES[name]
    except KeyError:
        raise EvaluationError(f"unknown suite {name!r}; known suites: {', '.join(sorted(SUITES))}") from None


def with_params(suite: Suite, overrides: dict[str, Any]) -> Suite:
    """``suite`` with parameter overrides laid on every part whose evaluator takes that name.

    A name no part's evaluator takes is an error (listing the valid names); each part's
    parameters are parsed here, so a bad value fails before any work.
    """
    if not overrides:
        return suite
    from ssmboard.evaluators.base import get_evaluator

    parts, used = [], set()
    for part in suite.all_parts():
        ptype = get_evaluator(part.evaluator).params_type
        names = {f.name for f in dataclasses.fields(ptype)}
        mine = {k: v for k, v in overrides.items() if k in names}
        used |= set(mine)
        params = {**part.params, **mine}
        ptype.from_dict(params)
        parts.append(dataclasses.replace(part, params=params))
    unused = sorted(set(overrides) - used)
    if unused:
        valid = sorted({f.name for p in suite.all_parts()
                        for f in dataclasses.fields(get_evaluator(p.evaluator).params_type)})
        raise EvaluationError(f"suite {suite.name!r} has no parameter {', '.join(unused)}; valid: {', '.join(valid)}")
    return dataclasses.replace(suite, parts=tuple(parts), evaluator="", params={})


def needs_model_chunk_size(suite: Suite, spec: Any) -> bool:
    """True when some part counts prompt lengths in chunks and neither it nor the spec sets one."""
    return any(p.prompt_chunks and not p.chunk_sizes for p in suite.all_parts()) and not spec.chunk_size


def resolve(suite: Suite, spec: Any, model_chunk_size: int | None = None) -> list[Step]:
    """Concrete steps for ``spec``; ``model_chunk_size`` is the model's own when the spec has none."""
    from ssmboard.evaluators.base import get_evaluator

    steps = []
    for part in suite.all_parts():
        ptype = get_evaluator(part.evaluator).params_type
        base = {k: v for k, v in part.spec_defaults.items() if getattr(spec, k, None) is None}
        for cs in part.chunk_sizes or (None,):
            overrides = dict(base)
            if cs is not None:
                overrides["chunk_size"] = cs
            params = dict(part.params)
            if "use_cache" in {f.name for f in dataclasses.fields(ptype)}:
                params.setdefault("use_cache", bool(spec.use_cache))
            if part.prompt_chunks:
                chunk = cs or spec.chunk_size or model_chunk_size
                if not chunk:
                    raise EvaluationError(f"suite {suite.name!r} gives prompt lengths in chunks but the chunk size "
                                          "of this variant is unknown; set chunk_size on the variant")
                params["prompt_lengths"] = tuple(k * chunk for k in part.prompt_chunks)
            steps.append(Step(part.evaluator, ptype.from_dict(params), overrides))
    return steps
