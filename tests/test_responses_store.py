"""Stored Responses API responses through the official openai SDK: retrieve, input items,
previous_response_id, delete, cancel; and they survive a restart (a new server over the same
OSSY_HOME finds them)."""

from __future__ import annotations

import openai
import pytest

from ossy.config import settings
from ossy.server import create_app
from stub_engine import RunningServer, StubEngine, scripted, tiny_library, tokenizer


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
