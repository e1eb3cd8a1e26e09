"""An invalid tool call (an offered tool, arguments that are not a JSON object and cannot be
repaired) travels as data through every API: the call, its arguments exactly as the model wrote
them, and an `error` saying why; never turned into content (Ollama fails such a request, ollama/ollama#12187).
The agent loop's side is in test_agent.py (over the engine and over the native API)."""

from __future__ import annotations

import json

import anthropic
import httpx
import openai
import pytest
from openresponses import event_problems, response_problems
from stub_engine import RunningServer, StubEngine, tiny_library, tokenizer

from ossy.server import create_app

NO_JSON = "ls -R ~"  # nothing of it is JSON
BROKEN = '{"city": "Paris", oops}'  # a valid start ('{"city": "Paris"' streams), then not JSON
WEATHER = {"name": "get_weather", "description": "Weather in a city.",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}
ASK = [{"role": "user", "content": "Weather in Paris?"}]


def calling(arguments: str):
    def respond(prompt_text, request):
        return ("<|channel|>analysis<|message|>I will call it.<|end|><|start|>assistant<|channel|>commentary "
                f"to=functions.get_weather <|constrain|>json<|message|>{arguments}<|call|>")
    return respond


@pytest.fixture
def serve(tmp_path):
    library, resolver = tiny_library(tmp_path, tokenizer())
    return lambda arguments: RunningServer(create_app(StubEngine(tokenizer(), calling(arguments)), resolver, library))


@pytest.mark.parametrize("arguments", [NO_JSON, BROKEN])
def test_native_api(serve, arguments):
    with serve(arguments) as url:
        body = {"model": "tiny", "messages": ASK, "tools": [{"type": "function", "function": WEATHER}]}
        whole = httpx.post(url + "/api/chat", json=dict(body, stream=False)).json()
        lines = [json.loads(line) for line in httpx.post(url + "/api/chat", json=body).text.splitlines()]
    for message in (whole["message"], next(m["message"] for m in lines if m["message"].get("tool_calls"))):
        call = message["tool_calls"][0]
        assert call["function"]["name"] == "get_weather" and call["function"]["arguments"] == arguments
        assert "not JSON" in call["error"] and message["content"] == ""
    assert [w["code"] for w in whole["warnings"]] == ["invalid_arguments"]


@pytest.mark.parametrize("arguments", [NO_JSON, BROKEN])
def test_openai_chat_completions(serve, arguments):
    with serve(arguments) as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0)
        tools = [{"type": "function", "function": WEATHER}]
        r = client.chat.completions.create(model="tiny", messages=ASK, tools=tools)
        streamed = list(client.chat.completions.create(model="tiny", messages=ASK, tools=tools, stream=True))
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls" and not choice.message.content
    call = choice.message.tool_calls[0]
    assert call.function.arguments == arguments and "not JSON" in call.model_extra["error"]
    deltas = [d for c in streamed if c.choices for d in c.choices[0].delta.tool_calls or []]
    assert "".join(d.function.arguments or "" for d in deltas if d.function) == arguments
    assert "not JSON" in deltas[-1].model_extra["error"] and deltas[0].function.name == "get_weather"
    if arguments == BROKEN:  # the valid start was streamed before the rest
        assert len([d for d in deltas if d.function and d.function.arguments]) >= 2
    assert streamed[-1].choices[0].finish_reason == "tool_calls"


@pytest.mark.parametrize("stream", [False, True])
def test_responses(serve, stream):
    with serve(BROKEN) as url:
        body = {"model": "tiny", "input": "Weather in Paris?", "stream": stream, "tools": [{"type": "function", **WEATHER}]}
        if not stream:
            response = httpx.post(url + "/v1/responses", json=body).json()
        else:
            with httpx.stream("POST", url + "/v1/responses", json=body) as r:
                events = [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: ")]
            assert [p for e in events for p in event_problems(e)] == []
            done = next(e for e in events if e["type"] == "response.function_call_arguments.done")
            assert done["arguments"] == BROKEN
            response = events[-1]["response"]
    assert response_problems(response) == []
    call = next(item for item in response["output"] if item["type"] == "function_call")
    assert call["arguments"] == BROKEN and "not JSON" in call["error"]
    assert not [item for item in response["output"] if item["type"] == "message"]


@pytest.mark.parametrize("arguments,expected", [(NO_JSON, {"input": NO_JSON}), (BROKEN, {"city": "Paris"})])
def test_anthropic_input_stays_an_object(serve, arguments, expected):
    """Anthropic's tool input must be an object: the text as written under "input", or, when part
    of it was already streamed, that part closed (the SDK's accumulated message parses)."""
    with serve(arguments) as url:
        client = anthropic.Anthropic(base_url=url, api_key="x", max_retries=0)
        tools = [{"name": WEATHER["name"], "description": WEATHER["description"], "input_schema": WEATHER["parameters"]}]
        with client.messages.stream(model="tiny", max_tokens=200, messages=ASK, tools=tools) as stream:
            streamed = stream.get_final_message()
        whole = client.messages.create(model="tiny", max_tokens=200, messages=ASK, tools=tools)
    for message in (streamed, whole):
        use = next(b for b in message.content if b.type == "tool_use")
        assert message.stop_reason == "tool_use" and use.name == "get_weather"
    assert next(b for b in streamed.content if b.type == "tool_use").input == expected
    assert next(b for b in whole.content if b.type == "tool_use").input == {"input": arguments}
