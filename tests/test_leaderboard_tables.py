"""The leaderboard's pure builders on a store seeded through save_report (tests/board_seed.py)."""
from __future__ import annotations

import json
import math

import pandas as pd
import pytest

import board_seed
from ssmboard.evaluators.stats import paired_bootstrap
from ssmboard.leaderboard import data, plots, tables


@pytest.fixture(scope="module")
def board(tmp_path_factory) -> data.BoardData:
    """The seeded store, read once; item scores are read from the frozen copy made here."""
    from ssmboard.db import queries
    from ssmboard.db.engine import dispose_stores

    home = tmp_path_factory.mktemp("board_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SSMBOARD_HOME", str(home))
        mp.delenv("SSMBOARD_DB", raising=False)
        board_seed.seed()
        d = data.load()
        items = queries.item_scores([int(i) for i in d.results["id"]])
        dispose_stores()
    d.items_for = lambda ids: {i: items.get(i, {}) for i in ids}
    return d


def rank(board, **kw) -> tables.Ranking:
    return tables.ranking(board.results, board.variants, tables.Selection(**kw), items_for=board.items_for)


def test_ranked_by_ttft_lowest_first_on_the_most_measured_device(board):
    r = rank(board)
    assert r.context == {"device": "NVIDIA H200", "prompt_len": 256, "batch": 1}
    assert r.metric == "ttft"
    assert r.order == ["fast-c64", "mid-c128", "ind-c64", "slow-c16", "oom-c256"]
    assert list(r.display["rank"]) == ["1", "2", "3", "4", "-"]
    # the latest of fast-c64's two runs at this context (10 ms, not the older 50 ms)
    assert r.values.set_index("variant").loc["fast-c64", "ttft"] == pytest.approx(0.010)
    assert r.display.loc[0, "TTFT (ms) ↓"].startswith("10 ")


def test_higher_is_better_metric_ranks_highest_first(board):
    r = rank(board, metric="decode_tokens_per_s")
    vals = r.values.set_index("variant")["decode_tokens_per_s"].dropna()
    assert list(vals.index) == ["fast-c64", "mid-c128", "ind-c64", "slow-c16"]
    assert list(vals) == sorted(vals, reverse=True)
    # sorting by a column the other way round, and by name
    asc = rank(board, metric="decode_tokens_per_s", sort_by="decode_tokens_per_s", descending=False)
    assert asc.order[:4] == ["slow-c16", "ind-c64", "mid-c128", "fast-c64"]
    assert rank(board, sort_by="variant").order == sorted(r.order)


def test_devices_are_never_ranked_together(board):
    gpu, cpu = rank(board), rank(board, device="Intel Xeon")
    assert gpu.other_devices == ["Intel Xeon"] and cpu.other_devices == ["NVIDIA H200"]
    assert any("Intel Xeon" in n and "never ranked together" in n for n in gpu.notes)
    # on the CPU slow-c16 wins: the order is its own, from CPU rows only
    assert cpu.order == ["slow-c16", "fast-c64"]
    assert cpu.values.set_index("variant").loc["fast-c64", "ttft"] == pytest.approx(0.9)
    assert "kl_mean @L256" not in {c.key for c in cpu.columns}  # fidelity was measured on the H200 only
    with pytest.raises(tables.BoardError, match="no results on device"):
        rank(board, device="TPU")


def test_oom_and_missing_are_not_zero(board):
    r = rank(board)
    row = r.display.set_index("variant").loc["oom-c256"]
    perf_headers = [c.header for c in r.columns if c.group == "performance"]
    assert all(row[h] == "OOM" for h in perf_headers)
    assert row["kl_mean @L256 (nats) ↓"] == "-"
    assert math.isnan(r.values.set_index("variant").loc["oom-c256", "ttft"])
    assert not (r.display == "0").any().any()
    # at a prompt length where it did run, it has numbers and a rank
    long = rank(board, prompt_len=1024)
    assert long.values.set_index("variant").loc["oom-c256", "ttft"] == pytest.approx(0.03)


