"""The variant registry: validation, fingerprints, persistence, built-ins, replace semantics."""
from __future__ import annotations

import hashlib
import json

import pytest

import ssmboard
from ssmboard.errors import SpecError, SsmboardError, UnknownBackendError, VariantConflictError, VariantNotFoundError
from ssmboard.registry.spec import VariantSpec, make_spec
from ssmboard.registry.builtins import builtin_specs
from ssmboard.variants.backends import list_scans


# -- validation --------------------------------------------------------------------------
def test_defaults_and_normalisation():
    spec = VariantSpec(name="v", dtype="bf16", tags=["b", "a", "a"], compile="max-autotune",
                       compile_options={"shape_padding": True, "epilogue_fusion": False})
    assert spec.model == "embedded:tiny-bamba"
    assert spec.scan == "reference"
    assert spec.chunk_size is None and spec.n_layers is None and spec.use_cache is True
    assert spec.dtype == "bfloat16"
    assert spec.tags == ("a", "b")
    assert spec.compile_options == (("epilogue_fusion", False), ("shape_padding", True))
    assert spec.options == {"epilogue_fusion": False, "shape_padding": True}
    hash(spec)  # frozen and hashable
    with pytest.raises(Exception):
        spec.chunk_size = 64  # type: ignore[misc]


def test_unknown_backend_lists_known_ones():
    with pytest.raises(UnknownBackendError) as info:
        VariantSpec(name="v", scan="cuda-magic")
    msg = str(info.value)
    assert "cuda-magic" in msg
    for known in list_scans():
        assert known in msg
    assert isinstance(info.value, SpecError) and isinstance(info.value, SsmboardError)


@pytest.mark.parametrize("chunk", [0, 3, -8, 48, 1.5, True, "64"])
def test_bad_chunk_size(chunk):
    with pytest.raises(SpecError, match="chunk_size"):
        VariantSpec(name="v", chunk_size=chunk)


@pytest.mark.parametrize("chunk", [1, 2, 16, 64, 256, 4096])
def test_good_chunk_size(chunk):
    assert VariantSpec(name="v", chunk_size=chunk).chunk_size == chunk


@pytest.mark.parametrize("dtype", ["float64", "int8", "", None, "bf32"])
def test_bad_dtype(dtype):
    with pytest.raises(SpecError, match="dtype") as info:
        VariantSpec(name="v", dtype=dtype)
    assert "float32" in str(info.value) and "bfloat16" in str(info.value)


@pytest.mark.parametrize("mode", ["fast", "max_autotune", "", 1])
def test_bad_compile_mode(mode):
    with pytest.raises(SpecError, match="compile mode") as info:
        VariantSpec(name="v", compile=mode)
    assert "max-autotune-no-cudagraphs" in str(info.value)


@pytest.mark.parametrize("name", ["", "has space", "a" * 65, "slash/name", "tab\tname", "émoji", None, 12])
def test_bad_names(name):
    with pytest.raises(SpecError, match="name"):
        VariantSpec(name=name)


def test_name_limits():
    assert VariantSpec(name="a" * 64).name == "a" * 64
    assert VariantSpec(name="A.b_c-9").name == "A.b_c-9"
    with pytest.raises(SpecError, match="65 characters"):
        VariantSpec(name="a" * 65)


@pytest.mark.parametrize("n", [0, -1, 1.0, True])
def test_bad_n_layers(n):
    with pytest.raises(SpecError, match="n_layers"):
        VariantSpec(name="v", n_layers=n)


def test_unknown_field_is_named_with_valid_ones():
    with pytest.raises(SpecError) as info:
        make_spec("v", chunksize=64)
    msg = str(info.value)
    assert "'chunksize'" in msg and "chunk_size" in msg and "compile_options" in msg
    with pytest.raises(SpecError, match="chunksize"):
        ssmboard.register_variant("v", chunksize=64)
    with pytest.raises(SpecError, match="bogus"):
        VariantSpec.from_dict({"name": "v", "bogus": 1})


def test_bad_compile_options():
    with pytest.raises(SpecError, match="compile is None"):
        VariantSpec(name="v", compile_options={"epilogue_fusion": True})
    with pytest.raises(SpecError, match="value"):
        VariantSpec(name="v", compile="default", compile_options={"epilogue_fusion": [1]})
    with pytest.raises(SpecError, match="option name"):
        VariantSpec(name="v", compile="default", compile_options={"bad name": 1})


