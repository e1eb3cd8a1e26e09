"""KV cache: incremental decoding equals transformers' full recompute, also far past the window."""

from __future__ import annotations

import pytest
import tiny
import torch

from ossy.model.cache import KVCache
from ossy.model.gptoss import GptOss

WINDOW = 5
SEQ = 3 * WINDOW + 4  # well past the sliding window


@pytest.fixture(scope="module")
def pair():
    model = tiny.hf_model(seed=7, sliding_window=WINDOW, num_hidden_layers=3)
    ours = GptOss.from_tensors(tiny.ossy_config(model), tiny.tensors(model), torch.float32)
    tokens = torch.randint(0, model.config.vocab_size, (SEQ,), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        full = model(tokens[None]).logits[0]  # [SEQ, V]: transformers, no cache
    return ours, tokens, full, model


def assert_close(ours: torch.Tensor, theirs: torch.Tensor) -> None:
    err, scale = (ours - theirs).abs().max().item(), theirs.abs().max().item()
    assert err <= 1e-4 * scale, f"max |Δ| {err:.3g} vs max |logit| {scale:.3g}"


@pytest.mark.parametrize("chunks", [
    [3] + [1] * (SEQ - 3),  # short prefill, then one token at a time
    [1] * SEQ,  # one token at a time from the start
    [WINDOW + 2, 2, WINDOW + 3, 1, SEQ - 2 * WINDOW - 8],  # chunks longer than the window
    [SEQ],  # one prefill
], ids=["prefill+decode", "token-by-token", "long-chunks", "one-shot"])
def test_incremental_equals_full_recompute(pair, chunks):
    ours, tokens, full, _ = pair
    assert sum(chunks) == SEQ
    cache = ours.new_cache()
    parts, start = [], 0
    for n in chunks:
        parts.append(ours.forward(tokens[start:start + n], cache))
        start += n
    assert len(cache) == SEQ
    assert_close(torch.cat(parts), full)


def test_last_only_is_the_last_row(pair):
    ours, tokens, full, _ = pair
    cache = ours.new_cache()
    ours.forward(tokens[:-1], cache, last_only=True)
    last = ours.forward(tokens[-1:], cache, last_only=True)
    assert last.shape == (1, full.shape[1])
    assert_close(last, full[-1:])


def test_sliding_layers_keep_only_the_window(pair):
    ours, tokens, _, _ = pair
    cache = ours.new_cache()
    ours.forward(tokens, cache)
    sliding, full = cache.layers[0], cache.layers[1]
    assert sliding.window == WINDOW and full.window is None
    assert sliding.keys.shape[0] == WINDOW
    assert sorted(sliding.positions.tolist()) == list(range(SEQ - WINDOW, SEQ))
    assert full.length == SEQ and full.positions[:SEQ].tolist() == list(range(SEQ))


def test_full_layers_grow_past_their_first_buffer():
    model = tiny.hf_model(seed=8, layer_types=["full_attention", "sliding_attention"])
    config = tiny.ossy_config(model)
    cache = KVCache(config, torch.float32)
    layer = cache.layers[0]
    first = layer.keys.shape[0]
    k = torch.randn(first + 3, config.num_key_value_heads, config.head_dim)
    keys, values, positions = layer.update(k, k, torch.arange(first + 3))
    assert layer.keys.shape[0] >= first + 3
    assert torch.equal(keys, k) and positions.tolist() == list(range(first + 3))


def test_batch_of_sequences_at_different_positions(pair):
    """Two sequences in one step, one mid-sequence and one prefilling, each equal transformers."""
    ours, tokens, full, model = pair
    other = torch.randint(0, ours.config.vocab_size, (9,), generator=torch.Generator().manual_seed(2))
    a, b = ours.new_cache(), ours.new_cache()
    ours.forward(tokens[:12], a)
    got_a, got_b = ours.forward_batch([(tokens[12:], a), (other, b)])
    assert_close(got_a, full[12:])
    with torch.no_grad():
        assert_close(got_b, model(other[None]).logits[0])
