"""GPTScore (after Fu et al. 2023): a scorer LM judges the variant's greedy continuations.

From each prompt (a window of the corpus's held-out test split spanning several chunks),
the variant greedily writes ``new_tokens`` tokens: the hypothesis. The reference is the
corpus's own next ``new_tokens`` tokens after the prompt. A scorer LM then gives
- ``gptscore_ref_hyp``: the mean token log-likelihood (nats/token) of the hypothesis given
  the instruction and the reference (``instruction + reference + joiner`` as context);
- ``gptscore_hyp_ref``: of the reference given the instruction and the hypothesis;
- ``gptscore_mean``: the arithmetic mean of the two;
- ``gptscore_f``: the harmonic mean of the two directions' per-token geometric-mean
  probabilities ``exp(score)`` (a positive quantity in (0, 1], so the harmonic mean is
  defined; the seed took it of negative log-likelihoods, which is not);
- ``reference_token_agreement``: the fraction of hypothesis tokens equal to the reference's.
Each prompt is one item (``test:<offset>``). Texts go through the scorer's own tokenizer,
so any causal LM can score. The scorer is the same for every variant: by default the
embedded model with the exact ``reference`` scan in float32 (``DEFAULT_SCORER``); or a
registered variant name; or a local checkpoint folder (run with its own transformers
layers). Its identity (``scorer``, ``scorer_model``, ``scorer_fingerprint``) is in every row's
context, so rows of different scorers are never compared.
"""
from __future__ import annotations

import math
import os
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ssmboard.errors import EvaluationError
from ssmboard.evaluators.base import EvalContext, Params, register_evaluator
from ssmboard.evaluators.loglik import score_continuations
from ssmboard.evaluators.report import Metric
from ssmboard.evaluators.windows import as_batch, test_windows
from ssmboard.registry.spec import DEFAULT_MODEL, VariantSpec

DEFAULT_SCORER = VariantSpec(name="gptscore-scorer", model=DEFAULT_MODEL, scan="reference", dtype="float32",
                             description="GPTScore's default scorer: the embedded model, exact scan, float32")


def _looks_like_path(text: str) -> bool:
    return text.startswith((".", "/", "~")) or os.sep in text


@dataclass(frozen=True)
class GptScoreParams(Params):
    prompt_lengths: tuple[int, ...] = (256, 512)
    prompts: int = 8
    new_tokens: int = 32
    batch_size: int = 8
    seed: int = 0
    scorer: str = ""  # "": DEFAULT_SCORER; a registered variant name; or a local checkpoint folder
    instruction: str = "Rephrase the passage.\n\n"
    joiner: str = "\n\nIn other words:\n\n"

    def validate(self) -> None:
        if self.prompts < 1 or self.new_tokens < 1 or self.batch_size < 1 or any(n < 1 for n in self.prompt_lengths):
            raise EvaluationError("gptscore needs prompts, new_tokens, batch_size and prompt lengths >= 1")
        if self.scorer and _looks_like_path(self.scorer) and not Path(self.scorer).expanduser().is_dir():
            raise EvaluationError(f"gptscore scorer {self.scorer!r} is not a folder; give a local causal-LM "
                                  "checkpoint folder, a registered variant name, or nothing for the default scorer")


def scorer_spec(scorer: str) -> VariantSpec:
    """The scorer a ``scorer`` parameter names (see GptScoreParams.scorer)."""
    if not scorer:
        return DEFAULT_SCORER
    if _looks_like_path(scorer):
        folder = Path(scorer).expanduser().resolve()
        if not folder.is_dir():
            raise EvaluationError(f"gptscore scorer {scorer!r} is not a folder; give a local causal-LM checkpoint "
                                  "folder, a registered variant name, or nothing for the default scorer")
        return VariantSpec(name="gptscore-scorer", model=str(folder), scan="transformers", dtype="float32")
    from ssmboard.registry.builtins import builtin_specs

    for spec in builtin_specs():
        if spec.name == scorer:
            return spec
    from ssmboard.registry.api import get_variant  # a user's variant lives in the store

    return get_variant(scorer)