def test_filters_and_search(board):
    assert rank(board, filters={"backend": ["independent"]}).order == ["ind-c64"]
    assert rank(board, filters={"dtype": ["bfloat16"]}).order == ["slow-c16"]
    assert rank(board, filters={"chunk_size": ["64", "128"]}).order == ["fast-c64", "mid-c128", "ind-c64"]
    assert rank(board, filters={"decoder": ["static"]}).order == ["oom-c256"]
    assert rank(board, search="C128").order == ["mid-c128"]
    assert rank(board, search=board.variants.set_index("name").loc["ind-c64", "fingerprint"][:8]).order == ["ind-c64"]
    with pytest.raises(tables.BoardError, match="unknown filter"):
        rank(board, filters={"colour": ["red"]})
    opts = tables.filter_options(board.variants)
    assert {"reference", "independent"} <= set(opts["backend"]) and "static" in opts["decoder"]


def test_column_groups_show_and_hide(board):
    perf_only = rank(board, groups=("performance",)).display
    assert "TTFT (ms) ↓" in perf_only and "backend" not in perf_only and "kl_mean @L256 (nats) ↓" not in perf_only
    everything = rank(board, groups=tables.GROUPS).display
    assert "ttft_p90" not in everything  # the seed has no p90 rows; detail columns come from rows only
    assert "backend" in everything and "shakespeare_cloze/acc ↑" in everything


def test_within_noise_marks_against_the_best(board):
    r = rank(board)
    # mid-c128 is 0.2 ms slower with 0.2 ms standard errors on both: within noise; ind-c64 is not
    assert r.marks[("fast-c64", "ttft")] == "best"
    assert r.marks[("mid-c128", "ttft")] == "noise"
    assert ("ind-c64", "ttft") not in r.marks
    # item scores: ind-c64's KL differs from fast-c64's on every prompt: a paired bootstrap says beyond noise
    assert r.marks[("fast-c64", "kl_mean @L256")] == "best"
    assert ("ind-c64", "kl_mean @L256") not in r.marks
    # task accuracies 0.61 vs 0.60 with 0.02 stderr each: within noise
    assert r.marks[("slow-c16", "shakespeare_cloze/acc")] == "noise"
    cell = r.display.set_index("variant").loc["mid-c128", "TTFT (ms) ↓"]
    assert cell.endswith(tables.NOISE_MARK)


def test_comparison_deltas_intervals_and_verdicts(board):
    ctx = {"device": "NVIDIA H200", "prompt_len": 256, "batch": 1}
    frame = tables.comparison(board.results, ["fast-c64", "mid-c128", "ind-c64"], ctx, items_for=board.items_for)
    rows = frame.set_index("metric")
    ttft = rows.loc["TTFT [ttft]"]
    assert ttft["fast-c64"] == "10" and ttft["mid-c128"] == "10.2"
    assert float(ttft["Δ mid-c128"]) == pytest.approx(0.2)
    lo, hi = (float(x) for x in ttft["95% CI mid-c128"].strip("[]").split(","))
    half = 1.959964 * math.hypot(0.2, 0.2)  # ms
    assert lo == pytest.approx(0.2 - half, abs=2e-3) and hi == pytest.approx(0.2 + half, abs=2e-3)
    assert ttft["verdict mid-c128"] == "within noise (stderr)"
    assert ttft["verdict ind-c64"] == "worse (stderr)"
    kl = rows.loc["kl_mean @L256"]
    want = paired_bootstrap(board_seed.KL_ITEMS["fast-c64"], board_seed.KL_ITEMS["ind-c64"])
    assert kl["95% CI ind-c64"] == f"[{want.lo:+.3g}, {want.hi:+.3g}]"
    assert kl["verdict ind-c64"] == "worse (paired-bootstrap)"
    assert kl["mid-c128"] == "-" and kl["Δ mid-c128"] == "-"
    with pytest.raises(tables.BoardError, match="2 to 4"):
        tables.comparison(board.results, ["fast-c64"], ctx)


def test_pareto_front():
    pts = pd.DataFrame({"speed": [10, 20, 30, 15, 30], "kl": [0.0, 0.1, 0.5, 0.2, 0.6]},
                       index=["exact", "mid", "fast", "dominated", "worse-fast"])
    front = tables.pareto_front(pts, "speed", "kl", x_higher_is_better=True, y_higher_is_better=False)
    assert front == ["exact", "mid", "fast"]
    # flipping a direction changes the front
    assert tables.pareto_front(pts, "speed", "kl", x_higher_is_better=False, y_higher_is_better=False) == ["exact"]


