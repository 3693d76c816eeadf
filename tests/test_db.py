"""The store: migrations, refusal of foreign/newer files, reports in and results out."""
from __future__ import annotations

import json
import math
import os
import sqlite3

import pytest
from sqlalchemy import create_engine, inspect, text

from ssmboard.db import migrate
from ssmboard.db.engine import dispose_stores, get_store
from ssmboard.errors import StoreError
from ssmboard.evaluators.report import REPORT_FORMAT, Environment, Metric, Report, ReportError
from ssmboard.registry.spec import VariantSpec

TABLES = {"variants", "jobs", "results", "environments"}


def _indexes(insp, table: str) -> set[str]:
    return {ix["name"] for ix in insp.get_indexes(table)}


# -- migrations ----------------------------------------------------------------------------
def test_revisions_form_a_line():
    revs = migrate.known_revisions()
    assert len(revs) >= 2 and revs[-1] == migrate.head_revision()
    assert len(set(revs)) == len(revs)


def test_migrations_step_by_step_keep_data(tmp_path):
    url = f"sqlite:///{tmp_path / 'steps.db'}"
    engine = create_engine(url)
    revs = migrate.known_revisions()
    with engine.connect() as conn:
        assert migrate.current_revision(conn) is None
        migrate.upgrade(conn, revs[0])
        insp = inspect(conn)
        assert TABLES <= set(insp.get_table_names())
        assert "uq_variants_active_name" not in _indexes(insp, "variants")
        assert migrate.current_revision(conn) == revs[0]
        # Data written under the first revision...
        conn.execute(text(
            "INSERT INTO variants (id, name, fingerprint, spec, model, scan, chunk_size, dtype, compile, active,"
            " builtin, created_at) VALUES (1, 'old', 'f0', '{}', 'm', 'reference', 64, 'float32', NULL, 1, 0,"
            " '2026-01-01 00:00:00')"))
        conn.execute(text(
            "INSERT INTO results (row_key, variant_id, fingerprint, evaluator, metric, value, unit,"
            " higher_is_better, n, context, created_at) VALUES ('k1', 1, 'f0', 'perf', 'ms', 1.5, 'ms', 0, 1,"
            " '{}', '2026-01-01 00:00:00')"))
        conn.commit()
        for rev in revs[1:]:
            migrate.upgrade(conn, rev)
            assert migrate.current_revision(conn) == rev
        insp = inspect(conn)
        assert "uq_variants_active_name" in _indexes(insp, "variants")
        assert "ix_results_evaluator_metric" in _indexes(insp, "results")
        # ...survives every later revision.
        assert conn.execute(text("SELECT value FROM results WHERE row_key='k1'")).scalar() == 1.5
    engine.dispose()


def test_first_use_upgrades_previous_revision(tmp_path, monkeypatch):
    path = tmp_path / "prev.db"
    engine = create_engine(f"sqlite:///{path}")
    with engine.connect() as conn:
        migrate.upgrade(conn, migrate.known_revisions()[-2])
    engine.dispose()
    monkeypatch.setenv("SSMBOARD_DB", f"sqlite:///{path}")
    store = get_store()
    with store.engine.connect() as conn:
        assert migrate.current_revision(conn) == migrate.head_revision()


def test_empty_database_gets_head_and_matches_models(db_path):
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from ssmboard.db.models import Base

    store = get_store()
    assert db_path.exists() and store.path == db_path.resolve()
    with store.engine.connect() as conn:
        assert migrate.current_revision(conn) == migrate.head_revision()
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == [], f"models.py and the migrations disagree: {diff}"


def test_downgrade_to_base_and_back(tmp_path):
    from alembic import command

    engine = create_engine(f"sqlite:///{tmp_path / 'down.db'}")
    with engine.connect() as conn:
        migrate.upgrade(conn)
        command.downgrade(migrate.alembic_config(connection=conn), "base")
        conn.commit()
        assert not (TABLES & set(inspect(conn).get_table_names()))
        migrate.upgrade(conn)
        assert TABLES <= set(inspect(conn).get_table_names())
    engine.dispose()


def test_sqlite_pragmas_wal_and_foreign_keys(db_path):
    from sqlalchemy.exc import IntegrityError

    from ssmboard.db import models as m

    store = get_store()
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    with pytest.raises(IntegrityError):
        with store.session() as s:
            s.add(m.Result(row_key="x", variant_id=999, fingerprint="f", evaluator="e", metric="m", value=1.0,
                           unit="", higher_is_better=True, n=1, context={}))


