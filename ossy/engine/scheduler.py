"""`LocalEngine`: the in-process `Engine` — continuous batching on one worker thread.

Owns: admission (`submit`: sampling options, context overflow policy, the bounded queue), the
worker thread that owns every loaded model and runs the loop
    drop cancelled requests -> load models for waiting ones -> admit waiting requests into free
    slots (prefix reuse) -> one prompt chunk (PREFILL_CHUNK ids) of each slot still reading its
    prompt -> one decode step per model over all its slots that are generating
    (`LanguageModel.forward_batch`) -> unload models idle past their keep_alive,
so requests join the batch between decode steps and leave when done, and a long prompt is read a
chunk at a time between the decode steps of the others instead of stalling them; `num_parallel` slots per
model, each keeping its KV cache after a request for the next one to reuse; keep_alive
loading/unloading, after a memory check (`memory_estimate`: a model that will not fit is refused
with Ollama's "model requires more system memory"); counters; supervision of the worker.

Supervision: no input can end the worker (durations are clamped by `ossy.duration`, timeouts
again here), but if it ever stops on an error, every waiting and running request fails at once
with a 503 naming the error, new ones get the same 503 while it is down, `health()` says so,
and a fresh worker starts after `RESTART_DELAY` seconds (models are loaded again on demand).
Does not own: the per-request bookkeeping and asyncio bridge (`ossy.engine.jobs`), token choice
(`ossy.engine.sampling`), the model math, text or HTTP.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from ossy.config import Settings
from ossy.engine.jobs import Job, Slot, Stream, admit_prompt, common_prefix, routing_counts
from ossy.engine.protocol import Embeddings, ExpertCounts, GenerateRequest, LoadedModel, ModelRef, QueueFullError
from ossy.engine.sampling import Sampler, nothing_allowed
from ossy.errors import NotEnoughMemoryError, NotFoundError, OssyError, UnavailableError
from ossy.model.inspect import MemoryEstimate, estimate_memory
from ossy.model.interface import LanguageModel
from ossy.model.loading import open_model
from ossy.model.native import open_kernels
from ossy.model.weights import Checkpoint

PREFILL_CHUNK = 512  # prompt ids per forward: bounds the [heads, T, S] attention scores
RESTART_DELAY = 1.0
MAX_WAIT = 3600.0  # longest single wait of the idle worker (a keep_alive can be ten years)  # seconds between a worker's death and its replacement

log = logging.getLogger("ossy.engine")


def load_checkpoint(ref: ModelRef, dtype: str, kernels: str = "auto", threads: int | None = None) -> LanguageModel:
    return open_model(ref.checkpoint, dtype=dtype, kernels=kernels, threads=threads)


DEFAULT_REWIND = 2048  # positions a slot can step back and reuse (`LanguageModel.new_cache(rewind)`)
LOAD_NUM_CTX = 4096  # the context a load without a request (/api/generate with no prompt) is checked for


def memory_estimate(config, num_ctx: int, slots: int, dtype: str = "bfloat16", rewind: int = DEFAULT_REWIND,
                    native: bool = True) -> MemoryEstimate:
    """`ossy.model.inspect.estimate_memory` for this engine's layout: `slots` slots with `rewind`,
    prefill in PREFILL_CHUNK chunks, attention scores only on the PyTorch path (not `native`)."""
    return estimate_memory(config, num_ctx, slots, element_size=2 if dtype == "bfloat16" else 4, rewind=rewind,
                           chunk=PREFILL_CHUNK, attention_scores=not native)


def available_memory() -> int | None:
    """MemAvailable from /proc/meminfo in bytes; None where there is none (the check is skipped)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _gib(n: int) -> str:
    return f"{n / 2**30:.1f} GiB"


