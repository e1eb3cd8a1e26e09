"""Parameter counts and memory needs of a gpt-oss model, from its config alone (no weights).

Owns: splitting the parameters into components (embedding, attention, routers, experts, norms,
unembedding), the active-per-token count of spec §6 (k experts + routers + attention +
unembedding; embedding and norms not counted), and byte sizes: the MXFP4 checkpoint (expert
matrices at 17 bytes per 32 values, everything else BF16), weights in RAM, and the KV cache.
Also counts a checkpoint's tensors by stored precision.
Does not own: tensor names and shapes (`ossy.model.weights.tensor_shapes`, counted here) or
presentation (`ossy.cli.show`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from ossy.model.config import GptOssConfig
from ossy.model.mxfp4 import BLOCK
from ossy.model.weights import TensorInfo, tensor_shapes

MXFP4_BYTES_PER_BLOCK = BLOCK // 2 + 1  # 16 bytes of 4-bit codes + 1 scale byte per 32 values


@dataclass(frozen=True)
class ParameterCounts:
    embedding: int
    attention: int  # q/k/v/o weights and biases, sinks; all layers
    routers: int
    experts: int  # all experts' matrices and biases, all layers
    expert_matrices: int  # the part of `experts` stored as MXFP4 (not the biases)
    norms: int
    unembedding: int
    experts_per_token: int  # k of the config's E experts
    num_experts: int

    @property
    def total(self) -> int:
        return self.embedding + self.attention + self.routers + self.experts + self.norms + self.unembedding

    @property
    def active(self) -> int:
        """Used per token: k experts + routers + attention + unembedding (spec §6)."""
        return (self.experts * self.experts_per_token // self.num_experts
                + self.routers + self.attention + self.unembedding)

    def by_precision(self) -> dict[str, int]:
        """As the gpt-oss checkpoints store them: expert matrices MXFP4, the rest BF16."""
        return {"MXFP4": self.expert_matrices, "BF16": self.total - self.expert_matrices}


def _component(name: str) -> str:
    if name == "model.embed_tokens.weight":
        return "embedding"
    if name == "lm_head.weight":
        return "unembedding"
    if name.endswith("norm.weight"):
        return "norms"
    if ".self_attn." in name:
        return "attention"
    if ".mlp.router." in name:
        return "routers"
    return "experts"


def count_parameters(config: GptOssConfig) -> ParameterCounts:
    counts = dict.fromkeys(("embedding", "attention", "routers", "experts", "norms", "unembedding"), 0)
    matrices = 0
    for name, shape in tensor_shapes(config, mxfp4=False).items():
        n = math.prod(shape)
        counts[_component(name)] += n
        if name.endswith(("experts.gate_up_proj", "experts.down_proj")):
            matrices += n
    return ParameterCounts(**counts, expert_matrices=matrices,
                           experts_per_token=config.num_experts_per_tok, num_experts=config.num_local_experts)


def precision_counts(infos: Iterable[TensorInfo]) -> dict[str, int]:
    """Parameters per stored precision of a checkpoint's tensors (MXFP4 experts counted as their
    logical values), largest first."""
    totals: dict[str, int] = {}
    for t in infos:
        totals[t.precision] = totals.get(t.precision, 0) + t.numel
    return dict(sorted(totals.items(), key=lambda kv: -kv[1]))


def mxfp4_bytes(values: int) -> int:
    """Bytes of `values` MXFP4 values (a multiple of 32) with their scales."""
    return values // BLOCK * MXFP4_BYTES_PER_BLOCK


def kv_bytes_per_token(config: GptOssConfig, element_size: int = 2) -> int:
    """K and V of one position in one layer."""
    return 2 * config.num_key_value_heads * config.head_dim * element_size


def _sliding_and_full(config: GptOssConfig) -> tuple[int, int]:
    sliding = sum(config.is_sliding(i) for i in range(config.num_hidden_layers))
    return sliding, config.num_hidden_layers - sliding


def kv_cache_bytes(config: GptOssConfig, tokens: int, element_size: int = 2) -> int:
    """KV cache for a context of `tokens`: sliding layers hold at most `sliding_window` positions."""
    sliding, full = _sliding_and_full(config)
    return kv_bytes_per_token(config, element_size) * (full * tokens + sliding * min(tokens, config.sliding_window))


@dataclass(frozen=True)
class MemoryNeeds:
    checkpoint_bytes: int  # expert matrices MXFP4, everything else BF16
    weights_bytes: int  # in RAM: expert matrices packed, the rest at the compute dtype
    kv_bytes_per_token: int  # growth per context position (full-attention layers)
    kv_sliding_bytes: int  # sliding layers at a full window, whatever the context


def memory_needs(config: GptOssConfig, element_size: int = 2) -> MemoryNeeds:
    """Sizes for weights and KV cache held at `element_size` bytes (2: bf16, 4: fp32)."""
    counts = count_parameters(config)
    dense = counts.total - counts.expert_matrices
    packed = mxfp4_bytes(counts.expert_matrices)
    sliding, full = _sliding_and_full(config)
    per_layer = kv_bytes_per_token(config, element_size)
    return MemoryNeeds(
        checkpoint_bytes=dense * 2 + packed,
        weights_bytes=dense * element_size + packed,
        kv_bytes_per_token=full * per_layer,
        kv_sliding_bytes=sliding * config.sliding_window * per_layer,
    )
