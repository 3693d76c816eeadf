#!/usr/bin/env python3
"""Build the offline lm-eval tasks from the corpus's held-out TEST plays.

Why: accuracy evaluators must run with no network, on text the embedded model never
trained on, with prompts that span many 64-token chunks, so that a scan variant that
mishandles state across chunks scores visibly lower. Four tasks:

* ``shakespeare_cloze``: the last word of a verse/prose line given ~1500 characters of
  the play before it (loglikelihood; acc = the word is the greedy continuation).
* ``shakespeare_next_line``: the true next line of a speech among 4 lines of the same
  play (multiple choice; acc, acc_norm).
* ``shakespeare_ppl``: rolling log-likelihood of passages of about 2500 characters
  (word_perplexity, byte_perplexity, bits_per_byte).
* ``shakespeare_recall``: a passage, then a speaker's header and the first half of a
  line that speaker said MORE THAN 192 TOKENS (three 64-token chunks) earlier in the
  passage; choose its true second half among 4 second halves of lines of the same
  play that are not in the passage. Copying from far back is the only sure way;
  ``distance_tokens`` in each doc says how far back (embedded tokenizer).

Everything is deterministic (fixed seeds, sorted inputs); the output is jsonl files
plus YAML task configs that load through ``lm_eval.tasks.TaskManager(include_path=...)``
offline: the YAML's ``custom_dataset`` hook reads the jsonl next to it, wherever the
folder lives.
"""
from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from build_corpus import DEFAULT_OUT as CORPUS_DIR  # noqa: E402
from build_corpus import load_split  # noqa: E402

DEFAULT_OUT = ROOT / "ssmboard" / "assets" / "tasks"
TOKENIZER = ROOT / "ssmboard" / "assets" / "tiny-bamba" / "tokenizer.json"
SEED = 20261128
N_CLOZE, N_NEXT, N_RECALL = 400, 300, 300
CONTEXT_CHARS = 1500
PPL_CHARS = 2500
RECALL_MIN_TOKENS = 192  # > two 64-token chunks between the remembered line and the query
RECALL_MAX_TOKENS = 900

_SPEAKER = re.compile(r"^[A-Z][A-Z0-9 ,'\-&]*[A-Z]\.$")
_HEADING = re.compile(r"^(ACT|SCENE|Scene|EPILOGUE|PROLOGUE)\b")
_WORD_AT_END = re.compile(r"^(.*?\s)([A-Za-z][A-Za-z']*[A-Za-z])([^A-Za-z]*)$")


@dataclass
class Line:
    text: str
    kind: str  # speech | speaker | direction | heading | blank | other
    speaker: str | None
    start: int  # character offset in the play text
    speech_id: int  # index of the speech it belongs to (-1 outside speeches)


def parse_play(text: str) -> list[Line]:
    """Tag each line of a Gutenberg play; the test plays use 'NAME.' lines for speakers."""
    out: list[Line] = []
    pos, speaker, speech_id, in_direction, started = 0, None, -1, False, False
    for raw in text.split("\n"):
        s = raw.strip()
        if in_direction:
            kind = "direction"
            in_direction = "]" not in s
        elif not s:
            kind = "blank"
        elif s.startswith("["):
            kind = "direction"
            in_direction = "]" not in s
        elif _HEADING.match(s):
            kind, speaker = "heading", None
            started = started or s.startswith("ACT")
        elif _SPEAKER.match(s) and len(s) <= 40 and started:
            kind, speaker = "speaker", s[:-1]
            speech_id += 1
        elif speaker is not None and started:
            kind = "speech"
        else:
            kind = "other"
        out.append(Line(raw, kind, speaker, pos, speech_id if kind in ("speech", "speaker") else -1))
        pos += len(raw) + 1
    return out


def _context_before(text: str, offset: int, chars: int) -> str:
    """The text before ``offset``, about ``chars`` long, starting at a line start."""
    lo = max(0, offset - chars)
    if lo > 0:
        nl = text.find("\n", lo)
        lo = nl + 1 if 0 <= nl < offset else lo
    return text[lo:offset]


def cloze_items(plays: list[dict], rng: random.Random) -> list[dict]:
    cands = []
    for play in plays:
        lines = parse_play(play["text"])
        for ln in lines:
            if ln.kind != "speech" or ln.start < CONTEXT_CHARS:
                continue
            m = _WORD_AT_END.match(ln.text)
            if not m or len(m.group(2)) < 3 or len(m.group(1).split()) < 3:
                continue
            cut = ln.start + len(m.group(1).rstrip(" "))
            cands.append({"work": play["id"], "context": _context_before(play["text"], cut, CONTEXT_CHARS),
                          "target": " " + m.group(2), "line": ln.text})
    items = rng.sample(cands, min(N_CLOZE, len(cands)))
    return [dict(it, id=f"cloze-{i:04d}") for i, it in enumerate(items)]


