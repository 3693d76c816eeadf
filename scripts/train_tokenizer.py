#!/usr/bin/env python3
"""Train the embedded model's byte-level BPE tokenizer on the corpus's train split.

Why our own tokenizer: no pretrained tokenizer can be downloaded on these machines,
and a small vocabulary (4096) keeps the embedding matrix, hence the shipped model,
small. Byte-level BPE never meets an unknown character, so any prompt round-trips.

Special tokens: ``<|pad|>`` (id 0) and ``<|endoftext|>`` (id 1), which is both BOS and
EOS: the training stream separates works with it, and lm-eval uses the EOS token as
the prefix of a rolling log-likelihood window, so it sees what training showed it.
Padding is on the left, as batched generation wants.

Usage::

    python scripts/train_tokenizer.py            # writes into ssmboard/assets/tiny-bamba/
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from build_corpus import DEFAULT_OUT as CORPUS_DIR  # noqa: E402
from build_corpus import load_split  # noqa: E402

DEFAULT_OUT = ROOT / "ssmboard" / "assets" / "tiny-bamba"
PAD, EOT = "<|pad|>", "<|endoftext|>"
VOCAB_SIZE = 4096
MODEL_MAX_LENGTH = 4096


def train_tokenizer(texts: list[str], vocab_size: int = VOCAB_SIZE):
    """A deterministic byte-level BPE (same texts in the same order give the same merges)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=[PAD, EOT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer, length=len(texts))
    return tok


def save(tok, out_dir: Path) -> None:
    """Save as a PreTrainedTokenizerFast folder (tokenizer.json + tokenizer_config.json)."""
    from transformers import PreTrainedTokenizerFast

    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=EOT,
        eos_token=EOT,
        unk_token=None,
        pad_token=PAD,
        padding_side="left",
        model_max_length=MODEL_MAX_LENGTH,
        clean_up_tokenization_spaces=False,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(str(out_dir))
    # name the class every transformers 5.x (and 4.x) resolves, not the 5.2x-only backend name
    cfg_path = out_dir / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["tokenizer_class"] = "PreTrainedTokenizerFast"
    cfg_path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", type=Path, default=CORPUS_DIR)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--vocab-size", type=int, default=VOCAB_SIZE)
    args = ap.parse_args(argv)
    texts = [w["text"] for w in load_split("train", args.corpus)]
    tok = train_tokenizer(texts, args.vocab_size)
    save(tok, args.out)
    n_tokens = sum(len(e.ids) for e in tok.encode_batch(texts))
    n_bytes = sum(len(t.encode("utf-8")) for t in texts)
    print(f"vocab {tok.get_vocab_size()}  train tokens {n_tokens}  bytes/token {n_bytes / n_tokens:.3f}")


if __name__ == "__main__":
    main()
