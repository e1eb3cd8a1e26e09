"""The decode loop: token ids in, token ids out (the engine never sees text).

Owns: prefilling a prompt into a fresh KV cache and decoding one token at a time with a
`Sampler` until a stop id or the token budget. Issue 6 grows this into continuous batching over
`GptOss.forward_batch`.
Does not own: the model math (`ossy.model.gptoss`), token choice (`ossy.engine.sampling`),
tokenizing or chat formats.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import torch

from ossy.engine.sampling import Sampler
from ossy.model.gptoss import GptOss


def generate(model: GptOss, prompt: list[int], max_new_tokens: int, sampler: Sampler,
             stop: Iterable[int] = ()) -> Iterator[int]:
    """Yield up to `max_new_tokens` new ids; a stop id is yielded and then ends the stream."""
    if not prompt:
        raise ValueError("generate needs at least one prompt token")
    stop = frozenset(stop)
    cache = model.new_cache()
    ids = torch.tensor(prompt, dtype=torch.long)
    for _ in range(max_new_tokens):
        logits = model.forward(ids, cache, last_only=True)[0]  # [V] fp32
        token = sampler(logits)
        yield token
        if token in stop:
            return
        ids = torch.tensor([token], dtype=torch.long)
