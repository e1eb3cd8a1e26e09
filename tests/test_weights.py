"""Checkpoint reading and writing (ossy.model.weights): round trips through every layout ossy
writes, a checkpoint written by transformers itself, the original/ layout checked against the
docs/reference/gpt-oss-spec.md §3.3 name table, and bad input turned into typed errors naming the file or tensor."""

from __future__ import annotations

import json
from pathlib import Path

import bad_checkpoints as bad
import pytest
import tiny
import torch
from safetensors import safe_open

from ossy.model.errors import CheckpointError
from ossy.model.mxfp4 import dequantize, quantize
from ossy.model.tensors import tensor_shapes
from ossy.model.weights import INDEX, Checkpoint, save_checkpoint

EXPERTS = ("gate_up_proj", "down_proj")


@pytest.fixture(scope="module")
def src():
    return bad.source()  # (config, canonical fp32 tensors with dense experts)


def _expert_names(config):
    return [f"model.layers.{i}.mlp.experts.{m}" for i in range(config.num_hidden_layers) for m in EXPERTS]


def _assert_same(loaded: dict, expected: dict) -> None:
    assert loaded.keys() == expected.keys()
    for name, t in expected.items():
        assert loaded[name].dtype == t.dtype, name
        assert torch.equal(loaded[name], t), name


def _packed_expected(config, tensors):
    """What an MXFP4 checkpoint of `tensors` must give back: experts quantized [E, out, in]."""
    out = dict(tensors)
    for name in _expert_names(config):
        out[name + "_blocks"], out[name + "_scales"] = quantize(out.pop(name).transpose(1, 2).contiguous())
    return out


def test_dense_round_trip_is_exact(src, tmp_path):
    config, tensors = src
    ckpt = Checkpoint.open(save_checkpoint(tmp_path / "c", config, tensors, mxfp4=False))
    assert ckpt.config == config.replace(quantization=None)
    assert not ckpt.mxfp4
    _assert_same(ckpt.load(torch.float32), tensors)
    _assert_same(ckpt.load(), {n: t.to(torch.bfloat16) for n, t in tensors.items()})
    assert {t.precision for t in ckpt.tensor_infos()} == {"F32"}


def test_mxfp4_round_trip(src, tmp_path):
    config, tensors = src
    ckpt = Checkpoint.open(save_checkpoint(tmp_path / "c", config, tensors))
    assert ckpt.mxfp4 and ckpt.config.quantization == "mxfp4"
    assert json.loads((tmp_path / "c" / "config.json").read_text())["quantization_config"]["quant_method"] == "mxfp4"
    loaded = ckpt.load(torch.float32)
    _assert_same(loaded, _packed_expected(config, tensors))
    for name in _expert_names(config):
        dense = tensors[name]  # [E, in, out]
        values = dequantize(loaded[name + "_blocks"], loaded[name + "_scales"], torch.float32).transpose(1, 2)
        assert values.shape == dense.shape
        assert (values - dense).abs().max() <= dense.abs().max() / 3  # within an FP4 step of the source
    infos = {t.name: t for t in ckpt.tensor_infos()}
    E, H, I = config.num_local_experts, config.hidden_size, config.intermediate_size
    assert (infos["model.layers.0.mlp.experts.gate_up_proj"].shape, infos["model.layers.0.mlp.experts.gate_up_proj"].precision,
            infos["model.layers.0.mlp.experts.gate_up_proj"].dtype) == ((E, 2 * I, H), "MXFP4", "U8")
    assert infos["model.layers.1.mlp.experts.down_proj"].shape == (E, H, I)
    assert not any(n.endswith(("_blocks", "_scales")) for n in infos)


def test_already_packed_experts_are_written_as_given(src, tmp_path):
    config, tensors = src
    packed = _packed_expected(config, tensors)
    ckpt = Checkpoint.open(save_checkpoint(tmp_path / "c", config, packed))
    _assert_same(ckpt.load(torch.float32), packed)


