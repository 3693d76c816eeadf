"""The performance evaluator end to end on the embedded model (CPU): rows, contexts, the
environment, a slowed backend, Ctrl-C, out-of-memory points, `ssmboard eval` and import."""
from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from ssmboard.cli import main
from ssmboard.errors import EvaluationError
from ssmboard.evaluators.base import Params, get_evaluator, list_evaluators, register_evaluator
from ssmboard.evaluators.prompts import corpus_text, prompt_ids
from ssmboard.evaluators.report import Metric, Report
from ssmboard.evaluators.stats import summarize
from ssmboard.evaluators.suites import SUITES, Suite, get_suite, resolve
from ssmboard.jobs.runner import run_suite
from ssmboard.jobs.sinks import FileSink, StoreSink
from ssmboard.registry.spec import VariantSpec
from ssmboard.variants import backends

TINY = dict(prompt_lengths=(24, 40), batch_sizes=(1,), new_tokens=4, modes=("prefill", "decode"),
            warmup=1, iterations=2)


class ListSink:
    def __init__(self):
        self.reports: list[Report] = []

    def write(self, report: Report) -> int:
        self.reports.append(report)
        return len(report.metrics)


def tiny_suite(**params) -> Suite:
    return Suite("tiny", "test", "perf", {**TINY, **params})


def spec(name="t-ref", **kw) -> VariantSpec:
    return VariantSpec(name=name, **{"scan": "reference", "chunk_size": 16, **kw})


# -- rows, contexts, environment ---------------------------------------------------------
def test_rows_carry_their_context_and_environment():
    sink = ListSink()
    s = spec()
    summary = run_suite(s, tiny_suite(modes=("prefill", "decode", "generate-nocache")), sink, progress=False)
    assert (summary.points_done, summary.points_total, summary.interrupted) == (2, 2, False)
    assert len(sink.reports) == 2 and summary.rows == sum(len(r.metrics) for r in sink.reports)
    for report, L in zip(sink.reports, (24, 40)):
        assert report.variant == s.to_dict() and report.evaluator == "perf" and report.suite == "tiny"
        env = report.environment
        assert env.torch_version == torch.__version__ and env.cpu_model and env.ssmboard_version
        assert env.transformers_version and env.python_version
        names = {m.name for m in report.metrics}
        assert {"ttft", "ttft_p90", "prefill_tokens_per_s", "decode_tpot", "decode_tokens_per_s",
                "generate_latency", "generate_nocache_latency", "generate_nocache_tokens_per_s",
                "prefill_peak_rss", "decode_peak_rss"} <= names
        for m in report.metrics:
            c = m.context
            assert c["prompt_len"] == L and c["batch"] == 1 and c["new_tokens"] == 4
            assert c["chunk_size"] == 16 and c["scan"] == "reference" and c["dtype"] == "float32"
            assert c["fingerprint"] == s.fingerprint and c["suite"] == "tiny" and c["device"] == "cpu"
            assert c["mode"] in ("prefill", "decode", "generate-nocache")
            assert m.value > 0
        by = {m.name: m for m in report.metrics}
        assert by["ttft"].n == 2 and not by["ttft"].higher_is_better and by["ttft"].unit == "s"
        assert by["prefill_tokens_per_s"].value == pytest.approx(L / by["ttft"].value)
        assert by["decode_tokens_per_s"].value == pytest.approx(1 / by["decode_tpot"].value)
        assert by["generate_nocache_latency"].context["use_cache"] is False
        assert by["prefill_peak_rss"].value > 50 * 2**20  # the process holds torch and the model


def test_store_sink_writes_rows_with_contexts_and_a_chunk_override_is_recorded():
    from ssmboard.db.queries import results_records
    from ssmboard.registry.api import register_variant

    s = register_variant("perf-v", scan="reference", chunk_size=32)
    suite = Suite("tiny-sweep", "test", "perf", {**TINY, "prompt_lengths": (20,), "modes": ("prefill",)},
                  chunk_sizes=(16, 64))
    summary = run_suite(s, suite, StoreSink(), progress=False)
    rows = results_records(variants=["perf-v"])
    assert len(rows) == summary.rows > 0
    assert {r["context"]["chunk_size"] for r in rows} == {16, 64}  # the effective chunk size per row
    assert {r["fingerprint"] for r in rows} == {s.fingerprint}  # rows belong to the registered variant
    assert all(r["torch_version"] == torch.__version__ and r["suite"] == "tiny-sweep" for r in rows)
    assert all(r["context"]["prompt_len"] == 20 for r in rows)


