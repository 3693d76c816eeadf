"""Fidelity: how far a variant's next-token distributions are from the exact computation.

The reference is the same checkpoint and layers, built with the ``reference`` scan (exact)
in float32, eager, on the variant's device, with the variant's chunk size unless
``reference_chunk_size`` names another (the exact scan does not depend on it, up to float
rounding, which is what comparing two exact chunk sizes shows). Prompts are windows of the
embedded corpus's held-out test split (``evaluators.windows``): the given lengths, which
should span several chunks, plus (``single_chunk``) one of half a chunk, where a chunking
approximation cannot differ yet.

Per prompt length, over ``prompts`` prompts (each prompt one item, id ``test:<offset>``):
- ``kl_mean`` / ``kl_max``: per-token KL(reference || variant) of the next-token
  distributions, in nats, the mean and the max over positions (per item: that prompt's);
- ``logit_max_abs_diff``: the largest |logit difference|;
- ``top1_agreement``: the fraction of positions whose argmax agrees;
- ``greedy_token_agreement``: over ``new_tokens`` greedy tokens from each prompt (each model
  continuing its own output), the fraction equal to the reference's at the same position;
- ``greedy_first_divergence``: the first position where they differ (``new_tokens`` if never);
- ``kl_mean_by_chunk`` with ``chunk_index`` in the context: the mean KL of the positions in
  chunk 0, 1, 2, ... (an approximation such as independent chunks is exact in chunk 0).
"""
from __future__ import annotations

import dataclasses
import math
import statistics
from dataclasses import dataclass
from typing import Any

import torch

from ssmboard.errors import EvaluationError
from ssmboard.evaluators.base import EvalContext, Params, register_evaluator
from ssmboard.evaluators.report import Metric
from ssmboard.evaluators.windows import as_batch, test_windows


@dataclass(frozen=True)
class FidelityParams(Params):
    prompt_lengths: tuple[int, ...] = (256, 512, 1024)
    single_chunk: bool = True  # add one prompt of half a chunk
    prompts: int = 4  # prompts (items) per length
    new_tokens: int = 32
    batch_size: int = 4
    seed: int = 0
    reference_chunk_size: int | None = None  # None: the variant's own chunk size

    def validate(self) -> None:
        if self.prompts < 1 or self.new_tokens < 1 or self.batch_size < 1:
            raise EvaluationError("fidelity needs prompts, new_tokens and batch_size >= 1")
        if any(n < 2 for n in self.prompt_lengths):
            raise EvaluationError("fidelity prompt lengths must be >= 2 tokens")
        if not self.prompt_lengths and not self.single_chunk:
            raise EvaluationError("fidelity has no prompt: give prompt_lengths or single_chunk=true")


def reference_spec(spec: Any, chunk_size: int | None = None) -> Any:
    """The exact computation on the same weights: reference scan, float32, eager."""
    return dataclasses.replace(spec, scan="reference", dtype="float32", compile=None, compile_options=(),
                               compile_scope="model", decoder="generate",
                               chunk_size=chunk_size if chunk_size is not None else spec.chunk_size)


def _per_prompt_stats(ref_logits: torch.Tensor, var_logits: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-position KL (b, L) and per-prompt max |logit diff| and top-1 agreement, in float64."""
    p = torch.log_softmax(ref_logits.double(), dim=-1)
    q = torch.log_softmax(var_logits.double(), dim=-1)
    kl = (p.exp() * (p - q)).sum(-1).clamp(min=0.0)  # rounding can make an exact 0 slightly negative
    diff = (ref_logits.double() - var_logits.double()).abs().amax(dim=(1, 2))
    top1 = (ref_logits.argmax(-1) == var_logits.argmax(-1)).double().mean(-1)
    return {"kl": kl, "logit_diff": diff, "top1": top1}


def _greedy(built: Any, ids: torch.Tensor, n: int) -> torch.Tensor:
    out = built.generate(ids, torch.ones_like(ids), max_new_tokens=n)
    return out[:, ids.shape[1]:].cpu()


def _row(name: str, per_item: dict[str, float], unit: str, higher: bool, ctx: dict, agg: str = "mean") -> Metric:
    """A mean over prompts carries each prompt's value as its items (what a paired bootstrap
    resamples); a max does not, since the mean of per-item differences is not a max's change."""
    values = list(per_item.values())
    if agg == "max":
        return Metric(name, max(values), unit, higher, n=len(values), context=dict(ctx))
    stderr = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else None
    return Metric(name, statistics.fmean(values), unit, higher, stderr=stderr, n=len(values), context=dict(ctx),
                  items=per_item)


