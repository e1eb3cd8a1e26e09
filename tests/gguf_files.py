"""Writing gpt-oss GGUF files for tests and benchmarks, from a Hugging Face checkpoint's tensors
(numpy: bf16 as raw uint16, MXFP4 blocks and scales as uint8), with gguf-py's writer.

Flavours:
- "llama.cpp": llama.cpp's convert_hf_to_gguf.py GptOssModel: architecture `gpt-oss`, gate and
  up experts split (HF gate_up's even rows, odd rows) in ggml's MXFP4 nibble order;
- "llama.cpp-fused": its `fuse_gate_up_exps` option: one `ffn_gate_up_exps`, all gate rows then
  all up rows;
- "ollama": Ollama's convert_gptoss.go since 2025-10-06: architecture `gptoss`, `attn_out`,
  `ffn_norm`, `attn_sinks` without `.weight`, no expert_feed_forward_length, no YaRN keys;
- "ollama-fused": the same from 2025-08-26: one `ffn_gate_up_exps`, HF's interleaved rows;
- "ollama-launch": the same at launch (the library blob): fused and interleaved, MXFP4 numbered 4
  with HF's nibble order, BF16 expert biases, q, k, v fused in `attn_qkv`.
`token_embd`, `output` and the attention projections BF16 (or Q8_0 with `q8_attention`); norms,
biases, sinks and the router F32. ggml's MXFP4 block: per 32 elements one scale byte, then 16 bytes whose byte j holds element
j (low nibble) and element j + 16 (high nibble); HF's byte k holds elements 2k and 2k + 1.
Tensors are made one at a time, so a 20b-sized checkpoint never sits in RAM.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

import gguf
import numpy as np
from gguf import GGMLQuantizationType as Q

FLAVOURS = ("llama.cpp", "llama.cpp-fused", "ollama", "ollama-fused", "ollama-launch")
LAUNCH_MXFP4 = 4


def f32(bf16: np.ndarray) -> np.ndarray:
    return (bf16.astype(np.uint32) << 16).view(np.float32)


def bf16_bytes(bf16: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(bf16).view(np.uint8)


def mxfp4(blocks: np.ndarray, scales: np.ndarray, ggml_order: bool = True) -> np.ndarray:
    """HF blocks [E, R, G, 16] + scales [E, R, G] -> ggml block_mxfp4 bytes [E, R, G*17]."""
    if ggml_order:
        low, high = blocks & 0x0F, blocks >> 4
        codes = np.stack((low, high), axis=-1).reshape(*blocks.shape[:-1], 32)  # element i of each block
        blocks = (codes[..., :16] | (codes[..., 16:] << 4)).astype(np.uint8)
    out = np.concatenate((scales[..., None], blocks), axis=-1)  # [E, R, G, 17]
    return np.ascontiguousarray(out).reshape(*blocks.shape[:2], -1)


def q8_0(values: np.ndarray) -> np.ndarray:
    return gguf.quants.quantize(values.astype(np.float32), Q.Q8_0)


def tensors(hf: Mapping[str, np.ndarray], layers: int, flavour: str,
            q8_attention: bool = False) -> Iterator[tuple[str, Callable[[], np.ndarray], Q | None]]:
    """(GGUF name, a maker of its array, raw type or None for float32) in file order."""
    ollama, launch = flavour.startswith("ollama"), flavour == "ollama-launch"
    fused = flavour in ("llama.cpp-fused", "ollama-fused", "ollama-launch")

    def projection(name: str):
        if q8_attention:
            return lambda: q8_0(f32(hf[name])), Q.Q8_0
        return lambda: bf16_bytes(hf[name]), Q.BF16

    def expert_bias(name: str, rows=slice(None)):
        if launch:
            return lambda: bf16_bytes(np.ascontiguousarray(hf[name][:, rows])), Q.BF16
        return lambda: f32(hf[name][:, rows]), None

    def gate_up(x: str, part: str):  # fused: HF's interleaved rows, or llama.cpp's halves
        rows = hf[x + "gate_up_proj_bias"].shape[1]
        order = np.r_[0:rows:2, 1:rows:2] if flavour == "llama.cpp-fused" else slice(None)
        if part == "bias":
            return expert_bias(x + "gate_up_proj_bias", order)
        return (lambda: mxfp4(hf[x + "gate_up_proj_blocks"][:, order], hf[x + "gate_up_proj_scales"][:, order],
                              ggml_order=not launch)), Q.MXFP4

    yield "token_embd.weight", lambda: bf16_bytes(hf["model.embed_tokens.weight"]), Q.BF16
    yield "output_norm.weight", lambda: f32(hf["model.norm.weight"]), None
    yield "output.weight", lambda: bf16_bytes(hf["lm_head.weight"]), Q.BF16
    for i in range(layers):
        p, b = f"model.layers.{i}.", f"blk.{i}."
        a, x = p + "self_attn.", p + "mlp.experts."
        yield b + "attn_norm.weight", lambda p=p: f32(hf[p + "input_layernorm.weight"]), None
        post = "ffn_norm.weight" if ollama else "post_attention_norm.weight"
        yield b + post, lambda p=p: f32(hf[p + "post_attention_layernorm.weight"]), None
        if launch:
            yield b + "attn_qkv.weight", lambda a=a: bf16_bytes(np.concatenate(
                [hf[a + f"{w}_proj.weight"] for w in "qkv"])), Q.BF16
            yield b + "attn_qkv.bias", lambda a=a: f32(np.concatenate([hf[a + f"{w}_proj.bias"] for w in "qkv"])), None
        out = "attn_out" if ollama else "attn_output"
        for ours, theirs in (("attn_q", "q_proj"), ("attn_k", "k_proj"), ("attn_v", "v_proj"), (out, "o_proj")):
            if launch and ours != out:
                continue
            yield (b + ours + ".weight", *projection(a + theirs + ".weight"))
            yield b + ours + ".bias", lambda a=a, t=theirs: f32(hf[a + t + ".bias"]), None
        yield b + ("attn_sinks" if ollama else "attn_sinks.weight"), lambda a=a: f32(hf[a + "sinks"]), None
        yield b + "ffn_gate_inp.weight", lambda p=p: f32(hf[p + "mlp.router.weight"]), None
        yield b + "ffn_gate_inp.bias", lambda p=p: f32(hf[p + "mlp.router.bias"]), None
        if fused:
            yield (b + "ffn_gate_up_exps.weight", *gate_up(x, "weight"))
            yield (b + "ffn_gate_up_exps.bias", *gate_up(x, "bias"))
        else:
            for ours, rows in (("ffn_gate_exps", slice(0, None, 2)), ("ffn_up_exps", slice(1, None, 2))):
                yield b + ours + ".weight", lambda x=x, r=rows: mxfp4(hf[x + "gate_up_proj_blocks"][:, r],
                                                                    hf[x + "gate_up_proj_scales"][:, r]), Q.MXFP4
                yield (b + ours + ".bias", *expert_bias(x + "gate_up_proj_bias", rows))
        yield b + "ffn_down_exps.weight", lambda x=x: mxfp4(hf[x + "down_proj_blocks"], hf[x + "down_proj_scales"],
                                                            ggml_order=not launch), Q.MXFP4
        yield (b + "ffn_down_exps.bias", *expert_bias(x + "down_proj_bias"))


def metadata(w: gguf.GGUFWriter, c: dict, flavour: str) -> None:
    """The model keys of `flavour` from an HF config.json dict (the architecture is the writer's)."""
    w.add_block_count(c["num_hidden_layers"])
    w.add_context_length(c["max_position_embeddings"])
    w.add_embedding_length(c["hidden_size"])
    w.add_feed_forward_length(c["intermediate_size"])
    w.add_head_count(c["num_attention_heads"])
    w.add_head_count_kv(c["num_key_value_heads"])
    w.add_key_length(c["head_dim"])
    w.add_value_length(c["head_dim"])
    w.add_rope_freq_base(float(c["rope_theta"]))
    w.add_layer_norm_rms_eps(float(c["rms_norm_eps"]))
    w.add_sliding_window(c["sliding_window"])
    w.add_expert_count(c["num_local_experts"])
    w.add_expert_used_count(c["num_experts_per_tok"])
    if flavour.startswith("ollama"):
        return
    rope = c.get("rope_scaling") or c["rope_parameters"]  # transformers 5 writes rope_parameters
    w.add_expert_feed_forward_length(c["intermediate_size"])
    w.add_rope_scaling_type(gguf.RopeScalingType.YARN)
    w.add_rope_scaling_factor(float(rope["factor"]))
    w.add_rope_scaling_orig_ctx_len(rope["original_max_position_embeddings"])
    w.add_rope_scaling_yarn_beta_fast(float(rope.get("beta_fast", 32.0)))
    w.add_rope_scaling_yarn_beta_slow(float(rope.get("beta_slow", 1.0)))
    w.add_file_type(gguf.LlamaFileType.MOSTLY_MXFP4_MOE)


def write(out, hf: Mapping[str, np.ndarray], config: dict, flavour: str = "llama.cpp",
          vocabulary: Callable[[gguf.GGUFWriter], None] | None = None, q8_attention: bool = False,
          progress: Callable[[str], None] | None = None) -> None:
    """Write `hf` (HF names) as a GGUF of `flavour` at `out`. `vocabulary(writer)` adds the
    tokenizer keys; without it the file says `tokenizer.ggml.model` "none" and the vocab size."""
    if flavour not in FLAVOURS:
        raise ValueError(f"flavour must be one of {FLAVOURS}")
    w = gguf.GGUFWriter(str(out), "gptoss" if flavour.startswith("ollama") else "gpt-oss")
    metadata(w, config, flavour)
    if vocabulary is None:
        w.add_tokenizer_model("none")
        w.add_vocab_size(config["vocab_size"])
    else:
        vocabulary(w)
    plan = list(tensors(hf, config["num_hidden_layers"], flavour, q8_attention))
    for name, make, raw in plan:  # shapes first: the header lists every tensor before any data
        array = make()
        w.add_tensor_info(name, array.shape, array.dtype, array.nbytes, raw_dtype=raw)
        del array
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    for name, make, _ in plan:
        w.write_tensor_data(make())
        if progress and name.endswith("ffn_down_exps.weight"):
            progress(name)
    w.close()
    if flavour == "ollama-launch":
        renumber_mxfp4(out)


def renumber_mxfp4(path) -> None:
    """Give every MXFP4 tensor of the file the type id Ollama's launch-time converter used."""
    reader = gguf.GGUFReader(str(path), "r+")
    for t in reader.tensors:
        if t.tensor_type == Q.MXFP4:
            t.field.parts[4][0] = LAUNCH_MXFP4
    reader.data.flush()


def hf_vocabulary(tokenizer_json, flavour: str = "llama.cpp", vocab_size: int = 201088) -> Callable[[gguf.GGUFWriter], None]:
    """The `vocabulary` of a HF byte-level BPE tokenizer.json as each converter writes it: every id
    in order (llama.cpp pads up to the model's `vocab_size` as `[PAD{i}]`, unused; Ollama does not
    pad), type 1 normal, 3 special, 4 added; merges as "a b"; pre-tokenizer "gpt-4o" (llama.cpp) or
    "default" (Ollama's gptoss files)."""
    import json
    from pathlib import Path

    spec = json.loads(Path(tokenizer_json).read_text(encoding="utf-8"))
    names = {i: (token, 1) for token, i in spec["model"]["vocab"].items()}
    names.update({t["id"]: (t["content"], 3 if t.get("special") else 4) for t in spec.get("added_tokens", [])})
    size = max(names) + 1 if flavour.startswith("ollama") else vocab_size
    tokens = [names.get(i, (f"[PAD{i}]", 5)) for i in range(size)]
    merges = [m if isinstance(m, str) else " ".join(m) for m in spec["model"].get("merges", [])]

    def add(w: gguf.GGUFWriter) -> None:
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre("gpt-4o" if flavour.startswith("llama.cpp") else "default")
        w.add_token_list([token for token, _ in tokens])
        w.add_token_types([kind for _, kind in tokens])
        w.add_token_merges(merges)
        w.add_bos_token_id(199998)
        w.add_eos_token_id(199999 if flavour.startswith("ollama") else 200002)

    return add


def write_vocabulary_only(out, vocabulary: Callable[[gguf.GGUFWriter], None], flavour: str = "llama.cpp") -> None:
    """A GGUF with the architecture and the vocabulary, no tensors."""
    w = gguf.GGUFWriter(str(out), "gptoss" if flavour.startswith("ollama") else "gpt-oss")
    vocabulary(w)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
