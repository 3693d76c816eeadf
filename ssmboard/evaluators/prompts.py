"""Prompts of exact token lengths, cut from real text.

Performance numbers should come from the text a model would see, not from random ids
(which a trained model handles differently and which can hit special tokens). The text
is the embedded corpus's validation split; random ids are used only for a model that has
no tokenizer.
"""
from __future__ import annotations

import functools
import gzip
import json

import torch

from ssmboard.config import assets_dir
from ssmboard.errors import EvaluationError


@functools.lru_cache(maxsize=2)
def corpus_text(split: str = "validation") -> str:
    path = assets_dir() / "corpus" / f"{split}.jsonl.gz"
    if not path.exists():
        raise EvaluationError(f"the embedded corpus split {path} is missing; reinstall ssmboard "
                              "or rebuild it with scripts/build_corpus.py")
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return "\n\n".join(json.loads(line)["text"] for line in fh if line.strip())


def prompt_ids(tokenizer, batch: int, length: int, *, vocab_size: int | None = None, seed: int = 0,
               split: str = "validation") -> torch.Tensor:
    """A (batch, length) LongTensor: windows of the corpus at distinct offsets, or random ids."""
    if length < 1 or batch < 1:
        raise EvaluationError(f"prompt length and batch must be >= 1, got length={length}, batch={batch}")
    gen = torch.Generator().manual_seed(seed)
    if tokenizer is None:
        if not vocab_size:
            raise EvaluationError("a model without a tokenizer needs vocab_size for random prompt ids")
        return torch.randint(0, vocab_size, (batch, length), generator=gen)
    ids = _corpus_ids(tokenizer, split)
    need = length * batch
    if len(ids) < need + 1:  # repeat the corpus for very long prompts
        ids = ids * (need // max(len(ids), 1) + 2)
    span = len(ids) - length
    starts = torch.randperm(span, generator=gen)[:batch].tolist() if span > batch else [0] * batch
    return torch.tensor([ids[s:s + length] for s in starts], dtype=torch.long)


_IDS_CACHE: dict[tuple[int, str], list[int]] = {}


def _corpus_ids(tokenizer, split: str) -> list[int]:
    key = (id(tokenizer), split)
    if key not in _IDS_CACHE:
        text = corpus_text(split)[:2_000_000]
        # verbose=False: the whole corpus is longer than the model's context, on purpose
        _IDS_CACHE[key] = list(tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])
    return _IDS_CACHE[key]
