"""Ollama's native API (`/api/...`): request and response shapes, NDJSON streaming, stats.

Owns: the /api routes and their JSON (docs/reference/ollama-reference.md §2): chat, generate, embed, embeddings,
tags, show, create, pull, push, blobs, copy, delete, ps, version (`GET /` is `ossy.server.page`'s). Requests are translated into `ossy.chat.ChatRequest`
and run by the same `Turn` the OpenAI layer uses; this module only shapes the output.

Differences from Ollama, on purpose:
  * `think: false` gives reasoning "low": gpt-oss cannot stop reasoning (its trace is returned);
  * an unknown key in `options` is ignored as in Ollama, but the last chunk's `warnings` says so;
    a wrong type is a 400 naming the field;
  * tool calls stream as soon as each is complete (one chunk each), not only in the last chunk;
    an invalid call (arguments not a JSON object) keeps its arguments as the
    text the model wrote and adds `error` (Ollama fails the request instead; its Go and Python
    clients expect an object there and reject such a call), never a 500;
  * the last chunk may carry `warnings` ([{code, detail}]: truncated prompt, repaired output...);
  * `truncate: false` makes a prompt longer than num_ctx a 400 instead of dropping old messages;
  * /api/show (`ossy.store.show`) adds `toolsets` when the Modelfile names some (`TOOLS`), and
    with `verbose` `parameter_counts`, `memory` (the engine's estimate at the num_ctx a request
    gets), `compute` (which kernels run it) and `weight_files`; `gguf_flavour` for a GGUF;
  * /api/tags adds `warnings` (manifests it skipped because they cannot be read), /api/ps adds
    `engine` (`Engine.health()`: whether the worker runs, its restarts and last error) and each
    model's `backend` (ossy's native kernels or the PyTorch path); its `size` is the memory
    estimate (weights, the slots' caches at its context, buffers), as Ollama's is an estimate;
  * /api/experts (ossy only): each loaded model's expert routing counts; `"experts": true` in a
    /api/chat or /api/generate body adds the request's own counts to its final chunk;
  * bodies are typed strictly, as Go decodes them: `"stream": "yes"` or `"keep_alive": true` is
    a 400, not a guess;
  * /api/create reads `from` as a model name (over HTTP a path would let any caller read the
    server's files): a checkpoint arrives as `files` uploaded to /api/blobs, as Ollama's clients
    send it, or from below the directory `OSSY_CREATE_ROOT` names; an error never says whether
    a path outside exists;
  * a client that leaves /api/pull or /api/push stops it (its partial download stays and resumes next
    time), where Ollama lets it run on.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
import time
from pathlib import Path
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ConfigDict, Field
from starlette.requests import ClientDisconnect

from ossy import __version__
from ossy.chat import ChatRequest, RequestError, TextChunk, ToolCallChunk, Turn, check_options, check_tools
from ossy.chat.constraint import check_format
from ossy.chat.embed import embed
from ossy.chat.models import memory_of
from ossy.chat.prompt import think_level
from ossy.engine.protocol import ExpertCounts
from ossy.errors import NotFoundError, OssyError, StalledError
from ossy.format import now_rfc3339
from ossy.harmony.typescript import CODE_KEY, arguments_text
from ossy.modelfile import Modelfile
from ossy.modelfile.parameters import DEPRECATED, PARAMETERS
from ossy.server.http import NDJSON, Body, StreamResponse, keep_alive_seconds, log, ndjson, parse_body
from ossy.server.state import State
from ossy.store import InvalidNameError, Progress, parse_name
from ossy.store.create import create_from, create_from_blobs
from ossy.store.manifest import valid_digest
from ossy.store.registry import pull, push
from ossy.store.show import details, library_template, show_info

UPLOAD_BATCH = 1 << 22  # bytes of an upload written to disk at a time (off the event loop)
UPLOAD_IDLE = 300.0  # seconds an upload may go without a byte before it is dropped


# ---- request bodies ----------------------------------------------------------------------------


class Function(Body):
    name: str
    arguments: dict[str, Any] | str = {}
    index: int | None = None


class ToolCall(Body):
    id: str | None = None
    type: str = "function"
    function: Function


class Message(Body):
    role: str
    content: str | None = ""
    thinking: str | None = None
    images: list[Any] | None = None
    tool_calls: list[ToolCall] | None = None
    tool_name: str | None = None
    tool_call_id: str | None = None


class _Generating(Body):
    model: str
    format: str | dict[str, Any] | None = None
    options: dict[str, Any] | None = None
    stream: bool = True
    keep_alive: Any = None  # checked by keep_alive_seconds
    think: bool | str | None = None
    truncate: bool | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None


class ChatBody(_Generating):
    messages: list[Message] = []
    tools: list[dict[str, Any]] | None = None


class GenerateBody(_Generating):
    prompt: str | None = None
    suffix: str | None = None
    system: str | None = None
    template: str | None = None
    raw: bool = False
    images: list[Any] | None = None
    context: list[int] | None = None


class NameBody(Body):
    model: str | None = None
    name: str | None = None  # the older field name
    verbose: bool = False

    @property
    def target(self) -> str:
        if not (self.model or self.name):
            raise RequestError("model: field required", param="model")
        return self.model or self.name


class EmbedBody(Body):
    model: str
    input: str | list[str] | None = None
    truncate: bool = True
    dimensions: int | None = None
    keep_alive: Any = None
    options: dict[str, Any] | None = None


class EmbeddingsBody(Body):
    """The older /api/embeddings."""

    model: str
    prompt: str = ""
    keep_alive: Any = None
    options: dict[str, Any] | None = None


class PullBody(NameBody):
    insecure: bool = False
    stream: bool = True


class CopyBody(Body):
    source: str
    destination: str


class CreateBody(Body):
    model_config = ConfigDict(extra="allow", strict=True, populate_by_name=True)
    model: str | None = None
    name: str | None = None
    from_: str | None = Field(None, alias="from")
    template: str | None = None
    system: str | None = None
    parameters: dict[str, Any] | None = None
    license: str | list[str] | None = None
    messages: list[Message] | None = None
    files: dict[str, str] | None = None
    adapters: dict[str, str] | None = None
    quantize: str | None = None
    stream: bool = True


# ---- translation -------------------------------------------------------------------------------


def chat_messages(messages: list[Message]) -> list[dict]:
    """Ollama messages -> OpenAI-style dicts (what `ossy.chat` renders). A tool result without
    `tool_name` takes the name of its `tool_call_id`'s call, else of the next unanswered call."""
    out: list[dict] = []
    names: dict[str, str] = {}
    unanswered: list[str] = []
    for i, m in enumerate(messages):
        if m.images:
            raise RequestError("images are not supported: gpt-oss reads text only", param=f"messages.{i}.images")
        d: dict[str, Any] = {"role": m.role, "content": m.content or ""}
        if m.thinking:
            d["reasoning_content"] = m.thinking
        if m.tool_calls:
            d["tool_calls"] = []
            unanswered = []
            for j, call in enumerate(m.tool_calls):
                args = call.function.arguments
                call_id = call.id or f"call_{i}_{j}"
                names[call_id] = call.function.name
                unanswered.append(call.function.name)
                d["tool_calls"].append({"id": call_id, "type": "function", "function": {
                    "name": call.function.name,
                    "arguments": arguments_text(call.function.name, args)}})
        if m.role == "tool":
            name = m.tool_name or names.get(m.tool_call_id or "") or (unanswered[0] if unanswered else None)
            if name:
                d["name"] = name
                if name in unanswered:
                    unanswered.remove(name)
            if m.tool_call_id:
                d["tool_call_id"] = m.tool_call_id
        out.append(d)
    return out


