"""`ssmboard tasks-path` and `ssmboard lm-eval ARGS`: the lm-eval way of running a variant.

``tasks-path`` prints the folder of the shipped offline tasks (lm-eval's ``--include_path``);
``lm-eval`` runs lm-eval's own command line with the ``ssmboard`` model registered, since
lm-eval cannot discover a third-party model by itself (``evaluators.lm_eval_main``).
"""
from __future__ import annotations

import argparse
from typing import Any


def cmd_tasks_path(args: argparse.Namespace) -> int:
    from ssmboard.config import assets_dir

    print(assets_dir() / "tasks")
    return 0


def cmd_lm_eval(args: argparse.Namespace) -> int:
    from ssmboard.evaluators.lm_eval_main import main

    return main(args.lm_eval_args)


def add_parser(sub: Any) -> None:
    p = sub.add_parser("tasks-path", help="print the folder of the shipped lm-eval tasks (for --include_path)")
    p.set_defaults(func=cmd_tasks_path)
    q = sub.add_parser("lm-eval", help="lm-eval's own CLI with --model ssmboard available",
                       description="Runs lm-eval's command line after registering the `ssmboard` model, e.g. "
                                   "ssmboard lm-eval run --model ssmboard --model_args variant=reference-c64 "
                                   "--tasks shakespeare_cloze --include_path \"$(ssmboard tasks-path)\"")
    q.add_argument("lm_eval_args", nargs=argparse.REMAINDER, help="arguments for lm-eval")
    q.set_defaults(func=cmd_lm_eval)
