"""A scripted `Engine` for the server and chat tests: no model, real token ids.

`StubEngine(tokenizer, respond)`: for each request, `respond(prompt_text, request)` returns the
harmony text the "model" generates (e.g. "<|channel|>final<|message|>Hi<|return|>"); it is
encoded with the real tokenizer (special tokens allowed) and streamed token by token, so the
real harmony parser, stop handling and HTTP layers run. It honours `max_tokens` ("length"),
stop ids ("stop"), cancellation ("cancelled"), the "error" overflow policy, a queue limit
(`max_active`: more running requests than that -> QueueFullError), and records every
`GenerateRequest` in `requests` and its counters in `counters()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections import Counter
from pathlib import Path

import ossy.tokenizer
from ossy.engine.protocol import (
    ContextOverflowError,
    Finished,
    GenerateRequest,
    LoadedModel,
    ModelRef,
    QueueFullError,
    Stats,
    Token,
)

DEFAULT_REPLY = ("<|channel|>analysis<|message|>The user greets me.<|end|>"
                 "<|start|>assistant<|channel|>final<|message|>Hello! How can I help?<|return|>")


def default_respond(prompt_text: str, request: GenerateRequest) -> str:
    return DEFAULT_REPLY


class StubEngine:
    def __init__(self, tokenizer, respond=default_respond, *, delay: float = 0.0, max_active: int | None = None):
        self.tokenizer = tokenizer
        self.respond = respond
        self.delay = delay  # seconds per token (lets tests disconnect mid-stream)
        self.max_active = max_active
        self.honour_stop_ids = True  # False: play the whole script (several tool calls in one turn)
        self.active = 0
        self.requests: list[GenerateRequest] = []
        self._counters: Counter = Counter()
        self._loaded: dict[str, tuple[ModelRef, float | None]] = {}

    # -- Engine ----------------------------------------------------------------------------------
    async def submit(self, request: GenerateRequest) -> "StubGeneration":
        if self.max_active is not None and self.active >= self.max_active:
            self._counters["rejected"] += 1
            raise QueueFullError(retry_after=2)
        if len(request.prompt) >= request.num_ctx and request.overflow == "error":
            raise ContextOverflowError(f"the prompt is {len(request.prompt)} tokens, num_ctx is {request.num_ctx}")
        self.requests.append(request)
        self._counters["submitted"] += 1
        load = await self.load(request.model, request.keep_alive)
        text = self.respond(self.tokenizer.decode(list(request.prompt)), request)
        error = None
        if isinstance(text, BaseException):  # the engine fails after a few tokens
            error, text = text, "<|channel|>final<|message|>partial"
        ids = self.tokenizer.encode(text, allow_special=True)
        generation = StubGeneration(self, request, ids, load)
        generation.error = error
        return generation

    async def embed(self, model: ModelRef, inputs, keep_alive: float | None = None):
        """A vector of 8 per input from its ids (a stand-in: the real ones are tested with a model)."""
        from ossy.engine.protocol import Embeddings

        took = await self.load(model, keep_alive)
        vectors = []
        for ids in inputs:
            v = [float(sum(1 for x in ids if x % 8 == k)) for k in range(8)]
            norm = sum(x * x for x in v) ** 0.5 or 1.0
            vectors.append([x / norm for x in v])
        return Embeddings(vectors, took, sum(map(len, inputs)))

    async def load(self, model: ModelRef, keep_alive: float | None = None) -> int:
        was = model.digest in self._loaded
        expires = None if keep_alive is not None and keep_alive < 0 else time.time() + (keep_alive or 300)
        self._loaded[model.digest] = (model, expires)
        return 0 if was else 1000

    async def unload(self, model: ModelRef) -> None:
        self._loaded.pop(model.digest, None)

    def loaded(self) -> list[LoadedModel]:
        return [LoadedModel(ref.name, ref.digest, 1234, 0, 8192, expires) for ref, expires in self._loaded.values()]

    def counters(self) -> dict[str, int]:
        return dict(self._counters)

    def occupancy(self) -> dict[str, int]:
        return {"waiting": 0, "running": self.active, "slots": len(self._loaded)}

    def expert_counts(self) -> list:
        return []  # no model, no routing

    def memory_estimate(self, config, num_ctx: int):
        from ossy.model.inspect import estimate_memory

        return estimate_memory(config, num_ctx)

    def health(self) -> dict:
        return {"status": "ok", "restarts": 0, "last_error": None}

    async def close(self) -> None:
        self._loaded.clear()


class StubGeneration:
    def __init__(self, engine: StubEngine, request: GenerateRequest, ids: list[int], load: int) -> None:
        self.engine, self.request, self.ids, self.load = engine, request, ids, load
        self.cancelled = False
        engine.active += 1
        self._done = self._started = self._finished = False

    def cancel(self) -> None:
        if not self.cancelled and not self._done and not self._finished:
            self.cancelled = True
            self.engine._counters["cancelled"] += 1
            if not self._started:  # never iterated: free the slot now
                self._done = True
                self.engine.active -= 1

    def __aiter__(self):
        self._started = True
        return self._run()

    async def _run(self):
        req, count, reason = self.request, 0, "length"
        started = time.monotonic_ns()
        try:
            for token_id in self.ids:
                await asyncio.sleep(self.engine.delay)
                if self.cancelled:
                    reason = "cancelled"
                    break
                if req.max_tokens is not None and count >= req.max_tokens:
                    break
                count += 1
                if req.sampling.logprobs:
                    top = tuple((token_id + k, -0.1 * (k + 1)) for k in range(req.sampling.top_logprobs))
                    yield Token(token_id, -0.25, top)
                else:
                    yield Token(token_id)
                if token_id in req.stop_ids and self.engine.honour_stop_ids:
                    reason = "stop"
                    break
            else:
                reason = "cancelled" if self.cancelled else "length"
            if self.error is not None:
                raise self.error
            elapsed = max(time.monotonic_ns() - started, 2)
            stats = Stats(prompt_eval_count=len(req.prompt), prompt_eval_duration=elapsed // 2, eval_count=count,
                          eval_duration=elapsed // 2, load_duration=self.load)
            self._finished = True
            yield Finished(reason, stats)
        finally:  # also reached when the consumer is cancelled or closes the iterator: that is a cancel
            self.cancel()
            self._done = True
            self.engine.active -= 1
            self.engine._counters["finished"] += 1


# ---- a real uvicorn server on a free loopback port, in a thread --------------------------------


class RunningServer:
    """`with RunningServer(app) as url:` serves `app` on 127.0.0.1:<free port> and stops it after."""

    def __init__(self, app) -> None:
        import socket

        import uvicorn

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on",
                                timeout_graceful_shutdown=2)
        self.server = uvicorn.Server(config)
        self.thread = None

    def __enter__(self) -> str:
        import threading

        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        return self.url

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


# ---- a model store with tiny models, and a scripted "model" ----------------------------------


def tiny_library(root, tokenizer):
    """A `Library` in `root` holding `tiny` (a random tiny checkpoint with the library defaults)
    and `tiny-terse` (FROM tiny, SYSTEM and PARAMETERs), and a resolver using `tokenizer`."""
    from pathlib import Path

    from store_util import make_checkpoint

    from ossy.chat.models import StoreResolver
    from ossy.modelfile import parse
    from ossy.store import Library, Store, create

    root = Path(root)
    checkpoint = make_checkpoint(root / "ckpt")
    library = Library(Store(root / "models"))
    create(library, "tiny", parse(f"FROM {checkpoint}\n"), base_dir=root)
    create(library, "tiny-terse", parse('FROM tiny\nSYSTEM "Be terse."\nPARAMETER temperature 0.2\n'
                                        'PARAMETER top_k 7\n'), base_dir=root)
    return library, StoreResolver(library, load_tokenizer=lambda directory: tokenizer)


WEATHER_CALL = ("<|channel|>analysis<|message|>I should call the weather tool.<|end|>"
                "<|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json"
                '<|message|>{{"city": "{city}"}}<|call|>')


# The tool `scripted` calls, as an OpenAI chat request offers it.
WEATHER_TOOL = {"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
                                                 "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                                "required": ["city"]}}}


def scripted(prompt_text: str, request) -> str:
    """The stub's "model": a weather tool loop, a JSON answer, or a greeting, by the prompt."""
    if prompt_text.endswith("<|message|>"):  # a forced tool call (tool_choice): only its arguments
        return '{"city": "Paris"}<|call|>'
    last = prompt_text.rsplit("<|start|>", 2)[-2] if prompt_text.count("<|start|>") >= 2 else prompt_text
    if last.startswith("functions.get_weather"):
        return ("<|channel|>analysis<|message|>The tool answered.<|end|>"
                "<|start|>assistant<|channel|>final<|message|>It is sunny in Paris.<|return|>")
    if "type get_weather" in prompt_text and "weather" in last:
        if "two cities" in last:
            return WEATHER_CALL.format(city="Paris") + "<|start|>assistant" + \
                WEATHER_CALL.format(city="Rome").removeprefix(
                    "<|channel|>analysis<|message|>I should call the weather tool.<|end|><|start|>assistant")
        return WEATHER_CALL.format(city="Paris")
    if "json please" in last:
        return '<|channel|>analysis<|message|>JSON it is.<|end|><|start|>assistant<|channel|>final<|message|>{"answer": 42}<|return|>'
    if "explode" in last:
        return RuntimeError("the accelerator caught fire")
    if "count" in last:
        return "<|channel|>final<|message|>" + " ".join(str(i) for i in range(1, 200)) + "<|return|>"
    return DEFAULT_REPLY


O200K = Path(__file__).resolve().parents[2] / "shared" / "vocab" / "o200k_base.tiktoken"


@functools.cache
def tokenizer():
    """o200k_harmony from the shared vocab, loaded once per test process."""
    return ossy.tokenizer.load(O200K)


@contextlib.contextmanager
def stub_server(root):
    """A live server over `StubEngine(tokenizer(), scripted)` and a tiny store in `root`:
    yields (base url, engine)."""
    from ossy.server import create_app

    library, resolver = tiny_library(root, tokenizer())
    engine = StubEngine(tokenizer(), scripted)
    with RunningServer(create_app(engine, resolver, library)) as url:
        yield url, engine
