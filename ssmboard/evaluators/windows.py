"""Held-out prompts for the accuracy evaluators: windows of the corpus's test split.

Every window has a stable id (``test:<offset>``, its first token's position in the
tokenized split), so two variants evaluated with the same tokenizer, length and seed score
the same items: what a paired comparison needs. The test split is never used for training
the embedded model (``scripts/build_corpus.py``), so these measure held-out text.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ssmboard.errors import EvaluationError
from ssmboard.evaluators.prompts import _corpus_ids


@dataclass(frozen=True)
class Window:
    item: str  # stable item id: "test:<offset>"
    ids: list[int]


def test_windows(tokenizer, count: int, length: int, *, seed: int = 0, split: str = "test") -> list[Window]:
    """``count`` windows of ``length`` tokens at distinct offsets (seeded), in offset order."""
    if tokenizer is None:
        raise EvaluationError("accuracy evaluators need a model with a tokenizer (held-out text, not random ids)")
    if count < 1 or length < 1:
        raise EvaluationError(f"need at least one prompt of at least one token, got {count} of length {length}")
    ids = _corpus_ids(tokenizer, split)
    span = len(ids) - length
    if span < count:
        raise EvaluationError(f"the {split} split has {len(ids)} tokens: too few for {count} windows of {length}; "
                              "ask for fewer or shorter prompts")
    gen = torch.Generator().manual_seed(seed)
    starts = sorted(torch.randperm(span, generator=gen)[:count].tolist())
    return [Window(f"{split}:{s}", ids[s:s + length]) for s in starts]


def as_batch(windows: list[Window]) -> torch.Tensor:
    return torch.tensor([w.ids for w in windows], dtype=torch.long)
