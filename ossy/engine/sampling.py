"""Choosing the next token from logits.

Owns: greedy choice at temperature 0 and plain temperature sampling (softmax(logits / T), one
draw from a seeded `torch.Generator`, as the gpt-oss reference samplers do). Issue 6 adds top-p,
top-k and penalties here.
Does not own: the model, the decode loop (`ossy.engine`), or stop conditions.
"""

from __future__ import annotations

import torch

from ossy.errors import OssyError


class Sampler:
    """Picks token ids from fp32 logits [V]; reproducible for a given seed."""

    def __init__(self, temperature: float = 0.0, seed: int | None = None) -> None:
        if temperature < 0:
            raise OssyError(f"temperature must be >= 0, got {temperature}")
        self.temperature = temperature
        self.generator = torch.Generator()
        if seed is None:
            self.generator.seed()
        else:
            self.generator.manual_seed(seed)

    def __call__(self, logits: torch.Tensor) -> int:
        if self.temperature == 0:
            return int(logits.argmax())
        probs = torch.softmax(logits.float().cpu() / self.temperature, dim=-1)  # [V]
        return int(torch.multinomial(probs, 1, generator=self.generator))
