"""The lm-eval ``LM`` subclass ``ssmboard``: a built variant answering lm-eval's requests.

Imported only when lm-eval is wanted (``ssmboard.extras.require("lm_eval", "lm-eval")``
first), since it imports lm_eval at the top; importing it registers the model name
``ssmboard`` with lm-eval's ``register_model``. lm-eval 0.4's own CLI does not discover
third-party models (no entry points), so ``python -m ssmboard.evaluators.lm_eval_main``
(or ``ssmboard lm-eval ...``) imports this module and then runs lm-eval's CLI.

All three request types run greedy and batched with left padding:
- ``loglikelihood``: the continuation's summed log-probability and whether greedy decoding
  gives it (context and continuation tokenized as lm-eval's HF model does: trailing
  whitespace of the context moves to the continuation; an empty context is the EOS token);
- ``loglikelihood_rolling``: lm-eval's disjoint rolling windows of ``max_length`` tokens;
- ``generate_until``: greedy tokens up to ``max_gen_toks``, cut at the first stop string
  (sampling settings in the task are ignored: ssmboard measures greedy decoding only).
"""
from __future__ import annotations

import logging
from typing import Any

from lm_eval.api.model import LM
from lm_eval.api.registry import register_model
from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

from ssmboard.evaluators.loglik import score_continuations

log = logging.getLogger(__name__)
DEFAULT_MAX_LENGTH = 2048


def _as_int(value: Any, default: int) -> int:
    if value is None or (isinstance(value, str) and not value.strip().isdigit()):
        return default  # e.g. batch_size="auto": a fixed batch is what we measure
    return int(value)


def resolve_variant_spec(name: str) -> Any:
    """A built-in (without the store), else the registered variant of that name."""
    from ssmboard.registry.builtins import builtin_specs

    for spec in builtin_specs():
        if spec.name == name:
            return spec
    from ssmboard.registry.api import get_variant

    return get_variant(name)


@register_model("ssmboard")
class SsmboardLM(LM):
    """``ssmboard`` in lm-eval: ``--model_args variant=NAME[,device=cpu,max_length=N,batch_size=N]``."""

    def __init__(self, variant: str = "reference-c64", built: Any = None, batch_size: Any = 8,
                 device: str | None = None, max_length: Any = None, max_gen_toks: Any = 256,
                 **ignored: Any) -> None:
        super().__init__()
        if ignored:
            log.info("ssmboard LM ignores model args %s", sorted(ignored))
        if built is None:
            import torch

            from ssmboard.variants.build import build

            if device and str(device).startswith("cuda") and not torch.cuda.is_available():
                log.warning("no CUDA GPU here: running on the CPU (lm-eval's --device defaults to cuda)")
                device = "cpu"

            built = build(resolve_variant_spec(variant), device=device)
        self.built = built
        self.tok = built.tokenizer
        self.batch_size = _as_int(batch_size, 8)
        own = getattr(built.model.config, "max_position_embeddings", None) or DEFAULT_MAX_LENGTH
        self.max_length = _as_int(max_length, int(own))
        self.max_gen_toks = _as_int(max_gen_toks, 256)

    # -- helpers ------------------------------------------------------------------------
    @property
    def eot_token_id(self) -> int:
        eos = self.tok.eos_token_id
        return eos if eos is not None else self.built.pad_token_id

    @property
    def tokenizer_name(self) -> str:
        return str(getattr(self.tok, "name_or_path", "ssmboard")).replace("/", "__")

    def get_model_info(self) -> dict:
        spec = self.built.spec
        return {"ssmboard_variant": spec.name, "ssmboard_fingerprint": spec.fingerprint}

    def tok_encode(self, text: str) -> list[int]:
        return list(self.tok(text, add_special_tokens=False)["input_ids"])

    def encode_pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        if not context:
            return [self.eot_token_id], self.tok_encode(continuation)
        spaces = len(context) - len(context.rstrip())
        if spaces:
            context, continuation = context[:-spaces], context[-spaces:] + continuation
        whole = self.tok_encode(context + continuation)
        ctx = self.tok_encode(context)
        return ctx, whole[len(ctx):]

    # -- the three request types --------------------------------------------------------
    def loglikelihood(self, requests, disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        pairs = [self.encode_pair(*req.args) for req in requests]
        scored = score_continuations(self.built, pairs, batch_size=self.batch_size, max_length=self.max_length)
        out = []
        for req, s in zip(requests, scored):
            answer = (s.logprob, s.greedy)
            out.append(answer)
            self.cache_hook.add_partial("loglikelihood", req.args, answer)
        return out

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        windows, owner = [], []
        for i, req in enumerate(requests):
            tokens = self.tok_encode(req.args[0])
            for w in get_rolling_token_windows(token_list=tokens, prefix_token=self.eot_token_id,
                                               max_seq_len=self.max_length, context_len=1):
                windows.append(make_disjoint_window(w))
                owner.append(i)
        scored = score_continuations(self.built, windows, batch_size=self.batch_size, max_length=self.max_length)
        totals = [0.0] * len(requests)
        for i, s in zip(owner, scored):
            totals[i] += s.logprob
        for req, total in zip(requests, totals):
            self.cache_hook.add_partial("loglikelihood_rolling", req.args, total)
        return totals

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        import torch

        jobs = []
        for i, req in enumerate(requests):
            context, kwargs = req.args[0], dict(req.args[1] or {})
            until = kwargs.get("until") or [self.tok.decode([self.eot_token_id])]
            until = [until] if isinstance(until, str) else list(until)
            n = _as_int(kwargs.get("max_gen_toks"), self.max_gen_toks)
            ids = self.tok_encode(context) or [self.eot_token_id]
            ids = ids[-max(1, self.max_length - n):]
            jobs.append((i, ids, until, n))
        out: list[str] = [""] * len(requests)
        order = sorted(jobs, key=lambda j: (j[3], -len(j[1]), j[0]))
        start = 0
        while start < len(order):
            n = order[start][3]
            batch = [j for j in order[start:start + self.batch_size] if j[3] == n]
            start += len(batch)
            width = max(len(j[1]) for j in batch)
            ids = torch.full((len(batch), width), self.built.pad_token_id, dtype=torch.long)
            mask = torch.zeros_like(ids)
            for r, (_, toks, _, _) in enumerate(batch):
                ids[r, width - len(toks):] = torch.tensor(toks)
                mask[r, width - len(toks):] = 1
            new = self.built.generate(ids, mask, max_new_tokens=n)[:, width:].cpu()
            for r, (i, _, until, _) in enumerate(batch):
                text = self.tok.decode(new[r].tolist(), skip_special_tokens=False)
                cuts = [text.index(s) for s in until if s and s in text]
                out[i] = text[:min(cuts)] if cuts else text
                self.cache_hook.add_partial("generate_until", requests[i].args, out[i])
        return out
