"""OpenAI's Responses API (`/v1/responses` and its stored responses) over the same `Turn`.

Owns: translating input items (messages, function_call, function_call_output, reasoning),
`instructions`, function tools, `reasoning.effort`, `text.format`, `max_output_tokens` into a
`ChatRequest`; building the response object and its output items (reasoning, message,
function_call); the named SSE events of a streamed response; and the stateful part: responses with
`store` not false are kept (`ossy.server.response_store`: files under OSSY_HOME, so they survive a
restart) for `previous_response_id`, `GET /v1/responses/{id}`, `.../input_items` and `DELETE`;
`.../cancel` says background responses are not supported. As OpenAI does, the instructions of a
previous response are not carried over.
Reasoning is returned in full as a `reasoning_text` content part (not a summary), streamed as the
spec's `response.reasoning.delta`/`.done` events. Every response and event is checked against the
Open Responses OpenAPI document in the tests (tests/fixtures/openresponses).
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from ossy.chat import ChatRequest, RequestError, TextChunk, ToolCallChunk, check_tools
from ossy.errors import NotFoundError, OssyError
from ossy.harmony.render import SEPARATOR
from ossy.server.http import SSE, Body, StreamResponse, log, parse_body, sse
from ossy.server.openai import effort_of, options_of, response_format_of, tool_choice_of
from ossy.server.state import State


class ResponsesBody(Body):
    model: str
    input: str | list[dict[str, Any]] = ""
    instructions: str | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    reasoning: dict[str, Any] | None = None
    max_output_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stream: bool = False
    previous_response_id: str | None = None
    store: bool = True
    text: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    top_logprobs: int | None = None
    options: dict[str, Any] | None = None

    # _Sampling's fields that options_of reads
    seed: int | None = None
    stop: str | list[str] | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    top_k: int | None = None
    min_p: float | None = None
    repeat_penalty: float | None = None


def _text(content, param: str) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    parts = []
    for part in content:
        if not isinstance(part, dict) or part.get("type") not in ("input_text", "output_text", "text", "reasoning_text",
                                                                   "summary_text"):
            kind = part.get("type") if isinstance(part, dict) else type(part).__name__
            raise RequestError(f"{param}: only text content is supported, not {kind!r}", param=param)
        parts.append(str(part.get("text") or ""))
    return "".join(parts)


def refuse_images(items, name: str, capabilities) -> None:
    """A 400 naming what the model can do when the input holds an image it cannot read."""
    if "vision" in capabilities or isinstance(items, str):
        return
    for i, item in enumerate(items or []):
        for j, part in enumerate(item.get("content") or [] if isinstance(item.get("content"), list) else []):
            if isinstance(part, dict) and part.get("type") in ("input_image", "input_file"):
                raise RequestError(f"input.{i}.content.{j}: model '{name}' cannot read {part['type']} (it has no "
                                   f"vision capability; its capabilities are {', '.join(capabilities)})",
                                   param=f"input.{i}.content.{j}")


def input_messages(items) -> list[dict]:
    """Responses input items -> OpenAI chat messages. Consecutive assistant-side items (reasoning,
    an assistant message, function calls) make one assistant message, as harmony renders them."""
    if isinstance(items, str):
        return [{"role": "user", "content": items}] if items else []
    out: list[dict] = []
    current: dict | None = None  # the assistant message being assembled

    def assistant() -> dict:
        nonlocal current
        if current is None:
            current = {"role": "assistant", "content": ""}
            out.append(current)
        return current

    for i, item in enumerate(items):
        param = f"input.{i}"
        kind = item.get("type") or ("message" if "role" in item else None)
        if kind == "message":
            role = item.get("role")
            if role not in ("user", "assistant", "system", "developer"):
                raise RequestError(f"{param}.role: unknown role {role!r}", param=f"{param}.role")
            text = _text(item.get("content"), f"{param}.content")
            if role == "assistant":
                msg = assistant()
                msg["content"] = (msg["content"] + SEPARATOR + text) if msg["content"] else text
                continue
            current = None
            out.append({"role": role, "content": text})
        elif kind == "reasoning":
            text = _text(item.get("content"), f"{param}.content") or \
                SEPARATOR.join(s.get("text", "") for s in item.get("summary") or [])
            if current is not None and (current.get("content") or current.get("tool_calls")):
                current = None
            msg = assistant()
            msg["reasoning_content"] = (msg.get("reasoning_content", "") + SEPARATOR + text).strip("\n") \
                if msg.get("reasoning_content") else text
        elif kind == "function_call":
            if not item.get("name") or not item.get("call_id"):
                raise RequestError(f"{param}: a function_call needs name and call_id", param=param)
            arguments = item.get("arguments")
            if not isinstance(arguments, str):
                arguments = json.dumps(arguments if arguments is not None else {})
            assistant().setdefault("tool_calls", []).append(
                {"id": item["call_id"], "type": "function", "function": {"name": item["name"], "arguments": arguments}})
        elif kind == "function_call_output":
            current = None
            output = item.get("output")
            out.append({"role": "tool", "tool_call_id": item.get("call_id"),
                        "content": output if isinstance(output, str) else _text(output, f"{param}.output")})
        else:
            raise RequestError(f"{param}: unsupported input item type {kind!r}", param=f"{param}.type")
    return out


def function_tools(tools, warnings: list[dict]) -> list[dict]:
    """The request's function tools, those inside `namespace` tools (Codex groups some so)
    included; other kinds (web_search, file_search...) are left out with a warning: gpt-oss has
    only the functions a client runs."""
    out = []
    for i, tool in enumerate(tools or []):
        kind = tool.get("type")
        if kind == "namespace":
            out += function_tools(tool.get("tools") or [], warnings)
        elif kind == "function":
            if not tool.get("name"):
                raise RequestError(f"tools.{i}: a function tool needs a name", param=f"tools.{i}")
            out.append(tool)
        else:
            warnings.append({"code": "unsupported_tool", "detail": f"tools.{i} of type {kind!r} is not available; "
                                                                   f"left out (only function tools are)"})
    return out


def chat_tools(tools: list[dict]) -> list[dict] | None:
    if not tools:
        return None
    return check_tools([{"type": "function", "function": {"name": t["name"], "description": t.get("description") or "",
                                                          "parameters": t.get("parameters")}} for t in tools])


def echoed_tools(tools) -> list[dict]:
    """The request's function tools as a response echoes them: every field the spec requires."""
    return [{"type": "function", "name": t.get("name"), "description": t.get("description"),
             "parameters": t.get("parameters"), "strict": bool(t.get("strict", False))} for t in tools or []]


