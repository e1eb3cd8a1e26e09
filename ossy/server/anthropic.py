"""Anthropic's Messages API (`POST /v1/messages`, `POST /v1/messages/count_tokens`) as a
translation layer, so Claude Code and the `anthropic` SDK work unchanged.

Owns: Anthropic request bodies -> `ossy.chat.ChatRequest` (system as a string or text blocks,
also `role: "system"` messages inside `messages` as Claude Code sends them; text, `tool_use`,
`tool_result` and `thinking` blocks; tools with `input_schema`; `tool_choice` auto/any/tool/none;
`stop_sequences`, `max_tokens`, temperature/top_p/top_k; `thinking` and `output_config.effort` as
gpt-oss's reasoning level), and the turn back as a Message or as Anthropic's SSE events
(message_start, content_block_start/delta/stop with text_delta, thinking_delta, signature_delta
and input_json_delta, message_delta with the stop reason and usage, message_stop; an error mid
stream is an `error` event). Errors have Anthropic's shape (`ossy.server.http.error_response`).
Does not own: prompts, harmony, the engine (the same `Turn` runs every API).

Choices: the analysis channel comes back as `thinking` blocks when the request asks for thinking
(`enabled` or `adaptive`), and is left out otherwise, as Anthropic does; gpt-oss reasons either
way. Thinking blocks sent back are given to the model as its reasoning; their `signature` is
neither checked nor made (it is ""). An invalid tool call (arguments not a JSON object) is a
`tool_use` whose input is `{"input": <the text as written>}`, or, when part of it was already
streamed, that part closed into an object: Anthropic's input is always an object. Server tools
without an `input_schema` (web search, code
execution) are left out with a warning; gpt-oss has none of them. Images are refused (text only).
"""

from __future__ import annotations

import json
import secrets
from typing import Any, Literal

import anyio
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from ossy.chat import (
    ChatRequest,
    RequestError,
    TextChunk,
    ToolCallArgs,
    ToolCallChunk,
    ToolCallStart,
    check_options,
    check_tools,
    json_closing,
)
from ossy.chat.turn import Turn
from ossy.errors import OssyError
from ossy.harmony.render import SEPARATOR
from ossy.server.http import SSE, Body, StreamResponse, anthropic_error, log, parse_body, sse
from ossy.server.state import State

STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "cancelled": "end_turn"}
EFFORTS = {"low": "low", "medium": "medium", "high": "high", "max": "high"}


class Message(Body):
    role: Literal["user", "assistant", "system"]
    content: str | list[dict[str, Any]]


class MessagesBody(Body):
    model: str
    messages: list[Message]
    max_tokens: int | None = None
    system: str | list[dict[str, Any]] | None = None
    stop_sequences: list[str] | None = None
    stream: bool = False
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: dict[str, Any] | None = None
    thinking: dict[str, Any] | None = None
    output_config: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None


# ---- translation -------------------------------------------------------------------------------
def _text(blocks: str | list[dict], where: str) -> str:
    if isinstance(blocks, str):
        return blocks
    texts = []
    for j, block in enumerate(blocks):
        if block.get("type") != "text":
            raise RequestError(f"{where}.{j}: expected a text block, not {block.get('type')!r}", param=where)
        texts.append(str(block.get("text") or ""))
    return SEPARATOR.join(texts)


def chat_messages(body: MessagesBody) -> list[dict]:
    """OpenAI-style messages (what `ChatRequest` takes) from Anthropic's system and messages."""
    out: list[dict] = []
    if body.system:
        out.append({"role": "system", "content": _text(body.system, "system")})
    for i, m in enumerate(body.messages):
        where = f"messages.{i}.content"
        if m.role == "system" or isinstance(m.content, str):
            out.append({"role": m.role, "content": _text(m.content, where)})
            continue
        if m.role == "assistant":
            out.append(_assistant(m.content, where))
            continue
        texts = []
        for j, block in enumerate(m.content):
            kind = block.get("type")
            if kind == "tool_result":
                content = block.get("content")
                text = _text(content, f"{where}.{j}.content") if content is not None else ""
                if block.get("is_error"):
                    text = f"error: {text}"
                out.append({"role": "tool", "tool_call_id": str(block.get("tool_use_id") or ""), "content": text})
            elif kind == "text":
                texts.append(str(block.get("text") or ""))
            elif kind in ("image", "document"):
                raise RequestError(f"{where}.{j}: {kind} blocks are not supported: gpt-oss reads text only",
                                   param=where)
            else:
                raise RequestError(f"{where}.{j}: unknown content block {kind!r}", param=where)
        if texts:
            out.append({"role": "user", "content": SEPARATOR.join(texts)})
    return out


