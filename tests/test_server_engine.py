"""The server over the real `LocalEngine` and a tiny random gpt-oss checkpoint with the gpt-oss
vocabulary size: the protocol as the engine implements it (the stub tests cover the shapes).
The model is random, so only the structure of the answers is checked, not their text."""

from __future__ import annotations

import contextlib
import threading
import time

import httpx
import ollama
import openai
import pytest
from store_util import greedy_tiny_library
from stub_engine import RunningServer, tokenizer

from ossy.chat.models import StoreResolver
from ossy.server import create_app

HI = [{"role": "user", "content": "Hi"}]


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    return greedy_tiny_library(tmp_path_factory.mktemp("engine"))


@contextlib.contextmanager
def serving(library, **engine_options):
    from ossy.engine.scheduler import LocalEngine

    engine = LocalEngine(dtype="float32", **engine_options)
    with RunningServer(create_app(engine, StoreResolver(library, lambda directory: tokenizer()), library)) as url:
        yield url, engine


@pytest.fixture(scope="module")
def server(library):
    with serving(library, num_parallel=2, max_queue=4) as running:
        yield running


def test_openai_and_native_clients(server):
    url, engine = server
    client = openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0, timeout=60)
    r = client.chat.completions.create(model="tiny", messages=HI, max_tokens=6)
    assert r.choices[0].finish_reason in ("length", "stop", "tool_calls") and r.usage.completion_tokens <= 6
    again = client.chat.completions.create(model="tiny", messages=HI, max_tokens=6)
    assert again.usage.completion_tokens == r.usage.completion_tokens  # greedy: the same tokens
    chunks = list(client.chat.completions.create(model="tiny", messages=HI, max_tokens=6, stream=True))
    assert chunks[-1].choices[0].finish_reason == r.choices[0].finish_reason
    native = ollama.Client(host=url, timeout=60).chat(model="tiny", messages=HI, options={"num_predict": 4},
                                                      stream=False)
    assert native.done and native.eval_count <= 4 and native.prompt_eval_count > 0
    assert [m.name for m in ollama.Client(host=url).ps().models] == ["tiny:latest"]
    assert engine.counters()["submitted"] >= 4


def test_disconnect_frees_the_slot(server):
    url, engine = server
    before = engine.counters().get("cancelled", 0)
    with httpx.stream("POST", url + "/api/chat", json={"model": "tiny", "messages": HI,
                                                       "options": {"num_predict": 100000}}) as r:
        for _ in r.iter_lines():
            break
    deadline = time.monotonic() + 10
    while engine.counters().get("cancelled", 0) == before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert engine.counters()["cancelled"] == before + 1
    # the same through the openai client's SSE stream, closed after its first chunk
    client = openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0, timeout=60)
    stream = client.chat.completions.create(model="tiny", messages=HI, max_tokens=100000, stream=True)
    next(iter(stream))
    stream.close()
    deadline = time.monotonic() + 10
    while engine.counters()["cancelled"] == before + 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert engine.counters()["cancelled"] == before + 2


PROMPTS = [f"Tell me about the number {i}." for i in range(8)]


def generate(url: str, prompt: str, results: dict | None = None) -> str:
    """The raw-prompt text the model generates (greedy), streamed through the ollama client."""
    client = ollama.Client(host=url, timeout=120)
    text = "".join(part.response for part in client.generate(model="tiny", prompt=prompt, raw=True, stream=True,
                                                              options={"num_predict": 12, "temperature": 0}))
    if results is not None:
        results[prompt] = text
    return text


def test_eight_concurrent_streams_get_their_solo_output_and_run_batched(library):
    with serving(library, num_parallel=8, max_queue=8) as (url, engine):
        alone = {p: generate(url, p) for p in PROMPTS}
        assert engine.counters()["max_batch"] == 1
        together: dict = {}
        threads = [threading.Thread(target=generate, args=(url, p, together)) for p in PROMPTS]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert together == alone  # greedy: the same tokens, batched or not
        assert len(set(alone.values())) > 1  # distinct prompts, distinct outputs: not a constant
        counters = engine.counters()
        assert counters["max_batch"] > 1 and counters["finished"] == 16


def test_a_full_queue_answers_503_with_retry_after(library):
    with serving(library, num_parallel=1, max_queue=1) as (url, engine):
        body = {"model": "tiny", "messages": HI, "options": {"num_predict": 100000}}
        with httpx.stream("POST", url + "/api/chat", json=body, timeout=60) as running:
            lines = running.iter_lines()
            next(lines)  # holds the only slot
            short = {**body, "options": {"num_predict": 4}}
            waiting = threading.Thread(target=lambda: httpx.post(url + "/api/chat", json=short, timeout=60))
            waiting.start()  # fills the queue (one waiting request)
            deadline = time.monotonic() + 10
            while engine.counters()["submitted"] < 2 and time.monotonic() < deadline:
                time.sleep(0.02)
            native = httpx.post(url + "/api/chat", json=body, timeout=60)
            assert native.status_code == 503 and int(native.headers["Retry-After"]) >= 1
            assert isinstance(native.json()["error"], str)
            client = openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0, timeout=60)
            with pytest.raises(openai.APIStatusError) as e:
                client.chat.completions.create(model="tiny", messages=HI, max_tokens=4)
            assert e.value.status_code == 503 and e.value.response.headers.get("Retry-After")
            assert engine.counters()["rejected"] == 2
        waiting.join(60)  # the running stream was closed: the waiting request got the slot and finished
        assert not waiting.is_alive()