def native_call(call: ToolCallChunk) -> dict:
    """A tool call as Ollama writes it (arguments an object; `python`'s code as {"code": ...}). An
    invalid call keeps its arguments as the text the model wrote, with `error` saying why."""
    if call.error is not None:
        return {"id": call.id, "function": {"index": call.index, "name": call.name, "arguments": call.arguments},
                "error": call.error}
    try:
        arguments = json.loads(call.arguments)
    except ValueError:
        arguments = None
    if not isinstance(arguments, dict):  # `python`'s code (other calls are JSON objects or invalid)
        arguments = {CODE_KEY: call.arguments}
    return {"id": call.id, "function": {"index": call.index, "name": call.name, "arguments": arguments}}


def native_logprobs(entries) -> list[dict]:
    return [{"token": e["token"], "logprob": e["logprob"],
             "top_logprobs": [{"token": t["token"], "logprob": t["logprob"]} for t in e["top_logprobs"]]}
            for e in entries]


def base_request(body: _Generating, **kw) -> ChatRequest:
    if body.think is not None:
        think_level(body.think)  # 400 now for a bad level
    top = body.top_logprobs or 0
    warnings: list[dict] = []
    options = check_options(body.options, ignored=warnings)
    return ChatRequest(think=body.think, format=check_format(body.format), options=options,
                       logprobs=bool(body.logprobs), top_logprobs=top, keep_alive=keep_alive_seconds(body.keep_alive),
                       overflow="error" if body.truncate is False else "truncate", warnings=warnings, **kw)


