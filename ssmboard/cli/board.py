"""`ssmboard serve`, `ssmboard leaderboard` and `ssmboard export`: the board in a browser, a
terminal and a file. The ranking printed here comes from the same builder as the app's table."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ssmboard.errors import SsmboardError

CONTEXT_KEYS = ("device", "prompt_len", "batch")
FILTER_KEYS = ("model", "backend", "chunk_size", "dtype", "precision", "compile", "decoder")


def cmd_serve(args: argparse.Namespace) -> int:
    from ssmboard.leaderboard.app import serve

    print(f"serving the leaderboard on http://{args.host}:{args.port} (Ctrl-C stops it)")
    serve(args.host, args.port, args.share)
    return 0


def _selection(args: argparse.Namespace):
    from ssmboard.cli.output import parse_assignments
    from ssmboard.leaderboard.tables import DEFAULT_GROUPS, Selection

    ctx = parse_assignments(args.context, "--context", "prompt_len=256")
    unknown = sorted(set(ctx) - set(CONTEXT_KEYS) - set(FILTER_KEYS))
    if unknown:
        raise SsmboardError(f"unknown --context key(s) {', '.join(unknown)}; use "
                            f"{', '.join(CONTEXT_KEYS + FILTER_KEYS)}")
    filters = {("dtype" if k == "precision" else k): [v] for k, v in ctx.items() if k in FILTER_KEYS}
    return Selection(device=ctx.get("device") and str(ctx["device"]), prompt_len=ctx.get("prompt_len"),
                     batch=ctx.get("batch"), metric=args.metric, filters=filters, groups=DEFAULT_GROUPS)


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from ssmboard.cli.output import print_json, print_table
    from ssmboard.leaderboard import data, tables

    d = data.load()
    if d.empty:
        print("no results in the store yet: register a variant (`ssmboard variants register NAME ...`), "
              "then `ssmboard eval NAME --suite quick`")
        return 0
    r = tables.ranking(d.results, d.variants, _selection(args), items_for=d.items_for)
    if args.format == "json":
        print_json({"context": r.context, "metric": r.metric, "notes": r.notes,
                    "rows": tables.ranking_records(r)})
    elif args.format == "csv":
        import sys

        r.display.to_csv(sys.stdout, index=False)
    elif args.format == "markdown":
        print(" ".join(r.notes))
        print()
        print(r.display.to_markdown(index=False) if _has_tabulate() else _markdown(r.display))
    else:
        for note in r.notes:
            print(note.replace("**", ""))
        print_table(r.display.to_dict(orient="records"), list(r.display.columns))
    return 0


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True


def _markdown(frame) -> str:
    cols = list(frame.columns)
    esc = lambda v: str(v).replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(map(esc, cols)) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(esc(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def cmd_export(args: argparse.Namespace) -> int:
    from ssmboard.leaderboard import data

    path = Path(args.file)
    kind = path.suffix.lower().lstrip(".")
    if kind not in ("csv", "json", "parquet"):
        raise SsmboardError(f"cannot export to {path.name!r}: name a .csv, .json or .parquet file")
    if kind == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise SsmboardError("writing parquet needs pyarrow: pip install pyarrow "
                                "(or export to .csv / .json)") from None
    frame = data.load().results
    # nested dicts as JSON text: every format (and a spreadsheet) reads them the same way
    frame = frame.assign(context=[json.dumps(c, sort_keys=True) for c in frame["context"]],
                         spec=[json.dumps(c, sort_keys=True) for c in frame["spec"]])
    if kind == "csv":
        frame.to_csv(path, index=False)
    elif kind == "json":
        frame.to_json(path, orient="records", indent=1)
    else:
        frame.to_parquet(path, index=False)
    print(f"wrote {len(frame)} result row(s) to {path}")
    return 0


def add_parser(sub: Any) -> None:
    s = sub.add_parser("serve", help="the leaderboard app in a browser (Gradio)")
    s.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    s.add_argument("--port", type=int, default=7860)
    s.add_argument("--share", action="store_true", help="also open a public gradio.live link (off by default)")
    s.set_defaults(func=cmd_serve)

    lb = sub.add_parser("leaderboard", help="print the ranking (the app's table) in the terminal")
    lb.add_argument("--metric", help="rank by this metric (default: TTFT, or the first one measured)")
    lb.add_argument("--context", action="append", metavar="KEY=VALUE",
                    help="device=..., prompt_len=N, batch=N, or a filter: model, backend, chunk_size, "
                         "dtype (precision), compile, decoder (repeatable)")
    lb.add_argument("--format", choices=("table", "csv", "json", "markdown"), default="table")
    lb.set_defaults(func=cmd_leaderboard)

    ex = sub.add_parser("export", help="write every result row to FILE.csv, FILE.json or FILE.parquet")
    ex.add_argument("file", metavar="FILE")
    ex.set_defaults(func=cmd_export)
