"""The `ssmboard` command: thin subcommands over the Python API.

Each subcommand lives in an ``add_parser(subparsers)`` function that sets ``func`` on its
parser; :data:`COMMANDS` lists them. Other modules (the evaluators, the job queue, the
leaderboard) add theirs by appending ``"module:function"`` to :data:`COMMAND_MODULES`; those
modules must stay light at import (import torch inside the command function).

A user error (any SsmboardError) prints one line ``error: ...`` on stderr and exits 2.
"""
from __future__ import annotations

import argparse
import importlib
import json
import sys
from typing import Any, Callable, Sequence

from ssmboard.errors import SpecError, SsmboardError

AddParser = Callable[[Any], None]  # receives the object returned by add_subparsers()


# -- output helpers ---------------------------------------------------------------------
def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=False, default=str))


def print_table(rows: list[dict[str, Any]], columns: Sequence[str], headers: Sequence[str] | None = None) -> None:
    """A plain aligned text table (no extra dependency)."""
    headers = list(headers or columns)

    def cell(v: Any) -> str:
        if v is None:
            return "-"
        if isinstance(v, bool):
            return "yes" if v else "no"
        if isinstance(v, (list, tuple)):
            return ",".join(map(str, v)) or "-"
        if isinstance(v, dict):
            return ",".join(f"{k}={x}" for k, x in v.items()) or "-"
        return str(v)

    table = [[cell(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(h)] + [len(t[i]) for t in table]) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip())
    for t in table:
        print("  ".join(x.ljust(w) for x, w in zip(t, widths)).rstrip())


def parse_option_value(text: str) -> bool | int | float | str:
    """'true'/'false' -> bool, '3' -> int, '0.5' -> float, anything else stays a string."""
    low = text.strip().lower()
    if low in ("true", "yes", "on"):
        return True
    if low in ("false", "no", "off"):
        return False
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    return text


