"""Applying a scan backend to real transformers models (CPU, tiny random configs).

The oracle is the unpatched transformers model itself (its torch path): with the exact
``reference`` backend the patched model must give the same logits, through the prompt and
through cached decoding, and honour left padding the same way. Weights are re-drawn larger
than transformers' init so that the SSM state visibly carries information across chunks
(with the default 0.02 init, even independent chunks change the logits by ~1e-6).
"""
from __future__ import annotations

import copy
import inspect
import json
import time

import pytest
import torch
import transformers

from ssmboard.errors import ModelLoadError, SsmboardError, UnknownBackendError
from ssmboard.registry.spec import VariantSpec
from ssmboard.variants.build import build
from ssmboard.variants.loading import load_model, resolve_config, truncate_config
from ssmboard.variants.patch import apply_scan, patched_mixers

CHUNK = 16
VOCAB = 200
TOL = 1e-4


def _spice(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Weights large enough that the recurrent state matters; slow decays so it lives long."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, torch.nn.Linear):
                mod.weight.copy_(torch.randn(mod.weight.shape, generator=g) * (0.6 / mod.in_features ** 0.5))
            elif isinstance(mod, torch.nn.Embedding):
                mod.weight.copy_(torch.randn(mod.weight.shape, generator=g))
            if hasattr(mod, "A_log") and hasattr(mod, "dt_bias"):
                mod.A_log.copy_(torch.empty(mod.A_log.shape).uniform_(-4, -1, generator=g))
                mod.dt_bias.copy_(torch.empty(mod.dt_bias.shape).uniform_(-1, 1, generator=g))
                mod.D.copy_(0.1 * torch.randn(mod.D.shape, generator=g))
    return model.eval()


def _common() -> dict:
    return dict(vocab_size=VOCAB, hidden_size=64, max_position_embeddings=512,
                pad_token_id=0, bos_token_id=1, eos_token_id=2, tie_word_embeddings=False)


def tiny_bamba(n_groups: int = 2) -> torch.nn.Module:
    cfg = transformers.BambaConfig(**_common(), intermediate_size=128, num_hidden_layers=3, attn_layer_indices=[1],
                                   num_attention_heads=4, num_key_value_heads=2, mamba_n_heads=8, mamba_d_head=16,
                                   mamba_n_groups=n_groups, mamba_d_state=16, mamba_chunk_size=CHUNK)
    return _spice(transformers.BambaForCausalLM(cfg))


def tiny_mamba2() -> torch.nn.Module:
    cfg = transformers.Mamba2Config(**_common(), num_hidden_layers=2, num_heads=8, head_dim=16, expand=2,
                                    state_size=16, n_groups=1, chunk_size=CHUNK, conv_kernel=4)
    return _spice(transformers.Mamba2ForCausalLM(cfg))


def tiny_granite() -> torch.nn.Module:
    cfg = transformers.GraniteMoeHybridConfig(
        **_common(), intermediate_size=128, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2,
        layer_types=["mamba", "attention", "mamba"], num_local_experts=0, shared_intermediate_size=128,
        mamba_n_heads=4, mamba_d_head=32, mamba_n_groups=2, mamba_d_state=16, mamba_chunk_size=CHUNK)
    return _spice(transformers.GraniteMoeHybridForCausalLM(cfg))


def tiny_falcon_h1(rms_norm: bool) -> torch.nn.Module:
    cfg = transformers.FalconH1Config(
        **_common(), intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        mamba_d_ssm=128, mamba_n_heads=8, mamba_d_head=16, mamba_n_groups=1, mamba_d_state=16,
        mamba_chunk_size=CHUNK, mamba_rms_norm=rms_norm, ssm_in_multiplier=0.7)
    return _spice(transformers.FalconH1ForCausalLM(cfg))


def tiny_zamba2() -> torch.nn.Module:
    cfg = transformers.Zamba2Config(
        **_common(), num_hidden_layers=3, layers_block_type=["mamba", "hybrid", "mamba"], mamba_d_state=16,
        n_mamba_heads=4, mamba_ngroups=1, chunk_size=CHUNK, num_attention_heads=4, num_key_value_heads=4,
        intermediate_size=128, adapter_rank=8, use_mamba_kernels=False)
    return _spice(transformers.Zamba2ForCausalLM(cfg))


def tiny_nemotron_h() -> torch.nn.Module:
    cfg = transformers.NemotronHConfig(
        **_common(), num_hidden_layers=3, layers_block_type=["mamba", "attention", "mamba"],
        num_attention_heads=4, num_key_value_heads=2, head_dim=16, intermediate_size=128, ssm_state_size=16,
        mamba_num_heads=8, mamba_head_dim=16, n_groups=2, chunk_size=CHUNK, use_mamba_kernels=False)
    return _spice(transformers.NemotronHForCausalLM(cfg))


FAMILIES = {
    "bamba-g2": tiny_bamba,
    "bamba-g1": lambda: tiny_bamba(1),
    "mamba2": tiny_mamba2,
    "granitemoehybrid": tiny_granite,
    "falcon_h1": lambda: tiny_falcon_h1(True),
    "falcon_h1-nonorm": lambda: tiny_falcon_h1(False),
    "zamba2": tiny_zamba2,
    "nemotron_h": tiny_nemotron_h,
}


def _prompt(length: int, seed: int) -> torch.Tensor:
    return torch.randint(3, VOCAB, (1, length), generator=torch.Generator().manual_seed(seed))


def _greedy(model, ids, mask=None, n=16, use_cache=True):
    out = model.generate(ids, attention_mask=mask if mask is not None else torch.ones_like(ids),
                         max_new_tokens=n, min_new_tokens=n, do_sample=False, use_cache=use_cache,
                         output_logits=True, return_dict_in_generate=True, pad_token_id=0)
    return out.sequences, torch.stack(out.logits, dim=1)


@pytest.fixture(params=sorted(FAMILIES))
def pair(request):
    base = FAMILIES[request.param]()
    return request.param, base, apply_scan(copy.deepcopy(base), "reference")


@torch.no_grad()
def test_reference_reproduces_transformers_prefill_and_cached_decode(pair):
    name, base, patched = pair
    assert len(patched_mixers(patched)) >= 1 and not patched_mixers(base)
    ids = _prompt(3 * CHUNK + 5, seed=1)
    want, got = base(ids).logits, patched(ids).logits
    assert (want - got).abs().max().item() <= TOL, name
    seq_w, log_w = _greedy(base, ids)
    seq_g, log_g = _greedy(patched, ids)
    assert log_g.shape[1] == 16
    assert (log_w - log_g).abs().max().item() <= TOL, name
    assert torch.equal(seq_w, seq_g)


@torch.no_grad()
@pytest.mark.parametrize("family", ["bamba-g2", "mamba2"])
def test_generate_without_cache_matches_cached(family):
    patched = apply_scan(FAMILIES[family](), "reference")
    ids = _prompt(2 * CHUNK + 3, seed=2)
    seq_c, log_c = _greedy(patched, ids, n=6, use_cache=True)
    seq_u, log_u = _greedy(patched, ids, n=6, use_cache=False)
    assert torch.equal(seq_c, seq_u)
    assert (log_c - log_u).abs().max().item() <= TOL


@torch.no_grad()
@pytest.mark.parametrize("family", ["bamba-g2", "mamba2", "nemotron_h"])
def test_left_padded_batch_matches_each_prompt_alone(family):
    base = FAMILIES[family]()
    patched = apply_scan(copy.deepcopy(base), "reference")
    long, short = _prompt(3 * CHUNK + 5, seed=3)[0], _prompt(CHUNK + 7, seed=4)[0]
    pad = len(long) - len(short)
    ids = torch.stack([long, torch.cat([torch.zeros(pad, dtype=torch.long), short])])
    mask = torch.ones_like(ids)
    mask[1, :pad] = 0
    batch = patched(ids, attention_mask=mask).logits
    alone_long = patched(long[None]).logits[0]
    alone_short = patched(short[None]).logits[0]
    assert (batch[0] - alone_long).abs().max().item() <= TOL
    assert (batch[1, pad:] - alone_short).abs().max().item() <= TOL
    # the padded batch through transformers' own mixers agrees too
    assert (base(ids, attention_mask=mask).logits[:, -1] - batch[:, -1]).abs().max().item() <= TOL
    seq_b, log_b = _greedy(patched, ids, mask, n=8)
    seq_s, log_s = _greedy(patched, short[None], n=8)
    seq_l, _ = _greedy(patched, long[None], n=8)
    assert torch.equal(seq_b[1, pad:], seq_s[0]) and torch.equal(seq_b[0], seq_l[0])
    assert (log_b[1] - log_s[0]).abs().max().item() <= TOL


@torch.no_grad()
@pytest.mark.parametrize("family", ["bamba-g2", "mamba2"])
def test_chunked_prefill_on_a_cache_uses_the_state(family):
    """A second multi-token forward on a filled cache equals one long prefill."""
    patched = apply_scan(FAMILIES[family](), "reference")
    ids = _prompt(3 * CHUNK + 5, seed=5)
    full = patched(ids).logits
    cut = CHUNK + 3
    first = patched(ids[:, :cut], use_cache=True)
    # transformers 5.2x calls it ``cache``; 5.17 ``past_key_values`` (Bamba) or ``cache_params`` (Mamba2)
    params = inspect.signature(patched.forward).parameters
    key = next(k for k in ("cache", "past_key_values", "cache_params") if k in params)
    cache = first[key] if key in first else first.get("cache_params")
    kwargs = {key: cache, "use_cache": True}
    if family.startswith("bamba"):
        kwargs["position_ids"] = torch.arange(cut, ids.shape[1])[None]
    second = patched(ids[:, cut:], **kwargs).logits
    assert (torch.cat([first.logits, second], dim=1) - full).abs().max().item() <= TOL


@torch.no_grad()
def test_two_variants_in_one_process_and_the_original_is_untouched():
    from transformers.models.bamba.modeling_bamba import BambaMixer

    forward_before = BambaMixer.forward
    base = tiny_bamba()
    ids = _prompt(3 * CHUNK + 5, seed=6)
    before = base(ids).logits.clone()
    ref = apply_scan(copy.deepcopy(base), "reference")
    ind = apply_scan(copy.deepcopy(base), "independent")
    y_ref, y_ind = ref(ids).logits, ind(ids).logits
    # independent chunks: exact in the first chunk, different after it
    assert (y_ref[:, :CHUNK] - y_ind[:, :CHUNK]).abs().max().item() <= TOL
    assert (y_ref[:, CHUNK:] - y_ind[:, CHUNK:]).abs().max().item() > 1e-3
    assert torch.equal(base(ids).logits, before)
    assert BambaMixer.forward is forward_before
    assert all(isinstance(layer.mamba, BambaMixer) for layer in base.model.layers if hasattr(layer, "mamba"))
    # the patched mixer reuses the model's own parameters (shared, not copied)
    fresh = copy.deepcopy(base)
    w = fresh.model.layers[0].mamba.in_proj.weight
    apply_scan(fresh, "reference")
    assert fresh.model.layers[0].mamba.in_proj.weight is w
    assert set(fresh.state_dict()) == set(base.state_dict())
    # re-applying swaps the backend
    apply_scan(ref, "independent")
    assert torch.equal(ref(ids).logits, y_ind)


def test_chunk_size_and_step_choice():
    model = apply_scan(tiny_bamba(), "reference", chunk_size=8, step="sequential")
    mixers = patched_mixers(model)
    assert mixers and all(m.chunk_size == 8 for m in mixers)
    from ssmboard.variants.scans import sequential

    assert all(m._step is sequential.step for m in mixers)
    assert all(m.chunk_size == CHUNK for m in patched_mixers(apply_scan(tiny_bamba(), "reference")))


def test_unknown_backend_and_unsupported_model_are_refused():
    with pytest.raises(UnknownBackendError):
        apply_scan(tiny_bamba(), "no-such-scan")
    llama = transformers.LlamaForCausalLM(transformers.LlamaConfig(
        vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2))
    with pytest.raises(SsmboardError, match=r"'llama'.*bamba.*mamba2"):
        apply_scan(llama, "reference")
    mamba1 = transformers.MambaForCausalLM(transformers.MambaConfig(
        vocab_size=64, hidden_size=32, num_hidden_layers=1, state_size=4))
    with pytest.raises(SsmboardError, match=r"'mamba'.*Supported"):
        apply_scan(mamba1, "reference")


def _spec(**kw):
    return VariantSpec(name="t-build", **kw)


def _build(**kw):
    built = build(_spec(**kw))
    assert built.spec == _spec(**kw) and built.chunk_size == (kw.get("chunk_size") or built.model.config.mamba_chunk_size)
    return built.model, built.tokenizer


@torch.no_grad()
def test_build_embedded_tiny_bamba_n_layers_and_generate():
    full, _ = _build(scan="independent")
    n_full = full.config.num_hidden_layers
    first_attn = full.config.attn_layer_indices[0]
    assert len(full.model.layers) == n_full > first_attn + 1
    assert full.config.layers_block_type[first_attn] == "full_attention"
    model, tok = _build(n_layers=first_attn + 1, chunk_size=32)
    assert model.config.num_hidden_layers == first_attn + 1 == len(model.model.layers)
    assert list(model.config.attn_layer_indices) == [first_attn]
    assert all(m.chunk_size == 32 and m.scan_name == "reference" for m in patched_mixers(model))
    assert len(patched_mixers(model)) == first_attn and not model.training
    enc = tok(["hello there", "a longer prompt, padded on the left"], return_tensors="pt", padding=True)
    out = model.generate(**enc, max_new_tokens=5, do_sample=False)
    assert out.shape == (2, enc.input_ids.shape[1] + 5)
    # the same spec twice: the same weights
    again, _ = _build(n_layers=first_attn + 1, chunk_size=32)
    assert torch.equal(again.model.layers[0].mamba.in_proj.weight, model.model.layers[0].mamba.in_proj.weight)
    # a Bamba slice without its attention layer cannot use transformers' cache: clear error, or no cache
    with pytest.raises(ModelLoadError, match="no attention layer"):
        _build(n_layers=first_attn)
    no_cache, _ = _build(n_layers=first_attn, use_cache=False)
    assert no_cache.generate(enc.input_ids[:1], max_new_tokens=3, do_sample=False, use_cache=False).shape[1] == \
        enc.input_ids.shape[1] + 3


def test_build_casts_dtype():
    model, _ = _build(n_layers=4, dtype="bfloat16")
    assert model.model.layers[0].mamba.in_proj.weight.dtype == torch.bfloat16
    out = model(torch.tensor([[5, 6, 7, 8]])).logits
    assert out.dtype == torch.bfloat16 and torch.isfinite(out.float()).all()


def test_model_load_errors(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(str(tmp_path / "missing-model"))
    with pytest.raises(ModelLoadError, match="cannot load"):
        load_model(str(tmp_path))  # an empty folder
    with pytest.raises(ModelLoadError, match="no embedded model"):
        load_model("embedded:no-such-model")
    with pytest.raises(ModelLoadError, match="no model config"):
        load_model("config:no-such-config")
    with pytest.raises(ModelLoadError, match="out of range"):
        load_model("embedded:tiny-bamba", n_layers=99)


def test_config_bamba_9b_resolves_to_the_shipped_architecture():
    cfg = resolve_config("bamba-9b")
    assert cfg.model_type == "bamba"
    assert (cfg.num_hidden_layers, cfg.hidden_size, cfg.vocab_size) == (32, 4096, 128256)
    assert list(cfg.attn_layer_indices) == [9, 18, 27]
    assert [i for i, t in enumerate(cfg.layers_block_type) if t == "full_attention"] == [9, 18, 27]
    assert (cfg.mamba_n_heads, cfg.mamba_d_head, cfg.mamba_d_state, cfg.mamba_n_groups) == (128, 64, 128, 1)
    assert (cfg.mamba_d_conv, cfg.mamba_expand, cfg.mamba_chunk_size) == (4, 2, 256)
    assert (cfg.num_attention_heads, cfg.num_key_value_heads, cfg.intermediate_size) == (32, 8, 14336)
    cut = truncate_config(resolve_config("bamba-9b"), 12)
    assert cut.num_hidden_layers == 12 and list(cut.attn_layer_indices) == [9]
    assert len(cut.layers_block_type) == 12


@torch.no_grad()
def test_config_from_a_json_file_is_random_init_with_a_fixed_seed(tmp_path):
    cfg = tiny_bamba().config.to_dict()
    cfg.update(vocab_size=300)
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(cfg))
    a, tok = load_model(f"config:{path}", n_layers=2)
    b, _ = load_model(f"config:{tmp_path}/tiny.json", n_layers=2)
    c, _ = load_model(f"config:{path}")
    assert type(a).__name__ == "BambaForCausalLM" and len(a.model.layers) == 2 and len(c.model.layers) == 3
    assert torch.equal(a.model.layers[0].mamba.in_proj.weight, b.model.layers[0].mamba.in_proj.weight)
    assert len(tok) <= 300


@pytest.mark.slow
@torch.no_grad()
def test_compile_scope_parts_compiles_norms_and_mlps_only_and_matches_eager():
    from ssmboard.variants.compile import fusable_parts
    from ssmboard.variants.graph_decode import generate

    torch._dynamo.reset()
    eager, _ = _build(n_layers=4, chunk_size=16)
    parts, _ = _build(n_layers=4, chunk_size=16, compile="default", compile_scope="parts")
    fused = fusable_parts(parts)
    names = {type(m).__name__ for m in fused}
    assert names == {"BambaRMSNorm", "BambaRMSNormGated", "BambaMLP"}, names
    assert all(m._compiled_call_impl is not None for m in fused)
    assert parts._compiled_call_impl is None and parts.model.layers[0].mamba._compiled_call_impl is None
    ids = torch.randint(3, 250, (1, 3 * 16 + 5), generator=torch.Generator().manual_seed(8))
    assert (eager(ids).logits - parts(ids).logits).abs().max().item() <= TOL
    assert torch.equal(eager.generate(ids, max_new_tokens=4, do_sample=False),
                       generate(parts, ids, max_new_tokens=4))  # compiled parts inside the static decoder


@pytest.mark.slow
@torch.no_grad()
def test_compiled_reference_variant_matches_uncompiled():
    torch._dynamo.reset()
    t0 = time.perf_counter()
    eager, tok = _build(n_layers=4, chunk_size=16)
    compiled, _ = _build(n_layers=4, chunk_size=16, compile="default")
    assert compiled._compiled_call_impl is not None and eager._compiled_call_impl is None
    ids = torch.randint(3, 250, (1, 3 * 16 + 5), generator=torch.Generator().manual_seed(7))
    want = eager(ids).logits
    got = compiled(ids).logits
    assert (want - got).abs().max().item() <= TOL
    seq_e = eager.generate(ids, max_new_tokens=4, do_sample=False)
    seq_c = compiled.generate(ids, max_new_tokens=4, do_sample=False)
    assert torch.equal(seq_e, seq_c)
    print(f"compile test took {time.perf_counter() - t0:.1f} s")


def test_missing_embedded_weights_are_an_error_not_random_weights(tmp_path, monkeypatch):
    import shutil

    import ssmboard.variants.loading as loading
    from ssmboard.config import assets_dir

    fake = tmp_path / "assets"
    shutil.copytree(assets_dir() / "tiny-bamba", fake / "tiny-bamba", ignore=shutil.ignore_patterns("*.safetensors"))
    monkeypatch.setattr(loading, "assets_dir", lambda: fake)
    with pytest.raises(ModelLoadError, match="weights are missing.*reinstall"):
        load_model("embedded:tiny-bamba")


def test_cli_choices_come_from_the_spec():
    from ssmboard.cli import build_parser
    from ssmboard.registry.spec import COMPILE_SCOPES, DECODERS

    parser = build_parser()
    reg = parser._subparsers._group_actions[0].choices["variants"]._subparsers._group_actions[0].choices["register"]
    by_dest = {a.dest: a for a in reg._actions}
    assert list(by_dest["compile_scope"].choices) == list(COMPILE_SCOPES)
    assert list(by_dest["decoder"].choices) == list(DECODERS)