class Command:
    """A function run on the worker thread (load, unload); its outcome goes to `future`."""

    def __init__(self, fn: Callable[[], object]) -> None:
        self.fn = fn
        self.future: concurrent.futures.Future = concurrent.futures.Future()

    def __call__(self) -> None:
        try:
            self.future.set_result(self.fn())
        except Exception as e:  # reported to the caller
            self.future.set_exception(e)
        except BaseException as e:  # noqa: BLE001 - SystemExit from a loader: a 503, not a dead event loop
            self.future.set_exception(UnavailableError(f"loading failed: {type(e).__name__}: {e}"))

    def fail(self, error: Exception) -> None:
        if not self.future.done():
            self.future.set_exception(error)


@dataclass(eq=False)
class Resident:
    """A loaded model and its slots."""

    ref: ModelRef
    model: LanguageModel
    slots: list[Slot]
    size: int
    keep_alive: float
    idle_since: float = field(default_factory=time.time)
    routing: torch.Tensor | None = None  # [L, E] int64: the experts chosen since it was loaded
    num_ctx: int = 0  # the largest num_ctx of the requests it has served (its slots' caches grow to it)

    def count_routing(self, slots: list[Slot]) -> None:
        """Add the last forward's routing (`LanguageModel.last_routing` [L, B, E], B = the slots in
        order) to each slot's request and to this model's totals; a model without it adds nothing."""
        routing = getattr(self.model, "last_routing", None)
        if routing is None:
            return
        routing = routing.cpu()
        for b, slot in enumerate(slots):
            slot.job.add_routing(routing[:, b], self.model.config.num_experts_per_tok)
        total = routing.sum(dim=1)
        self.routing = total if self.routing is None else self.routing + total

    def running(self) -> list[Slot]:
        return [s for s in self.slots if s.job is not None]

    def expires_at(self) -> float | None:
        if self.keep_alive < 0:
            return None
        return (time.time() if self.running() else self.idle_since) + self.keep_alive


