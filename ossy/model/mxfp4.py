"""MXFP4: the 4-bit expert weight format of gpt-oss, and the packed experts that use it at runtime.

Owns: the E2M1 value table, `dequantize` (bit-identical to transformers'
`convert_moe_packed_tensors` before its transpose), `quantize` (round to nearest with one
power-of-two scale per 32-element block), and `PackedExperts`, which keeps a layer's experts as
uint8 blocks + scales and dequantizes only the experts a step routes to (optionally remembering
recently used ones in a bounded `ExpertCache`).
Does not own: reading or writing checkpoint files (`ossy.model.weights`) or the expert math
(`ossy.model.gptoss`).

Layout (docs/reference/gpt-oss-spec.md §3.1): a matrix W[out, in] is stored as blocks uint8[out, in/32, 16] and scales
uint8[out, in/32]; byte k of a block holds element 2k in its low nibble and 2k+1 in its high
nibble; value = E2M1(code) * 2**(scale - 127).
"""

from __future__ import annotations

from collections import OrderedDict

import torch

BLOCK = 32  # elements per block (and per scale)
SCALE_BIAS = 127

# E2M1 code -> value; bit 3 is the sign.
FP4_VALUES = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0)
_POSITIVE = torch.tensor(FP4_VALUES[:8], dtype=torch.float32)  # codes 0..7, increasing


def _pair_table(dtype: torch.dtype) -> torch.Tensor:
    """[256 scales * 256 bytes] -> the byte's two values times the scale, one integer per pair.

    Built as transformers does it (`ldexp(E2M1 value, scale-127)` in fp32, rounded to `dtype`), so a
    single gather dequantizes bit-identically; the pair is viewed as one int32 (bf16/fp16) or
    int64 (fp32) so the gather moves one element per byte.
    """
    lut = torch.tensor(FP4_VALUES, dtype=torch.float32)
    codes = torch.arange(256)
    pairs = torch.stack((lut[codes & 0x0F], lut[codes >> 4]), dim=-1)  # [256 bytes, 2]
    exponents = (torch.arange(256, dtype=torch.int32) - SCALE_BIAS).view(256, 1, 1)  # [256 scales, 1, 1]
    table = torch.ldexp(pairs.expand(256, 256, 2).contiguous(), exponents).to(dtype)  # [256, 256, 2]
    return table.view(-1, 2).view(_PAIR_INT[dtype.itemsize]).view(-1)


_PAIR_INT = {2: torch.int32, 4: torch.int64}
_PAIR_TABLES: dict[tuple[torch.dtype, torch.device], torch.Tensor] = {}
_CHUNK = 8192  # blocks per gather