def _speech_lines(lines: list[Line]) -> list[Line]:
    return [ln for ln in lines if ln.kind == "speech" and len(ln.text.strip()) >= 20]


def _pick_distractors(pool: list[str], true: str, forbidden: set[str], rng: random.Random, k: int = 3) -> list[str]:
    """k strings from pool, near the true one's length (so acc is not a length contest)."""
    cands = [s for s in set(pool) if s != true and s not in forbidden]
    cands.sort(key=lambda s: (abs(len(s) - len(true)), s))
    near = cands[: max(k * 8, k)]
    return rng.sample(near, k)


def next_line_items(plays: list[dict], rng: random.Random) -> list[dict]:
    cands = []
    for play in plays:
        lines = parse_play(play["text"])
        pool = [ln.text.strip() for ln in _speech_lines(lines)]
        for prev, ln in zip(lines, lines[1:]):
            if (ln.kind == "speech" and prev.kind == "speech" and prev.speech_id == ln.speech_id
                    and len(ln.text.strip()) >= 20 and ln.start >= CONTEXT_CHARS):
                cands.append((play, pool, ln))
    chosen = rng.sample(cands, min(N_NEXT, len(cands)))
    items = []
    for i, (play, pool, ln) in enumerate(chosen):
        true = ln.text.strip()
        context = _context_before(play["text"], ln.start, CONTEXT_CHARS)
        choices = _pick_distractors(pool, true, set(context.split("\n")), rng) + [true]
        rng.shuffle(choices)
        items.append({"id": f"next-{i:04d}", "work": play["id"], "context": context, "choices": choices,
                      "label": choices.index(true)})
    return items


def ppl_items(plays: list[dict]) -> list[dict]:
    """Consecutive passages of about PPL_CHARS, cut at blank lines; the whole test split."""
    items = []
    for play in plays:
        text, lo = play["text"], 0
        while lo < len(text):
            hi = text.find("\n\n", lo + PPL_CHARS)
            hi = len(text) if hi < 0 or len(text) - hi < PPL_CHARS // 3 else hi + 2
            passage = text[lo:hi].strip("\n")
            if passage:
                items.append({"id": f"ppl-{len(items):04d}", "work": play["id"], "text": passage})
            lo = hi
    return items