class LocalEngine:
    """The engine in this process; `LocalEngine.from_settings(settings)` as `ossy serve` runs it."""

    def __init__(self, *, num_parallel: int = 4, max_queue: int = 512, keep_alive: float = 300.0,
                 kernels: str = "auto", threads: int | None = None, dtype: str = "bfloat16",
                 rewind: int = DEFAULT_REWIND, loader: Callable[[ModelRef, str], LanguageModel] | None = None,
                 memory: Callable[[], int | None] = available_memory) -> None:
        """`num_parallel` decode slots, `max_queue` waiting requests, `keep_alive` seconds an idle
        model stays loaded (< 0: forever), the native `kernels` on `threads` (`ossy.model.native`);
        `memory()`: the bytes a model may still take (the check before each load)."""
        loader = loader or functools.partial(load_checkpoint, kernels=kernels, threads=threads)
        self.kernels, self.threads, self.memory = kernels, threads, memory
        self._runs_native: bool | None = None  # `_native()`'s answer
        self.num_parallel = max(1, num_parallel)
        self.max_queue = max_queue
        self.keep_alive = keep_alive
        self.dtype, self.rewind, self.loader = dtype, rewind, loader
        self._cond = threading.Condition()
        self._waiting: deque[Job] = deque()  # admitted by submit, not yet in a slot
        self._commands: list[Command] = []  # run on the worker (load, unload)
        self._closed = False
        self._residents: dict[str, Resident] = {}  # by digest; the worker's
        self._counters: Counter = Counter()
        self._down: str | None = None  # why the worker stopped, while it is being replaced
        self._last_error: str | None = None
        self._restarts = 0
        self._start_worker()

    @classmethod
    def from_settings(cls, s: Settings, **options) -> "LocalEngine":
        """The engine `s` describes (OSSY_NUM_PARALLEL, OSSY_MAX_QUEUE, OSSY_KEEP_ALIVE, OSSY_KERNELS,
        OSSY_NUM_THREADS); `options` as `LocalEngine`'s."""
        return cls(num_parallel=s.num_parallel, max_queue=s.max_queue, keep_alive=s.keep_alive, kernels=s.kernels,
                   threads=s.num_threads, **options)

    # ---- the Engine protocol (event loop side) --------------------------------------------------
    async def submit(self, request: GenerateRequest):
        if request.model.checkpoint is None:
            raise NotFoundError(f"model {request.model.name!r} has no weights to load")
        if not request.prompt:
            raise OssyError("the prompt is empty")
        num_ctx = min(request.num_ctx, request.model.context_length or request.num_ctx)
        prompt, truncated = admit_prompt(request, num_ctx)
        sampler = Sampler.of(request.sampling)
        job = Job(request, prompt, truncated, num_ctx, sampler, Stream(asyncio.get_running_loop(), self._wake))
        with self._cond:
            self._check_running()
            if len(self._waiting) >= self.max_queue:
                self._counters["rejected"] += 1
                raise QueueFullError()
            self._waiting.append(job)
            self._counters["submitted"] += 1
            self._cond.notify()
        try:
            await asyncio.wrap_future(job.ready)
        except BaseException:
            job.stream.cancel()
            raise
        return job.stream

    async def load(self, model: ModelRef, keep_alive: float | None = None) -> int:
        if model.checkpoint is None:
            raise NotFoundError(f"model {model.name!r} has no weights to load")
        return await self._on_worker(lambda: self._ensure(model, keep_alive)[1])

    async def embed(self, model: ModelRef, inputs: list[tuple[int, ...]], keep_alive: float | None = None) -> Embeddings:
        if model.checkpoint is None:
            raise NotFoundError(f"model {model.name!r} has no weights to load")
        if not inputs or not all(inputs):
            raise OssyError("every input to embed needs at least one token")

        def run() -> Embeddings:
            resident, took = self._ensure(model, keep_alive)
            for ids in inputs:
                check_ids(ids, resident.model.config.vocab_size)
            vectors = [resident.model.embedding(torch.tensor(ids)).tolist() for ids in inputs]
            if not resident.running():
                resident.idle_since = time.time()  # its keep_alive counts from now
            return Embeddings(vectors, took, sum(map(len, inputs)))

        return await self._on_worker(run)

    async def unload(self, model: ModelRef) -> None:
        def expire() -> None:
            if model.digest in self._residents:
                self._residents[model.digest].keep_alive = 0

        await self._on_worker(expire)

    def loaded(self) -> list[LoadedModel]:
        return [LoadedModel(r.ref.name, r.ref.digest, self._size(r), size_vram(r), r.num_ctx or num_ctx(r),
                            r.expires_at(), r.model.backend) for r in list(self._residents.values())]

    def _size(self, resident: Resident) -> int:
        """Its memory: the weights it holds, plus every slot's cache at the context its slots serve
        and the step buffers as `memory_estimate` counts them (Ollama's ps SIZE is an estimate too)."""
        e = memory_estimate(resident.model.config, resident.num_ctx or LOAD_NUM_CTX, self.num_parallel, self.dtype,
                            self.rewind, native=resident.model.backend != "torch")
        return resident.size + e.kv_cache + e.compute

    def counters(self) -> dict[str, int]:
        with self._cond:
            return {key: self._counters[key] for key in
                    ("submitted", "finished", "cancelled", "rejected", "max_batch", "prefill_tokens",
                     "cached_tokens", "decode_steps", "loads", "unloads", "truncated_tokens")}

    def memory_estimate(self, config, num_ctx: int) -> MemoryEstimate:
        return memory_estimate(config, num_ctx, self.num_parallel, self.dtype, self.rewind, self._native())

    def _native(self) -> bool:
        """Whether this engine's loader runs models on the native kernels: asked once, with the
        loader's own arguments (opening the kernels selects their path and sets their threads)."""
        if self._runs_native is None:
            self._runs_native = open_kernels(self.kernels, self.threads) is not None
        return self._runs_native

    def expert_counts(self) -> list[ExpertCounts]:
        return [routing_counts(r.ref.name, r.model.config.num_experts_per_tok, r.routing)
                for r in list(self._residents.values()) if r.routing is not None]

    def occupancy(self) -> dict[str, int]:
        with self._cond:
            residents = list(self._residents.values())
            return {"waiting": len(self._waiting), "running": sum(len(r.running()) for r in residents),
                    "slots": sum(len(r.slots) for r in residents)}

    def health(self) -> dict:
        with self._cond:
            status = "down" if self._down else "ok"
            return {"status": status, "restarts": self._restarts, "last_error": self._last_error}

    async def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
            thread = self._thread
        await asyncio.to_thread(thread.join)

    # ---- bridge --------------------------------------------------------------------------------
    def _wake(self) -> None:
        with self._cond:
            self._cond.notify()

    async def _on_worker(self, fn: Callable[[], object]):
        command = Command(fn)
        future = command.future
        with self._cond:
            self._check_running()
            self._commands.append(command)
            self._cond.notify()
        return await asyncio.wrap_future(future)

    def _check_running(self) -> None:
        """Under the lock: raise the 503 a request gets while the engine cannot take it."""
        if self._closed:
            raise UnavailableError("the engine is shutting down")
        if self._down:
            raise UnavailableError(f"the engine stopped after an internal error ({self._down}); it is restarting, "
                                   f"try again in a moment")

    # ---- the worker thread and its supervision -------------------------------------------------
    def _start_worker(self) -> None:
        with self._cond:
            if self._closed:
                return
            self._down = None
            self._thread = threading.Thread(target=self._run, name="ossy-engine", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        error: BaseException | None = None
        try:
            self._loop()
        except BaseException as e:  # noqa: BLE001 - whatever ends the worker, requests must not hang
            error = e
        if error is None:
            self._shutdown()
            return
        self._died(error)

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not (self._closed or self._commands or self._waiting or self._busy()):
                    self._cond.wait(self._idle_timeout())
                    self._expire()
                if self._closed:
                    return
                commands, self._commands = self._commands, []
            for command in commands:
                command()
            self._step()

    def _died(self, error: BaseException) -> None:
        """The worker ended on `error`: fail every request with a 503, drop the models (their
        state is unknown), and start a new worker after RESTART_DELAY."""
        reason = f"{type(error).__name__}: {error}"
        log.error("the engine worker stopped: %s; restarting in %.0f s", reason, RESTART_DELAY, exc_info=error)
        with self._cond:
            self._down = self._last_error = reason
            self._restarts += 1
        self._fail_everything(UnavailableError(f"the engine stopped after an internal error ({reason})"))
        timer = threading.Timer(RESTART_DELAY, self._start_worker)
        timer.daemon = True
        timer.start()

    def _fail_everything(self, error: Exception) -> None:
        with self._cond:
            waiting, self._waiting = list(self._waiting), deque()
            commands, self._commands = self._commands, []
            residents, self._residents = list(self._residents.values()), {}
        for job in waiting:
            self._count(finished=1)
            if job.ready.done():
                job.stream.push(error)
            else:
                job.ready.set_exception(error)
        for command in commands:
            command.fail(error)
        for resident in residents:
            for slot in resident.running():
                failed, slot.job = slot.job, None
                self._count(finished=1)
                failed.stream.push(error)

    def _step(self) -> None:
        self._drop_cancelled()
        self._prepare_waiting()
        self._admit_waiting()
        for resident in list(self._residents.values()):
            for slot in [s for s in resident.running() if not s.job.prefilled]:
                self._guarded([slot], lambda: self._prefill_chunk(resident, slot))
            decoding = [s for s in resident.running() if s.job.prefilled]
            if decoding:
                self._guarded(decoding, lambda: self._decode(resident))
        self._expire()

    def _busy(self) -> bool:
        return any(r.running() for r in self._residents.values())

    def _idle_timeout(self) -> float | None:
        times = [t for r in self._residents.values() if (t := r.expires_at()) is not None]
        return min(max(0.0, min(times) - time.time()), MAX_WAIT) if times else None

    def _drop_cancelled(self) -> None:
        with self._cond:
            gone = [job for job in self._waiting if job.stream.cancelled]
            for job in gone:
                self._waiting.remove(job)
        for job in gone:
            self._end(job, "cancelled")
            if not job.ready.done():
                job.ready.set_result(None)
        for resident in self._residents.values():
            for slot in resident.running():
                if slot.job.stream.cancelled:
                    self._release(resident, slot, "cancelled")

    def _prepare_waiting(self) -> None:
        """Load the model of every waiting request (so submit reports load errors)."""
        for job in [j for j in list(self._waiting) if not j.ready.done()]:
            try:
                resident, job.load_ns = self._ensure(job.request.model, job.request.keep_alive, job.num_ctx)
                check_ids(job.prompt, resident.model.config.vocab_size)
            except Exception as e:
                with self._cond:
                    self._waiting.remove(job)
                job.ready.set_exception(e)
                continue
            job.ready.set_result(None)

    def _admit_waiting(self) -> None:
        for job in [j for j in list(self._waiting) if j.ready.done()]:
            resident = self._residents[job.request.model.digest]  # kept while a request waits for it
            free = [s for s in resident.slots if s.job is None]
            if not free:
                continue
            with self._cond:
                self._waiting.remove(job)
            slot = max(free, key=lambda s: (common_prefix(s.tokens, job.prompt), -s.last_used))
            slot.job = job
            resident.num_ctx = max(resident.num_ctx, job.num_ctx)
            job.admitted = time.perf_counter_ns()
            resident.keep_alive = self.keep_alive if job.request.keep_alive is None else job.request.keep_alive
            job.cached = slot.reuse(job.prompt)

    def _prefill_chunk(self, resident: Resident, slot: Slot) -> None:
        """Feed the next PREFILL_CHUNK prompt ids of the slot's request; after the last chunk,
        sample its first token. One chunk per step, so other requests keep decoding meanwhile."""
        job = slot.job
        chunk = job.prompt[len(slot.tokens):len(slot.tokens) + PREFILL_CHUNK]
        logits = resident.model.forward(torch.tensor(chunk), slot.cache, last_only=True)
        resident.count_routing([slot])
        slot.tokens.extend(chunk)
        if len(slot.tokens) < len(job.prompt):
            return
        job.prefilled = time.perf_counter_ns()
        self._count(prefill_tokens=len(job.prompt) - job.cached, cached_tokens=job.cached,
                    truncated_tokens=job.truncated)
        self._next(resident, slot, logits[0])

    def _decode(self, resident: Resident) -> None:
        running = [s for s in resident.running() if s.job.prefilled]
        batch = [(torch.tensor([s.job.pending]), s.cache) for s in running]
        logits = resident.model.forward_batch(batch, last_only=True)
        resident.count_routing(running)
        with self._cond:
            self._counters["decode_steps"] += 1
            self._counters["max_batch"] = max(self._counters["max_batch"], len(running))
        for slot, row in zip(running, logits):
            slot.tokens.append(slot.job.pending)
            self._next(resident, slot, row[0])

    def _next(self, resident: Resident, slot: Slot, logits: torch.Tensor) -> None:
        """Sample the slot's next token from `logits` [V] and emit it (or end the request)."""
        job = slot.job
        if job.request.max_tokens == 0:  # num_predict 0: the prompt is read, nothing is generated
            self._release(resident, slot, "length")
            return
        constraint = job.request.constraint
        allowed = constraint.allowed(job.generated) if constraint is not None else None
        if nothing_allowed(allowed):
            self._release(resident, slot, "stop")
            return
        token = job.sampler(logits, slot.tokens, allowed)
        reason = job.emit(token, len(slot.tokens))
        if reason is not None:
            self._release(resident, slot, reason)

    def _release(self, resident: Resident, slot: Slot, reason) -> None:
        self._end(slot.job, reason)
        slot.job = None
        slot.last_used = time.monotonic()
        resident.idle_since = time.time()

    def _end(self, job: Job, reason) -> None:
        self._count(finished=1, cancelled=int(reason == "cancelled"))  # before the reader sees the end
        job.finish(reason)

    def _guarded(self, slots: list[Slot], fn: Callable[[], None]) -> None:
        """Run a forward; on an error, fail the requests involved (raised from their iterators)
        and forget their slots' caches, whose state is unknown."""
        try:
            fn()
        except Exception as e:
            for slot in slots:
                failed, slot.job = slot.job, None
                slot.cache.truncate(0)
                slot.tokens.clear()
                if failed is not None:
                    self._count(finished=1)
                    failed.stream.push(e)

    def _check_memory(self, ref: ModelRef, num_ctx: int) -> None:
        """Refuse, as Ollama does, a model whose weights, step buffers and one slot at `num_ctx`
        need more than the memory available (the other slots' caches grow only as they are used)."""
        available = self.memory()
        if available is None or ref.checkpoint is None:
            return
        try:
            config = Checkpoint.open(ref.checkpoint).config
        except Exception:  # the loader says what is wrong with it
            return
        e = self.memory_estimate(config, num_ctx)
        need = e.weights + e.compute + e.kv_per_slot
        if need > available:
            raise NotEnoughMemoryError(
                f"model requires more system memory ({_gib(need)}) than is available ({_gib(available)}): "
                f"{ref.name} holds {_gib(e.weights)} of weights and {_gib(e.kv_per_slot)} of KV cache per slot "
                f"at num_ctx {num_ctx}; lower num_ctx or free memory")

    def _ensure(self, ref: ModelRef, keep_alive: float | None, num_ctx: int = LOAD_NUM_CTX) -> tuple[Resident, int]:
        """The resident model for `ref`, loading it if needed (after the memory check for a
        request of `num_ctx`); ns spent loading."""
        resident = self._residents.get(ref.digest)
        took = 0
        if resident is None:
            self._check_memory(ref, num_ctx)
            start = time.perf_counter_ns()
            model = self.loader(ref, self.dtype)
            slots = [Slot(model.new_cache(rewind=self.rewind)) for _ in range(self.num_parallel)]
            resident = Resident(ref, model, slots, model.weight_bytes(), self.keep_alive)
            self._residents[ref.digest] = resident
            took = time.perf_counter_ns() - start
            self._count(loads=1)
        if keep_alive is not None:
            resident.keep_alive = keep_alive
        if not resident.running():
            resident.idle_since = time.time()
        return resident, took

    def _expire(self) -> None:
        wanted = {job.request.model.digest for job in list(self._waiting)}
        now = time.time()
        for digest, r in list(self._residents.items()):
            expires = r.expires_at()
            if digest not in wanted and not r.running() and expires is not None and expires <= now:
                del self._residents[digest]
                self._count(unloads=1)

    def _shutdown(self) -> None:
        with self._cond:
            waiting, self._waiting = list(self._waiting), deque()
            commands, self._commands = self._commands, []
        for job in waiting:
            self._end(job, "cancelled")
            if not job.ready.done():
                job.ready.set_exception(UnavailableError("the engine is shutting down"))
        for command in commands:
            command()
        for resident in self._residents.values():
            for slot in resident.running():
                self._release(resident, slot, "cancelled")
        self._residents.clear()

    def _count(self, **amounts: int) -> None:
        with self._cond:
            self._counters.update(amounts)


def check_ids(prompt: tuple[int, ...], vocab: int) -> None:
    if min(prompt) < 0 or max(prompt) >= vocab:
        raise OssyError(f"prompt token id out of range [0, {vocab})")


def size_vram(resident: Resident) -> int:
    return 0 if resident.model.device == "cpu" else resident.size


def num_ctx(resident: Resident) -> int:
    return resident.ref.context_length or resident.model.config.max_position_embeddings
