#!/usr/bin/env python3
"""Where the time of one exact Triton scan goes, launch by launch, and what each compiled kernel holds.

    PYTHONPATH=. python3 scripts/profile_scan.py [--shapes 1x32768 1x8192] [--out DIR]

For the Bamba-9B mixer shape (h=128, p=64, n=128, g=1, bf16) and a few launch configurations
(``_launch._scan_config`` overrides), prints each kernel of one ``run_scan`` call in launch order
with its GPU time (torch.profiler; the segmented scan is three launches: segment states, state
pass, outputs), then the registers, spills and shared memory of every compiled variant of the
scan kernels (Triton's compiled-kernel metadata). Writes ``profile_scan.json`` to ``--out``.
A diagnostic, not a benchmark (``scripts/bench_ssd.py`` is).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from ssmboard.variants.triton import _kernels, _launch  # noqa: E402

H, P, N = 128, 64, 128


def inputs(b, L, seed=0):
    g = torch.Generator(device="cuda").manual_seed(seed)
    r = lambda *s: torch.randn(*s, device="cuda", generator=g)
    return dict(x=r(b, L, H, P).bfloat16(), dt=(r(b, L, H) - 1).bfloat16(), A=-torch.exp(r(H) * 0.5),
                B=r(b, L, 1, N).bfloat16(), C=r(b, L, 1, N).bfloat16(), D=r(H), dt_bias=r(H) * 0.5)


def launches(fn):
    from torch.profiler import ProfilerActivity, profile

    fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    rows = []
    for e in prof.events():
        if e.device_type.name == "CUDA":
            rows.append((e.name[:40], round(e.device_time if hasattr(e, "device_time") else e.cuda_time, 1)))
    return rows


def resources():
    out = []
    for fn in (_kernels.ssd_scan_kernel,):
        jit = _kernels.kernel(fn)
        caches = getattr(jit, "device_caches", {}) or {}
        for dev, entry in caches.items():
            cache = entry[0] if isinstance(entry, tuple) else entry
            for key, k in getattr(cache, "items", lambda: [])():
                md = getattr(k, "metadata", None)
                row = dict(kernel=fn.__name__, n_regs=getattr(k, "n_regs", None), n_spills=getattr(k, "n_spills", None),
                           shared=getattr(md, "shared", None), num_warps=getattr(md, "num_warps", None),
                           num_stages=getattr(md, "num_stages", None),
                           consts={str(a): v for a, v in (getattr(md, "constants", {}) or {}).items()
                                   if str(a) in ("BLOCK_L", "BLOCK_P", "MODE", "(57,)", "(62,)")} if md else None)
                out.append(row)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shapes", nargs="+", default=["1x32768", "1x8192"])
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    args = ap.parse_args()
    cfgs = [{}, dict(NSEG=5, BLOCK_L1=128), dict(NSEG=16, BLOCK_L1=128), dict(NSEG=16, BLOCK_L1=256), dict(NSEG=1)]
    res = {"device": torch.cuda.get_device_name(), "runs": []}
    for shape in args.shapes:
        b, L = (int(v) for v in shape.split("x"))
        inp = inputs(b, L)
        for cfg in cfgs:
            rows = launches(lambda: _launch.run_scan(**inp, chunk_size=256, config=cfg))
            total = sum(t for _, t in rows)
            print(f"{shape} {cfg}: {total:.1f} us in {len(rows)} kernels: " + ", ".join(f"{n} {t}" for n, t in rows))
            res["runs"].append(dict(shape=shape, config=cfg, kernels=rows, total_us=total))
        del inp
    res["resources"] = resources()
    for r in res["resources"]:
        print(r)
    Path(args.out, "profile_scan.json").write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
