"""The server over the real `LocalEngine` and a tiny random gpt-oss checkpoint with the gpt-oss
vocabulary size: the protocol as the engine implements it (the stub tests cover the shapes).
The model is random, so only the structure of the answers is checked, not their text."""

from __future__ import annotations

import functools
import time
from pathlib import Path

import httpx
import ollama
import openai
import pytest

import ossy.tokenizer
from ossy.chat.models import StoreResolver
from ossy.modelfile import parse
from ossy.server import create_app
from ossy.store import Library, Store, create
from store_util import make_checkpoint
from stub_engine import RunningServer

VOCAB = Path(__file__).resolve().parents[2] / "shared" / "vocab" / "o200k_base.tiktoken"
HI = [{"role": "user", "content": "Hi"}]


@functools.cache
def tokenizer():
    return ossy.tokenizer.load(VOCAB)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from ossy.engine import LocalEngine

    root = tmp_path_factory.mktemp("engine")
    checkpoint = make_checkpoint(root / "ckpt", vocab_size=201088)
    library = Library(Store(root / "models"))
    create(library, "tiny", parse(f"FROM {checkpoint}\nPARAMETER temperature 0\n"), base_dir=root)
    engine = LocalEngine(num_parallel=2, max_queue=4, dtype="float32")
    with RunningServer(create_app(engine, StoreResolver(library, lambda directory: tokenizer()), library)) as url:
        yield url, engine


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
