"""A Hugging Face gpt-oss checkpoint (MXFP4 experts, bf16 rest) rewritten as a GGUF in
llama.cpp's gpt-oss layout, for `benchmarks/vs_llamacpp.py`. Runs in the llama venv (numpy and
gguf-py; no torch), streaming one tensor at a time.

The layout (llama.cpp's convert_hf_to_gguf.py GptOssModel and src/models/openai-moe.cpp, as
gguf-py 0.19.0 and llama-cpp-python 0.3.36 load it): architecture "gpt-oss"; `token_embd`,
`output` and the attention projections BF16; norms, biases, sinks and the router F32; each
layer's experts as `ffn_gate_exps` (HF gate_up's even rows), `ffn_up_exps` (odd rows) and
`ffn_down_exps` in ggml's MXFP4 blocks: per 32 elements one scale byte, then 16 bytes whose byte
j holds element j (low nibble) and element j+16 (high nibble), where HF's byte k holds elements 2k
and 2k+1. No tokenizer (`tokenizer.ggml.model` "none" with the vocabulary size): the benchmark
feeds token ids.

Usage: python gguf_writer.py HF_DIR OUT.gguf
"""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

import gguf
import numpy as np
from gguf import GGMLQuantizationType as Q

DTYPES = {"BF16": np.uint16, "U8": np.uint8, "F32": np.float32}


class SafeTensors:
    """Every tensor of a sharded safetensors checkpoint, memory-mapped (bf16 as raw uint16)."""

    def __init__(self, directory: Path) -> None:
        index = json.loads((directory / "model.safetensors.index.json").read_text())["weight_map"]
        self.where = {}
        for file in sorted(set(index.values())):
            data = (directory / file).open("rb")
            size = struct.unpack("<Q", data.read(8))[0]
            header = json.loads(data.read(size))
            mapped = np.memmap(directory / file, dtype=np.uint8, mode="r", offset=8 + size)
            for name, info in header.items():
                if name != "__metadata__":
                    start, end = info["data_offsets"]
                    self.where[name] = (mapped[start:end], DTYPES[info["dtype"]], tuple(info["shape"]))

    def __getitem__(self, name: str) -> np.ndarray:
        raw, dtype, shape = self.where[name]
        return raw.view(dtype).reshape(shape)


def f32(bf16: np.ndarray) -> np.ndarray:
    return (bf16.astype(np.uint32) << 16).view(np.float32)