def stats(result, started_ns: int, experts: bool = False) -> dict:
    """The final chunk's timings and counts; with `experts` (the request's ossy-only `"experts":
    true`) also the experts this request's tokens chose (`expert_json`), when the engine knows."""
    s = result.stats
    out = {"done_reason": "stop" if result.done_reason == "tool_calls" else result.done_reason,
           "total_duration": time.monotonic_ns() - started_ns, "load_duration": s.load_duration,
           "prompt_eval_count": result.prompt_tokens, "prompt_eval_duration": s.prompt_eval_duration,
           "eval_count": result.completion_tokens, "eval_duration": s.eval_duration}
    if result.warnings:
        out["warnings"] = result.warnings
    if experts and s.experts is not None:
        out["experts"] = expert_json(s.experts)
    return out


def wants_experts(body) -> bool:
    return (body.model_extra or {}).get("experts") is True


def expert_json(counts: ExpertCounts) -> dict:
    """/api/experts' item; the page's heatmap and `ossy ps --experts` read it."""
    return {"model": counts.model, "layers": len(counts.counts), "experts": len(counts.counts[0]),
            "top_k": counts.top_k, "tokens": counts.tokens, "counts": [list(row) for row in counts.counts]}


# ---- routes ------------------------------------------------------------------------------------


