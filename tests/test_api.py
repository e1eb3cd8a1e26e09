"""The Python API: `ossy.load(path, dtype)`, `m.config`, `m.logits`, `m.generate`."""

from __future__ import annotations

import pytest
import tiny
import torch

import ossy
from ossy.errors import USER_ERRORS, ModelError, OssyError
from ossy.model.config import GptOssConfig


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    model = tiny.hf_model(seed=31, scale=2.0)
    path = tmp_path_factory.mktemp("api") / "dense"
    model.save_pretrained(path)
    return path, model


def test_load_defaults_to_bfloat16(checkpoint):
    path, _ = checkpoint
    m = ossy.load(path)
    assert m.model.dtype == torch.bfloat16
    assert m.model.layers[0].qkv.dtype == torch.bfloat16
    assert m.model.layers[0].input_norm.dtype == torch.float32  # norms stay fp32


def test_config_logits_and_shapes(checkpoint):
    path, model = checkpoint
    m = ossy.load(path, dtype="float32")
    assert isinstance(m.config, GptOssConfig) and m.config.vocab_size == model.config.vocab_size
    logits = m.logits([11, 12, 13])
    assert isinstance(logits, torch.FloatTensor) and logits.shape == (3, m.config.vocab_size)
    with torch.no_grad():
        expected = model(torch.tensor([[11, 12, 13]])).logits[0]
    torch.testing.assert_close(logits, expected, rtol=0, atol=1e-4 * expected.abs().max().item())


def test_generate_greedy_is_a_list_of_ints(checkpoint):
    m = ossy.load(checkpoint[0], dtype="float32")
    out = m.generate([11, 12], max_new_tokens=16, temperature=0.0)
    assert isinstance(out, list) and len(out) == 16 and all(type(t) is int for t in out)
    assert m.generate([11, 12], max_new_tokens=16) == out


def test_generate_sampling_is_seeded(checkpoint):
    m = ossy.load(checkpoint[0], dtype="float32")
    a = m.generate([11, 12], max_new_tokens=12, temperature=1.5, seed=1)
    assert a == m.generate([11, 12], max_new_tokens=12, temperature=1.5, seed=1)
    others = {tuple(m.generate([11, 12], max_new_tokens=12, temperature=1.5, seed=s)) for s in range(2, 6)}
    assert len(others | {tuple(a)}) > 1


def test_generate_stops_after_a_stop_id(checkpoint):
    m = ossy.load(checkpoint[0], dtype="float32")
    greedy = m.generate([11, 12], max_new_tokens=8)
    stop = greedy[3]
    first = greedy.index(stop)
    assert m.generate([11, 12], max_new_tokens=8, stop=[stop]) == greedy[: first + 1]


def test_bad_dtype_is_a_clear_error(checkpoint):
    with pytest.raises(USER_ERRORS, match="'float16' is not supported"):
        ossy.load(checkpoint[0], dtype="float16")


@pytest.mark.parametrize("ids", [[], [-1], [10**6]])
def test_bad_token_ids(checkpoint, ids):
    m = ossy.load(checkpoint[0], dtype="float32")
    with pytest.raises(OssyError):
        m.logits(ids)


def test_negative_temperature(checkpoint):
    with pytest.raises(OssyError, match="temperature"):
        ossy.load(checkpoint[0], dtype="float32").generate([1], max_new_tokens=2, temperature=-1.0)


def test_missing_checkpoint_is_a_model_error(tmp_path):
    with pytest.raises(ModelError):
        ossy.load(tmp_path / "nowhere")
