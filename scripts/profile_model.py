#!/usr/bin/env python3
"""Where the time of a whole-model prefill and decode step goes, on a GPU.

    python3 scripts/profile_model.py [--model config:bamba-9b-4l] [--scan triton] [--length 2048] [--out DIR]

Prints, for one variant (bf16, batch 1): the build time by phase; the prefill of
``--length`` tokens timed three ways (the bare forward with a cache and ``logits_to_keep=1``,
transformers' ``generate(max_new_tokens=1)``, ssmboard's ``graph_decode.generate(max_new_tokens=1)``);
the CUDA kernels of one prefill forward and of one eager decode step (torch.profiler, top
kernels by total time, count and sum); the per-token time of the decoder's CUDA graph; then
the same prefill and graph decode with the model's non-scan submodules compiled
(``--compile-parts``), to see what Inductor's fusion of norms, activations and residual adds
buys. Writes ``profile_model.json`` to ``--out``. A diagnostic, not a benchmark: the
benchmarks are ``scripts/bench_model.py``.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402


def sync():
    torch.cuda.synchronize()


def median_ms(fn, reps=10, warmup=3):
    for _ in range(warmup):
        fn()
    sync()
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        sync()
        ts.append((time.perf_counter() - t) * 1e3)
    return statistics.median(ts)


def kernel_table(fn, top=22):
    from torch.profiler import ProfilerActivity, profile

    fn()
    sync()
    with profile(activities=[ProfilerActivity.CUDA, ProfilerActivity.CPU]) as prof:
        fn()
        sync()
    rows = []
    for e in prof.key_averages():
        t = getattr(e, "self_device_time_total", None) or getattr(e, "self_cuda_time_total", 0)
        if t and e.device_type.name == "CUDA":
            rows.append((e.key[:90], e.count, t / 1e3))
    rows.sort(key=lambda r: -r[2])
    total = sum(r[2] for r in rows)
    count = sum(r[1] for r in rows)
    print(f"  kernels: {count} launches, {total:.3f} ms of kernel time")
    for k, c, t in rows[:top]:
        print(f"  {t:8.3f} ms {c:5d}x  {k}")
    return {"kernel_ms": total, "launches": count, "top": [dict(name=k, count=c, ms=t) for k, c, t in rows[:top]]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="config:bamba-9b-4l")
    ap.add_argument("--scan", default="triton")
    ap.add_argument("--length", type=int, default=2048)
    ap.add_argument("--compile-parts", action="store_true")
    ap.add_argument("--decode-after", type=int, default=512, help="prompt length before the timed decode tokens")
    ap.add_argument("--top", type=int, default=22, help="kernels listed per table")
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    args = ap.parse_args()
    from transformers import logging as hf_logging

    hf_logging.set_verbosity_error()
    from ssmboard.variants import graph_decode
    from ssmboard.variants.build import build

    res = {"args": vars(args), "device": torch.cuda.get_device_name(), "torch": torch.__version__}
    out = Path(args.out) / "profile_model.json"

    def save():
        out.write_text(json.dumps(res, indent=1))

    t = time.perf_counter()
    from ssmboard.registry.spec import VariantSpec

    spec = VariantSpec(name="profile", model=args.model, scan=args.scan, dtype="bfloat16", decoder="static")
    built = build(spec, device="cuda")
    model = built.model
    sync()
    res["build_s"] = time.perf_counter() - t
    print(f"build {res['build_s']:.1f} s")
    ids = torch.randint(0, model.config.vocab_size, (1, args.length), device="cuda")
    mask = torch.ones_like(ids)

    def fwd():
        with torch.inference_mode():
            graph_decode.prefill(model, ids, None)

    def hf_gen():
        with torch.inference_mode():
            model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=1, min_new_tokens=1, do_sample=False,
                           pad_token_id=0)

    def our_gen():
        with torch.inference_mode():
            graph_decode.generate(model, ids, mask, max_new_tokens=1)

    L0 = args.decode_after
    ctx = torch.randint(0, model.config.vocab_size, (1, L0), device="cuda")

    def decoder(fused):
        dec = graph_decode.attach(model, 1, L0 + 256, fused=fused)
        with torch.inference_mode():
            cache, last = graph_decode.prefill(model, ctx, None)
            dec.load(cache, ctx, None, last.argmax(-1))
        return dec, cache, last

    def graph_ms(dec, n=200):
        sync()
        t0 = time.perf_counter()
        dec.advance(n)
        sync()
        return (time.perf_counter() - t0) * 1e3 / n

    def agreement(tag, n=32):
        """Fused vs unfused decoder from the same prefill: tokens and logits of n graph steps."""
        if not graph_decode.fusable(model):
            return
        got = {}
        for fused in (False, True):
            dec, _, _ = decoder(fused)
            logits = torch.empty(1, n, model.config.vocab_size, device="cuda", dtype=torch.float32)
            dec.advance(n, logits)
            sync()
            got[fused] = (dec.tokens[0, L0 + 1:L0 + 1 + n].clone(), logits)
        same = (got[False][0] == got[True][0]).long()
        first_diff = int(same.argmin()) if not bool(same.all()) else n
        r = {"steps": n, "first_token_difference": first_diff,
             "max_logit_diff_step0": float((got[False][1][:, 0] - got[True][1][:, 0]).abs().max()),
             "logit_scale": float(got[False][1][:, 0].abs().max())}
        print(f"[{tag}] fused vs unfused decode: {r}")
        res[f"agreement_{tag}"] = r
        save()

    def timings(tag):
        r = {"forward_ms": median_ms(fwd), "hf_generate1_ms": median_ms(hf_gen), "our_generate1_ms": median_ms(our_gen)}
        out = None
        for fused in ((False, True) if graph_decode.fusable(model) else (False,)):
            dec, cache, last = decoder(fused)
            key = "fused" if fused else "unfused"
            r[f"graph_token_ms_{key}"] = graph_ms(dec)
            with torch.inference_mode():
                dec.load(cache, ctx, None, last.argmax(-1))
            r[f"eager_step_ms_{key}"] = median_ms(lambda: (dec.step(), dec.pos.fill_(L0)), reps=20)
            out = dec
        print(f"[{tag}] decode after {L0}: " + ", ".join(f"{k} {v:.3f}" for k, v in r.items()))
        res[tag] = r
        save()
        return out

    agreement("eager")
    dec = timings("eager")
    print(f"prefill {args.length} forward kernels:")
    res["prefill_kernels"] = kernel_table(fwd, top=args.top)
    save()
    print(f"decode step (eager parts, fused={dec.fused}) kernels:")
    res["step_kernels"] = kernel_table(lambda: (dec.step(), dec.pos.fill_(L0)), top=args.top)
    save()
    if args.compile_parts:
        t = time.perf_counter()
        from ssmboard.variants.compile import compile_model

        compile_model(model, "default", scope="parts")
        graph_decode.detach(model)
        agreement("compiled-parts")
        timings("compiled-parts")
        res["compiled-parts"]["incl_compile_s"] = time.perf_counter() - t
        save()
        print("prefill forward kernels, compiled parts:")
        res["prefill_kernels_compiled"] = kernel_table(fwd)
        dec, _, _ = decoder(None)
        print(f"decode step kernels, compiled parts (fused={dec.fused}):")
        res["step_kernels_compiled"] = kernel_table(lambda: (dec.step(), dec.pos.fill_(L0)), top=args.top)
        if dec.fused:
            dec, _, _ = decoder(False)
            print("decode step kernels, compiled parts, unfused:")
            res["step_kernels_compiled_unfused"] = kernel_table(lambda: (dec.step(), dec.pos.fill_(L0)), top=args.top)
        save()


if __name__ == "__main__":
    main()