def pair_scores(scorer: Any, hyps: list[str], refs: list[str], *, instruction: str, joiner: str,
                batch_size: int = 8) -> tuple[list[float], list[float]]:
    """Per pair, the mean token log-likelihood of hyp given ref (ref->hyp) and of ref given hyp."""
    tok = scorer.tokenizer

    def enc(text: str) -> list[int]:
        return list(tok(text, add_special_tokens=False)["input_ids"])

    prefix = [tok.eos_token_id] if tok.eos_token_id is not None else []
    pairs = []
    for hyp, ref in zip(hyps, refs):
        pairs.append((prefix + enc(instruction + ref + joiner), enc(hyp)))
        pairs.append((prefix + enc(instruction + hyp + joiner), enc(ref)))
    if any(not target for _, target in pairs):
        raise EvaluationError("a GPTScore hypothesis or reference is empty in the scorer's tokens; "
                              "use more new_tokens")
    scored = score_continuations(scorer, pairs, batch_size=batch_size)
    means = [s.mean for s in scored]
    return means[0::2], means[1::2]


def _row(name: str, items: dict[str, float], unit: str, ctx: dict) -> Metric:
    values = list(items.values())
    stderr = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else None
    return Metric(name, statistics.fmean(values), unit, True, stderr=stderr, n=len(values), context=dict(ctx),
                  items=items)


@register_evaluator("gptscore")
class GptScoreEvaluator:
    name = "gptscore"
    params_type = GptScoreParams
    needs_trained_weights = True

    def points(self, params: GptScoreParams) -> list[dict[str, Any]]:
        return [{"prompt_len": n} for n in params.prompt_lengths]

    def run_point(self, context: EvalContext, point: dict[str, Any], params: GptScoreParams) -> list[Metric]:
        built, n, length = context.built, params.new_tokens, int(point["prompt_len"])
        spec = scorer_spec(params.scorer)
        scorer = context.build(spec)
        windows = test_windows(built.tokenizer, params.prompts, length + n, seed=params.seed)
        full = as_batch(windows)
        prompts, refs_ids = full[:, :length], full[:, length:]
        hyps_ids = []
        for start in range(0, len(windows), params.batch_size):
            ids = prompts[start:start + params.batch_size]
            hyps_ids.append(built.generate(ids, max_new_tokens=n)[:, length:].cpu())
        import torch

        hyp_ids = torch.cat(hyps_ids)
        dec = built.tokenizer.decode
        hyps = [dec(h.tolist()) for h in hyp_ids]
        refs = [dec(r.tolist()) for r in refs_ids]
        rh, hr = pair_scores(scorer, hyps, refs, instruction=params.instruction, joiner=params.joiner,
                             batch_size=params.batch_size)
        items = [w.item for w in windows]
        ctx = {"prompt_len": length, "prompts": len(windows), "new_tokens": n, "split": "test",
               "scorer": params.scorer or "default", "scorer_model": spec.model,
               "scorer_fingerprint": spec.fingerprint, "device": built.device.type}
        f = [2 * math.exp(a) * math.exp(b) / (math.exp(a) + math.exp(b)) for a, b in zip(rh, hr)]
        agree = (hyp_ids == refs_ids).double().mean(-1).tolist()
        return [
            _row("gptscore_ref_hyp", dict(zip(items, rh)), "nats/token", ctx),
            _row("gptscore_hyp_ref", dict(zip(items, hr)), "nats/token", ctx),
            _row("gptscore_mean", {k: (a + b) / 2 for k, a, b in zip(items, rh, hr)}, "nats/token", ctx),
            _row("gptscore_f", dict(zip(items, f)), "probability", ctx),
            _row("reference_token_agreement", dict(zip(items, agree)), "fraction", ctx),
        ]
