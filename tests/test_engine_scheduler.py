"""LocalEngine: continuous batching, queue, cancellation, prefix reuse, overflow, keep_alive,
constraints — each checked against the model run alone (`ossy.api.Model.generate`)."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
import tiny
import torch

import ossy
from ossy.engine.protocol import (
    ContextOverflowError,
    Finished,
    GenerateRequest,
    ModelRef,
    QueueFullError,
    SamplingOptions,
    Token,
)
from ossy.engine.scheduler import LocalEngine
from ossy.errors import NotFoundError, OssyError

GREEDY = SamplingOptions(temperature=0)


@pytest.fixture(scope="module")
def ref(tmp_path_factory):
    path = tmp_path_factory.mktemp("engine") / "tiny"
    tiny.hf_model(seed=5, scale=2.0).save_pretrained(path)
    return ModelRef(name="tiny:latest", digest="sha256:tiny", checkpoint=path)


@pytest.fixture(scope="module")
def alone(ref):
    return ossy.load(ref.checkpoint, dtype="float32")


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, timeout=60))


def engine(**kwargs) -> LocalEngine:
    kwargs.setdefault("num_parallel", 4)
    kwargs.setdefault("max_queue", 16)
    return LocalEngine(dtype="float32", **kwargs)


def request(ref, prompt, max_tokens=8, sampling=GREEDY, **kwargs) -> GenerateRequest:
    return GenerateRequest(ref, tuple(prompt), sampling, max_tokens=max_tokens, **kwargs)


async def collect(generation) -> tuple[list[int], Finished]:
    tokens = []
    async for event in generation:
        if isinstance(event, Token):
            tokens.append(event.id)
        else:
            return tokens, event
    raise AssertionError("no Finished event")


async def generate(e: LocalEngine, req: GenerateRequest) -> tuple[list[int], Finished]:
    return await collect(await e.submit(req))


PROMPTS = [[(7 * i + j) % 101 for j in range(3 + 2 * i)] for i in range(8)]


class Gate:
    """A constraint that blocks the worker at its `at`-th token until `open` is set."""

    def __init__(self, at: int = 0) -> None:
        self.at, self.entered, self.open = at, threading.Event(), threading.Event()

    def allowed(self, generated):
        if len(generated) == self.at:
            self.entered.set()
            assert self.open.wait(30)
        return None


def test_eight_concurrent_greedy_requests_match_alone_and_ran_batched(ref, alone):
    async def main():
        e = engine(num_parallel=8)
        try:
            results = await asyncio.gather(*(generate(e, request(ref, p, 10)) for p in PROMPTS))
            return results, e.counters()
        finally:
            await e.close()

    results, counters = run(main())
    for prompt, (tokens, finished) in zip(PROMPTS, results):
        assert tokens == alone.generate(prompt, max_new_tokens=10)
        assert finished.reason == "length" and finished.stats.eval_count == 10
        assert finished.stats.prompt_eval_count == len(prompt)
    assert counters["max_batch"] > 1 and counters["submitted"] == counters["finished"] == 8


def test_seeded_sampling_is_reproducible_in_a_batch(ref, alone):
    hot = SamplingOptions(temperature=1.5, seed=3)

    async def main():
        e = engine(num_parallel=4)
        try:
            batched = await asyncio.gather(*(generate(e, request(ref, p, 10, hot)) for p in PROMPTS[:4]))
            single = [await generate(e, request(ref, p, 10, hot)) for p in PROMPTS[:4]]
            return batched, single
        finally:
            await e.close()

    batched, single = run(main())
    assert [t for t, _ in batched] == [t for t, _ in single]
    assert batched[0][0] == alone.generate(PROMPTS[0], max_new_tokens=10, temperature=1.5, seed=3)


def test_stop_id_ends_with_reason_stop(ref, alone):
    greedy = alone.generate(PROMPTS[2], max_new_tokens=8)
    stop = greedy[3]

    async def main():
        e = engine()
        try:
            return await generate(e, request(ref, PROMPTS[2], 8, stop_ids=frozenset({stop})))
        finally:
            await e.close()

    tokens, finished = run(main())
    assert tokens == greedy[: greedy.index(stop) + 1] and finished.reason == "stop"


def test_full_queue_raises_queue_full(ref):
    gate = Gate(at=1)

    async def main():
        e = engine(num_parallel=1, max_queue=1)
        try:
            first = await e.submit(request(ref, PROMPTS[0], 4, constraint=gate))
            await asyncio.to_thread(gate.entered.wait, 10)  # the first holds the only slot
            second = asyncio.create_task(e.submit(request(ref, PROMPTS[1], 4)))
            await asyncio.sleep(0.05)  # it waits in the queue
            with pytest.raises(QueueFullError) as raised:
                await e.submit(request(ref, PROMPTS[2], 4))
            gate.open.set()
            outcomes = [await collect(first), await collect(await second)]
            return raised.value, outcomes, e.counters()
        finally:
            gate.open.set()
            await e.close()

    error, outcomes, counters = run(main())
    assert error.http_status == 503 and error.retry_after >= 1
    assert [f.reason for _, f in outcomes] == ["length", "length"]
    assert counters["rejected"] == 1 and counters["finished"] == 2


def test_cancel_frees_the_slot_within_a_step(ref, alone):
    gate = Gate(at=3)

    async def main():
        e = engine(num_parallel=1)
        try:
            endless = await e.submit(request(ref, PROMPTS[0], None, constraint=gate, num_ctx=100_000))
            await asyncio.to_thread(gate.entered.wait, 10)
            endless.cancel()
            endless.cancel()  # idempotent
            gate.open.set()
            cancelled = await collect(endless)
            after = await generate(e, request(ref, PROMPTS[1], 5))
            return cancelled, after, e.counters()
        finally:
            gate.open.set()
            await e.close()

    (tokens, finished), (after, _), counters = run(main())
    assert finished.reason == "cancelled" and len(tokens) <= 4  # the token sampled at the gate at most
    assert after == alone.generate(PROMPTS[1], max_new_tokens=5)
    assert counters["cancelled"] == 1


@pytest.mark.parametrize("rewind", [2048, 0])
def test_prefix_reuse_is_counted_and_changes_nothing(ref, alone, rewind):
    prompt = PROMPTS[5]  # 13 ids

    async def main():
        e = engine(num_parallel=1, rewind=rewind)
        try:
            first, _ = await generate(e, request(ref, prompt, 8))
            extended = [*prompt, *first, 5, 6]  # the next turn of a chat
            second, f2 = await generate(e, request(ref, extended, 8))
            diverged = [*prompt[:6], 9, 9, 9]  # shares 6 ids, then differs: the ring must rewind
            third, f3 = await generate(e, request(ref, diverged, 8))
            return (extended, second, f2), (diverged, third, f3), e.counters()
        finally:
            await e.close()

    (extended, second, f2), (diverged, third, f3), counters = run(main())
    assert second == alone.generate(extended, max_new_tokens=8)
    assert f2.stats.cached_tokens == len(prompt) + 7  # the last generated id was never fed
    assert third == alone.generate(diverged, max_new_tokens=8)
    assert f3.stats.cached_tokens == (6 if rewind else 0)
    assert counters["cached_tokens"] == f2.stats.cached_tokens + f3.stats.cached_tokens
    assert counters["prefill_tokens"] == len(prompt) + len(extended) + len(diverged) - counters["cached_tokens"]


def test_overflow_error_and_truncate(ref, alone):
    long = [(3 * j + 1) % 101 for j in range(20)]

    async def main():
        e = engine()
        try:
            with pytest.raises(ContextOverflowError):
                await e.submit(request(ref, long, 2, num_ctx=16, overflow="error"))
            return await generate(e, request(ref, long, 2, num_ctx=16, overflow="truncate", keep=3))
        finally:
            await e.close()

    tokens, finished = run(main())
    kept = long[:3] + long[-11:]  # room for min(max_tokens 2, 16 // 4) = 2 new ids
    assert finished.stats.truncated_tokens == 6 and finished.stats.prompt_eval_count == 14
    assert tokens == alone.generate(kept, max_new_tokens=2)


def test_num_ctx_ends_with_length(ref):
    async def main():
        e = engine()
        try:
            return await generate(e, request(ref, PROMPTS[0], None, num_ctx=8))
        finally:
            await e.close()

    tokens, finished = run(main())
    assert finished.reason == "length" and len(PROMPTS[0]) + len(tokens) == 8


def test_keep_alive_loads_and_unloads(ref):
    async def main():
        e = engine(keep_alive=300)
        try:
            took = await e.load(ref)
            again = await e.load(ref)
            listed = e.loaded()
            await generate(e, request(ref, PROMPTS[0], 2, keep_alive=0))
            for _ in range(100):
                if not e.loaded():
                    break
                await asyncio.sleep(0.02)
            after_zero = e.loaded()
            await e.load(ref, keep_alive=-1)
            forever = e.loaded()
            await e.unload(ref)
            await asyncio.sleep(0.05)
            return took, again, listed, after_zero, forever, e.loaded(), e.counters()
        finally:
            await e.close()

    took, again, listed, after_zero, forever, unloaded, counters = run(main())
    assert took > 0 and again == 0
    assert [m.name for m in listed] == ["tiny:latest"] and listed[0].size > 0
    assert abs(listed[0].expires_at - time.time() - 300) < 30
    assert after_zero == [] and forever[0].expires_at is None and unloaded == []
    assert counters["loads"] == 2 and counters["unloads"] == 2


class Only:
    def __init__(self, ids, end_after=None):
        self.ids, self.end_after = frozenset(ids), end_after

    def allowed(self, generated):
        return frozenset() if self.end_after is not None and len(generated) >= self.end_after else self.ids


def test_constraints_are_respected(ref):
    hot = SamplingOptions(temperature=2.0, seed=1)

    async def main():
        e = engine()
        try:
            masked = await generate(e, request(ref, PROMPTS[3], 12, hot, constraint=Only({7, 8, 9})))
            ended = await generate(e, request(ref, PROMPTS[3], 12, hot, constraint=Only({7, 8}, end_after=3)))
            return masked, ended
        finally:
            await e.close()

    (masked, _), (ended, finished) = run(main())
    assert len(masked) == 12 and set(masked) <= {7, 8, 9}
    assert len(ended) == 3 and set(ended) <= {7, 8} and finished.reason == "stop"


def test_logprobs_come_with_tokens(ref, alone):
    options = SamplingOptions(temperature=0, top_logprobs=3)

    async def main():
        e = engine()
        try:
            events = [ev async for ev in await e.submit(request(ref, PROMPTS[1], 3, options))]
            return events
        finally:
            await e.close()

    events = run(main())
    first = events[0]
    logprobs = alone.logits(PROMPTS[1])[-1].log_softmax(-1)
    assert first.id == int(logprobs.argmax()) and abs(first.logprob - float(logprobs.max())) < 1e-4
    assert [i for i, _ in first.top_logprobs] == logprobs.topk(3).indices.tolist()
    assert isinstance(events[-1], Finished) and len(events) == 4


def test_bad_requests_raise_from_submit(ref):
    async def main():
        e = engine()
        try:
            with pytest.raises(NotFoundError):
                await e.submit(request(ModelRef("x", "sha256:x", None), [1]))
            with pytest.raises(OssyError, match="out of range"):
                await e.submit(request(ref, [1, 1000]))
            with pytest.raises(OssyError, match="top_p"):
                await e.submit(request(ref, [1], sampling=SamplingOptions(top_p=0)))
            with pytest.raises(OssyError, match="empty"):
                await e.submit(request(ref, []))
            return await generate(e, request(ref, [1, 2], 2))  # still serving
        finally:
            await e.close()

    tokens, finished = run(main())
    assert len(tokens) == 2 and finished.reason == "length"


def test_long_prompts_prefill_in_chunks(ref, alone, monkeypatch):
    from ossy.engine import scheduler

    monkeypatch.setattr(scheduler, "PREFILL_CHUNK", 3)

    async def main():
        e = engine()
        try:
            return await generate(e, request(ref, PROMPTS[7], 6))
        finally:
            await e.close()

    tokens, finished = run(main())
    assert tokens == alone.generate(PROMPTS[7], max_new_tokens=6) and finished.stats.prompt_eval_count == 17


def test_keep_alive_of_ten_years_or_more_is_forever_and_the_worker_lives(ref):
    from ossy.duration import parse_duration

    async def main():
        e = engine()
        try:
            for text in ("100000000h", 1e10, "9999999999999h", -5):
                await e.load(ref, keep_alive=parse_duration(text))
                assert e.loaded()[0].expires_at is None
            await e.load(ref, keep_alive=1e9)  # just under ten years: a real expiry, far away
            far = e.loaded()[0].expires_at
            return far, await generate(e, request(ref, PROMPTS[0], 3)), e.health()
        finally:
            await e.close()

    far, (tokens, finished), health = run(main())
    assert far - time.time() > 3e8 and len(tokens) == 3 and finished.reason == "length"
    assert health == {"status": "ok", "restarts": 0, "last_error": None}


def test_num_predict_0_reads_the_prompt_and_generates_nothing(ref):
    async def main():
        e = engine()
        try:
            return await generate(e, request(ref, PROMPTS[2], 0)), e.counters()
        finally:
            await e.close()

    (tokens, finished), counters = run(main())
    assert tokens == [] and finished.reason == "length" and counters["prefill_tokens"] == len(PROMPTS[2])


def test_a_dead_worker_fails_requests_at_once_and_is_restarted(ref, alone, monkeypatch):
    from ossy.engine import scheduler
    from ossy.errors import UnavailableError

    monkeypatch.setattr(scheduler, "RESTART_DELAY", 0.5)
    gate = Gate(at=2)

    async def main():
        e = engine(num_parallel=1)
        try:
            running = await e.submit(request(ref, PROMPTS[0], 50, constraint=gate))
            await asyncio.to_thread(gate.entered.wait, 10)
            waiting = asyncio.create_task(e.submit(request(ref, PROMPTS[1], 4)))
            await asyncio.sleep(0.05)
            original = e._step

            def broken():
                e._step = original
                raise RuntimeError("a bug in the worker")

            e._step = broken  # the next loop iteration dies (what once an OverflowError did)
            gate.open.set()
            with pytest.raises(UnavailableError, match="a bug in the worker"):
                await collect(running)
            with pytest.raises(UnavailableError):
                await waiting
            down = e.health()
            with pytest.raises(UnavailableError, match="restarting") as refused:
                await e.submit(request(ref, PROMPTS[2], 4))
            for _ in range(100):  # replaced after RESTART_DELAY
                if e.health()["status"] == "ok":
                    break
                await asyncio.sleep(0.05)
            return down, refused.value, await generate(e, request(ref, PROMPTS[2], 4)), e.health()
        finally:
            gate.open.set()
            await e.close()

    down, refused, (tokens, _), health = run(main())
    assert down["status"] == "down" and "a bug in the worker" in down["last_error"] and down["restarts"] == 1
    assert refused.http_status == 503
    assert tokens == alone.generate(PROMPTS[2], max_new_tokens=4)
    assert health == {"status": "ok", "restarts": 1, "last_error": "RuntimeError: a bug in the worker"}


def test_a_loader_that_raises_systemexit_is_a_503_and_the_worker_lives(ref):
    from ossy.errors import UnavailableError

    def exits(model_ref, dtype):
        raise SystemExit(3)

    async def main():
        e = LocalEngine(dtype="float32", loader=exits)
        try:
            with pytest.raises(UnavailableError, match="SystemExit"):
                await e.load(ref)
            return e.health()
        finally:
            await e.close()

    assert run(main())["status"] == "ok"


class CountingModel:
    """Not a gpt-oss: a `LanguageModel` whose next token is the last one plus one (mod V), to show
    that the engine drives the interface and nothing of `GptOss`."""

    def __init__(self, config) -> None:
        self.config = config
        self.backend, self.device = "counting", "cpu"

    def new_cache(self, rewind: int = 0):
        from ossy.model.cache import KVCache

        return KVCache(self.config, torch.float32, "cpu", rewind=rewind)

    def forward(self, token_ids, cache, last_only=False):
        return self.forward_batch([(token_ids, cache)], last_only)[0]

    def forward_batch(self, sequences, last_only=False):
        out = []
        for ids, cache in sequences:
            cache.length += ids.shape[0]
            logits = torch.full((ids.shape[0], self.config.vocab_size), -10.0)
            logits[torch.arange(ids.shape[0]), (ids + 1) % self.config.vocab_size] = 10.0
            out.append(logits[-1:] if last_only else logits)
        return out

    def embedding(self, token_ids):
        counts = torch.bincount(token_ids, minlength=self.config.hidden_size)[: self.config.hidden_size].float()
        return counts / counts.norm()

    def weight_bytes(self) -> int:
        return 1234


def test_the_engine_drives_any_language_model(ref):
    from ossy.engine import scheduler
    from ossy.model.interface import LanguageModel

    config = ossy.load(ref.checkpoint, dtype="float32").config
    model = CountingModel(config)
    assert isinstance(model, LanguageModel)

    async def main():
        e = LocalEngine(dtype="float32", loader=lambda model_ref, dtype: model)
        try:
            tokens, finished = await generate(e, request(ref, [3, 4, 5], 4))
            return tokens, finished, e.loaded()
        finally:
            await e.close()

    tokens, finished, loaded = run(main())
    assert tokens == [6, 7, 8, 9] and finished.reason == "length"
    e = scheduler.memory_estimate(config, loaded[0].context_length, slots=4, dtype="float32")
    assert (loaded[0].size, loaded[0].backend) == (1234 + e.kv_cache + e.compute, "counting")


def test_the_engine_protocol_imports_without_torch():
    import subprocess
    import sys

    code = "import sys, ossy.engine.protocol, ossy.model.interface; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "False", done.stderr


def test_a_long_prompt_is_read_between_the_decode_steps_of_others(ref, alone, monkeypatch):
    from ossy.engine import scheduler

    monkeypatch.setattr(scheduler, "PREFILL_CHUNK", 4)
    calls = []  # ("prefill", ids) or ("decode", batch size), in the order the model saw them
    gate = Gate(at=2)

    def recording(model_ref, dtype):
        model = ossy.load(model_ref.checkpoint, dtype=dtype).model
        forward_batch = model.forward_batch

        def record(sequences, last_only=False):
            one_each = all(i.shape[0] == 1 for i, _ in sequences)
            calls.append(("decode" if one_each else "prefill", sum(i.shape[0] for i, _ in sequences)))
            return forward_batch(sequences, last_only)

        model.forward_batch = record
        model.forward = lambda ids, cache, last_only=False: record([(ids, cache)], last_only)[0]
        return model

    long_prompt = [(3 * i + 1) % 101 for i in range(40)]  # ten chunks

    async def main():
        e = LocalEngine(dtype="float32", num_parallel=2, loader=recording)
        try:
            streaming = await e.submit(request(ref, PROMPTS[0], 30, constraint=gate))
            await asyncio.to_thread(gate.entered.wait, 10)  # it is decoding
            long = asyncio.create_task(generate(e, request(ref, long_prompt, 3)))
            await asyncio.sleep(0.05)
            gate.open.set()
            return await collect(streaming), await long
        finally:
            gate.open.set()
            await e.close()

    (first, _), (second, _) = run(main())
    assert first == alone.generate(PROMPTS[0], max_new_tokens=30)
    assert second == alone.generate(long_prompt, max_new_tokens=3)
    chunks = [i for i, (kind, n) in enumerate(calls) if kind == "prefill" and n == 4]
    assert len(chunks) >= 9  # the long prompt, four ids at a time
    between = [kind for kind, _ in calls[chunks[0]:chunks[-1]]]
    assert between.count("decode") >= len(chunks) - 1  # the other request decoded between its chunks
