"""`ssmboard db info` and `ssmboard import FILE...`."""
from __future__ import annotations

import argparse
from typing import Any

from ssmboard.cli.output import print_json


def cmd_db_info(args: argparse.Namespace) -> int:
    from ssmboard.registry.api import store_info

    info = store_info()
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


def cmd_import(args: argparse.Namespace) -> int:
    from ssmboard.jobs.sinks import import_reports

    summaries = import_reports(args.files)
    for s in summaries:
        items = f", {s['items']} item score(s)" if s["items"] else ""
        print(f"{s['path']}: {s['reports']} report(s), {s['added']} result(s) added{items}, "
              f"{s['skipped']} already stored")
    if len(summaries) > 1:
        print(f"total: {sum(s['added'] for s in summaries)} added, "
              f"{sum(s['skipped'] for s in summaries)} already stored")
    return 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser("db", help="the results store")
    ds = p.add_subparsers(dest="db_cmd", required=True, metavar="{info}")
    info = ds.add_parser("info", help="URL, schema version and row counts")
    info.add_argument("--json", action="store_true")
    info.set_defaults(func=cmd_db_info)

    im = sub.add_parser("import", help="load report JSON files into the store (idempotent)")
    im.add_argument("files", nargs="+", metavar="FILE")
    im.set_defaults(func=cmd_import)
