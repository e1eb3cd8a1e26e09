"""The native API (/api/...) on a real uvicorn server with the stub engine, through the
official `ollama` client (and httpx for raw bodies and error statuses)."""

from __future__ import annotations

import json
import time

import httpx
import ollama
import pytest
from stub_engine import WEATHER_TOOL, tokenizer

from ossy.server import split_host


@pytest.fixture
def client(server):
    return ollama.Client(host=server[0], timeout=30)


def test_chat_not_streamed(client, server):
    r = client.chat(model="tiny", messages=[{"role": "user", "content": "Hi"}], stream=False)
    assert r.message.content == "Hello! How can I help?" and r.message.thinking == "The user greets me."
    assert r.done and r.done_reason == "stop" and r.eval_count > 0 and r.prompt_eval_count > 0
    assert r.total_duration >= r.eval_duration > 0 and r.load_duration is not None


def test_chat_streamed(client):
    chunks = list(client.chat(model="tiny", messages=[{"role": "user", "content": "Hi"}], stream=True))
    assert "".join(c.message.content or "" for c in chunks) == "Hello! How can I help?"
    assert "".join(c.message.thinking or "" for c in chunks) == "The user greets me."
    assert [c.done for c in chunks].count(True) == 1 and chunks[-1].done_reason == "stop"
    assert chunks[-1].eval_count == sum(1 for _ in chunks) or chunks[-1].eval_count > 0


def test_tool_call_then_result(client, server):
    messages = [{"role": "user", "content": "What is the weather in Paris?"}]
    r = client.chat(model="tiny", messages=messages, tools=[WEATHER_TOOL], stream=False)
    (call,) = r.message.tool_calls
    assert call.function.name == "get_weather" and call.function.arguments == {"city": "Paris"}
    messages += [r.message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_name": "get_weather", "content": '{"sky": "sunny"}'}]
    r2 = client.chat(model="tiny", messages=messages, tools=[WEATHER_TOOL], stream=False)
    assert r2.message.content == "It is sunny in Paris."
    prompt = tokenizer().decode(list(server[1].requests[-1].prompt))
    assert 'to=functions.get_weather' in prompt and "<|start|>functions.get_weather to=assistant" in prompt
    assert "I should call the weather tool." in prompt  # the reasoning is kept inside the tool loop


def test_tool_call_streamed_before_done(client):
    chunks = list(client.chat(model="tiny", messages=[{"role": "user", "content": "weather?"}],
                              tools=[WEATHER_TOOL], stream=True))
    calls = [c for c in chunks if c.message.tool_calls]
    assert len(calls) == 1 and not calls[0].done and calls[0].message.tool_calls[0].function.arguments == {"city": "Paris"}


def test_think_levels_and_modelfile_defaults(client, server):
    engine = server[1]
    client.chat(model="tiny-terse", messages=[{"role": "user", "content": "Hi"}], think="high", stream=False)
    prompt = tokenizer().decode(list(engine.requests[-1].prompt))
    assert "Reasoning: high" in prompt and "# Instructions\n\nBe terse." in prompt
    assert (engine.requests[-1].sampling.temperature, engine.requests[-1].sampling.top_k) == (0.2, 7)
    client.chat(model="tiny-terse", messages=[{"role": "user", "content": "Hi"}], think=False,
                options={"top_k": 3}, stream=False)
    assert "Reasoning: low" in tokenizer().decode(list(engine.requests[-1].prompt))
    assert (engine.requests[-1].sampling.temperature, engine.requests[-1].sampling.top_k) == (0.2, 3)


def test_format_passes_the_constraint(client, server):
    schema = {"type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"]}
    r = client.chat(model="tiny", messages=[{"role": "user", "content": "json please"}], format=schema, stream=False)
    assert json.loads(r.message.content) == {"answer": 42}
    assert server[1].requests[-1].constraint.schema == schema
    client.generate(model="tiny", prompt="json please", format="json", stream=False)
    assert server[1].requests[-1].constraint is not None and server[1].requests[-1].constraint.schema is None


def test_generate(client, server):
    r = client.generate(model="tiny", prompt="Hi", system="Speak French.", stream=False)
    assert r.response == "Hello! How can I help?" and r.thinking == "The user greets me." and r.done
    assert "Speak French." in tokenizer().decode(list(server[1].requests[-1].prompt))
    text = "".join(c.response for c in client.generate(model="tiny", prompt="Hi", stream=True))
    assert text == "Hello! How can I help?"
    raw = client.generate(model="tiny", prompt="<|start|>user<|message|>Hi<|end|><|start|>assistant", raw=True,
                          stream=False)
    assert "<|channel|>final" in raw.response  # raw: the model's text as generated


def test_stop_and_num_predict(client):
    r = client.chat(model="tiny", messages=[{"role": "user", "content": "count"}], options={"stop": [" 5 "]},
                    stream=False)
    assert r.message.content == "1 2 3 4" and r.done_reason == "stop"
    r = client.chat(model="tiny", messages=[{"role": "user", "content": "count"}], options={"num_predict": 6},
                    stream=False)
    assert r.done_reason == "length" and r.eval_count == 6