def test_one_active_row_per_name_is_enforced():
    from sqlalchemy.exc import IntegrityError

    from ssmboard.db import models as m

    store = get_store()
    with pytest.raises(IntegrityError):
        with store.session() as s:
            for fp in ("a", "b"):
                s.add(m.Variant(name="dup", fingerprint=fp, spec={}, model="m", scan="reference", dtype="float32",
                                active=True, builtin=False))
                s.flush()


# -- refusing files that are not ours ------------------------------------------------------
def _snapshot(path):
    return path.read_bytes(), sorted(p.name for p in path.parent.iterdir())


def test_newer_schema_is_refused_and_untouched(db_path, cli_process):
    get_store()
    dispose_stores()
    con = sqlite3.connect(db_path)
    con.execute("UPDATE alembic_version SET version_num = '9999_from_the_future'")
    con.commit()
    con.close()
    before = _snapshot(db_path)
    with pytest.raises(StoreError, match="newer") as info:
        get_store()
    assert "9999_from_the_future" in str(info.value)
    proc = cli_process("db", "info")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: ") and "newer" in proc.stderr
    proc = cli_process("variants", "list")
    assert proc.returncode == 2
    assert _snapshot(db_path) == before


@pytest.mark.parametrize("content", [os.urandom(4096), b"not a database\n" * 10, b"SQLite format 3\x00" + b"\x07" * 2000])
def test_non_database_file_is_refused_and_untouched(db_path, cli_process, content):
    db_path.write_bytes(content)
    before = _snapshot(db_path)
    with pytest.raises(StoreError, match="SQLite|database") as info:
        get_store()
    assert str(db_path) in str(info.value)
    proc = cli_process("variants", "list")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and proc.stderr.startswith("error: ")
    assert _snapshot(db_path) == before


def test_other_applications_database_is_refused(db_path):
    con = sqlite3.connect(db_path)
    con.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY)")
    con.commit()
    con.close()
    before = _snapshot(db_path)
    with pytest.raises(StoreError, match="another application"):
        get_store()
    assert _snapshot(db_path) == before


def test_db_url_from_environment(tmp_path, monkeypatch, db_path):
    other = tmp_path / "elsewhere" / "x.db"
    monkeypatch.setenv("SSMBOARD_DB", f"sqlite:///{other}")
    store = get_store()
    assert store.path == other.resolve() and other.exists() and not db_path.exists()


@pytest.mark.parametrize("url", ["not a url", "nosuchdialect://x/y"])
def test_bad_url(monkeypatch, url):
    monkeypatch.setenv("SSMBOARD_DB", url)
    with pytest.raises(StoreError, match="URL"):
        get_store()


def test_in_memory_database(monkeypatch):
    monkeypatch.setenv("SSMBOARD_DB", "sqlite://")
    import ssmboard

    assert len(ssmboard.list_variants()) >= 10


# -- reports -------------------------------------------------------------------------------
def _report(name="rep", chunk=64, env=None, n=3, evaluator="perf"):
    spec = VariantSpec(name=name, chunk_size=chunk)
    metrics = [Metric(f"prefill_ms", 10.0 + i, "ms", higher_is_better=False, stderr=0.5, n=20,
                      context={"prompt_len": 256 * (i + 1), "batch": 1}) for i in range(n)]
    return Report.for_spec(spec, evaluator=evaluator, suite="perf-small",
                           environment=env or Environment(device_name="NVIDIA H200", torch_version="2.11"),
                           metrics=metrics)


def test_report_json_round_trip(tmp_path):
    rep = _report()
    path = tmp_path / "one.json"
    rep.to_json(path)
    data = json.loads(path.read_text())
    assert data["format"] == REPORT_FORMAT
    (back,) = Report.load(path)
    assert back == rep
    Report.dump_many([rep, _report(name="two")], tmp_path / "many.json")
    assert [r.variant["name"] for r in Report.load(tmp_path / "many.json")] == ["rep", "two"]


def test_report_validation(tmp_path):
    data = _report().to_dict()
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**data, "format": "ssmboard-report/99"}))
    with pytest.raises(ReportError, match="ssmboard-report/1"):
        Report.load(bad)
    bad.write_text(json.dumps({k: v for k, v in data.items() if k != "format"}))
    with pytest.raises(ReportError, match="format"):
        Report.load(bad)
    bad.write_text("{ not json")
    with pytest.raises(ReportError, match="not valid JSON"):
        Report.load(bad)
    bad.write_text(json.dumps([data, {**data, "metrics": [{"name": "x", "value": "fast"}]}]))
    with pytest.raises(ReportError, match=r"\[report 1\].*finite number"):
        Report.load(bad)
    with pytest.raises(ReportError, match="no such file"):
        Report.load(tmp_path / "missing.json")
    with pytest.raises(ReportError):
        Metric("m", math.nan)
    with pytest.raises(ReportError, match="unknown field"):
        Environment.from_dict({"gpu": "x"})


