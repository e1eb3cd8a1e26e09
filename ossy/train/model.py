"""The trainable gpt-oss: the engine's math (`ossy.model.gptoss`) over torch parameters.

Owns: `TrainableGptOss`, an `nn.Module` holding a gpt-oss model's weights as dense fp32
parameters, its initialisation, the training forward pass over a `Pack` (one shared prefix and
several continuations that each see the prefix and themselves), and `tensors()`, the weights
under their canonical checkpoint names for `ossy.model.weights.save_checkpoint`.
Does not own: any model math of its own. RMSNorm, YaRN RoPE, attention with sinks and sliding
windows, the router, top-k and the clamped SwiGLU experts are the inference functions, called
with parameters (so training and inference cannot drift apart); data, optimisation or export.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ossy.model.config import GptOssConfig
from ossy.model.gptoss import attention, mixture_of_experts, rms_norm, rope_inv_freq, rope_tables, rotate, visible_keys


def _long(values: list[int]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.long)


@dataclass
class Pack:
    """A shared prefix and continuations: `ids` [N] = prefix ids then each continuation's ids;
    `positions` [N] (each continuation starts at the prefix length); `spans` the (start, end) of
    each continuation in `ids`; `predict` [M] rows whose next token is a target, `labels` [M],
    `weights` [M] their weights in the loss."""

    ids: torch.Tensor
    positions: torch.Tensor
    prefix: int
    spans: list[tuple[int, int]]
    predict: torch.Tensor
    labels: torch.Tensor
    weights: torch.Tensor

    @classmethod
    def build(cls, prefix: list[int], continuations: list[list[tuple[int, float]]]) -> "Pack":
        """`continuations`: (token, weight) lists; a token of weight 0 is read, not predicted."""
        ids, positions, spans, predict, labels, weights = list(prefix), list(range(len(prefix))), [], [], [], []
        for tokens in continuations:
            start = len(ids)
            for j, (token, weight) in enumerate(tokens):
                if weight:
                    predict.append(start + j - 1)
                    labels.append(token)
                    weights.append(float(weight))
            ids += [token for token, _ in tokens]
            positions += range(len(prefix), len(prefix) + len(tokens))
            spans.append((start, len(ids)))
        return cls(_long(ids), _long(positions), len(prefix), spans, _long(predict), _long(labels),
                   torch.tensor(weights))


def _causal_attention(q, k, v, sinks, positions, window: int | None) -> torch.Tensor:
    """Causal self-attention of one sequence; on sliding layers in blocks of `window` queries,
    each with only the keys it can see (the work grows with T * window, not T^2)."""
    if window is None:
        return attention(q, k, v, sinks, visible_keys(positions, positions, None))
    outs = []
    for start in range(0, q.shape[0], window):
        end, first = start + window, max(0, start - window + 1)
        outs.append(attention(q[start:end], k[first:end], v[first:end], sinks,
                              visible_keys(positions[start:end], positions[first:end], window)))
    return torch.cat(outs)


class _Experts:
    """One layer's expert parameters in the `get(e)` form `mixture_of_experts` reads."""

    def __init__(self, layer: "_Layer") -> None:
        self.layer = layer

    def get(self, e: int):
        m = self.layer
        return m.gate_up[e], m.gate_up_bias[e], m.down[e], m.down_bias[e]


class _Layer(nn.Module):
    def __init__(self, c: GptOssConfig) -> None:
        super().__init__()
        H, D, E, I = c.hidden_size, c.head_dim, c.num_local_experts, c.intermediate_size
        q, kv = c.num_attention_heads * D, c.num_key_value_heads * D
        self.input_norm = nn.Parameter(torch.ones(H))
        self.qkv = nn.Parameter(torch.empty(q + 2 * kv, H))
        self.qkv_bias = nn.Parameter(torch.zeros(q + 2 * kv))
        self.out = nn.Parameter(torch.empty(H, q))
        self.out_bias = nn.Parameter(torch.zeros(H))
        self.sinks = nn.Parameter(torch.zeros(c.num_attention_heads))
        self.mlp_norm = nn.Parameter(torch.ones(H))
        self.router = nn.Parameter(torch.empty(E, H))
        self.router_bias = nn.Parameter(torch.zeros(E))
        self.gate_up = nn.Parameter(torch.empty(E, 2 * I, H))  # [out, in] per expert, rows gate/up interleaved
        self.gate_up_bias = nn.Parameter(torch.zeros(E, 2 * I))
        self.down = nn.Parameter(torch.empty(E, H, I))
        self.down_bias = nn.Parameter(torch.zeros(E, H))


