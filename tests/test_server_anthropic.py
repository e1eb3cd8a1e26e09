"""The Anthropic Messages API through the official `anthropic` SDK against a live server (the stub
engine plays the model's harmony): messages, streaming, thinking blocks from the analysis channel,
a tool_use / tool_result round trip, system prompts (a string, text blocks, and a `role: system`
message as Claude Code sends), count_tokens, /v1/models for both SDKs, and errors in Anthropic's
shape."""

from __future__ import annotations

import anthropic
import httpx
import pytest
from stub_engine import tokenizer

WEATHER = {"name": "get_weather", "description": "Weather in a city",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


@pytest.fixture
def client(server):
    return anthropic.Anthropic(base_url=server[0], api_key="ossy", max_retries=0, timeout=30)


def last_prompt(server) -> str:
    return tokenizer().decode(list(server[1].requests[-1].prompt))


def test_a_message_with_and_without_thinking(client, server):
    m = client.messages.create(model="tiny", max_tokens=64, messages=[{"role": "user", "content": "Hi"}])
    assert m.role == "assistant" and m.stop_reason == "end_turn" and m.type == "message"
    assert [b.type for b in m.content] == ["text"] and m.content[0].text.startswith("Hello!")
    assert m.usage.input_tokens > 0 and m.usage.output_tokens > 0
    thought = client.messages.create(model="tiny", max_tokens=64, messages=[{"role": "user", "content": "Hi"}],
                                     thinking={"type": "enabled", "budget_tokens": 20000})
    assert [b.type for b in thought.content] == ["thinking", "text"]
    assert thought.content[0].thinking == "The user greets me."
    assert "Reasoning: high" in last_prompt(server)


def test_streaming_events_and_the_sdk_helpers(client):
    with client.messages.stream(model="tiny", max_tokens=64, thinking={"type": "adaptive"},
                                messages=[{"role": "user", "content": "Hi"}]) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop" and "message_delta" in kinds
    assert [b.type for b in final.content] == ["thinking", "text"] and final.content[1].text.startswith("Hello!")
    assert final.stop_reason == "end_turn"


def test_tool_use_round_trip(client, server):
    messages = [{"role": "user", "content": "weather in Paris?"}]
    m = client.messages.create(model="tiny", max_tokens=64, tools=[WEATHER], messages=messages,
                               system=[{"type": "text", "text": "Use tools."}])
    assert m.stop_reason == "tool_use"
    (call,) = [b for b in m.content if b.type == "tool_use"]
    assert call.name == "get_weather" and call.input == {"city": "Paris"}
    assert "Use tools." in last_prompt(server)
    messages += [{"role": "assistant", "content": [b.model_dump() for b in m.content]},
                 {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id,
                                               "content": '{"sky": "sunny"}'}]}]
    m2 = client.messages.create(model="tiny", max_tokens=64, tools=[WEATHER], messages=messages)
    assert m2.stop_reason == "end_turn" and m2.content[-1].text == "It is sunny in Paris."
    assert '<|start|>functions.get_weather to=assistant<|channel|>commentary<|message|>{"sky": "sunny"}' \
        in last_prompt(server)
    with client.messages.stream(model="tiny", max_tokens=64, tools=[WEATHER],
                                messages=[{"role": "user", "content": "weather in Paris?"}]) as stream:
        final = stream.get_final_message()
    (streamed,) = [b for b in final.content if b.type == "tool_use"]
    assert streamed.input == {"city": "Paris"} and final.stop_reason == "tool_use"


def test_claude_codes_system_message_inside_messages_and_count_tokens(client, server):
    messages = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hi"}]
    r = httpx.post(server[0] + "/v1/messages?beta=true", json={"model": "tiny", "max_tokens": 32, "messages": messages,
                                                              "context_management": {"edits": []}},
                   headers={"anthropic-beta": "interleaved-thinking-2025-05-14", "anthropic-version": "2023-06-01"})
    assert r.status_code == 200, r.text
    assert "You are terse." in last_prompt(server)
    counted = client.messages.count_tokens(model="tiny", messages=[{"role": "user", "content": "Hi"}])
    client.messages.create(model="tiny", max_tokens=8, messages=[{"role": "user", "content": "Hi"}])
    assert counted.input_tokens == len(server[1].requests[-1].prompt)  # what the same request reads


def test_models_answer_both_sdks(client, server):
    import openai

    listed = list(client.models.list())
    openai_ids = [m.id for m in openai.OpenAI(base_url=server[0] + "/v1", api_key="ossy").models.list()]
    assert "tiny:latest" in openai_ids and [m.id for m in listed] == openai_ids
    assert all(m.type == "model" and m.display_name == m.id and m.created_at.year >= 2020 for m in listed)


def test_errors_have_anthropics_shape(client):
    with pytest.raises(anthropic.NotFoundError) as e:
        client.messages.create(model="nope", max_tokens=8, messages=[{"role": "user", "content": "Hi"}])
    assert e.value.body["type"] == "error" and e.value.body["error"]["type"] == "not_found_error"
    with pytest.raises(anthropic.BadRequestError) as e:
        client.messages.create(model="tiny", max_tokens=8, messages=[{"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AA=="}}]}])
    assert "text only" in e.value.body["error"]["message"]
    with pytest.raises(anthropic.BadRequestError):
        client.messages.create(model="tiny", max_tokens=0, messages=[{"role": "user", "content": "Hi"}])
