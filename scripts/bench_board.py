"""How long the leaderboard page takes to load over a large store.

Seeds a fresh store (a temporary SSMBOARD_HOME) with N variants x M results each through the
store API (save_report: perf rows over prompt lengths and batches, several runs, fidelity rows
with item scores for every variant), starts `ssmboard serve` on a free loopback port, and
times with Playwright's headless Chromium (Debian's /usr/bin/chromium):
- ``first_rows_s``: navigation start to the first ranked row in the table;
- ``all_tabs_s``: to every tab's view being drawn, visiting them in turn (compare plots,
  Pareto plot, variant page; Gradio mounts a tab when it is first shown);
- ``rerank_s``: reversing the order (a round trip that re-ranks) until the first row changes.
Each is the median of ``--repeats`` fresh page loads (the app caches one store read for 30 s,
so the first load, which reads the store, is reported separately as ``cold_first_rows_s``).

    python scripts/bench_board.py --variants 50 --results 200
"""
from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def seed(n_variants: int, n_results: int) -> int:
    """Write ``n_variants`` x ``n_results`` result rows into the current store; returns rows written."""
    from ssmboard.evaluators.report import Environment, Metric, Report
    from ssmboard.jobs.sinks import save_report
    from ssmboard.registry.spec import VariantSpec

    rng = random.Random(0)
    env = Environment(device_name="NVIDIA H200", torch_version="2.11.0", hostname="bench")
    perf_names = [("ttft", "s", False), ("prefill_tokens_per_s", "tokens/s", True), ("decode_tpot", "s", False),
                  ("decode_tokens_per_s", "tokens/s", True), ("prefill_max_allocated", "bytes", False),
                  ("decode_max_allocated", "bytes", False), ("ttft_p90", "s", False), ("decode_tpot_p90", "s", False)]
    total = 0
    scans = ["reference", "independent", "triton", "triton-independent"]
    for v in range(n_variants):
        spec = VariantSpec(name=f"bench-{v:02d}", scan=scans[v % len(scans)], chunk_size=2 ** (4 + v % 5),
                           dtype=("float32", "bfloat16")[v % 2])
        speed = 1.0 + 0.05 * v
        fidelity = [Metric("kl_mean", 0.001 * (v % 7), "nats", False, n=20, context={"prompt_len": 1024},
                           items={f"test:{i}": 0.001 * (v % 7) + rng.random() * 1e-4 for i in range(20)})]
        rows = list(fidelity)
        run = 0
        while len(rows) < n_results:
            for L in (128, 256, 512, 1024, 2048):
                for b in (1, 4):
                    ctx = {"prompt_len": L, "batch": b, "new_tokens": 16, "run": run}
                    for name, unit, hib in perf_names:
                        base = L * b * 1e-5 * speed
                        value = {"s": base, "tokens/s": L * b / base, "bytes": 1e6 * L * b}[unit]
                        rows.append(Metric(name, value * (1 + rng.random() * 0.02), unit, hib,
                                           stderr=value * 0.005 if unit == "s" else None, n=5, context=ctx))
            run += 1
        rows = rows[:n_results]
        for i in range(0, len(rows), 50):
            day = 1 + (i // 50) % 28
            save_report(Report(variant=spec.to_dict(), evaluator="perf" if i else "mixed", environment=env,
                               metrics=rows[i:i + 50], suite="bench", created_at=f"2026-11-{day:02d}T00:00:00+00:00"))
        total += len(rows)
    return total


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", type=int, default=50)
    ap.add_argument("--results", type=int, default=200, help="results per variant")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    ap.add_argument("--screenshot", help="save a screenshot of the loaded page here")
    args = ap.parse_args()

    home = Path(tempfile.mkdtemp(prefix="bench_board_"))
    os.environ["SSMBOARD_HOME"] = str(home)
    os.environ.pop("SSMBOARD_DB", None)
    t0 = time.perf_counter()
    rows = seed(args.variants, args.results)
    seed_s = time.perf_counter() - t0
    from ssmboard.db.engine import dispose_stores

    dispose_stores()  # the server is another process: close ours before it starts

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "NO_PROXY": "127.0.0.1,localhost",
           "PYTHONPATH": str(REPO)}
    log = open(home / "serve.log", "w")
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "ssmboard.cli", "serve", "--port", str(port)], cwd=REPO,
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        while True:
            try:
                urllib.request.urlopen(url, timeout=2).close()
                break
            except OSError:
                if proc.poll() is not None or time.perf_counter() - t0 > 180:
                    raise SystemExit(f"server did not start: {(home / 'serve.log').read_text()[-2000:]}")
                time.sleep(0.3)
        start_s = time.perf_counter() - t0
        from playwright.sync_api import sync_playwright

        out: dict = {"variants": args.variants, "results_per_variant": args.results, "rows": rows,
                     "seed_s": round(seed_s, 2), "server_start_s": round(start_s, 2)}
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=args.chromium, headless=True, args=CHROMIUM_ARGS)
            firsts, alls, reranks = [], [], []
            for i in range(args.repeats + 1):
                time.sleep(31 if i else 0)  # past the app's 30 s snapshot cache: every load reads the store
                page = browser.new_page(viewport={"width": 1500, "height": 1000})
                t = time.perf_counter()
                page.goto(url)
                page.wait_for_selector('#board-table [data-testid="cell-0-1"]', timeout=120_000)
                first = time.perf_counter() - t
                # tabs mount when first shown: visit each and wait for its view
                page.get_by_role("tab", name="Compare").click()
                page.wait_for_selector("#plot-chunk .js-plotly-plot", timeout=120_000)
                page.get_by_role("tab", name="Speed vs fidelity").click()
                page.wait_for_selector("#pareto-plot .js-plotly-plot", timeout=120_000)
                page.get_by_role("tab", name="Variant").click()
                page.locator("#variant-spec").get_by_text("fingerprint").wait_for(timeout=120_000)
                every = time.perf_counter() - t
                page.get_by_role("tab", name="Leaderboard").click()
                before = page.inner_text('#board-table [data-testid="cell-0-1"]')
                t = time.perf_counter()
                page.locator("#order").get_by_text("descending", exact=True).click()
                page.wait_for_function(
                    "b => document.querySelector('#board-table [data-testid=\"cell-0-1\"]').innerText !== b",
                    arg=before, timeout=120_000)
                rerank = time.perf_counter() - t
                if i == 0:
                    out["cold_first_rows_s"] = round(first, 2)
                    out["cold_all_tabs_s"] = round(every, 2)
                else:
                    firsts.append(first)
                    alls.append(every)
                    reranks.append(rerank)
                if args.screenshot and i == args.repeats:
                    page.screenshot(path=args.screenshot, full_page=True)
                page.close()
            browser.close()
        out.update(first_rows_s=round(statistics.median(firsts), 2), all_tabs_s=round(statistics.median(alls), 2),
                   rerank_s=round(statistics.median(reranks), 2), repeats=args.repeats)
        print(json.dumps(out, indent=1))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