def register(app: FastAPI, state: State) -> None:
    @app.get("/api/version")
    @app.head("/api/version")
    async def version():
        return {"version": __version__}

    @app.post("/api/chat")
    async def chat(request: Request):
        started = time.monotonic_ns()
        body = await parse_body(request, ChatBody)
        model = await state.resolve(body.model)
        if not body.messages:
            return await _load_or_unload(state, model, body, started, {"message": {"role": "assistant", "content": ""}})
        req = base_request(body, messages=chat_messages(body.messages), tools=check_tools(body.tools))
        if (body.model_extra or {}).get("_debug_render_only"):
            return await debug_render(state, model, req, body.model)
        return await _run(state, model, req, body, started, _chat_chunk)

    @app.post("/api/generate")
    async def generate(request: Request):
        started = time.monotonic_ns()
        body = await parse_body(request, GenerateBody)
        if body.images:
            raise RequestError("images are not supported: gpt-oss reads text only", param="images")
        if body.suffix:
            raise RequestError("suffix (fill-in-the-middle) is not supported by gpt-oss", param="suffix")
        model = await state.resolve(body.model)
        _check_context(body.context, model.tokenizer.vocab_size)
        if not body.prompt:
            return await _load_or_unload(state, model, body, started, {"response": ""})
        if body.raw:
            if body.template or body.system:
                raise RequestError("raw cannot be combined with template or system", param="raw")
            req = base_request(body, raw=body.prompt)
        else:
            messages = ([{"role": "system", "content": body.system}] if body.system else []) + \
                       [{"role": "user", "content": body.prompt}]
            if body.template:
                model = dataclasses.replace(model, template=body.template,
                                            harmony=body.template == library_template())
            req = base_request(body, messages=messages)
        if (body.model_extra or {}).get("_debug_render_only"):
            return await debug_render(state, model, req, body.model)
        return await _run(state, model, req, body, started, _generate_chunk)

    @app.get("/api/tags")
    @app.head("/api/tags")
    async def tags():
        listing = await anyio.to_thread.run_sync(_library(state).listing)
        out: dict[str, Any] = {"models": [
            {"name": str(m.name), "model": str(m.name), "modified_at": now_rfc3339(m.modified), "size": m.size,
             "digest": m.digest, "details": details(m)} for m in sorted(listing.models, key=lambda m: -m.modified)]}
        if listing.problems:
            out["warnings"] = listing.problems
        return out

    @app.post("/api/show")
    async def show(request: Request):
        body = await parse_body(request, NameBody)
        return await anyio.to_thread.run_sync(_show, state, body.target, body.verbose)

    @app.post("/api/copy")
    async def copy(request: Request):
        body = await parse_body(request, CopyBody)
        await anyio.to_thread.run_sync(_library(state).copy, body.source, body.destination)
        return Response(status_code=200)

    @app.delete("/api/delete")
    async def delete(request: Request):
        body = await parse_body(request, NameBody)
        await anyio.to_thread.run_sync(_library(state).remove, body.target)
        return Response(status_code=200)

    @app.post("/api/create")
    async def create(request: Request):
        body = await parse_body(request, CreateBody)
        statuses = await anyio.to_thread.run_sync(_create, _library(state), body, state.create_root)
        if not body.stream:
            return {"status": "success"}

        async def lines():
            for status in statuses + ["success"]:
                yield ndjson({"status": status})

        return StreamResponse(lines(), NDJSON)

    @app.post("/api/embed")
    async def embed_texts(request: Request):
        started = time.monotonic_ns()
        body = await parse_body(request, EmbedBody)
        model = await state.resolve(body.model)
        inputs = [body.input] if isinstance(body.input, str) else list(body.input or [])
        result = await embed(state.engine, model, inputs, truncate=body.truncate, dimensions=body.dimensions,
                             keep_alive=keep_alive_seconds(body.keep_alive), options=body.options)
        return {"model": body.model, "embeddings": result.vectors, "total_duration": time.monotonic_ns() - started,
                "load_duration": result.load_duration, "prompt_eval_count": result.prompt_tokens}

    @app.post("/api/embeddings")
    async def embed_prompt(request: Request):
        body = await parse_body(request, EmbeddingsBody)
        model = await state.resolve(body.model)
        if not body.prompt:
            return {"embedding": []}
        result = await embed(state.engine, model, [body.prompt], keep_alive=keep_alive_seconds(body.keep_alive),
                             options=body.options)
        return {"embedding": result.vectors[0]}

    @app.post("/api/pull")
    async def pull_model(request: Request):
        return await _transfer(pull, _library(state), await parse_body(request, PullBody))

    @app.post("/api/push")
    async def push_model(request: Request):
        return await _transfer(push, _library(state), await parse_body(request, PullBody))

    @app.head("/api/blobs/{digest}")
    async def has_blob(digest: str):
        path = _library(state).store.blob_path(_blob_digest(digest))
        return Response(status_code=200 if await anyio.to_thread.run_sync(path.is_file) else 404)

    @app.post("/api/blobs/{digest}")
    async def upload_blob(digest: str, request: Request):
        digest = _blob_digest(digest)
        length = request.headers.get("content-length", "")
        store = _library(state).store
        upload = await anyio.to_thread.run_sync(store.upload, digest, int(length) if length.isdigit() else 0)
        try:
            pending = bytearray()
            async for chunk in _received(request):
                pending += chunk
                if len(pending) >= UPLOAD_BATCH:
                    await anyio.to_thread.run_sync(upload.write, bytes(pending))
                    pending.clear()
            await anyio.to_thread.run_sync(upload.write, bytes(pending))
            await anyio.to_thread.run_sync(upload.finish)
        finally:
            await anyio.to_thread.run_sync(upload.__exit__, None, None, None)
        return Response(status_code=201)

    @app.get("/api/ps")
    async def ps():
        out = []
        for m in state.engine.loaded():
            found = await anyio.to_thread.run_sync(state.library.find, m.name) if state.library else None
            model_details = details(found) if found is not None else {}
            out.append({"name": m.name, "model": m.name, "size": m.size, "digest": m.digest, "details": model_details,
                        "expires_at": now_rfc3339(m.expires_at) if m.expires_at else "2318-01-01T00:00:00Z",
                        "size_vram": m.size_vram, "context_length": m.context_length, "backend": m.backend})
        return {"models": out, "engine": state.engine.health()}

    @app.get("/api/experts")
    async def experts(model: str | None = None):
        """Routing counts of the loaded models since they were loaded (an ossy extension; `model`:
        that one only, 404 when it is not loaded or its backend cannot tell)."""
        found = [expert_json(c) for c in state.engine.expert_counts()]
        if model is None:
            return {"models": found}
        wanted = str(parse_name(model))
        for item in found:
            if item["model"] == wanted:
                return item
        raise NotFoundError(f"model {model!r} is not loaded (no routing counted yet): run a prompt first")


class _Cancelled(Exception):
    """The client went away: the pull or push stops (a partial download stays, to be resumed)."""


async def _transfer(transfer, library, body: "PullBody"):
    """/api/pull or /api/push: `transfer` (registry.pull or push) streamed, or its end only."""
    if not body.stream:
        await anyio.to_thread.run_sync(lambda: transfer(library, body.target, insecure=body.insecure))
        return {"status": "success"}
    return StreamResponse(_transfer_lines(transfer, library, body.target, body.insecure), NDJSON)