def test_compile_scope():
    with pytest.raises(SpecError, match="compile is None"):
        VariantSpec(name="v", compile_scope="parts")
    with pytest.raises(SpecError, match="compile_scope"):
        VariantSpec(name="v", compile="default", compile_scope="layers")
    whole = VariantSpec(name="v", compile="default")
    parts = whole.replace(compile_scope="parts")
    assert whole.compile_scope == "model" and "compile_scope" not in whole.computational_dict()
    assert parts.computational_dict()["compile_scope"] == "parts" and parts.fingerprint != whole.fingerprint
    assert VariantSpec.from_dict(parts.to_dict()) == parts
    fast = {s.name: s for s in builtin_specs()}["triton-fast"]
    assert (fast.scan, fast.compile_scope, fast.decoder) == ("triton", "parts", "static")


def test_bad_model_and_flags():
    with pytest.raises(SpecError, match="model"):
        VariantSpec(name="v", model="")
    with pytest.raises(SpecError, match="config:"):
        VariantSpec(name="v", model="config:")
    with pytest.raises(SpecError, match="use_cache"):
        VariantSpec(name="v", use_cache="yes")


# -- fingerprint -------------------------------------------------------------------------
def test_fingerprint_is_sha256_of_canonical_computational_json():
    spec = VariantSpec(name="v", scan="independent", chunk_size=32, dtype="float16", compile="default",
                       compile_options={"shape_padding": True, "coordinate_descent_tuning": 1}, n_layers=4,
                       use_cache=False, description="d", tags=("x",))
    by_hand = ('{"chunk_size":32,"compile":"default","compile_options":{"coordinate_descent_tuning":1,'
               '"shape_padding":true},"dtype":"float16","model":"embedded:tiny-bamba","n_layers":4,'
               '"scan":"independent","use_cache":false}')
    assert spec.fingerprint == hashlib.sha256(by_hand.encode()).hexdigest()[:16]


def test_fingerprint_ignores_metadata_and_field_order():
    a = VariantSpec(name="a", chunk_size=64, compile="default",
                    compile_options={"epilogue_fusion": True, "shape_padding": False})
    data = a.to_dict()
    reordered = dict(reversed(list(data.items())))
    reordered["compile_options"] = dict(reversed(list(data["compile_options"].items())))
    b = VariantSpec.from_dict({**reordered, "name": "b", "description": "other", "tags": ["t"]})
    assert a.fingerprint == b.fingerprint
    assert a.fingerprint != a.replace(chunk_size=128).fingerprint
    assert a.fingerprint != a.replace(dtype="bfloat16").fingerprint
    assert a.fingerprint != a.replace(compile_options={"epilogue_fusion": 1, "shape_padding": False}).fingerprint


def test_fingerprint_check_on_from_dict():
    spec = VariantSpec(name="v", chunk_size=64)
    good = {**spec.to_dict(), "fingerprint": spec.fingerprint}
    assert VariantSpec.from_dict(good) == spec
    with pytest.raises(SpecError, match="fingerprint"):
        VariantSpec.from_dict({**good, "chunk_size": 128})


def test_fingerprint_stable_across_processes(python_process):
    code = (
        "from ssmboard.registry.spec import VariantSpec\n"
        "s = VariantSpec(compile_options={'shape_padding': True, 'epilogue_fusion': False}, "
        "compile='max-autotune', chunk_size=128, name='x', tags=('b','a'))\n"
        "print(s.fingerprint)\n"
    )
    mine = VariantSpec(name="y", chunk_size=128, compile="max-autotune",
                       compile_options={"epilogue_fusion": False, "shape_padding": True}).fingerprint
    outs = set()
    for seed in ("0", "12345"):
        import os

        os.environ["PYTHONHASHSEED"] = seed
        try:
            proc = python_process(code)
        finally:
            del os.environ["PYTHONHASHSEED"]
        assert proc.returncode == 0, proc.stderr
        outs.add(proc.stdout.strip())
    assert outs == {mine}


# -- store-backed API ----------------------------------------------------------------------
EXPECTED_BUILTINS = {
    "reference-c16", "reference-c32", "reference-c64", "reference-c128", "reference-c256",
    "sequential", "independent-c64", "reference-compiled", "triton-c64", "triton-independent-c64", "triton-fast",
}


