"""The OpenAI API (`/v1/chat/completions`, `/v1/completions`, `/v1/embeddings`, `/v1/models`) as a
translation layer.

Owns: translating OpenAI requests into `ossy.chat.ChatRequest` and the turn's chunks back into
OpenAI's JSON and SSE. The same `Turn` runs the native API (Ollama's middleware/openai.go idea:
translate, don't duplicate). `/v1/responses` is in `ossy.server.responses`.

Fixes over Ollama's layer (docs/reference/ollama-reference.md §2.5, §7 F): fields a request leaves out never
override the model's Modelfile PARAMETERs (ollama/ollama#17744); `max_completion_tokens`, `n`, `tool_choice`
(none/auto/required/named), `developer` messages are honoured; reasoning is returned as both
`reasoning_content` and `reasoning`; several tool calls stream as deltas with their `index`.
Extensions: `top_k`, `min_p`, `repeat_penalty` and an Ollama `options` object are read too.
`reasoning_effort` "none"/"minimal" give "low": gpt-oss cannot turn reasoning off; other values
("max", "xhigh") are a 400, as OpenAI answers them. `/v1/completions` `logprobs` is 0..5, as
OpenAI's. /v1/models adds `warnings` when manifests were skipped (`ossy.store.Listing`), and the
fields Anthropic's SDK reads (`type`, `display_name`, `created_at`, `has_more`, `first_id`,
`last_id`), so one route answers both SDKs.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import struct
import time
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
)
from ossy.chat.constraint import check_format
from ossy.chat.embed import embed
from ossy.chat.prompt import think_level
from ossy.errors import NotFoundError, OssyError
from ossy.format import now_rfc3339
from ossy.server.http import SSE, Body, StreamResponse, log, openai_error, parse_body, sse
from ossy.server.native import debug_render
from ossy.server.state import State

FINGERPRINT = "fp_ossy"
MAX_N = 16
MAX_COMPLETION_LOGPROBS = 5  # OpenAI's limit for /v1/completions


class Message(Body):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None
    reasoning_content: str | None = None
    reasoning: str | None = None
    thinking: str | None = None


class _Sampling(Body):
    model: str
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    max_tokens: int | None = None
    n: int = 1
    seed: int | None = None
    stop: str | list[str] | None = None
    temperature: float | None = None
    top_p: float | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    top_k: int | None = None
    min_p: float | None = None
    repeat_penalty: float | None = None
    options: dict[str, Any] | None = None


class ChatBody(_Sampling):
    messages: list[Message]
    max_completion_tokens: int | None = None
    response_format: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    reasoning_effort: str | None = None
    reasoning: dict[str, Any] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None


class CompletionBody(_Sampling):
    prompt: str | list[str]
    suffix: str | None = None
    echo: bool = False
    logprobs: int | None = None


# ---- translation -------------------------------------------------------------------------------

_OPTION_FIELDS = {"temperature": "temperature", "top_p": "top_p", "frequency_penalty": "frequency_penalty",
                  "presence_penalty": "presence_penalty", "seed": "seed", "stop": "stop", "top_k": "top_k",
                  "min_p": "min_p", "repeat_penalty": "repeat_penalty"}


class EmbeddingsBody(Body):
    model: str
    input: str | list[str] | list[int] | list[list[int]]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = None
    user: str | None = None


def options_of(body: _Sampling, max_tokens: int | None) -> dict:
    """The Ollama options a request sets; fields it leaves out are absent (the model's apply)."""
    options = check_options(body.options)
    for field, name in _OPTION_FIELDS.items():
        value = getattr(body, field)
        if value is not None:
            try:
                options.update(check_options({name: value}))
            except RequestError as e:
                raise RequestError(str(e).replace(f"options.{name}", field), param=field) from None
    if max_tokens is not None:
        if max_tokens < 1:
            raise RequestError("max_tokens must be at least 1", param="max_tokens")
        options["num_predict"] = max_tokens
    return options


def chat_messages(messages: list[Message]) -> list[dict]:
    out = []
    for i, m in enumerate(messages):
        if isinstance(m.content, list):
            for j, part in enumerate(m.content):
                if part.get("type") not in ("text", "input_text", "output_text"):
                    raise RequestError(f"messages.{i}.content.{j}: only text content is supported, not "
                                       f"{part.get('type')!r}", param=f"messages.{i}.content")
        d = m.model_dump(exclude_none=True)
        if isinstance(d.get("content"), list):
            d["content"] = "".join(str(p.get("text") or "") for p in d["content"])
        if m.role == "function":  # the deprecated form of a tool result
            d["role"] = "tool"
        out.append(d)
    return out


def tool_choice_of(choice, tools) -> str | None:
    names = [((t.get("function") or {}).get("name")) for t in tools or []]
    if choice is None or choice == "auto":
        return None
    if choice in ("none", "required"):
        if choice == "required" and not names:
            raise RequestError("tool_choice is 'required' but no tools were given", param="tool_choice")
        return choice
    name = (choice.get("function") or {}).get("name") if isinstance(choice, dict) else None
    if name is None and isinstance(choice, dict):
        name = choice.get("name")  # the Responses API's {"type": "function", "name": ...}
    if not name or name not in names:
        raise RequestError(f"tool_choice names a function that is not in tools: {name!r}", param="tool_choice")
    return name


def response_format_of(value, param: str = "response_format"):
    if not value or value.get("type") in (None, "text"):
        return None
    kind = value.get("type")
    if kind == "json_object":
        return "json"
    if kind == "json_schema":
        schema = (value.get("json_schema") or {}).get("schema") if "json_schema" in value else value.get("schema")
        if not isinstance(schema, dict):
            raise RequestError(f"{param}: json_schema needs a schema object", param=param)
        return check_format(schema, param=param)
    raise RequestError(f"{param}: unknown type {kind!r} (text, json_object or json_schema)", param=param)


EFFORTS = ("none", "minimal", "low", "medium", "high")


def effort_of(value, param: str = "reasoning_effort"):
    if value is None:
        return None
    if value not in EFFORTS:
        raise RequestError(f"{param} must be one of {', '.join(EFFORTS)}; not {value!r}", param=param)
    return think_level(value)


def usage(results) -> dict:
    prompt = results[0].prompt_tokens if results else 0
    completion = sum(r.completion_tokens for r in results)
    cached = results[0].stats.cached_tokens if results else 0
    reasoning = sum(r.reasoning_tokens for r in results)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cached},
            "completion_tokens_details": {"reasoning_tokens": reasoning}}


