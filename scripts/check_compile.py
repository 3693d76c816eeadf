#!/usr/bin/env python3
"""Which part of a variant fails under torch.compile on this machine: the scan alone, one mixer,
one decoder layer, or the whole model (masks and cache logic included)?

Prints one line per case (ok, or the error's last line) so that an Inductor failure is pinned to
a part without reading a 200-line traceback. Needs a GPU for the Triton code path of Inductor.

    python scripts/check_compile.py [--model config:bamba-9b-4l] [--dtype bfloat16]
"""
from __future__ import annotations

import argparse
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402


def attempt(name: str, fn) -> bool:
    torch._dynamo.reset()
    t0 = time.time()
    try:
        fn()
        torch.cuda.synchronize() if torch.cuda.is_available() else None
        print(f"{name:<44} ok ({time.time() - t0:.0f} s)", flush=True)
        return True
    except Exception as exc:  # report and go on to the next case
        last = [ln for ln in traceback.format_exception_only(type(exc), exc) if ln.strip()][-1].strip()
        ours = [f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in traceback.extract_tb(exc.__traceback__)
                if "ssmboard" in f.filename or "transformers" in f.filename][-3:]
        print(f"{name:<44} FAILED ({time.time() - t0:.0f} s): {last[:300]}  [{' <- '.join(ours)}]", flush=True)
        return False


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="config:bamba-9b-4l")
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--length", type=int, default=512)
    args = ap.parse_args()
    from ssmboard.registry.spec import VariantSpec
    from ssmboard.variants.build import build
    from ssmboard.variants.scans.reference import scan

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    spec = VariantSpec(name="check-compile", model=args.model, scan="reference", dtype=args.dtype)
    dt = getattr(torch, spec.dtype)
    model = build(spec, device=dev).model
    mixer = next(m for m in model.modules() if type(m).__name__ == "ScanMixer")
    h, p, n, g = mixer.num_heads, mixer.head_dim, mixer.ssm_state_size, mixer.n_groups
    L = args.length
    x = torch.randn(1, L, h, p, device=dev, dtype=dt)
    dts = torch.randn(1, L, h, device=dev, dtype=dt)
    A = -torch.rand(h, device=dev)
    B, C = (torch.randn(1, L, g, n, device=dev, dtype=dt) for _ in range(2))
    hid = torch.randn(1, L, model.config.hidden_size, device=dev, dtype=dt)
    ids = torch.randint(0, 1000, (1, L), device=dev)

    with torch.inference_mode():
        attempt("scan alone (fullgraph)", lambda: torch.compile(scan, fullgraph=True)(
            x, dts, A, B, C, chunk_size=mixer.chunk_size, dt_bias=mixer.dt_bias, dt_softplus=True,
            return_final_state=True))
        attempt("mixer alone", lambda: torch.compile(mixer)(hid))
        layer = model.model.layers[0]
        attempt("decoder layer 0 (mamba)", lambda: torch.compile(layer)(hid, attention_mask=torch.ones_like(ids)))
        attempt("whole model forward", lambda: torch.compile(model)(input_ids=ids, attention_mask=torch.ones_like(ids),
                                                                    use_cache=False))
        attempt("whole model forward, use_cache=True", lambda: torch.compile(model)(
            input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=True))


if __name__ == "__main__":
    main()
