"""Every PyTorch scan backend against the float64 recurrence, on fresh random inputs."""
from __future__ import annotations

import pytest
import torch

from ssmboard.errors import SpecError, UnknownBackendError
from ssmboard.variants import get_backend, get_scan, get_step, list_scans


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-30)).item()


def make(b, L, h, p, g, n, *, seed, dtype=torch.float32, D_per_channel=False):
    gen = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=gen, dtype=torch.float64)
    inp = dict(x=r(b, L, h, p), dt=r(b, L, h) - 0.5, A=-torch.exp(r(h)), B=r(b, L, g, n), C=r(b, L, g, n))
    kw = dict(D=r(h, p) if D_per_channel else r(h), dt_bias=r(h) * 0.3, initial_state=r(b, h, p, n))
    return {k: v.to(dtype) for k, v in inp.items()}, kw


def truth(inp, kw, **extra):
    args = {k: v.double() for k, v in inp.items()}
    kw = {k: (v.double() if torch.is_tensor(v) else v) for k, v in {**kw, **extra}.items()}
    return get_scan("sequential")(**args, chunk_size=1, return_final_state=True, **kw)


SEED = [0]


def fresh_seed() -> int:
    SEED[0] += 1
    return int(torch.randint(0, 2**31 - 1, (1,)).item()) ^ SEED[0]


@pytest.mark.parametrize("chunk", [8, 16, 64, 256])
@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("with_state", [False, True])
def test_reference_matches_recurrence(chunk, groups, with_state):
    scan = get_scan("reference")
    lengths = [1, chunk - 1, chunk, 3 * chunk + 5] if chunk <= 64 else [1, chunk - 1, chunk + 5]
    for L in lengths:
        if L < 1:
            continue
        inp, kw = make(2, L, 4, 3, groups, 5, seed=fresh_seed(), D_per_channel=(L % 2 == 0))
        if not with_state:
            kw["initial_state"] = None
        y0, s0 = truth(inp, kw)
        y, s = scan(**inp, chunk_size=chunk, return_final_state=True, **kw)
        assert y.dtype == torch.float32 and s.dtype == torch.float32
        assert y.shape == inp["x"].shape and s.shape == (2, 4, 3, 5)
        assert rel(y, y0) <= 1e-5, (L, rel(y, y0))
        assert rel(s, s0) <= 1e-5, (L, rel(s, s0))


def test_reference_with_dt_limit_and_no_softplus():
    inp, kw = make(1, 45, 4, 2, 2, 3, seed=fresh_seed())
    inp["dt"] = inp["dt"].abs()
    extra = dict(dt_softplus=False, dt_limit=(0.05, 0.8))
    y0, s0 = truth(inp, kw, **extra)
    y, s = get_scan("reference")(**inp, chunk_size=16, return_final_state=True, **kw, **extra)
    assert rel(y, y0) <= 1e-5 and rel(s, s0) <= 1e-5


def test_reference_bfloat16_inputs_accumulate_in_float32():
    inp, kw = make(1, 70, 4, 8, 1, 8, seed=fresh_seed(), dtype=torch.bfloat16)
    y0, _ = truth(inp, kw)
    y = get_scan("reference")(**inp, chunk_size=32, **kw)
    assert y.dtype == torch.bfloat16
    assert rel(y, y0) <= 1e-2


def test_independent_exact_in_first_chunk_and_different_after():
    chunk = 16
    inp, kw = make(2, 3 * chunk + 5, 4, 3, 2, 5, seed=fresh_seed())
    y0, _ = truth(inp, kw)
    y = get_scan("independent")(**inp, chunk_size=chunk, **kw)
    assert rel(y[:, :chunk], y0[:, :chunk]) <= 1e-5
    assert rel(y[:, chunk:], y0[:, chunk:]) > 1e-3
    # and each later chunk equals the exact scan of that chunk alone from a zero state
    for c0 in range(chunk, inp["x"].shape[1], chunk):
        part = {k: (v[:, c0:c0 + chunk] if k not in ("A",) else v) for k, v in inp.items()}
        yc, _ = truth(part, {**kw, "initial_state": None})
        assert rel(y[:, c0:c0 + chunk], yc) <= 1e-5


def test_independent_final_state_is_last_chunk_alone():
    chunk = 8
    inp, kw = make(1, 21, 2, 2, 1, 3, seed=fresh_seed())
    _, s = get_scan("independent")(**inp, chunk_size=chunk, return_final_state=True, **kw)
    part = {k: (v[:, 16:] if k != "A" else v) for k, v in inp.items()}
    _, s_last = truth(part, {**kw, "initial_state": None})
    assert rel(s, s_last) <= 1e-5