async def _transfer_lines(transfer, library, name: str, insecure: bool):
    """Ollama's progress lines as the transfer (in a thread) reports them; an error is the last line."""
    loop = asyncio.get_running_loop()
    events: asyncio.Queue = asyncio.Queue()
    cancelled = threading.Event()

    def progress(event) -> None:
        if cancelled.is_set():
            raise _Cancelled
        loop.call_soon_threadsafe(events.put_nowait, event.to_json())

    def run() -> None:
        try:
            transfer(library, name, insecure=insecure, progress=progress)
        except _Cancelled:
            pass
        except Exception as e:  # noqa: BLE001 - reported to the client as Ollama does, after the 200
            log.error("%s of %s failed: %s", transfer.__name__, name, e, exc_info=not isinstance(e, OssyError))
            loop.call_soon_threadsafe(events.put_nowait, {"error": str(e) if isinstance(e, OssyError)
                                                          else "internal server error"})
        finally:
            loop.call_soon_threadsafe(events.put_nowait, None)

    worker = threading.Thread(target=run, name=f"{transfer.__name__} {name}", daemon=True)
    worker.start()
    try:
        while (line := await events.get()) is not None:
            yield ndjson(line)
    finally:
        cancelled.set()


def _library(state: State):
    if state.library is None:
        raise OssyError("this server has no model store")
    return state.library


def _chat_chunk(model: str, chunk) -> dict:
    message: dict[str, Any] = {"role": "assistant", "content": ""}
    if isinstance(chunk, TextChunk):
        message["content" if chunk.field == "content" else "thinking"] = chunk.text
    else:
        message["tool_calls"] = [native_call(chunk)]
    return {"model": model, "created_at": now_rfc3339(), "message": message, "done": False}


def _generate_chunk(model: str, chunk) -> dict:
    out: dict[str, Any] = {"model": model, "created_at": now_rfc3339(), "response": ""}
    if isinstance(chunk, TextChunk):
        out["response" if chunk.field == "content" else "thinking"] = chunk.text
    else:
        out["tool_calls"] = [native_call(chunk)]
    out["done"] = False
    return out


async def _run(state: State, model, req: ChatRequest, body, started: int, shape):
    name = body.model
    turn = await state.start(model, req)
    if body.stream:
        async def lines():
            try:
                async for chunk in turn.stream():
                    line = shape(name, chunk)
                    if req.logprobs and isinstance(chunk, TextChunk) and chunk.logprobs:
                        line["logprobs"] = native_logprobs(chunk.logprobs)
                    yield ndjson(line)
                last = shape(name, TextChunk("content", ""))
                last.update(done=True, **stats(turn.result, started, wants_experts(body)))
                yield ndjson(last)
            except Exception as e:  # after the 200: one more line, as Ollama does
                log.error("request %s failed: %s", req.request_id, e, exc_info=not isinstance(e, OssyError))
                yield ndjson({"error": str(e) if isinstance(e, OssyError) else "internal server error"})
            finally:
                turn.cancel()

        return StreamResponse(lines(), NDJSON)
    result = await turn.complete()
    out = shape(name, TextChunk("content", result.content))
    if shape is _chat_chunk:
        if result.thinking:
            out["message"]["thinking"] = result.thinking
        if result.tool_calls:
            out["message"]["tool_calls"] = [native_call(c) for c in result.tool_calls]
    else:
        if result.thinking:
            out["thinking"] = result.thinking
        if result.tool_calls:
            out["tool_calls"] = [native_call(c) for c in result.tool_calls]
    if req.logprobs:
        out["logprobs"] = native_logprobs(result.logprobs)
    out.update(done=True, **stats(result, started, wants_experts(body)))
    return JSONResponse(out)


async def debug_render(state: State, model, req: ChatRequest, name: str) -> JSONResponse:
    """`_debug_render_only`: the prompt as the model would see it, nothing generated."""
    prompt = await anyio.to_thread.run_sync(Turn(state.engine, model, req).build_prompt)
    text = model.tokenizer.decode(prompt.ids)
    return JSONResponse({"model": name, "created_at": now_rfc3339(), "done": True, "done_reason": "stop",
                         "message": {"role": "assistant", "content": ""}, "response": "",
                         "_debug_info": {"rendered_template": text, "prompt_tokens": len(prompt.ids),
                                         "warnings": prompt.warnings}})


