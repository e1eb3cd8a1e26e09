"""`VllmEngine`: the `Engine` in front of vLLM, so ossy's APIs, harmony, tools and agent loop run
on a backend that serves a GPU, a node or a cluster; vLLM only turns token ids into token ids.

Owns: mapping a `GenerateRequest` onto vLLM's sampling parameters one to one (`vllm_sampling`:
what vLLM cannot do as ossy does it is refused with a 400 naming the option, never ignored); the
two ways to reach vLLM, `InProcess` (vllm.v1's `AsyncLLM` in this process, its engine core in a
child process) and `Remote` (a `vllm serve` over HTTP, token ids through its /v1/completions
with `return_token_ids`); streaming the ids back as `Token`s with their logprobs; cancellation
(vLLM aborts a request whose stream is closed); ossy's structured-output constraint, run by
stepping (`_constrained`); /api/ps entries, counters and health.

Structured output by stepping: before each token ossy's own `TokenConstraint` (llguidance, the
same grammar the local engine runs) gives the ids allowed next, and vLLM samples one token among
them (`allowed_token_ids`, max_tokens 1), the prompt's KV reused from vLLM's prefix cache. That is
one vLLM request per constrained token, chosen over vLLM's guided decoding because the grammar and
the tool-call forcing stay ossy's (identical output on both backends) and because guided decoding
needs a tokenizer in vLLM, which token-id serving does without. Its cost, measured on the tiny
test model in process (fp32, 2 CPU threads, best of 3): 112 constrained tokens/s against 167
free ones, about 3 ms more per token.

Does not own: vLLM (it lives in a venv of its own: `make test-vllm`), text, harmony, the prompt
overflow policy (`ossy.engine.jobs.admit_prompt`, shared with the local engine).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx

from ossy.engine.jobs import admit_prompt
from ossy.engine.protocol import (
    Embeddings,
    ExpertCounts,
    Finished,
    FinishReason,
    GenerateRequest,
    LoadedModel,
    ModelRef,
    QueueFullError,
    SamplingOptions,
    Stats,
    Token,
)
from ossy.errors import NotFoundError, OssyError, UnavailableError
from ossy.model.inspect import MemoryEstimate, estimate_memory

log = logging.getLogger("ossy.engine")

FINISH = {"stop": "stop", "length": "length", "abort": "cancelled"}  # vLLM's finish_reason -> ours


class UnsupportedOption(OssyError):
    """400: a sampling option vLLM cannot apply the way ossy defines it."""


def vllm_sampling(o: SamplingOptions, max_tokens: int, stop_ids: frozenset[int]) -> dict[str, Any]:
    """ossy's sampling options as vLLM `SamplingParams` fields. vLLM stops at exactly `stop_ids`
    (`ignore_eos`: the model's own end ids stop it only when the chat layer asks) and counts
    repetition over the whole context and the penalties over the output only, so a
    repeat_penalty over the last n tokens and presence/frequency penalties over prompt and output
    (ossy's, llama.cpp's) are refused rather than run differently."""
    if o.repeat_penalty != 1.0 and o.repeat_last_n != -1:
        raise UnsupportedOption(f"repeat_penalty {o.repeat_penalty} over the last {o.repeat_last_n} tokens is not "
                                "available on the vLLM backend (its repetition penalty covers the whole context): "
                                "set repeat_last_n -1, or repeat_penalty 1")
    for name in ("presence_penalty", "frequency_penalty"):
        if getattr(o, name):
            raise UnsupportedOption(f"{name} is not available on the vLLM backend (vLLM counts only the generated "
                                    f"tokens, ossy the prompt's too); leave it at 0")
    params: dict[str, Any] = {
        "temperature": o.temperature, "top_p": o.top_p, "top_k": o.top_k, "min_p": o.min_p,
        "repetition_penalty": o.repeat_penalty, "max_tokens": max_tokens,
        "stop_token_ids": sorted(stop_ids), "ignore_eos": True,
    }
    if o.seed is not None:
        params["seed"] = o.seed
    if o.logprobs or o.top_logprobs:
        params["logprobs"] = o.top_logprobs  # vLLM adds the sampled token's own
    return params


@dataclass(frozen=True)
class Delta:
    """What vLLM streamed for one request since the last delta."""

    tokens: tuple[Token, ...]
    finish: str | None = None  # vLLM's finish_reason, on the last delta
    cached: int = 0  # prompt tokens vLLM took from its prefix cache


class Transport(Protocol):
    """One way to reach vLLM."""

    name: str  # for /api/ps and logs: "vllm" or "vllm <url>"

    async def load(self, model: ModelRef) -> None: ...

    def stream(self, prompt: list[int], params: dict[str, Any], request_id: str) -> AsyncIterator[Delta]: ...

    async def close(self) -> None: ...


def _token(token_id: int, logprob: float | None, top: dict[int, float] | None, k: int) -> Token:
    alternatives = tuple(sorted(top.items(), key=lambda item: -item[1])[:k]) if top else ()
    return Token(token_id, logprob, alternatives)


class InProcess:
    """vLLM's `AsyncLLM` in this process (one model at a time). `engine_args` are vLLM's
    `AsyncEngineArgs` fields (tensor_parallel_size, max_model_len, enforce_eager, ...): the
    model is the checkpoint directory, read by vLLM itself, without its tokenizer."""

    name = "vllm"

    def __init__(self, engine_args: dict[str, Any] | None = None) -> None:
        self.engine_args = dict(engine_args or {})
        self.llm = None

    async def load(self, model: ModelRef) -> None:
        if model.checkpoint is None:
            raise NotFoundError(f"model {model.name!r} has no weights to load")
        await self.close()
        self.llm = await asyncio.to_thread(self._open, Path(model.checkpoint))

    def _open(self, checkpoint: Path):
        from vllm import AsyncEngineArgs  # lazy: vLLM lives in a venv of its own (make test-vllm)
        from vllm.v1.engine.async_llm import AsyncLLM  # lazy: as above

        args = {"model": str(checkpoint), "skip_tokenizer_init": True, "disable_log_stats": True,
                **self.engine_args}
        return AsyncLLM.from_engine_args(AsyncEngineArgs(**args))

    async def stream(self, prompt: list[int], params: dict[str, Any], request_id: str) -> AsyncIterator[Delta]:
        from vllm import SamplingParams  # lazy: as above
        from vllm.inputs import tokens_input  # lazy: as above
        from vllm.sampling_params import RequestOutputKind  # lazy: as above

        k = params.get("logprobs") or 0
        sampling = SamplingParams(**params, detokenize=False, output_kind=RequestOutputKind.DELTA)
        async for out in self.llm.generate(tokens_input(prompt), sampling, request_id=request_id):
            c = out.outputs[0]
            logprobs = c.logprobs or [None] * len(c.token_ids)
            tokens = tuple(_token(t, lp[t].logprob if lp else None, {i: p.logprob for i, p in lp.items()} if lp else None, k)
                           for t, lp in zip(c.token_ids, logprobs))
            yield Delta(tokens, c.finish_reason if out.finished else None, out.num_cached_tokens or 0)

    async def close(self) -> None:
        if self.llm is not None:
            llm, self.llm = self.llm, None
            await asyncio.to_thread(llm.shutdown)


class Remote:
    """A vLLM server (`vllm serve`) at `url`: token ids in and out of its /v1/completions."""

    def __init__(self, url: str, client: httpx.AsyncClient | None = None) -> None:
        self.url = url.rstrip("/")
        self.name = f"vllm {self.url}"
        self.http = client or httpx.AsyncClient(timeout=httpx.Timeout(None, connect=10.0))
        self.served: str | None = None

    async def load(self, model: ModelRef) -> None:
        """Ask the server which model it serves (it serves one; ossy's model name is ours)."""
        try:
            answer = await self.http.get(f"{self.url}/v1/models")
            answer.raise_for_status()
            self.served = answer.json()["data"][0]["id"]
        except (httpx.HTTPError, ValueError, KeyError, IndexError) as e:
            raise UnavailableError(f"the vLLM server at {self.url} does not answer /v1/models ({e})") from None

    async def stream(self, prompt: list[int], params: dict[str, Any], request_id: str) -> AsyncIterator[Delta]:
        k = params.get("logprobs")
        body = {"model": self.served, "prompt": prompt, "stream": True, "return_token_ids": True,
                "skip_special_tokens": False, "request_id": request_id, **params}
        if k is not None:
            body["return_tokens_as_token_ids"] = True  # logprobs keyed "token_id:<id>", no tokenizer needed
        async with self.http.stream("POST", f"{self.url}/v1/completions", json=body) as answer:
            if answer.status_code != 200:
                text = (await answer.aread()).decode(errors="replace")[:300]
                raise UnavailableError(f"the vLLM server at {self.url} answered {answer.status_code}: {text}")
            async for line in answer.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                chunk = json.loads(line[6:])
                if "error" in chunk:
                    raise UnavailableError(f"the vLLM server at {self.url} failed: {chunk['error']}")
                for choice in chunk.get("choices", []):
                    yield Delta(self._tokens(choice, k or 0), choice.get("finish_reason"))

    @staticmethod
    def _tokens(choice: dict, k: int) -> tuple[Token, ...]:
        ids = choice.get("token_ids") or []
        logprobs = choice.get("logprobs") or {}
        values = logprobs.get("token_logprobs") or [None] * len(ids)
        tops = logprobs.get("top_logprobs") or [None] * len(ids)
        return tuple(_token(t, lp, {int(key.split(":", 1)[1]): v for key, v in top.items()} if top else None, k)
                     for t, lp, top in zip(ids, values, tops))

    async def close(self) -> None:
        await self.http.aclose()


class VllmEngine:
    """The `Engine` protocol over a `Transport` (`InProcess` or `Remote`); vLLM batches."""

    def __init__(self, transport: Transport, *, max_queue: int = 512, dtype: str = "bfloat16") -> None:
        self.transport, self.max_queue, self.dtype = transport, max_queue, dtype
        self.model: ModelRef | None = None
        self._load_lock = asyncio.Lock()
        self._running: set[VllmGeneration] = set()
        self._counters: Counter = Counter()
        self._last_error: str | None = None

    async def submit(self, request: GenerateRequest) -> VllmGeneration:
        if not request.prompt:
            raise OssyError("the prompt is empty")
        num_ctx = min(request.num_ctx, request.model.context_length or request.num_ctx)
        prompt, truncated = admit_prompt(request, num_ctx)
        max_new = num_ctx - len(prompt)
        if request.max_tokens is not None:
            max_new = min(max_new, request.max_tokens)
        params = vllm_sampling(request.sampling, max_new, request.stop_ids)
        if len(self._running) >= self.max_queue:
            self._counters["rejected"] += 1
            raise QueueFullError()
        load_ns = await self.load(request.model)
        generation = VllmGeneration(self, request, list(prompt), params, truncated, load_ns)
        self._counters["submitted"] += 1
        self._counters["truncated_tokens"] += truncated
        self._running.add(generation)
        self._counters["max_batch"] = max(self._counters["max_batch"], len(self._running))
        return generation

    async def load(self, model: ModelRef, keep_alive: float | None = None) -> int:
        async with self._load_lock:
            if self.model is not None and self.model.digest == model.digest:
                return 0
            if self._running and isinstance(self.transport, InProcess):
                raise UnavailableError(f"vLLM in this process serves one model at a time and {self.model.name!r} "
                                       f"is generating; {model.name!r} can load when it is done")
            started = time.perf_counter_ns()
            try:
                await self.transport.load(model)
            except OssyError:
                raise
            except Exception as e:  # vLLM's own errors: a 503 naming them, not a 500
                self._last_error = f"{type(e).__name__}: {e}"
                raise UnavailableError(f"vLLM could not load {model.name!r}: {self._last_error}") from None
            self.model = model
            self._counters["loads"] += 1
            return time.perf_counter_ns() - started

    async def embed(self, model: ModelRef, inputs: list[tuple[int, ...]], keep_alive: float | None = None) -> Embeddings:
        raise OssyError("embeddings are not available on the vLLM backend: it serves the model for generation; "
                        "run the embedding on ossy's own engine (OSSY_BACKEND=local)")

    async def unload(self, model: ModelRef) -> None:
        """Unload when nothing runs (keep_alive 0). A remote server keeps its model: it is vLLM's."""
        if isinstance(self.transport, InProcess) and self.model is not None and self.model.digest == model.digest \
                and not self._running:
            async with self._load_lock:
                await self.transport.close()
                self.model = None
                self._counters["unloads"] += 1

    def loaded(self) -> list[LoadedModel]:
        if self.model is None:
            return []
        ctx = self.model.context_length or 0
        return [LoadedModel(self.model.name, self.model.digest, _weights_size(self.model), 0, ctx, None,
                            self.transport.name)]

    def counters(self) -> dict[str, int]:
        return {key: self._counters[key] for key in
                ("submitted", "finished", "cancelled", "rejected", "max_batch", "prefill_tokens", "cached_tokens",
                 "decode_steps", "loads", "unloads", "truncated_tokens")}

    def memory_estimate(self, config, num_ctx: int) -> MemoryEstimate:
        """ossy's own estimate for one slot of `num_ctx` (vLLM sizes its KV cache itself)."""
        return estimate_memory(config, num_ctx, 1, element_size=2 if self.dtype == "bfloat16" else 4)

    def expert_counts(self) -> list[ExpertCounts]:
        return []  # vLLM does not report routing

    def occupancy(self) -> dict[str, int]:
        return {"waiting": 0, "running": len(self._running), "slots": len(self._running)}

    def health(self) -> dict:
        return {"status": "ok", "restarts": 0, "last_error": self._last_error}

    async def close(self) -> None:
        for generation in list(self._running):
            generation.cancel()
        await self.transport.close()
        self.model = None

    def _ended(self, generation: VllmGeneration, reason: FinishReason, prompt_tokens: int, cached: int,
               generated: int) -> None:
        self._running.discard(generation)
        self._counters["finished"] += 1
        self._counters["cancelled"] += reason == "cancelled"
        self._counters["prefill_tokens"] += prompt_tokens - cached
        self._counters["cached_tokens"] += cached
        self._counters["decode_steps"] += generated


class VllmGeneration:
    """A running request: a task pumps vLLM's deltas into a queue the server reads."""

    def __init__(self, engine: VllmEngine, request: GenerateRequest, prompt: list[int], params: dict[str, Any],
                 truncated: int, load_ns: int) -> None:
        self.engine, self.request, self.prompt, self.params = engine, request, prompt, params
        self.truncated, self.load_ns = truncated, load_ns
        self.id = f"{request.request_id or 'ossy'}-{uuid.uuid4().hex[:12]}"  # unique, as vLLM requires
        self.generated: list[int] = []
        self.cached = 0
        self.started = time.perf_counter_ns()
        self.first: int | None = None  # when the first token came (the prefill's end)
        self.ended: FinishReason = "length"  # how vLLM's stream ended, when it ran out by itself
        self.queue: asyncio.Queue = asyncio.Queue()
        self.task = asyncio.create_task(self._pump())

    def cancel(self) -> None:
        if not self.task.done():
            self.task.cancel()

    def __aiter__(self) -> AsyncIterator:
        return self._events()

    async def _events(self):
        finished = False
        try:
            while True:
                event = await self.queue.get()
                if isinstance(event, BaseException):
                    finished = True
                    raise event
                yield event
                if isinstance(event, Finished):
                    finished = True
                    return
        finally:
            if not finished:  # abandoned before its end: the client went away
                self.cancel()

    async def _pump(self) -> None:
        tokens = self._constrained() if self.request.constraint is not None else self._free()
        try:
            reason = await self._read(tokens)
        except asyncio.CancelledError:
            reason = "cancelled"
        except Exception as e:  # noqa: BLE001 - delivered to the reader, who turns it into an error event
            self.engine._last_error = f"{type(e).__name__}: {e}"
            self.engine._ended(self, "cancelled", 0, 0, len(self.generated))
            self.queue.put_nowait(e if isinstance(e, OssyError) else UnavailableError(f"vLLM failed: {e}"))
            return
        finally:
            await tokens.aclose()  # a stream left early: vLLM aborts the request
        self._finish(reason)

    async def _read(self, tokens: AsyncIterator[Token]) -> FinishReason:
        async for token in tokens:
            if self.first is None:
                self.first = time.perf_counter_ns()
            self.generated.append(token.id)
            self.queue.put_nowait(token)
            if token.id in self.request.stop_ids:
                return "stop"
            if len(self.generated) >= self.params["max_tokens"]:
                return "length"
        return self.ended

    async def _free(self) -> AsyncIterator[Token]:
        async for delta in self.engine.transport.stream(self.prompt, self.params, self.id):
            self.cached = max(self.cached, delta.cached)
            for token in delta.tokens:
                yield token
            if delta.finish is not None:
                self.ended = FINISH.get(delta.finish, "stop")
                if delta.finish not in FINISH:
                    raise UnavailableError(f"vLLM ended the request with {delta.finish!r}")

    async def _constrained(self) -> AsyncIterator[Token]:
        """One vLLM request per token, each among the ids ossy's constraint allows next."""
        import torch  # lazy: the constraint may hand a bool mask (torch is loaded wherever one is made)

        for step in range(self.params["max_tokens"]):
            allowed = self.request.constraint.allowed(self.generated)
            if isinstance(allowed, torch.Tensor):
                allowed = allowed.nonzero().view(-1).tolist()
            if allowed is not None and not allowed:
                self.ended = "stop"  # the constraint allows nothing: it is complete
                return
            params = {**self.params, "max_tokens": 1}
            if allowed is not None:
                params["allowed_token_ids"] = sorted(allowed)
            tokens = []
            async for delta in self.engine.transport.stream(self.prompt + self.generated, params, f"{self.id}-{step}"):
                tokens.extend(delta.tokens)
            for token in tokens[:1]:
                yield token
        self.ended = "length"

    def _finish(self, reason: FinishReason) -> None:
        now = time.perf_counter_ns()
        first = self.first or now
        self.engine._ended(self, reason, len(self.prompt), self.cached, len(self.generated))
        self.queue.put_nowait(Finished(reason, Stats(
            prompt_eval_count=len(self.prompt), prompt_eval_duration=first - self.started,
            eval_count=len(self.generated), eval_duration=now - first, load_duration=self.load_ns,
            cached_tokens=self.cached, truncated_tokens=self.truncated)))


def _weights_size(model: ModelRef) -> int:
    """Bytes of the checkpoint's weight files (what vLLM loads); 0 when there is no local copy."""
    if model.checkpoint is None or not Path(model.checkpoint).is_dir():
        return 0
    return sum(f.stat().st_size for f in Path(model.checkpoint).glob("*.safetensors"))