class TrainableGptOss(nn.Module):
    def __init__(self, config: GptOssConfig, seed: int = 0) -> None:
        super().__init__()
        self.config = config
        V, H = config.vocab_size, config.hidden_size
        self.embed = nn.Parameter(torch.empty(V, H))
        self.layers = nn.ModuleList(_Layer(config) for _ in range(config.num_hidden_layers))
        self.norm = nn.Parameter(torch.ones(H))
        self.unembed = nn.Parameter(torch.empty(V, H))
        self.register_buffer("inv_freq", rope_inv_freq(config), persistent=False)
        self._initialise(torch.Generator().manual_seed(seed))

    def _initialise(self, g: torch.Generator) -> None:
        residual = 0.02 / math.sqrt(2 * self.config.num_hidden_layers)  # GPT-2's scaled residual init
        with torch.no_grad():
            for name, p in self.named_parameters():
                if name.endswith(("out", "down")):
                    p.normal_(0.0, residual, generator=g)
                elif name.endswith(("embed", "unembed", "qkv", "router", "gate_up")):
                    p.normal_(0.0, 0.02, generator=g)

    def forward(self, pack: Pack) -> torch.Tensor:
        """Cross-entropy of the targets of `pack`, their weighted mean."""
        h = rms_norm(self._residual(pack)[pack.predict], self.norm, self.config.rms_norm_eps)  # target rows only
        losses = F.cross_entropy(F.linear(h, self.unembed), pack.labels, reduction="none")  # [M]
        return (losses * pack.weights).sum() / pack.weights.sum()

    def next_tokens(self, pack: Pack) -> list[int]:
        """The most likely token after each position of `pack` (teacher-forced, greedy)."""
        h = rms_norm(self._residual(pack), self.norm, self.config.rms_norm_eps)
        return F.linear(h, self.unembed).argmax(dim=-1).tolist()

    def _residual(self, pack: Pack) -> torch.Tensor:
        """[N, H]: the residual stream of every position after the last layer."""
        c = self.config
        x = F.embedding(pack.ids, self.embed)  # [N, H]
        cos, sin = rope_tables(self.inv_freq, pack.positions, c.yarn_concentration, x.dtype)
        for i, layer in enumerate(self.layers):
            window = c.sliding_window if c.is_sliding(i) else None
            x = x + self._attention(layer, rms_norm(x, layer.input_norm, c.rms_norm_eps), pack, cos, sin, window)
            h = rms_norm(x, layer.mlp_norm, c.rms_norm_eps)
            x = x + mixture_of_experts(h, layer.router, layer.router_bias, _Experts(layer), c.num_experts_per_tok,
                                       c.swiglu_alpha, c.swiglu_limit)
        return x

    def _attention(self, layer: _Layer, h, pack: Pack, cos, sin, window: int | None) -> torch.Tensor:
        """The prefix attends to itself; each continuation to the prefix (the last `window`
        positions of it on sliding layers) and to itself."""
        c = self.config
        Hq, Hkv, D = c.num_attention_heads, c.num_key_value_heads, c.head_dim
        q, k, v = F.linear(h, layer.qkv, layer.qkv_bias).split((Hq * D, Hkv * D, Hkv * D), dim=-1)
        q, k, v = rotate(q.view(-1, Hq, D), cos, sin), rotate(k.view(-1, Hkv, D), cos, sin), v.view(-1, Hkv, D)
        P, pos = pack.prefix, pack.positions
        shared = slice(max(0, P - window) if window else 0, P)  # prefix keys a continuation can see
        outs = [_causal_attention(q[:P], k[:P], v[:P], layer.sinks, pos[:P], window)] if P else []
        for start, end in pack.spans:
            keys = torch.cat((k[shared], k[start:end]))
            values = torch.cat((v[shared], v[start:end]))
            visible = visible_keys(pos[start:end], torch.cat((pos[shared], pos[start:end])), window)
            outs.append(attention(q[start:end], keys, values, layer.sinks, visible))
        return F.linear(torch.cat(outs).view(-1, Hq * D), layer.out, layer.out_bias)

    def tensors(self) -> dict[str, torch.Tensor]:
        """The weights under their canonical checkpoint names (experts dense, HF layout)."""
        c = self.config
        q, kv = c.num_attention_heads * c.head_dim, c.num_key_value_heads * c.head_dim
        out = {"model.embed_tokens.weight": self.embed, "model.norm.weight": self.norm, "lm_head.weight": self.unembed}
        for i, m in enumerate(self.layers):
            p = f"model.layers.{i}."
            for name, rows in zip("qkv", (slice(0, q), slice(q, q + kv), slice(q + kv, q + 2 * kv))):
                out[p + f"self_attn.{name}_proj.weight"] = m.qkv[rows]
                out[p + f"self_attn.{name}_proj.bias"] = m.qkv_bias[rows]
            out.update({
                p + "input_layernorm.weight": m.input_norm,
                p + "self_attn.o_proj.weight": m.out, p + "self_attn.o_proj.bias": m.out_bias,
                p + "self_attn.sinks": m.sinks,
                p + "post_attention_layernorm.weight": m.mlp_norm,
                p + "mlp.router.weight": m.router, p + "mlp.router.bias": m.router_bias,
                p + "mlp.experts.gate_up_proj": m.gate_up.transpose(1, 2),  # HF layout [E, in, out]
                p + "mlp.experts.gate_up_proj_bias": m.gate_up_bias,
                p + "mlp.experts.down_proj": m.down.transpose(1, 2),
                p + "mlp.experts.down_proj_bias": m.down_bias,
            })
        return {name: t.detach().contiguous().clone() for name, t in out.items()}
