"""Named suites: which evaluator, with which parameters, over which variant overrides.

A suite is plain data. ``resolve`` turns it into concrete steps for one variant, since
some parameters depend on the variant (prompt lengths given in chunks, a default of 4
layers that a variant may already set).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ssmboard.errors import EvaluationError


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    evaluator: str
    params: dict[str, Any]
    prompt_chunks: tuple[int, ...] = ()  # prompt lengths as multiples of the chunk size
    chunk_sizes: tuple[int, ...] = ()  # sweep the variant's chunk size over these
    spec_defaults: dict[str, Any] = field(default_factory=dict)  # applied where the spec leaves None


@dataclass(frozen=True)
class Step:
    evaluator: str
    params: dict[str, Any]
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


def get_suite(name: str) -> Suite:
    try:
        return SUITES[name]
    except KeyError:
        raise EvaluationError(f"unknown suite {name!r}; known suites: {', '.join(sorted(SUITES))}") from None


def resolve(suite: Suite, spec, model_chunk_size: int | None = None) -> list[Step]:
    """Concrete steps for ``spec``; ``model_chunk_size`` is the model's own when the spec has none."""
    base: dict[str, Any] = {k: v for k, v in suite.spec_defaults.items() if getattr(spec, k, None) is None}
    chunk_choices = suite.chunk_sizes or (None,)
    steps = []
    for cs in chunk_choices:
        overrides = dict(base)
        if cs is not None:
            overrides["chunk_size"] = cs
        params = dict(suite.params)
        params.setdefault("use_cache", bool(getattr(spec, "use_cache", True)))
        if suite.prompt_chunks:
            chunk = cs or getattr(spec, "chunk_size", None) or model_chunk_size
            if not chunk:
                raise EvaluationError(f"suite {suite.name!r} gives prompt lengths in chunks but the chunk size "
                                      "of this variant is unknown; set chunk_size on the variant")
            params["prompt_lengths"] = tuple(k * chunk for k in suite.prompt_chunks)
        steps.append(Step(suite.evaluator, params, overrides))
    return steps
