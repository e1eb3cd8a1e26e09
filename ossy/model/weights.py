"""gpt-oss checkpoints on disk: find, validate, memory-map, and write them.

Owns: the mapping from the `original/` layout onto the canonical tensor names
(`ossy.model.tensors`), reading safetensors files (one, several, or sharded with
`model.safetensors.index.json`) without copying tensors into RAM, and `save_checkpoint`.
Every problem with the files is a `CheckpointError` naming the file and tensor; a missing or
non-gpt-oss config is a `ConfigError`.
Does not own: the MXFP4 arithmetic (`ossy.model.mxfp4`), the model math, or model stores.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from ossy.model.config import GptOssConfig
from ossy.model.errors import CheckpointError, ConfigError
from ossy.model.gguf_checkpoint import GgufCheckpoint
from ossy.model.gguf_file import is_gguf
from ossy.model.mxfp4 import BLOCK, quantize
from ossy.model.tensors import EXPERT_MATRICES, TensorInfo, tensor_shapes

CONFIG = "config.json"
INDEX = "model.safetensors.index.json"
ORIGINAL = "original"
_FLOAT_DTYPES = {"F16", "BF16", "F32", "F64"}


# -- the original/ layout ----------------------------------------------------------------------
_ORIGINAL_TOP = {
    "model.embed_tokens.weight": "embedding.weight",
    "model.norm.weight": "norm.scale",
    "lm_head.weight": "unembedding.weight",
}
_ORIGINAL_LAYER = {
    "input_layernorm.weight": "attn.norm.scale",
    "self_attn.sinks": "attn.sinks",
    "self_attn.o_proj.weight": "attn.out.weight",
    "self_attn.o_proj.bias": "attn.out.bias",
    "post_attention_layernorm.weight": "mlp.norm.scale",
    "mlp.router.weight": "mlp.gate.weight",
    "mlp.router.bias": "mlp.gate.bias",
    "mlp.experts.gate_up_proj_blocks": "mlp.mlp1_weight.blocks",
    "mlp.experts.gate_up_proj_scales": "mlp.mlp1_weight.scales",
    "mlp.experts.gate_up_proj_bias": "mlp.mlp1_bias",
    "mlp.experts.down_proj_blocks": "mlp.mlp2_weight.blocks",
    "mlp.experts.down_proj_scales": "mlp.mlp2_weight.scales",
    "mlp.experts.down_proj_bias": "mlp.mlp2_bias",
    "mlp.experts.gate_up_proj": "mlp.mlp1_weight",  # stored [E, out, in]
    "mlp.experts.down_proj": "mlp.mlp2_weight",
}
_LAYER_NAME = re.compile(r"model\.layers\.(\d+)\.(.+)")
_QKV = re.compile(r"self_attn\.([qkv])_proj\.(weight|bias)")


@dataclass(frozen=True)
class _Stored:
    """Where a canonical tensor lives in a file, and how to turn the stored tensor into it."""

    key: str  # name in the safetensors file
    shape: tuple[int, ...]  # shape the file must have
    rows: slice | None = None  # these rows of the stored tensor (original fused qkv)
    transpose: bool = False  # stored [E, out, in], canonical [E, in, out] (original dense experts)


def _hf_stored(name: str, shape: tuple[int, ...], config: GptOssConfig) -> _Stored:
    return _Stored(name, shape)


def _original_stored(name: str, shape: tuple[int, ...], config: GptOssConfig) -> _Stored:
    if name in _ORIGINAL_TOP:
        return _Stored(_ORIGINAL_TOP[name], shape)
    layer, rest = _LAYER_NAME.fullmatch(name).groups()
    block = f"block.{layer}."
    qkv = _QKV.fullmatch(rest)
    if qkv:
        q, kv = config.num_attention_heads * config.head_dim, config.num_key_value_heads * config.head_dim
        start = {"q": 0, "k": q, "v": q + kv}[qkv[1]]
        return _Stored(block + "attn.qkv." + qkv[2], (q + 2 * kv,) + shape[1:], slice(start, start + shape[0]))
    if rest.endswith(EXPERT_MATRICES):
        E, inp, out = shape
        return _Stored(block + _ORIGINAL_LAYER[rest], (E, out, inp), transpose=True)
    return _Stored(block + _ORIGINAL_LAYER[rest], shape)


def _original_config(config: GptOssConfig) -> dict:
    """`original/config.json` (docs/reference/gpt-oss-spec.md §1.2) for `config`."""
    return {
        "num_hidden_layers": config.num_hidden_layers,
        "num_experts": config.num_local_experts,
        "experts_per_token": config.num_experts_per_tok,
        "vocab_size": config.vocab_size,
        "hidden_size": config.hidden_size,
        "intermediate_size": config.intermediate_size,
        "swiglu_limit": config.swiglu_limit,
        "head_dim": config.head_dim,
        "num_attention_heads": config.num_attention_heads,
        "num_key_value_heads": config.num_key_value_heads,
        "sliding_window": config.sliding_window,
        "initial_context_length": config.original_max_position_embeddings,
        "rope_theta": config.rope_theta,
        "rope_scaling_factor": config.rope_scaling_factor,
        "rope_ntk_alpha": config.rope_beta_slow,
        "rope_ntk_beta": config.rope_beta_fast,
    }


# -- reading -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Source:
    file: Path
    stored: _Stored
    dtype: str


class Checkpoint:
    """A validated gpt-oss checkpoint; tensors are read (memory-mapped) only by `load`."""

    def __init__(self, path: Path, config: GptOssConfig, sources: dict[str, _Source]) -> None:
        self.path = path
        self.config = config
        self._sources = sources

    @classmethod
    def open(cls, path: str | os.PathLike) -> "Checkpoint":
        """Open a checkpoint directory (HF layout, `original/` layout, or a root holding only
        `original/`), its `config.json`, one `.safetensors` file beside a `config.json`, or a
        GGUF file (any name: an Ollama blob has none; `ossy.model.gguf_checkpoint`)."""
        if is_gguf(path):
            return GgufCheckpoint.open(path)
        directory, file = _locate(Path(path))
        config = GptOssConfig.from_file(directory / CONFIG)
        files, where = ({file: None}, file) if file else _weight_files(directory)
        headers = _read_headers(files)
        original = any(key.startswith("block.") or key == "embedding.weight" for key in headers)
        packed = any(key.endswith(("_blocks", ".blocks")) for key in headers)
        to_stored = _original_stored if original else _hf_stored
        sources = {name: _source(headers, to_stored(name, shape, config), where)
                   for name, shape in tensor_shapes(config, mxfp4=packed).items()}
        return cls(directory, config, sources)

    @property
    def mxfp4(self) -> bool:
        """True when the experts are stored as MXFP4 blocks + scales."""
        return any(name.endswith("_blocks") for name in self._sources)

    @property
    def expert_precision(self) -> str:
        """MXFP4 for the released checkpoints, else the stored dtype of the experts."""
        return next(t.precision for t in self.tensor_infos() if t.name.endswith("experts.gate_up_proj"))

    def tensor_infos(self) -> list[TensorInfo]:
        infos = []
        for name, src in self._sources.items():
            if name.endswith("_scales"):
                continue
            shape = _canonical_shape(src.stored)
            if name.endswith("_blocks"):
                E, out, groups, _ = shape
                infos.append(TensorInfo(name[: -len("_blocks")], (E, out, groups * BLOCK), src.dtype,
                                        "MXFP4", src.file))
            else:
                infos.append(TensorInfo(name, shape, src.dtype, src.dtype, src.file))
        return infos

    def load(self, dtype: torch.dtype = torch.bfloat16) -> dict[str, torch.Tensor]:
        """All tensors by canonical name: floating ones in `dtype`, MXFP4 blocks/scales as uint8.

        Tensors already stored in `dtype` stay views of the memory-mapped file.
        """
        out: dict[str, torch.Tensor] = {}
        by_file: dict[Path, list[str]] = {}
        for name, src in self._sources.items():
            by_file.setdefault(src.file, []).append(name)
        for file, names in by_file.items():
            with _open_safetensors(file) as f:
                for name in names:
                    out[name] = _read(f, self._sources[name].stored, dtype)
        return out


def _locate(path: Path) -> tuple[Path, Path | None]:
    """(directory holding config.json, the one weight file given or None to find them)."""
    if path.is_file():
        if path.suffix == ".safetensors":
            return _config_dir(path.parent), path
        if path.suffix == ".json":
            return _config_dir(path.parent), None
        raise CheckpointError(f"{path}: not a checkpoint (expected a directory, config.json or .safetensors file)")
    if not path.exists():
        raise CheckpointError(f"{path}: no such file or directory")
    return _config_dir(path), None


def _config_dir(directory: Path) -> Path:
    if (directory / CONFIG).is_file():
        return directory
    if (directory / ORIGINAL / CONFIG).is_file():
        return directory / ORIGINAL
    raise ConfigError(f"{directory / CONFIG}: config file not found")


def _weight_files(directory: Path) -> tuple[dict[Path, list[str] | None], Path]:
    """({file: the tensors to take from it, None for all}, the path to name in errors).

    With an index, its weight map is authoritative: each listed shard must exist and hold the
    tensors listed for it. Without one, every *.safetensors file in `directory` is read.
    """
    index = directory / INDEX
    if not index.is_file():
        files = sorted(directory.glob("*.safetensors"))
        if not files:
            raise CheckpointError(f"{directory}: no .safetensors weight files")
        return dict.fromkeys(files), files[0] if len(files) == 1 else directory
    try:
        weight_map = json.loads(index.read_text())["weight_map"]
        shards: dict[Path, list[str]] = {}
        for key, name in weight_map.items():
            shards.setdefault(directory / name, []).append(key)
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, AttributeError):
        raise CheckpointError(f"{index}: not a valid safetensors index (needs a 'weight_map' object)") from None
    for shard in shards:
        if not shard.is_file():
            raise CheckpointError(f"{shard}: shard file not found (listed in {INDEX})")
    return shards, index


def _open_safetensors(file: Path):
    try:
        return safe_open(file, framework="pt")
    except SafetensorError as exc:
        detail = str(exc).removeprefix("Error while deserializing header: ")
        raise CheckpointError(f"{file}: truncated or corrupt safetensors file ({detail})") from None
    except OSError as exc:
        raise CheckpointError(f"{file}: cannot read: {exc.strerror}") from None


def _read_headers(files: dict[Path, list[str] | None]) -> dict[str, tuple[Path, str, tuple[int, ...]]]:
    """key -> (file, dtype, shape) over the tensors to take from each file (None: all)."""
    headers: dict[str, tuple[Path, str, tuple[int, ...]]] = {}
    for file, wanted in files.items():
        with _open_safetensors(file) as f:
            present = set(f.keys())
            for key in sorted(present) if wanted is None else wanted:
                if key not in present:
                    raise CheckpointError(f"{file}: missing tensor {key} (listed in {INDEX})")
                if key in headers:
                    raise CheckpointError(f"{file}: tensor {key} is also in {headers[key][0]}")
                info = f.get_slice(key)
                headers[key] = (file, info.get_dtype(), tuple(info.get_shape()))
    return headers


def _source(headers: dict, stored: _Stored, where: Path) -> _Source:
    """Validate one stored tensor's presence, shape and dtype."""
    if stored.key not in headers:
        raise CheckpointError(f"{where}: missing tensor {stored.key}")
    file, dtype, shape = headers[stored.key]
    if shape != stored.shape:
        raise CheckpointError(f"{file}: tensor {stored.key} has shape {list(shape)}, expected {list(stored.shape)}")
    packed = stored.key.endswith(("_blocks", "_scales", ".blocks", ".scales"))
    if (dtype != "U8") if packed else (dtype not in _FLOAT_DTYPES):
        expected = "U8" if packed else "a floating-point type"
        raise CheckpointError(f"{file}: tensor {stored.key} has dtype {dtype}, expected {expected}")
    return _Source(file, stored, dtype)


