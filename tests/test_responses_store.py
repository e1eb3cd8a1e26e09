"""Stored Responses API responses through the official openai SDK: retrieve, input items,
previous_response_id, delete, cancel; and they survive a restart (a new server over the same
OSSY_HOME finds them)."""

from __future__ import annotations

import openai
import pytest
from openresponses import event_problems, response_problems
from stub_engine import RunningServer, StubEngine, scripted, tiny_library, tokenizer

from ossy.config import settings
from ossy.server import create_app


def server(root, home):
    library, resolver = tiny_library(root, tokenizer())
    app = create_app(StubEngine(tokenizer(), scripted), resolver, library, settings({"OSSY_HOME": str(home)}))
    return RunningServer(app)


def test_stored_responses_survive_a_restart(tmp_path):
    home = tmp_path / "home"
    with server(tmp_path / "a", home) as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="ossy", max_retries=0)
        first = client.responses.create(model="tiny", input="Hi")
        assert first.status == "completed" and first.output_text.startswith("Hello!")
        assert client.responses.retrieve(first.id).output_text == first.output_text
        items = client.responses.input_items.list(first.id)
        assert [(i.type, i.role, i.content[0].text) for i in items.data] == [("message", "user", "Hi")]
        unstored = client.responses.create(model="tiny", input="Hi", store=False)
    assert (home / "responses" / f"{first.id}.json").is_file()
    assert not (home / "responses" / f"{unstored.id}.json").exists()
    with server(tmp_path / "b", home) as url:  # a new process would see the same files
        client = openai.OpenAI(base_url=url + "/v1", api_key="ossy", max_retries=0)
        assert client.responses.retrieve(first.id).output_text == first.output_text
        second = client.responses.create(model="tiny", input="weather in Paris?", previous_response_id=first.id)
        assert second.previous_response_id == first.id and second.status == "completed"
        with pytest.raises(openai.BadRequestError, match="background"):
            client.responses.cancel(first.id)
        client.responses.delete(first.id)
        with pytest.raises(openai.NotFoundError):
            client.responses.retrieve(first.id)
        with pytest.raises(openai.NotFoundError):
            client.responses.create(model="tiny", input="again", previous_response_id=first.id)
    assert not (home / "responses" / f"{first.id}.json").exists()


def test_a_response_has_every_field_the_spec_requires_with_the_values_used(tmp_path):
    import httpx

    tool = {"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {}}}
    with server(tmp_path / "a", tmp_path / "home") as url:
        r = httpx.post(url + "/v1/responses", json={"model": "tiny-terse", "input": "Hi", "tools": [tool]}).json()
    assert response_problems(r) == []  # every required field, against the Open Responses document
    assert r["temperature"] == 0.2 and r["top_p"] == 1.0  # tiny-terse's Modelfile temperature, the default top_p
    assert r["presence_penalty"] == 0 and r["frequency_penalty"] == 0 and r["top_logprobs"] == 0
    assert r["completed_at"] >= r["created_at"] and r["truncation"] == "disabled" and r["background"] is False
    assert r["tools"] == [{"type": "function", "name": "get_weather", "description": None,
                           "parameters": {"type": "object", "properties": {}}, "strict": False}]


def test_an_error_mid_stream_is_an_error_event_then_response_failed(tmp_path):
    import json

    import httpx

    with server(tmp_path / "a", tmp_path / "home") as url:
        with httpx.stream("POST", url + "/v1/responses", json={"model": "tiny", "input": "explode", "stream": True}) as r:
            events = [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: ")]
    kinds = [e["type"] for e in events]
    assert kinds[0] == "response.created" and kinds[-2:] == ["error", "response.failed"], kinds
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert [p for e in events for p in event_problems(e)] == []
    assert events[-2]["error"]["message"] == "internal server error" and events[-2]["error"]["code"] == "server_error"
    assert events[-2]["message"] == events[-2]["error"]["message"]  # also flat, as the openai SDK reads it
    failed = events[-1]["response"]
    assert failed["status"] == "failed" and failed["error"]["message"] == "internal server error"


def test_codex_shaped_tools_namespaces_are_flattened_and_server_tools_left_out(tmp_path):
    import httpx

    fn = {"type": "function", "name": "exec_command", "description": "Run a command", "strict": False,
          "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}}}
    spawn = {"type": "function", "name": "spawn_agent", "parameters": {"type": "object", "properties": {}}}
    tools = [fn, {"type": "namespace", "name": "multi_agent_v1", "description": "agents", "tools": [spawn]},
             {"type": "web_search", "external_web_access": False}]
    body = {"model": "tiny", "input": "Hi", "tools": tools, "reasoning": {"summary": "auto"}, "store": False,
            "include": ["reasoning.encrypted_content"], "prompt_cache_key": "abc", "parallel_tool_calls": True}
    with server(tmp_path / "a", tmp_path / "home") as url:
        r = httpx.post(url + "/v1/responses", json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert [t["name"] for t in out["tools"]] == ["exec_command", "spawn_agent"]
    assert out["prompt_cache_key"] == "abc"
    assert [w["code"] for w in out["warnings"] if w["code"] == "unsupported_tool"] == ["unsupported_tool"]


def test_an_image_to_a_text_only_model_is_a_400_naming_its_capabilities(tmp_path):
    with server(tmp_path / "a", tmp_path / "home") as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="ossy", max_retries=0)
        with pytest.raises(openai.BadRequestError) as e:
            client.responses.create(model="tiny", input=[{"role": "user", "content": [
                {"type": "input_text", "text": "What is this?"},
                {"type": "input_image", "image_url": "data:image/png;base64,AA==", "detail": "auto"}]}])
    assert e.value.body["param"] == "input.0.content.1"
    assert "model 'tiny' cannot read input_image (it has no vision capability; its capabilities are completion, " \
           "tools, thinking)" in e.value.body["message"]
