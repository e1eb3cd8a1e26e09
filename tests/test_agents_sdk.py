"""The OpenAI Agents SDK (openai-agents, a test extra) runs an agent with a function tool against a
live ossy server, over both of its model APIs: Chat Completions and Responses. The stub engine
plays the model: it calls get_weather, then answers from the tool's result."""

from __future__ import annotations

import agents
import pytest


@pytest.mark.parametrize("api", ["chat_completions", "responses"])
def test_an_agent_calls_a_function_tool_and_answers_from_it(server, api):
    from openai import AsyncOpenAI

    url, engine = server
    agents.set_tracing_disabled(True)
    calls = []

    @agents.function_tool
    def get_weather(city: str) -> str:
        """Weather in a city."""
        calls.append(city)
        return '{"sky": "sunny"}'

    client = AsyncOpenAI(base_url=url + "/v1", api_key="ossy", max_retries=0)
    model = (agents.OpenAIChatCompletionsModel if api == "chat_completions" else agents.OpenAIResponsesModel)(
        model="tiny", openai_client=client)
    agent = agents.Agent(name="weather", instructions="Use tools.", tools=[get_weather], model=model)
    result = agents.Runner.run_sync(agent, "weather in Paris?")
    assert calls == ["Paris"]
    assert result.final_output == "It is sunny in Paris."
