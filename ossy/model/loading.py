"""Opening a checkpoint directory as a `LanguageModel`: the one way every caller loads a model.

Owns `open_model(path, dtype, kernels, threads, expert_cache_bytes)` and the dtype names it
accepts. The engine's loader and the Python API (`ossy.api.load`) both call it, so the engine
needs neither `ossy.api` nor `GptOss`'s internals. Does not own: reading files
(`ossy.model.weights`), the math (`ossy.model.gptoss`), the kernels (`ossy.model.native`).
"""

from __future__ import annotations

import os

import torch

from ossy.model.backends import KERNEL_CHOICES
from ossy.model.errors import ConfigError
from ossy.model.gptoss import GptOss
from ossy.model.native import open_kernels
from ossy.model.weights import Checkpoint

DTYPES = {"bfloat16": torch.bfloat16, "float32": torch.float32}


def open_model(path: str | os.PathLike, dtype: str = "bfloat16", kernels: str = "auto", threads: int | None = None,
               expert_cache_bytes: int = 0) -> GptOss:
    """The gpt-oss checkpoint at `path`, in `dtype`, its MXFP4 experts kept packed and run on
    ossy's native kernels (`kernels`: "auto", "avx512", "avx2", or "torch" for the PyTorch
    path; `threads` default: the physical cores); on the PyTorch path `expert_cache_bytes`
    bounds an optional cache of dequantized experts."""
    if dtype not in DTYPES:
        raise ConfigError(f"dtype {dtype!r} is not supported; use one of {', '.join(map(repr, DTYPES))}")
    if kernels not in KERNEL_CHOICES:
        raise ConfigError(f"kernels {kernels!r} is not one of {', '.join(KERNEL_CHOICES)}")
    checkpoint = Checkpoint.open(path)
    torch_dtype = DTYPES[dtype]
    return GptOss.from_tensors(checkpoint.config, checkpoint.load(torch_dtype), torch_dtype, expert_cache_bytes,
                               kernels=open_kernels(kernels, threads))
