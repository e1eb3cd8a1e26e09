"""ossy's gpt-oss math against transformers' GptOssForCausalLM (eager, fp32) on random tiny models.

Every configuration runs sequences longer than its sliding window and past
`original_max_position_embeddings`, with random non-zero sinks, biases and norm gains.
"""

from __future__ import annotations

import pytest
import tiny
import torch
from transformers import GptOssForCausalLM, Mxfp4Config

import ossy
from ossy.model import mxfp4
from ossy.model.gptoss import GptOss
from ossy.model.native import open_kernels

CONFIGS = {
    "gqa": dict(),
    "mqa-3-of-8-experts": dict(num_attention_heads=8, num_key_value_heads=1, head_dim=8, num_local_experts=8,
                               num_experts_per_tok=3, sliding_window=6, num_hidden_layers=3),
    "mha-top1": dict(num_attention_heads=2, num_key_value_heads=2, head_dim=32, num_local_experts=3,
                     num_experts_per_tok=1, sliding_window=8, original_max_position_embeddings=32, rope_factor=2.0),
    "rope-truncate": dict(rope_truncate=True, rope_factor=8.0, original_max_position_embeddings=32),
    "full-only": dict(layer_types=["full_attention", "full_attention"], rope_factor=1.0),
}
SEQ = 48


def close(ours: torch.Tensor, theirs: torch.Tensor, rel: float = 1e-4) -> None:
    scale = theirs.abs().max().item()
    err = (ours - theirs).abs().max().item()
    assert err <= rel * scale, f"max |Δ| {err:.3g} > {rel} x max |logit| {scale:.3g}"


def ids(n: int, vocab: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, vocab, (n,), generator=torch.Generator().manual_seed(seed))


def hf_logits(model: GptOssForCausalLM, tokens: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(tokens[None]).logits[0].float()


@pytest.mark.parametrize("name", CONFIGS)
def test_logits_match_transformers(name):
    model = tiny.hf_model(seed=len(name), **CONFIGS[name])
    ours = GptOss.from_tensors(tiny.ossy_config(model), tiny.tensors(model), torch.float32)
    tokens = ids(SEQ, model.config.vocab_size)
    logits = ours.forward(tokens, ours.new_cache())
    assert logits.dtype == torch.float32 and logits.shape == (SEQ, model.config.vocab_size)
    close(logits, hf_logits(model, tokens))


def test_rope_truncation_matters():
    """The truncate flag changes the answer, so the parity test above can tell them apart."""
    model = tiny.hf_model(seed=5, **CONFIGS["rope-truncate"])
    flipped = tiny.ossy_config(model).replace(rope_truncate=False)
    ours = GptOss.from_tensors(flipped, tiny.tensors(model), torch.float32)
    tokens = ids(SEQ, model.config.vocab_size)
    with pytest.raises(AssertionError):
        close(ours.forward(tokens, ours.new_cache()), hf_logits(model, tokens))


@pytest.fixture(scope="module")
def mxfp4_checkpoint(tmp_path_factory):
    model = tiny.hf_model(seed=11, num_local_experts=4, num_experts_per_tok=2)
    return tiny.save_mxfp4(model, tmp_path_factory.mktemp("ckpt") / "mxfp4")


def hf_dequantized(path, dtype=torch.float32) -> GptOssForCausalLM:
    return GptOssForCausalLM.from_pretrained(path, quantization_config=Mxfp4Config(dequantize=True),
                                             dtype=dtype, attn_implementation="eager").eval()


def test_mxfp4_experts_bit_identical_to_transformers(mxfp4_checkpoint):
    theirs = hf_dequantized(mxfp4_checkpoint)
    ours = ossy.load(mxfp4_checkpoint, dtype="float32").model
    for i, layer in enumerate(ours.layers):
        assert isinstance(layer.experts, mxfp4.PackedExperts)  # kept packed in memory
        assert layer.experts.gate_up[0].dtype == torch.uint8
        hf = theirs.model.layers[i].mlp.experts
        assert hf.gate_up_proj.dtype == torch.float32
        for e in range(layer.experts.num_experts):
            w1, b1, w2, b2 = layer.experts.get(e)
            assert torch.equal(w1, hf.gate_up_proj[e].T) and torch.equal(w2, hf.down_proj[e].T)
            assert torch.equal(b1, hf.gate_up_proj_bias[e]) and torch.equal(b2, hf.down_proj_bias[e])


# every path this machine can run: the PyTorch reference and ossy's native kernels
KERNELS = ["torch"] + [name for name in ("avx512", "avx2") if (k := open_kernels(name)) is not None and k.name == name]


@pytest.mark.parametrize("kernels", KERNELS)
def test_mxfp4_logits_match_transformers(mxfp4_checkpoint, kernels):
    theirs = hf_dequantized(mxfp4_checkpoint)
    ours = ossy.load(mxfp4_checkpoint, dtype="float32", kernels=kernels)
    assert ours.model.backend == ("torch" if kernels == "torch" else f"native-{kernels}")
    tokens = ids(SEQ, ours.config.vocab_size, seed=2)
    close(ours.logits(tokens.tolist()), hf_logits(theirs, tokens))


@pytest.mark.parametrize("kernels", KERNELS)
def test_bfloat16_matches_transformers_in_bfloat16(mxfp4_checkpoint, kernels):
    """Different rounding orders: agreement at the bf16 level (~1e-2), not bit-exact."""
    theirs = hf_dequantized(mxfp4_checkpoint, torch.bfloat16)
    ours = ossy.load(mxfp4_checkpoint, kernels=kernels)  # bfloat16 by default
    tokens = ids(SEQ, ours.config.vocab_size, seed=3)
    logits = ours.logits(tokens.tolist())
    assert logits.dtype == torch.float32
    close(logits, hf_logits(theirs, tokens), rel=3e-2)


@pytest.mark.parametrize("kernels", KERNELS)
def test_greedy_generate_matches_transformers(tmp_path, kernels):
    model = tiny.hf_model(seed=21, scale=2.0)
    model.save_pretrained(tmp_path)
    prompt = [5, 17, 42, 8]
    with torch.no_grad():
        expected = model.generate(torch.tensor([prompt]), max_new_tokens=32, min_new_tokens=32,
                                  do_sample=False)[0, len(prompt):].tolist()
    got = ossy.load(tmp_path, dtype="float32", kernels=kernels).generate(prompt, max_new_tokens=32, temperature=0.0)
    assert got == expected
    assert len(set(got)) > 3  # not a degenerate repetition


def test_swiglu_matches_transformers_far_past_the_clamps():
    """Logit parity cannot see the gate's missing lower clamp (its effect is ~1e-5); check directly."""
    from transformers.models.gpt_oss.modeling_gpt_oss import GptOssExperts

    from ossy.model.gptoss import swiglu

    experts = GptOssExperts(tiny.hf_config())
    h = torch.randn(16, 64, generator=torch.Generator().manual_seed(0)) * 12  # many |values| > 7
    torch.testing.assert_close(swiglu(h, 1.702, 7.0), experts._apply_gate(h), rtol=1e-6, atol=1e-7)
