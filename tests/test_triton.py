"""The Triton SSD kernels on Triton's CPU interpreter, against the float64 recurrence.

Kernels are built for the mode the environment asks for when they are first called
(``ssmboard.variants.triton._kernels``), so setting ``TRITON_INTERPRET=1`` per test is
enough even when another test module imported triton first; the variable is set through
``monkeypatch`` and so does not leak into other modules' tests. Shapes are small: the
interpreter runs every program in Python.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from ssmboard.errors import DeviceError, SpecError
from ssmboard.variants.scans import independent as torch_independent
from ssmboard.variants.scans import sequential
from ssmboard.variants.triton import _launch, ssd, ssd_independent

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _interpret(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")


def _inputs(b, L, h, p, g, n, *, seed, dtype=torch.float32, D2=False):
    gen = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=gen)
    return dict(
        x=r(b, L, h, p).to(dtype), dt=(r(b, L, h) - 1.0).to(dtype),
        A=-torch.exp(torch.rand(h, generator=gen) * 2.0),
        B=r(b, L, g, n).to(dtype), C=r(b, L, g, n).to(dtype),
        D=r(h, p) if D2 else r(h), dt_bias=r(h) * 0.5,
    )


def _rel(a: torch.Tensor, ref: torch.Tensor) -> float:
    a, ref = a.double(), ref.double()
    assert torch.isfinite(a).all()
    return ((a - ref).norm() / ref.norm().clamp_min(1e-300)).item()


P, N, H = 16, 16, 4

MATRIX = [  # (L, chunk_size, groups, with initial state)
    (1, 16, 1, False),
    (15, 16, 2, True),
    (16, 16, 1, True),
    (53, 16, 2, False),   # 3 * 16 + 5
    (31, 32, 1, False),
    (32, 32, 2, True),
    (101, 32, 1, True),   # 3 * 32 + 5
    (63, 64, 2, True),
    (64, 64, 1, False),
]


@pytest.mark.parametrize("L,chunk,g,with_init", MATRIX)
def test_exact_scan_matches_recurrence(L, chunk, g, with_init):
    inp = _inputs(2, L, H, P, g, N, seed=L * 7 + chunk + g, D2=(L % 2 == 1))
    init = torch.randn(2, H, P, N, generator=torch.Generator().manual_seed(L)) if with_init else None
    y, fs = ssd.scan(**inp, chunk_size=chunk, initial_state=init, return_final_state=True)
    y_ref, fs_ref = sequential.scan(**inp, chunk_size=chunk, initial_state=init, return_final_state=True)
    assert y.dtype == torch.float32 and y.shape == y_ref.shape
    assert fs.dtype == torch.float32 and fs.shape == (2, H, P, N)
    assert _rel(y, y_ref) <= 1e-4
    assert _rel(fs, fs_ref) <= 1e-4


@pytest.mark.slow
@pytest.mark.parametrize("L,chunk,g", [(3 * 64 + 5, 64, 2), (2 * 128 + 3, 128, 1)])
def test_exact_scan_long_ragged(L, chunk, g):
    inp = _inputs(1, L, H, 32, g, 32, seed=L)
    init = torch.randn(1, H, 32, 32)
    y, fs = ssd.scan(**inp, chunk_size=chunk, initial_state=init, return_final_state=True)
    y_ref, fs_ref = sequential.scan(**inp, initial_state=init, return_final_state=True)
    assert _rel(y, y_ref) <= 1e-4 and _rel(fs, fs_ref) <= 1e-4


@pytest.mark.parametrize("p,n,g", [(48, 24, 2), (64, 32, 1), (20, 40, 4)])
def test_odd_sizes_and_several_channel_blocks(p, n, g):
    """head_dim and d_state that are not powers of two; head_dim split over programs."""
    inp = _inputs(1, 35, 4, p, g, n, seed=p + n, D2=True)
    init = torch.randn(1, 4, p, n)
    y, fs = ssd.scan(**inp, chunk_size=32, initial_state=init, return_final_state=True)
    y_ref, fs_ref = sequential.scan(**inp, initial_state=init, return_final_state=True)
    assert _rel(y, y_ref) <= 1e-4 and _rel(fs, fs_ref) <= 1e-4
    state, ref_state = init.clone(), init.double().clone()
    tok = dict(x=inp["x"][:, 0], dt=inp["dt"][:, 0], A=inp["A"], B=inp["B"][:, 0], C=inp["C"][:, 0],
               D=inp["D"], dt_bias=inp["dt_bias"])
    assert _rel(ssd.step(state, **tok), sequential.step(ref_state, **tok)) <= 1e-5
    assert _rel(state, ref_state) <= 1e-5


@pytest.mark.parametrize("seg,block_l,g", [(32, 16, 1), (48, 16, 2), (64, 32, 1), (32, 16, 2), (1 << 20, 32, 1)])
def test_segment_parallel_exact_scan(seg, block_l, g):
    """Long sequences run as three launches (segment states, state passing, outputs)."""
    L = 3 * min(seg, 32) + 5
    inp = _inputs(2, L, H, P, g, N, seed=seg + g, D2=True)
    init = torch.randn(2, H, P, N)
    cfg = dict(SEG=seg, BLOCK_L=block_l)
    y, fs = _launch.run_scan(**inp, chunk_size=64, initial_state=init, return_final_state=True, config=cfg)
    y_ref, fs_ref = sequential.scan(**inp, initial_state=init, return_final_state=True)
    assert _rel(y, y_ref) <= 1e-4 and _rel(fs, fs_ref) <= 1e-4
    y2 = _launch.run_scan(**inp, chunk_size=64, config=cfg)
    assert _rel(y2, sequential.scan(**inp)) <= 1e-4


@pytest.mark.parametrize("seg", [16, 32, 48])
def test_segment_parallel_independent(seg):
    """Independent chunks run chunk-parallel: segments of whole chunks, zero state between."""
    chunk, L = 16, 16 * 5 + 3
    inp = _inputs(1, L, H, P, 2, N, seed=seg)
    init = torch.randn(1, H, P, N)
    y, fs = _launch.run_scan(**inp, chunk_size=chunk, initial_state=init, return_final_state=True,
                             independent=True, config=dict(SEG=seg))
    ind64 = {k: v.double() for k, v in inp.items()}
    y_t, fs_t = torch_independent.scan(**ind64, chunk_size=chunk, initial_state=init.double(),
                                       return_final_state=True)
    assert _rel(y, y_t) <= 1e-4 and _rel(fs, fs_t) <= 1e-4


def test_options_bias_softplus_limit_no_d():
    inp = _inputs(1, 40, H, P, 2, N, seed=3)
    inp.pop("D")
    for kw in (dict(dt_softplus=False, dt_limit=(0.01, 0.5)), dict(dt_limit=(0.0, 0.3)),
               dict(dt_bias=None, dt_limit=(0.2, float("inf")))):
        args = {**inp, **kw}
        y = ssd.scan(**args, chunk_size=16)
        assert _rel(y, sequential.scan(**args)) <= 1e-4, kw


def test_output_is_not_a_tuple_without_final_state():
    inp = _inputs(1, 20, H, P, 1, N, seed=4)
    y = ssd.scan(**inp, chunk_size=16)
    assert isinstance(y, torch.Tensor) and y.shape == (1, 20, H, P)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_inputs(dtype):
    inp = _inputs(1, 37, H, P, 2, N, seed=5, dtype=dtype)
    y, fs = ssd.scan(**inp, chunk_size=16, return_final_state=True)
    # the reference sees the same rounded inputs, in float64, and its output is not rounded
    y_ref, fs_ref = sequential.scan(**{k: v.double() for k, v in inp.items()}, return_final_state=True)
    assert y.dtype == dtype and fs.dtype == torch.float32
    assert _rel(y, y_ref) <= 8e-3 and _rel(fs, fs_ref) <= 8e-3
    # the derived operands in float32 (LOWP=0): only the output's own rounding is left
    y0, fs0 = _launch.run_scan(**inp, chunk_size=16, return_final_state=True, config=dict(LOWP=0))
    assert _rel(y0, y_ref) <= 5e-3 and _rel(fs0, fs_ref) <= 1e-4


def test_non_contiguous_inputs():
    """The mixer hands over views of one projection: strides, not copies."""
    b, L, h, p, g, n = 1, 30, H, P, 1, N
    inp = _inputs(b, L, h, p, g, n, seed=6)
    big = torch.randn(b, L, h * p + 2 * g * n + 3)
    x = big[..., : h * p].view(b, L, h, p)
    Bm = big[..., h * p: h * p + g * n].view(b, L, g, n)
    Cm = big[..., h * p + g * n: h * p + 2 * g * n].view(b, L, g, n)
    assert not x.is_contiguous()
    args = {**inp, "x": x, "B": Bm, "C": Cm}
    assert _rel(ssd.scan(**args, chunk_size=16), sequential.scan(**args)) <= 1e-4


def test_causality():
    inp = _inputs(1, 45, H, P, 1, N, seed=7)
    y = ssd.scan(**inp, chunk_size=16)
    t = 23
    for key in ("x", "B", "dt"):
        pert = {k: v.clone() for k, v in inp.items()}
        pert[key][:, t] += 3.0
        y2 = ssd.scan(**pert, chunk_size=16)
        assert torch.equal(y2[:, :t], y[:, :t]), key
        assert not torch.allclose(y2[:, t:], y[:, t:]), key


@pytest.mark.parametrize("chunk", [16, 32])
def test_independent_exact_in_chunk0_then_differs(chunk):
    L = 3 * chunk + 5
    inp = _inputs(1, L, H, P, 2, N, seed=chunk)
    init = torch.randn(1, H, P, N)
    y_ind, fs_ind = ssd_independent.scan(**inp, chunk_size=chunk, initial_state=init, return_final_state=True)
    y_ex = ssd.scan(**inp, chunk_size=chunk, initial_state=init)
    y_ref, fs_ref = sequential.scan(**inp, initial_state=init, return_final_state=True)
    assert _rel(y_ind[:, :chunk], y_ref[:, :chunk]) <= 1e-4
    assert _rel(y_ind[:, chunk:], y_ex[:, chunk:]) > 1e-3
    # and it is the independent-chunks function, as the PyTorch backend computes it
    ind64 = {k: v.double() for k, v in inp.items()}
    y_t, fs_t = torch_independent.scan(**ind64, chunk_size=chunk, initial_state=init.double(),
                                       return_final_state=True)
    assert _rel(y_ind, y_t) <= 1e-4 and _rel(fs_ind, fs_t) <= 1e-4


def test_independent_causal_and_chunk_check():
    inp = _inputs(1, 40, H, P, 1, N, seed=9)
    y = ssd_independent.scan(**inp, chunk_size=16)
    pert = {k: v.clone() for k, v in inp.items()}
    pert["x"][:, 20] += 1.0
    assert torch.equal(ssd_independent.scan(**pert, chunk_size=16)[:, :20], y[:, :20])
    with pytest.raises(SpecError, match="multiple of 16"):
        ssd_independent.scan(**inp, chunk_size=24 + 1)


@pytest.mark.parametrize("g,D2", [(1, False), (2, True)])
def test_decode_step_matches_recurrence(g, D2):
    b, h, p, n = 3, H, P, N
    inp = _inputs(b, 6, h, p, g, n, seed=10 + g, D2=D2)
    state = torch.randn(b, h, p, n)
    ref_state = state.double().clone()
    for t in range(6):
        tok = dict(x=inp["x"][:, t], dt=inp["dt"][:, t], A=inp["A"], B=inp["B"][:, t], C=inp["C"][:, t],
                   D=inp["D"], dt_bias=inp["dt_bias"])
        y = ssd.step(state, **tok)
        y_ref = sequential.step(ref_state, **tok)
        assert y.shape == (b, h, p) and y.dtype == torch.float32
        assert _rel(y, y_ref) <= 1e-5
    assert _rel(state, ref_state) <= 1e-5
    assert ssd_independent.step is ssd.step


def test_scan_then_step_continues_the_sequence():
    inp = _inputs(1, 21, H, P, 1, N, seed=12)
    y_full = sequential.scan(**inp)
    head = {k: (v[:, :20] if k in ("x", "dt", "B", "C") else v) for k, v in inp.items()}
    _, state = ssd.scan(**head, chunk_size=16, return_final_state=True)
    y_last = ssd.step(state, x=inp["x"][:, 20], dt=inp["dt"][:, 20], A=inp["A"], B=inp["B"][:, 20],
                      C=inp["C"][:, 20], D=inp["D"], dt_bias=inp["dt_bias"])
    assert _rel(y_last, y_full[:, 20]) <= 1e-4


def test_bad_inputs_are_reported():
    inp = _inputs(1, 10, H, P, 1, N, seed=13)
    with pytest.raises(SpecError):
        ssd.scan(**inp, chunk_size=0)
    with pytest.raises(ValueError, match="multiple of groups"):
        ssd.scan(**{**inp, "B": torch.randn(1, 10, 3, N), "C": torch.randn(1, 10, 3, N)}, chunk_size=16)


def test_device_error_without_gpu_or_interpreter():
    """Import works without a GPU; calling says what is missing and how to fix it."""
    code = textwrap.dedent("""
        import torch
        from ssmboard.errors import DeviceError
        from ssmboard.variants.triton import _launch, ssd, ssd_independent
        x = torch.randn(1, 4, 2, 16); dt = torch.randn(1, 4, 2); A = -torch.ones(2)
        B = torch.randn(1, 4, 1, 16)
        for call in (lambda: ssd.scan(x, dt, A, B, B, chunk_size=16),
                     lambda: ssd_independent.scan(x, dt, A, B, B, chunk_size=16),
                     lambda: ssd.step(torch.zeros(1, 2, 16, 16), x[:, 0], dt[:, 0], A, B[:, 0], B[:, 0])):
            try:
                call()
            except DeviceError as e:
                assert "GPU" in str(e) and "TRITON_INTERPRET=1" in str(e), str(e)
            else:
                raise SystemExit("no DeviceError")
        print("ok")
    """)
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["CUDA_VISIBLE_DEVICES"] = ""
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
    assert DeviceError  # imported for readers: the error family checked in the subprocess


# --------------------------------------------------------------------------- 2026-11-29
@pytest.mark.parametrize("L,g,nseg,block_l,block_l1,with_init", [
    (101, 2, 3, 16, 32, True),    # ragged last segment, state pass on its own (coarser) tile
    (97, 1, 4, 16, 16, False),    # no initial state
    (130, 2, 2, 32, 64, True),    # last segment shorter than one state-pass tile
    (300, 2, 2, 32, None, True),  # the default state-pass tile (128)
    (170, 2, 6, 16, 16, True),    # several earlier segments folded into each entering state
])
def test_segmented_exact_scan_forced(L, g, nseg, block_l, block_l1, with_init):
    """The segment-parallel exact scan (segment states, then outputs from entering states folded
    from them; the last segment's end state is the final state) against the float64 recurrence."""
    inp = _inputs(2, L, H, P, g, N, seed=L + nseg, D2=True)
    init = torch.randn(2, H, P, N, generator=torch.Generator().manual_seed(nseg)) if with_init else None
    cfg = dict(NSEG=nseg, BLOCK_L=block_l, BLOCK_L1=block_l1)
    c = _launch._scan_config(2, L, H, P, N, 64, False, False, cfg)
    block_l1 = block_l1 or _launch._BLOCK_L1
    assert -(-L // c.SEG) > 1 and c.SEG % block_l1 == 0 and c.BLOCK_L1 == block_l1
    y, fs = _launch.run_scan(**inp, chunk_size=64, initial_state=init, return_final_state=True, config=cfg)
    y_ref, fs_ref = sequential.scan(**inp, initial_state=init, return_final_state=True)
    assert _rel(y, y_ref) <= 1e-4 and _rel(fs, fs_ref) <= 1e-4
    assert _rel(_launch.run_scan(**inp, chunk_size=64, initial_state=init, config=cfg), y_ref) <= 1e-4


def test_segmented_rule_picks_segments_only_when_programs_are_few(monkeypatch):
    """Bamba's shape (h=128, p=64): b=1 long sequences are split, wide batches and short
    sequences are one launch; L only changes the segment count (a runtime argument)."""
    cfg = lambda b, L: _launch._scan_config(b, L, 128, 64, 128, 256, False, True, sms=132)
    one = lambda c, L: -(-L // c.SEG) == 1
    assert one(cfg(1, 1024), 1024) and one(cfg(1, 2048), 2048) and one(cfg(8, 8192), 8192)
    assert one(cfg(4, 32768), 32768)
    # the time model's choice: 2 segments keep both passes' waves full (256 programs on 2 x 132 slots)
    assert -(-8192 // cfg(1, 8192).SEG) == 2 and -(-32768 // cfg(1, 32768).SEG) == 2
    assert _launch._segment_cost(2, 128, 32768, 32, 128, 132) < _launch._segment_cost(5, 128, 32768, 32, 128, 132)
    for L in (4096, 8192, 32768, 32768 + 77):
        c = cfg(1, L)
        nseg = -(-L // c.SEG)
        assert 2 <= nseg and c.SEG >= _launch._MIN_SEG and c.SEG % c.BLOCK_L1 == 0 and c.SEG % c.BLOCK_L == 0
        assert (c.BLOCK_L, c.BLOCK_P, c.BLOCK_L1, c.num_warps) == (cfg(1, 8192).BLOCK_L, cfg(1, 8192).BLOCK_P,
                                                                 cfg(1, 8192).BLOCK_L1, cfg(1, 8192).num_warps)
    # independent chunks keep their own rule (segments of whole chunks)
    ci = _launch._scan_config(1, 32768, 128, 64, 128, 256, True, True, sms=132)
    assert ci.SEG % 256 == 0


def test_segmented_rule_end_to_end_at_tiny_shapes(monkeypatch):
    """The automatic rule, scaled down so that the interpreter takes the segmented path."""
    monkeypatch.setattr(_launch, "_MIN_SEG", 32)
    monkeypatch.setattr(_launch, "_BLOCK_L1", 32)
    monkeypatch.setattr(_launch, "_COST_LAUNCH", 0.0)  # at this size a launch would outweigh any split
    monkeypatch.setattr(_launch, "_COST_FOLD", 0.0)
    L = 6 * 32 + 7
    c = _launch._scan_config(1, L, H, P, N, 64, False, False, sms=132)
    assert -(-L // c.SEG) > 1
    inp = _inputs(1, L, H, P, 2, N, seed=21)
    init = torch.randn(1, H, P, N)
    y, fs = ssd.scan(**inp, chunk_size=64, initial_state=init, return_final_state=True)
    y_ref, fs_ref = sequential.scan(**inp, initial_state=init, return_final_state=True)
    assert _rel(y, y_ref) <= 1e-4 and _rel(fs, fs_ref) <= 1e-4


def test_decode_step_plan_cache():
    """The decode step caches its checks and launch arguments per (shapes, strides, dtypes,
    devices, options): views with other strides get their own plan, repeated calls reuse it,
    and bad inputs are still refused with a plan cached for good ones."""
    _launch._STEP_PLANS.clear()
    b, h, p, n, g = 2, H, P, N, 2
    inp = _inputs(b, 4, h, p, g, n, seed=30)
    state = torch.randn(b, h, p, n)
    ref = state.double().clone()
    big = torch.randn(b, 4, h, p + 3)  # x as a strided view
    for t in range(4):
        x = inp["x"][:, t] if t % 2 == 0 else big[:, t, :, :p].copy_(inp["x"][:, t])
        tok = dict(x=x, dt=inp["dt"][:, t], A=inp["A"], B=inp["B"][:, t], C=inp["C"][:, t],
                   D=inp["D"], dt_bias=inp["dt_bias"])
        y = ssd.step(state, **tok)
        assert _rel(y, sequential.step(ref, **tok)) <= 1e-5
    assert _rel(state, ref) <= 1e-5
    assert len(_launch._STEP_PLANS) == 2  # two stride patterns of x
    tok = dict(x=inp["x"][:, 0], dt=inp["dt"][:, 0], A=inp["A"], B=inp["B"][:, 0], C=inp["C"][:, 0])
    ssd.step(state, **tok)
    ssd.step(state, **tok, dt_limit=(0.0, 0.5))
    assert len(_launch._STEP_PLANS) == 4  # no D / bias, and another dt_limit: own plans
    with pytest.raises(ValueError, match="float32"):
        ssd.step(state.double(), **tok)
    with pytest.raises(ValueError, match="disagree"):
        ssd.step(state[:, :, :, :8], **tok)
    # an unhashable option still works (no caching)
    y1 = ssd.step(state.clone(), **tok, dt_limit=[0.0, 0.5])
    y2 = ssd.step(state.clone(), **tok, dt_limit=(0.0, 0.5))
    assert torch.equal(y1, y2)


# -- the fused causal conv + SiLU (prefill) -------------------------------------------------
@pytest.mark.parametrize("b, d, t, k, last, bias, silu", [
    (2, 200, 37, 4, 37, True, True),    # two channel blocks, ragged length
    (1, 130, 5, 4, 1, True, True),      # only the last position (a conv cache in front)
    (2, 64, 70, 3, 20, False, True),    # odd kernel width, window inside a longer context
    (1, 40, 3, 4, 3, True, False),      # shorter than the kernel: zero left padding
])
def test_causal_conv1d_matches_float64_conv(b, d, t, k, last, bias, silu):
    from ssmboard.variants.triton.conv import causal_conv1d

    gen = torch.Generator().manual_seed(b * 1000 + d + t)
    base = torch.randn(b, t, d + 7, generator=gen)
    x = base[:, :, 3:3 + d].transpose(1, 2)  # (b, d, t), strided as the projection's slice is
    w, bv = torch.randn(d, 1, k, generator=gen), (torch.randn(d, generator=gen) if bias else None)
    got = causal_conv1d(x, w, bv, last=last, silu=silu)
    ref = torch.nn.functional.conv1d(x.double(), w.double(), None if bv is None else bv.double(),
                                     padding=k - 1, groups=d)[..., :t]
    ref = (torch.nn.functional.silu(ref) if silu else ref)[..., t - last:].transpose(1, 2)
    assert got.shape == (b, last, d) and got.is_contiguous() and got.dtype == x.dtype
    assert (got.double() - ref).abs().max().item() < 1e-5
    half = causal_conv1d(x.bfloat16(), w.bfloat16(), None if bv is None else bv.bfloat16(), last=last, silu=silu)
    assert half.dtype == torch.bfloat16 and _rel(half, ref) < 1e-2
    with pytest.raises(ValueError, match="last"):
        causal_conv1d(x, w, bv, last=t + 1)


@torch.no_grad()
def test_triton_patched_model_matches_reference_prefill_and_decode():
    """The whole mixer with the triton backend (fused conv, scan, decode step) against the
    reference backend on the same tiny Bamba: logits through prefill and cached greedy decode."""
    import copy

    from test_model import _greedy, _prompt, tiny_bamba

    from ssmboard.variants.patch import apply_scan

    torch.manual_seed(0)
    base = tiny_bamba(n_groups=2)
    ref = apply_scan(copy.deepcopy(base), "reference")
    tri = apply_scan(copy.deepcopy(base), "triton")
    assert tri.model.layers[0].mamba._fused_conv is not None and ref.model.layers[0].mamba._fused_conv is None
    ids = _prompt(2 * 16 + 5, 3)
    assert (ref(ids).logits - tri(ids).logits).abs().max().item() < 1e-4
    seq_r, logits_r = _greedy(ref, ids, n=6)
    seq_t, logits_t = _greedy(tri, ids, n=6)
    assert torch.equal(seq_r, seq_t) and (logits_r - logits_t).abs().max().item() < 1e-4