def _id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(16)}"


class Output:
    """Builds the output items of one response, from the turn's chunks, and the stream events."""

    def __init__(self) -> None:
        self.items: list[dict] = []
        self.open: dict | None = None

    def add(self, chunk) -> list[tuple[str, dict]]:
        """Stream events for `chunk` (a list of (type, payload))."""
        events = []
        kind = "function_call" if isinstance(chunk, ToolCallChunk) else \
            ("reasoning" if chunk.field == "thinking" else "message")
        if self.open is not None and (self.open["type"] != kind or kind == "function_call"):
            events += self.close()
        if kind == "function_call":
            item = {"type": "function_call", "id": _id("fc"), "call_id": chunk.id, "name": chunk.name,
                    "arguments": "", "status": "in_progress"}
            if chunk.error is not None:  # an invalid call: arguments as written, and why
                item["error"] = chunk.error
            events += self._open(item)
            events.append(("response.function_call_arguments.delta", {"delta": chunk.arguments}))
            item["arguments"] = chunk.arguments
            return events + self.close()
        if self.open is None:
            if kind == "reasoning":
                events += self._open({"type": "reasoning", "id": _id("rs"), "summary": [],
                                      "content": [{"type": "reasoning_text", "text": ""}], "status": "in_progress"})
            else:
                part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
                events += self._open({"type": "message", "id": _id("msg"), "status": "in_progress",
                                      "role": "assistant", "content": [part]})
                events.append(("response.content_part.added", {"content_index": 0, "part": dict(part)}))
        self.open["content"][0]["text"] += chunk.text
        delta = "response.reasoning.delta" if kind == "reasoning" else "response.output_text.delta"
        payload = {"content_index": 0, "delta": chunk.text}
        if kind == "message":
            payload["logprobs"] = []
        events.append((delta, payload))
        return events

    def _open(self, item: dict) -> list[tuple[str, dict]]:
        self.open = item
        self.items.append(item)
        return [("response.output_item.added", {"item": dict(item, content=[]) if "content" in item else dict(item)})]

    def close(self) -> list[tuple[str, dict]]:
        item, self.open = self.open, None
        if item is None:
            return []
        item["status"] = "completed"
        events = []
        if item["type"] == "function_call":
            events.append(("response.function_call_arguments.done", {"arguments": item["arguments"]}))
        elif item["type"] == "reasoning":
            events.append(("response.reasoning.done", {"content_index": 0, "text": item["content"][0]["text"]}))
        else:
            part = item["content"][0]
            events.append(("response.output_text.done", {"content_index": 0, "text": part["text"], "logprobs": []}))
            events.append(("response.content_part.done", {"content_index": 0, "part": part}))
        events.append(("response.output_item.done", {"item": item}))
        return events


