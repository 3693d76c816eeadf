"""A small store for the leaderboard tests, written through the real store API (save_report).

Two devices (an H200 and a CPU), an out-of-memory point, item scores for two variants, a
chunk-size sweep, per-chunk KL rows and a task score. The numbers are chosen so that the
expected ranking follows from them: on the H200 by TTFT (lower is better) fast-c64 < mid-c128
(within noise of it) < ind-c64 < slow-c16, and oom-c256 ran out of memory; on the CPU the order
of fast and slow is reversed.
"""
from __future__ import annotations

from ssmboard.evaluators.report import Environment, Metric, Report

H200 = Environment(device_name="NVIDIA H200", torch_version="2.11.0", cuda_version="12.8", hostname="gpu1")
CPU = Environment(device_name="Intel Xeon", torch_version="2.9.0", hostname="cpu1")
VARIANTS = {
    "fast-c64": dict(scan="reference", chunk_size=64),
    "mid-c128": dict(scan="reference", chunk_size=128),
    "ind-c64": dict(scan="independent", chunk_size=64),
    "slow-c16": dict(scan="reference", chunk_size=16, dtype="bfloat16"),
    "oom-c256": dict(scan="reference", chunk_size=256, decoder="static"),
}
# (ttft seconds, its stderr) at prompt 256, batch 1, on the H200
H200_TTFT = {"fast-c64": (0.010, 0.0002), "mid-c128": (0.0102, 0.0002), "ind-c64": (0.012, 0.0001),
             "slow-c16": (0.020, 0.0002)}
CPU_TTFT = {"fast-c64": (0.9, 0.01), "slow-c16": (0.5, 0.01)}
KL_ITEMS = {"fast-c64": [0.0] * 20, "ind-c64": [0.02 + 0.001 * (i % 5) for i in range(20)]}


def perf_metrics(ttft: float, err: float, prompt_len: int, batch: int = 1) -> list[Metric]:
    ctx = {"prompt_len": prompt_len, "batch": batch, "new_tokens": 8, "mode": "prefill"}
    dctx = {**ctx, "mode": "decode"}
    return [Metric("ttft", ttft, "s", False, stderr=err, n=5, context=ctx),
            Metric("prefill_tokens_per_s", batch * prompt_len / ttft, "tokens/s", True, n=5, context=ctx),
            Metric("prefill_max_allocated", 1e6 * prompt_len / 64, "bytes", False, context=ctx),
            Metric("decode_tokens_per_s", 100.0 / ttft, "tokens/s", True, stderr=1.0, n=5, context=dctx)]


def seed() -> None:
    """Write the rows into the current store (SSMBOARD_HOME / SSMBOARD_DB)."""
    from ssmboard.jobs.sinks import save_report
    from ssmboard.registry.api import register_variant

    specs = {name: register_variant(name, **fields) for name, fields in VARIANTS.items()}

    def report(name: str, env: Environment, metrics: list[Metric], evaluator: str = "perf",
               effective: dict | None = None, created: str = "2026-11-30T10:00:00+00:00") -> None:
        save_report(Report(variant=specs[name].to_dict(), evaluator=evaluator, environment=env, metrics=metrics,
                           suite="test", effective_variant=effective, created_at=created))

    for name, (ttft, err) in H200_TTFT.items():
        report(name, H200, perf_metrics(ttft, err, 256) + perf_metrics(ttft * 3, err * 3, 1024))
    report("oom-c256", H200, [Metric("out_of_memory", 1.0, "", False, context={"prompt_len": 256, "batch": 1})])
    report("oom-c256", H200, perf_metrics(0.03, 0.001, 1024))
    for name, (ttft, err) in CPU_TTFT.items():
        report(name, CPU, perf_metrics(ttft, err, 256))
    # an older, slower run of fast-c64: the ranking shows the latest one
    report("fast-c64", H200, perf_metrics(0.05, 0.001, 256), created="2026-11-01T10:00:00+00:00")
    # a chunk-size sweep of fast-c64 (rows of other effective specs, for the plots only)
    for chunk in (16, 32, 128):
        eff = specs["fast-c64"].replace(chunk_size=chunk).to_dict()
        report("fast-c64", H200, perf_metrics(0.01 + 0.0001 * chunk, 0.0002, 256), effective=eff)
    # fidelity with item scores for two variants, plus KL per chunk index
    for name, items in KL_ITEMS.items():
        kl = sum(items) / len(items)
        rows = [Metric("kl_mean", kl, "nats", False, n=len(items), context={"prompt_len": 256},
                       items={f"p{i}": v for i, v in enumerate(items)}),
                Metric("top1_agreement", 1.0 - kl, "fraction", True, n=len(items), context={"prompt_len": 256},
                       items={f"p{i}": 1.0 - v for i, v in enumerate(items)})]
        rows += [Metric("kl_mean_by_chunk", kl * (k + 1) / 2, "nats", False, n=len(items),
                        context={"prompt_len": 256, "chunk_index": k}) for k in range(4)]
        report(name, H200, rows, evaluator="fidelity")
    report("fast-c64", H200, [Metric("acc", 0.61, "", True, stderr=0.02, n=200, context={"task": "shakespeare_cloze"})],
           evaluator="lm-eval")
    report("slow-c16", H200, [Metric("acc", 0.60, "", True, stderr=0.02, n=200, context={"task": "shakespeare_cloze"})],
           evaluator="lm-eval")
    # the queue: one job that failed with its error, one still pending
    from ssmboard.db import jobs as store_jobs
    from ssmboard.jobs import queue

    failed = queue.submit("ind-c64", "quick")["job_id"]
    store_jobs.claim("seed-worker", lease_s=60)
    store_jobs.fail(failed, "seed-worker", "RuntimeError: CUDA error: an illegal memory access", retry=False)
    queue.submit("slow-c16", "quick")