def test_model_management(client, server):
    names = [m.model for m in client.list().models]
    assert {"tiny:latest", "tiny-terse:latest"} <= set(names)
    show = client.show("tiny-terse")
    assert "Be terse." in show.modelfile and "temperature" in show.parameters and show.capabilities
    assert show.details.family == "gptoss"
    client.copy("tiny", "tiny-copy")
    assert "tiny-copy:latest" in [m.model for m in client.list().models]
    client.delete("tiny-copy")
    assert "tiny-copy:latest" not in [m.model for m in client.list().models]
    status = list(client.create(model="tiny-hot", from_="tiny", parameters={"temperature": 1.5}, stream=True))
    assert status[-1].status == "success"
    assert client.show("tiny-hot").parameters.strip().endswith("1.5")
    assert client.ps().models and client.ps().models[0].name
    version = httpx.get(server[0] + "/api/version").json()["version"]
    assert version and httpx.get(server[0] + "/").text == "Ollama is running"


def test_load_and_unload(server):
    url, engine = server
    r = httpx.post(url + "/api/chat", json={"model": "tiny-terse", "messages": []}).json()
    assert r["done_reason"] == "load" and any(m.name == "tiny-terse:latest" for m in engine.loaded())
    r = httpx.post(url + "/api/generate", json={"model": "tiny-terse", "keep_alive": 0}).json()
    assert r["done_reason"] == "unload" and not any(m.name == "tiny-terse:latest" for m in engine.loaded())


@pytest.mark.parametrize("body,status,needle", [
    ({"model": "nope", "messages": [{"role": "user", "content": "x"}]}, 404, "not found"),
    ({"model": "tiny", "messages": "hello"}, 400, "messages"),
    ({"model": "tiny", "messages": [{"role": "user", "content": "x"}], "options": {"temperature": "1"}}, 400, "temperature"),
    ({"model": "tiny", "messages": [{"role": "user", "content": "x"}], "options": {"top_p": "high"}}, 400, "top_p"),
    ({"model": "tiny", "messages": [{"role": "user", "content": "x"}], "think": "extreme"}, 400, "think"),
    ({"model": "tiny", "messages": [{"role": "user", "content": "x"}], "format": "xml"}, 400, "format"),
    ({"model": "tiny", "messages": [{"role": "user", "content": "word " * 400}], "options": {"num_ctx": 128},
      "truncate": False}, 400, "num_ctx"),
    ({"messages": []}, 400, "model"),
])
def test_errors(server, body, status, needle):
    r = httpx.post(server[0] + "/api/chat", json=body)
    assert r.status_code == status and set(r.json()) == {"error"} and needle in r.json()["error"]


def test_bad_json_and_client_errors(server, client):
    r = httpx.post(server[0] + "/api/chat", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and "JSON" in r.json()["error"]
    with pytest.raises(ollama.ResponseError) as e:
        client.chat(model="missing-model", messages=[{"role": "user", "content": "x"}])
    assert e.value.status_code == 404
    assert httpx.post(server[0] + "/api/nothing", json={}).status_code == 404


def test_truncation_is_reported(server):
    messages = [{"role": "user", "content": "word " * 400}, {"role": "assistant", "content": "ok"},
                {"role": "user", "content": "Hi"}]
    r = httpx.post(server[0] + "/api/chat", json={"model": "tiny", "messages": messages, "stream": False,
                                                  "options": {"num_ctx": 256, "num_predict": 16}}).json()
    assert r["message"]["content"] and any(w["code"] == "truncated" for w in r["warnings"])


def test_queue_full_is_503_with_retry_after(server):
    url, engine = server
    engine.max_active = 0
    try:
        r = httpx.post(url + "/api/chat", json={"model": "tiny", "messages": [{"role": "user", "content": "x"}]})
        assert r.status_code == 503 and r.headers["retry-after"] == "2" and "busy" in r.json()["error"]
    finally:
        engine.max_active = None


def test_disconnect_cancels_the_generation(server):
    url, engine = server
    engine.delay = 0.02
    try:
        before = engine.counters().get("cancelled", 0)
        with httpx.stream("POST", url + "/api/chat", json={"model": "tiny", "messages": [
                {"role": "user", "content": "count"}]}) as r:
            for line in r.iter_lines():
                if '"content":"1' in line:
                    break
        deadline = time.monotonic() + 5
        while engine.counters().get("cancelled", 0) == before and time.monotonic() < deadline:
            time.sleep(0.02)
        assert engine.counters()["cancelled"] == before + 1
        assert engine.active == 0 or time.sleep(0.2) or engine.active == 0
    finally:
        engine.delay = 0.0


def test_split_host():
    assert split_host("127.0.0.1:11434") == ("127.0.0.1", 11434)
    assert split_host("0.0.0.0") == ("0.0.0.0", 11434)
    assert split_host("http://[::1]:8080") == ("::1", 8080)
    assert split_host(":9000") == ("127.0.0.1", 9000)


def test_debug_render_only(server):
    r = httpx.post(server[0] + "/api/chat", json={"model": "tiny", "_debug_render_only": True, "think": "high",
                                                  "messages": [{"role": "user", "content": "Hi"}]}).json()
    text = r["_debug_info"]["rendered_template"]
    assert "Reasoning: high" in text and text.endswith("<|start|>user<|message|>Hi<|end|><|start|>assistant")


def test_engine_error_mid_stream_is_one_more_line(server, client):
    lines = [json.loads(line) for line in httpx.post(server[0] + "/api/chat", json={
        "model": "tiny", "messages": [{"role": "user", "content": "explode"}]}).text.splitlines()]
    assert lines[0]["message"]["content"] == "partial" and lines[-1] == {"error": "internal server error"}
    r = httpx.post(server[0] + "/api/chat", json={"model": "tiny", "stream": False,
                                                  "messages": [{"role": "user", "content": "explode"}]})
    assert r.status_code == 500 and r.json() == {"error": "internal server error"}
