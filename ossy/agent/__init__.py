"""The agent: a model that calls ossy's tools until it answers.

    import ossy.agent
    result = ossy.agent.run("gpt-oss:20b", [{"role": "user", "content": "What is in notes.txt?"}],
                            tools=("fs", "shell"), workspace="~/project")
    print(result.answer)

`run` (the loop, `ossy.agent.loop`) talks to a `ChatModel` (`ossy.agent.model`): a model name
goes to the ossy server over HTTP (one is started in this process when none is running);
`EngineModel` runs an `Engine` directly. Tools, their sandbox, approvals and audit are
`ossy.tools`; this package only drives the conversation.
"""

from ossy.agent.loop import (AgentResult, Event, TextDelta, Toolbox, ToolCalled, ToolReturned, TurnStarted, loop,
                             parse_toolsets, run)
from ossy.agent.model import ChatModel, ClientModel, EngineModel, Reply, ToolCall
from ossy.tools.base import Policy

__all__ = ["AgentResult", "ChatModel", "ClientModel", "EngineModel", "Event", "Policy", "Reply", "TextDelta",
           "ToolCall", "ToolCalled", "ToolReturned", "Toolbox", "TurnStarted", "loop", "parse_toolsets", "run"]
