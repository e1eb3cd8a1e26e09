"""MXFP4: dequantize is bit-identical to transformers, quantize rounds to the nearest value."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers.integrations.mxfp4 import FP4_VALUES as HF_FP4_VALUES
from transformers.integrations.mxfp4 import convert_moe_packed_tensors

from ossy.model import mxfp4


def bits(t: torch.Tensor) -> torch.Tensor:
    """Raw bit patterns, so NaN and -0.0 compare exactly."""
    return t.view({torch.bfloat16: torch.int16, torch.float32: torch.int32}[t.dtype])


def test_value_table_is_the_e2m1_table():
    assert list(mxfp4.FP4_VALUES) == list(HF_FP4_VALUES)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_spec_test_vector(dtype):
    blocks = torch.zeros(2, 1, 16, dtype=torch.uint8)
    blocks[:, 0, 0] = 0x2F
    scales = torch.tensor([[127], [125]], dtype=torch.uint8)
    out = mxfp4.dequantize(blocks, scales, dtype)  # [2, 32]
    assert out[0, :2].tolist() == [-6.0, 1.0]
    assert out[1, :2].tolist() == [-1.5, 0.25]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_dequantize_bit_identical_to_transformers(dtype):
    gen = torch.Generator().manual_seed(0)
    blocks = torch.randint(0, 256, (3, 40, 6, 16), dtype=torch.uint8, generator=gen)  # [E, out, in/32, 16]
    scales = torch.randint(0, 256, (3, 40, 6), dtype=torch.uint8, generator=gen)  # every E8M0 byte
    scales[0, 0, :] = torch.tensor([0, 1, 126, 127, 254, 255], dtype=torch.uint8)
    theirs = convert_moe_packed_tensors(blocks, scales, dtype=dtype).transpose(1, 2)  # back to [E, out, in]
    ours = mxfp4.dequantize(blocks, scales, dtype)
    assert ours.shape == (3, 40, 192) and ours.dtype == dtype
    assert torch.equal(bits(ours), bits(theirs))


def test_dequantize_rejects_mismatched_scales():
    with pytest.raises(ValueError, match="do not match"):
        mxfp4.dequantize(torch.zeros(4, 2, 16, dtype=torch.uint8), torch.zeros(4, 3, dtype=torch.uint8))


def brute_force_nearest(w: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """min over the 16 representable values of each element's block: distance [..., G, 32]."""
    grid = torch.tensor(mxfp4.FP4_VALUES, dtype=torch.float64)  # [16]
    step = torch.pow(2.0, scales.double() - 127)[..., None, None]  # [..., G, 1, 1]
    candidates = grid * step  # [..., G, 1, 16]
    return (w.double()[..., None] - candidates).abs().amin(-1)  # [..., G, 32]


def check_round_trip(w: torch.Tensor) -> None:
    blocks, scales = mxfp4.quantize(w)
    assert blocks.dtype == scales.dtype == torch.uint8
    assert blocks.shape == (*w.shape[:-1], w.shape[-1] // 32, 16)
    back = mxfp4.dequantize(blocks, scales, torch.float32).double().view(*w.shape[:-1], -1, 32)
    wb = w.double().view(*w.shape[:-1], -1, 32)  # [..., G, 32]
    # nearest representable value on the block's scale, element by element
    assert torch.equal((wb - back).abs(), brute_force_nearest(wb, scales))
    # the scale is the smallest power of two that lets the block maximum fit in ±6
    amax = wb.abs().amax(-1)
    unit = torch.pow(2.0, scales.double() - 127)
    assert bool((amax <= 6 * unit).all())
    assert bool(((amax > 3 * unit) | (scales == 0)).all())


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), log_scale=st.floats(-20, 20), rows=st.integers(1, 4), groups=st.integers(1, 3))
def test_quantize_rounds_to_nearest(seed, log_scale, rows, groups):
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(rows, groups * 32, generator=gen) * 2.0**log_scale
    w[0, :3] = 0.0  # zeros and an all-zero-ish block start
    check_round_trip(w)


def test_quantize_edge_blocks():
    w = torch.zeros(4, 64)
    w[1, :32] = 6.0  # max exactly representable at scale 2**0
    w[2, :32] = torch.linspace(-6.0001, 6.0001, 32)  # just above a power-of-two boundary
    w[3, 32:] = torch.tensor([0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0, -5.0] * 4)  # ties between values
    check_round_trip(w)
    blocks, scales = mxfp4.quantize(w)
    assert scales[1, 0] == 127 and scales[2, 0] == 128


def test_quantize_is_exact_on_representable_weights():
    gen = torch.Generator().manual_seed(3)
    blocks = torch.randint(0, 256, (5, 4, 16), dtype=torch.uint8, generator=gen)
    scales = torch.randint(110, 140, (5, 4), dtype=torch.uint8, generator=gen)
    w = mxfp4.dequantize(blocks, scales, torch.float32)
    assert torch.equal(mxfp4.dequantize(*mxfp4.quantize(w), torch.float32), w)


def test_quantize_rejects_ragged_width():
    with pytest.raises(ValueError, match="multiple of 32"):
        mxfp4.quantize(torch.zeros(2, 48))


def packed_experts(cache=None) -> tuple[mxfp4.PackedExperts, tuple]:
    gen = torch.Generator().manual_seed(1)
    E, H, I = 3, 64, 32
    gu = torch.randint(0, 256, (E, 2 * I, H // 32, 16), dtype=torch.uint8, generator=gen), \
        torch.randint(120, 130, (E, 2 * I, H // 32), dtype=torch.uint8, generator=gen)
    dn = torch.randint(0, 256, (E, H, I // 32, 16), dtype=torch.uint8, generator=gen), \
        torch.randint(120, 130, (E, H, I // 32), dtype=torch.uint8, generator=gen)
    b1, b2 = torch.randn(E, 2 * I, generator=gen), torch.randn(E, H, generator=gen)
    return mxfp4.PackedExperts(*gu, b1, *dn, b2, torch.float32, cache, key=0), (gu, dn, b1, b2)


def test_packed_experts_dequantize_one_expert():
    experts, (gu, dn, b1, b2) = packed_experts()
    w1, bias1, w2, bias2 = experts.get(2)
    assert torch.equal(w1, mxfp4.dequantize(*gu, torch.float32)[2])
    assert torch.equal(w2, mxfp4.dequantize(*dn, torch.float32)[2])
    assert w1.shape == (64, 64) and w2.shape == (64, 32)
    assert torch.equal(bias1, b1[2]) and torch.equal(bias2, b2[2])


def test_expert_cache_is_bounded_and_least_recently_used():
    one = (64 * 64 + 64 * 32) * 4  # bytes of one expert's two fp32 matrices
    cache = mxfp4.ExpertCache(2 * one)
    experts, _ = packed_experts(cache)
    first = experts.get(0)[0]
    experts.get(1)
    assert experts.get(0)[0] is first  # hit
    experts.get(2)  # evicts expert 1, the least recently used
    assert cache.bytes == 2 * one
    assert cache.get((0, 1)) is None and cache.get((0, 0)) is not None and cache.get((0, 2)) is not None