def test_a_backend_slowed_on_purpose_measures_slower(monkeypatch):
    import slowed_backend

    monkeypatch.setitem(backends._BACKENDS, "slowed", backends.Backend(
        "slowed", "slowed_backend:scan", "slowed_backend:step", exact=True, description="test"))
    import functools

    import ssmboard.evaluators.perf as perf
    from ssmboard.evaluators.timing import measure

    # Time with the backend's fake clock: only the backend's own "delay" counts.
    monkeypatch.setattr(perf, "measure", functools.partial(measure, clock=slowed_backend.CLOCK))
    params = dict(prompt_lengths=(32,), modes=("prefill",), iterations=3)
    fast, slow = ListSink(), ListSink()
    run_suite(spec(), tiny_suite(**params), fast, progress=False)
    run_suite(spec("t-slow", scan="slowed"), tiny_suite(**params), slow, progress=False)
    ttft = lambda sink: next(m.value for m in sink.reports[0].metrics if m.name == "ttft")
    # 7 Mamba layers, each taking DELAY_S once per prefill; the reference backend takes no fake time
    assert ttft(fast) == pytest.approx(slowed_backend.FakeClock.TICK_S)
    assert ttft(slow) - ttft(fast) == pytest.approx(7 * slowed_backend.DELAY_S)


# -- interruption and failures -------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class NoParams(Params):
    pass


@register_evaluator("test-interrupt")
class InterruptOnSecondPoint:
    """Measures nothing real; raises KeyboardInterrupt (as Ctrl-C does) at the second point."""

    params_type = NoParams

    def points(self, params):
        return [{"point": i} for i in range(4)]

    def run_point(self, context, point, params):
        if point["point"] == 1:
            raise KeyboardInterrupt
        return [Metric("dummy", 1.0 + point["point"], "s", False)]


@register_evaluator("test-oom")
class OomOnSecondPoint:
    params_type = NoParams

    def points(self, params):
        return [{"point": i} for i in range(3)]

    def run_point(self, context, point, params):
        if point["point"] == 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 33 GiB")
        return [Metric("dummy", 1.0, "s", False)]


def test_ctrl_c_keeps_the_rows_already_written(tmp_path):
    from ssmboard.db.queries import results_records
    from ssmboard.registry.api import register_variant

    suite = Suite("interrupting", "test", "test-interrupt", {})
    out = tmp_path / "rows.json"
    summary = run_suite(spec(), suite, FileSink(out), progress=False)
    assert summary.interrupted and (summary.points_done, summary.points_total, summary.rows) == (1, 4, 1)
    assert [r.metrics[0].value for r in Report.load(out)] == [1.0]
    assert not out.with_suffix(".json.tmp").exists()

    s = register_variant("int-v", scan="reference", chunk_size=16)
    summary = run_suite(s, suite, StoreSink(), progress=False)
    assert summary.interrupted
    assert [r["value"] for r in results_records(variants=["int-v"])] == [1.0]


def test_out_of_memory_is_a_row_and_the_run_goes_on():
    sink = ListSink()
    summary = run_suite(spec(), Suite("oom", "test", "test-oom", {}), sink, progress=False)
    assert (summary.points_done, summary.interrupted) == (3, False)
    assert [r.metrics[0].name for r in sink.reports] == ["dummy", "out_of_memory", "dummy"]
    assert summary.failed == [{"point": 1, "error": "out of memory"}]


