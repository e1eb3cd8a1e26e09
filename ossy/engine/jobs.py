"""One admitted request on its way through the engine, and the bridge back to asyncio.

Owns: `Stream` (the `Generation` the server iterates: an asyncio.Queue fed from the worker thread
with `loop.call_soon_threadsafe`), `Job` (the request after admission: its prompt after the
overflow policy, its sampler, what it generated, its timings), `admit_prompt` (the context
overflow policy) and `Slot` (a decode slot: a KV cache and the ids it holds, kept after a request
ends so the next one can reuse its prefix).
Does not own: scheduling, threads or models (`ossy.engine.scheduler`), token choice
(`ossy.engine.sampling`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import torch

from ossy.engine.protocol import (
    ContextOverflowError,
    Event,
    ExpertCounts,
    Finished,
    FinishReason,
    GenerateRequest,
    Stats,
    Token,
    reply_room,
)
from ossy.engine.sampling import Sampler
from ossy.model.cache import KVCache


class Stream:
    """A `Generation`: events pushed by the worker thread, read on the event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, wake) -> None:
        self._loop = loop
        self._queue: asyncio.Queue = asyncio.Queue()
        self._wake = wake  # tells the worker to look at cancellations now
        self.cancelled = False

    def push(self, event: Event | BaseException) -> None:
        """Worker thread: deliver an event (or an error to raise from the iterator)."""
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, event)
        except RuntimeError:  # the loop is closed: nobody is reading any more
            pass

    def cancel(self) -> None:
        if not self.cancelled:
            self.cancelled = True
            self._wake()

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._events()

    async def _events(self) -> AsyncIterator[Event]:
        while True:
            event = await self._queue.get()
            if isinstance(event, BaseException):
                raise event
            yield event
            if isinstance(event, Finished):
                return


def admit_prompt(request: GenerateRequest, num_ctx: int) -> tuple[tuple[int, ...], int]:
    """The prompt that fits in `num_ctx` and how many ids were dropped, per `request.overflow`."""
    prompt = request.prompt
    if len(prompt) < num_ctx:
        return prompt, 0
    if request.overflow == "error":
        raise ContextOverflowError(f"the prompt is {len(prompt)} tokens but the context window (num_ctx) is "
                                   f"{num_ctx}; shorten it or raise num_ctx")
    target = max(1, num_ctx - reply_room(request.max_tokens, num_ctx))
    keep = min(request.keep, target - 1)
    kept = prompt[:keep] + prompt[len(prompt) - (target - keep):]
    return kept, len(prompt) - len(kept)


def routing_counts(model: str, top_k: int, routing: torch.Tensor) -> ExpertCounts:
    """Routing counts [L, E] (a request's or a loaded model's) as the protocol carries them."""
    return ExpertCounts(model, top_k, tuple(map(tuple, routing.tolist())))


@dataclass(eq=False)
class Job:
    request: GenerateRequest
    prompt: tuple[int, ...]  # after the overflow policy
    truncated: int
    num_ctx: int
    sampler: Sampler
    stream: Stream
    ready: concurrent.futures.Future = field(default_factory=concurrent.futures.Future)  # model loaded
    generated: list[int] = field(default_factory=list)
    pending: int = -1  # the last sampled id, fed at the next decode step
    submitted: int = field(default_factory=time.perf_counter_ns)
    admitted: int = 0
    prefilled: int = 0
    load_ns: int = 0
    cached: int = 0
    routing: torch.Tensor | None = None  # [L, E] int64: the experts its tokens chose
    top_k: int = 0

    def add_routing(self, counts: torch.Tensor, top_k: int) -> None:
        self.routing = counts.clone() if self.routing is None else self.routing + counts
        self.top_k = top_k

    def finish(self, reason: FinishReason) -> None:
        now = time.perf_counter_ns()
        admitted, prefilled = self.admitted or now, self.prefilled or now
        self.stream.push(Finished(reason, Stats(
            prompt_eval_count=len(self.prompt) if self.prefilled else 0,
            prompt_eval_duration=prefilled - admitted,
            eval_count=len(self.generated),
            eval_duration=now - prefilled,
            load_duration=self.load_ns,
            queue_duration=admitted - self.submitted,
            cached_tokens=self.cached,
            truncated_tokens=self.truncated,
            experts=None if self.routing is None else routing_counts(self.request.model.name, self.top_k, self.routing),
        )))

    def emit(self, token: Token, context: int) -> FinishReason | None:
        """Record a sampled token; the reason the request ends with it, if it does. `context` is
        how many ids the slot's cache holds."""
        self.generated.append(token.id)
        self.pending = token.id
        self.stream.push(token)
        if token.id in self.request.stop_ids:
            return "stop"
        if self.request.max_tokens is not None and len(self.generated) >= self.request.max_tokens:
            return "length"
        if context + 1 >= self.num_ctx:  # feeding this token fills the window
            return "length"
        return None


@dataclass(eq=False)
class Slot:
    """A decode slot: its cache holds the keys and values of `tokens`."""

    cache: KVCache
    tokens: list[int] = field(default_factory=list)
    job: Job | None = None
    last_used: float = 0.0

    def reuse(self, prompt: tuple[int, ...]) -> int:
        """Keep the longest cached prefix of `prompt` (at least its last id is fed again);
        return its length."""
        n = min(common_prefix(self.tokens, prompt), len(prompt) - 1)
        if not self.cache.truncate(n):  # a sliding layer has moved past n
            n = 0
            self.cache.truncate(0)  # always possible
        del self.tokens[n:]
        return n

    def __post_init__(self) -> None:
        self.last_used = time.monotonic()


def common_prefix(a, b) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n
