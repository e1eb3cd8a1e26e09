"""The agent loop against a model served by ossy: `run_agent("gpt-oss:20b", messages, tools=...)`.

Owns the step from a model name and this process's settings to a running loop: the server at
`host` (default `OSSY_HOST`), or one started in this process when none answers
(`ossy.client.local.connect`), and the tools' ossy home and search endpoint (`OSSY_HOME`,
`OSSY_SEARCH_URL`) unless given. Does not own the loop (`ossy.agent.run`, whose options it
passes on).
"""

from __future__ import annotations

from ossy.agent import AgentResult, ClientModel, run
from ossy.client.local import connect
from ossy.config import settings


def run_agent(model: str, messages: list[dict], *, host: str | None = None, **options) -> AgentResult:
    """`ossy.agent.run` with the model `model` as the server at `host` serves it."""
    s = settings()
    options.setdefault("home", s.home)
    options.setdefault("search_url", s.search_url)
    with connect(host) as client:
        return run(ClientModel(client, model), messages, **options)