def _check_context(context: list[int] | None, vocab_size: int) -> None:
    """/api/generate's deprecated `context` (token ids of an earlier exchange) must be ids of this
    model's vocabulary; ossy returns no `context`, so it is checked and not otherwise used."""
    bad = next((i for i in context or () if not 0 <= i < vocab_size), None)
    if bad is not None:
        raise RequestError(f"context: token id {bad} is outside the vocabulary [0, {vocab_size})", param="context")


async def _load_or_unload(state: State, model, body, started: int, empty: dict):
    keep_alive = keep_alive_seconds(body.keep_alive)
    if keep_alive == 0:
        await state.engine.unload(model.ref)
        reason, load = "unload", 0
    else:
        load = await state.engine.load(model.ref, keep_alive)
        reason = "load"
    out = {"model": body.model, "created_at": now_rfc3339(), **empty, "done": True, "done_reason": reason}
    if reason == "load":
        out.update(total_duration=time.monotonic_ns() - started, load_duration=load)
    return JSONResponse(out)


def _show(state: State, name: str, verbose: bool) -> dict:
    model = _library(state).get(name)
    s = state.settings
    return show_info(model, verbose, memory_of(state.resolver, name, state.engine.memory_estimate), s.kernels,
                     s.num_threads)


async def _received(request: Request):
    """The body's chunks; a body that stops arriving for UPLOAD_IDLE seconds is a 408 (the upload
    holds the store lock), a client that goes away a 400 nobody reads, not a 500."""
    chunks = request.stream().__aiter__()
    while True:
        try:
            with anyio.fail_after(UPLOAD_IDLE):
                chunk = await chunks.__anext__()
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise StalledError(f"the upload stalled: nothing arrived for {UPLOAD_IDLE:.0f} s") from None
        except ClientDisconnect:
            raise RequestError("the client went away during the upload") from None
        yield chunk


def _blob_digest(value: str) -> str:
    digest = value.replace("-", ":", 1) if value.startswith("sha256-") else value
    if not valid_digest(digest):
        raise RequestError(f"invalid digest {value!r}: expected sha256:<64 hex digits>", param="digest")
    return digest


def _create(library, body: CreateBody, root: Path | None) -> list[str]:
    """/api/create: `from` (a model name; a directory only below `root`) or `files` (uploaded
    checkpoint blobs), plus template/system/parameters/license/messages, as `ossy create` builds
    a Modelfile."""
    name = body.model or body.name
    if not name:
        raise RequestError("model: field required", param="model")
    target = parse_name(name)
    if body.adapters:
        raise RequestError("adapters are not supported: merge the adapter into the checkpoint first",
                           param="adapters")
    if body.quantize:
        raise RequestError("quantize is not supported: gpt-oss checkpoints are already MXFP4", param="quantize")
    if body.from_ and body.files:
        raise RequestError("give from (a model) or files (an uploaded checkpoint), not both", param="files")
    if not (body.from_ or body.files):
        raise RequestError("from: field required (or files)", param="from")
    parameters = check_options(body.parameters, where="parameters")
    for key in list(parameters):
        if key not in PARAMETERS or key in DEPRECATED:
            parameters.pop(key)
    licenses = [body.license] if isinstance(body.license, str) else list(body.license or [])
    messages = [(m.role, m.content or "") for m in body.messages or []]
    modelfile = Modelfile(from_=body.from_ or "", parameters=parameters, template=body.template, system=body.system,
                          licenses=licenses, messages=messages)
    statuses: list[str] = []

    class Collect(Progress):
        def status(self, text: str) -> None:
            statuses.append(text)

    if body.files:
        create_from_blobs(library, target, modelfile, body.files, Collect())
    else:
        create_from(library, target, modelfile, _source(library, body.from_, root), Collect())
    return statuses


def _source(library, value: str, root: Path | None):
    """What `from` names over HTTP: a model, or a checkpoint directory below `root` when the
    server allows one. The error is the same whether or not a path outside exists."""
    try:
        model = library.find(value)
    except InvalidNameError:
        model = None
    if model is not None:
        return model
    if root is not None:
        try:
            base = root.resolve()
            path = (base / value).resolve()
            if path.is_relative_to(base) and path.is_dir():
                return path
        except (OSError, RuntimeError, ValueError):  # a NUL, a symlink loop: the same answer as "no such"
            pass
    where = f" or checkpoint directory below {root}" if root is not None else \
        "; upload a checkpoint's files with POST /api/blobs/<digest> and name them in files"
    raise NotFoundError(f"from: no model '{value}'{where}")
