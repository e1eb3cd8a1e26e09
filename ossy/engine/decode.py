"""The plain single-sequence decode loop behind `ossy.api.Model.generate`.

Owns `generate` only. Does not own: batching and scheduling (`ossy.engine.scheduler`), token
choice (`ossy.engine.sampling`), the model (any `ossy.model.interface.LanguageModel`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import torch

from ossy.engine.sampling import Sampler
from ossy.model.interface import LanguageModel


def generate(model: LanguageModel, prompt: list[int], max_new_tokens: int, sampler: Sampler,
             stop: Iterable[int] = ()) -> Iterator[int]:
    """Yield up to `max_new_tokens` new ids; a stop id is yielded and then ends the stream."""
    if not prompt:
        raise ValueError("generate needs at least one prompt token")
    stop = frozenset(stop)
    cache = model.new_cache()
    history = list(prompt)
    ids = torch.tensor(prompt, dtype=torch.long)
    for _ in range(max_new_tokens):
        logits = model.forward(ids, cache, last_only=True)[0]  # [V] fp32
        token = sampler(logits, history).id
        yield token
        if token in stop:
            return
        history.append(token)
        ids = torch.tensor([token], dtype=torch.long)
