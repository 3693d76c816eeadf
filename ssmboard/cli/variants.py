"""`ssmboard variants list | show | register`."""
from __future__ import annotations

import argparse
from typing import Any

from ssmboard.cli.output import parse_assignments, print_json, print_table

VARIANT_COLUMNS = ("name", "scan", "chunk_size", "dtype", "compile", "decoder", "model", "n_layers", "use_cache",
                   "fingerprint", "description")
VARIANT_HEADERS = ("NAME", "SCAN", "CHUNK", "DTYPE", "COMPILE", "DECODER", "MODEL", "LAYERS", "CACHE",
                   "FINGERPRINT", "DESCRIPTION")


def spec_record(spec: Any) -> dict[str, Any]:
    record = {**spec.to_dict(), "fingerprint": spec.fingerprint}
    if not spec.backend_known:
        record["scan"] = f"{spec.scan} (not registered here)"
    return record


def print_variants_table(specs: list[Any]) -> None:
    rows = [spec_record(s) for s in specs]
    for r in rows:
        if r["chunk_size"] is None:
            r["chunk_size"] = "model"
    print_table(rows, VARIANT_COLUMNS, VARIANT_HEADERS)


def _chunk_size(text: str) -> int | None:
    if text.lower() in ("none", "model", "default"):
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer (or 'none' for the model's own)") from None


def cmd_list(args: argparse.Namespace) -> int:
    from ssmboard.registry.api import list_variants, variant_records

    if args.all:
        rows = variant_records(include_inactive=True)
        if args.json:
            print_json(rows)
        else:
            print_table(rows, ("name", "active", "scan", "chunk_size", "dtype", "compile", "fingerprint", "n_results"),
                        ("NAME", "ACTIVE", "SCAN", "CHUNK", "DTYPE", "COMPILE", "FINGERPRINT", "RESULTS"))
        return 0
    specs = list_variants(tag=args.tag, scan=args.scan)
    if args.json:
        print_json([{**s.to_dict(), "fingerprint": s.fingerprint, "backend_known": s.backend_known} for s in specs])
    else:
        print_variants_table(specs)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from ssmboard.registry.api import get_variant, variant_history

    spec = get_variant(args.name)
    history = variant_history(args.name)
    record = {**spec_record(spec),
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


def cmd_register(args: argparse.Namespace) -> int:
    from ssmboard.registry.api import register_variant

    fields: dict[str, Any] = {
        "model": args.model,
        "scan": args.scan,
        "chunk_size": args.chunk_size,
        "dtype": args.dtype,
        "compile": args.compile,
        "compile_options": parse_assignments(args.compile_option, "--compile-option", "epilogue_fusion=true"),
        "compile_scope": args.compile_scope,
        "n_layers": args.n_layers,
        "use_cache": not args.no_cache,
        "decoder": args.decoder,
        "description": args.description or "",
        "tags": tuple(args.tag or ()),
    }
    spec = register_variant(args.name, replace=args.replace, **fields)
    if args.json:
        print_json(spec_record(spec))
    else:
        print(f"registered {spec.name} (fingerprint {spec.fingerprint})")
    return 0


def add_parser(sub: Any) -> None:
    from ssmboard.registry.spec import (COMPILE_MODES, COMPILE_SCOPES, DECODERS, DEFAULT_MODEL, DEFAULT_SCAN,
                                        DTYPES)

    p = sub.add_parser("variants", help="list, show and register variants")
    vs = p.add_subparsers(dest="variants_cmd", required=True, metavar="{list,show,register}")

    ls = vs.add_parser("list", help="the registered variants")
    ls.add_argument("--json", action="store_true", help="machine-readable output")
    ls.add_argument("--all", action="store_true", help="include replaced specs (inactive rows) and result counts")
    ls.add_argument("--tag", help="only variants with this tag")
    ls.add_argument("--scan", help="only variants using this scan backend")
    ls.set_defaults(func=cmd_list)

    sh = vs.add_parser("show", help="one variant's spec and fingerprint")
    sh.add_argument("name")
    sh.add_argument("--json", action="store_true")
    sh.set_defaults(func=cmd_show)

    rg = vs.add_parser("register", help="register (or --replace) a variant")
    rg.add_argument("name", help="1-64 characters from letters, digits, '.', '_', '-'")
    rg.add_argument("--scan", default=DEFAULT_SCAN,
                    help=f"scan backend (default: {DEFAULT_SCAN}); see `ssmboard variants list`")
    rg.add_argument("--chunk-size", type=_chunk_size, default=None,
                    help="a power of two, or 'none' for the model's own (default)")
    rg.add_argument("--model", default=DEFAULT_MODEL,
                    help=f"{DEFAULT_MODEL} (default), a checkpoint folder, a hub id, or config:NAME")
    rg.add_argument("--dtype", default=DTYPES[0], help=f"one of {', '.join(DTYPES)} (default {DTYPES[0]})")
    rg.add_argument("--compile", default=None, help=f"torch.compile mode: {', '.join(COMPILE_MODES)}")
    rg.add_argument("--compile-option", action="append", metavar="NAME=VALUE",
                    help="an Inductor option, e.g. epilogue_fusion=true (repeatable)")
    scopes = list(COMPILE_SCOPES)
    rg.add_argument("--compile-scope", default=scopes[0], choices=scopes,
                    help="what --compile applies to: " + "; ".join(f"{k}: {v}" for k, v in COMPILE_SCOPES.items()))
    rg.add_argument("--n-layers", type=int, default=None, help="keep only the first N layers")
    rg.add_argument("--no-cache", action="store_true", help="decode without the KV/SSM cache")
    decoders = list(DECODERS)
    rg.add_argument("--decoder", default=decoders[0], choices=decoders,
                    help="decode loop: " + "; ".join(f"{k}: {v}" for k, v in DECODERS.items()))
    rg.add_argument("--description", default="")
    rg.add_argument("--tag", action="append", help="a tag (repeatable)")
    rg.add_argument("--replace", action="store_true", help="replace an existing variant of this name")
    rg.add_argument("--json", action="store_true")
    rg.set_defaults(func=cmd_register)
