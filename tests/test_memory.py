"""The one memory estimate (`ossy.model.inspect.estimate_memory` as the engine lays it out): its
parts against what a loaded model really holds, its total against the resident memory of a
full-width model measured in a fresh process, and the loader's refusal when a model will not fit."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import httpx
import pytest
import tiny
import torch

import ossy
from ossy.engine.protocol import GenerateRequest, ModelRef, SamplingOptions
from ossy.engine.scheduler import LocalEngine
from ossy.errors import NotEnoughMemoryError
from ossy.model.inspect import estimate_memory, full_layer_capacity

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))


@pytest.fixture(scope="module")
def ref(tmp_path_factory):
    path = tmp_path_factory.mktemp("memory") / "tiny"
    tiny.hf_model(seed=2).save_pretrained(path)
    return ModelRef(name="tiny:latest", digest="sha256:tiny", checkpoint=path)


def cache_bytes(cache) -> int:
    return sum(t.numel() * t.element_size() for layer in cache.layers for t in (layer.keys, layer.values))


@pytest.mark.parametrize("tokens, rewind", [(3, 0), (200, 16), (300, 0), (1000, 64)])
def test_the_kv_estimate_is_what_the_cache_allocates(ref, tokens, rewind):
    model = ossy.load(ref.checkpoint, dtype="bfloat16").model
    cache = model.new_cache(rewind=rewind)
    ids = torch.randint(0, model.config.vocab_size, (tokens,))
    for start in range(0, tokens, 256):  # in chunks, as the engine prefills (PREFILL_CHUNK) and decodes
        model.forward(ids[start:start + 256], cache)
    assert cache_bytes(cache) == estimate_memory(model.config, tokens, rewind=rewind).kv_cache
    assert estimate_memory(model.config, tokens, slots=3, rewind=rewind).kv_cache == 3 * cache_bytes(cache)


def test_full_layers_grow_by_doubling():
    assert [full_layer_capacity(n) for n in (1, 256, 257, 4096, 4097)] == [256, 256, 512, 4096, 8192]


@pytest.mark.parametrize("dtype, size", [("bfloat16", 2), ("float32", 4)])
def test_the_weights_estimate_is_what_the_loaded_model_holds(tmp_path, dtype, size):
    from store_util import make_checkpoint

    model = ossy.load(make_checkpoint(tmp_path / "ckpt", vocab_size=300), dtype=dtype).model
    estimate = estimate_memory(model.config, 16, element_size=size).weights
    assert estimate == pytest.approx(model.weight_bytes(), rel=0.02)


def test_the_estimate_is_within_ten_percent_of_the_measured_rss_of_a_full_width_model(tmp_path):
    """A full-width gpt-oss model (hidden 2880, 32 experts of 2880, MXFP4; 2 layers, a 32k
    vocabulary) loaded in a fresh process with one slot filled to 2048 tokens."""
    from memory import run

    r = run(layers=2, vocab=32768, num_ctx=2048, directory=tmp_path)
    assert r["estimate"] == pytest.approx(r["peak"], rel=0.10), r


def test_a_model_that_will_not_fit_is_refused_before_loading(ref):
    loads = []

    def loader(model_ref, dtype):
        loads.append(model_ref)
        raise AssertionError("must not load")

    engine = LocalEngine(dtype="float32", num_parallel=2, max_queue=4, loader=loader, memory=lambda: 1000)

    async def go():
        try:
            request = GenerateRequest(ref, (1, 2, 3), SamplingOptions(temperature=0), max_tokens=2, num_ctx=8192)
            await engine.submit(request)
        finally:
            await engine.close()

    with pytest.raises(NotEnoughMemoryError) as caught:
        asyncio.run(asyncio.wait_for(go(), 30))
    message = str(caught.value)
    config = ossy.load(ref.checkpoint).model.config
    e = engine.memory_estimate(config, 8192)  # 2 slots, float32, this machine's kernels or not
    need = (e.weights + e.compute + e.kv_per_slot) / 2**30
    assert message.startswith(f"model requires more system memory ({need:.1f} GiB) than is available (0.0 GiB)")
    assert "num_ctx 8192" in message and loads == []


def test_the_server_answers_507_with_the_reason(tmp_path):
    from stub_engine import RunningServer

    from ossy.chat.models import StoreResolver
    from ossy.server import create_app
    from ossy.store import Library, Store
    from ossy.store.bundled import install_missing

    library = Library(Store(tmp_path / "models"))
    assert install_missing(library) == []
    engine = LocalEngine(num_parallel=1, keep_alive=60, memory=lambda: 2**20)
    with RunningServer(create_app(engine, StoreResolver(library), library)) as url:
        response = httpx.post(url + "/api/chat", json={"model": "nano", "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 507
    assert response.json()["error"].startswith("model requires more system memory")
