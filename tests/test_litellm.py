"""LiteLLM (a test extra) against a live ossy server, as LiteLLM users point it at Ollama and at
OpenAI-compatible servers: the `ollama_chat/` provider (Ollama's /api/chat) and the `openai/`
provider (/v1/chat/completions), plain answers and a tool call. The stub engine plays the model."""

from __future__ import annotations

import json
import os

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no download of the cost map at import
import litellm  # noqa: E402
from stub_engine import WEATHER_TOOL as WEATHER


@pytest.mark.parametrize("provider", ["ollama_chat", "openai"])
def test_litellm_answers_and_tool_calls(server, provider):
    url = server[0] if provider == "ollama_chat" else server[0] + "/v1"
    kw = dict(model=f"{provider}/tiny", api_base=url, api_key="ossy", num_retries=0, timeout=30)
    answer = litellm.completion(messages=[{"role": "user", "content": "Hi"}], **kw)
    assert answer.choices[0].message.content.startswith("Hello!")
    called = litellm.completion(messages=[{"role": "user", "content": "weather in Paris?"}], tools=[WEATHER], **kw)
    (call,) = called.choices[0].message.tool_calls
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Paris"}