def _mapped_file(t: torch.Tensor) -> str | None:
    """The file whose memory mapping holds `t`'s data, from /proc/self/maps (Linux)."""
    maps = Path("/proc/self/maps")
    if not maps.exists():
        pytest.skip("needs /proc/self/maps")
    ptr = t.data_ptr()
    for line in maps.read_text().splitlines():
        fields = line.split(maxsplit=5)
        lo, hi = (int(x, 16) for x in fields[0].split("-"))
        if lo <= ptr < hi:
            return fields[5].strip() if len(fields) > 5 else None
    return None


def test_load_memory_maps_and_keeps_uint8(src, tmp_path):
    config, tensors = src
    path = save_checkpoint(tmp_path / "c", config, {n: t.bfloat16() for n, t in tensors.items()})
    loaded = Checkpoint.open(path).load(torch.bfloat16)
    blocks = loaded["model.layers.0.mlp.experts.gate_up_proj_blocks"]
    assert blocks.dtype == torch.uint8 and loaded["model.norm.weight"].dtype == torch.bfloat16
    # already in the requested dtype: views of the file's mapping, not copies in RAM
    for name in ("model.embed_tokens.weight", "model.layers.0.mlp.experts.gate_up_proj_blocks"):
        assert _mapped_file(loaded[name]) == str(path / "model.safetensors"), name
    cast = Checkpoint.open(path).load(torch.float32)["lm_head.weight"]  # a converted copy
    assert _mapped_file(cast) != str(path / "model.safetensors")


def test_sharded_with_index_and_hub_shard_names(src, tmp_path):
    config, tensors = src
    path = save_checkpoint(tmp_path / "c", config, tensors, max_shard_bytes=30_000)
    index = json.loads((path / INDEX).read_text())
    shards = sorted(set(index["weight_map"].values()))
    assert len(shards) > 2 and not (path / "model.safetensors").exists()
    # the hub numbers shards from 00000 (docs/reference/gpt-oss-spec.md §3.2): names come from the index,
    # not a pattern
    renamed = {old: f"model-{i:05d}-of-{len(shards) - 1:05d}.safetensors" for i, old in enumerate(shards)}
    for old, new in renamed.items():
        (path / old).rename(path / new)
    index["weight_map"] = {k: renamed[v] for k, v in index["weight_map"].items()}
    (path / INDEX).write_text(json.dumps(index))
    ckpt = Checkpoint.open(path)
    assert len({t.file.name for t in ckpt.tensor_infos()}) == len(shards)
    _assert_same(ckpt.load(torch.float32), _packed_expected(config, tensors))


