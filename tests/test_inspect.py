"""Parameter counts and sizes (ossy.model.inspect): exact against docs/reference/gpt-oss-spec.md §6 / model-card
numbers for the real 20b and 120b configs (no weights needed), and against transformers' own parameters
for tiny random configs."""

from __future__ import annotations

import bad_checkpoints as bad
import pytest
import tiny
import torch
from transformers import GptOssForCausalLM

from ossy.model.config import GptOssConfig
from ossy.model.inspect import count_parameters, estimate_memory, precision_counts
from ossy.model.weights import Checkpoint, save_checkpoint


def hub_config(layers: int, experts: int) -> GptOssConfig:
    """openai/gpt-oss-20b (24, 32) or -120b (36, 128) `config.json`, docs/reference/gpt-oss-spec.md §1.1."""
    return GptOssConfig.from_dict({
        "architectures": ["GptOssForCausalLM"], "model_type": "gpt_oss",
        "num_hidden_layers": layers, "num_local_experts": experts, "num_experts_per_tok": 4,
        "experts_per_token": 4, "hidden_size": 2880, "intermediate_size": 2880, "num_attention_heads": 64,
        "num_key_value_heads": 8, "head_dim": 64, "vocab_size": 201088, "sliding_window": 128,
        "layer_types": ["sliding_attention", "full_attention"] * (layers // 2), "rope_theta": 150000,
        "rope_scaling": {"rope_type": "yarn", "factor": 32.0, "beta_fast": 32.0, "beta_slow": 1.0,
                         "original_max_position_embeddings": 4096, "truncate": False},
        "initial_context_length": 4096, "max_position_embeddings": 131072, "swiglu_limit": 7.0,
        "rms_norm_eps": 1e-05, "tie_word_embeddings": False, "attention_bias": True,
        "eos_token_id": 200002, "pad_token_id": 199999,
        "quantization_config": {"quant_method": "mxfp4"},
    })


def original_config(layers: int, experts: int) -> GptOssConfig:
    """The same model's `original/config.json`, docs/reference/gpt-oss-spec.md §1.2."""
    return GptOssConfig.from_dict({
        "num_hidden_layers": layers, "num_experts": experts, "experts_per_token": 4, "vocab_size": 201088,
        "hidden_size": 2880, "intermediate_size": 2880, "swiglu_limit": 7.0, "head_dim": 64,
        "num_attention_heads": 64, "num_key_value_heads": 8, "sliding_window": 128,
        "initial_context_length": 4096, "rope_theta": 150000, "rope_scaling_factor": 32.0,
        "rope_ntk_alpha": 1, "rope_ntk_beta": 32,
    })


# docs/reference/gpt-oss-spec.md §6: (layers, experts) -> numbers
SPEC = {
    "20b": dict(shape=(24, 32), total=20_914_757_184, active=3_608_166_144, mlp=19_119_145_728,
                attention=637_203_456, norms=141_120, expert_matrices=19_110_297_600,
                checkpoint=13_761_264_768, kv_per_token=24 * 1024),
    "120b": dict(shape=(36, 128), total=116_829_156_672, active=5_132_639_232, mlp=114_714_874_368,
                 attention=955_805_184, norms=210_240, expert_matrices=114_661_785_600,
                 checkpoint=65_248_815_744, kv_per_token=36 * 1024),
}


@pytest.mark.parametrize("size", SPEC)
@pytest.mark.parametrize("make", [hub_config, original_config], ids=["hf", "original"])
def test_counts_match_model_card(size, make):
    spec = SPEC[size]
    config = make(*spec["shape"])
    c = count_parameters(config)
    assert c.total == spec["total"]
    assert c.active == spec["active"]
    assert c.experts + c.routers == spec["mlp"]
    assert c.attention == spec["attention"]
    assert c.embedding == c.unembedding == 579_133_440
    assert c.norms == spec["norms"]
    assert c.expert_matrices == spec["expert_matrices"]
    assert c.by_precision() == {"MXFP4": spec["expert_matrices"], "BF16": spec["total"] - spec["expert_matrices"]}
    m = estimate_memory(config, 100_000)
    assert m.weights == spec["checkpoint"]
    per_layer = 2 * 8 * 64 * 2  # K and V of a position, 8 kv heads of 64, bf16
    sliding = spec["shape"][0] // 2  # full layers grow by doubling from 256: 131072 positions
    assert m.kv_cache == spec["kv_per_token"] * 131072 + sliding * 128 * per_layer
    assert estimate_memory(config, 16, element_size=4).weights == spec["checkpoint"] + 2 * (c.total - c.expert_matrices)


def test_kv_estimate_counts_sliding_layers_up_to_the_window_and_rewind():
    config = hub_config(24, 32)
    per_layer = 2 * 8 * 64 * 2
    assert estimate_memory(config, 100).kv_cache == (12 * 256 + 12 * 128) * per_layer
    assert estimate_memory(config, 1000, rewind=2048).kv_cache == (12 * 1024 + 12 * (128 + 2048)) * per_layer
    assert estimate_memory(config, 1000, element_size=4).kv_cache == 2 * estimate_memory(config, 1000).kv_cache
    assert estimate_memory(config, 1000, slots=4).kv_cache == 4 * estimate_memory(config, 1000).kv_cache


TINY = [
    dict(),
    dict(num_local_experts=8, num_experts_per_tok=3, num_hidden_layers=3),
    dict(num_attention_heads=8, num_key_value_heads=1, head_dim=8, intermediate_size=48, vocab_size=77),
    dict(num_local_experts=5, num_experts_per_tok=5, num_hidden_layers=1, hidden_size=32),
]


@pytest.mark.parametrize("overrides", TINY, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "default")
def test_counts_equal_transformers_parameters(overrides):
    hf = tiny.hf_config(**overrides)
    with torch.device("meta"):
        model = GptOssForCausalLM(hf)
    params = dict(model.named_parameters())
    c = count_parameters(tiny.ossy_config(model))
    assert c.total == sum(p.numel() for p in params.values())

    def numel(pred):
        return sum(p.numel() for n, p in params.items() if pred(n))

    k, E = hf.num_experts_per_tok, hf.num_local_experts
    experts = numel(lambda n: ".mlp.experts." in n)
    assert c.experts == experts
    assert c.expert_matrices == numel(lambda n: n.endswith(("experts.gate_up_proj", "experts.down_proj")))
    # active: everything but the embedding, the norms and the E - k experts a token skips
    passive = numel(lambda n: n == "model.embed_tokens.weight" or "norm" in n) + experts * (E - k) // E
    assert c.active == c.total - passive
    assert sum(c.by_precision().values()) == c.total


@pytest.mark.parametrize("mxfp4", [True, False], ids=["mxfp4", "dense"])
def test_checkpoint_precision_counts_sum_to_total(mxfp4, tmp_path):
    config, tensors = bad.source()
    ckpt = Checkpoint.open(save_checkpoint(tmp_path / "c", config, tensors, mxfp4=mxfp4))
    counts = count_parameters(ckpt.config)
    by_precision = precision_counts(ckpt.tensor_infos())
    assert sum(by_precision.values()) == counts.total
    if mxfp4:
        assert by_precision == {"F32": counts.total - counts.expert_matrices, "MXFP4": counts.expert_matrices}
    else:
        assert by_precision == {"F32": counts.total}