def finish_reason(result) -> str:
    return {"tool_calls": "tool_calls", "length": "length"}.get(result.done_reason, "stop")


def openai_logprobs(entries) -> list[dict]:
    return [{"token": e["token"], "logprob": e["logprob"], "bytes": e["bytes"],
             "top_logprobs": [{"token": t["token"], "logprob": t["logprob"], "bytes": t["bytes"]}
                              for t in e["top_logprobs"]]} for e in entries]


async def merged(turns):
    """(choice index, chunk) from several running turns, as they come; cancels all on exit."""
    if len(turns) == 1:
        try:
            async for chunk in turns[0].stream():
                yield 0, chunk
        finally:
            turns[0].cancel()
        return
    queue: asyncio.Queue = asyncio.Queue()
    done = object()

    async def pump(i, turn):
        try:
            async for chunk in turn.stream():
                await queue.put((i, chunk))
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            await queue.put((i, e))
        finally:
            await queue.put((i, done))

    tasks = [asyncio.create_task(pump(i, t)) for i, t in enumerate(turns)]
    try:
        remaining = len(turns)
        while remaining:
            i, item = await queue.get()
            if item is done:
                remaining -= 1
            elif isinstance(item, BaseException):
                raise item
            else:
                yield i, item
    finally:
        for task in tasks:
            task.cancel()
        for turn in turns:
            turn.cancel()


async def run_to_end(turns) -> None:
    """Run every turn to its end (their results are then complete); cancels all on an error."""
    async for _ in merged(turns):
        pass


async def start_turns(state: State, model, make, n: int):
    if not 1 <= n <= MAX_N:
        raise RequestError(f"n must be between 1 and {MAX_N}", param="n")
    turns = []
    try:
        for i in range(n):
            turns.append(await state.start(model, make(i)))
    except BaseException:
        for turn in turns:
            turn.cancel()
        raise
    return turns


# ---- routes ------------------------------------------------------------------------------------