def test_original_layout_matches_spec_name_table(src, tmp_path):
    config, tensors = src
    root = save_checkpoint(tmp_path / "c", config, tensors, original=True)
    assert sorted(p.name for p in root.iterdir()) == ["original"]  # a root holding only original/
    q = config.num_attention_heads * config.head_dim
    kv = config.num_key_value_heads * config.head_dim
    packed = _packed_expected(config, tensors)
    with safe_open(root / "original" / "model.safetensors", "pt") as f:
        qkv = f.get_tensor("block.1.attn.qkv.weight")
        assert torch.equal(qkv[:q], tensors["model.layers.1.self_attn.q_proj.weight"])
        assert torch.equal(qkv[q:q + kv], tensors["model.layers.1.self_attn.k_proj.weight"])
        assert torch.equal(qkv[q + kv:], tensors["model.layers.1.self_attn.v_proj.weight"])
        assert torch.equal(f.get_tensor("block.0.attn.qkv.bias")[q:q + kv], tensors["model.layers.0.self_attn.k_proj.bias"])
        assert torch.equal(f.get_tensor("block.0.mlp.mlp1_weight.blocks"), packed["model.layers.0.mlp.experts.gate_up_proj_blocks"])
        assert torch.equal(f.get_tensor("block.1.mlp.mlp2_weight.scales"), packed["model.layers.1.mlp.experts.down_proj_scales"])
        assert torch.equal(f.get_tensor("block.1.mlp.gate.bias"), tensors["model.layers.1.mlp.router.bias"])
        assert torch.equal(f.get_tensor("block.0.mlp.norm.scale"), tensors["model.layers.0.post_attention_layernorm.weight"])
        assert torch.equal(f.get_tensor("unembedding.weight"), tensors["lm_head.weight"])
        assert torch.equal(f.get_tensor("embedding.weight"), tensors["model.embed_tokens.weight"])
    original_cfg = json.loads((root / "original" / "config.json").read_text())
    assert original_cfg["num_experts"] == config.num_local_experts and "num_local_experts" not in original_cfg
    ckpt = Checkpoint.open(root)
    assert ckpt.path == root / "original"
    for field in ("vocab_size", "hidden_size", "num_local_experts", "num_experts_per_tok", "sliding_window",
                  "rope_scaling_factor", "original_max_position_embeddings", "layer_types"):
        assert getattr(ckpt.config, field) == getattr(config, field), field
    _assert_same(ckpt.load(torch.float32), packed)
    assert [t.name for t in ckpt.tensor_infos()] == [t.name for t in Checkpoint.open(
        save_checkpoint(tmp_path / "hf", config, tensors)).tensor_infos()]


def test_original_layout_dense_and_sharded(src, tmp_path):
    config, tensors = src
    root = save_checkpoint(tmp_path / "c", config, tensors, mxfp4=False, original=True, max_shard_bytes=50_000)
    assert (root / "original" / INDEX).is_file()
    with safe_open(next((root / "original").glob("*.safetensors")), "pt") as f:
        assert all(k.startswith(("block.", "embedding", "norm", "unembedding")) for k in f.keys())
    ckpt = Checkpoint.open(root / "original" / "config.json")
    _assert_same(ckpt.load(torch.float32), tensors)


def test_checkpoint_written_by_transformers_loads(tmp_path):
    model = tiny.hf_model(seed=2)
    model.save_pretrained(tmp_path)
    expected = {n: t.detach() for n, t in model.state_dict().items()}
    for path in (tmp_path, tmp_path / "config.json", tmp_path / "model.safetensors"):
        ckpt = Checkpoint.open(path)
        assert ckpt.config == tiny.ossy_config(model)
        _assert_same(ckpt.load(torch.float32), expected)


def test_tensor_shapes_are_transformers_parameter_shapes():
    model = tiny.hf_model(seed=3, num_local_experts=6, num_hidden_layers=3)
    expected = {n: tuple(p.shape) for n, p in model.named_parameters()}
    assert tensor_shapes(tiny.ossy_config(model), mxfp4=False) == expected


def test_save_is_atomic_and_refuses_to_overwrite(src, tmp_path):
    config, tensors = src
    incomplete = {n: t for n, t in tensors.items() if n != "model.norm.weight"}
    with pytest.raises(CheckpointError, match="missing tensor model.norm.weight"):
        save_checkpoint(tmp_path / "c", config, incomplete)
    assert list(tmp_path.iterdir()) == []  # no partial checkpoint, no temp dir left behind
    (tmp_path / "c").mkdir()
    save_checkpoint(tmp_path / "c", config, tensors)  # an empty directory is fine
    with pytest.raises(FileExistsError):
        save_checkpoint(tmp_path / "c", config, tensors)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]


@pytest.mark.parametrize("case", bad.CASES, ids=lambda c: c.name)
def test_bad_input_raises_typed_error_naming_file_or_tensor(case, tmp_path):
    path, words = bad.build(case, tmp_path)
    with pytest.raises(case.error) as exc:
        Checkpoint.open(path)
    message = str(exc.value)
    assert "\n" not in message
    for word in words:
        assert word in message
