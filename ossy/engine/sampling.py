"""Choosing the next token from one sequence's logits.

Owns: the sampling options of `SamplingOptions` applied to fp32 logits [V], in this order:
  1. the structured-output mask (ids a `TokenConstraint` does not allow -> -inf);
  2. penalties over the last `repeat_last_n` ids of prompt + output: llama.cpp's repeat_penalty
     (a seen token's logit is divided by it when positive, multiplied when negative, once per
     distinct id) then OpenAI's presence (once per distinct id) and frequency (times its count);
  3. temperature 0: argmax. Otherwise logits / temperature, then top_k, top_p (smallest set of
     most likely tokens reaching p), min_p (probability >= min_p * the best one), renormalize and
     draw once from the request's own seeded `torch.Generator` (so a seed reproduces a request,
     alone or in a batch), as Ollama's sampler orders them.
Logprobs are the model's own: log_softmax of the raw logits, before the mask, penalties,
temperature and truncation (what vLLM reports by default and what OpenAI's API reports: they do
not change with temperature). A forced or penalized token therefore shows how likely the model
itself found it.
Does not own: the model, the decode loop and stop conditions (`ossy.engine`), text.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import AbstractSet

import torch

from ossy.engine.protocol import SamplingOptions, Token
from ossy.errors import OssyError

MAX_TOP_LOGPROBS = 20


def validate(o: SamplingOptions) -> None:
    """Raise `OssyError` (400) for options no sampler can honour."""
    checks = [
        (o.temperature >= 0, f"temperature must be >= 0, got {o.temperature}"),
        (0 < o.top_p <= 1, f"top_p must be in (0, 1], got {o.top_p}"),
        (o.top_k >= 0, f"top_k must be >= 0, got {o.top_k}"),
        (0 <= o.min_p <= 1, f"min_p must be in [0, 1], got {o.min_p}"),
        (o.repeat_penalty > 0, f"repeat_penalty must be > 0, got {o.repeat_penalty}"),
        (o.repeat_last_n >= -1, f"repeat_last_n must be >= -1, got {o.repeat_last_n}"),
        (0 <= o.top_logprobs <= MAX_TOP_LOGPROBS, f"top_logprobs must be in [0, {MAX_TOP_LOGPROBS}], got {o.top_logprobs}"),
    ]
    for ok, message in checks:
        if not ok:
            raise OssyError(message)


class Sampler:
    """Picks the next token of one request; reproducible for a given seed.

    `Sampler(temperature, seed, **other SamplingOptions fields)` or `Sampler.of(options)`.
    """

    def __init__(self, temperature: float = 0.0, seed: int | None = None, **options) -> None:
        self.options = SamplingOptions(temperature=temperature, seed=seed, **options)
        validate(self.options)
        self.generator = torch.Generator()
        if seed is None:
            self.generator.seed()
        else:
            self.generator.manual_seed(seed)

    @classmethod
    def of(cls, options: SamplingOptions) -> "Sampler":
        return cls(**dataclasses.asdict(options))

    def __call__(self, logits: torch.Tensor, history: Sequence[int] = (),
                 allowed: AbstractSet[int] | torch.Tensor | None = None) -> Token:
        """Choose from fp32 `logits` [V], given every id so far (prompt + output) and the ids a
        constraint allows (None: all)."""
        raw = logits.float().cpu()
        scores = penalize(mask(raw, allowed), recent(history, self.options.repeat_last_n), self.options)
        token = self._choose(scores)
        return self._token(raw, token)

    def _choose(self, scores: torch.Tensor) -> int:
        o = self.options
        if o.temperature == 0:
            return int(scores.argmax())
        probs = truncated_probs(scores / o.temperature, o.top_k, o.top_p, o.min_p)
        return int(torch.multinomial(probs, 1, generator=self.generator))

    def _token(self, raw: torch.Tensor, token: int) -> Token:
        o = self.options
        if not (o.logprobs or o.top_logprobs):
            return Token(token)
        logprobs = torch.log_softmax(raw, dim=-1)
        top = logprobs.topk(o.top_logprobs) if o.top_logprobs else None
        alternatives = tuple(zip(top.indices.tolist(), top.values.tolist())) if top is not None else ()
        return Token(token, float(logprobs[token]), alternatives)


def mask(logits: torch.Tensor, allowed: AbstractSet[int] | torch.Tensor | None) -> torch.Tensor:
    """-inf for every id not in `allowed` (None: unchanged). `allowed` is a set of ids or a 1-D
    bool tensor (True = allowed; ids at or past its end are not allowed)."""
    if allowed is None:
        return logits
    if isinstance(allowed, torch.Tensor):
        keep = torch.zeros_like(logits, dtype=torch.bool)
        n = min(len(allowed), len(keep))
        keep[:n] = allowed[:n]
        return logits.masked_fill(~keep, float("-inf"))
    keep = torch.zeros_like(logits, dtype=torch.bool)
    keep[torch.tensor(sorted(allowed), dtype=torch.long)] = True
    return logits.masked_fill(~keep, float("-inf"))


def nothing_allowed(allowed: AbstractSet[int] | torch.Tensor | None) -> bool:
    """A constraint's answer that allows no id at all (None allows every id)."""
    if allowed is None:
        return False
    if isinstance(allowed, torch.Tensor):
        return not bool(allowed.any())
    return not allowed


def recent(history: Sequence[int], last_n: int) -> list[int]:
    """The ids the penalties look at: the last `last_n` (-1: all, 0: none)."""
    if last_n == 0:
        return []
    return list(history[-last_n:]) if last_n > 0 else list(history)


def penalize(logits: torch.Tensor, window: Sequence[int], o: SamplingOptions) -> torch.Tensor:
    """Apply repeat (llama.cpp), presence and frequency (OpenAI) penalties for the ids in `window`."""
    if not window or (o.repeat_penalty == 1 and o.presence_penalty == 0 and o.frequency_penalty == 0):
        return logits
    ids, counts = torch.tensor(window, dtype=torch.long).unique(return_counts=True)
    seen = logits[ids]
    seen = torch.where(seen > 0, seen / o.repeat_penalty, seen * o.repeat_penalty)
    seen = seen - o.presence_penalty - counts.float() * o.frequency_penalty
    out = logits.clone()
    out[ids] = seen
    return out


def truncated_probs(scores: torch.Tensor, top_k: int, top_p: float, min_p: float) -> torch.Tensor:
    """softmax(scores) restricted by top_k, then top_p, then min_p, renormalized: [V]."""
    if top_k == 0 and top_p >= 1 and min_p == 0:
        return scores.softmax(dim=-1)
    sorted_scores, order = scores.sort(descending=True)
    if top_k > 0:
        sorted_scores = sorted_scores[:top_k]
        order = order[:top_k]
    probs = sorted_scores.softmax(dim=-1)
    keep = torch.ones_like(probs, dtype=torch.bool)
    if top_p < 1:
        before = probs.cumsum(dim=-1) - probs  # mass of the more likely tokens
        keep &= before < top_p  # the smallest prefix whose mass reaches top_p
    if min_p > 0:
        keep &= probs >= min_p * probs[0]
    out = torch.zeros_like(scores)
    out[order[keep]] = probs[keep]
    return out / out.sum()