def test_plots_draw_stored_points_with_their_spread(board):
    ctx = {"device": "NVIDIA H200", "prompt_len": 256, "batch": 1}
    fig = plots.metric_vs(board.results, ["fast-c64", "mid-c128"], "ttft", "chunk_size", ctx)
    fast = next(t for t in fig.data if t.name == "fast-c64")
    assert list(fast.x) == [16, 32, 64, 128]  # the sweep points and the variant's own chunk size
    assert list(fast.error_y.array)[2] == pytest.approx(1.96 * 0.2)  # ms
    by_len = plots.metric_vs(board.results, ["fast-c64"], "ttft", "prompt_len", ctx)
    assert list(by_len.data[0].x) == [256, 1024]
    kl = plots.by_chunk_index(board.results, ["fast-c64", "ind-c64"], None, ctx)
    assert {t.name for t in kl.data} == {"fast-c64", "ind-c64"} and list(kl.data[1].x) == [0, 1, 2, 3]
    empty = plots.metric_vs(board.results, ["fast-c64"], "ttft", "chunk_size", {**ctx, "device": "TPU"})
    assert not empty.data and "no ttft rows" in empty.layout.title.text
    r = rank(board)
    cx = next(c for c in r.columns if c.key == "prefill_tokens_per_s")
    sc = plots.speed_vs_quality(r.values, "prefill_tokens_per_s", "kl_mean @L256", x_label="x", y_label="y",
                                x_higher_is_better=True, y_higher_is_better=False, x_scale=cx.scale)
    assert list(next(t for t in sc.data if t.name == "Pareto front").text) == ["fast-c64"]


def test_cli_leaderboard_and_export(board, cli_process, ssmboard_home, tmp_path):
    board_seed.seed()
    out = cli_process("leaderboard", "--format", "json")
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert [r["variant"] for r in got["rows"]] == rank(board).order
    assert got["rows"][-1]["ttft"] is None and got["context"]["device"] == "NVIDIA H200"
    md = cli_process("leaderboard", "--context", "device=Intel Xeon", "--context", "prompt_len=256", "--format", "markdown")
    assert md.returncode == 0 and md.stdout.index("slow-c16") < md.stdout.index("fast-c64")
    bad = cli_process("leaderboard", "--metric", "nope")
    assert bad.returncode == 2 and "no metric 'nope'" in bad.stderr
    for suffix in ("csv", "json", "parquet"):
        path = tmp_path / f"all.{suffix}"
        res = cli_process("export", str(path))
        assert res.returncode == 0, res.stderr
        frame = {"csv": pd.read_csv, "json": pd.read_json, "parquet": pd.read_parquet}[suffix](path)
        assert len(frame) == len(board.results) and set(frame["variant"]) >= {"fast-c64", "oom-c256"}
    wrong = cli_process("export", str(tmp_path / "all.xlsx"))
    assert wrong.returncode == 2 and "csv, .json or .parquet" in wrong.stderr


def test_serve_binds_loopback_without_a_public_link_unless_asked():
    from ssmboard.cli import build_parser

    args = build_parser().parse_args(["serve"])
    assert (args.host, args.port, args.share) == ("127.0.0.1", 7860, False)
    assert build_parser().parse_args(["serve", "--share", "--host", "0.0.0.0"]).share is True


def test_empty_store_says_how_to_start(cli_process):
    out = cli_process("leaderboard")
    assert out.returncode == 0 and "no results in the store yet" in out.stdout and "ssmboard eval" in out.stdout
    frame = tables.ranking(data.results_frame([]), data.variants_frame([]))
    assert frame.order == [] and frame.context["device"] is None


def test_history_marks_regressions(board):
    rows = board.results
    ttft = rows[(rows["variant"] == "fast-c64") & (rows["metric"] == "ttft") & (rows["device_name"] == "NVIDIA H200")
                & (rows["ctx_prompt_len"] == 256) & rows["ctx_effective_fingerprint"].isna()]
    assert len(ttft) == 2  # the old 50 ms run and the latest 10 ms one
    newest = int(ttft.sort_values("created_at")["id"].iloc[-1])
    fig = plots.history(rows, "fast-c64", "ttft", [{"variant": "fast-c64", "metric": "ttft", "result_id": newest}])
    marked = next(t for t in fig.data if t.name == "regression")
    assert list(marked.y) == [pytest.approx(10.0)]
    series = next(t for t in fig.data if t.name == "NVIDIA H200 · L=256 b=1")
    assert list(series.y) == [pytest.approx(50.0), pytest.approx(10.0)]  # oldest first
    assert not any(t.name == "regression" for t in plots.history(rows, "fast-c64", "ttft").data)