@pytest.mark.parametrize("name", ["sequential", "reference", "independent"])
def test_causal(name):
    chunk, L, t = 8, 29, 13
    inp, kw = make(1, L, 2, 3, 1, 4, seed=fresh_seed())
    y = get_scan(name)(**inp, chunk_size=chunk, **kw)
    for key in ("x", "dt", "B", "C"):
        bumped = dict(inp)
        bumped[key] = inp[key].clone()
        bumped[key][:, t] += 1.0
        y2 = get_scan(name)(**bumped, chunk_size=chunk, **kw)
        assert torch.equal(y2[:, :t], y[:, :t]), key
        assert not torch.allclose(y2[:, t:], y[:, t:]), key


@pytest.mark.parametrize("name", ["sequential", "reference", "independent"])
@pytest.mark.parametrize("groups", [1, 2])
def test_decode_step_matches_recurrence(name, groups):
    L = 11
    inp, kw = make(3, L, 4, 3, groups, 5, seed=fresh_seed(), D_per_channel=groups == 2)
    y0, s0 = truth(inp, kw)
    state = kw["initial_state"].clone().float()
    step = get_step(name)
    ys = [step(state, inp["x"][:, t], inp["dt"][:, t], inp["A"], inp["B"][:, t], inp["C"][:, t],
               D=kw["D"], dt_bias=kw["dt_bias"]) for t in range(L)]
    assert rel(torch.stack(ys, 1), y0) <= 1e-5
    assert rel(state, s0) <= 1e-5


def test_prefill_then_decode_continues_the_scan():
    chunk, L = 16, 40
    inp, kw = make(1, L, 4, 3, 2, 5, seed=fresh_seed())
    y0, _ = truth(inp, kw)
    pre = {k: (v[:, :33] if k != "A" else v) for k, v in inp.items()}
    y, state = get_scan("reference")(**pre, chunk_size=chunk, return_final_state=True, **kw)
    step = get_step("reference")
    ys = [step(state, inp["x"][:, t], inp["dt"][:, t], inp["A"], inp["B"][:, t], inp["C"][:, t],
               D=kw["D"], dt_bias=kw["dt_bias"]) for t in range(33, L)]
    assert rel(torch.cat([y, torch.stack(ys, 1)], 1), y0) <= 1e-5


def test_reference_block_boundaries(monkeypatch):
    """Blocks of chunks (the memory bound) must not change the answer."""
    import ssmboard.variants.scans.reference as ref
    inp, kw = make(2, 77, 4, 3, 2, 5, seed=fresh_seed())
    y0, s0 = truth(inp, kw)
    monkeypatch.setattr(ref, "BLOCK_ELEMENTS", 1)  # one chunk per block
    y, s = ref.scan(**inp, chunk_size=8, return_final_state=True, **kw)
    assert rel(y, y0) <= 1e-5 and rel(s, s0) <= 1e-5


def test_reference_gradients_flow():
    inp, kw = make(1, 20, 2, 2, 1, 3, seed=fresh_seed())
    inp = {k: v.requires_grad_() for k, v in inp.items()}
    y = get_scan("reference")(**inp, chunk_size=8, **kw)
    y.square().sum().backward()
    assert all(torch.isfinite(v.grad).all() and v.grad.abs().sum() > 0 for v in inp.values())


def test_reference_under_torch_compile():
    inp, kw = make(1, 37, 4, 3, 2, 5, seed=fresh_seed())
    scan = get_scan("reference")
    fn = torch.compile(lambda **a: scan(**a, chunk_size=16, return_final_state=True), fullgraph=True)
    y, s = fn(**inp, **kw)
    y0, s0 = truth(inp, kw)
    assert rel(y, y0) <= 1e-5 and rel(s, s0) <= 1e-5


def test_catalogue_names_and_errors():
    assert {"sequential", "reference", "independent", "triton", "triton-independent"} <= set(list_scans())
    assert get_backend("independent").exact is False and get_backend("reference").exact
    with pytest.raises(UnknownBackendError, match="not registered in this process \(known: .*reference"):
        get_scan("nope")
    inp, kw = make(1, 5, 2, 2, 1, 3, seed=1)
    for bad in (0, -8, 2.5, True):
        with pytest.raises(SpecError, match="chunk_size"):
            get_scan("reference")(**inp, chunk_size=bad)
    with pytest.raises(ValueError, match="multiple of groups"):
        x = inp["x"].repeat(1, 1, 1, 1)
        get_scan("reference")(x, inp["dt"], inp["A"], inp["B"].repeat(1, 1, 3, 1), inp["C"].repeat(1, 1, 3, 1), chunk_size=4)