def test_save_report_idempotent_and_dedups_environment():
    from ssmboard.db.queries import table_counts
    from ssmboard.jobs.sinks import save_report

    rep = _report()
    first = save_report(rep)
    assert (first.added, first.skipped) == (3, 0)
    again = save_report(Report.from_dict(json.loads(rep.to_json())))
    assert (again.added, again.skipped) == (0, 3)
    counts = table_counts()
    assert counts["results"] == 3 and counts["environments"] == 1
    other = save_report(_report(env=Environment(device_name="NVIDIA H200", torch_version="2.12")))
    assert other.added == 3 and table_counts()["environments"] == 2


def test_save_report_duplicate_keys_inside_one_report():
    from ssmboard.jobs.sinks import save_report

    rep = _report(n=1)
    rep.metrics.append(Metric("other", 1.0, row_key=rep.metrics[0].row_key))
    counts = save_report(rep)
    assert (counts.added, counts.skipped) == (1, 1)


def test_save_report_registers_variant_without_replacing():
    import ssmboard
    from ssmboard.db.queries import variant_records
    from ssmboard.jobs.sinks import save_report

    save_report(_report(name="fresh", chunk=32))
    assert ssmboard.get_variant("fresh").chunk_size == 32
    save_report(_report(name="fresh", chunk=128))  # a different spec under the same name
    assert ssmboard.get_variant("fresh").chunk_size == 32
    rows = [r for r in variant_records(include_inactive=True) if r["name"] == "fresh"]
    assert [(r["chunk_size"], r["active"], r["n_results"]) for r in rows] == [(32, True, 3), (128, False, 3)]


def test_save_report_attaches_to_builtin_row_and_job():
    import ssmboard
    from ssmboard.db import models as m
    from ssmboard.db.queries import results_records, variant_records
    from ssmboard.jobs.sinks import save_report

    spec = ssmboard.get_variant("reference-c64")
    store = get_store()
    with store.session() as s:
        vid = next(r["id"] for r in variant_records() if r["name"] == "reference-c64")
        job = m.Job(variant_id=vid, suite="perf-small", params={"prompt_lens": [256]})
        s.add(job)
        s.flush()
        job_id = job.id
        assert job.status == "pending" and job.attempts == 0
    rep = Report.for_spec(spec, evaluator="perf", environment=Environment(device_name="cpu"),
                          metrics=[Metric("decode_tok_s", 42.0, "tok/s", True, context={"new_tokens": 64})])
    counts = save_report(rep, job_id=job_id)
    assert counts.variant_id == vid
    (row,) = results_records(variants=["reference-c64"])
    assert row["job_id"] == job_id and row["fingerprint"] == spec.fingerprint


def test_results_records_fields():
    from ssmboard.db.queries import results_records

    from ssmboard.jobs.sinks import save_report

    rep = _report(n=2)
    save_report(rep)
    rows = results_records(evaluator="perf")
    assert len(rows) == 2
    r = rows[1]
    assert r["variant"] == "rep" and r["scan"] == "reference" and r["chunk_size"] == 64
    assert r["metric"] == "prefill_ms" and r["value"] == 11.0 and r["unit"] == "ms"
    assert r["higher_is_better"] is False and r["stderr"] == 0.5 and r["n"] == 20
    assert r["context"] == {"prompt_len": 512, "batch": 1}
    assert r["device_name"] == "NVIDIA H200" and r["torch_version"] == "2.11"
    assert r["suite"] == "perf-small" and r["row_key"] == rep.metrics[1].row_key
    assert r["created_at"].startswith(rep.created_at[:19])
    json.dumps(rows)  # plain data
    assert results_records(metric="nope") == []


def test_collect_environment():
    from ssmboard.evaluators.environment import collect_environment

    env = collect_environment()
    assert env.torch_version and env.python_version and env.hostname
    assert env.device_name  # a GPU name or the CPU model
    assert Environment.from_dict(env.to_dict()) == env
    assert len(env.hash()) == 64


