"""Parameter counts and memory needs of a gpt-oss model, from its config alone (no weights).

Owns: splitting the parameters into components (embedding, attention, routers, experts, norms,
unembedding), the active-per-token count of docs/reference/gpt-oss-spec.md §6 (k experts + routers + attention +
unembedding; embedding and norms not counted), MXFP4 byte sizes (17 bytes per 32 values) and
`estimate_memory`, the one memory estimate: weights as loaded, KV caches as `ossy.model.cache`
allocates them, a step's transient buffers and the process itself.
Also counts a checkpoint's tensors by stored precision.
Does not own: tensor names and shapes (`ossy.model.tensors.tensor_shapes`, counted here) or
presentation (`ossy.cli.show`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from ossy.model.config import GptOssConfig
from ossy.model.mxfp4 import BLOCK
from ossy.model.tensors import TensorInfo, tensor_shapes

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
        """Used per token: k experts + routers + attention + unembedding (docs/reference/gpt-oss-spec.md §6)."""
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


FIRST_FULL_CAPACITY = 256  # positions a full-attention layer's cache starts with (`ossy.model.cache`)


def full_layer_capacity(tokens: int) -> int:
    """Positions a full-attention layer's cache holds for `tokens`: it starts at 256 and doubles."""
    capacity = FIRST_FULL_CAPACITY
    while capacity < tokens:
        capacity *= 2
    return capacity


@dataclass(frozen=True)
class MemoryEstimate:
    """What a loaded model holds, in bytes, for `slots` sequences of up to `num_ctx` tokens."""

    num_ctx: int
    slots: int
    weights: int  # as loaded: expert matrices packed MXFP4, everything else at the compute dtype
    kv_cache: int  # every slot full: full-attention layers at their grown capacity, sliding ones at window + rewind
    compute: int  # the largest transient buffers of a step (a prefill chunk)
    runtime: int  # the process itself (Python, PyTorch), before any model

    @property
    def total(self) -> int:
        return self.weights + self.kv_cache + self.compute + self.runtime

    @property
    def kv_per_slot(self) -> int:
        return self.kv_cache // self.slots if self.slots else 0


RUNTIME_BYTES = 256 << 20  # RSS of a Python process with torch and ossy's server imported (measured: 251 MB)


def estimate_memory(config: GptOssConfig, num_ctx: int, slots: int = 1, *, element_size: int = 2,
                    rewind: int = 0, chunk: int = 512, attention_scores: bool = False) -> MemoryEstimate:
    """The one memory estimate (`ossy show --verbose`, `/api/ps`, the page, the loader's check):
    weights, `slots` KV caches at `num_ctx` tokens laid out as `ossy.model.cache` allocates them
    (sliding layers: `sliding_window + rewind` positions whatever the context), the transient
    buffers of a `chunk`-token prefill step (with `attention_scores`, the PyTorch path's [Hq, T, S]
    fp32 scores; the native attention kernel has none), and the process itself."""
    counts = count_parameters(config)
    weights = (counts.total - counts.expert_matrices) * element_size + mxfp4_bytes(counts.expert_matrices)
    sliding, full = _sliding_and_full(config)
    per_position = kv_bytes_per_token(config, element_size)
    kv = per_position * (full * full_layer_capacity(num_ctx) + sliding * (config.sliding_window + rewind))
    c, tokens = config, min(chunk, num_ctx)
    width = c.num_attention_heads * c.head_dim
    per_token = element_size * (4 * c.hidden_size + width + 2 * c.num_key_value_heads * c.head_dim
                                + c.num_experts_per_tok * 3 * c.intermediate_size)
    scores = 4 * c.num_attention_heads * tokens * num_ctx if attention_scores else 0  # [Hq, T, S] fp32
    compute = tokens * per_token + scores + 4 * c.vocab_size
    return MemoryEstimate(num_ctx, slots, weights, slots * kv, compute, RUNTIME_BYTES)
