"""ossy's native MoE kernel against the PyTorch reference (`ossy.model.gptoss.mixture_of_experts`),
on each path the CPU has (AVX512-BF16, AVX2), forced the way OSSY_KERNELS forces it: bf16 bit for
bit, fp32 to rounding; odd token counts, one token and many, every expert routed and experts with
none, shapes whose blocks do not pair or whose rows are not a multiple of four. Then whole models:
the same greedy tokens on both paths, and the PyTorch path when the library is missing."""

from __future__ import annotations

import hashlib

import pytest
import torch
from conftest import require
from store_util import make_checkpoint

import ossy
from ossy.errors import USER_ERRORS
from ossy.model import native
from ossy.model.gptoss import mixture_of_experts, route
from ossy.model.loading import open_model
from ossy.model.mxfp4 import PackedExperts, quantize

PATHS = [name for name in ("avx512", "avx2") if (k := native.open_kernels(name)) is not None and k.name == name]
if not native.LIBRARY.is_file():
    pytest.fail(f"{native.LIBRARY} is not built: `make test` builds it (make kernels)", pytrace=False)


def experts(E: int, H: int, I: int, dtype: torch.dtype, seed: int = 0) -> PackedExperts:
    """Random experts: quantized normals when small, random MXFP4 bytes at full width (fast)."""
    g = torch.Generator().manual_seed(seed)
    if H * I <= 1 << 16:
        gate_up_blocks, gate_up_scales = quantize(torch.randn(E, 2 * I, H, generator=g) * 0.1)
        down_blocks, down_scales = quantize(torch.randn(E, H, I, generator=g) * 0.1)
    else:  # every code, scales 2^-9..2^-6 (values of std ~ 1/sqrt(H), as trained weights have)
        gate_up_blocks = torch.randint(0, 256, (E, 2 * I, H // 32, 16), dtype=torch.uint8, generator=g)
        gate_up_scales = torch.randint(118, 122, (E, 2 * I, H // 32), dtype=torch.uint8, generator=g)
        down_blocks = torch.randint(0, 256, (E, H, I // 32, 16), dtype=torch.uint8, generator=g)
        down_scales = torch.randint(118, 122, (E, H, I // 32), dtype=torch.uint8, generator=g)
    return PackedExperts(gate_up_blocks, gate_up_scales, (torch.randn(E, 2 * I, generator=g) * 0.1).to(dtype),
                         down_blocks, down_scales, (torch.randn(E, H, generator=g) * 0.1).to(dtype), dtype)


def both(kernels, E, H, I, N, K, dtype, *, only=None, seed=0):
    """(kernel output, reference output) for N random tokens; `only` limits the experts routed to."""
    g = torch.Generator().manual_seed(seed + 1)
    packed = experts(E, H, I, dtype, seed)
    h = torch.randn(N, H, generator=g).to(dtype)
    router = (torch.randn(E, H, generator=g) * 0.3).to(dtype)
    bias = torch.zeros(E, dtype=dtype)
    if only is not None:  # the other experts can never win
        bias[[e for e in range(E) if e not in only]] = -1e4
    reference = mixture_of_experts(h, router, bias, packed, K, 1.702, 7.0)
    chosen, weights = route(h, router, bias, K)
    kernels.pack(packed)  # AVX512-BF16 with bf16: the rows16 layout, in place (the reference is computed)
    return kernels.moe(h, chosen, weights, packed, 1.702, 7.0), reference, chosen


SHAPES = [  # E, H, I, N, K
    (8, 256, 128, 1, 4),  # decode: one token
    (8, 256, 128, 3, 4),  # odd tokens
    (8, 256, 128, 17, 2),
    (4, 64, 32, 64, 4),  # many tokens, every expert routed; a single block per down row
    (6, 96, 96, 5, 3),  # three blocks per row: one does not pair
    (5, 64, 96, 7, 2),  # 2I = 192 rows and H = 64: rows in fours and a remainder; odd blocks
    (32, 2880, 2880, 1, 4),  # gpt-oss width, one token
    (32, 2880, 2880, 9, 4),
]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("shape", SHAPES, ids=[f"E{e}-H{h}-I{i}-N{n}-K{k}" for e, h, i, n, k in SHAPES])
def test_bf16_is_bit_identical_to_the_reference(path, shape):
    got, expected, chosen = both(native.open_kernels(path), *shape, torch.bfloat16)
    assert got.dtype == torch.bfloat16
    if shape[1] < 2880 or chosen.view(-1).bincount().max() == 1:
        assert torch.equal(got, expected)
    else:  # an expert with several tokens: the reference's bf16 GEMM sums 2880 products in another
        # order than its GEMV does, so a few values round to the neighbouring bf16
        assert (got == expected).float().mean() > 0.999
        torch.testing.assert_close(got, expected, rtol=2 ** -7, atol=1e-3 * float(expected.abs().max()))


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("shape", SHAPES[:6], ids=[f"E{e}-H{h}-I{i}-N{n}-K{k}" for e, h, i, n, k in SHAPES[:6]])
def test_fp32_matches_the_reference_to_rounding(path, shape):
    got, expected, _ = both(native.open_kernels(path), *shape, torch.float32)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("path", PATHS)
def test_experts_without_tokens_and_a_single_expert(path):
    kernels = native.open_kernels(path)
    got, expected, chosen = both(kernels, 8, 256, 128, 11, 2, torch.bfloat16, only=(2, 5))
    assert set(chosen.view(-1).tolist()) == {2, 5} and torch.equal(got, expected)
    got, expected, chosen = both(kernels, 8, 256, 128, 4, 1, torch.bfloat16, only=(7,))
    assert set(chosen.view(-1).tolist()) == {7} and torch.equal(got, expected)


@pytest.mark.parametrize("path", PATHS)
def test_the_thread_count_changes_nothing(path):
    kernels = native.open_kernels(path)
    try:
        outputs = []
        for threads in (1, 2, 3):
            assert kernels.set_threads(threads) >= 1
            outputs.append(both(kernels, 8, 256, 128, 13, 4, torch.bfloat16)[0])
    finally:
        kernels.set_threads(native.physical_cores())
    assert torch.equal(outputs[0], outputs[1]) and torch.equal(outputs[0], outputs[2])


def test_bad_routing_is_refused_not_read_out_of_bounds():
    require(PATHS, "this CPU has neither AVX512-BF16 nor AVX2, or the kernels are not built (make kernels)")
    kernels = native.open_kernels(PATHS[0])
    packed = experts(4, 64, 32, torch.bfloat16)
    kernels.pack(packed)
    h = torch.randn(2, 64).to(torch.bfloat16)
    assert kernels.moe(h, torch.tensor([[0, 3], [1, 2]]), torch.ones(2, 2), packed, 1.702, 7.0).shape == (2, 64)
    with pytest.raises(RuntimeError, match="native MoE kernel failed"):
        kernels.moe(h, torch.tensor([[0, 9], [1, 2]]), torch.ones(2, 2), packed, 1.702, 7.0)


@pytest.mark.skipif("avx512" not in PATHS, reason="this CPU lacks AVX512-BF16")
def test_experts_are_packed_for_the_path_they_run_on():
    """At AVX512-BF16 the bf16 kernel reads the rows16 layout only; the PyTorch path never does."""
    kernels = native.open_kernels("avx512")
    packed = experts(4, 64, 32, torch.bfloat16)
    h, chosen = torch.randn(2, 64).to(torch.bfloat16), torch.tensor([[0, 3], [1, 2]])
    with pytest.raises(RuntimeError, match="Kernels.pack"):
        kernels.moe(h, chosen, torch.ones(2, 2), packed, 1.702, 7.0)
    kernels.pack(packed)
    assert packed.layout == "rows16"
    with pytest.raises(ValueError, match="native kernel only"):
        packed.get(0)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("kernels") / "tiny", vocab_size=300, seed=3)


def test_packing_at_load_rewrites_memory_never_the_checkpoint(checkpoint):
    files = sorted(checkpoint.glob("*.safetensors"))
    before = [hashlib.sha256(f.read_bytes()).hexdigest() for f in files]
    model = ossy.load(checkpoint, kernels=PATHS[0] if PATHS else "torch")
    model.logits([1, 2, 3])
    assert [hashlib.sha256(f.read_bytes()).hexdigest() for f in files] == before


@pytest.mark.skipif("avx512" not in PATHS, reason="this CPU lacks AVX512-BF16")
def test_mapped_experts_are_repacked_when_first_routed_and_their_pages_given_back(checkpoint):
    model = open_model(checkpoint, "bfloat16", kernels="avx512")
    layer = model.layers[0].experts
    before = [layer.get(e)[0].clone() for e in range(layer.num_experts)]  # dequantized from the mapping
    assert layer.native is not None and layer.layout == "hf" and not layer.native.held  # nothing read yet
    model.forward(torch.tensor([1, 2, 3]), model.new_cache())
    routed = set(model.last_routing[0, 0].nonzero().view(-1).tolist())
    assert set(layer.native.held) == routed and routed
    assert all(torch.equal(layer.get(e)[0], before[e]) for e in range(layer.num_experts))  # read again from the file


@pytest.mark.parametrize("dtype", ["bfloat16", "float32"])
def test_greedy_tokens_are_the_same_on_every_path(checkpoint, dtype):
    prompt = [5, 17, 42, 9, 250, 3, 77]
    reference = ossy.load(checkpoint, dtype=dtype, kernels="torch")
    assert reference.model.backend == "torch"
    expected = reference.generate(prompt, max_new_tokens=24)
    for path in PATHS:
        model = ossy.load(checkpoint, dtype=dtype, kernels=path)
        assert model.model.backend == f"native-{path}"
        assert model.generate(prompt, max_new_tokens=24) == expected
        logits, reference_logits = model.logits(prompt), reference.logits(prompt)
        torch.testing.assert_close(logits, reference_logits, rtol=1e-2, atol=1e-2 if dtype == "bfloat16" else 1e-4)


def test_without_the_library_the_pytorch_path_runs(checkpoint, monkeypatch, caplog):
    monkeypatch.setattr(native, "LIBRARY", native.LIBRARY.with_name("missing.so"))
    with caplog.at_level("WARNING", logger="ossy.model"):
        model = ossy.load(checkpoint, dtype="float32")
    assert model.model.backend == "torch" and "native kernels not built" in caplog.text
    assert len(model.generate([1, 2, 3], max_new_tokens=4)) == 4


def test_the_setting_picks_the_path(checkpoint):
    from ossy.config import SettingsError, settings

    assert settings({"OSSY_KERNELS": "torch"}).kernels == "torch"
    with pytest.raises(SettingsError, match="OSSY_KERNELS='fast'"):
        settings({"OSSY_KERNELS": "fast"})
    assert ossy.load(checkpoint, dtype="float32", kernels="torch").model.backend == "torch"
    with pytest.raises(USER_ERRORS, match="kernels 'fast'"):
        ossy.load(checkpoint, kernels="fast")


LINEAR_SHAPES = [(1, 2880, 5120), (3, 4096, 2880), (8, 64, 37), (2, 100, 7), (1, 31, 5), (5, 2880, 1)]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("shape", LINEAR_SHAPES, ids=[f"N{n}-in{i}-out{o}" for n, i, o in LINEAR_SHAPES])
def test_linear_matches_torch_to_one_bf16_rounding(path, shape):
    n, fan_in, out = shape
    g = torch.Generator().manual_seed(fan_in + out)
    x = torch.randn(n, fan_in, generator=g).to(torch.bfloat16)
    w = (torch.randn(out, fan_in, generator=g) * fan_in ** -0.5).to(torch.bfloat16)
    b = torch.randn(out, generator=g).to(torch.bfloat16)
    kernels = native.open_kernels(path)
    for bias in (b, None):
        got, expected = kernels.linear(x, w, bias), torch.nn.functional.linear(x, w, bias)
        assert got.dtype == torch.bfloat16 and got.shape == (n, out)
        assert (got == expected).float().mean() > 0.99  # the same sum in another order: rarely another rounding
        torch.testing.assert_close(got, expected, rtol=2 ** -7, atol=1e-2)
    with pytest.raises(RuntimeError, match="native linear kernel failed"):
        kernels.linear(torch.zeros(native.MAX_LINEAR_TOKENS + 1, fan_in, dtype=torch.bfloat16), w)


ATTENTION_CASES = [  # T queries, S keys, window, Hq, Hkv, D
    (1, 4096, None, 64, 8, 64),  # a decode step at 4k context
    (1, 300, 128, 64, 8, 64),  # a sliding layer
    (7, 300, 128, 64, 8, 64),  # a chunk of prefill on a sliding layer
    (5, 40, None, 4, 2, 16),  # the tiny test models' shape
    (33, 33, None, 4, 1, 16),  # a whole prompt, one kv head
]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("case", ATTENTION_CASES, ids=[f"T{t}-S{s}-w{w}-H{hq}/{hk}-D{d}" for t, s, w, hq, hk, d in ATTENTION_CASES])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_attention_matches_the_reference(path, case, dtype):
    from ossy.model.gptoss import attention, visible_keys

    T, S, window, Hq, Hkv, D = case
    g = torch.Generator().manual_seed(T * S + D)
    q, k, v = (torch.randn(n, h, D, generator=g).to(dtype) for n, h in ((T, Hq), (S, Hkv), (S, Hkv)))
    sinks = torch.randn(Hq, generator=g)
    query_positions, key_positions = torch.arange(S - T, S), torch.arange(S)
    if window is not None:  # a ring: slots never written hold a position outside every window
        key_positions = key_positions.clone()
        key_positions[:3] = -(2**62)
    expected = attention(q, k, v, sinks, visible_keys(query_positions, key_positions, window))
    got = native.open_kernels(path).attention(q, k, v, sinks, query_positions, key_positions, window)
    assert got.dtype == dtype and got.shape == expected.shape
    if dtype == torch.float32:
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    else:  # sums in another order, an exp within 2 ulp: rarely the neighbouring bf16
        assert (got == expected).float().mean() > 0.97
        torch.testing.assert_close(got, expected, rtol=2 ** -6, atol=2e-3)


NORM_CASES = [(1, 2880, 1.0), (3, 2880, 40.0), (8, 64, 1e-3), (2, 37, 1.0)]  # N, H, scale of x


@pytest.mark.skipif(not PATHS, reason="this CPU has neither AVX512-BF16 nor AVX2")
@pytest.mark.parametrize("case", NORM_CASES, ids=[f"N{n}-H{h}-x{s}" for n, h, s in NORM_CASES])
def test_rms_norm_to_one_rounding_and_rope_bit_identical(case):
    from ossy.model.gptoss import rms_norm, rope_tables, rotate

    n, hidden, scale = case
    g = torch.Generator().manual_seed(hidden + n)
    kernels = native.open_kernels(PATHS[0])
    x = (torch.randn(n, hidden, generator=g) * scale).to(torch.bfloat16)
    gain = torch.rand(hidden, generator=g) * 2
    got, expected = kernels.rms_norm(x, gain, 1e-5), rms_norm(x, gain, 1e-5)
    assert (got == expected).float().mean() >= 0.999  # the mean of squares summed in another order
    torch.testing.assert_close(got, expected, rtol=2 ** -7, atol=0)  # else one bf16 step
    Hq, Hkv, D = 8, 2, 16
    rows = torch.randn(n, (Hq + 2 * Hkv) * D, generator=g).to(torch.bfloat16)
    inv_freq = 1.0 / (150000 ** (torch.arange(0, D, 2).float() / D))
    cos, sin = rope_tables(inv_freq, torch.arange(1000, 1000 + n), 1.35, torch.bfloat16)
    q, k, v = rows.split((Hq * D, Hkv * D, Hkv * D), dim=-1)
    expected_q, expected_k = rotate(q.reshape(n, Hq, D), cos, sin), rotate(k.reshape(n, Hkv, D), cos, sin)
    rotated = rows.clone()
    kernels.rope(rotated, Hq + Hkv, D, cos, sin)  # q and k heads in place, v untouched
    got_q, got_k, got_v = rotated.split((Hq * D, Hkv * D, Hkv * D), dim=-1)
    assert torch.equal(got_q.reshape(n, Hq, D), expected_q) and torch.equal(got_k.reshape(n, Hkv, D), expected_k)
    assert torch.equal(got_v, v)


@pytest.mark.skipif(not PATHS, reason="this CPU has neither AVX512-BF16 nor AVX2")
def test_decode_matrices_are_copied_to_huge_pages_unchanged(checkpoint):
    reference = open_model(checkpoint, "bfloat16", kernels="torch")
    model = open_model(checkpoint, "bfloat16", kernels=PATHS[0])
    for got, expected in [(model.unembed, reference.unembed)] + [
            (pair, ref_pair) for layer, ref in zip(model.layers, reference.layers)
            for pair, ref_pair in ((layer.qkv, ref.qkv), (layer.out, ref.out))]:
        assert torch.equal(got, expected) and got.data_ptr() % native.HUGE_PAGE == 0
    region = native.hugepage_empty(3 * native.HUGE_PAGE + 5)
    assert region.numel() == 3 * native.HUGE_PAGE + 5 and region.untyped_storage().nbytes() == region.numel()
