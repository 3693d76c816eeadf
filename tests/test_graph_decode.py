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
