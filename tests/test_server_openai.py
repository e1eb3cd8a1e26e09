"""The OpenAI layer (/v1/chat/completions, /v1/completions, /v1/models, /v1/responses) on a real
uvicorn server with the stub engine, through the official `openai` client."""

from __future__ import annotations

import json

import httpx
import openai
import pytest
from stub_engine import WEATHER_TOOL, tokenizer

OTHER_TOOL = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}
HI = [{"role": "user", "content": "Hi"}]


@pytest.fixture
def client(server):
    return openai.OpenAI(base_url=server[0] + "/v1", api_key="ossy", max_retries=0, timeout=30)


def last_prompt(server) -> str:
    return tokenizer().decode(list(server[1].requests[-1].prompt))


def test_chat_not_streamed(client):
    r = client.chat.completions.create(model="tiny", messages=HI)
    message = r.choices[0].message
    assert message.content == "Hello! How can I help?" and r.choices[0].finish_reason == "stop"
    extra = message.model_extra
    assert extra["reasoning_content"] == extra["reasoning"] == "The user greets me."
    assert r.usage.prompt_tokens > 0 and r.usage.completion_tokens > 0 and r.id.startswith("chatcmpl-")
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_chat_streamed_with_usage(client):
    chunks = list(client.chat.completions.create(model="tiny", messages=HI, stream=True,
                                                 stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    thinking = "".join((c.choices[0].delta.model_extra or {}).get("reasoning_content") or "" for c in chunks if c.choices)
    assert text == "Hello! How can I help?" and thinking == "The user greets me."
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0


def test_tool_call_round_trip(client, server):
    messages = [{"role": "developer", "content": "Use tools."}, {"role": "user", "content": "weather in Paris?"}]
    r = client.chat.completions.create(model="tiny", messages=messages, tools=[WEATHER_TOOL])
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    (call,) = choice.message.tool_calls
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Paris"}
    assert "# Instructions\n\nUse tools." in last_prompt(server)
    messages += [choice.message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": call.id, "content": '{"sky": "sunny"}'}]
    r2 = client.chat.completions.create(model="tiny", messages=messages, tools=[WEATHER_TOOL])
    assert r2.choices[0].message.content == "It is sunny in Paris." and r2.choices[0].finish_reason == "stop"
    assert '<|start|>functions.get_weather to=assistant<|channel|>commentary<|message|>{"sky": "sunny"}' in last_prompt(server)


def test_several_tool_calls_stream_as_indexed_deltas(client, server):
    server[1].honour_stop_ids = False  # the stub plays both calls of its script in one turn
    try:
        chunks = list(client.chat.completions.create(
            model="tiny", messages=[{"role": "user", "content": "weather in two cities"}], tools=[WEATHER_TOOL],
            stream=True))
    finally:
        server[1].honour_stop_ids = True
    deltas = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or []]
    heads = [d for d in deltas if d.id is not None]  # OpenAI style: one head per call, then fragments
    assert [d.index for d in heads] == [0, 1] and len({d.id for d in heads}) == 2
    assert all(d.type == "function" and d.function.name == "get_weather" and d.function.arguments == ""
               for d in heads)
    fragments = [d for d in deltas if d.id is None]
    assert all(d.function.name is None for d in fragments)
    assert len(fragments) > 2  # streamed piecewise, not one chunk per call
    arguments = {i: "".join(d.function.arguments for d in deltas if d.index == i) for i in (0, 1)}
    assert [json.loads(arguments[i]) for i in (0, 1)] == [{"city": "Paris"}, {"city": "Rome"}]
    first_rome = next(k for k, d in enumerate(deltas) if d.index == 1)
    assert all(d.index == 0 for d in deltas[:first_rome])  # call 0 is complete before call 1 starts
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_tool_choice(client, server):
    r = client.chat.completions.create(model="tiny", messages=HI, tools=[WEATHER_TOOL, OTHER_TOOL],
                                       tool_choice={"type": "function", "function": {"name": "get_weather"}})
    assert r.choices[0].message.tool_calls[0].function.name == "get_weather"
    assert last_prompt(server).endswith("to=functions.get_weather <|constrain|>json<|message|>")
    r = client.chat.completions.create(model="tiny", messages=HI, tools=[WEATHER_TOOL], tool_choice="required")
    assert r.choices[0].finish_reason == "tool_calls"
    client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "weather?"}],
                                   tools=[WEATHER_TOOL], tool_choice="none")
    assert "get_weather" not in last_prompt(server)
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="tiny", messages=HI, tools=[WEATHER_TOOL],
                                       tool_choice={"type": "function", "function": {"name": "nope"}})
    assert e.value.body["param"] == "tool_choice"