def _assistant(blocks: list[dict], where: str) -> dict:
    message: dict[str, Any] = {"role": "assistant", "content": ""}
    texts, thinking, calls = [], [], []
    for j, block in enumerate(blocks):
        kind = block.get("type")
        if kind == "text":
            texts.append(str(block.get("text") or ""))
        elif kind == "thinking":
            thinking.append(str(block.get("thinking") or ""))
        elif kind == "redacted_thinking":
            continue
        elif kind == "tool_use":
            arguments = block.get("input")
            calls.append({"id": str(block.get("id") or ""), "type": "function",
                          "function": {"name": str(block.get("name") or ""),
                                       "arguments": json.dumps(arguments if arguments is not None else {})}})
        else:
            raise RequestError(f"{where}.{j}: unknown content block {kind!r}", param=where)
    message["content"] = "".join(texts)
    if thinking:
        message["thinking"] = "\n".join(thinking)
    if calls:
        message["tool_calls"] = calls
    return message


def tools_of(tools: list[dict] | None, warnings: list[dict]) -> list[dict] | None:
    out = []
    for t in tools or []:
        if "input_schema" not in t:
            warnings.append({"code": "unsupported_tool", "detail": f"tool {t.get('name')!r} of type "
                                                                   f"{t.get('type')!r} is not available; left out"})
            continue
        out.append({"type": "function", "function": {"name": t.get("name"), "description": t.get("description") or "",
                                                     "parameters": t["input_schema"]}})
    return check_tools(out) if out else None


def tool_choice_of(choice: dict | None, tools: list[dict] | None) -> str | None:
    kind = (choice or {}).get("type", "auto")
    if kind == "auto":
        return None
    if kind == "none":
        return "none"
    if kind == "any":
        if not tools:
            raise RequestError("tool_choice is 'any' but no tools were given", param="tool_choice")
        return "required"
    if kind == "tool":
        name = choice.get("name")
        if name not in [t["function"]["name"] for t in tools or []]:
            raise RequestError(f"tool_choice names a tool that is not in tools: {name!r}", param="tool_choice")
        return name
    raise RequestError(f"tool_choice type must be auto, any, tool or none; not {kind!r}", param="tool_choice")


def thinking_of(body: MessagesBody) -> tuple[str | None, bool]:
    """(gpt-oss's reasoning level or None for the model's default, whether thinking is returned)."""
    kind = (body.thinking or {}).get("type", "disabled")
    if kind not in ("enabled", "disabled", "adaptive"):
        raise RequestError(f"thinking.type must be enabled, disabled or adaptive; not {kind!r}", param="thinking.type")
    effort = (body.output_config or {}).get("effort")
    if effort is not None and effort not in EFFORTS:
        raise RequestError(f"output_config.effort must be one of {', '.join(EFFORTS)}", param="output_config.effort")
    level = EFFORTS.get(effort) if effort else None
    if level is None and kind == "enabled":
        budget = (body.thinking or {}).get("budget_tokens") or 0
        level = "low" if budget < 4096 else "medium" if budget < 16384 else "high"
    return level, kind != "disabled"


def options_of(body: MessagesBody) -> dict:
    if body.max_tokens is None or body.max_tokens < 1:
        raise RequestError("max_tokens: a positive number is required", param="max_tokens")
    options = {"num_predict": body.max_tokens}
    for field, name in (("temperature", "temperature"), ("top_p", "top_p"), ("top_k", "top_k"),
                        ("stop_sequences", "stop")):
        value = getattr(body, field)
        if value:
            options[name] = value
    return check_options(options)


def chat_request(body: MessagesBody) -> tuple[ChatRequest, bool]:
    if not body.messages:
        raise RequestError("messages must hold at least one message", param="messages")
    warnings: list[dict] = []
    tools = tools_of(body.tools, warnings)
    level, show_thinking = thinking_of(body)
    request = ChatRequest(messages=chat_messages(body), tools=tools, tool_choice=tool_choice_of(body.tool_choice, tools),
                          think=level, options=options_of(body), overflow="error", stream_tool_arguments=body.stream,
                          warnings=warnings)
    return request, show_thinking


def message_id() -> str:
    return f"msg_{secrets.token_hex(12)}"


def stop_reason(result) -> str:
    """Anthropic's stop reason (a stop string reads as end_turn: the turn does not say which one hit)."""
    return STOP_REASONS.get(result.done_reason, "end_turn")


def usage(result) -> dict:
    return {"input_tokens": result.prompt_tokens, "output_tokens": result.completion_tokens,
            "cache_creation_input_tokens": 0, "cache_read_input_tokens": result.stats.cached_tokens}