def test_builtins_on_first_use(db_path):
    names = [v.name for v in ssmboard.list_variants()]
    assert set(names) == EXPECTED_BUILTINS
    assert names.index("reference-c16") < names.index("reference-c128")  # natural order
    assert db_path.exists()
    comp = ssmboard.get_variant("reference-compiled")
    assert (comp.scan, comp.chunk_size, comp.compile) == ("reference", 64, "default")
    assert ssmboard.get_variant("independent-c64").scan == "independent"
    assert ssmboard.get_variant("triton-independent-c64").scan == "triton-independent"
    for c in (16, 32, 64, 128, 256):
        assert ssmboard.get_variant(f"reference-c{c}").chunk_size == c


def test_register_get_and_noop():
    from ssmboard.db.queries import variant_records

    spec = ssmboard.register_variant("triton-c128", scan="triton", chunk_size=128, tags=["mine"])
    assert ssmboard.get_variant("triton-c128") == spec
    before = len(variant_records(include_inactive=True))
    again = ssmboard.register_variant("triton-c128", scan="triton", chunk_size=128, tags=["mine"])
    assert again == spec
    assert len(variant_records(include_inactive=True)) == before
    assert "triton-c128" in [v.name for v in ssmboard.list_variants()]
    assert [v.name for v in ssmboard.list_variants(tag="mine")] == ["triton-c128"]
    assert ssmboard.register_variant(VariantSpec(name="from-spec", chunk_size=16)).chunk_size == 16


def test_get_unknown_variant_suggests():
    with pytest.raises(VariantNotFoundError, match="reference-c64"):
        ssmboard.get_variant("refrence-c64")


def _report_for(spec: VariantSpec, value: float):
    from ssmboard.evaluators.report import Environment, Metric, Report

    return Report.for_spec(spec, evaluator="perf", environment=Environment(device_name="test"),
                           metrics=[Metric("prefill_ms", value, "ms", higher_is_better=False)])


def test_conflict_and_replace_keep_old_results():
    from ssmboard.db.queries import results_records, variant_records
    from ssmboard.jobs.sinks import save_report

    old = ssmboard.register_variant("mine", scan="reference", chunk_size=64)
    save_report(_report_for(old, 1.0))
    with pytest.raises(VariantConflictError, match="chunk_size: 64 -> 128"):
        ssmboard.register_variant("mine", scan="reference", chunk_size=128)
    assert ssmboard.get_variant("mine") == old

    new = ssmboard.register_variant("mine", scan="reference", chunk_size=128, replace=True)
    assert ssmboard.get_variant("mine") == new and new.fingerprint != old.fingerprint
    save_report(_report_for(new, 2.0))

    rows = [r for r in variant_records(include_inactive=True) if r["name"] == "mine"]
    assert [(r["fingerprint"], r["active"], r["n_results"]) for r in rows] == [
        (new.fingerprint, True, 1), (old.fingerprint, False, 1)]
    res = {r["value"]: r for r in results_records(variants=["mine"])}
    assert res[1.0]["fingerprint"] == old.fingerprint and res[1.0]["active"] is False
    assert res[1.0]["chunk_size"] == 64
    assert res[2.0]["fingerprint"] == new.fingerprint and res[2.0]["active"] is True
    assert [r["value"] for r in results_records(variants=["mine"], active_only=True)] == [2.0]

    # Switching back reuses the old row and its results.
    ssmboard.register_variant("mine", scan="reference", chunk_size=64, replace=True)
    rows = [r for r in variant_records(include_inactive=True) if r["name"] == "mine"]
    assert len(rows) == 2 and rows[0]["fingerprint"] == old.fingerprint and rows[0]["n_results"] == 1


def test_metadata_change_needs_replace_and_keeps_row():
    from ssmboard.db.queries import variant_records

    ssmboard.register_variant("meta", chunk_size=32, description="one")
    with pytest.raises(VariantConflictError, match="description"):
        ssmboard.register_variant("meta", chunk_size=32, description="two")
    ssmboard.register_variant("meta", chunk_size=32, description="two", replace=True)
    rows = [r for r in variant_records(include_inactive=True) if r["name"] == "meta"]
    assert len(rows) == 1 and rows[0]["description"] == "two"


