"""The contract between the HTTP server and the engine: what a request is, what comes back.

Owns: types only (no torch, no threads). The server (`ossy.server`, through the chat layer
`ossy.chat`) turns text into a `GenerateRequest`; an `Engine` turns that into a stream of
`Token` events ended by one `Finished`. The engine never sees text: prompts, stop tokens and
structured-output constraints are all token ids. Stop *strings*, harmony parsing, tool calls and
response formats are the chat layer's.

Lifecycle of one request:
  1. `await engine.submit(request)` admits it or raises at once, before any byte is sent:
     `QueueFullError` (503 with Retry-After) when `OSSY_MAX_QUEUE` requests already wait,
     `ContextOverflowError` (400) when the prompt does not fit and the policy is "error",
     `NotFoundError`/`OssyError` when the model cannot be loaded.
  2. It returns a `Generation`: `async for event in generation` yields `Token`s, then exactly one
     `Finished` (the iterator ends after it). Loading the model (keep_alive) may happen inside
     it and is reported as `Stats.load_duration`.
  3. `generation.cancel()` (client disconnected, a stop string matched, the server shuts down)
     frees the slot within one decode step; the iteration then ends with
     `Finished(reason="cancelled")`. Cancelling twice or after the end is a no-op. The server
     cancels a generation it stops reading; but when the client disconnects, the task reading
     it is cancelled first, so the CancelledError (or GeneratorExit) reaches the iterator before
     `cancel()` does: an iterator abandoned before its `Finished` must cancel itself too.
  An error inside the engine after admission is raised from the iterator (the server turns it
  into an error line / SSE error event, never a crash).

Sampling defaults: `SamplingOptions()` holds ossy's defaults, the gpt-oss model card's
(temperature 1, top_p 1, top_k off); the chat layer fills it from the model's Modelfile
PARAMETERs and then the request, field by field, so a request never overrides a Modelfile value
it does not mention.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import AbstractSet, Any, Literal, Protocol, Union, runtime_checkable

from ossy.errors import OssyError, UnavailableError

FinishReason = Literal["stop", "length", "cancelled"]
OverflowPolicy = Literal["truncate", "error"]


# ---- the request -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SamplingOptions:
    """How to choose each token. Field names are Ollama's option names (PARAMETER names)."""

    temperature: float = 1.0  # 0 = greedy (argmax, deterministic)
    top_p: float = 1.0  # nucleus: keep the smallest set of tokens whose probability reaches p; 1 = off
    top_k: int = 0  # keep the k most likely tokens; 0 = off
    min_p: float = 0.0  # drop tokens with probability < min_p * p(most likely); 0 = off
    repeat_penalty: float = 1.0  # llama.cpp's: divide positive / multiply negative logits of recent tokens; 1 = off
    repeat_last_n: int = 64  # how many recent tokens (prompt + output) the penalties look at; 0 = off, -1 = num_ctx
    presence_penalty: float = 0.0  # OpenAI's: subtract once from the logit of any token seen in the window
    frequency_penalty: float = 0.0  # OpenAI's: subtract count * this from the logit of tokens seen
    seed: int | None = None  # None: random; same seed + same request = same tokens (also in a batch)
    logprobs: bool = False  # attach the chosen token's log-probability to each `Token`
    top_logprobs: int = 0  # also the n most likely alternatives (0..20); implies logprobs


@runtime_checkable
class TokenConstraint(Protocol):
    """A token-level hook for structured output (a JSON grammar, a forced tool call).

    Before sampling each token the engine calls `allowed(generated)` with every id this request
    generated so far (not the prompt). It returns None (no restriction at this step) or the ids
    that may come next, as a set of ids or, faster for large vocabularies, a 1-D bool
    `torch.Tensor` (True = allowed; ids at or past its end are not); the engine masks every other
    logit to -inf before the sampling options apply. An empty set (or all-False mask) is a bug in the constraint: the engine then ends the request with
    reason "stop". The hook runs on the engine's worker thread and must be fast (it is called
    once per token); it may keep incremental state, since `generated` only grows by one id
    between calls of one request.
    """

    def allowed(self, generated: Sequence[int]) -> AbstractSet[int] | Any | None: ...  # Any: bool tensor


@dataclass(frozen=True)
class ModelRef:
    """Which weights to run: what the engine needs to load (and to tell two models apart)."""

    name: str  # the name as shown by /api/ps, e.g. "gpt-oss:20b"
    digest: str  # manifest digest: the identity of a loaded model
    checkpoint: Path | None  # directory `ossy.load` opens; None: nothing loadable (the engine raises)
    context_length: int | None = None  # the model's trained context, caps num_ctx


