#!/usr/bin/env python3
"""GPU check of graph decoding: agreement with ``model.generate`` and decode tokens/s.

    python3 scripts/check_graph_decode.py [--model config:bamba-9b-4l] [--out DIR]

Builds the model (bf16, all layers, random weights with the loader's fixed seed) with the
``reference`` scan, then re-patches it to ``triton`` (the same weights), and for each:

- agreement: greedy tokens of :func:`ssmboard.variants.graph_decode.generate` (CUDA graph)
  against ``model.generate(do_sample=False, max_new_tokens=32, min_new_tokens=32)`` after a
  512-token random prompt: the first index where they part, the max logit difference at step 0
  (the prefill, shared) and step 1 (the first graph step), and graph vs eager steps of the
  decoder (the same math; they should agree to rounding);
- speed: time of 128 new tokens and of 1 new token after 512 (median of 5 after warm-up,
  ``torch.cuda.synchronize`` + ``perf_counter``) for ``model.generate``, the decoder with eager
  steps, and the decoder with its CUDA graph; decode tokens/s = 127 / (t128 - t1).

Prints a table and writes ``graph_decode.json`` to ``--out`` (default ``$OUT`` or ``.``),
after each section, so a run cut short still leaves what it measured.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402


def _spec(model: str, scan: str):
    from ssmboard.registry.spec import VariantSpec

    return VariantSpec(name=f"check-{scan}", model=model, scan=scan, dtype="bfloat16")


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _timed(fn, reps: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    _sync()
    times = []
    for _ in range(reps):
        _sync()
        t0 = time.perf_counter()
        fn()
        _sync()
        times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="config:bamba-9b-4l")
    ap.add_argument("--scans", nargs="+", default=["reference", "triton"])
    ap.add_argument("--prompt", type=int, default=512)
    ap.add_argument("--check-tokens", type=int, default=32)
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    ap.add_argument("--device", default="cuda", help="cpu: a dry run of this script (eager steps, no graph)")
    args = ap.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("needs a CUDA GPU (or --device cpu for a dry run)")
    device = torch.device(args.device)

    import transformers

    from ssmboard.variants.build import build

    out_path = Path(args.out) / "graph_decode.json"
    report: dict = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device": torch.cuda.get_device_name() if device.type == "cuda" else platform.processor() or "cpu", "torch": torch.__version__,
        "transformers": transformers.__version__, "python": platform.python_version(),
        "model": args.model, "dtype": "bfloat16", "batch": 1, "prompt": args.prompt,
        "new_tokens": args.new_tokens, "reps": args.reps, "scans": {},
    }
    try:
        import triton
        report["triton"] = triton.__version__
    except ImportError:
        pass

    def save() -> None:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(json.dumps(report, indent=2))

    t0 = time.perf_counter()
    built = build(_spec(args.model, args.scans[0]), device=device)
    model = built.model
    report["build_s"] = round(time.perf_counter() - t0, 1)
    vocab = model.config.vocab_size
    ids = torch.randint(3, vocab, (1, args.prompt), generator=torch.Generator().manual_seed(0)).to(device)
    mask = torch.ones_like(ids)
    pad = model.config.pad_token_id if model.config.pad_token_id is not None else 0

    for scan in args.scans:
        row: dict = {}
        report["scans"][scan] = row
        try:
            _check_scan(model, scan, args, row, ids, mask, pad, save, first=scan == args.scans[0])
        except Exception:  # keep what was measured, say what failed, go on with the next scan
            import traceback

            row["error"] = traceback.format_exc()
            print(row["error"], flush=True)
            save()
    _table(report, args, out_path)


def _check_scan(model, scan, args, row, ids, mask, pad, save, first) -> None:
    from ssmboard.variants.graph_decode import attach, generate
    from ssmboard.variants.patch import apply_scan

    if not first:
        apply_scan(model, scan)  # same weights, another backend (the decoder is rebuilt)

    def hf(n: int, **kw):
        return model.generate(ids, attention_mask=mask, max_new_tokens=n, min_new_tokens=n, do_sample=False,
                              pad_token_id=pad, **kw)

    with torch.no_grad():
        # -- agreement ---------------------------------------------------------------
        n = args.check_tokens
        want = hf(n, output_logits=True, return_dict_in_generate=True)
        want_seq, want_logits = want.sequences, torch.stack(want.logits, dim=1).float()
        t0 = time.perf_counter()
        got_seq, got_logits = generate(model, ids, max_new_tokens=n, return_logits=True)
        _sync()
        row["first_call_s(capture+prefill+decode)"] = round(time.perf_counter() - t0, 3)
        eager_seq, eager_logits = generate(model, ids, max_new_tokens=n, return_logits=True, use_graph=False)
        new_w, new_g = want_seq[0, args.prompt:], got_seq[0, args.prompt:]
        diff = (new_w != new_g).nonzero()
        first = int(diff[0]) if len(diff) else None
        upto = first if first is not None else n
        row["agreement"] = {
            "tokens": n, "identical": first is None, "first_mismatch": first,
            "agreeing_prefix": upto,
            "max_logit_diff_step0": float((got_logits[:, 0] - want_logits[:, 0]).abs().max()),
            "max_logit_diff_step1": float((got_logits[:, 1] - want_logits[:, 1]).abs().max()),
            "max_logit_diff_before_mismatch": float((got_logits[:, :upto] - want_logits[:, :upto]).abs().max()),
            "logit_scale": float(want_logits[:, :upto].abs().max()),
            "graph_vs_eager_identical_tokens": bool(torch.equal(got_seq, eager_seq)),
            "graph_vs_eager_max_logit_diff": float((got_logits - eager_logits).abs().max()),
        }
        decoders = model.__dict__.get("_ssmboard_graph_decoders", {})
        row["decoders"] = [f"batch {k[0]} max_len {k[1]} {k[2]} graph={k[4]}" for k in decoders]
        save()
        print(f"[{scan}] agreement: {row['agreement']}", flush=True)

        # -- speed ----------------------------------------------------------------
        big = args.new_tokens
        attach(model, 1, args.prompt + big)  # capture outside the timing (the bucket of both runs)
        methods = {
            "transformers generate": lambda k: hf(k),
            "decoder, eager steps": lambda k: generate(model, ids, max_new_tokens=k, use_graph=False),
            "decoder, CUDA graph": lambda k: generate(model, ids, max_new_tokens=k),
        }
        speed: dict = {}
        row["speed"] = speed
        for name, fn in methods.items():
            t_big = _timed(lambda: fn(big), args.reps, warmup=2)
            t_one = _timed(lambda: fn(1), args.reps, warmup=1)
            m_big, m_one = statistics.median(t_big), statistics.median(t_one)
            speed[name] = {
                "t_new_tokens_s": m_big, "t_1_token_s": m_one, "runs_new_tokens_s": t_big,
                "decode_tokens_per_s": (big - 1) / (m_big - m_one) if m_big > m_one else None,
                "end_to_end_tokens_per_s": big / m_big,
            }
            save()
            print(f"[{scan}] {name}: {speed[name]['decode_tokens_per_s']:.1f} decode tok/s", flush=True)
        base = speed["transformers generate"]["decode_tokens_per_s"]
        graph = speed["decoder, CUDA graph"]["decode_tokens_per_s"]
        row["graph_speedup_vs_generate"] = graph / base if base and graph else None
        save()


def _table(report, args, out_path) -> None:
    print(f"\n{report['device']}  torch {report['torch']}  transformers {report['transformers']}  {report['date']}")
    print(f"{args.model} bf16 batch 1, prompt {args.prompt}, {args.new_tokens} new tokens; median of {args.reps}")
    print(f"{'scan':<10} {'method':<24} {'decode tok/s':>12} {'e2e tok/s':>10} {f't{args.new_tokens} ms':>9} {'t1 ms':>8}")
    for scan, row in report["scans"].items():
        for name, s in row.get("speed", {}).items():
            dec = s["decode_tokens_per_s"]
            print(f"{scan:<10} {name:<24} {dec if dec is None else round(dec, 1)!s:>12} "
                  f"{s['end_to_end_tokens_per_s']:>10.1f} {1e3 * s['t_new_tokens_s']:>9.1f} {1e3 * s['t_1_token_s']:>8.1f}")
        a = row.get("agreement", {})
        print(f"{scan:<10} agreement: first mismatch {a.get('first_mismatch')} of {a.get('tokens')}, "
              f"step0 diff {a.get('max_logit_diff_step0', float('nan')):.3g}, step1 diff "
              f"{a.get('max_logit_diff_step1', float('nan')):.3g}, graph==eager {a.get('graph_vs_eager_identical_tokens')}; "
              f"speedup {row.get('graph_speedup_vs_generate')}")
    print(f"wrote {out_path}")


if __name__ == "__main__":
    main()
