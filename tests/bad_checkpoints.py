"""Broken checkpoints shared by the bad-input tests of the API (test_weights) and the CLI
(test_cli_show).

Each case damages a freshly written, valid tiny MXFP4 checkpoint and states the exception the
API must raise and the words (file, tensor, shape) its one-line message must contain.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import tiny
import torch
from safetensors.torch import load_file, save_file

from ossy.model.config import GptOssConfig
from ossy.model.errors import CheckpointError, ConfigError
from ossy.model.weights import INDEX, save_checkpoint


@functools.cache
def source() -> tuple[GptOssConfig, dict[str, torch.Tensor]]:
    model = tiny.hf_model(seed=1)
    return tiny.ossy_config(model), tiny.tensors(model)


def write_good(path: Path, *, shard_bytes: int | None = None) -> Path:
    config, tensors = source()
    return save_checkpoint(path, config, tensors, mxfp4=True, max_shard_bytes=shard_bytes)


def _rewrite(file: Path, change: Callable[[dict], None]) -> None:
    tensors = load_file(file)
    change(tensors)
    save_file(tensors, file)


# Each damage function takes a good checkpoint dir and returns (path to open, words in the error).
def missing_config(d: Path):
    (d / "config.json").unlink()
    return d, ["config.json", str(d)]


def not_gpt_oss(d: Path):
    cfg = json.loads((d / "config.json").read_text())
    cfg.update(model_type="llama", architectures=["LlamaForCausalLM"])
    (d / "config.json").write_text(json.dumps(cfg))
    return d, ["config.json", "llama", "gpt-oss"]


def missing_tensor(d: Path):
    _rewrite(d / "model.safetensors", lambda t: t.pop("model.layers.1.mlp.router.bias"))
    return d, ["model.safetensors", "missing tensor model.layers.1.mlp.router.bias"]


def wrong_shape(d: Path):
    name = "model.layers.0.self_attn.k_proj.weight"  # [32, 64] in the tiny config
    _rewrite(d / "model.safetensors", lambda t: t.__setitem__(name, torch.zeros(31, 64)))
    return d, ["model.safetensors", name, "[31, 64]", "[32, 64]"]


def wrong_dtype(d: Path):
    name = "model.layers.0.mlp.experts.down_proj_scales"
    _rewrite(d / "model.safetensors", lambda t: t.__setitem__(name, t[name].float()))
    return d, ["model.safetensors", name, "F32", "U8"]


def truncated(d: Path):
    file = d / "model.safetensors"
    file.write_bytes(file.read_bytes()[:-100])
    return d, ["model.safetensors", "truncated"]


def bad_header(d: Path):
    file = d / "model.safetensors"
    data = bytearray(file.read_bytes())
    data[8:20] = b"not json at!"
    file.write_bytes(bytes(data))
    return d, ["model.safetensors", "JSON"]


def missing_shard(d: Path):
    shard = sorted(d.glob("model-*.safetensors"))[1]
    shard.unlink()
    return d, [shard.name, "not found"]


def missing_index_entry(d: Path):
    index = json.loads((d / INDEX).read_text())
    del index["weight_map"]["model.layers.0.self_attn.sinks"]
    (d / INDEX).write_text(json.dumps(index))
    return d, [INDEX, "missing tensor model.layers.0.self_attn.sinks"]


def no_such_path(d: Path):
    return d / "nope", [str(d / "nope")]


@dataclass(frozen=True)
class Case:
    damage: Callable[[Path], tuple[Path, list[str]]]
    error: type
    sharded: bool = False

    @property
    def name(self) -> str:
        return self.damage.__name__


CASES = [
    Case(missing_config, ConfigError),
    Case(not_gpt_oss, ConfigError),
    Case(missing_tensor, CheckpointError),
    Case(wrong_shape, CheckpointError),
    Case(wrong_dtype, CheckpointError),
    Case(truncated, CheckpointError),
    Case(bad_header, CheckpointError),
    Case(missing_shard, CheckpointError, sharded=True),
    Case(missing_index_entry, CheckpointError, sharded=True),
    Case(no_such_path, CheckpointError),
]


def build(case: Case, directory: Path) -> tuple[Path, list[str]]:
    """Write a good checkpoint in `directory`, damage it, return (path to open, expected words)."""
    good = write_good(directory / "ckpt", shard_bytes=40_000 if case.sharded else None)
    return case.damage(good)
