"""Expert routing counts: the model's per-sequence counts equal a recount of what the router
chose, the engine's per-request and per-model sums add up, and /api/experts and `ossy ps
--experts` show them."""

from __future__ import annotations

import asyncio
import re

import httpx
import pytest
import tiny
import torch

import ossy
from ossy.engine.protocol import GenerateRequest, ModelRef, SamplingOptions, Token
from ossy.engine.scheduler import LocalEngine
from ossy.model import gptoss


@pytest.fixture(scope="module")
def ref(tmp_path_factory):
    path = tmp_path_factory.mktemp("experts") / "tiny"
    tiny.hf_model(seed=3, scale=2.0).save_pretrained(path)
    return ModelRef(name="tiny:latest", digest="sha256:tiny", checkpoint=path)


def test_counts_equal_a_recount_of_the_router_choices(ref, monkeypatch):
    model = ossy.load(ref.checkpoint, dtype="float32").model
    chosen_per_layer = []
    real_route = gptoss.route

    def recording_route(*args, **kwargs):
        chosen, weights = real_route(*args, **kwargs)
        chosen_per_layer.append(chosen.clone())
        return chosen, weights

    monkeypatch.setattr(gptoss, "route", recording_route)
    sequences = [(torch.tensor([1, 5, 9, 4]), model.new_cache()), (torch.tensor([7, 7]), model.new_cache()),
                 (torch.tensor([3]), model.new_cache())]
    model.forward_batch(sequences)
    c = model.config
    assert len(chosen_per_layer) == c.num_hidden_layers
    recount = torch.zeros(c.num_hidden_layers, 3, c.num_local_experts, dtype=torch.int64)
    for layer, chosen in enumerate(chosen_per_layer):  # [7 tokens, K]
        for b, rows in enumerate((slice(0, 4), slice(4, 6), slice(6, 7))):
            for e in chosen[rows].reshape(-1).tolist():
                recount[layer, b, e] += 1
    assert torch.equal(model.last_routing, recount)
    assert model.last_routing[:, 0].sum(dim=-1).tolist() == [4 * c.num_experts_per_tok] * c.num_hidden_layers


def test_the_engine_sums_per_request_and_per_model(ref):
    async def go():
        engine = LocalEngine(dtype="float32", num_parallel=2, max_queue=4)
        try:
            finals = []
            for prompt in ([1, 2, 3, 4, 5], [9, 8, 7]):
                request = GenerateRequest(ref, tuple(prompt), SamplingOptions(temperature=0), max_tokens=4)
                generated = 0
                async for event in await engine.submit(request):
                    if isinstance(event, Token):
                        generated += 1
                    else:
                        finals.append((len(prompt), generated, event.stats))
            return finals, engine.expert_counts()
        finally:
            await engine.close()

    finals, models = asyncio.run(asyncio.wait_for(go(), 60))
    for prompt_tokens, generated, stats in finals:
        experts = stats.experts
        # every token run: the prompt (no cache reuse between these prompts) and each generated
        # token but the last, which is never fed back
        assert experts.tokens == prompt_tokens - stats.cached_tokens + generated - 1
        assert all(sum(row) == experts.tokens * experts.top_k for row in experts.counts)
    (model,) = models
    assert model.model == "tiny:latest"
    summed = finals[0][2].experts + finals[1][2].experts
    assert model.counts == summed.counts


def test_api_experts_and_ps_experts(nano_url, monkeypatch, capsys):
    from ossy.cli.main import main
    from ossy.client import Client

    with Client(nano_url) as client:
        assert client.experts() == []
        reply = client.chat("nano", [{"role": "user", "content": "hi"}], stream=False, think="low")
        prompt, generated = reply["prompt_eval_count"], reply["eval_count"]
        (item,) = client.experts()
    assert item["model"] == "nano:latest" and item["top_k"] == 2 and item["layers"] == 4 and item["experts"] == 8
    assert item["tokens"] == prompt + generated - 1
    monkeypatch.setenv("OSSY_HOST", nano_url.removeprefix("http://"))
    assert main(["ps", "--experts"]) == 0
    out = capsys.readouterr().out
    assert f"nano:latest: experts chosen per layer over {item['tokens']} tokens" in out
    layer0 = next(line for line in out.splitlines() if line.startswith("0 "))
    percents = [int(x) for x in re.findall(r"\d+", layer0)[1:9]]
    assert sum(percents) == pytest.approx(200, abs=8)  # 2 experts per token: the row sums to ~200%
    one = httpx.post(f"{nano_url}/api/chat", json={"model": "nano", "messages": [{"role": "user", "content": "hi"}],
                                                    "stream": False, "think": "low", "experts": True}).json()
    # prompt tokens reused from the slot's cache (the same system prefix) are not run again
    assert one["eval_count"] <= one["experts"]["tokens"] <= one["prompt_eval_count"] + one["eval_count"] - 1
    assert all(sum(row) == 2 * one["experts"]["tokens"] for row in one["experts"]["counts"])
    assert "experts" not in httpx.post(f"{nano_url}/api/chat", json={
        "model": "nano", "messages": [{"role": "user", "content": "hi"}], "stream": False}).json()
    missing = httpx.get(f"{nano_url}/api/experts", params={"model": "nope"})
    assert missing.status_code == 404 and "not loaded" in missing.json()["error"]