# -- parameters, suites, prompts ----------------------------------------------------------
def test_bad_parameters_and_names_are_refused():
    ev = get_evaluator("perf")
    with pytest.raises(EvaluationError, match="unknown perf parameter"):
        ev.params_type.from_dict({"prompt_length": (5,)})
    with pytest.raises(EvaluationError, match="unknown perf mode"):
        ev.params_type.from_dict({"modes": ("prefil",)})
    with pytest.raises(EvaluationError, match="new_tokens >= 2"):
        ev.params_type.from_dict({"new_tokens": 1, "modes": ("decode",)})
    with pytest.raises(EvaluationError, match=">= 1"):
        ev.params_type.from_dict({"prompt_lengths": (0,)})
    with pytest.raises(EvaluationError, match="unknown suite 'nope'; known suites: .*quick"):
        get_suite("nope")
    with pytest.raises(EvaluationError, match="unknown evaluator"):
        get_evaluator("nope")
    assert "perf" in list_evaluators()


def test_named_suites_resolve_per_variant():
    assert {"quick", "seed-perf", "sweep", "llm-perf"} <= set(SUITES)
    (step,) = resolve(get_suite("seed-perf"), spec(chunk_size=64))
    assert step.params.prompt_lengths == (64, 128, 192, 256, 320, 384, 448)
    assert step.overrides == {"n_layers": 4} and step.params.new_tokens == 100
    assert set(step.params.modes) == {"prefill", "decode", "generate-nocache"}
    (step,) = resolve(get_suite("seed-perf"), spec(chunk_size=None, n_layers=2), model_chunk_size=256)
    assert step.params.prompt_lengths[-1] == 7 * 256 and step.overrides == {}  # the spec's 2 layers stay
    steps = resolve(get_suite("sweep"), spec())
    assert [s.overrides["chunk_size"] for s in steps] == [16, 32, 64, 128, 256]
    assert steps[0].params.prompt_lengths == (256, 512, 1024, 2048, 4096, 8192)
    llm = get_suite("llm-perf").params
    assert (llm["prompt_lengths"], llm["new_tokens"], llm["iterations"], llm["min_seconds"]) == ((256,), 64, 10, 10.0)
    with pytest.raises(EvaluationError, match="chunk size"):
        resolve(get_suite("seed-perf"), spec(chunk_size=None))


def test_prompts_are_real_text_of_exact_length():
    from ssmboard.variants.loading import load_model

    _, tok = load_model("embedded:tiny-bamba")
    ids = prompt_ids(tok, 3, 50, seed=1)
    assert ids.shape == (3, 50) and ids.dtype == torch.long
    assert len({tuple(r) for r in ids.tolist()}) == 3  # distinct windows
    text = tok.decode(ids[0])
    assert text.strip() and text[5:40] in corpus_text()
    assert torch.equal(ids, prompt_ids(tok, 3, 50, seed=1))  # reproducible
    rnd = prompt_ids(None, 2, 9, vocab_size=100)
    assert rnd.shape == (2, 9) and int(rnd.max()) < 100
    with pytest.raises(EvaluationError, match="vocab_size"):
        prompt_ids(None, 1, 4)


def test_statistics_drop_the_warmup_in_the_evaluator(monkeypatch):
    """The evaluator's rows come from Timings.samples only: a slow warm-up never shows."""
    import ssmboard.evaluators.perf as perf
    from ssmboard.evaluators.timing import Timings

    monkeypatch.setattr(perf, "measure", lambda fn, **kw: (fn(), Timings(samples=[0.5, 0.7, 0.6], warmup=[9.0]))[1])
    sink = ListSink()
    run_suite(spec(), tiny_suite(prompt_lengths=(16,), modes=("prefill",)), sink, progress=False)
    by = {m.name: m for m in sink.reports[0].metrics}
    assert by["ttft"].value == pytest.approx(summarize([0.5, 0.7, 0.6]).median) and by["ttft"].n == 3


# -- CLI ------------------------------------------------------------------------------------
SMALL = ["--param", "prompt_lengths=16,24", "--param", "new_tokens=3", "--param", "iterations=1",
         "--no-progress"]


def test_eval_into_the_store_prints_a_table(capsys):
    from ssmboard.db.queries import results_records

    code = main(["eval", "reference-c32", *SMALL])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "ttft" in out and "decode_tokens_per_s" in out and "written to the store" in out
    rows = results_records(variants=["reference-c32"])
    assert rows and {r["context"]["prompt_len"] for r in rows} == {16, 24}
    assert {r["suite"] for r in rows} == {"quick"}


