"""Log-likelihoods of continuations under a built model, batched with left padding.

Shared by GPTScore and the lm-eval adapter: for each (context ids, continuation ids) the
sum of the continuation's token log-probabilities, its length, and whether greedy decoding
would have produced it. Left padding puts every row's last token at the end, so a
continuation of T tokens is always scored by the logits at positions [-T-1, -1).
Sequences longer than ``max_length`` keep their last ``max_length`` tokens (the
continuation first). Rows are sorted by length so a batch wastes little padding; results
come back in the input order, and the same inputs always batch the same way.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Scored:
    logprob: float  # sum over the continuation's tokens, in nats
    tokens: int
    greedy: bool  # every continuation token is the argmax

    @property
    def mean(self) -> float:
        return self.logprob / self.tokens


def score_continuations(built, pairs: list[tuple[list[int], list[int]]], *, batch_size: int = 8,
                        max_length: int | None = None) -> list[Scored]:
    """Score each ``(context, continuation)``; a context must hold at least one token."""
    out: list[Scored | None] = [None] * len(pairs)
    seqs = []
    for i, (ctx, cont) in enumerate(pairs):
        if not cont:
            out[i] = Scored(0.0, 0, True)
            continue
        if not ctx:
            raise ValueError("a continuation needs at least one context token (prefix an EOS/BOS token)")
        seq = list(ctx) + list(cont)
        if max_length is not None and len(seq) > max_length + 1:
            seq = seq[-(max_length + 1):]
        seqs.append((i, seq[:-1], list(cont)[-(len(seq) - 1):]))  # inputs, and the targets they predict
    order = sorted(seqs, key=lambda s: (-len(s[1]), s[0]))
    pad = built.pad_token_id
    for start in range(0, len(order), batch_size):
        batch = order[start:start + batch_size]
        width = max(len(s[1]) for s in batch)
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for r, (_, inp, _) in enumerate(batch):
            ids[r, width - len(inp):] = torch.tensor(inp)
            mask[r, width - len(inp):] = 1
        logp = torch.log_softmax(built.forward(ids, mask).double(), dim=-1).cpu()
        for r, (i, _, tgt) in enumerate(batch):
            t = torch.tensor(tgt)
            rows = logp[r, width - len(t):]
            lp = rows.gather(-1, t[:, None])[:, 0]
            out[i] = Scored(float(lp.sum()), len(t), bool((rows.argmax(-1) == t).all()))
    return out  # type: ignore[return-value]
