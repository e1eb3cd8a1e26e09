"""The gpt-oss forward pass: every piece of model math, in one file (docs/reference/gpt-oss-spec.md §2).

Owns: RMSNorm, YaRN RoPE, attention with learned sinks and sliding windows, the top-k router,
the clamped SwiGLU experts, and `GptOss`, which holds the weights of a checkpoint and runs token
ids (of one or several sequences, each with its own `KVCache`) to logits, counting each
sequence's expert choices as it routes (`last_routing`: one bincount per step over all layers); it
implements `ossy.model.interface.LanguageModel`, the interface the engine drives.
Does not own: reading files (`ossy.model.weights`), MXFP4 bit layout (`ossy.model.mxfp4`), cache
storage (`ossy.model.cache`), the native kernels (`ossy.model.native`, which follow this file's
math), sampling or text.

Shapes: N tokens in a step (all sequences concatenated), T tokens of one sequence, S keys it
attends over, H hidden, Hq query heads, Hkv kv heads, G = Hq / Hkv, D head_dim, E experts,
K experts per token, I expert width, V vocab.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import accumulate

import torch
import torch.nn.functional as F

from ossy.model.cache import KVCache
from ossy.model.config import GptOssConfig
from ossy.model.errors import CheckpointError
from ossy.model.mxfp4 import ExpertCache, PackedExperts
from ossy.model.native import MAX_LINEAR_TOKENS
from ossy.model.tensors import tensor_shapes


# -- building blocks ---------------------------------------------------------------------------
def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """x [N, H] -> [N, H] in x's dtype; the math and the gain (fp32 weight [H]) in fp32."""
    x32 = x.float()
    return (weight * (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps))).to(x.dtype)


