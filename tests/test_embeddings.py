"""Embeddings from the model, the same vector on every endpoint: /api/embed (the ollama client),
/api/embeddings, /v1/embeddings (the openai client, float and base64), through a live server over
a tiny random gpt-oss; and the vector itself checked against transformers: the mean of
`GptOssModel`'s last hidden state (after the final norm) over the input's tokens, L2-normalised.
"""

from __future__ import annotations

import base64
import struct

import httpx
import numpy as np
import pytest
import torch
from store_util import greedy_tiny_library
from stub_engine import RunningServer

from ossy.chat.models import StoreResolver
from ossy.engine.scheduler import LocalEngine
from ossy.server import create_app


@pytest.fixture(scope="module")
def server(tmp_path_factory, shared_dir):
    import ossy.tokenizer

    tokenizer = ossy.tokenizer.load(shared_dir / "vocab" / "o200k_base.tiktoken")
    library = greedy_tiny_library(tmp_path_factory.mktemp("embed"))
    engine = LocalEngine(num_parallel=1, keep_alive=60)
    with RunningServer(create_app(engine, StoreResolver(library, lambda directory: tokenizer), library)) as url:
        yield url


TEXTS = ["The cat sat on the mat.", "Quarterly revenue grew by eight percent."]


def test_every_endpoint_gives_the_same_normalised_vector(server):
    import ollama
    import openai

    native = ollama.Client(host=server).embed(model="tiny", input=TEXTS)
    vectors = np.array(native.embeddings)
    assert vectors.shape == (2, 64) and np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(vectors[0], vectors[1])
    assert native.prompt_eval_count > 10
    older = httpx.post(server + "/api/embeddings", json={"model": "tiny", "prompt": TEXTS[0]}).json()["embedding"]
    np.testing.assert_allclose(older, vectors[0], rtol=0, atol=1e-6)
    client = openai.OpenAI(base_url=server + "/v1", api_key="ossy", max_retries=0)
    floats = client.embeddings.create(model="tiny", input=TEXTS)
    np.testing.assert_allclose([d.embedding for d in floats.data], vectors, rtol=0, atol=1e-6)
    assert floats.usage.prompt_tokens == native.prompt_eval_count
    raw = httpx.post(server + "/v1/embeddings", json={"model": "tiny", "input": TEXTS[1],
                                                       "encoding_format": "base64"}).json()
    decoded = struct.unpack("<64f", base64.b64decode(raw["data"][0]["embedding"]))
    np.testing.assert_allclose(decoded, vectors[1], rtol=0, atol=1e-6)


def test_dimensions_truncate_and_errors(server):
    full = httpx.post(server + "/api/embed", json={"model": "tiny", "input": TEXTS[0]}).json()["embeddings"][0]
    short = httpx.post(server + "/api/embed", json={"model": "tiny", "input": TEXTS[0], "dimensions": 8}).json()
    head = np.array(full[:8])
    np.testing.assert_allclose(short["embeddings"][0], head / np.linalg.norm(head), rtol=0, atol=1e-6)
    long_text = "word " * 400
    cut = httpx.post(server + "/api/embed", json={"model": "tiny", "input": long_text, "options": {"num_ctx": 64}})
    assert cut.status_code == 200 and cut.json()["prompt_eval_count"] == 64
    refused = httpx.post(server + "/api/embed", json={"model": "tiny", "input": long_text, "truncate": False,
                                                      "options": {"num_ctx": 64}})
    assert refused.status_code == 400 and "num_ctx 64" in refused.json()["error"]
    assert httpx.post(server + "/api/embed", json={"model": "tiny", "input": ""}).status_code == 400
    assert httpx.post(server + "/api/embed", json={"model": "tiny", "input": "x", "dimensions": 0}).status_code == 400
    assert httpx.post(server + "/api/embed", json={"model": "nope", "input": "x"}).status_code == 404
    r = httpx.post(server + "/v1/embeddings", json={"model": "tiny", "input": [[1, 2, 300000]]})
    assert r.status_code == 400 and r.json()["error"]["param"] == "input"
    assert httpx.post(server + "/api/embeddings", json={"model": "tiny", "prompt": ""}).json() == {"embedding": []}


def test_the_vector_is_transformers_last_hidden_state_mean_pooled():
    import tiny

    from ossy.model.gptoss import GptOss

    reference = tiny.hf_model(seed=7)
    ours = GptOss.from_tensors(tiny.ossy_config(reference), tiny.tensors(reference), torch.float32)
    ids = torch.tensor([5, 17, 3, 99, 42, 7, 0, 64, 12, 1, 88])
    with torch.no_grad():
        hidden = reference.model(ids[None]).last_hidden_state[0]  # [T, H], after the final norm
    want = hidden.mean(dim=0)
    torch.testing.assert_close(ours.embedding(ids), want / want.norm(), rtol=1e-4, atol=1e-5)