def register(app: FastAPI, state: State) -> None:
    @app.post("/v1/responses")
    async def create(request: Request):
        body = await parse_body(request, ResponsesBody)
        history: list[dict] = []
        if body.previous_response_id:
            record = state.responses.get(body.previous_response_id)
            if record is None:
                error = NotFoundError(f"previous response '{body.previous_response_id}' not found")
                error.param, error.code = "previous_response_id", "not_found"
                raise error
            history = list(record["messages"])
        model = await state.resolve(body.model)
        warnings: list[dict] = []
        functions = function_tools(body.tools, warnings)
        tools = chat_tools(functions)
        refuse_images(body.input, body.model, model.capabilities)
        new = input_messages(body.input)
        messages = history + new
        instructions = [{"role": "developer", "content": body.instructions}] if body.instructions else []
        fmt = response_format_of((body.text or {}).get("format"), param="text.format")
        request_ = ChatRequest(messages=instructions + messages, tools=tools,
                               tool_choice=tool_choice_of(body.tool_choice, tools),
                               think=effort_of((body.reasoning or {}).get("effort"), param="reasoning.effort"),
                               format=fmt, options=options_of(body, body.max_output_tokens),
                               top_logprobs=body.top_logprobs or 0, overflow="error", warnings=warnings)
        turn = await state.start(model, request_)
        used = turn.options.sampling  # the values the engine samples with (request < Modelfile < defaults)
        extra = body.model_extra or {}
        response = {"id": _id("resp"), "object": "response", "created_at": int(time.time()), "completed_at": None,
                    "status": "in_progress", "model": body.model, "output": [], "instructions": body.instructions,
                    "tools": echoed_tools(functions), "tool_choice": body.tool_choice or "auto",
                    "parallel_tool_calls": True, "truncation": "disabled", "temperature": used.temperature,
                    "top_p": used.top_p, "presence_penalty": used.presence_penalty,
                    "frequency_penalty": used.frequency_penalty, "top_logprobs": used.top_logprobs,
                    "max_output_tokens": body.max_output_tokens, "max_tool_calls": None,
                    "previous_response_id": body.previous_response_id,
                    "reasoning": {"effort": (body.reasoning or {}).get("effort"), "summary": None},
                    "text": {"format": (body.text or {}).get("format") or {"type": "text"}}, "error": None,
                    "incomplete_details": None, "metadata": body.metadata or {}, "store": body.store,
                    "background": False, "service_tier": "default", "user": extra.get("user"),
                    "safety_identifier": extra.get("safety_identifier"),
                    "prompt_cache_key": extra.get("prompt_cache_key"), "usage": None}
        output = Output()

        def finish() -> dict:
            r = turn.result
            response["output"] = output.items
            response["status"] = "incomplete" if r.done_reason == "length" else "completed"
            response["completed_at"] = int(time.time())
            if r.done_reason == "length":
                response["incomplete_details"] = {"reason": "max_output_tokens"}
            response["usage"] = {"input_tokens": r.prompt_tokens,
                                 "input_tokens_details": {"cached_tokens": r.stats.cached_tokens},
                                 "output_tokens": r.completion_tokens,
                                 "output_tokens_details": {"reasoning_tokens": r.reasoning_tokens},
                                 "total_tokens": r.prompt_tokens + r.completion_tokens}
            if r.warnings:
                response["warnings"] = r.warnings
            if body.store:
                reply = {"role": "assistant", "content": r.content}
                if r.thinking:
                    reply["reasoning_content"] = r.thinking
                if r.tool_calls:
                    reply["tool_calls"] = [c.openai() for c in r.tool_calls]
                state.remember(response["id"], {"messages": messages + [reply], "response": response,
                                                "input_items": input_items(body.input)})
            return response

        if body.stream:
            async def events():
                seq = 0
                indexes: dict[str, int] = {}

                def event(kind: str, payload: dict) -> bytes:
                    nonlocal seq
                    item = payload.get("item")
                    if item is not None:
                        indexes.setdefault(item["id"], len(indexes))
                    item_id = item["id"] if item is not None else (output.open or output.items[-1])["id"]
                    data = {"type": kind, "sequence_number": seq, **payload}
                    if not kind.startswith("response.output_item"):
                        data["item_id"] = item_id
                    data["output_index"] = indexes.get(item_id, 0)
                    seq += 1
                    return sse(data, event=kind)

                def whole(kind: str) -> bytes:
                    nonlocal seq
                    data = {"type": kind, "sequence_number": seq, "response": json.loads(json.dumps(response))}
                    seq += 1
                    return sse(data, event=kind)

                try:
                    yield whole("response.created")
                    yield whole("response.in_progress")
                    async for chunk in turn.stream():
                        if isinstance(chunk, TextChunk) and not chunk.text:
                            continue
                        for kind, payload in output.add(chunk):
                            yield event(kind, payload)
                    for kind, payload in output.close():
                        yield event(kind, payload)
                    final = finish()
                    yield whole("response.incomplete" if final["status"] == "incomplete" else "response.completed")
                except Exception as e:  # after the 200: an `error` event, then `response.failed`
                    log.error("responses stream failed: %s", e, exc_info=not isinstance(e, OssyError))
                    message = str(e) if isinstance(e, OssyError) else "internal server error"
                    code = getattr(e, "code", None) or ("server_error" if not isinstance(e, OssyError) else "invalid_request")
                    error = {"type": "server_error" if not isinstance(e, OssyError) else "invalid_request_error",
                             "code": code, "message": message, "param": getattr(e, "param", None)}
                    # the spec nests the error; the openai SDK's ResponseErrorEvent reads it flat: both
                    yield sse({"type": "error", "sequence_number": seq, "error": error, "code": code,
                               "message": message, "param": error["param"]}, event="error")
                    seq += 1
                    response.update(status="failed", error={"code": code, "message": message})
                    yield whole("response.failed")
                finally:
                    turn.cancel()

            return StreamResponse(events(), SSE)
        await turn.complete(lambda chunk: None if isinstance(chunk, TextChunk) and not chunk.text else output.add(chunk))
        output.close()
        return JSONResponse(finish())

    def stored(response_id: str) -> dict:
        record = state.responses.get(response_id)
        if record is None:
            error = NotFoundError(f"response '{response_id}' not found")
            error.code = "not_found"
            raise error
        return record

    @app.get("/v1/responses/{response_id}")
    async def get(response_id: str):
        return (await anyio.to_thread.run_sync(stored, response_id))["response"]

    @app.get("/v1/responses/{response_id}/input_items")
    async def get_input_items(response_id: str):
        items = (await anyio.to_thread.run_sync(stored, response_id)).get("input_items", [])
        return {"object": "list", "data": items, "first_id": items[0]["id"] if items else None,
                "last_id": items[-1]["id"] if items else None, "has_more": False}

    @app.delete("/v1/responses/{response_id}")
    async def delete(response_id: str):
        await anyio.to_thread.run_sync(stored, response_id)
        await anyio.to_thread.run_sync(state.responses.delete, response_id)
        return {"id": response_id, "object": "response", "deleted": True}

    @app.post("/v1/responses/{response_id}/cancel")
    async def cancel(response_id: str):
        await anyio.to_thread.run_sync(stored, response_id)
        raise RequestError("only background responses can be cancelled, and this server runs none "
                           "(background is not supported)", param="response_id")


def input_items(value) -> list[dict]:
    """The request's input as items with ids, as `GET /v1/responses/{id}/input_items` lists them."""
    items = [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": value}]}] \
        if isinstance(value, str) else [dict(item) for item in value]
    for item in items:
        item.setdefault("type", "message")
        item.setdefault("id", _id("msg" if item["type"] == "message" else "item"))
    return items
