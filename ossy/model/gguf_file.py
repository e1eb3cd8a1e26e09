"""Opening GGUF files: the header (metadata keys, tensor directory) parsed, the data mapped
copy-on-write (torch can view it; nothing is ever written to the file). No torch: the tokenizer
reads its vocabulary through this too.

Owns: the GGUF magic, `is_gguf`, `read` -> `GgufFile`. Does not own: what the keys and tensors
mean (`ossy.model.gguf_checkpoint` for the model, `ossy.tokenizer` for the vocabulary).

Written by hand on purpose: gguf-py's `GGUFReader` builds numpy objects for every string of
the vocabulary and took 24 s (measured here) to open a file with gpt-oss's 201,088 tokens and
their merges; this parser takes well under a second. It also accepts the type id 4 that Ollama's
launch-time converter gave MXFP4 (gguf-py refuses it). Type names and block sizes are gguf-py's
(`GGMLQuantizationType`, `GGML_QUANT_SIZES`), as are the dequantizers the model uses.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

from ossy.model.errors import CheckpointError

MAGIC = b"GGUF"
OLLAMA_LAUNCH_MXFP4 = 4  # the type id Ollama's converter gave MXFP4 until 2025-08-26 (ggml's is 39)
DEFAULT_ALIGNMENT = 32

# GGUF metadata value types -> struct format (scalars); 8 string, 9 array
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_NUMPY = {0: "<u1", 1: "<i1", 2: "<u2", 3: "<i2", 4: "<u4", 5: "<i4", 6: "<f4", 7: "?", 10: "<u8", 11: "<i8", 12: "<f8"}
_STRING, _ARRAY = 8, 9


def is_gguf(path: str | os.PathLike) -> bool:
    """True when `path` is a file that starts with the GGUF magic."""
    try:
        with open(path, "rb") as f:
            return f.read(4) == MAGIC
    except OSError:
        return False


@dataclass(frozen=True)
class TensorEntry:
    name: str
    type: str  # GGML type name: F32, BF16, Q8_0, MXFP4, ...
    shape: tuple[int, ...]  # numpy order (ggml's ne reversed), in elements
    offset: int  # absolute byte offset of the data in the file
    nbytes: int
    hf_nibbles: bool = False  # MXFP4 bytes in the HF order (Ollama's launch-time type 4)


@dataclass(frozen=True)
class GgufFile:
    path: Path
    version: int
    fields: dict  # key -> int, float, bool, str or list
    tensors: dict[str, TensorEntry]
    data: np.ndarray  # the whole file, uint8, mapped copy-on-write

    def bytes_of(self, t: TensorEntry) -> np.ndarray:
        return self.data[t.offset:t.offset + t.nbytes]


class _Cursor:
    def __init__(self, path: Path, buffer) -> None:
        self.path, self.buffer, self.at = path, buffer, 0

    def unpack(self, fmt: str):
        try:
            value = struct.unpack_from(fmt, self.buffer, self.at)[0]
        except struct.error:
            raise CheckpointError(f"{self.path}: truncated GGUF header") from None
        self.at += struct.calcsize(fmt)
        return value

    def string(self) -> str:
        n = self.unpack("<Q")
        raw = bytes(self.buffer[self.at:self.at + n])
        if len(raw) != n:
            raise CheckpointError(f"{self.path}: truncated GGUF header")
        self.at += n
        return raw.decode("utf-8", "replace")

    def value(self, kind: int, key: str):
        if kind in _SCALARS:
            return self.unpack(_SCALARS[kind])
        if kind == _STRING:
            return self.string()
        if kind == _ARRAY:
            item, count = self.unpack("<I"), self.unpack("<Q")
            if item == _STRING:
                return [self.string() for _ in range(count)]
            if item in _NUMPY:
                dtype = np.dtype(_NUMPY[item])
                end = self.at + count * dtype.itemsize
                if end > len(self.buffer):
                    raise CheckpointError(f"{self.path}: truncated GGUF header")
                values = np.frombuffer(self.buffer, dtype, count, self.at).tolist()
                self.at = end
                return values
            return [self.value(item, key) for _ in range(count)]  # arrays of arrays
        raise CheckpointError(f"{self.path}: GGUF key {key} has unknown value type {kind}")


def read(path: str | os.PathLike) -> GgufFile:
    """The file's metadata and tensor directory, its data mapped; CheckpointError (one line
    naming the file) for anything that is not a well-formed GGUF v2 or v3."""

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    try:
        data = np.memmap(path, dtype=np.uint8, mode="c")
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: cannot map the file ({exc})") from None
    cursor = _Cursor(path, data)
    if bytes(data[:4]) != MAGIC:
        raise CheckpointError(f"{path}: not a GGUF file")
    cursor.at = 4
    version = cursor.unpack("<I")
    if version not in (2, 3):
        raise CheckpointError(f"{path}: GGUF version {version} is not supported (2 or 3)")
    n_tensors, n_fields = cursor.unpack("<Q"), cursor.unpack("<Q")
    fields = {}
    for _ in range(n_fields):
        key = cursor.string()
        fields[key] = cursor.value(cursor.unpack("<I"), key)
    entries = []
    for _ in range(n_tensors):
        name = cursor.string()
        dims = [cursor.unpack("<Q") for _ in range(cursor.unpack("<I"))]
        type_id, offset = cursor.unpack("<I"), cursor.unpack("<Q")
        entries.append((name, dims, type_id, offset))
    alignment = int(fields.get("general.alignment", DEFAULT_ALIGNMENT))
    start = -(-cursor.at // alignment) * alignment
    tensors = {}
    for name, dims, type_id, offset in entries:
        hf_nibbles = type_id == OLLAMA_LAUNCH_MXFP4
        try:
            kind = GGMLQuantizationType.MXFP4 if hf_nibbles else GGMLQuantizationType(type_id)
        except ValueError:
            raise CheckpointError(f"{path}: tensor {name} has unknown GGML type {type_id}") from None
        block, size = GGML_QUANT_SIZES[kind]
        elements = int(np.prod(dims, dtype=np.int64)) if dims else 1
        entry = TensorEntry(name, kind.name, tuple(reversed(dims)), start + offset, elements // block * size, hf_nibbles)
        if entry.offset + entry.nbytes > len(data):
            raise CheckpointError(f"{path}: truncated file (tensor {name} ends past the end)")
        tensors[name] = entry
    return GgufFile(path, version, fields, tensors, data)
