"""The `ssmboard` command: exit codes, one-line errors, JSON output, import, demo."""
from __future__ import annotations

import json

import pytest

from ssmboard.cli import main
from ssmboard.cli.output import parse_option_value
from ssmboard.db import migrate
from ssmboard.evaluators.report import Environment, Metric, Report
from ssmboard.registry.spec import VariantSpec


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_variants_list_json(capsys):
    code, out, err = run(capsys, "variants", "list", "--json")
    assert code == 0, err
    rows = json.loads(out)
    names = {r["name"] for r in rows}
    assert {"reference-c64", "sequential", "triton-c64"} <= names
    row = next(r for r in rows if r["name"] == "reference-c128")
    assert row["backend_known"] is True
    assert row["chunk_size"] == 128 and row["fingerprint"] == VariantSpec(**{
        k: v for k, v in row.items() if k not in ("fingerprint", "backend_known")}).fingerprint


def test_variants_list_table(capsys):
    code, out, _ = run(capsys, "variants", "list")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["NAME", "SCAN", "CHUNK"]
    assert any(line.startswith("reference-compiled ") and " default " in line for line in lines)


def test_register_show_and_conflict(capsys):
    code, out, err = run(capsys, "variants", "register", "my-v", "--scan", "independent", "--chunk-size", "128",
                         "--dtype", "bf16", "--compile", "max-autotune", "--compile-option", "epilogue_fusion=true",
                         "--compile-option", "coordinate_descent_tuning=1", "--n-layers", "4", "--no-cache",
                         "--tag", "x", "--tag", "y", "--description", "mine")
    assert code == 0, err
    assert "my-v" in out
    code, out, err = run(capsys, "variants", "show", "my-v", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["scan"] == "independent" and data["chunk_size"] == 128 and data["dtype"] == "bfloat16"
    assert data["compile_options"] == {"coordinate_descent_tuning": 1, "epilogue_fusion": True}
    assert data["n_layers"] == 4 and data["use_cache"] is False and data["tags"] == ["x", "y"]
    assert data["builtin"] is False and data["n_results"] == 0 and data["previous"] == []

    # Same spec again: a no-op, exit 0.
    code, _, _ = run(capsys, "variants", "register", "my-v", "--scan", "independent", "--chunk-size", "128",
                     "--dtype", "bf16", "--compile", "max-autotune", "--compile-option", "epilogue_fusion=true",
                     "--compile-option", "coordinate_descent_tuning=1", "--n-layers", "4", "--no-cache",
                     "--tag", "y", "--tag", "x", "--description", "mine")
    assert code == 0
    code, out, err = run(capsys, "variants", "register", "my-v", "--chunk-size", "64")
    assert code == 2 and out == ""
    assert err.startswith("error: ") and "--replace" in err and err.count("\n") == 1
    code, _, err = run(capsys, "variants", "register", "my-v", "--chunk-size", "64", "--replace", "--json")
    assert code == 0, err
    code, out, _ = run(capsys, "variants", "show", "my-v", "--json")
    data = json.loads(out)
    assert data["chunk_size"] == 64 and len(data["previous"]) == 1


@pytest.mark.parametrize("argv, needle", [
    (["variants", "register", "x", "--scan", "warp-drive"], "known backends: "),
    (["variants", "register", "x", "--chunk-size", "3"], "power of two"),
    (["variants", "register", "x", "--chunk-size", "0"], "power of two"),
    (["variants", "register", "x", "--chunk-size", "-8"], "power of two"),
    (["variants", "register", "x", "--dtype", "float64"], "dtype"),
    (["variants", "register", "x", "--compile", "turbo"], "compile mode"),
    (["variants", "register", "bad name"], "variant name"),
    (["variants", "register", "a" * 65], "65 characters"),
    (["variants", "register", "x", "--n-layers", "0"], "n_layers"),
    (["variants", "register", "x", "--compile-option", "epilogue_fusion"], "NAME=VALUE"),
    (["variants", "register", "x", "--compile-option", "epilogue_fusion=1"], "compile is None"),
    (["variants", "show", "no-such-variant"], "no variant named"),
])
def test_user_errors_exit_2_with_one_line(capsys, argv, needle):
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert err.startswith("error: ") and needle in err and err.count("\n") == 1
    assert "Traceback" not in err


def test_errors_in_a_real_process(cli_process):
    proc = cli_process("variants", "register", "x", "--chunk-size", "3")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr
    proc = cli_process("variants", "register", "x", "--scan", "nope")
    assert proc.returncode == 2 and "reference" in proc.stderr and "Traceback" not in proc.stderr
    proc = cli_process("variants")  # argparse: missing subcommand
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    proc = cli_process("variants", "list", "--json")
    assert proc.returncode == 0 and json.loads(proc.stdout)


def test_db_info(capsys, db_path):
    code, out, err = run(capsys, "db", "info", "--json")
    assert code == 0, err
    info = json.loads(out)
    assert info["schema_revision"] == migrate.head_revision() == info["head_revision"]
    assert info["path"] == str(db_path.resolve()) and info["url"].startswith("sqlite:///")
    assert info["counts"]["results"] == 0 and info["counts"]["jobs"] == 0
    code, out, _ = run(capsys, "db", "info")
    assert code == 0 and "schema revision" in out and str(db_path.resolve()) in out


def _write_report(path, name="imported", value=3.0, n=2) -> Report:
    rep = Report.for_spec(VariantSpec(name=name, chunk_size=256), evaluator="perf",
                          environment=Environment(device_name="NVIDIA H200"),
                          metrics=[Metric(f"m{i}", value + i, "ms", False) for i in range(n)])
    rep.to_json(path)
    return rep


def test_import_is_idempotent(capsys, tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    _write_report(a)
    Report.dump_many([Report.load(a)[0], Report.for_spec(
        VariantSpec(name="other"), evaluator="fidelity", environment=Environment(),
        metrics=[Metric("rel_err", 1e-3, "", False)])], b)
    code, out, err = run(capsys, "import", str(a))
    assert code == 0, err
    assert "2 result(s) added" in out
    code, out, err = run(capsys, "import", str(a), str(b))
    assert code == 0, err
    assert "total: 1 added, 4 already stored" in out
    code, out, _ = run(capsys, "db", "info", "--json")
    assert json.loads(out)["counts"]["results"] == 3
    code, out, _ = run(capsys, "variants", "show", "imported", "--json")
    assert json.loads(out)["n_results"] == 2


@pytest.mark.parametrize("content", ["{not json", json.dumps({"format": "other/1"}), json.dumps([1, 2]), None])
def test_import_bad_file_exit_2(capsys, tmp_path, content):
    path = tmp_path / "bad.json"
    if content is not None:
        path.write_text(content)
    code, out, err = run(capsys, "import", str(path))
    assert code == 2 and err.startswith("error: ") and str(path) in err and "Traceback" not in err


def test_import_checks_every_file_before_writing(capsys, tmp_path):
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    _write_report(good)
    bad.write_text("[]x")
    code, _, _ = run(capsys, "import", str(good), str(bad))
    assert code == 2
    code, out, _ = run(capsys, "db", "info", "--json")
    assert json.loads(out)["counts"]["results"] == 0


def test_import_in_a_real_process(cli_process, tmp_path):
    path = tmp_path / "r.json"
    _write_report(path, n=3)
    proc = cli_process("import", str(path))
    assert proc.returncode == 0 and "3 result(s) added" in proc.stdout
    proc = cli_process("import", str(path))
    assert proc.returncode == 0 and "0 result(s) added, 3 already stored" in proc.stdout


@pytest.mark.slow
def test_demo_drains_the_queue_and_ranks(cli_process, db_path):
    """`make demo`: built-ins listed, quick + accuracy-quick queued and run by a local worker, ranking and compare."""
    proc = cli_process("demo", timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for name in ("reference-c16", "reference-c256", "sequential", "independent-c64", "reference-compiled"):
        assert name in proc.stdout
    assert str(db_path.resolve()) in proc.stdout
    ranking = proc.stdout.split("Ranking")[1]
    assert "reference-c64" in ranking and "independent-c64" in ranking
    compared = proc.stdout.split("ssmboard compare reference-c64 independent-c64")[1]
    assert "kl_mean" in compared and "worse" in compared
    from ssmboard.jobs.queue import list_jobs

    jobs = list_jobs()
    assert len(jobs) == 4 and {j["status"] for j in jobs} == {"finished"}


def test_option_values():
    assert parse_option_value("true") is True and parse_option_value("off") is False
    assert parse_option_value("3") == 3 and parse_option_value("0.5") == 0.5
    assert parse_option_value("max") == "max"


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.startswith("ssmboard ")


def test_register_with_the_static_decoder(capsys):
    code, out, err = run(capsys, "variants", "register", "ref-static", "--scan", "reference", "--decoder", "static",
                         "--json")
    assert code == 0, err
    assert json.loads(out)["decoder"] == "static"
    code, out, _ = run(capsys, "variants", "show", "ref-static", "--json")
    data = json.loads(out)
    assert data["decoder"] == "static"
    plain = VariantSpec(name="ref-static", scan="reference")
    assert data["fingerprint"] != plain.fingerprint
    with pytest.raises(SystemExit) as exc:  # argparse refuses an unknown decoder with exit 2
        main(["variants", "register", "x", "--decoder", "graphs"])
    assert exc.value.code == 2


def test_register_with_compile_scope_parts(capsys):
    code, out, err = run(capsys, "variants", "register", "tri-parts", "--scan", "triton", "--compile", "default",
                         "--compile-scope", "parts", "--json")
    assert code == 0, err
    assert json.loads(out)["compile_scope"] == "parts"
    code, out, err = run(capsys, "variants", "register", "no-mode", "--compile-scope", "parts")
    assert code == 2 and "compile is None" in err  # a scope without a mode: one-line user error
    assert run(capsys, "variants", "show", "no-mode")[0] != 0


def test_version_of_an_uninstalled_checkout_comes_from_pyproject(monkeypatch):
    """Benchmark scripts run from a source tree on GPU boxes: their rows still name the version."""
    import importlib.metadata
    import tomllib
    from pathlib import Path

    import ssmboard
    from ssmboard.version import package_version

    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", missing)
    package_version.cache_clear()
    try:
        want = tomllib.loads((Path(ssmboard.__file__).resolve().parents[1] / "pyproject.toml").read_text())
        assert package_version() == want["project"]["version"] + "+source"
    finally:
        package_version.cache_clear()


def test_a_missing_extra_names_the_pip_install():
    from ssmboard.extras import MissingExtraError, require

    with pytest.raises(MissingExtraError, match=r"no_such_pkg_xyz is not installed for the board; install it with: "
                                                r"pip install 'ssmboard\[board\]'"):
        require("no_such_pkg_xyz", "board", "the board")
    assert require("json", "board").dumps([1]) == "[1]"
