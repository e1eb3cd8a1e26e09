"""Tiny random gpt-oss models for tests, built in-process (no downloads).

`hf_model(...)` is a transformers `GptOssForCausalLM` (fp32, eager) with every parameter drawn
at random (transformers initialises biases and some gains to zero or one, which would hide
bugs); `ossy_config(model)` and `tensors(model)` give the same model in ossy's terms, and
`save_mxfp4(model, path)` writes it as an MXFP4 checkpoint.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import GptOssConfig as HFConfig
from transformers import GptOssForCausalLM

from ossy.model.config import GptOssConfig

DEFAULTS = dict(
    vocab_size=101,
    hidden_size=64,
    intermediate_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=16,
    num_local_experts=4,
    num_experts_per_tok=2,
    sliding_window=4,
    rope_theta=100.0,  # small base and beta_fast: the YaRN ramp covers several frequency pairs
    rope_factor=4.0,
    rope_beta_fast=4.0,
    original_max_position_embeddings=16,
    rope_truncate=False,
)


def hf_config(**overrides) -> HFConfig:
    o = {**DEFAULTS, **overrides}
    rope = dict(rope_type="yarn", factor=o.pop("rope_factor"), beta_fast=o.pop("rope_beta_fast"), beta_slow=1.0,
                original_max_position_embeddings=o["original_max_position_embeddings"],
                truncate=o.pop("rope_truncate"), rope_theta=o.pop("rope_theta"))
    o["max_position_embeddings"] = int(rope["factor"] * o.pop("original_max_position_embeddings"))
    return HFConfig(**o, rope_parameters=rope, eos_token_id=None, pad_token_id=None, bos_token_id=None,
                    attn_implementation="eager")


def _std(name: str, p: torch.Tensor, scale: float) -> float:
    """A spread per kind of parameter that keeps activations O(1) but exercises every term."""
    if name.endswith("norm.weight"):
        return 0.2  # added to 1
    if name.endswith("sinks"):
        return 1.0
    if name.endswith("bias"):
        return 0.3
    if name.endswith("embed_tokens.weight"):
        return 1.0
    if name.endswith(("gate_up_proj", "down_proj")):
        return scale * 2.5 / p.shape[1] ** 0.5  # [E, in, out]: gate/up reach the ±7 clamps
    return scale / p.shape[-1] ** 0.5  # [out, in] linears


@torch.no_grad()
def hf_model(seed: int = 0, scale: float = 1.0, **overrides) -> GptOssForCausalLM:
    """A random fp32 transformers model; `scale` multiplies the spread of the linear weights."""
    model = GptOssForCausalLM(hf_config(**overrides)).eval()
    gen = torch.Generator().manual_seed(seed)
    for name, p in model.named_parameters():
        noise = torch.randn(p.shape, generator=gen) * _std(name, p, scale)
        p.copy_(1 + noise if name.endswith("norm.weight") else noise)
    return model


def ossy_config(model: GptOssForCausalLM) -> GptOssConfig:
    return GptOssConfig.from_dict(model.config.to_dict())


def tensors(model: GptOssForCausalLM) -> dict[str, torch.Tensor]:
    """Canonical (HF) names -> tensors, experts dense in the HF layout."""
    return {name: t.detach().clone() for name, t in model.state_dict().items()}


def save_mxfp4(model: GptOssForCausalLM, path: Path) -> Path:
    """Write `model` as an HF-layout checkpoint with MXFP4 experts (quantized by ossy)."""
    from ossy.model.weights import save_checkpoint

    return save_checkpoint(path, ossy_config(model), tensors(model), mxfp4=True)
