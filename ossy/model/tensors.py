"""The canonical tensors of a gpt-oss checkpoint: their names (the HF ones) and shapes for a config,
and `TensorInfo`, one tensor as a checkpoint stores it.

Owns the names every reader maps onto (`ossy.model.weights` for safetensors,
`ossy.model.gguf_checkpoint` for GGUF) and every consumer uses (the model, `ossy show`).
Does not own: reading or writing files.

Canonical names (prefix `model.layers.{i}.` for per-layer tensors): `model.embed_tokens.weight`,
`input_layernorm.weight`, `self_attn.{q,k,v,o}_proj.{weight,bias}`, `self_attn.sinks`,
`post_attention_layernorm.weight`, `mlp.router.{weight,bias}`, experts either MXFP4
(`mlp.experts.{gate_up,down}_proj_{blocks,scales}`, [E, out, in/32, 16] / [E, out, in/32]) or
dense in the HF parameter layout (`mlp.experts.gate_up_proj` [E, H, 2I], `down_proj` [E, I, H]),
`mlp.experts.{gate_up,down}_proj_bias`, `model.norm.weight`, `lm_head.weight`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ossy.model.config import GptOssConfig
from ossy.model.mxfp4 import BLOCK

EXPERT_MATRICES = ("gate_up_proj", "down_proj")


def tensor_shapes(config: GptOssConfig, *, mxfp4: bool) -> dict[str, tuple[int, ...]]:
    """Every tensor of a checkpoint for `config`, canonical name -> shape, in file order."""
    H, heads, kv, d = config.hidden_size, config.num_attention_heads, config.num_key_value_heads, config.head_dim
    E = config.num_local_experts
    shapes = {"model.embed_tokens.weight": (config.vocab_size, H)}
    for i in range(config.num_hidden_layers):
        p = f"model.layers.{i}."
        shapes.update({
            p + "input_layernorm.weight": (H,),
            p + "self_attn.q_proj.weight": (heads * d, H), p + "self_attn.q_proj.bias": (heads * d,),
            p + "self_attn.k_proj.weight": (kv * d, H), p + "self_attn.k_proj.bias": (kv * d,),
            p + "self_attn.v_proj.weight": (kv * d, H), p + "self_attn.v_proj.bias": (kv * d,),
            p + "self_attn.o_proj.weight": (H, heads * d), p + "self_attn.o_proj.bias": (H,),
            p + "self_attn.sinks": (heads,),
            p + "post_attention_layernorm.weight": (H,),
            p + "mlp.router.weight": (E, H), p + "mlp.router.bias": (E,),
        })
        shapes.update(_expert_shapes(p + "mlp.experts.", config, mxfp4))
    shapes["model.norm.weight"] = (H,)
    shapes["lm_head.weight"] = (config.vocab_size, H)
    return shapes


def _expert_shapes(prefix: str, config: GptOssConfig, packed: bool) -> dict[str, tuple[int, ...]]:
    E, H, I = config.num_local_experts, config.hidden_size, config.intermediate_size
    shapes = {}
    for matrix, (out, inp) in zip(EXPERT_MATRICES, ((2 * I, H), (H, I))):
        if packed:
            groups = inp // BLOCK
            shapes[prefix + matrix + "_blocks"] = (E, out, groups, BLOCK // 2)
            shapes[prefix + matrix + "_scales"] = (E, out, groups)
        else:
            shapes[prefix + matrix] = (E, inp, out)  # HF parameter layout: x @ W
        shapes[prefix + matrix + "_bias"] = (E, out)
    return shapes


@dataclass(frozen=True)
class TensorInfo:
    """One logical tensor of a checkpoint (an MXFP4 blocks + scales pair counts as one)."""

    name: str  # canonical name; MXFP4 experts drop the `_blocks` suffix
    shape: tuple[int, ...]  # logical shape; MXFP4 experts: [E, out, in]
    dtype: str  # as stored: BF16, F32, U8, ...
    precision: str  # for display: BF16, F32, MXFP4, ...
    file: Path

    @property
    def numel(self) -> int:
        n = 1
        for s in self.shape:
            n *= s
        return n