def register(app: FastAPI, state: State) -> None:
    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        body = await parse_body(request, ChatBody)
        if not body.messages:
            raise RequestError("messages must hold at least one message", param="messages")
        model = await state.resolve(body.model)
        tools = check_tools(body.tools)
        base = dict(messages=chat_messages(body.messages), tools=tools,
                    tool_choice=tool_choice_of(body.tool_choice, tools),
                    think=effort_of(body.reasoning_effort or (body.reasoning or {}).get("effort")),
                    format=response_format_of(body.response_format),
                    options=options_of(body, body.max_completion_tokens or body.max_tokens),
                    logprobs=bool(body.logprobs), top_logprobs=body.top_logprobs or 0, overflow="error",
                    stream_tool_arguments=body.stream)
        if (body.model_extra or {}).get("_debug_render_only"):
            return await debug_render(state, model, ChatRequest(**base), body.model)
        turns = await start_turns(state, model, lambda i: ChatRequest(**base, seed_offset=i), body.n)
        ident, created = f"chatcmpl-{secrets.token_hex(12)}", int(time.time())
        if body.stream:
            return StreamResponse(_chat_events(turns, body, ident, created), SSE)
        await run_to_end(turns)
        choices = []
        for i, turn in enumerate(turns):
            r = turn.result
            message: dict[str, Any] = {"role": "assistant", "content": r.content or (None if r.tool_calls else ""),
                                       "reasoning_content": r.thinking or None, "reasoning": r.thinking or None,
                                       "refusal": None}
            if r.tool_calls:
                message["tool_calls"] = [c.openai() for c in r.tool_calls]
            choice = {"index": i, "message": message, "finish_reason": finish_reason(r),
                      "logprobs": {"content": openai_logprobs(r.logprobs)} if body.logprobs else None}
            if r.warnings:
                choice["warnings"] = r.warnings
            choices.append(choice)
        return JSONResponse({"id": ident, "object": "chat.completion", "created": created, "model": body.model,
                             "system_fingerprint": FINGERPRINT, "choices": choices,
                             "usage": usage([t.result for t in turns])})

    @app.post("/v1/completions")
    async def completions(request: Request):
        body = await parse_body(request, CompletionBody)
        if body.logprobs is not None and not 0 <= body.logprobs <= MAX_COMPLETION_LOGPROBS:
            raise RequestError(f"logprobs must be between 0 and {MAX_COMPLETION_LOGPROBS}", param="logprobs")
        if body.suffix:
            raise RequestError("suffix is not supported by gpt-oss", param="suffix")
        prompt = body.prompt
        if isinstance(prompt, list):
            if len(prompt) != 1:
                raise RequestError("prompt must be one string (or a list holding one)", param="prompt")
            prompt = prompt[0]
        model = await state.resolve(body.model)
        base = dict(messages=[{"role": "user", "content": prompt}], options=options_of(body, body.max_tokens),
                    logprobs=bool(body.logprobs), top_logprobs=body.logprobs or 0, overflow="error")
        turns = await start_turns(state, model, lambda i: ChatRequest(**base, seed_offset=i), body.n)
        ident, created = f"cmpl-{secrets.token_hex(12)}", int(time.time())

        def envelope(choices, **extra):
            return {"id": ident, "object": "text_completion", "created": created, "model": body.model,
                    "system_fingerprint": FINGERPRINT, "choices": choices, **extra}

        if body.stream:
            async def events():
                try:
                    async for i, chunk in merged(turns):
                        if isinstance(chunk, TextChunk) and chunk.field == "content":
                            yield sse(envelope([{"text": chunk.text, "index": i, "finish_reason": None,
                                                 "logprobs": None}]))
                    for i, turn in enumerate(turns):
                        yield sse(envelope([{"text": "", "index": i, "finish_reason": finish_reason(turn.result),
                                             "logprobs": None}]))
                    if (body.stream_options or {}).get("include_usage"):
                        yield sse(envelope([], usage=usage([t.result for t in turns])))
                    yield sse("[DONE]")
                except Exception as e:
                    yield _stream_error(e)
                finally:
                    for turn in turns:
                        turn.cancel()

            return StreamResponse(events(), SSE)
        await run_to_end(turns)
        return JSONResponse(envelope([{"text": t.result.content, "index": i, "finish_reason": finish_reason(t.result),
                                       "logprobs": None, "reasoning": t.result.thinking or None}
                                      for i, t in enumerate(turns)], usage=usage([t.result for t in turns])))

    @app.post("/v1/embeddings")
    async def embeddings(request: Request):
        body = await parse_body(request, EmbeddingsBody)
        model = await state.resolve(body.model)
        value = body.input
        inputs = [value] if isinstance(value, str) or (value and isinstance(value[0], int)) else list(value)
        result = await embed(state.engine, model, inputs, dimensions=body.dimensions)
        data = [{"object": "embedding", "index": i,
                 "embedding": base64.b64encode(struct.pack(f"<{len(v)}f", *v)).decode()
                 if body.encoding_format == "base64" else v} for i, v in enumerate(result.vectors)]
        return {"object": "list", "data": data, "model": body.model,
                "usage": {"prompt_tokens": result.prompt_tokens, "total_tokens": result.prompt_tokens}}

    @app.get("/v1/models")
    async def models():
        listing = await anyio.to_thread.run_sync(_library(state).listing)
        data = [_model(m) for m in listing.models]
        out: dict[str, Any] = {"object": "list", "data": data, "has_more": False,  # has_more..last_id: Anthropic's
                               "first_id": data[0]["id"] if data else None, "last_id": data[-1]["id"] if data else None}
        if listing.problems:
            out["warnings"] = listing.problems
        return out

    @app.get("/v1/models/{name:path}")
    async def model(name: str):
        found = await anyio.to_thread.run_sync(_library(state).find, name)
        if found is None:
            raise NotFoundError(f"model '{name}' not found")
        return _model(found)