def test_sampling_fields_and_modelfile_defaults(client, server):
    client.chat.completions.create(model="tiny-terse", messages=HI, max_completion_tokens=50, seed=3,
                                   reasoning_effort="high")
    request = server[1].requests[-1]
    assert (request.sampling.temperature, request.sampling.top_k, request.sampling.seed) == (0.2, 7, 3)
    assert request.max_tokens == 50 and "Reasoning: high" in last_prompt(server)
    client.chat.completions.create(model="tiny-terse", messages=HI, temperature=0.9, top_p=0.5, max_tokens=20,
                                   reasoning_effort="none")
    request = server[1].requests[-1]
    assert (request.sampling.temperature, request.sampling.top_p, request.max_tokens) == (0.9, 0.5, 20)
    assert "Reasoning: low" in last_prompt(server)


def test_response_format_reaches_the_engine(client, server):
    schema = {"type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"]}
    r = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "json please"}],
                                       response_format={"type": "json_schema",
                                                        "json_schema": {"name": "a", "schema": schema}})
    assert json.loads(r.choices[0].message.content) == {"answer": 42}
    assert server[1].requests[-1].constraint.schema == schema and "# Response Formats" in last_prompt(server)
    client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "json please"}],
                                   response_format={"type": "json_object"})
    assert server[1].requests[-1].constraint.schema is None


def test_n_and_logprobs(client):
    r = client.chat.completions.create(model="tiny", messages=HI, n=2, logprobs=True, top_logprobs=2)
    assert [c.index for c in r.choices] == [0, 1]
    assert all(c.message.content == "Hello! How can I help?" for c in r.choices)
    content = r.choices[0].logprobs.content
    assert content and len(content[0].top_logprobs) == 2 and content[0].logprob == -0.25


def test_stop_and_length(client):
    r = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "count"}], stop=" 4 ")
    assert r.choices[0].message.content == "1 2 3" and r.choices[0].finish_reason == "stop"
    r = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "count"}], max_tokens=5)
    assert r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 5


def test_completions(client):
    r = client.completions.create(model="tiny", prompt="Hi")
    assert r.choices[0].text == "Hello! How can I help?" and r.usage.completion_tokens > 0
    text = "".join(c.choices[0].text for c in client.completions.create(model="tiny", prompt="Hi", stream=True)
                   if c.choices)
    assert text == "Hello! How can I help?"


def test_models(client):
    ids = [m.id for m in client.models.list()]
    assert {"tiny:latest", "tiny-terse:latest"} <= set(ids)
    assert client.models.retrieve("tiny").id == "tiny:latest"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("nope")