def test_replace_builtin_is_respected():
    ssmboard.register_variant("reference-c64", chunk_size=64, dtype="bfloat16", replace=True)
    from ssmboard.db.engine import dispose_stores

    dispose_stores()  # a new process-like start must not restore the built-in over the user's spec
    assert ssmboard.get_variant("reference-c64").dtype == "bfloat16"


def test_persistence_across_processes(python_process):
    reg = python_process(
        "import ssmboard\n"
        "ssmboard.register_variant('xproc', scan='independent', chunk_size=256, dtype='bfloat16', "
        "compile='max-autotune', compile_options={'epilogue_fusion': True}, n_layers=4, use_cache=False, "
        "tags=['seed'])\n"
    )
    assert reg.returncode == 0, reg.stderr
    got = python_process(
        "import json, ssmboard\n"
        "s = ssmboard.get_variant('xproc')\n"
        "print(json.dumps({**s.to_dict(), 'fingerprint': s.fingerprint}))\n"
    )
    assert got.returncode == 0, got.stderr
    data = json.loads(got.stdout)
    expect = VariantSpec(name="xproc", scan="independent", chunk_size=256, dtype="bfloat16", compile="max-autotune",
                         compile_options={"epilogue_fusion": True}, n_layers=4, use_cache=False, tags=("seed",))
    assert data == {**expect.to_dict(), "fingerprint": expect.fingerprint}
    assert ssmboard.get_variant("xproc") == expect  # and this process sees it too


def test_concurrent_first_use(ssmboard_home):
    """Several processes opening a fresh store at once: one migrates, all see the built-ins."""
    import os
    import subprocess
    import sys

    code = "import ssmboard; print(len(ssmboard.list_variants()))"
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=dict(os.environ)) for _ in range(3)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1] for o in outs]
    assert {o[0].strip() for o in outs} == {str(len(EXPECTED_BUILTINS))}


def test_imports_stay_light(python_process):
    proc = python_process(
        "import sys, ssmboard\n"
        "assert 'sqlalchemy' not in sys.modules and 'torch' not in sys.modules\n"
        "import ssmboard.cli, ssmboard.db.queries, ssmboard.registry.api, ssmboard.evaluators\n"
        "ssmboard.list_variants()\n"
        "from ssmboard.cli import main\n"
        "main(['variants', 'list', '--json'])\n"
        "bad = [m for m in ('torch', 'transformers', 'triton', 'gradio', 'lm_eval') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    assert proc.returncode == 0, proc.stderr


def test_a_variant_on_another_process_backend_is_listed_and_refused_only_when_built(python_process):
    """A backend registered in one process (register_backend) is unknown in the next: the variant
    is still listed there, marked, and building it names the missing backend."""
    reg = python_process(
        "from ssmboard.variants.backends import Backend, register_backend\n"
        "register_backend(Backend('my-scan', 'ssmboard.variants.scans.reference:scan', "
        "'ssmboard.variants.scans.reference:step', exact=True))\n"
        "import ssmboard\n"
        "ssmboard.register_variant('on-my-scan', scan='my-scan', chunk_size=32)\n"
    )
    assert reg.returncode == 0, reg.stderr
    from ssmboard.cli import main

    assert main(["variants", "list"]) == 0
    listed = python_process("from ssmboard.cli import main\nraise SystemExit(main(['variants', 'list']))\n")
    assert listed.returncode == 0, listed.stderr
    assert "on-my-scan" in listed.stdout and "my-scan (not registered here)" in listed.stdout
    spec = ssmboard.get_variant("on-my-scan")
    assert spec.scan == "my-scan" and spec.backend_known is False
    assert spec.fingerprint == VariantSpec.from_stored(spec.to_dict()).fingerprint
    with pytest.raises(UnknownBackendError, match="'my-scan' is not registered in this process.*register_backend"):
        from ssmboard.variants.build import build

        build(spec, device="cpu")
    with pytest.raises(UnknownBackendError):  # registering a new variant still checks the name
        ssmboard.register_variant("another", scan="my-scan")
    shown = python_process("from ssmboard.cli import main\nraise SystemExit(main(['eval', 'on-my-scan']))\n")
    assert shown.returncode == 2 and "'my-scan' is not registered in this process" in shown.stderr
    assert "Traceback" not in shown.stderr