def test_eval_out_then_import_is_idempotent(tmp_path, capsys):
    from ssmboard.db.queries import table_counts

    out_file = tmp_path / "gpu-box.json"
    code = main(["eval", "independent-c64", *SMALL, "--out", str(out_file)])
    _, err = capsys.readouterr()
    assert code == 0, err
    reports = Report.load(out_file)
    n = sum(len(r.metrics) for r in reports)
    assert len(reports) == 2 and n > 10
    assert table_counts()["results"] == 0  # --out writes to the file only
    assert main(["import", str(out_file)]) == 0
    assert f"{n} result(s) added" in capsys.readouterr().out
    assert main(["import", str(out_file)]) == 0
    assert "0 result(s) added" in capsys.readouterr().out
    assert table_counts()["results"] == n


def test_eval_json_and_user_errors(capsys):
    code = main(["eval", "reference-c64", *SMALL, "--param", "modes=prefill", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    data = json.loads(out)
    assert {m["name"] for r in data for m in r["metrics"]} >= {"ttft", "prefill_tokens_per_s"}
    assert main(["eval", "no-such-variant"]) == 2
    assert "no-such-variant" in capsys.readouterr().err
    assert main(["eval", "reference-c64", "--param", "promptlen=3"]) == 2
    assert "suite 'quick' has no parameter promptlen; valid: batch_sizes" in capsys.readouterr().err
    assert main(["eval", "reference-c64", "--param", "oops"]) == 2
    assert "NAME=VALUE" in capsys.readouterr().err


def test_a_gpu_backend_without_a_gpu_says_so(capsys, monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")  # the CPU-only message cannot happen here
    assert main(["eval", "triton-c64", *SMALL]) == 2
    err = capsys.readouterr().err
    assert "needs a CUDA GPU" in err and "TRITON_INTERPRET=1" in err and "--out" in err


# -- the static (CUDA-graph) decoder as a variant field -----------------------------------------
def test_static_decoder_variant_is_measured_through_graph_decode(monkeypatch):
    import ssmboard.variants.graph_decode as gd

    calls = []
    real = gd.generate
    monkeypatch.setattr(gd, "generate", lambda *a, **k: calls.append(k["max_new_tokens"]) or real(*a, **k))
    sink = ListSink()
    s = spec("t-static", decoder="static")
    run_suite(s, tiny_suite(prompt_lengths=(20,), iterations=1), sink, progress=False)
    metrics = sink.reports[0].metrics
    assert {m.context["decoder"] for m in metrics} == {"static"}
    assert {"ttft", "decode_tokens_per_s"} <= {m.name for m in metrics}
    assert calls.count(1) == 2 and calls.count(4) == 2  # prefill and decode, warm-up + 1 iteration each


def test_decoder_field_validation_and_fingerprints():
    from ssmboard.errors import SpecError, SsmboardError
    from ssmboard.variants.build import build

    plain = spec()
    assert "decoder" not in plain.computational_dict()  # fingerprints made before the field stay valid
    assert spec(decoder="static").fingerprint != plain.fingerprint
    assert VariantSpec.from_dict({k: v for k, v in plain.to_dict().items() if k != "decoder"}) == plain
    with pytest.raises(SpecError, match="unknown decoder 'graph'.*'static'"):
        spec(decoder="graph")
    with pytest.raises(SsmboardError, match="apply_scan|patched|ScanMixer"):
        build(spec(scan="transformers", chunk_size=None, decoder="static"))


def test_reports_carry_the_resolved_parameters_of_their_step(tmp_path):
    out = tmp_path / "p.json"
    summary = ssmboard_evaluate("reference-c64", "quick", params={"prompt_lengths": 24, "iterations": 2,
                                                                  "modes": "prefill"}, out=out, progress=False)
    (first, *_) = Report.load(out)
    assert first.params == {**summary.reports[0].params}
    assert first.params["prompt_lengths"] == [24] and first.params["iterations"] == 2
    assert first.params["warmup"] == 1 and first.params["seed"] == 0 and first.params["min_seconds"] == 0.0
    assert first.params["modes"] == ["prefill"] and first.params["new_tokens"] == 8  # the suite's own value


def ssmboard_evaluate(*args, **kwargs):
    import ssmboard

    return ssmboard.evaluate(*args, **kwargs)