def reply_room(max_tokens: int | None, num_ctx: int) -> int:
    """Tokens kept free for the reply when a prompt is fitted to `num_ctx` (turns dropped, or the
    prompt truncated): `max_tokens`, at most a quarter of the context, at least one."""
    return max(1, min(max_tokens if max_tokens is not None else num_ctx, num_ctx // 4))


@dataclass(frozen=True)
class GenerateRequest:
    """One generation: everything the engine needs, in token ids."""

    model: ModelRef
    prompt: tuple[int, ...]  # the full prompt; the engine reuses a slot's cached prefix of it
    sampling: SamplingOptions = field(default_factory=SamplingOptions)
    max_tokens: int | None = None  # new tokens at most; None: until a stop id or num_ctx is full
    stop_ids: frozenset[int] = frozenset()  # ids that end the generation; the stop id is emitted
    constraint: TokenConstraint | None = None  # structured output, see `TokenConstraint`
    num_ctx: int = 8192  # context window of the slot (prompt + output), capped by the model's
    overflow: OverflowPolicy = "truncate"  # prompt >= num_ctx: drop prompt tokens, or ContextOverflowError
    # (the chat layer already fits chat prompts by dropping whole messages; this is the backstop)
    keep: int = 0  # "truncate" never drops the first `keep` prompt tokens (system/developer header);
    # it drops the oldest ones after them so the prompt leaves room for `min(max_tokens, num_ctx/4)`
    keep_alive: float | None = None  # seconds the model stays loaded after this request: < 0 forever,
    # 0 unload when done, None the server's default (OSSY_KEEP_ALIVE)
    request_id: str = ""  # for logs


# ---- what comes back ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Token:
    """One generated token."""

    id: int
    logprob: float | None = None  # natural log of its probability, when sampling.logprobs
    top_logprobs: tuple[tuple[int, float], ...] = ()  # (id, logprob) of the most likely, best first


@dataclass(frozen=True)
class Stats:
    """Timings in nanoseconds (Ollama's units) and counts, for the response's final chunk."""

    prompt_eval_count: int = 0  # prompt tokens processed (after truncation, prefix reuse included)
    prompt_eval_duration: int = 0  # ns spent on prefill
    eval_count: int = 0  # tokens generated
    eval_duration: int = 0  # ns spent generating them
    load_duration: int = 0  # ns spent loading the model for this request (0 when it was loaded)
    queue_duration: int = 0  # ns waited for a slot
    cached_tokens: int = 0  # prompt tokens reused from the slot's cache (not re-prefilled)
    truncated_tokens: int = 0  # prompt tokens dropped by the "truncate" policy (the server warns)
    experts: "ExpertCounts | None" = None  # the experts this request's tokens chose (prompt tokens reused
    # from the cache are not run again); None: the backend cannot tell


@dataclass(frozen=True)
class ExpertCounts:
    """Routing decisions of a loaded model since it was loaded, or of one request:
    `counts[layer][expert]` is how many tokens chose that expert in that layer (each token
    chooses `top_k` per layer)."""

    model: str
    top_k: int
    counts: tuple[tuple[int, ...], ...]

    @property
    def tokens(self) -> int:
        return sum(self.counts[0]) // self.top_k if self.counts else 0

    def __add__(self, other: "ExpertCounts") -> "ExpertCounts":
        return ExpertCounts(self.model, self.top_k, tuple(tuple(a + b for a, b in zip(mine, theirs))
                                                          for mine, theirs in zip(self.counts, other.counts)))


@dataclass(frozen=True)
class Finished:
    """The last event of a generation."""

    reason: FinishReason  # "stop": a stop id (or the constraint ended it); "length": max_tokens or
    # num_ctx reached; "cancelled": cancel() or an abandoned iterator
    stats: Stats = field(default_factory=Stats)


Event = Union[Token, Finished]


@runtime_checkable
class Generation(Protocol):
    """A running request: iterate its events; cancel it when no longer reading."""

    def __aiter__(self) -> AsyncIterator[Event]: ...

    def cancel(self) -> None:
        """Stop generating; safe from the event loop at any time, idempotent."""


@dataclass(frozen=True)
class LoadedModel:
    """One model in memory, as /api/ps shows it."""

    name: str
    digest: str
    size: int  # bytes it holds: weights, its slots' caches at `context_length`, step buffers (the estimate)
    size_vram: int  # bytes of them on an accelerator (0 on CPU)
    context_length: int  # num_ctx of its slots: the largest a request to it asked for
    expires_at: float | None  # unix time it unloads when idle; None: never
    backend: str = "torch"  # what computes it: "native-avx512", "native-avx2" (ossy's kernels) or "torch"


@dataclass(frozen=True)
class Embeddings:
    """What `Engine.embed` returns: one L2-normalised fp32 vector per input, in order."""

    vectors: list[list[float]]
    load_duration: int  # ns spent loading the model (0 if it was loaded)
    prompt_tokens: int  # ids read, all inputs together


@runtime_checkable
class Engine(Protocol):
    """What the server drives. One engine serves every model (loading them as needed)."""

    async def submit(self, request: GenerateRequest) -> Generation:
        """Admit `request` (see the module docstring for what it raises) and start it."""

    async def load(self, model: ModelRef, keep_alive: float | None = None) -> int:
        """Load `model` if needed (an empty /api/chat or /api/generate); ns it took (0 if loaded)."""

    async def embed(self, model: ModelRef, inputs: list[tuple[int, ...]], keep_alive: float | None = None) -> Embeddings:
        """The embedding of each input's ids (`LanguageModel.embedding`), loading `model` if needed."""

    async def unload(self, model: ModelRef) -> None:
        """Unload `model` once its running requests finish (keep_alive 0); no-op if not loaded."""

    def loaded(self) -> list[LoadedModel]:
        """The models in memory now."""

    def counters(self) -> dict[str, int]:
        """Monotonic counters for tests and /metrics: at least `submitted`, `finished`,
        `cancelled`, `rejected` (queue full), `max_batch` (most requests decoded in one step),
        `prefill_tokens`, `cached_tokens`, `decode_steps`."""

    def memory_estimate(self, config: Any, num_ctx: int) -> Any:
        """The `ossy.model.inspect.MemoryEstimate` of a model of `config` loaded here with slots
        of `num_ctx` tokens (what the memory check before a load computes)."""

    def expert_counts(self) -> list[ExpertCounts]:
        """Routing counts of each loaded model that reports them (`LanguageModel.last_routing`)."""

    def occupancy(self) -> dict[str, int]:
        """Now: `waiting` (admitted, not yet in a slot), `running` (slots generating), `slots` (of
        the loaded models)."""

    def health(self) -> dict:
        """`{"status": "ok" | "down", "restarts": n, "last_error": str | None}`: "down" while a
        worker that stopped on an error is being replaced (requests then get a 503 at once)."""

    async def close(self) -> None:
        """Cancel everything and free the models (server shutdown)."""


# ---- errors the engine raises from submit() ---------------------------------------------------


class QueueFullError(UnavailableError):
    """503: `OSSY_MAX_QUEUE` requests already wait. `retry_after` seconds go in Retry-After."""

    def __init__(self, message: str = "server busy, please try again: maximum pending requests exceeded",
                 retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ContextOverflowError(OssyError):
    """400: the prompt does not fit in num_ctx and the policy is "error"."""

    code = "context_length_exceeded"


# ---- model resolution (server side) ------------------------------------------------------------


@dataclass
class ResolvedModel:
    """Everything the server needs about a model name, from the store (or a test's stub)."""

    ref: ModelRef
    tokenizer: Any  # an `ossy.tokenizer.Tokenizer` (encode/decode/token_id/stream_decoder)
    template: str | None = None  # the Go TEMPLATE; None or the gpt-oss library one -> harmony rendering
    harmony: bool = True  # render with ossy.harmony (the library template) rather than `template`
    system: str | None = None  # the Modelfile SYSTEM (used when the request has no system message)
    parameters: dict[str, Any] = field(default_factory=dict)  # Modelfile PARAMETERs, typed (stop: list)
    messages: list[dict] = field(default_factory=list)  # Modelfile MESSAGEs, prepended to every chat
    licenses: list[str] = field(default_factory=list)
    capabilities: tuple[str, ...] = ("completion", "tools", "thinking")
    details: dict[str, Any] = field(default_factory=dict)  # Ollama's details{format, family, ...}
    modelfile: str = ""  # text for /api/show
    size: int = 0
    modified: float = 0.0  # unix time


class ModelResolver(Protocol):
    """Name -> `ResolvedModel`; raises `NotFoundError` for an unknown name."""

    def resolve(self, name: str) -> ResolvedModel: ...
