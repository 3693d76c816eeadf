"""Loads this folder's jsonl files for lm-eval's ``custom_dataset`` hook.

Why a hook and not ``dataset_path: json`` alone: ``data_files`` would be resolved
against the current working directory, while this resolves it against this folder, so
the tasks load offline from an installed package or a checkout alike.
scripts/build_tasks.py copies this file beside the tasks it builds.
"""
from pathlib import Path


def load(data_files=None, **_ignored):
    import json

    import datasets

    here = Path(__file__).resolve().parent
    splits = {}
    for split, name in (data_files or {}).items():
        with open(here / name, encoding="utf-8") as fh:
            splits[split] = datasets.Dataset.from_list([json.loads(line) for line in fh if line.strip()])
    return datasets.DatasetDict(splits)