def parse_compile_options(items: Sequence[str] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise SpecError(f"invalid --compile-option {item!r}: write NAME=VALUE, e.g. epilogue_fusion=true")
        out[key.strip()] = parse_option_value(value.strip())
    return out


def _chunk_size(text: str) -> int | None:
    if text.lower() in ("none", "model", "default"):
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer (or 'none' for the model's own)") from None


# -- variants ---------------------------------------------------------------------------
VARIANT_COLUMNS = ("name", "scan", "chunk_size", "dtype", "compile", "decoder", "model", "n_layers", "use_cache",
                   "fingerprint", "description")
VARIANT_HEADERS = ("NAME", "SCAN", "CHUNK", "DTYPE", "COMPILE", "DECODER", "MODEL", "LAYERS", "CACHE",
                   "FINGERPRINT", "DESCRIPTION")


def _spec_record(spec: Any) -> dict[str, Any]:
    return {**spec.to_dict(), "fingerprint": spec.fingerprint}


def print_variants_table(specs: list[Any]) -> None:
    rows = [_spec_record(s) for s in specs]
    for r in rows:
        if r["chunk_size"] is None:
            r["chunk_size"] = "model"
    print_table(rows, VARIANT_COLUMNS, VARIANT_HEADERS)


def cmd_variants_list(args: argparse.Namespace) -> int:
    if args.all:
        from ssmboard.db.queries import variant_records
        from ssmboard.registry.api import ensure_builtins

        ensure_builtins()
        rows = variant_records(include_inactive=True)
        if args.json:
            print_json(rows)
        else:
            print_table(rows, ("name", "active", "scan", "chunk_size", "dtype", "compile", "fingerprint", "n_results"),
                        ("NAME", "ACTIVE", "SCAN", "CHUNK", "DTYPE", "COMPILE", "FINGERPRINT", "RESULTS"))
        return 0
    from ssmboard.registry.api import list_variants

    specs = list_variants(tag=args.tag, scan=args.scan)
    if args.json:
        print_json([_spec_record(s) for s in specs])
    else:
        print_variants_table(specs)
    return 0


def cmd_variants_show(args: argparse.Namespace) -> int:
    from ssmboard.registry.api import get_variant, variant_history

    spec = get_variant(args.name)
    history = variant_history(args.name)
    record = {**_spec_record(spec),
              "builtin": bool(history and history[0].get("builtin")),
              "n_results": history[0]["n_results"] if history else 0,
              "previous": [{"fingerprint": h["fingerprint"], "replaced_at": h["replaced_at"],
                            "n_results": h["n_results"]} for h in history if not h["active"]]}
    if args.json:
        print_json(record)
        return 0
    width = max(len(k) for k in record)
    for key, value in record.items():
        if key == "previous":
            continue
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items()) or "-"
        elif isinstance(value, list):
            value = ", ".join(map(str, value)) or "-"
        print(f"{key.ljust(width)}  {'-' if value is None else value}")
    for prev in record["previous"]:
        print(f"{'replaced'.ljust(width)}  {prev['fingerprint']} at {prev['replaced_at']} "
              f"({prev['n_results']} results kept)")
    return 0


def cmd_variants_register(args: argparse.Namespace) -> int:
    from ssmboard.registry.api import register_variant
    from ssmboard.registry.spec import DEFAULT_MODEL, DEFAULT_SCAN

    fields: dict[str, Any] = {
        "model": args.model or DEFAULT_MODEL,
        "scan": args.scan or DEFAULT_SCAN,
        "chunk_size": args.chunk_size,
        "dtype": args.dtype,
        "compile": args.compile,
        "compile_options": parse_compile_options(args.compile_option),
        "compile_scope": args.compile_scope,
        "n_layers": args.n_layers,
        "use_cache": not args.no_cache,
        "decoder": args.decoder,
        "description": args.description or "",
        "tags": tuple(args.tag or ()),
    }
    spec = register_variant(args.name, replace=args.replace, **fields)
    if args.json:
        print_json(_spec_record(spec))
    else:
        print(f"registered {spec.name} (fingerprint {spec.fingerprint})")
    return 0


def add_variants_parser(sub: Any) -> None:
    p = sub.add_parser("variants", help="list, show and register variants")
    vs = p.add_subparsers(dest="variants_cmd", required=True, metavar="{list,show,register}")

    ls = vs.add_parser("list", help="the registered variants")
    ls.add_argument("--json", action="store_true", help="machine-readable output")
    ls.add_argument("--all", action="store_true", help="include replaced specs (inactive rows) and result counts")
    ls.add_argument("--tag", help="only variants with this tag")
    ls.add_argument("--scan", help="only variants using this scan backend")
    ls.set_defaults(func=cmd_variants_list)

    sh = vs.add_parser("show", help="one variant's spec and fingerprint")
    sh.add_argument("name")
    sh.add_argument("--json", action="store_true")
    sh.set_defaults(func=cmd_variants_show)

    rg = vs.add_parser("register", help="register (or --replace) a variant")
    rg.add_argument("name", help="1-64 characters from letters, digits, '.', '_', '-'")
    rg.add_argument("--scan", help="scan backend (default: reference); see `ssmboard variants list`")
    rg.add_argument("--chunk-size", type=_chunk_size, default=None,
                    help="a power of two, or 'none' for the model's own (default)")
    rg.add_argument("--model", help="embedded:tiny-bamba (default), a checkpoint folder, a hub id, or config:NAME")
    rg.add_argument("--dtype", default="float32", help="float32 (default), bfloat16 or float16")
    rg.add_argument("--compile", default=None,
                    help="torch.compile mode: default, reduce-overhead, max-autotune, max-autotune-no-cudagraphs")
    rg.add_argument("--compile-option", action="append", metavar="NAME=VALUE",
                    help="an Inductor option, e.g. epilogue_fusion=true (repeatable)")
    rg.add_argument("--compile-scope", default="model", choices=("model", "parts"),
                    help="what --compile applies to: the whole model (default) or only the norms and MLPs around "
                         "the scan (Inductor fuses their elementwise chains; the scan backend runs as it is)")
    rg.add_argument("--n-layers", type=int, default=None, help="keep only the first N layers")
    rg.add_argument("--no-cache", action="store_true", help="decode without the KV/SSM cache")
    rg.add_argument("--decoder", default="generate", choices=("generate", "static"),
                    help="decode loop: transformers' generate (default) or ssmboard's static-buffer greedy decoder, "
                         "replayed as one CUDA graph per token on a GPU (Bamba models)")
    rg.add_argument("--description", default="")
    rg.add_argument("--tag", action="append", help="a tag (repeatable)")
    rg.add_argument("--replace", action="store_true", help="replace an existing variant of this name")
    rg.add_argument("--json", action="store_true")
    rg.set_defaults(func=cmd_variants_register)


# -- db ---------------------------------------------------------------------------------
def cmd_db_info(args: argparse.Namespace) -> int:
    from ssmboard.db.queries import db_info

    info = db_info()
    if args.json:
        print_json(info)
        return 0
    print(f"url              {info['url']}")
    if info["path"]:
        print(f"file             {info['path']}")
    print(f"schema revision  {info['schema_revision']} (this ssmboard: {info['head_revision']})")
    c = info["counts"]
    print(f"variants         {c['variants']} active ({c['variant_rows']} rows incl. replaced)")
    print(f"results          {c['results']}")
    print(f"jobs             {c['jobs']}")
    print(f"environments     {c['environments']}")
    return 0


def add_db_parser(sub: Any) -> None:
    p = sub.add_parser("db", help="the results store")
    ds = p.add_subparsers(dest="db_cmd", required=True, metavar="{info}")
    info = ds.add_parser("info", help="URL, schema version and row counts")
    info.add_argument("--json", action="store_true")
    info.set_defaults(func=cmd_db_info)


# -- import -----------------------------------------------------------------------------
def cmd_import(args: argparse.Namespace) -> int:
    from ssmboard.db.queries import save_report
    from ssmboard.evaluators.report import Report
    from ssmboard.registry.api import ensure_builtins

    ensure_builtins()
    loaded = [(path, Report.load(path)) for path in args.files]  # check every file before writing
    total_added = total_skipped = 0
    for path, reports in loaded:
        added = skipped = 0
        for report in reports:
            counts = save_report(report)
            added += counts.added
            skipped += counts.skipped
        total_added += added
        total_skipped += skipped
        print(f"{path}: {len(reports)} report(s), {added} result(s) added, {skipped} already stored")
    if len(loaded) > 1:
        print(f"total: {total_added} added, {total_skipped} already stored")
    return 0


def add_import_parser(sub: Any) -> None:
    p = sub.add_parser("import", help="load report JSON files into the store (idempotent)")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.set_defaults(func=cmd_import)


# -- demo -------------------------------------------------------------------------------
def demo_show_variants() -> None:
    """Part 1 of the demo: the built-in variants and where the store lives."""
    from ssmboard.db.engine import redact
    from ssmboard.registry.api import ensure_builtins, list_variants
    from ssmboard.registry.builtins import builtin_names

    store = ensure_builtins()
    names = set(builtin_names())
    print("Built-in variants:")
    print_variants_table([s for s in list_variants() if s.name in names])
    print()
    print(f"Database: {store.path or redact(store.url)}")


# Steps of `ssmboard demo`, run in order; later issues append (e.g. an evaluation step).
def demo_evaluate(args: argparse.Namespace) -> None:
    """Part 2: the quick performance suite on two built-in variants, into the store."""
    from ssmboard.jobs.eval_command import demo_eval

    demo_eval(args)


DEMO_STEPS: list[Callable[[argparse.Namespace], None]] = [lambda args: demo_show_variants(), demo_evaluate]


def cmd_demo(args: argparse.Namespace) -> int:
    for step in DEMO_STEPS:
        step(args)
    return 0


def add_demo_parser(sub: Any) -> None:
    p = sub.add_parser("demo", help="show what ssmboard does on this machine")
    p.set_defaults(func=cmd_demo)


# -- the command ------------------------------------------------------------------------
COMMANDS: list[AddParser] = [add_variants_parser, add_db_parser, add_import_parser, add_demo_parser]

# Subcommands defined elsewhere, as "module:function" (function(subparsers) adds a parser).
# Add yours here, e.g. "ssmboard.jobs.eval_command:add_eval_parser". Keep those modules light.
COMMAND_MODULES: list[str] = ["ssmboard.jobs.eval_command:add_eval_parser"]


def _load(target: str) -> AddParser:
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def build_parser() -> argparse.ArgumentParser:
    from ssmboard import __version__

    parser = argparse.ArgumentParser(
        prog="ssmboard",
        description="Register SSM kernel variants, evaluate them, and compare them on a leaderboard.",
    )
    parser.add_argument("--version", action="version", version=f"ssmboard {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress (INFO level)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in [*COMMANDS, *(_load(t) for t in COMMAND_MODULES)]:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `ssmboard` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.verbose:
        import logging

        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except SsmboardError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `ssmboard variants list | head`
        return 0


if __name__ == "__main__":
    sys.exit(main())