# ---- routes ------------------------------------------------------------------------------------
def register(app: FastAPI, state: State) -> None:
    @app.post("/v1/messages")
    async def messages(request: Request):
        body = await parse_body(request, MessagesBody)
        model = await state.resolve(body.model)
        req, show_thinking = chat_request(body)
        turn = await state.start(model, req)
        ident = message_id()
        if body.stream:
            return StreamResponse(_events(turn, body, ident, show_thinking), SSE)
        r = await turn.complete()
        content: list[dict] = []
        if show_thinking and r.thinking:
            content.append({"type": "thinking", "thinking": r.thinking, "signature": ""})
        if r.content:
            content.append({"type": "text", "text": r.content})
        for call in r.tool_calls:
            content.append({"type": "tool_use", "id": call.id, "name": call.name, "input": _input(call.arguments)})
        return JSONResponse({"id": ident, "type": "message", "role": "assistant", "model": body.model,
                             "content": content, "stop_reason": stop_reason(r), "stop_sequence": None,
                             "usage": usage(r)})

    @app.post("/v1/messages/count_tokens")
    async def count_tokens(request: Request):
        raw = await parse_body(request, Body)
        data = {"max_tokens": 1, **(raw.model_extra or {})}
        body = MessagesBody.model_validate(data)
        model = await state.resolve(body.model)
        req, _ = chat_request(body)
        prompt = await anyio.to_thread.run_sync(Turn(state.engine, model, req).build_prompt)
        return {"input_tokens": len(prompt.ids)}


def _input(arguments: str) -> Any:
    """A tool call's arguments as Anthropic's `input` object (a non-JSON text stays a string,
    under "input", rather than being dropped)."""
    try:
        value = json.loads(arguments)
    except ValueError:
        return {"input": arguments}
    return value if isinstance(value, dict) else {"input": value}


async def _events(turn: Turn, body: MessagesBody, ident: str, show_thinking: bool):
    """Anthropic's SSE events for one turn; each content block opened when its first piece comes."""
    def event(kind: str, **data) -> bytes:
        return sse({"type": kind, **data}, event=kind)

    r = turn.result
    index = -1
    open_kind: str | None = None
    streamed: dict[int, str] = {}  # a tool call's input_json sent so far, by call index

    def close() -> list[bytes]:
        nonlocal open_kind
        if open_kind is None:
            return []
        out = []
        if open_kind == "thinking":
            out.append(event("content_block_delta", index=index, delta={"type": "signature_delta", "signature": ""}))
        out.append(event("content_block_stop", index=index))
        open_kind = None
        return out

    def open_block(kind: str, block: dict) -> list[bytes]:
        nonlocal index, open_kind
        out = close()
        index += 1
        open_kind = kind
        out.append(event("content_block_start", index=index, content_block=block))
        return out

    try:
        yield event("message_start", message={"id": ident, "type": "message", "role": "assistant", "model": body.model,
                                              "content": [], "stop_reason": None, "stop_sequence": None,
                                              "usage": {"input_tokens": len(turn.prompt.ids), "output_tokens": 0}})
        async for chunk in turn.stream():
            out: list[bytes] = []
            if isinstance(chunk, TextChunk):
                if chunk.field == "thinking":
                    if not show_thinking or not chunk.text:
                        continue
                    if open_kind != "thinking":
                        out += open_block("thinking", {"type": "thinking", "thinking": "", "signature": ""})
                    out.append(event("content_block_delta", index=index,
                                     delta={"type": "thinking_delta", "thinking": chunk.text}))
                else:
                    if not chunk.text:
                        continue
                    if open_kind != "text":
                        out += open_block("text", {"type": "text", "text": ""})
                    out.append(event("content_block_delta", index=index, delta={"type": "text_delta", "text": chunk.text}))
            elif isinstance(chunk, ToolCallStart):
                out += open_block("tool_use", {"type": "tool_use", "id": chunk.id, "name": chunk.name, "input": {}})
            elif isinstance(chunk, ToolCallArgs):
                sent, text = streamed.get(chunk.index, ""), chunk.text
                if chunk.error is not None:  # an invalid call: its input must still be an object
                    text = json_closing(sent) if sent else json.dumps(_input(text))
                streamed[chunk.index] = sent + text
                out.append(event("content_block_delta", index=index,
                                 delta={"type": "input_json_delta", "partial_json": text}))
            elif isinstance(chunk, ToolCallChunk):
                out += open_block("tool_use", {"type": "tool_use", "id": chunk.id, "name": chunk.name, "input": {}})
                out.append(event("content_block_delta", index=index,
                                 delta={"type": "input_json_delta", "partial_json": chunk.arguments}))
            for line in out:
                yield line
        for line in close():
            yield line
        yield event("message_delta", delta={"stop_reason": stop_reason(r), "stop_sequence": None},
                    usage={"output_tokens": r.completion_tokens})
        yield event("message_stop")
    except Exception as e:  # after the 200: Anthropic's error event
        log.error("messages stream failed: %s", e, exc_info=not isinstance(e, OssyError))
        ours = isinstance(e, OssyError)
        yield event("error", **anthropic_error(e.http_status if ours else 500,
                                               str(e) if ours else "internal server error"))
    finally:
        turn.cancel()