def test_effective_variant_and_foreign_job_id(tmp_path):
    import numpy as np

    from ssmboard.db.queries import results_records
    from ssmboard.jobs.sinks import save_report

    spec = VariantSpec(name="sweep")
    eff = VariantSpec(name="sweep", chunk_size=32)
    rep = Report(variant=spec.to_dict(), evaluator="perf", suite="s", environment=Environment(),
                 metrics=[Metric("peak", np.int64(1024), "bytes", False, n=np.int64(3)),
                          Metric("ttft", np.float64(0.25), "s", False)],
                 effective_variant=eff.to_dict(), job_id=12345)
    rep.to_json(tmp_path / "r.json")
    (back,) = Report.load(tmp_path / "r.json")
    assert back.effective_variant == eff.to_dict() and back.job_id == 12345
    counts = save_report(back)
    assert counts.added == 2 and counts.fingerprint == spec.fingerprint
    rows = results_records(variants=["sweep"])
    assert all(r["job_id"] is None for r in rows)  # job 12345 does not exist in this store
    assert rows[0]["value"] == 1024.0 and rows[0]["n"] == 3
    assert rows[0]["context"]["effective_fingerprint"] == eff.fingerprint
    assert rows[0]["context"]["effective_variant"]["chunk_size"] == 32



def test_item_scores_are_stored_with_their_rows_and_import_is_idempotent(tmp_path):
    from ssmboard.cli import main
    from ssmboard.db.queries import item_scores, results_records, table_counts

    spec = VariantSpec(name="acc", chunk_size=64)
    rep = Report.for_spec(spec, evaluator="fidelity", environment=Environment(device_name="cpu"), metrics=[
        Metric("kl_mean", 0.02, "nats", False, stderr=0.001, n=3, context={"prompt_len": 512},
               items={"p0": 0.01, "p1": 0.02, "p2": 0.03}),
        Metric("top1_agreement", 0.95, "", True, n=1, context={"prompt_len": 512}),
    ])
    path = tmp_path / "acc.json"
    rep.to_json(path)
    assert json.loads(path.read_text())["metrics"][0]["items"] == {"p0": 0.01, "p1": 0.02, "p2": 0.03}
    assert main(["import", str(path)]) == 0
    assert main(["import", str(path)]) == 0  # the second import adds nothing, items included
    rows = {r["metric"]: r for r in results_records(variants=["acc"])}
    assert len(rows) == 2
    scores = item_scores([rows["kl_mean"]["id"], rows["top1_agreement"]["id"]])
    assert scores[rows["kl_mean"]["id"]] == {"p0": 0.01, "p1": 0.02, "p2": 0.03}
    assert scores[rows["top1_agreement"]["id"]] == {}
    with get_store().session() as s:
        assert s.execute(text("SELECT COUNT(*) FROM item_scores")).scalar() == 3
    assert table_counts()["results"] == 2


def test_bad_item_scores_are_refused():
    with pytest.raises(ReportError, match="item 'x' has score nan"):
        Metric("m", 1.0, items={"x": float("nan")})
    with pytest.raises(ReportError, match="items must be an object"):
        Metric("m", 1.0, items=[1, 2])


def test_migration_0003_adds_item_scores_to_a_0002_store_with_data(tmp_path):
    url = f"sqlite:///{tmp_path / 'm.db'}"
    engine = create_engine(url)
    with engine.connect() as conn:
        migrate.upgrade(conn, "0002")
        conn.execute(text(
            "INSERT INTO variants (id, name, fingerprint, spec, model, scan, chunk_size, dtype, compile, active,"
            " builtin, created_at) VALUES (1, 'old', 'f0', '{}', 'm', 'reference', 64, 'float32', NULL, 1, 0,"
            " '2026-01-01 00:00:00')"))
        conn.execute(text(
            "INSERT INTO results (id, row_key, variant_id, fingerprint, evaluator, metric, value, unit,"
            " higher_is_better, n, context, created_at) VALUES (7, 'k1', 1, 'f0', 'perf', 'ms', 1.5, 'ms', 0, 1,"
            " '{}', '2026-01-01 00:00:00')"))
        conn.commit()
        assert "item_scores" not in inspect(conn).get_table_names()
        migrate.upgrade(conn, "0003")
        assert "item_scores" in inspect(conn).get_table_names()
        conn.execute(text("INSERT INTO item_scores (result_id, item, value) VALUES (7, 'a', 0.5)"))
        conn.commit()
        assert conn.execute(text("SELECT value FROM results WHERE row_key='k1'")).scalar() == 1.5
        assert conn.execute(text("SELECT value FROM item_scores WHERE result_id=7")).scalar() == 0.5
