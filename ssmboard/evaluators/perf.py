"""Performance: time to first token, decode latency and throughput, peak memory.

Definitions (as LLM-Perf and optimum-benchmark use them):
- prefill latency (TTFT): ``generate`` of one new token from the prompt;
- decode: ``generate`` of N tokens with the cache; per-token latency (TPOT) is
  (T_N - median TTFT) / (N - 1), throughput is batch * (N - 1) / (T_N - median TTFT);
- uncached generate: N tokens with ``use_cache=False`` (the seed project's setting), which
  recomputes the whole prefix at every step;
- memory: the allocator's max allocated / reserved on GPU (absolute, and above what was
  allocated before the call, i.e. without the weights), peak RSS on CPU.
Greedy decoding with min = max new tokens, so every run does the same work.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ssmboard.errors import EvaluationError
from ssmboard.evaluators.base import EvalContext, Params, register_evaluator
from ssmboard.evaluators.memory import PeakMemory, PeakMemoryTracker
from ssmboard.evaluators.prompts import prompt_ids
from ssmboard.evaluators.report import Metric
from ssmboard.evaluators.stats import summarize
from ssmboard.evaluators.timing import measure

MODES = ("prefill", "decode", "generate-nocache")


@dataclass(frozen=True)
class PerfParams(Params):
    prompt_lengths: tuple[int, ...] = (128,)
    batch_sizes: tuple[int, ...] = (1,)
    new_tokens: int = 16
    modes: tuple[str, ...] = ("prefill", "decode")
    warmup: int = 1
    iterations: int = 3
    min_seconds: float = 0.0
    seed: int = 0
    use_cache: bool = True  # for the prefill measurement; decode always uses the cache

    def validate(self) -> None:
        bad = [m for m in self.modes if m not in MODES]
        if bad:
            raise EvaluationError(f"unknown perf mode(s) {bad}; valid: {list(MODES)}")
        if self.new_tokens < 2 and "decode" in self.modes:
            raise EvaluationError("decode needs new_tokens >= 2 (one token is the prefill)")
        if self.iterations < 1 or self.warmup < 0 or any(n < 1 for n in self.prompt_lengths + self.batch_sizes):
            raise EvaluationError("iterations, prompt lengths and batch sizes must be >= 1, warmup >= 0")


@register_evaluator("perf")
class PerfEvaluator:
    name = "perf"
    params_type = PerfParams
    needs_trained_weights = False  # random weights time the same as trained ones

    def points(self, params: PerfParams) -> list[dict[str, Any]]:
        return [{"batch": b, "prompt_len": L} for b in params.batch_sizes for L in params.prompt_lengths]

    def run_point(self, context: EvalContext, point: dict[str, Any], params: PerfParams) -> list[Metric]:
        p, built = params, context.built
        dev = built.device
        cuda = dev.type == "cuda"
        b, L, N = point["batch"], point["prompt_len"], p.new_tokens
        ids = prompt_ids(built.tokenizer, b, L, vocab_size=built.vocab_size, seed=p.seed).to(dev)
        mask = torch.ones_like(ids)
        use_cache = p.use_cache
        base_ctx = {**point, "new_tokens": N, "device": str(dev.type), "use_cache": use_cache}

        def gen(n: int, cache: bool):
            def run():
                out = built.generate(ids, mask, max_new_tokens=n, use_cache=cache)
                if out.shape[1] != L + n:
                    raise EvaluationError(f"generate returned {out.shape[1] - L} new tokens, expected {n}")
            return run

        rows: list[Metric] = []
        kw = dict(warmup=p.warmup, iterations=p.iterations, min_seconds=p.min_seconds, cuda=cuda)

        def timed(fn, prefix: str, ctx: dict) -> tuple[list[float], list[Metric]]:
            """Samples (warm-up excluded) and the peak-memory rows of timing ``fn``."""
            with PeakMemoryTracker(cuda) as mem:
                base = torch.cuda.memory_allocated() if cuda else None
                t = measure(fn, **kw)
            return t.samples, _memory_rows(prefix, mem.result, base, ctx)

        ttft = None
        if "prefill" in p.modes or "decode" in p.modes:
            ctx = {**base_ctx, "mode": "prefill"}
            samples, mem_rows = timed(gen(1, use_cache), "prefill", ctx)
            ttft = summarize(samples)
            if "prefill" in p.modes:
                rows += _latency_rows("ttft", ttft, ctx) + [
                    Metric("prefill_tokens_per_s", b * L / ttft.median, "tokens/s", True, n=ttft.n, context=ctx),
                ] + mem_rows
        if "decode" in p.modes:
            ctx = {**base_ctx, "mode": "decode", "use_cache": True}
            samples, mem_rows = timed(gen(N, True), "decode", ctx)
            total = summarize(samples)
            tpot = summarize([max(s - ttft.median, 1e-12) / (N - 1) for s in samples])
            rows += _latency_rows("decode_tpot", tpot, ctx) + [
                Metric("decode_tokens_per_s", b / tpot.median, "tokens/s", True, n=tpot.n, context=ctx),
            ] + _latency_rows("generate_latency", total, ctx, p90=False) + mem_rows
        if "generate-nocache" in p.modes:
            ctx = {**base_ctx, "mode": "generate-nocache", "use_cache": False}
            samples, mem_rows = timed(gen(N, False), "generate_nocache", ctx)
            total = summarize(samples)
            rows += _latency_rows("generate_nocache_latency", total, ctx, p90=False) + [
                Metric("generate_nocache_tokens_per_s", b * N / total.median, "tokens/s", True, n=total.n, context=ctx),
            ] + mem_rows
        return rows


def _latency_rows(name: str, s, ctx: dict, p90: bool = True) -> list[Metric]:
    """The median (with its standard error) and, optionally, the p90 of a latency, in seconds."""
    rows = [Metric(name, s.median, "s", False, stderr=s.stderr_of_median, n=s.n, context=ctx)]
    if p90:
        rows.append(Metric(f"{name}_p90", s.p90, "s", False, n=s.n, context=ctx))
    return rows


def _memory_rows(prefix: str, m: PeakMemory, base: int | None, ctx: dict) -> list[Metric]:
    rows = []
    if m.max_allocated_bytes is not None:
        rows.append(Metric(f"{prefix}_max_allocated", m.max_allocated_bytes, "bytes", False, context=ctx))
        rows.append(Metric(f"{prefix}_max_reserved", m.max_reserved_bytes, "bytes", False, context=ctx))
        if base is not None:
            rows.append(Metric(f"{prefix}_extra_allocated", m.max_allocated_bytes - base, "bytes", False, context=ctx))
    if m.peak_rss_bytes is not None:
        rows.append(Metric(f"{prefix}_peak_rss", m.peak_rss_bytes, "bytes", False,
                           context={**ctx, "rss_since_start": not m.rss_reset}))
    return rows
