"""Tool calls wherever gpt-oss writes them (docs/reference/gpt-oss-spec.md §5.5): on the analysis channel as well as
commentary (Dynamo measured 47% of gpt-oss-120b's real calls there), with the recipient after
the channel or before it in the header; the OpenAI SDK and the ollama client both get the call."""

from __future__ import annotations

import json

import ollama
import openai
import pytest
from stub_engine import WEATHER_TOOL as WEATHER

CALLS = {
    "analysis channel, recipient after it":
        '<|channel|>analysis to=functions.get_weather <|constrain|>json<|message|>{"city": "Oslo"}<|call|>',
    "commentary, recipient before the channel":
        ' to=functions.get_weather<|channel|>commentary <|constrain|>json<|message|>{"city": "Oslo"}<|call|>',
    "analysis, recipient before the channel, no constrain":
        ' to=functions.get_weather<|channel|>analysis<|message|>{"city": "Oslo"}<|call|>',
}


@pytest.mark.parametrize("generated", CALLS.values(), ids=CALLS.keys())
def test_the_call_reaches_both_sdks(server, generated):
    url, engine = server
    engine.respond = lambda prompt, request: generated
    try:
        r = openai.OpenAI(base_url=url + "/v1", api_key="ossy", max_retries=0).chat.completions.create(
            model="tiny", messages=[{"role": "user", "content": "weather in Oslo?"}], tools=[WEATHER])
        (call,) = r.choices[0].message.tool_calls
        assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Oslo"}
        assert r.choices[0].finish_reason == "tool_calls"
        native = ollama.Client(host=url).chat(model="tiny", messages=[{"role": "user", "content": "weather in Oslo?"}],
                                              tools=[WEATHER])
        (call,) = native.message.tool_calls
        assert call.function.name == "get_weather" and call.function.arguments == {"city": "Oslo"}
    finally:
        from stub_engine import scripted

        engine.respond = scripted


@pytest.mark.parametrize("field", ["reasoning", "reasoning_content", "thinking"])
def test_reasoning_sent_back_is_kept_across_a_tool_turn(server, field):
    import httpx
    from stub_engine import tokenizer

    url, engine = server
    call = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}
    messages = [{"role": "user", "content": "weather in Oslo?"},
                {"role": "assistant", "content": "", field: "I should look the weather up.", "tool_calls": [call]},
                {"role": "tool", "tool_call_id": "call_1", "content": '{"sky": "grey"}'}]
    r = httpx.post(url + "/v1/chat/completions", json={"model": "tiny", "messages": messages, "tools": [WEATHER]})
    assert r.status_code == 200, r.text
    prompt = tokenizer().decode(list(engine.requests[-1].prompt))
    assert "<|channel|>analysis<|message|>I should look the weather up.<|end|>" in prompt
    if field == "thinking":  # Ollama's native field, on /api/chat
        native = [dict(m, tool_calls=[{"function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}])
                  if m["role"] == "assistant" else m for m in messages]
        r = httpx.post(url + "/api/chat", json={"model": "tiny", "messages": native, "tools": [WEATHER], "stream": False})
        assert r.status_code == 200, r.text
        prompt = tokenizer().decode(list(engine.requests[-1].prompt))
        assert "<|channel|>analysis<|message|>I should look the weather up.<|end|>" in prompt