def _library(state: State):
    if state.library is None:
        raise OssyError("this server has no model store")
    return state.library


def _model(m) -> dict:
    """A model as OpenAI's SDK reads it and, with `type`, `display_name` and `created_at`, as Anthropic's."""
    return {"id": str(m.name), "object": "model", "created": int(m.modified), "owned_by": m.name.namespace,
            "type": "model", "display_name": str(m.name), "created_at": now_rfc3339(m.modified)}


def _stream_error(e: BaseException) -> bytes:
    log.error("stream failed: %s", e, exc_info=not isinstance(e, OssyError))
    status = getattr(e, "http_status", 500) if isinstance(e, OssyError) else 500
    return sse(openai_error(e, status))


async def _chat_events(turns, body: ChatBody, ident: str, created: int):
    include_usage = bool((body.stream_options or {}).get("include_usage"))

    def chunk(i, delta, finish=None, logprobs=None):
        out = {"id": ident, "object": "chat.completion.chunk", "created": created, "model": body.model,
               "system_fingerprint": FINGERPRINT,
               "choices": [{"index": i, "delta": delta, "finish_reason": finish, "logprobs": logprobs}]}
        if include_usage:
            out["usage"] = None
        return out

    try:
        for i in range(len(turns)):
            yield sse(chunk(i, {"role": "assistant", "content": ""}))
        async for i, c in merged(turns):
            if isinstance(c, ToolCallStart):
                yield sse(chunk(i, {"tool_calls": [{"index": c.index, "id": c.id, "type": "function",
                                                    "function": {"name": c.name, "arguments": ""}}]}))
            elif isinstance(c, ToolCallArgs):
                delta = {"index": c.index, "function": {"arguments": c.text}}
                if c.error is not None:
                    delta["error"] = c.error
                yield sse(chunk(i, {"tool_calls": [delta]}))
            elif isinstance(c, ToolCallChunk):
                yield sse(chunk(i, {"tool_calls": [{"index": c.index, **c.openai()}]}))
            elif c.field == "thinking":
                yield sse(chunk(i, {"reasoning_content": c.text, "reasoning": c.text}))
            else:
                logprobs = {"content": openai_logprobs(c.logprobs)} if body.logprobs else None
                yield sse(chunk(i, {"content": c.text}, logprobs=logprobs))
        for i, turn in enumerate(turns):
            last = chunk(i, {}, finish_reason(turn.result))
            if turn.result.warnings:
                last["choices"][0]["warnings"] = turn.result.warnings
            yield sse(last)
        if include_usage:
            yield sse({"id": ident, "object": "chat.completion.chunk", "created": created, "model": body.model,
                       "system_fingerprint": FINGERPRINT, "choices": [], "usage": usage([t.result for t in turns])})
        yield sse("[DONE]")
    except Exception as e:
        yield _stream_error(e)
    finally:
        for turn in turns:
            turn.cancel()
