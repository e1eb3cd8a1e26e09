"""A Hugging Face gpt-oss checkpoint (MXFP4 experts, bf16 rest) rewritten as a GGUF in
llama.cpp's gpt-oss layout, for `benchmarks/vs_llamacpp.py`. Runs in the llama venv (numpy and
gguf-py; no torch), streaming one tensor at a time.

The layout is llama.cpp's (convert_hf_to_gguf.py GptOssModel, as gguf-py 0.19.0 and
llama-cpp-python 0.3.36 load it), written by `tests/gguf_files.py`. No tokenizer
(`tokenizer.ggml.model` "none" with the vocabulary size): the benchmark feeds token ids.

Usage: python gguf_writer.py HF_DIR OUT.gguf
"""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import gguf_files  # noqa: E402  tests/gguf_files.py: the layout, shared with the tests

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


def main(hf_dir: str, out: str) -> None:
    directory = Path(hf_dir)
    config = json.loads((directory / "config.json").read_text())
    layers = config["num_hidden_layers"]
    gguf_files.write(out, SafeTensors(directory), config, "llama.cpp",
                     progress=lambda name: print(f"  {name.split('.')[1]} of {layers} layers written", flush=True))


if __name__ == "__main__":
    main(*sys.argv[1:3])
