"""A model that calls a tool the client never offered (`read_file` when only `get_weather` was):
the server does not pass it on as a tool call, which an SDK would fail on (the OpenAI Agents
SDK raises ModelBehaviorError "Tool read_file not found"); it comes back as content with an
`unexpected_tool_call` warning. Offered tools still come back as calls."""

from __future__ import annotations

import json

import httpx
import ollama
import openai
import pytest
from stub_engine import RunningServer, StubEngine, tiny_library, tokenizer

from ossy.server import create_app

WEATHER = [{"type": "function", "function": {"name": "get_weather", "description": "Weather in a city.",
                                             "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                            "required": ["city"]}}}]
ASK = [{"role": "user", "content": "What is in notes.txt?"}]


def calls(name: str):
    def respond(prompt_text, request):
        return (f"<|channel|>analysis<|message|>I will call {name}.<|end|><|start|>assistant<|channel|>commentary "
                f'to=functions.{name} <|constrain|>json<|message|>{{"path": "notes.txt"}}<|call|>')
    return respond


@pytest.fixture
def serve(tmp_path):
    library, resolver = tiny_library(tmp_path, tokenizer())

    def serving(name):
        return RunningServer(create_app(StubEngine(tokenizer(), calls(name)), resolver, library))

    return serving


def test_openai_sdk_gets_no_call_of_a_tool_it_did_not_offer(serve):
    with serve("read_file") as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0)
        r = client.chat.completions.create(model="tiny", messages=ASK, tools=WEATHER)
        choice = r.choices[0]
        assert choice.message.tool_calls is None and choice.finish_reason == "stop"
        assert choice.message.content == '{"path": "notes.txt"}'
        warning = choice.model_extra["warnings"][0]
        assert warning["code"] == "unexpected_tool_call" and warning["tool"] == "read_file"
        streamed = list(client.chat.completions.create(model="tiny", messages=ASK, tools=WEATHER, stream=True))
        assert not any(c.choices and c.choices[0].delta.tool_calls for c in streamed)
        assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == '{"path": "notes.txt"}'
        responses = httpx.post(url + "/v1/responses", json={"model": "tiny", "input": "What is in notes.txt?",
                                                            "tools": [{"type": "function", "name": "get_weather",
                                                                       "parameters": {"type": "object"}}]}).json()
        assert not [item for item in responses["output"] if item["type"] == "function_call"]


def test_ollama_client_gets_no_call_of_a_tool_it_did_not_offer(serve):
    with serve("read_file") as url:
        r = ollama.Client(host=url).chat(model="tiny", messages=ASK, tools=WEATHER, stream=False)
        assert not r.message.tool_calls and json.loads(r.message.content) == {"path": "notes.txt"}
        last = [json.loads(line) for line in httpx.post(url + "/api/chat", json={
            "model": "tiny", "messages": ASK, "tools": WEATHER}).text.splitlines()][-1]
        assert last["done"] and last["warnings"][0]["code"] == "unexpected_tool_call"


def test_an_offered_tool_is_still_a_call(serve):
    with serve("get_weather") as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0)
        r = client.chat.completions.create(model="tiny", messages=ASK, tools=WEATHER)
        assert r.choices[0].finish_reason == "tool_calls"
        assert r.choices[0].message.tool_calls[0].function.name == "get_weather"
        native = ollama.Client(host=url).chat(model="tiny", messages=ASK, tools=WEATHER, stream=False)
        assert native.message.tool_calls[0].function.name == "get_weather"