@register_evaluator("fidelity")
class FidelityEvaluator:
    name = "fidelity"
    params_type = FidelityParams
    needs_trained_weights = True  # random weights have no distributions worth matching

    def points(self, params: FidelityParams) -> list[dict[str, Any]]:
        pts = [{"prompt_len": n} for n in params.prompt_lengths]
        return pts + ([{"single_chunk": True}] if params.single_chunk else [])

    def run_point(self, context: EvalContext, point: dict[str, Any], params: FidelityParams) -> list[Metric]:
        built = context.built
        chunk = built.chunk_size
        if point.get("single_chunk"):
            if not chunk:
                raise EvaluationError("the variant's chunk size is unknown, so no single-chunk prompt can be cut")
            length = max(2, chunk // 2)
        else:
            length = int(point["prompt_len"])
        ref = context.build(reference_spec(context.spec, params.reference_chunk_size))
        windows = test_windows(built.tokenizer, params.prompts, length, seed=params.seed)
        per: dict[str, dict[str, float]] = {k: {} for k in
                                           ("kl_mean", "kl_max", "logit_diff", "top1", "agree", "first_div")}
        by_chunk: dict[int, dict[str, float]] = {}
        n = params.new_tokens
        for start in range(0, len(windows), params.batch_size):
            batch = windows[start:start + params.batch_size]
            ids = as_batch(batch)
            stats = _per_prompt_stats(ref.forward(ids).cpu(), built.forward(ids).cpu())
            ref_new, var_new = _greedy(ref, ids, n), _greedy(built, ids, n)
            same = ref_new == var_new
            for i, w in enumerate(batch):
                kl = stats["kl"][i]
                per["kl_mean"][w.item] = float(kl.mean())
                per["kl_max"][w.item] = float(kl.max())
                per["logit_diff"][w.item] = float(stats["logit_diff"][i])
                per["top1"][w.item] = float(stats["top1"][i])
                per["agree"][w.item] = float(same[i].double().mean())
                wrong = (~same[i]).nonzero()
                per["first_div"][w.item] = float(wrong[0, 0]) if len(wrong) else float(n)
                if chunk:
                    for c in range(math.ceil(length / chunk)):
                        by_chunk.setdefault(c, {})[w.item] = float(kl[c * chunk:(c + 1) * chunk].mean())
        ctx = {"prompt_len": length, "prompts": len(windows), "new_tokens": n, "split": "test",
               "reference_fingerprint": ref.spec.fingerprint, "reference_chunk_size": ref.chunk_size,
               "device": built.device.type}
        if point.get("single_chunk"):
            ctx["single_chunk"] = True
        rows = [
            _row("kl_mean", per["kl_mean"], "nats", False, ctx),
            _row("kl_max", per["kl_max"], "nats", False, ctx, agg="max"),
            _row("logit_max_abs_diff", per["logit_diff"], "logits", False, ctx, agg="max"),
            _row("top1_agreement", per["top1"], "fraction", True, ctx),
            _row("greedy_token_agreement", per["agree"], "fraction", True, ctx),
            _row("greedy_first_divergence", per["first_div"], "tokens", True, ctx),
        ]
        rows += [_row("kl_mean_by_chunk", items, "nats", False, {**ctx, "chunk_index": c})
                 for c, items in sorted(by_chunk.items())]
        return rows
