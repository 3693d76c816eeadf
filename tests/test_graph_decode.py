"""GraphDecoder on CPU: its eager step is the math a CUDA graph records, so it must match
transformers' own cached greedy decoding of the patched model token for token (float32).

The CUDA-graph capture itself needs a GPU: ``scripts/check_graph_decode.py`` checks it there.
"""
from __future__ import annotations

import copy

import pytest
import torch
import transformers

from ssmboard.errors import SsmboardError
from ssmboard.variants.graph_decode import GraphDecoder, attach, bucket_length, detach, generate
from ssmboard.variants.patch import apply_scan
from test_model import CHUNK, TOL, _greedy, _prompt, tiny_bamba

N = 16


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)  # tiny_bamba draws its conv weights from the global generator
    m = apply_scan(tiny_bamba(n_groups=2), "reference")
    assert [type(layer.self_attn).__name__ for layer in m.model.layers if hasattr(layer, "self_attn")]
    return m


def _batch(*lengths: int, seed: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded batch of prompts of the given lengths."""
    longest = max(lengths)
    rows, masks = [], []
    for j, n in enumerate(lengths):
        p = _prompt(n, seed + j)[0]
        rows.append(torch.cat([torch.zeros(longest - n, dtype=torch.long), p]))
        masks.append(torch.cat([torch.zeros(longest - n, dtype=torch.long), torch.ones(n, dtype=torch.long)]))
    return torch.stack(rows), torch.stack(masks)


def _check_against_transformers(model, ids, mask=None, n=N):
    want_seq, want_logits = _greedy(model, ids, mask, n=n)
    got_seq, got_logits = generate(model, ids, mask, max_new_tokens=n, return_logits=True)
    assert got_seq.shape == want_seq.shape == (ids.shape[0], ids.shape[1] + n)
    assert got_logits.shape == want_logits.shape
    assert (got_logits - want_logits).abs().max().item() <= TOL
    assert torch.equal(got_seq, want_seq)
    # the tokens really came from the decode loop: each one is the argmax of its step's logits
    eos = model.generation_config.eos_token_id
    assert torch.equal(got_seq[:, ids.shape[1]:], got_logits.index_fill(-1, torch.tensor([eos]), -1e9).argmax(-1))
    return got_seq


@torch.no_grad()
def test_batch_of_two_matches_transformers_greedy_decode(model):
    detach(model)
    ids, _ = _batch(3 * CHUNK + 5, 3 * CHUNK + 5)  # several chunks, not a multiple of the chunk
    assert ids.shape[1] % CHUNK
    _check_against_transformers(model, ids)


@torch.no_grad()
def test_eos_is_banned_by_default_and_ordinary_with_ban_eos_false(model):
    ids = _prompt(2 * CHUNK + 9, seed=60)
    free = generate(model, ids, max_new_tokens=N, ban_eos=False)
    eos = int(free[0, ids.shape[1] + 4])  # make the 5th greedy token the EOS token
    config = model.generation_config
    before = config.eos_token_id
    try:
        config.eos_token_id = eos
        # ban_eos=False: decoding runs on past EOS; transformers' plain greedy stops there
        assert torch.equal(generate(model, ids, max_new_tokens=N, ban_eos=False), free)
        stopped = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=N, do_sample=False,
                                 pad_token_id=0)
        assert stopped.shape[1] == ids.shape[1] + 5 and torch.equal(stopped[0], free[0, : ids.shape[1] + 5])
        # default: EOS is never picked, exactly as with min_new_tokens
        banned = _check_against_transformers(model, ids)
        assert not (banned[0, ids.shape[1]:] == eos).any()
        assert torch.equal(banned[0, : ids.shape[1] + 4], free[0, : ids.shape[1] + 4])
    finally:
        config.eos_token_id = before


@torch.no_grad()
def test_left_padded_batch_matches_transformers_and_each_prompt_alone(model):
    ids, mask = _batch(3 * CHUNK + 5, CHUNK + 7, seed=20)
    seq = _check_against_transformers(model, ids, mask)
    pad = 2 * CHUNK - 2
    alone = generate(model, ids[1:, pad:], max_new_tokens=N)
    assert torch.equal(seq[1, pad:], alone[0])


@torch.no_grad()
def test_successive_calls_reuse_the_decoder_and_stay_right(model):
    detach(model)
    first = _prompt(2 * CHUNK + 3, seed=30)
    _check_against_transformers(model, first)
    decoders = dict(model._ssmboard_graph_decoders)
    assert len(decoders) == 1
    (decoder,) = decoders.values()
    assert decoder.max_len == bucket_length(first.shape[1] + N) == 64
    second = _prompt(2 * CHUNK + 13, seed=31)  # another length, same bucket: the same decoder
    _check_against_transformers(model, second)
    assert dict(model._ssmboard_graph_decoders) == decoders
    assert attach(model, 1, second.shape[1] + N) is decoder
    assert decoder.host_pos == second.shape[1] + N - 1
    assert int(decoder.pos) == decoder.host_pos
    # a longer request takes a new bucket (a second decoder), and is right too
    third = _prompt(5 * CHUNK + 9, seed=32)
    _check_against_transformers(model, third)
    assert sorted(d.max_len for d in model._ssmboard_graph_decoders.values()) == [64, 128]
    # once more at the first length: the first decoder, its buffers reloaded
    _check_against_transformers(model, first)
    assert attach(model, 1, first.shape[1] + N) is decoder


@torch.no_grad()
def test_step_by_step_state_follows_the_prefill_cache(model):
    """Loading a prefill then stepping equals prefilling the longer prompt."""
    ids = _prompt(2 * CHUNK + 5, seed=40)
    dec = GraphDecoder(model, 1, 64)
    out = model(ids, use_cache=True)
    from ssmboard.variants.graph_decode import _output_cache, prefill

    dec.load(_output_cache(out), ids, None, out.logits[:, -1].argmax(-1))
    dec.advance(3)
    longer = dec.tokens[:, : ids.shape[1] + 4]
    cache, last = prefill(model, longer[:, :-1], None)
    assert (last - dec.logits).abs().max().item() <= TOL  # logits of the last step
    for i in dec.ssm:  # the recurrent state after the same tokens
        from ssmboard.variants.graph_decode import _hf_mamba_states

        conv, ssm = _hf_mamba_states(cache, i)
        assert (dec.ssm[i] - ssm.float()).abs().max().item() <= TOL
        assert (dec.conv[i] - conv).abs().max().item() <= TOL
    for i in dec.k:
        from ssmboard.variants.graph_decode import _hf_kv

        k, _ = _hf_kv(cache, i)
        assert (dec.k[i][:, :, : k.shape[2]] - k).abs().max().item() <= TOL
    with pytest.raises(SsmboardError, match="would pass"):
        dec.advance(64)


@torch.no_grad()
def test_model_changes_rebuild_and_copies_start_empty(model):
    other = copy.deepcopy(model)
    generate(other, _prompt(CHUNK + 3, seed=50), max_new_tokens=4)
    held = other._ssmboard_graph_decoders
    assert len(held) == 1
    assert len(copy.deepcopy(other)._ssmboard_graph_decoders) == 0
    apply_scan(other, "sequential")  # another decode step: a captured graph would be stale
    _check_against_transformers(other, _prompt(CHUNK + 3, seed=51), n=6)
    assert other._ssmboard_graph_decoders is not held


def test_unsupported_models_and_inputs_are_refused(model):
    llama = transformers.LlamaForCausalLM(transformers.LlamaConfig(
        vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2))
    with pytest.raises(SsmboardError, match=r"BambaForCausalLM.*'llama'"):
        generate(llama, torch.tensor([[1, 2, 3]]), max_new_tokens=2)
    with pytest.raises(SsmboardError, match="apply_scan"):
        generate(tiny_bamba(), torch.tensor([[5, 6, 7]]), max_new_tokens=2)  # transformers' own mixers
    ids, mask = _batch(CHUNK, CHUNK - 3)
    with pytest.raises(SsmboardError, match="right padding"):
        generate(model, ids, mask.flip(-1), max_new_tokens=2)
    with pytest.raises(SsmboardError, match="max_new_tokens"):
        generate(model, ids, max_new_tokens=0)
    with pytest.raises(SsmboardError, match="CUDA"):
        GraphDecoder(model, 1, 64, use_graph=True)


def test_bucket_lengths():
    assert [bucket_length(n) for n in (1, 64, 65, 528, 640, 1024, 1025)] == [64, 64, 128, 1024, 1024, 1024, 2048]


@torch.no_grad()
def test_one_new_token_is_the_prefills_and_builds_no_decoder(model):
    detach(model)
    ids, mask = _batch(2 * CHUNK + 3, CHUNK + 1, seed=40)
    got = _check_against_transformers(model, ids, mask, n=1)
    assert got.shape == (2, ids.shape[1] + 1)
    assert not getattr(model, "_ssmboard_graph_decoders", None)  # time to first token: no decoder state built


# -- the fused Triton step (ssmboard.variants.triton.decode), on Triton's CPU interpreter ----------
@pytest.fixture()
def triton_model(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    torch.manual_seed(0)
    return apply_scan(tiny_bamba(n_groups=2), "triton")


@torch.no_grad()
def test_fused_step_matches_transformers_greedy_decode(triton_model):
    from ssmboard.variants.graph_decode import fusable

    assert fusable(triton_model)
    ids = _prompt(2 * CHUNK + 5, seed=70)  # ragged: the conv ring starts at an odd slot
    _check_against_transformers(triton_model, ids, n=10)
    (decoder,) = triton_model._ssmboard_graph_decoders.values()
    assert decoder.fused


@torch.no_grad()
def test_fused_step_left_padded_batch(triton_model):
    ids, mask = _batch(2 * CHUNK + 3, CHUNK + 6, seed=71)  # groups 2, rows of different lengths
    _check_against_transformers(triton_model, ids, mask, n=8)


@torch.no_grad()
def test_fused_and_unfused_steps_agree_state_for_state(triton_model):
    """The fused step keeps the conv inputs as a ring; read back in transformers' order, every
    state equals the unfused step's (the model's own modules) after the same tokens."""
    from ssmboard.variants.graph_decode import _output_cache
    from ssmboard.variants.triton.decode import conv_state_from_ring

    ids = _prompt(CHUNK + 2, seed=72)
    out = triton_model(ids, use_cache=True)
    first = out.logits[:, -1].argmax(-1)
    fused, plain = GraphDecoder(triton_model, 1, 64, fused=True), GraphDecoder(triton_model, 1, 64, fused=False)
    assert fused.fused and not plain.fused
    for dec in (fused, plain):
        dec.load(_output_cache(out), ids, None, first)
        dec.advance(5)
    assert torch.equal(fused.tokens, plain.tokens)
    assert (fused.logits - plain.logits).abs().max().item() <= TOL
    for i in plain.conv:
        assert (conv_state_from_ring(fused.conv[i], fused.host_pos) - plain.conv[i]).abs().max().item() <= TOL
        assert (fused.ssm[i] - plain.ssm[i]).abs().max().item() <= TOL
    for i in plain.k:
        assert (fused.k[i] - plain.k[i]).abs().max().item() <= TOL
        assert (fused.v[i] - plain.v[i]).abs().max().item() <= TOL


def test_fused_step_is_refused_without_triton_backend(model):
    from ssmboard.variants.graph_decode import fusable

    assert not fusable(model)  # reference scan
    with pytest.raises(SsmboardError, match="fused"):
        GraphDecoder(model, 1, 64, fused=True)


def test_fused_kernels_alone(monkeypatch):
    """argmax with banned ids and first-index ties; the Mamba step with groups, no conv bias and
    a dt limit against PyTorch in float64 terms; the conv ring round trip."""
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    import torch.nn.functional as F

    from ssmboard.variants.triton import decode

    gen = torch.Generator().manual_seed(3)
    b, V = 3, 4500
    logits = torch.randn(b, V, generator=gen)
    logits[2, 17] = logits[2, 3000] = logits[2].max() + 1  # a tie: the first index wins
    banned = torch.zeros(V, dtype=torch.bool)
    banned[logits[0].argmax()] = True
    tokens = torch.zeros(b, 9, dtype=torch.long)
    pos = torch.tensor([5])
    decode.argmax_into(logits, banned, tokens, pos, decode.argmax_scratch(b, V, "cpu"))
    assert torch.equal(tokens[:, 6], logits.masked_fill(banned, float("-inf")).argmax(-1))
    assert tokens[2, 6] == 17 and not tokens[:, :6].any() and not tokens[:, 7:].any()

    h, p, g, n, k, L = 6, 8, 3, 16, 4, 2  # a prompt shorter than the conv
    i = h * p
    c = i + 2 * g * n
    proj = torch.randn(b, 2 * i + 2 * g * n + h, generator=gen)
    w = torch.randn(c, 1, k, generator=gen)
    conv_state = torch.randn(b, c, k, generator=gen)
    ring = decode.ring_from_conv_state(conv_state, L).contiguous()
    state = torch.randn(b, h, p, n, generator=gen)
    A_log, D, dt_bias = torch.randn(h, generator=gen), torch.randn(h, p, generator=gen), torch.randn(h, generator=gen)
    want_state = state.double()
    y = torch.empty(b, h * p)
    limit = (0.05, 0.6)
    decode.mamba_step(proj, ring, w, None, torch.tensor([L]), state, A_log, D, dt_bias, y, heads=h, head_dim=p,
                      groups=g, d_state=n, intermediate=i, dt_limit=limit)
    _, xBC, dt = proj.double().split([i, c, h], -1)
    full = torch.cat([conv_state.double(), xBC[:, :, None]], -1)
    act = F.silu(F.conv1d(full, w.double(), None, groups=c)[:, :, -1])
    x, B, C = act.split([i, g * n, g * n], -1)
    dtv = F.softplus(dt + dt_bias.double()).clamp(*limit)
    x = x.view(b, h, p)
    B, C = (t.view(b, g, n).repeat_interleave(h // g, 1) for t in (B, C))
    want_state = want_state * torch.exp(-dtv * torch.exp(A_log.double()))[:, :, None, None] \
        + (dtv[:, :, None] * x)[..., None] * B[:, :, None, :]
    want_y = (want_state * C[:, :, None, :]).sum(-1) + D.double()[None] * x
    assert (state.double() - want_state).abs().max().item() <= 1e-4
    assert (y.view(b, h, p).double() - want_y).abs().max().item() <= 1e-4
    assert torch.equal(decode.conv_state_from_ring(ring, L + 1), full[:, :, 1:].float())


def test_split_attention_matches_sdpa(monkeypatch):
    """Flash-decoding over the static cache: grouped queries, a left-padded row, a token slot
    that is not on a split boundary, a cache longer than one split, garbage past the slot."""
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    import torch.nn.functional as F

    from ssmboard.variants.triton import decode

    gen = torch.Generator().manual_seed(5)
    b, heads, kv, d, max_len = 2, 6, 2, 24, 2 * decode.ATTN_SPLIT + 64
    q = torch.randn(b, heads, d, generator=gen)
    kc = torch.randn(b, kv, max_len, d, generator=gen)
    vc = torch.randn(b, kv, max_len, d, generator=gen)
    kc[:, :, 200:] = float("nan")  # slots past the token are never read
    pos = torch.tensor([decode.ATTN_SPLIT + 71])
    valid = torch.ones(b, max_len, dtype=torch.bool)
    valid[1, :9] = False  # left padding of row 1
    out = torch.empty(b, heads, d)
    decode.attend(q, kc, vc, valid, pos, out, decode.attention_scratch(b, heads, max_len, d, "cpu"), scale=0.3)
    n = int(pos) + 1
    rep = heads // kv
    want = F.scaled_dot_product_attention(q.view(b, kv, rep, d), kc[:, :, :n], vc[:, :, :n],
                                          attn_mask=valid[:, None, None, :n], scale=0.3).reshape(b, heads, d)
    assert (out - want).abs().max().item() <= 1e-5
