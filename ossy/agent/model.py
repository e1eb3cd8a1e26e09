"""What the agent loop talks to: one assistant turn of a chat model, behind a small protocol.

Owns: `ChatModel` (messages + OpenAI tools in, streamed text out through a callback, a `Reply`
back), `Reply`, and two adapters: `ClientModel` (the native `/api/chat` of an ossy or Ollama
server through `ossy.client.Client`) and `EngineModel` (an `Engine` and a `ResolvedModel`
directly, through `ossy.chat.turn`: for tests and for embedding ossy without HTTP). Does not
own: the loop (`ossy.agent.loop`), prompts or parsing (`ossy.chat`).

Messages are OpenAI-style dicts as `ossy.chat.prompt` reads them (assistant `thinking`,
`tool_calls[].function.arguments` as a JSON string, `tool` messages with `tool_call_id` and
`name`). Tool-call arguments come back as text exactly as the model wrote them where the
transport allows: a JSON object for function tools, raw code for `python`.

This module (and `ossy.agent`) imports nothing of `ossy.chat` or `ossy.engine` until an
`EngineModel` runs: those load torch, which a client talking HTTP does not need. That is why
`ToolCall` is its own small type rather than `ossy.chat.turn.ToolCallChunk`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Callable, Protocol

from ossy.harmony.typescript import arguments_text

OnText = Callable[[str, str], None]  # (field: "thinking" | "content", text)


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str  # as the model wrote it ("read_file", "linux.grep", "browser.open")
    arguments: str  # a JSON object as text (raw code for `python`), as generated
    error: str | None = None  # an invalid call (the chat layer's ToolCallChunk.error): why

    def openai(self) -> dict:
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": self.arguments}}


@dataclass
class Reply:
    """One finished assistant turn."""

    thinking: str = ""
    content: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    done_reason: str = "stop"  # "stop" | "length" | "tool_calls" | "cancelled"
    warnings: list[dict] = field(default_factory=list)  # [{code, detail}] from the chat layer
    stats: dict = field(default_factory=dict)  # the server's final chunk (timings); an engine turn: its token counts


class ChatModel(Protocol):
    def turn(self, messages: list[dict], tools: list[dict] | None, *, think=None, options: dict | None = None,
             on_text: OnText | None = None) -> Reply: ...


class ClientModel:
    """A model served over HTTP: POST /api/chat, streamed."""

    def __init__(self, client, name: str, *, keep_alive: str | float | None = None) -> None:
        self.client, self.name, self.keep_alive = client, name, keep_alive

    def turn(self, messages: list[dict], tools: list[dict] | None, *, think=None, options: dict | None = None,
             on_text: OnText | None = None) -> Reply:
        reply = Reply()
        stream = self.client.chat(self.name, [native_message(m) for m in messages], tools=tools or None,
                                  think=think, options=options or None, keep_alive=self.keep_alive)
        try:
            for chunk in stream:
                message = chunk.get("message") or {}
                for name in ("thinking", "content"):
                    text = message.get(name) or ""
                    if text:
                        setattr(reply, name, getattr(reply, name) + text)
                        if on_text is not None:
                            on_text(name, text)
                for call in message.get("tool_calls") or []:
                    reply.tool_calls.append(_tool_call(call, len(reply.tool_calls)))
                if chunk.get("done"):
                    reply.stats = chunk
                    reply.warnings = list(chunk.get("warnings") or [])
                    reply.done_reason = chunk.get("done_reason") or "stop"
        finally:  # early exit (Ctrl-C): closing the connection cancels the generation
            close = getattr(stream, "close", None)
            if close is not None:
                close()
        if reply.tool_calls:
            reply.done_reason = "tool_calls"
        return reply


def native_message(message: dict) -> dict:
    """An OpenAI-style message as the native API reads it (a tool result's name is `tool_name`)."""
    if message.get("role") != "tool" or "name" not in message:
        return message
    out = {k: v for k, v in message.items() if k != "name"}
    out["tool_name"] = message["name"]
    return out


def _tool_call(call: dict, index: int) -> ToolCall:
    function = call.get("function") or {}
    name = str(function.get("name") or "")
    return ToolCall(str(call.get("id") or f"call_{index}"), name, arguments_text(name, function.get("arguments")),
                    call.get("error"))


class EngineModel:
    """A model run by an `Engine` in this process (`ossy.chat.turn`), on an event loop of its
    own: `with EngineModel(engine, resolved) as model: ossy.agent.run(model, ...)`."""

    def __init__(self, engine, model) -> None:
        self.engine, self.model = engine, model
        self._loop = asyncio.new_event_loop()

    def turn(self, messages: list[dict], tools: list[dict] | None, *, think=None, options: dict | None = None,
             on_text: OnText | None = None) -> Reply:
        from ossy.chat.turn import ChatRequest  # lazy: torch, which ClientModel's users never need

        request = ChatRequest(messages=list(messages), tools=tools or None, think=think, options=dict(options or {}))
        return self._loop.run_until_complete(self._turn(request, on_text))

    async def _turn(self, request, on_text: OnText | None) -> Reply:
        from ossy.chat.turn import Turn  # lazy: torch, which ClientModel's users never need

        turn = Turn(self.engine, self.model, request)
        await turn.start()
        return await reply_of(turn, on_text)

    def close(self) -> None:
        self._loop.run_until_complete(self._loop.shutdown_asyncgens())
        self._loop.close()

    def __enter__(self) -> "EngineModel":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


async def reply_of(turn, on_text: OnText | None = None) -> Reply:
    """Stream a started `ossy.chat.turn.Turn` to its end (text to `on_text`) and return its
    `Reply`; the turn is cancelled if this is (a client gone)."""
    from ossy.chat.turn import TextChunk  # lazy: ossy.chat loads torch, which ClientModel's users never need

    def text(chunk) -> None:
        if isinstance(chunk, TextChunk) and on_text is not None:
            on_text(chunk.field, chunk.text)

    r = await turn.complete(text)
    calls = [ToolCall(c.id, c.name, c.arguments, c.error) for c in r.tool_calls]
    stats = {"prompt_eval_count": r.prompt_tokens, "eval_count": r.completion_tokens}
    if r.stats.experts is not None:
        stats["experts"] = r.stats.experts  # an `ossy.engine.protocol.ExpertCounts`
    return Reply(r.thinking, r.content, calls, r.done_reason, list(r.warnings), stats)