def bf16_bytes(bf16: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(bf16).view(np.uint8)


def mxfp4(blocks: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """HF blocks [E, R, G, 16] + scales [E, R, G] -> ggml block_mxfp4 bytes [E, R, G*17]."""
    low, high = blocks & 0x0F, blocks >> 4
    codes = np.stack((low, high), axis=-1).reshape(*blocks.shape[:-1], 32)  # element i of each block
    packed = codes[..., :16] | (codes[..., 16:] << 4)
    out = np.concatenate((scales[..., None], packed.astype(np.uint8)), axis=-1)  # [E, R, G, 17]
    return np.ascontiguousarray(out).reshape(*blocks.shape[:2], -1)


def tensors(hf: SafeTensors, config: dict):
    """(GGUF name, array, raw dtype or None) in file order, made one at a time."""
    yield "token_embd.weight", lambda: bf16_bytes(hf["model.embed_tokens.weight"]), Q.BF16
    yield "output_norm.weight", lambda: f32(hf["model.norm.weight"]), None
    yield "output.weight", lambda: bf16_bytes(hf["lm_head.weight"]), Q.BF16
    for i in range(config["num_hidden_layers"]):
        p, b = f"model.layers.{i}.", f"blk.{i}."
        a, x = p + "self_attn.", p + "mlp.experts."
        yield b + "attn_norm.weight", lambda p=p: f32(hf[p + "input_layernorm.weight"]), None
        yield b + "post_attention_norm.weight", lambda p=p: f32(hf[p + "post_attention_layernorm.weight"]), None
        for ours, theirs in (("attn_q", "q_proj"), ("attn_k", "k_proj"), ("attn_v", "v_proj"), ("attn_output", "o_proj")):
            yield b + ours + ".weight", lambda a=a, t=theirs: bf16_bytes(hf[a + t + ".weight"]), Q.BF16
            yield b + ours + ".bias", lambda a=a, t=theirs: f32(hf[a + t + ".bias"]), None
        yield b + "attn_sinks.weight", lambda a=a: f32(hf[a + "sinks"]), None
        yield b + "ffn_gate_inp.weight", lambda p=p: f32(hf[p + "mlp.router.weight"]), None
        yield b + "ffn_gate_inp.bias", lambda p=p: f32(hf[p + "mlp.router.bias"]), None
        for ours, rows in (("ffn_gate_exps", slice(0, None, 2)), ("ffn_up_exps", slice(1, None, 2))):
            yield b + ours + ".weight", lambda x=x, r=rows: mxfp4(hf[x + "gate_up_proj_blocks"][:, r],
                                                                hf[x + "gate_up_proj_scales"][:, r]), Q.MXFP4
            yield b + ours + ".bias", lambda x=x, r=rows: f32(hf[x + "gate_up_proj_bias"][:, r]), None
        yield b + "ffn_down_exps.weight", lambda x=x: mxfp4(hf[x + "down_proj_blocks"], hf[x + "down_proj_scales"]), Q.MXFP4
        yield b + "ffn_down_exps.bias", lambda x=x: f32(hf[x + "down_proj_bias"]), None


def metadata(w: gguf.GGUFWriter, c: dict) -> None:
    w.add_block_count(c["num_hidden_layers"])
    w.add_context_length(c["max_position_embeddings"])
    w.add_embedding_length(c["hidden_size"])
    w.add_feed_forward_length(c["intermediate_size"])
    w.add_expert_feed_forward_length(c["intermediate_size"])
    w.add_head_count(c["num_attention_heads"])
    w.add_head_count_kv(c["num_key_value_heads"])
    w.add_key_length(c["head_dim"])
    w.add_value_length(c["head_dim"])
    w.add_rope_freq_base(float(c["rope_theta"]))
    w.add_layer_norm_rms_eps(float(c["rms_norm_eps"]))
    w.add_sliding_window(c["sliding_window"])
    w.add_expert_count(c["num_local_experts"])
    w.add_expert_used_count(c["num_experts_per_tok"])
    rope = c.get("rope_scaling") or c["rope_parameters"]  # transformers 5 writes rope_parameters
    w.add_rope_scaling_type(gguf.RopeScalingType.YARN)
    w.add_rope_scaling_factor(float(rope["factor"]))
    w.add_rope_scaling_orig_ctx_len(rope["original_max_position_embeddings"])
    w.add_rope_scaling_yarn_beta_fast(float(rope.get("beta_fast", 32.0)))
    w.add_rope_scaling_yarn_beta_slow(float(rope.get("beta_slow", 1.0)))
    w.add_file_type(gguf.LlamaFileType.MOSTLY_MXFP4_MOE)
    w.add_tokenizer_model("none")
    w.add_vocab_size(c["vocab_size"])


def main(hf_dir: str, out: str) -> None:
    directory = Path(hf_dir)
    config = json.loads((directory / "config.json").read_text())
    hf = SafeTensors(directory)
    w = gguf.GGUFWriter(out, "gpt-oss")
    metadata(w, config)
    plan = list(tensors(hf, config))
    for name, make, raw in plan:  # shapes first: the header lists every tensor before any data
        array = make()
        w.add_tensor_info(name, array.shape, array.dtype, array.nbytes, raw_dtype=raw)
        del array
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    for n, (name, make, _) in enumerate(plan):
        w.write_tensor_data(make())
        if name.endswith("ffn_down_exps.weight"):
            print(f"  {name.split('.')[1]} of {config['num_hidden_layers']} layers written", flush=True)
    w.close()


if __name__ == "__main__":
    main(*sys.argv[1:3])
