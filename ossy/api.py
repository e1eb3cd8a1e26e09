"""The Python API: `ossy.load(path)` and the `Model` it returns.

Owns: the small token-level surface (`load`, `config`, `logits`, `generate`) documented in the
README. Does not own: opening a checkpoint (`ossy.model.loading`), file formats
(`ossy.model.weights`), the math (`ossy.model.gptoss`), the decode loop (`ossy.engine`) or text
(tokenizers and harmony live elsewhere).
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import torch

from ossy.engine.decode import generate as _generate
from ossy.engine.sampling import Sampler
from ossy.errors import OssyError
from ossy.model.config import GptOssConfig
from ossy.model.gptoss import GptOss
from ossy.model.loading import open_model


def load(path: str | os.PathLike, dtype: str = "bfloat16", expert_cache_bytes: int = 0, kernels: str = "auto",
         threads: int | None = None) -> "Model":
    """Load a gpt-oss checkpoint directory (`ossy.model.loading.open_model`): MXFP4 experts stay
    packed and run on ossy's native kernels (`kernels`: "auto", "avx512", "avx2" or "torch" for
    the PyTorch path; `threads` default: the physical cores); on the PyTorch path
    `expert_cache_bytes` bounds an optional cache of dequantized experts."""
    return Model(open_model(path, dtype, kernels, threads, expert_cache_bytes))


class Model:
    """A loaded gpt-oss model, driven with token ids."""

    def __init__(self, model: GptOss) -> None:
        self.model = model

    @property
    def config(self) -> GptOssConfig:
        return self.model.config

    def logits(self, token_ids: Iterable[int]) -> torch.Tensor:
        """fp32 logits [len(token_ids), vocab_size]: row t predicts the token after token_ids[t]."""
        ids = self._ids(token_ids)
        return self.model.forward(ids, self.model.new_cache())

    def generate(self, token_ids: Iterable[int], max_new_tokens: int = 128, temperature: float = 0.0,
                 seed: int | None = None, stop: Iterable[int] = ()) -> list[int]:
        """New token ids after the prompt: greedy at temperature 0, else sampled (reproducible
        with `seed`). Ends after `max_new_tokens` or after emitting a `stop` id (included)."""
        ids = self._ids(token_ids)
        sampler = Sampler(temperature, seed)
        return list(_generate(self.model, ids.tolist(), max_new_tokens, sampler, stop))

    def _ids(self, token_ids: Iterable[int]) -> torch.Tensor:
        ids = torch.as_tensor(list(token_ids), dtype=torch.long)
        vocab = self.config.vocab_size
        if ids.ndim != 1 or ids.numel() == 0:
            raise OssyError("token_ids must be a non-empty list of integers")
        if int(ids.min()) < 0 or int(ids.max()) >= vocab:
            raise OssyError(f"token id out of range [0, {vocab}): {int(ids.min())}..{int(ids.max())}")
        return ids
