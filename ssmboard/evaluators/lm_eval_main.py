"""lm-eval's own command line, with the ``ssmboard`` model registered.

lm-eval 0.4 finds models only in its registry and has no plugin discovery (its issues
#1457 and #3282 ask for one), so ``lm_eval --model ssmboard`` alone cannot see ours. This
runs the same CLI after importing ``evaluators.lm_eval_model``::

    python -m ssmboard.evaluators.lm_eval_main --model ssmboard --model_args variant=reference-c64 \\
        --tasks shakespeare_cloze --include_path "$(ssmboard tasks-path)"

(``ssmboard lm-eval ARGS`` is the same.) Every argument is lm-eval's.
"""
from __future__ import annotations

import sys
from typing import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    from ssmboard.extras import require

    require("lm_eval", "lm-eval", "lm-eval's command line")
    import ssmboard.evaluators.lm_eval_model  # noqa: F401  registers --model ssmboard
    from lm_eval.__main__ import cli_evaluate

    if argv is not None:
        sys.argv = [sys.argv[0], *argv]
    result = cli_evaluate()
    return int(result or 0) if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