def dequantize(blocks: torch.Tensor, scales: torch.Tensor, dtype: torch.dtype = torch.bfloat16) -> torch.Tensor:
    """uint8 blocks [..., G, 16] + scales [..., G] -> values [..., G*32] in `dtype`."""
    if blocks.shape[:-1] != scales.shape or blocks.shape[-1] != BLOCK // 2:
        raise ValueError(f"MXFP4 blocks {tuple(blocks.shape)} do not match scales {tuple(scales.shape)}")
    if dtype.itemsize not in _PAIR_INT or not dtype.is_floating_point:
        raise ValueError(f"MXFP4 cannot dequantize to {dtype}")
    table = _PAIR_TABLES.get((dtype, blocks.device))
    if table is None:
        table = _PAIR_TABLES[dtype, blocks.device] = _pair_table(dtype).to(blocks.device)
    *prefix, groups, _ = blocks.shape
    blocks = blocks.reshape(-1, BLOCK // 2)  # [R, 16], R = prod(prefix) * G
    rows_base = scales.reshape(-1, 1).to(torch.int32) << 8  # [R, 1] = scale*256
    pairs = torch.empty(blocks.numel(), dtype=table.dtype, device=blocks.device)  # one integer per value pair
    for start in range(0, blocks.shape[0], _CHUNK):  # chunks keep the index in cache
        rows = slice(start, start + _CHUNK)
        index = torch.add(rows_base[rows], blocks[rows])  # [r, 16] int32 = scale*256 + byte
        torch.index_select(table, 0, index.view(-1), out=pairs[start * 16:(start + index.shape[0]) * 16])
    return pairs.view(dtype).view(*prefix, groups * BLOCK)


def quantize(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """values [..., N] (N % 32 == 0) -> (uint8 blocks [..., N/32, 16], uint8 scales [..., N/32]).

    Each block gets the smallest power-of-two scale that brings its largest magnitude within
    6.0 (the largest E2M1 value); every element is then rounded to the nearest representable
    value (ties to the smaller magnitude).
    """
    if w.shape[-1] % BLOCK:
        raise ValueError(f"MXFP4 needs the last dimension to be a multiple of {BLOCK}, got {tuple(w.shape)}")
    x = w.float().reshape(*w.shape[:-1], -1, BLOCK)  # [..., G, 32]
    amax = x.abs().amax(dim=-1, keepdim=True)  # [..., G, 1]
    # smallest e with amax / 2**e <= 6 (exact: amax/6 = m * 2**k with m in [0.5, 1));
    # all-zero blocks take the smallest scale
    mantissa, k = torch.frexp(amax / 6.0)
    exponent = torch.where(mantissa == 0.5, k - 1, k).float().clamp(-SCALE_BIAS, 127)
    exponent = torch.where(amax > 0, exponent, torch.full_like(exponent, -SCALE_BIAS))
    scaled = (x / torch.exp2(exponent)).abs()  # [..., G, 32] in [0, 6]
    # nearest of the 8 magnitudes: count midpoints below the value (ties -> smaller)
    midpoints = (_POSITIVE[1:] + _POSITIVE[:-1]) / 2
    codes = torch.bucketize(scaled, midpoints, right=False).to(torch.uint8)  # [..., G, 32] in 0..7
    codes |= (torch.signbit(x) & (codes > 0)).to(torch.uint8) << 3
    pairs = codes.view(*codes.shape[:-1], BLOCK // 2, 2)
    blocks = pairs[..., 0] | (pairs[..., 1] << 4)  # [..., G, 16]
    scales = (exponent.squeeze(-1) + SCALE_BIAS).to(torch.uint8)  # [..., G]
    return blocks.contiguous(), scales.contiguous()


class ExpertCache:
    """A bounded LRU of dequantized expert matrices shared by all layers, sized in bytes."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._entries: OrderedDict[tuple, tuple[torch.Tensor, ...]] = OrderedDict()

    def get(self, key: tuple) -> tuple[torch.Tensor, ...] | None:
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
        return entry

    def put(self, key: tuple, tensors: tuple[torch.Tensor, ...]) -> None:
        size = sum(t.numel() * t.element_size() for t in tensors)
        if size > self.max_bytes:
            return
        while self.bytes + size > self.max_bytes:
            _, old = self._entries.popitem(last=False)
            self.bytes -= sum(t.numel() * t.element_size() for t in old)
        self._entries[key] = tensors
        self.bytes += size


class PackedExperts:
    """One layer's experts kept as MXFP4; `get(e)` dequantizes expert e on demand.

    gate_up: blocks [E, 2I, H/32, 16], scales [E, 2I, H/32], bias [E, 2I] (rows interleaved
    gate, up); down: blocks [E, H, I/32, 16], scales [E, H, I/32], bias [E, H]. `layout` is "hf"
    (that, as stored) or "rows16" (the same bytes reordered in place for the native kernel, which
    only it reads); `native` is what the native kernel made of them (`ossy.model.native.Kernels.pack`).
    """

    def __init__(self, gate_up_blocks, gate_up_scales, gate_up_bias, down_blocks, down_scales, down_bias,
                 dtype: torch.dtype, cache: ExpertCache | None = None, key: object = None) -> None:
        self.gate_up = (gate_up_blocks, gate_up_scales)
        self.down = (down_blocks, down_scales)
        self.gate_up_bias, self.down_bias = gate_up_bias, down_bias
        self.dtype = dtype
        self.cache = cache
        self.key = key  # distinguishes this layer in a shared cache
        self.layout = "hf"
        self.native = None

    @property
    def num_experts(self) -> int:
        return self.gate_up[0].shape[0]

    def get(self, e: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(W1 [2I, H], b1 [2I], W2 [H, I], b2 [H]) of expert e, [out, in] for F.linear."""
        if self.layout != "hf":
            raise ValueError(f"experts in the {self.layout} layout are read by the native kernel only")
        weights = self.cache.get((self.key, e)) if self.cache is not None else None
        if weights is None:
            weights = (dequantize(self.gate_up[0][e], self.gate_up[1][e], self.dtype),
                       dequantize(self.down[0][e], self.down[1][e], self.dtype))
            if self.cache is not None:
                self.cache.put((self.key, e), weights)
        return weights[0], self.gate_up_bias[e], weights[1], self.down_bias[e]
