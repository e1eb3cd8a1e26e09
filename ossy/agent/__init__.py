"""The agent: a model that calls ossy's tools until it answers.

    from ossy.client.agent import run_agent
    result = run_agent("gpt-oss:20b", [{"role": "user", "content": "What is in notes.txt?"}],
                       tools=("fs", "shell"), workspace="~/project")
    print(result.answer)

`run` (the loop, `ossy.agent.loop`) talks to a `ChatModel` (`ossy.agent.model`): `ClientModel`
is a model on an ossy server over HTTP (`ossy.client.agent.run_agent` reaches one by name);
`EngineModel` runs an `Engine` directly. Tools, their sandbox, approvals and audit are
`ossy.tools`; this package only drives the conversation.
"""

from ossy.agent.loop import (
    AgentResult,
    Event,
    TextDelta,
    Toolbox,
    ToolCalled,
    ToolReturned,
    TurnStarted,
    loop,
    parse_toolsets,
    run,
)
from ossy.agent.model import ChatModel, ClientModel, EngineModel, Reply, ToolCall
from ossy.tools.base import Policy

__all__ = ["AgentResult", "ChatModel", "ClientModel", "EngineModel", "Event", "Policy", "Reply", "TextDelta",
           "ToolCall", "ToolCalled", "ToolReturned", "Toolbox", "TurnStarted", "loop", "parse_toolsets", "run"]