def rope_inv_freq(c: GptOssConfig) -> torch.Tensor:
    """[D/2] fp32 YaRN (NTK-by-parts) inverse frequencies; plain RoPE when the factor is 1."""
    d, base = c.head_dim, c.rope_theta
    pos_freqs = base ** (torch.arange(0, d, 2, dtype=torch.float32) / d)  # [D/2]

    def correction_dim(rotations: float) -> float:
        return d * math.log(c.original_max_position_embeddings / (rotations * 2 * math.pi)) / (2 * math.log(base))

    low, high = correction_dim(c.rope_beta_fast), correction_dim(c.rope_beta_slow)
    if c.rope_truncate:
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, d - 1)
    if low == high:
        high += 0.001  # a zero-width ramp would divide by zero
    ramp = ((torch.arange(d // 2, dtype=torch.float32) - low) / (high - low)).clamp(0, 1)  # [D/2]
    keep = 1 - ramp  # 1: original frequency (extrapolate), 0: divided by the factor
    return (1.0 / (c.rope_scaling_factor * pos_freqs)) * (1 - keep) + (1.0 / pos_freqs) * keep


def rope_tables(inv_freq: torch.Tensor, positions: torch.Tensor, concentration: float, dtype: torch.dtype):
    """positions [N] -> (cos, sin) [N, 1, D/2] in `dtype`, both scaled by the YaRN concentration."""
    angles = positions.float()[:, None] * inv_freq  # [N, D/2] fp32
    return ((angles.cos() * concentration).to(dtype)[:, None, :],
            (angles.sin() * concentration).to(dtype)[:, None, :])


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate-half RoPE: x [N, heads, D] with cos/sin [N, 1, D/2]."""
    x1, x2 = x.chunk(2, dim=-1)  # [N, heads, D/2] each
    return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)


def visible_keys(query_positions: torch.Tensor, key_positions: torch.Tensor, window: int | None) -> torch.Tensor:
    """[T, S] bool: causal, and on sliding layers only the last `window` positions (self included)."""
    delta = query_positions[:, None] - key_positions[None, :]  # [T, S]
    if window is None:
        return delta >= 0
    return (delta >= 0) & (delta < window)


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, sinks: torch.Tensor,
              visible: torch.Tensor) -> torch.Tensor:
    """Softmax attention whose denominator also holds exp(sink) per head (no value for it).

    q [T, Hq, D]; k, v [S, Hkv, D]; sinks [Hq] fp32; visible [T, S] -> [T, Hq, D].
    Query head h reads kv head h // G.
    """
    T, Hq, D = q.shape
    Hkv = k.shape[1]
    qg = q.view(T, Hkv, Hq // Hkv, D).permute(1, 2, 0, 3).reshape(Hkv, -1, D)  # [Hkv, G*T, D]
    scores = torch.bmm(qg, k.permute(1, 2, 0)) * D**-0.5  # [Hkv, G*T, S]
    scores = scores.view(Hq, T, -1).float().masked_fill(~visible, float("-inf"))  # [Hq, T, S]
    sink = sinks.view(Hq, 1, 1).expand(Hq, T, 1)  # [Hq, T, 1]
    probs = torch.cat((scores, sink), dim=-1).softmax(dim=-1)[..., :-1]  # [Hq, T, S], sink dropped
    out = torch.bmm(probs.to(v.dtype).view(Hkv, -1, probs.shape[-1]), v.transpose(0, 1))  # [Hkv, G*T, D]
    return out.view(Hq, T, D).transpose(0, 1)  # [T, Hq, D]


def swiglu(h: torch.Tensor, alpha: float, limit: float) -> torch.Tensor:
    """h [n, 2I] with interleaved (gate, linear) columns -> [n, I]."""
    gate, linear = h[:, 0::2], h[:, 1::2]
    gate = gate.clamp(max=limit)  # above only
    linear = linear.clamp(-limit, limit)
    return gate * torch.sigmoid(alpha * gate) * (linear + 1)


def route(h: torch.Tensor, router: torch.Tensor, router_bias: torch.Tensor, k: int, linear=F.linear):
    """h [N, H] -> (chosen [N, K] experts, weights [N, K]): top-k on the raw router logits, then a
    softmax over the K chosen only (in h's dtype). `linear` computes the logits (F.linear's math)."""
    logits = linear(h, router, router_bias)  # [N, E]
    top, chosen = logits.topk(k, dim=-1)  # [N, K]
    return chosen, top.softmax(dim=-1)


def mixture_of_experts(h: torch.Tensor, router: torch.Tensor, router_bias: torch.Tensor, experts, k: int,
                       alpha: float, limit: float) -> torch.Tensor:
    """h [N, H] -> sum over the top-k experts of routing weight * expert(h): [N, H].

    `experts.get(e)` gives expert e's (W1 [2I, H], b1 [2I], W2 [H, I], b2 [H]); only the experts
    some token routes to are asked for. Differentiable (the trainer uses it with parameters).
    """
    chosen, weights = route(h, router, router_bias, k)  # [N, K] each
    return mix_experts(h, chosen, weights, experts, alpha, limit)


def mix_experts(h: torch.Tensor, chosen: torch.Tensor, weights: torch.Tensor, experts, alpha: float,
                limit: float) -> torch.Tensor:
    """h [N, H] with each token's `chosen` [N, K] experts and routing `weights` [N, K] -> the sum
    of weight * expert(h) over its experts: [N, H]."""
    k = chosen.shape[1]
    weights = weights.reshape(-1)  # [N*K]
    flat = chosen.reshape(-1)  # [N*K]
    order = flat.argsort()  # (token, slot) pairs grouped by expert
    counts = flat.bincount().tolist()  # [max chosen + 1]
    out = torch.zeros_like(h)
    start = 0
    for e, n in enumerate(counts):
        if n == 0:
            continue
        pairs = order[start:start + n]  # [n] indices into N*K
        tokens = pairs // k  # [n]
        w1, b1, w2, b2 = experts.get(e)
        y = F.linear(swiglu(F.linear(h[tokens], w1, b1), alpha, limit), w2, b2)  # [n, H]
        out.index_add_(0, tokens, y * weights[pairs, None])
        start += n
    return out


class DenseExperts:
    """One layer's experts as plain tensors, stored [out, in] for F.linear."""

    def __init__(self, gate_up: torch.Tensor, gate_up_bias, down: torch.Tensor, down_bias) -> None:
        self.gate_up = gate_up.transpose(1, 2).contiguous()  # [E, 2I, H] from HF's [E, H, 2I]
        self.down = down.transpose(1, 2).contiguous()  # [E, H, I] from HF's [E, I, H]
        self.gate_up_bias, self.down_bias = gate_up_bias, down_bias

    def get(self, e: int):
        """(W1 [2I, H], b1 [2I], W2 [H, I], b2 [H]) of expert e."""
        return self.gate_up[e], self.gate_up_bias[e], self.down[e], self.down_bias[e]


# -- weights -----------------------------------------------------------------------------------
@dataclass
class Layer:
    sliding: bool
    input_norm: torch.Tensor  # [H] fp32
    qkv: torch.Tensor  # [(Hq + 2 Hkv) D, H]: q, k, v rows
    qkv_bias: torch.Tensor  # [(Hq + 2 Hkv) D]
    out: torch.Tensor  # [H, Hq D]
    out_bias: torch.Tensor  # [H]
    sinks: torch.Tensor  # [Hq] fp32
    mlp_norm: torch.Tensor  # [H] fp32
    router: torch.Tensor  # [E, H]
    router_bias: torch.Tensor  # [E]
    experts: DenseExperts | PackedExperts


def _check(config: GptOssConfig, tensors: dict[str, torch.Tensor], packed: bool) -> None:
    for name, shape in tensor_shapes(config, mxfp4=packed).items():
        if name not in tensors:
            raise CheckpointError(f"missing tensor {name}")
        if tuple(tensors[name].shape) != shape:
            raise CheckpointError(f"tensor {name} has shape {list(tensors[name].shape)}, expected {list(shape)}")


def _layer(config: GptOssConfig, i: int, t: dict[str, torch.Tensor], dtype: torch.dtype,
           cache: ExpertCache | None) -> Layer:
    p = f"model.layers.{i}."
    a, x = p + "self_attn.", p + "mlp.experts."
    if x + "gate_up_proj_blocks" in t:
        experts = PackedExperts(t[x + "gate_up_proj_blocks"], t[x + "gate_up_proj_scales"],
                                t[x + "gate_up_proj_bias"].to(dtype), t[x + "down_proj_blocks"],
                                t[x + "down_proj_scales"], t[x + "down_proj_bias"].to(dtype), dtype, cache, key=i)
    else:
        experts = DenseExperts(t[x + "gate_up_proj"].to(dtype), t[x + "gate_up_proj_bias"].to(dtype),
                               t[x + "down_proj"].to(dtype), t[x + "down_proj_bias"].to(dtype))
    return Layer(
        sliding=config.is_sliding(i),
        input_norm=t[p + "input_layernorm.weight"].float(),
        qkv=torch.cat([t[a + f"{n}_proj.weight"] for n in "qkv"]).to(dtype),
        qkv_bias=torch.cat([t[a + f"{n}_proj.bias"] for n in "qkv"]).to(dtype),
        out=t[a + "o_proj.weight"].to(dtype),
        out_bias=t[a + "o_proj.bias"].to(dtype),
        sinks=t[a + "sinks"].float(),
        mlp_norm=t[p + "post_attention_layernorm.weight"].float(),
        router=t[p + "mlp.router.weight"].to(dtype),
        router_bias=t[p + "mlp.router.bias"].to(dtype),
        experts=experts,
    )


# -- the model ---------------------------------------------------------------------------------
class GptOss:
    """A gpt-oss model in memory. Experts stay as stored (MXFP4 packed or dense). With `kernels`
    (`ossy.model.native.Kernels`), MXFP4 experts run on the native MoE kernel, attention on its
    attention kernel and the bf16 projections of a decode step (qkv, out, lm_head) on its
    matrix-vector kernel; everything else, and dense experts, on PyTorch (`backend` says which)."""

    def __init__(self, config: GptOssConfig, embed: torch.Tensor, layers: list[Layer], norm: torch.Tensor,
                 unembed: torch.Tensor, dtype: torch.dtype, kernels=None) -> None:
        self.config = config
        self.dtype = dtype
        self.kernels = kernels if any(isinstance(layer.experts, PackedExperts) for layer in layers) else None
        for layer in layers if self.kernels is not None else ():
            if isinstance(layer.experts, PackedExperts):
                self.kernels.pack(layer.experts)
            layer.qkv, layer.out = self.kernels.resident(layer.qkv), self.kernels.resident(layer.out)
        if self.kernels is not None:
            unembed = self.kernels.resident(unembed)
        self.embed = embed  # [V, H]
        self.layers = layers
        self.norm = norm  # [H] fp32
        self.unembed = unembed  # [V, H]
        self.inv_freq = rope_inv_freq(config).to(embed.device)  # [D/2] fp32
        self.last_routing: torch.Tensor | None = None  # [L, B, E] int64: the last forward's expert choices

    @property
    def backend(self) -> str:
        """"native-avx512" / "native-avx2" (the MoE on ossy's kernels) or "torch"."""
        return f"native-{self.kernels.name}" if self.kernels is not None else "torch"

    @classmethod
    def from_tensors(cls, config: GptOssConfig, tensors: dict[str, torch.Tensor],
                     dtype: torch.dtype = torch.bfloat16, expert_cache_bytes: int = 0, kernels=None) -> "GptOss":
        """Build from canonical (HF-named) tensors, as `weights.Checkpoint.load` returns them.

        MXFP4 experts stay packed; with `kernels` they run on the native kernel, else up to
        `expert_cache_bytes` of dequantized experts are kept (least recently used first out).
        """
        packed = "model.layers.0.mlp.experts.gate_up_proj_blocks" in tensors
        _check(config, tensors, packed)
        cache = ExpertCache(expert_cache_bytes) if packed and expert_cache_bytes > 0 else None
        layers = [_layer(config, i, tensors, dtype, cache) for i in range(config.num_hidden_layers)]
        return cls(config, tensors["model.embed_tokens.weight"].to(dtype), layers,
                   tensors["model.norm.weight"].float(), tensors["lm_head.weight"].to(dtype), dtype, kernels)

    @property
    def device(self) -> str:
        return str(self.embed.device)

    def new_cache(self, rewind: int = 0) -> KVCache:
        return KVCache(self.config, self.dtype, self.embed.device, rewind=rewind)

    def weight_bytes(self) -> int:
        """Bytes of the model's tensors (shared storage counted once)."""
        seen: dict[int, int] = {}

        def walk(obj) -> None:
            if isinstance(obj, torch.Tensor):
                seen[obj.untyped_storage().data_ptr()] = obj.untyped_storage().nbytes()
            elif isinstance(obj, (list, tuple)):
                for item in obj:
                    walk(item)
            elif hasattr(obj, "__dict__") and not isinstance(obj, type):
                for value in vars(obj).values():
                    walk(value)

        walk([self.embed, self.unembed, self.norm, self.layers])
        return sum(seen.values())

    @torch.inference_mode()
    def forward(self, token_ids: torch.Tensor, cache: KVCache, last_only: bool = False) -> torch.Tensor:
        """One sequence: token ids [T] continuing `cache` -> fp32 logits [T, V] ([1, V] if last_only)."""
        return self.forward_batch([(token_ids, cache)], last_only=last_only)[0]

    @torch.inference_mode()
    def forward_batch(self, sequences: list[tuple[torch.Tensor, KVCache]], last_only: bool = False) -> list[torch.Tensor]:
        """Several sequences in one step, each (ids [T_b], its cache); returns fp32 logits per
        sequence. Linear layers and experts see all N = sum T_b tokens at once.

        A decode step on the native kernels (at most MAX_LINEAR_TOKENS tokens) runs PyTorch's own
        few small ops on one thread: its idle worker threads would otherwise spin on the cores the
        kernels' threads need (measured: the MoE kernel took twice as long beside them)."""
        if self.kernels is not None and sum(ids.shape[0] for ids, _ in sequences) <= MAX_LINEAR_TOKENS:
            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                return self._forward_batch(sequences, last_only)
            finally:
                torch.set_num_threads(threads)
        return self._forward_batch(sequences, last_only)

    @torch.inference_mode()
    def embedding(self, token_ids: torch.Tensor) -> torch.Tensor:
        """An embedding of token ids [T] (T >= 1): the mean over the tokens of the final
        RMS-normed hidden states (what the lm_head reads), L2-normalised -> fp32 [H]. Runs on a
        fresh cache, so it does not depend on anything before it."""
        cache = self.new_cache()
        hidden = self._hidden([(token_ids, cache)]).float()  # [T, H]
        pooled = hidden.mean(dim=0)
        return pooled / pooled.norm().clamp_min(1e-12)

    def _hidden(self, sequences: list[tuple[torch.Tensor, KVCache]]) -> torch.Tensor:
        """The final normed hidden states [N, H] of every token of every sequence, in order; each
        cache is extended by its sequence."""
        lengths = [ids.shape[0] for ids, _ in sequences]
        positions = torch.cat([torch.arange(c.length, c.length + n) for (_, c), n in zip(sequences, lengths)])
        positions = positions.to(self.embed.device)  # [N]
        x = F.embedding(torch.cat([ids for ids, _ in sequences]).to(self.embed.device), self.embed)  # [N, H]
        cos, sin = rope_tables(self.inv_freq, positions, self.config.yarn_concentration, self.dtype)
        choices = []  # [N, K] experts chosen in each layer
        for i, layer in enumerate(self.layers):
            caches = [cache.layers[i] for _, cache in sequences]
            x = x + self._attention(layer, self._norm(x, layer.input_norm), positions, cos, sin, caches, lengths)
            out, chosen = self._moe(layer, self._norm(x, layer.mlp_norm))
            x = x + out
            choices.append(chosen)
        for (_, cache), n in zip(sequences, lengths):
            cache.length += n
        self.last_routing = self._count_routing(choices, lengths)
        return self._norm(x, self.norm)  # [N, H]

    def _forward_batch(self, sequences: list[tuple[torch.Tensor, KVCache]], last_only: bool) -> list[torch.Tensor]:
        lengths = [ids.shape[0] for ids, _ in sequences]
        h = self._hidden(sequences)  # [N, H]
        ends = list(accumulate(lengths))
        rows = [slice(end - 1 if last_only else end - n, end) for end, n in zip(ends, lengths)]
        if last_only:  # one row per sequence: the lm_head reads its 201k rows once for all
            return list(self._linear(h[[end - 1 for end in ends]], self.unembed).float().split(1))
        return [self._linear(h[r], self.unembed).float() for r in rows]  # [T_b, V] each

    def _native_step(self, x: torch.Tensor) -> bool:
        """Whether x [N, ...] is the few bf16 tokens of a decode step, which the native kernels
        take through matrix-vector products and small fused steps (larger N is PyTorch's GEMMs)."""
        return self.kernels is not None and x.dtype == torch.bfloat16 and 0 < x.shape[0] <= MAX_LINEAR_TOKENS

    def _linear(self, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
        """x [N, in] @ w^T + b."""
        return self.kernels.linear(x, w, b) if self._native_step(x) else F.linear(x, w, b)

    def _norm(self, x: torch.Tensor, gain: torch.Tensor) -> torch.Tensor:
        """`rms_norm` of x [N, H]."""
        eps = self.config.rms_norm_eps
        return self.kernels.rms_norm(x, gain, eps) if self._native_step(x) else rms_norm(x, gain, eps)

    def _attention(self, layer: Layer, h, positions, cos, sin, caches, lengths) -> torch.Tensor:
        """h [N, H] -> attention block output [N, H]; attention runs per sequence on its cache."""
        c = self.config
        Hq, Hkv, D = c.num_attention_heads, c.num_key_value_heads, c.head_dim
        qkv = self._linear(h, layer.qkv, layer.qkv_bias)  # [N, (Hq + 2 Hkv) D]
        native = self._native_step(qkv)
        if native:
            self.kernels.rope(qkv, Hq + Hkv, D, cos, sin)  # q and k rotated in place
        q, k, v = qkv.split((Hq * D, Hkv * D, Hkv * D), dim=-1)
        q, k, v = q.view(-1, Hq, D), k.view(-1, Hkv, D), v.view(-1, Hkv, D)
        if not native:
            q, k = rotate(q, cos, sin), rotate(k, cos, sin)  # [N, Hq, D], [N, Hkv, D]
        window = c.sliding_window if layer.sliding else None
        outs, start = [], 0
        for cache, n in zip(caches, lengths):
            seq = slice(start, start + n)
            keys, values, key_positions = cache.update(k[seq], v[seq], positions[seq])  # [S, Hkv, D]
            if self.kernels is not None:  # per (query, kv head): no [T, S] matrix, whatever the context
                outs.append(self.kernels.attention(q[seq], keys, values, layer.sinks, positions[seq], key_positions,
                                                   window))
            else:
                visible = visible_keys(positions[seq], key_positions, window)  # [T, S]
                outs.append(attention(q[seq], keys, values, layer.sinks, visible))  # [T, Hq, D]
            start += n
        o = torch.cat(outs).view(-1, Hq * D)  # [N, Hq D]
        return self._linear(o, layer.out, layer.out_bias)

    def _moe(self, layer: Layer, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """h [N, H] -> (the MoE block's output [N, H], the experts each token chose [N, K])."""
        c = self.config
        chosen, weights = route(h, layer.router, layer.router_bias, c.num_experts_per_tok, self._linear)  # [N, K]
        if self.kernels is not None and isinstance(layer.experts, PackedExperts):
            return self.kernels.moe(h, chosen, weights, layer.experts, c.swiglu_alpha, c.swiglu_limit), chosen
        return mix_experts(h, chosen, weights, layer.experts, c.swiglu_alpha, c.swiglu_limit), chosen

    def _count_routing(self, choices: list[torch.Tensor], lengths: list[int]) -> torch.Tensor:
        """Each layer's choices [N, K] -> counts [L, B, E] per sequence (of `lengths` tokens): one
        bincount for the whole step, a few small ops whatever the number of layers."""
        L, B, E = len(choices), len(lengths), self.config.num_local_experts
        chosen = torch.stack(choices)  # [L, N, K]
        owner = torch.repeat_interleave(torch.arange(B), torch.tensor(lengths)).to(chosen.device)  # [N]: whose token
        slot = (torch.arange(L, device=chosen.device)[:, None] * B + owner) * E  # [L, N]
        return torch.bincount((slot[:, :, None] + chosen).view(-1), minlength=L * B * E).view(L, B, E)
