"""gpt-oss checkpoints in GGUF files: llama.cpp's flavour and Ollama's, read into ossy's canonical
config and tensors.

Owns: recognising a GGUF file (its magic), the two gpt-oss flavours and their names (llama.cpp's
architecture `gpt-oss`, as ggml-org, unsloth and bartowski publish it; Ollama's `gptoss`, as its
own converter wrote the library blob: `attn_out`, `ffn_norm`, `attn_sinks` without `.weight`, no
`expert_feed_forward_length`, no YaRN keys, and in its launch-time form one fused
`ffn_gate_up_exps` without ggml's nibble reorder), the config they describe, and turning their
tensors into the canonical ones of `ossy.model.weights` (HF names and layouts), with one-line
errors naming the file and the tensor.
Does not own: the model math, the GGUF tokenizer (`ossy.tokenizer`), model stores.

Reading is `ossy.model.gguf_file`'s; Q8_0 dequantization is gguf-py's (`gguf.quants`). Choices, stated:
- F32/F16/BF16 tensors already in the model's dtype stay views of the mapped file.
- MXFP4 experts are repacked once at load into the HF layout the MoE kernel reads (scales apart
  from the nibbles, HF's nibble order, gate and up rows interleaved): the same bytes, not an
  expansion, read with plain file reads so the mapping does not also hold them, layers on every
  core. The 20b-shaped GGUF loads to its first token in 23 s here (llama.cpp: 19 s), peak RSS 13.3 GB.
- Q8_0 tensors (the attention projections of some GGUFs) are expanded to the model dtype: for
  gpt-oss-20b that is ~0.6 GB more than Q8_0, within the memory budget, and no Q8_0 kernel.
- YaRN as gpt-oss defines it: a GGUF has no key for the correction range's truncation, and
  llama.cpp rounds it; ossy computes gpt-oss GGUFs untruncated, like the HF checkpoint.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from gguf import GGMLQuantizationType, quants

from ossy.model.config import FULL, SLIDING, GptOssConfig
from ossy.model.errors import CheckpointError, ConfigError
from ossy.model.gguf_file import GgufFile, TensorEntry, read
from ossy.model.mxfp4 import BLOCK
from ossy.model.tensors import TensorInfo, tensor_shapes

LLAMA_CPP, OLLAMA = "gpt-oss", "gptoss"  # general.architecture of each flavour
_FLOAT_TYPES = ("F32", "F16", "BF16")
_SUPPORTED = (*_FLOAT_TYPES, "Q8_0", "MXFP4")
_DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}

# canonical name (after `model.layers.{i}.` for per-layer ones) -> GGUF name per flavour
_TOP = {
    "model.embed_tokens.weight": "token_embd.weight",
    "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
}
_LAYER = {
    "input_layernorm.weight": ("attn_norm.weight", "attn_norm.weight"),
    "self_attn.q_proj.weight": ("attn_q.weight", "attn_q.weight"),
    "self_attn.q_proj.bias": ("attn_q.bias", "attn_q.bias"),
    "self_attn.k_proj.weight": ("attn_k.weight", "attn_k.weight"),
    "self_attn.k_proj.bias": ("attn_k.bias", "attn_k.bias"),
    "self_attn.v_proj.weight": ("attn_v.weight", "attn_v.weight"),
    "self_attn.v_proj.bias": ("attn_v.bias", "attn_v.bias"),
    "self_attn.o_proj.weight": ("attn_output.weight", "attn_out.weight"),
    "self_attn.o_proj.bias": ("attn_output.bias", "attn_out.bias"),
    "self_attn.sinks": ("attn_sinks.weight", "attn_sinks"),
    "post_attention_layernorm.weight": ("post_attention_norm.weight", "ffn_norm.weight"),
    "mlp.router.weight": ("ffn_gate_inp.weight", "ffn_gate_inp.weight"),
    "mlp.router.bias": ("ffn_gate_inp.bias", "ffn_gate_inp.bias"),
}
_EXPERTS = ("gate", "up", "down")  # ffn_{gate,up,down}_exps.{weight,bias}
_FUSED = "ffn_gate_up_exps"  # Ollama's launch-time form


class GgufCheckpoint:
    """A validated gpt-oss GGUF; tensors are read by `load`. Same interface as
    `ossy.model.weights.Checkpoint` (config, path, mxfp4, tensor_infos, load)."""

    def __init__(self, file: GgufFile, config: GptOssConfig, flavour: str) -> None:
        self.path, self.config, self.flavour = file.path, config, flavour
        self.file, self.fields, self._tensors = file, file.fields, file.tensors

    @classmethod
    def open(cls, path: str | os.PathLike) -> "GgufCheckpoint":
        file = read(path)
        arch = file.fields.get("general.architecture")
        if arch not in (LLAMA_CPP, OLLAMA):
            raise ConfigError(f"{file.path}: GGUF architecture {arch!r} is not gpt-oss (expected 'gpt-oss' or 'gptoss')")
        for t in file.tensors.values():
            if t.type not in _SUPPORTED:
                raise CheckpointError(f"{file.path}: tensor {t.name} has type {t.type}, which ossy cannot load "
                                      f"(supported: {', '.join(_SUPPORTED)})")
        checkpoint = cls(file, _config(file.path, arch, file.fields, file.tensors), arch)
        checkpoint._check_shapes()
        return checkpoint

    # -- what the file holds -----------------------------------------------------------------
    @property
    def mxfp4(self) -> bool:
        return self._get("blk.0.ffn_down_exps.weight").type == "MXFP4"

    @property
    def expert_precision(self) -> str:
        return self._get("blk.0.ffn_down_exps.weight").type

    @property
    def form(self) -> str:
        """How the experts' gate and up are stored: "split" (ffn_gate_exps + ffn_up_exps),
        "interleaved" (Ollama's fused ffn_gate_up_exps, HF's rows) or "halves" (llama.cpp's
        fused option: all gate rows, then all up rows)."""
        if "blk.0.ffn_gate_up_exps.weight" not in self._tensors:
            return "split"
        return "interleaved" if self.flavour == OLLAMA else "halves"

    def _get(self, name: str) -> TensorEntry:
        if name not in self._tensors:
            raise CheckpointError(f"{self.path}: missing tensor {name}")
        return self._tensors[name]

    def _name(self, canonical: str) -> str:
        if canonical in _TOP:
            return _TOP[canonical]
        layer, rest = canonical.removeprefix("model.layers.").split(".", 1)
        return f"blk.{layer}." + _LAYER[rest][self.flavour == OLLAMA]

    def _qkv(self, canonical: str) -> tuple[str, slice] | None:
        """(the fused attn_qkv tensor, the rows of q, k or v) where the file fuses them."""
        layer, rest = canonical.removeprefix("model.layers.").split(".", 1)
        which = rest.removeprefix("self_attn.")[:1]
        fused = f"blk.{layer}.attn_qkv." + rest.rsplit(".", 1)[1]
        if not rest.startswith("self_attn.") or which not in "qkv" or fused not in self._tensors:
            return None
        c = self.config
        q, kv = c.num_attention_heads * c.head_dim, c.num_key_value_heads * c.head_dim
        start = {"q": 0, "k": q, "v": q + kv}[which]
        return fused, slice(start, start + (q if which == "q" else kv))

    def _check_shapes(self) -> None:
        c = self.config
        H, E, I = c.hidden_size, c.num_local_experts, c.intermediate_size
        q, kv = c.num_attention_heads * c.head_dim, c.num_key_value_heads * c.head_dim
        for canonical, shape in tensor_shapes(c, mxfp4=False).items():
            if ".mlp.experts." in canonical:
                continue
            fused = canonical.startswith("model.layers.") and self._qkv(canonical)
            if fused:
                self._expect(self._get(fused[0]), (q + 2 * kv, *shape[1:]))
            else:
                self._expect(self._get(self._name(canonical)), shape)
        for i in range(c.num_hidden_layers):
            if self.form == "split":
                for which in ("gate", "up"):
                    self._expect(self._get(f"blk.{i}.ffn_{which}_exps.weight"), (E, I, H))
                    self._expect(self._get(f"blk.{i}.ffn_{which}_exps.bias"), (E, I))
            else:
                self._expect(self._get(f"blk.{i}.ffn_gate_up_exps.weight"), (E, 2 * I, H))
                self._expect(self._get(f"blk.{i}.ffn_gate_up_exps.bias"), (E, 2 * I))
            self._expect(self._get(f"blk.{i}.ffn_down_exps.weight"), (E, H, I))
            self._expect(self._get(f"blk.{i}.ffn_down_exps.bias"), (E, H))
            for t in self._expert_weights(i):
                if (t.type == "MXFP4") != self.mxfp4:
                    raise CheckpointError(f"{self.path}: tensor {t.name} is {t.type}, but the experts of layer 0 "
                                          f"are {self._get('blk.0.ffn_down_exps.weight').type}")

    def _expert_weights(self, layer: int) -> list[TensorEntry]:
        names = ["ffn_gate_exps", "ffn_up_exps"] if self.form == "split" else ["ffn_gate_up_exps"]
        return [self._get(f"blk.{layer}.{name}.weight") for name in names + ["ffn_down_exps"]]

    def _expect(self, t: TensorEntry, shape: tuple[int, ...]) -> None:
        if t.shape != tuple(shape):
            raise CheckpointError(f"{self.path}: tensor {t.name} has shape {list(t.shape)}, expected {list(shape)}")

    def tensor_infos(self) -> list:
        """The file's tensors as stored (GGUF names and types)."""
        return [TensorInfo(t.name, t.shape, t.type, t.type, self.path) for t in self._tensors.values()]

    # -- reading -----------------------------------------------------------------------------
    def load(self, dtype: torch.dtype = torch.bfloat16) -> dict[str, torch.Tensor]:
        """All tensors by canonical name: floating ones in `dtype`, MXFP4 experts as HF blocks +
        scales (uint8)."""
        out: dict[str, torch.Tensor] = {}
        for canonical in tensor_shapes(self.config, mxfp4=False):
            if ".mlp.experts." in canonical:
                continue
            fused = canonical.startswith("model.layers.") and self._qkv(canonical)
            if fused:
                out[canonical] = self._floats(self._get(fused[0]), dtype)[fused[1]].contiguous()
            else:
                out[canonical] = self._floats(self._get(self._name(canonical)), dtype)
        with ThreadPoolExecutor(max_workers=len(os.sched_getaffinity(0))) as pool:  # numpy's ops release the GIL
            for experts in pool.map(lambda i: self._experts(i, dtype), range(self.config.num_hidden_layers)):
                out.update(experts)
        return out

    def _floats(self, t: TensorEntry, dtype: torch.dtype) -> torch.Tensor:
        raw = self.file.bytes_of(t)
        if t.type in _FLOAT_TYPES:
            return torch.from_numpy(raw).view(_DTYPES[t.type]).reshape(t.shape).to(dtype)
        if t.type == "Q8_0":
            rows = raw.reshape(-1, raw.size // (int(np.prod(t.shape[:-1])) or 1))
            values = quants.dequantize(rows, GGMLQuantizationType.Q8_0)
            return torch.from_numpy(values).reshape(t.shape).to(dtype)
        raise CheckpointError(f"{self.path}: tensor {t.name} has type {t.type}, expected a float or Q8_0 type")

    def _matrix(self, t: TensorEntry, dtype: torch.dtype):
        """An expert matrix [E, out, in]: (HF blocks, scales) for MXFP4, else floats."""
        return self._mxfp4(t) if t.type == "MXFP4" else self._floats(t, dtype)

    def _experts(self, layer: int, dtype: torch.dtype) -> dict[str, torch.Tensor]:
        """One layer's experts in the canonical names and layouts (gate and up rows interleaved)."""
        b = f"blk.{layer}."
        if self.form == "split":
            gate_up = _interleave_rows(*(self._matrix(self._get(b + f"ffn_{w}_exps.weight"), dtype) for w in ("gate", "up")))
            bias = _interleave_rows(*(self._floats(self._get(b + f"ffn_{w}_exps.bias"), dtype) for w in ("gate", "up")))
        else:
            gate_up = self._matrix(self._get(b + "ffn_gate_up_exps.weight"), dtype)
            bias = self._floats(self._get(b + "ffn_gate_up_exps.bias"), dtype)
            if self.form == "halves":
                I = self.config.intermediate_size
                gate_up = _interleave_rows(*_halves(gate_up, I))
                bias = _interleave_rows(bias[:, :I], bias[:, I:])
        down = self._matrix(self._get(b + "ffn_down_exps.weight"), dtype)
        p = f"model.layers.{layer}.mlp.experts."
        out = {p + "gate_up_proj_bias": bias, p + "down_proj_bias": self._floats(self._get(b + "ffn_down_exps.bias"), dtype)}
        if self.mxfp4:
            out[p + "gate_up_proj_blocks"], out[p + "gate_up_proj_scales"] = gate_up
            out[p + "down_proj_blocks"], out[p + "down_proj_scales"] = down
        else:  # dense: canonical [E, in, out] (x @ W)
            out[p + "gate_up_proj"] = gate_up.transpose(1, 2).contiguous()
            out[p + "down_proj"] = down.transpose(1, 2).contiguous()
        return out

    def _mxfp4(self, t: TensorEntry) -> tuple[torch.Tensor, torch.Tensor]:
        """ggml block_mxfp4 bytes (per 32 elements: a scale byte, 16 nibble bytes) -> HF blocks
        [..., G, 16] and scales [..., G]. ggml's byte j holds elements j and j + 16 (low, high
        nibble); HF's byte k holds elements 2k and 2k + 1, as Ollama's launch-time tensors do."""
        *rows, width = t.shape
        groups = width // BLOCK
        raw = np.fromfile(self.path, dtype=np.uint8, count=t.nbytes, offset=t.offset)  # not via the mapping
        blocks = raw.reshape(*rows, groups, 1 + BLOCK // 2)
        scales, ggml = np.ascontiguousarray(blocks[..., 0]), blocks[..., 1:]
        if t.hf_nibbles:
            return torch.from_numpy(np.ascontiguousarray(ggml)), torch.from_numpy(scales)
        # HF byte k < 8: elements 2k, 2k+1 = the low nibbles of ggml bytes 2k, 2k+1; k >= 8: the
        # high nibbles of ggml bytes 2k-16, 2k-15. One pass per half, no 32-element intermediate.
        even, odd = ggml[..., 0::2], ggml[..., 1::2]
        hf = np.empty((*rows, groups, BLOCK // 2), dtype=np.uint8)
        np.bitwise_or(even & 0x0F, odd << 4, out=hf[..., :8])
        np.bitwise_or(even >> 4, odd & 0xF0, out=hf[..., 8:])
        return torch.from_numpy(hf), torch.from_numpy(scales)


def _halves(matrix, rows: int):
    """The first `rows` rows and the rest of [E, 2*rows, ...] (a tensor or a (blocks, scales) pair)."""
    if isinstance(matrix, tuple):
        return tuple(m[:, :rows] for m in matrix), tuple(m[:, rows:] for m in matrix)
    return matrix[:, :rows], matrix[:, rows:]


def _interleave_rows(gate, up):
    """[E, I, ...] twice -> [E, 2I, ...] with gate rows at even indices, up rows at odd (HF); on
    tensors or elementwise on (blocks, scales) pairs."""
    if isinstance(gate, tuple):
        return tuple(_interleave_rows(g, u) for g, u in zip(gate, up))
    return torch.stack((gate, up), dim=2).reshape(gate.shape[0], 2 * gate.shape[1], *gate.shape[2:])


def _config(path: Path, arch: str, fields: dict, tensors: dict[str, TensorEntry]) -> GptOssConfig:
    def key(name: str, default=None):
        value = fields.get(f"{arch}.{name}", default)
        if value is None:
            raise ConfigError(f"{path}: GGUF key {arch}.{name} is missing")
        return float(str(np.float32(value))) if isinstance(value, float) else value  # 1e-05, not 9.99e-06

    def shape_of(name: str) -> tuple[int, ...]:
        if name not in tensors:
            raise CheckpointError(f"{path}: missing tensor {name}")
        return tensors[name].shape

    layers = int(key("block_count"))
    vocab = shape_of("token_embd.weight")[0]
    inter = fields.get(f"{arch}.expert_feed_forward_length") or shape_of("blk.0.ffn_down_exps.weight")[-1]  # Ollama: none
    eos = fields.get("tokenizer.ggml.eos_token_id")
    return GptOssConfig(
        vocab_size=vocab, hidden_size=int(key("embedding_length")), intermediate_size=int(inter),
        num_hidden_layers=layers, num_attention_heads=int(key("attention.head_count")),
        num_key_value_heads=int(key("attention.head_count_kv")), head_dim=int(key("attention.key_length")),
        num_local_experts=int(key("expert_count")), num_experts_per_tok=int(key("expert_used_count")),
        sliding_window=int(key("attention.sliding_window")),
        layer_types=tuple(SLIDING if i % 2 == 0 else FULL for i in range(layers)),
        rope_theta=float(key("rope.freq_base")),
        rope_scaling_factor=float(key("rope.scaling.factor", 32.0)),
        rope_beta_fast=float(key("rope.scaling.yarn_beta_fast", 32.0)),
        rope_beta_slow=float(key("rope.scaling.yarn_beta_slow", 1.0)),
        original_max_position_embeddings=int(key("rope.scaling.original_context_length", 4096)),
        rope_truncate=False,
        max_position_embeddings=int(key("context_length")),
        rms_norm_eps=float(key("attention.layer_norm_rms_epsilon")),
        eos_token_ids=(int(eos),) if eos is not None else (),
        quantization="mxfp4" if tensors["blk.0.ffn_down_exps.weight"].type == "MXFP4" else None,
    )