def test_errors(client, server):
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="nope", messages=HI)
    assert e.value.status_code == 404 and e.value.body["code"] == "model_not_found"
    assert set(e.value.body) == {"message", "type", "param", "code"}
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="tiny", messages=HI, temperature="hot")
    assert "temperature" in e.value.body["message"] and e.value.body["param"] == "temperature"
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="tiny", messages=[{"role": "wizard", "content": "x"}])
    assert e.value.body["param"].startswith("messages.0.role")
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "word " * 500}],
                                       extra_body={"options": {"num_ctx": 128}})
    assert e.value.body["code"] == "context_length_exceeded"
    answer = client.chat.completions.create(model="tiny", messages=HI, extra_body={"options": {"bogus": 1}})
    assert answer.choices[0].message.content  # an unknown option is ignored, as Ollama ignores it
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="tiny", messages=HI, extra_body={"options": {"top_k": "many"}})
    assert "top_k" in e.value.body["message"]
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="tiny", messages=HI, reasoning_effort="extreme")
    assert e.value.body["param"] == "reasoning_effort"
    r = httpx.post(server[0] + "/v1/chat/completions", content=b"{oops", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"


def test_queue_full(client, server):
    server[1].max_active = 0
    try:
        r = httpx.post(server[0] + "/v1/chat/completions", json={"model": "tiny", "messages": HI})
        assert r.status_code == 503 and r.headers["retry-after"] == "2" and r.json()["error"]["code"] == "server_busy"
    finally:
        server[1].max_active = None


# ---- /v1/responses ------------------------------------------------------------------------------

RESPONSES_TOOL = {"type": "function", "name": "get_weather", "description": "Weather in a city",
                  "parameters": WEATHER_TOOL["function"]["parameters"]}


def test_responses_text_and_previous_response(client, server):
    r = client.responses.create(model="tiny", input="Hi", instructions="Be kind.", reasoning={"effort": "low"})
    assert r.output_text == "Hello! How can I help?" and r.status == "completed"
    assert [item.type for item in r.output] == ["reasoning", "message"]
    assert r.output[0].content[0].text == "The user greets me." and r.usage.output_tokens > 0
    assert "Reasoning: low" in last_prompt(server) and "Be kind." in last_prompt(server)
    r2 = client.responses.create(model="tiny", input="And again?", previous_response_id=r.id)
    prompt = last_prompt(server)
    assert prompt.index(">Hi<") < prompt.index("Hello! How can I help?") < prompt.index("And again?")
    assert "Be kind." not in prompt and r2.previous_response_id == r.id
    with pytest.raises(openai.NotFoundError) as e:
        client.responses.create(model="tiny", input="x", previous_response_id="resp_nope")
    assert e.value.body["param"] == "previous_response_id"


def test_responses_tool_loop(client, server):
    r = client.responses.create(model="tiny", input="weather in Paris?", tools=[RESPONSES_TOOL])
    call = next(item for item in r.output if item.type == "function_call")
    assert call.name == "get_weather" and json.loads(call.arguments) == {"city": "Paris"}
    r2 = client.responses.create(model="tiny", previous_response_id=r.id, tools=[RESPONSES_TOOL],
                                 input=[{"type": "function_call_output", "call_id": call.call_id,
                                         "output": '{"sky": "sunny"}'}])
    assert r2.output_text == "It is sunny in Paris."
    # the same loop without the store: the items are sent back by the client
    items = [{"role": "user", "content": "weather in Paris?"}] + [i.model_dump(exclude_none=True) for i in r.output] + \
        [{"type": "function_call_output", "call_id": call.call_id, "output": '{"sky": "sunny"}'}]
    r3 = client.responses.create(model="tiny", input=items, tools=[RESPONSES_TOOL], store=False)
    assert r3.output_text == "It is sunny in Paris."
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="tiny", input="x", previous_response_id=r3.id)


def test_responses_streaming_events(client):
    events = list(client.responses.create(model="tiny", input="Hi", stream=True))
    types = [e.type for e in events]
    assert types[:2] == ["response.created", "response.in_progress"] and types[-1] == "response.completed"
    assert "response.reasoning.delta" in types and "response.output_text.done" in types  # the spec's names
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == "Hello! How can I help?" and events[-1].response.output_text == text
    events = list(client.responses.create(model="tiny", input="weather in Paris?", tools=[RESPONSES_TOOL], stream=True))
    done = [e for e in events if e.type == "response.function_call_arguments.done"]
    assert json.loads(done[0].arguments) == {"city": "Paris"}
    with client.responses.stream(model="tiny", input="Hi") as stream:
        reasoning = [e.delta for e in stream if e.type == "response.reasoning.delta"]
        final = stream.get_final_response()
    assert final.output_text == "Hello! How can I help?"
    # the SDK's stream helper passes the spec's reasoning events on, and keeps the reasoning item
    assert "".join(reasoning) == final.output[0].content[0].text and final.output[0].type == "reasoning"


def test_responses_json_schema(client, server):
    schema = {"type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"]}
    r = client.responses.create(model="tiny", input="json please",
                                text={"format": {"type": "json_schema", "name": "a", "schema": schema}})
    assert json.loads(r.output_text) == {"answer": 42} and server[1].requests[-1].constraint.schema == schema


def test_engine_error_mid_stream_is_an_error_event(server):
    body = {"model": "tiny", "stream": True, "messages": [{"role": "user", "content": "explode"}]}
    events = [line[6:] for line in httpx.post(server[0] + "/v1/chat/completions", json=body).text.splitlines()
              if line.startswith("data: ")]
    assert json.loads(events[-1])["error"]["type"] == "server_error"
