"""The agent loop: the model asks for tools, ossy runs them and feeds the results back, until the
model answers or the step limit is reached.

Owns: `Toolbox` (a conversation's registry, `ToolContext` and `Executor`), `run` (the loop),
`AgentResult`, the events streamed to `on_event`, and `parse_toolsets`. Does not own: checking,
approving, running and auditing a call (`ossy.tools.executor`: `Executor.call` never raises, so
a bad call is a result the model reads, never a crash), prompts and parsing (`ossy.chat`), or
printing (`ossy.cli.repl`).

One step: the model gets the conversation and the tools (OpenAI function tools) and replies;
the reply joins the conversation as an assistant message (its `thinking` kept, `content`,
`tool_calls`); each call goes to `Executor.call(name, arguments)` under the name the model
wrote (`linux.grep`, `fs.read_file`, `functions.read_file` resolve in the registry) and its
result joins as a `tool` message (`tool_call_id`, `name`, `content` = `ToolResult.text()`).
A reply without tool calls is the answer. An invalid call (arguments not a JSON object) comes
from the chat layer as a call marked with its `error` and goes to the executor like any other;
the model reads its "invalid arguments" result and can try again. A call of a name that is not
one of the offered tools' (`linux.grep`, `nope`) reaches a client as content (SDKs fail on a name
they do not know), with an `unexpected_tool_call` warning holding the call; the loop takes the
call from the warning and the text off the content, so the executor resolves the name or the
model reads "unknown tool".

Chain of thought (docs/reference/tools-security.md §0 item 3): the analysis of the running user turn stays in the
prompt across its tool calls; the analysis of earlier user turns is left out of the prompt (it
stays in `AgentResult.messages`).

`max_steps` counts rounds of tool calls. When the model still asks for tools after that many,
those calls are not run: each gets a "not run" result (so the conversation stays well formed)
and the loop stops with `stopped == "step_limit"`.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Union

from ossy.agent.model import ChatModel, Reply, ToolCall
from ossy.harmony.render import REASONING_KEYS, SEPARATOR
from ossy.tools.base import Policy, ToolContext, ToolResult
from ossy.tools.executor import Executor
from ossy.tools.registry import Registry

NO_TOOLSETS = ("", "none", "off")


# ---- events --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TurnStarted:
    turn: int  # 1, 2, ...: the model's turns in this run


@dataclass(frozen=True)
class TextDelta:
    field: str  # "thinking" | "content"
    text: str


@dataclass(frozen=True)
class ToolCalled:
    call: ToolCall  # name as the model wrote it; arguments as text


@dataclass(frozen=True)
class ToolReturned:
    call: ToolCall
    result: ToolResult


Event = Union[TurnStarted, TextDelta, ToolCalled, ToolReturned]


@dataclass
class AgentResult:
    messages: list[dict]  # the conversation given, plus the assistant and tool messages added
    answer: str  # the content of the last reply
    stopped: str  # "answer" | "length" (the answer was cut by num_predict) | "step_limit"
    steps: int = 0  # rounds of tool calls that ran
    turns: int = 0  # model replies
    calls: list[tuple[ToolCall, ToolResult]] = field(default_factory=list)
    last: Reply | None = None  # the last reply (stats, warnings)


# ---- the tools of one conversation ---------------------------------------------------------------


def parse_toolsets(text: str | Iterable[str] | None) -> tuple[str, ...]:
    """"fs,shell" / ["fs", "shell"] -> ("fs", "shell"); "none", "off" or "" -> ()."""
    if text is None:
        return ()
    words = text.split(",") if isinstance(text, str) else list(text)
    names = [w.strip().lower() for w in words if w.strip()]
    if len(names) == 1 and names[0] in NO_TOOLSETS:
        return ()
    return tuple(dict.fromkeys(names))


@dataclass
class Toolbox:
    """What one conversation's tool calls go through. The context (workspace, policy, the python
    kernel and browser pages in `state`) lives as long as the toolbox; `close()` ends it unless
    it was passed in by the caller."""

    registry: Registry
    context: ToolContext
    executor: Executor
    owns_context: bool = True

    @classmethod
    def open(cls, tools=("fs",), *, home: Path | None = None, search_url: str = "", policy: Policy | None = None,
             workspace: str | Path = ".", approver=None, audit=None, conversation: str | None = None,
             context: ToolContext | None = None) -> "Toolbox":
        """A toolbox over `context`, or over a new one in `workspace` with the ossy home `home`."""
        registry = tools if isinstance(tools, Registry) else Registry.from_toolsets(parse_toolsets(tools))
        owns = context is None
        if context is None:
            if home is None:
                raise TypeError("Toolbox.open needs the ossy home (home=...) or a context")
            context = ToolContext(Path(workspace), policy or Policy(), home=Path(home), search_url=search_url,
                                  conversation=conversation or f"agent-{secrets.token_hex(6)}")
        return cls(registry, context, Executor(registry, context, approver=approver, audit=audit), owns)

    def openai_tools(self) -> list[dict]:
        return list(self.registry.openai_tools())

    def call(self, name: str, arguments: str) -> ToolResult:
        return self.executor.call(name, arguments)

    def close(self) -> None:
        if self.owns_context:
            self.context.close()

    def __enter__(self) -> "Toolbox":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ---- the loop ------------------------------------------------------------------------------------


def run(model: ChatModel, messages: list[dict], *, tools=("fs",), home: Path | None = None, search_url: str = "",
        policy: Policy | None = None, workspace: str | Path = ".", approver=None, audit=None, max_steps: int = 8,
        think=None, options: dict | None = None, on_event: Callable[[Event], None] | None = None,
        conversation: str | None = None, context: ToolContext | None = None) -> AgentResult:
    """Run `messages` to an answer with `tools` (toolset names, a `Registry`, or an open
    `Toolbox`, which is then neither rebuilt nor closed), acting in `workspace` with the ossy
    home `home` (`Toolbox.open`). A model by name, on a server: `ossy.client.agent.run_agent`."""
    if isinstance(tools, Toolbox):
        return loop(model, tools, messages, max_steps=max_steps, think=think, options=options, on_event=on_event)
    with Toolbox.open(tools, home=home, search_url=search_url, policy=policy, workspace=workspace, approver=approver,
                      audit=audit, conversation=conversation, context=context) as toolbox:
        return loop(model, toolbox, messages, max_steps=max_steps, think=think, options=options, on_event=on_event)


def loop(model: ChatModel, toolbox: Toolbox, messages: list[dict], *, max_steps: int = 8, think=None,
         options: dict | None = None, on_event: Callable[[Event], None] | None = None) -> AgentResult:
    """The loop itself, over an open toolbox (see `run`)."""
    emit = on_event or (lambda event: None)
    offered = toolbox.openai_tools() or None
    result = AgentResult(list(messages), "", "answer")
    while True:
        result.turns += 1
        emit(TurnStarted(result.turns))
        reply = model.turn(without_old_analysis(result.messages), offered, think=think, options=options,
                           on_text=lambda name, text: emit(TextDelta(name, text)))
        calls = _calls(reply) if offered else []
        result.messages.append(assistant_message(reply, calls))
        result.answer, result.last = reply.content, reply
        if not calls:
            result.stopped = "length" if reply.done_reason == "length" else "answer"
            return result
        over = result.steps >= max_steps
        for call in calls:
            emit(ToolCalled(call))
            outcome = _not_run(max_steps) if over else toolbox.call(call.name, call.arguments)
            emit(ToolReturned(call, outcome))
            result.calls.append((call, outcome))
            result.messages.append(tool_message(call, outcome))
        if over:
            result.stopped = "step_limit"
            return result
        result.steps += 1


def _calls(reply: Reply) -> list[ToolCall]:
    """The reply's tool calls, plus those of names not offered, which the chat layer returned as
    content (`unexpected_tool_call` warnings hold them); their text leaves the content."""
    unexpected = [w for w in reply.warnings if w.get("code") == "unexpected_tool_call" and w.get("tool")]
    for warning in reversed(unexpected):  # their texts end the content, in order
        reply.content = reply.content.removesuffix(str(warning.get("arguments") or "")).removesuffix(SEPARATOR)
    return list(reply.tool_calls) + [ToolCall(f"call_{secrets.token_hex(6)}", w["tool"],
                                              str(w.get("arguments") or "")) for w in unexpected]


def _not_run(max_steps: int) -> ToolResult:
    return ToolResult(status="denied", exit_code=1,
                      error=f"not run: the step limit was reached (max_steps {max_steps})")


def assistant_message(reply: Reply, calls: list[ToolCall]) -> dict:
    message: dict = {"role": "assistant", "content": reply.content}
    if reply.thinking:
        message["thinking"] = reply.thinking
    if calls:
        message["tool_calls"] = [call.openai() for call in calls]
    return message


def tool_message(call: ToolCall, result: ToolResult) -> dict:
    return {"role": "tool", "tool_call_id": call.id, "name": call.name, "content": result.text()}


def without_old_analysis(messages: list[dict]) -> list[dict]:
    """`messages` with the reasoning of assistant messages before the last user message left out."""
    last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1)
    return [{k: v for k, v in m.items() if k not in REASONING_KEYS}
            if i < last_user and m.get("role") == "assistant" else m for i, m in enumerate(messages)]