def _canonical_shape(stored: _Stored) -> tuple[int, ...]:
    shape = stored.shape
    if stored.rows is not None:
        shape = (stored.rows.stop - stored.rows.start,) + shape[1:]
    if stored.transpose:
        shape = (shape[0], shape[2], shape[1])
    return shape


def _read(f, stored: _Stored, dtype: torch.dtype) -> torch.Tensor:
    t = f.get_slice(stored.key)[stored.rows] if stored.rows is not None else f.get_tensor(stored.key)
    if stored.transpose:
        t = t.transpose(1, 2)
    if t.is_floating_point():
        t = t.to(dtype)
    return t.contiguous()


# -- writing -----------------------------------------------------------------------------------
def save_checkpoint(path: str | os.PathLike, config: GptOssConfig, tensors: dict[str, torch.Tensor], *,
                    mxfp4: bool = True, max_shard_bytes: int | None = None, original: bool = False) -> Path:
    """Write `tensors` (canonical names) as a checkpoint directory at `path`, atomically.

    Experts may be given dense (HF layout) or as MXFP4 blocks + scales; with `mxfp4=True` dense
    experts are quantized, with `mxfp4=False` they must be dense. `max_shard_bytes` splits the
    weights into shards with an index. `original=True` writes the `original/` layout under
    `path/original/`. `path` must not exist or be an empty directory.
    """
    path = Path(path)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise FileExistsError(f"{path}: already exists and is not an empty directory")
    tensors = _packed(tensors, config) if mxfp4 else tensors
    shapes = tensor_shapes(config, mxfp4=mxfp4)
    for name, shape in shapes.items():
        if name not in tensors:
            raise CheckpointError(f"save_checkpoint: missing tensor {name}")
        if tuple(tensors[name].shape) != shape:
            raise CheckpointError(f"save_checkpoint: tensor {name} has shape {list(tensors[name].shape)}, "
                                  f"expected {list(shape)}")
    config = config.replace(quantization="mxfp4" if mxfp4 else None)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        if original:
            (tmp / ORIGINAL).mkdir()
            stored = _to_original({name: tensors[name] for name in shapes}, config)
            _write_dir(tmp / ORIGINAL, _original_config(config), stored, max_shard_bytes)
        else:
            _write_dir(tmp, config.to_hf_dict(), {name: tensors[name] for name in shapes}, max_shard_bytes)
        if path.exists():
            path.rmdir()
        tmp.rename(path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def _packed(tensors: dict[str, torch.Tensor], config: GptOssConfig) -> dict[str, torch.Tensor]:
    """`tensors` with dense expert matrices replaced by MXFP4 blocks + scales."""
    out = dict(tensors)
    for i in range(config.num_hidden_layers):
        for matrix in EXPERT_MATRICES:
            name = f"model.layers.{i}.mlp.experts.{matrix}"
            if name in out:
                dense = out.pop(name)  # [E, in, out]
                out[name + "_blocks"], out[name + "_scales"] = quantize(dense.transpose(1, 2).contiguous())
    return out


def _to_original(tensors: dict[str, torch.Tensor], config: GptOssConfig) -> dict[str, torch.Tensor]:
    """Canonical tensors -> original/ names: q, k, v fused into qkv, dense experts [E, out, in]."""
    stored: dict[str, torch.Tensor] = {}
    fused: dict[str, list[tuple[int, torch.Tensor]]] = {}
    for name, t in tensors.items():
        s = _original_stored(name, tuple(t.shape), config)
        if s.rows is not None:
            fused.setdefault(s.key, []).append((s.rows.start, t))
        else:
            stored[s.key] = t.transpose(1, 2).contiguous() if s.transpose else t
    for key, parts in fused.items():
        stored[key] = torch.cat([t for _, t in sorted(parts, key=lambda p: p[0])])
    return stored


def _write_dir(directory: Path, config_dict: dict, tensors: dict[str, torch.Tensor],
               max_shard_bytes: int | None) -> None:
    (directory / CONFIG).write_text(json.dumps(config_dict, indent=2) + "\n")
    tensors = {name: t.contiguous() for name, t in tensors.items()}
    shards = _shards(tensors, max_shard_bytes)
    if len(shards) == 1 and max_shard_bytes is None:
        save_file(tensors, directory / "model.safetensors", metadata={"format": "pt"})
        return
    weight_map = {}
    for n, shard in enumerate(shards, start=1):
        file = f"model-{n:05d}-of-{len(shards):05d}.safetensors"
        save_file({name: tensors[name] for name in shard}, directory / file, metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(shard, file))
    total = sum(t.numel() * t.element_size() for t in tensors.values())
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (directory / INDEX).write_text(json.dumps(index, indent=2) + "\n")


def _shards(tensors: dict[str, torch.Tensor], max_bytes: int | None) -> list[list[str]]:
    """Tensor names grouped in order into shards of at most `max_bytes` (a bigger tensor alone)."""
    shards: list[list[str]] = [[]]
    size = 0
    for name, t in tensors.items():
        nbytes = t.numel() * t.element_size()
        if max_bytes is not None and shards[-1] and size + nbytes > max_bytes:
            shards.append([])
            size = 0
        shards[-1].append(name)
        size += nbytes
    return shards