def recall_items(plays: list[dict], rng: random.Random, tokenizer) -> list[dict]:
    cands = []
    for play in plays:
        text = play["text"]
        lines = parse_play(text)
        pool_lines = _speech_lines(lines)
        # first lines of speeches, long enough to split into two halves of >= 4 words
        firsts = {}
        for ln in lines:
            if ln.kind == "speech" and ln.speech_id not in firsts:
                firsts[ln.speech_id] = ln
        for ln in firsts.values():
            words = ln.text.strip().split()
            if len(words) < 8 or text.count(ln.text.strip()) != 1:
                continue
            cands.append((play, lines, pool_lines, ln))
    rng.shuffle(cands)
    items = []
    for play, lines, pool_lines, ln in cands:
        if len(items) >= N_RECALL:
            break
        text = play["text"]
        words = ln.text.strip().split()
        half = len(words) // 2
        first_half, second_half = " ".join(words[:half]), " ".join(words[half:])
        # the passage runs from a few lines before the target speech to a blank line at least
        # RECALL_MIN_TOKENS later; it must not end inside the remembered speech
        begin = max(0, text.rfind("\n\n", 0, max(0, ln.start - 200)) + 2) if ln.start > 200 else 0
        gap = int(rng.uniform(RECALL_MIN_TOKENS * 1.1, RECALL_MAX_TOKENS * 0.8))
        target_end = ln.start + len(ln.text)
        end = target_end
        while True:
            nxt = text.find("\n\n", end + 1)
            if nxt < 0:
                end = -1
                break
            end = nxt
            if len(tokenizer.encode(text[target_end:end]).ids) >= gap:
                break
        if end < 0:
            continue
        passage = text[begin:end]
        dist = len(tokenizer.encode(text[target_end:end]).ids)
        if not RECALL_MIN_TOKENS < dist <= RECALL_MAX_TOKENS:
            continue
        query = f"\n\n{ln.speaker}.\n{first_half}"
        # the same half-line must not occur elsewhere in the passage, nor its speaker repeat it
        if passage.count(first_half) != 1:
            continue
        outside = [x.text.strip().split() for x in pool_lines if not (begin <= x.start < end)]
        pool = [" ".join(w[len(w) // 2:]) for w in outside if len(w) >= 8]
        distractors = _pick_distractors(pool, second_half, set(), rng)
        choices = [" " + c for c in distractors + [second_half]]
        rng.shuffle(choices)
        items.append({"id": f"recall-{len(items):04d}", "work": play["id"], "context": passage + query,
                      "choices": choices, "label": choices.index(" " + second_half),
                      "speaker": ln.speaker, "distance_tokens": dist})
    return items


# --- lm-eval configs -----------------------------------------------------------------

# the lm-eval ``custom_dataset`` hook that loads the jsonl files: a maintained module of the
# package (ssmboard/assets/tasks/shakespeare_data.py), copied beside tasks built elsewhere
LOADER = Path(__file__).resolve().parents[1] / "ssmboard" / "assets" / "tasks" / "shakespeare_data.py"


def _yaml(name: str, output_type: str, body: str, metrics: list[str], data_file: str) -> str:
    head = (f"# Generated by scripts/build_tasks.py from the held-out test plays; do not edit.\n"
            f"task: {name}\ntag:\n  - shakespeare\n"
            f"dataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {data_file}\n"
            f"custom_dataset: !function shakespeare_data.load\n"
            f"test_split: test\noutput_type: {output_type}\n")
    metric_list = "metric_list:\n" + "".join(
        f"  - metric: {m}\n    aggregation: {agg}\n    higher_is_better: {hib}\n" for m, agg, hib in
        (_METRICS[m] for m in metrics))
    return head + body + metric_list + "metadata:\n  version: 1.0\n"


_METRICS = {
    "acc": ("acc", "mean", "true"),
    "acc_norm": ("acc_norm", "mean", "true"),
    "word_perplexity": ("word_perplexity", "weighted_perplexity", "false"),
    "byte_perplexity": ("byte_perplexity", "weighted_perplexity", "false"),
    "bits_per_byte": ("bits_per_byte", "bits_per_byte", "false"),
}

TASKS = {
    "shakespeare_cloze": ("loglikelihood",
                          'doc_to_text: "{{context}}"\ndoc_to_target: "{{target}}"\ntarget_delimiter: ""\n',
                          ["acc"]),
    "shakespeare_next_line": ("multiple_choice",
                              'doc_to_text: "{{context}}"\ndoc_to_choice: "{{choices}}"\n'
                              'doc_to_target: "{{label}}"\ntarget_delimiter: ""\n',
                              ["acc", "acc_norm"]),
    "shakespeare_ppl": ("loglikelihood_rolling",
                        'doc_to_text: ""\ndoc_to_target: "{{text}}"\n',
                        ["word_perplexity", "byte_perplexity", "bits_per_byte"]),
    "shakespeare_recall": ("multiple_choice",
                           'doc_to_text: "{{context}}"\ndoc_to_choice: "{{choices}}"\n'
                           'doc_to_target: "{{label}}"\ntarget_delimiter: ""\n',
                           ["acc", "acc_norm"]),
}


def build(corpus: Path, out: Path, tokenizer_path: Path = TOKENIZER) -> dict[str, int]:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(tokenizer_path))
    plays = sorted(load_split("test", corpus), key=lambda w: w["id"])
    data = {
        "shakespeare_cloze": cloze_items(plays, random.Random(SEED)),
        "shakespeare_next_line": next_line_items(plays, random.Random(SEED + 1)),
        "shakespeare_ppl": ppl_items(plays),
        "shakespeare_recall": recall_items(plays, random.Random(SEED + 2), tokenizer),
    }
    out.mkdir(parents=True, exist_ok=True)
    if (out / LOADER.name).resolve() != LOADER:
        shutil.copyfile(LOADER, out / LOADER.name)
    counts = {}
    for name, docs in data.items():
        fname = f"{name}.jsonl"
        (out / fname).write_text("".join(json.dumps(d, ensure_ascii=False, sort_keys=True) + "\n" for d in docs))
        output_type, body, metrics = TASKS[name]
        (out / f"{name}.yaml").write_text(_yaml(name, output_type, body, metrics, fname))
        counts[name] = len(docs)
    return counts


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", type=Path, default=CORPUS_DIR)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--tokenizer", type=Path, default=TOKENIZER)
    args = ap.parse_args(argv)
    for name, n in build(args.corpus, args.out, args.tokenizer).items():
        print(f"{name:24s} {n:4d} docs")


if __name__ == "__main__":
    main()
