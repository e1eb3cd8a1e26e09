"""HTTP plumbing shared by the native and OpenAI routes: bodies, errors, streams, durations.

Owns: reading a JSON body into a pydantic model with 400s that name the field, the three error
body shapes (`{"error": "..."}` on /api, OpenAI's `{"error": {message, type, param, code}}` on
/v1, Anthropic's `{"type": "error", "error": {type, message}}` on /v1/messages) and their statuses, `StreamResponse` (NDJSON / SSE with client-disconnect cancellation),
Ollama's keep_alive durations and timestamps.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator

import anyio
from pydantic import BaseModel, ConfigDict, ValidationError
from starlette.responses import JSONResponse, StreamingResponse

from ossy.chat.options import RequestError
from ossy.duration import parse_duration
from ossy.engine.protocol import QueueFullError
from ossy.errors import USER_ERRORS, NotFoundError

log = logging.getLogger("ossy.server")

_TYPE_TAGS = re.compile(r"^(str|int|float|bool|dict|list|none|function-\w+|json-or-python|.*\[.*\])$")


OFF_LOOP_BYTES = 1 << 16  # bodies at least this big are parsed on a worker thread
NDJSON = "application/x-ndjson"  # Ollama's streams
SSE = "text/event-stream"  # OpenAI's and Anthropic's streams


class Body(BaseModel):
    """A request body: the fields a route knows are strictly typed; unknown ones are ignored, as
    Ollama, OpenAI-compatible servers and Anthropic's API ignore them (beta fields included)."""

    model_config = ConfigDict(extra="allow", strict=True)
MAX_DEPTH = 100  # nesting of arrays and objects in a body; deeper is a 400 (JSON schemas use ~10)


async def parse_body(request, model: type[BaseModel]) -> BaseModel:
    """The request body as `model`; RequestError (400) for bad JSON or a field of the wrong type.
    A big body is parsed off the event loop, so it never stalls the other requests."""
    raw = await request.body()
    if len(raw) >= OFF_LOOP_BYTES:
        return await anyio.to_thread.run_sync(read_body, raw, model)
    return read_body(raw, model)


def read_body(raw: bytes, model: type[BaseModel]) -> BaseModel:
    try:
        data = json.loads(raw) if raw.strip() else {}
    except RecursionError:
        raise RequestError(f"the request body is nested more than {MAX_DEPTH} levels deep") from None
    except ValueError as e:
        raise RequestError(f"invalid JSON in the request body: {e}") from None
    if not isinstance(data, dict):
        raise RequestError("the request body must be a JSON object")
    if depth(data) > MAX_DEPTH:
        raise RequestError(f"the request body is nested more than {MAX_DEPTH} levels deep")
    try:
        return model.model_validate(data)
    except ValidationError as e:
        error = e.errors()[0]
        loc = ".".join(str(p) for p in error["loc"] if not _TYPE_TAGS.match(str(p)))
        message = error["msg"]
        if error["type"] == "missing":
            message = "field required"
        raise RequestError(f"{loc}: {message}" if loc else message, param=loc or None) from None


def depth(value) -> int:
    """How deeply arrays and objects nest in a parsed JSON value (a scalar is 0), without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in children)
    return deepest


def status_of(exc: BaseException) -> int:
    return getattr(exc, "http_status", 400) if isinstance(exc, USER_ERRORS) else 500


def message_of(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, USER_ERRORS) else "internal server error"


def is_openai(path: str) -> bool:
    return path.startswith("/v1/") or path == "/v1"


def openai_error(exc: BaseException, status: int) -> dict:
    kind = {400: "invalid_request_error", 404: "invalid_request_error", 409: "invalid_request_error",
            503: "server_error"}.get(status, "server_error" if status >= 500 else "invalid_request_error")
    code = getattr(exc, "code", None)
    if code is None:
        code = {404: "model_not_found" if isinstance(exc, NotFoundError) else "not_found",
                503: "server_busy"}.get(status)
    return {"error": {"message": message_of(exc), "type": kind, "param": getattr(exc, "param", None), "code": code}}


def anthropic_error_type(status: int) -> str:
    return {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
            404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
            503: "overloaded_error"}.get(status, "api_error" if status >= 500 else "invalid_request_error")


def anthropic_error(status: int, message: str) -> dict:
    """The error body Anthropic's API answers with."""
    return {"type": "error", "error": {"type": anthropic_error_type(status), "message": message}}


def error_response(exc: BaseException, path: str, status: int | None = None) -> JSONResponse:
    status = status or status_of(exc)
    if status >= 500 and not isinstance(exc, USER_ERRORS):
        log.error("internal error on %s", path, exc_info=exc)
    if path.startswith("/v1/messages"):
        body = anthropic_error(status, message_of(exc))
    else:
        body = openai_error(exc, status) if is_openai(path) else {"error": message_of(exc)}
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, QueueFullError) else None
    return JSONResponse(body, status_code=status, headers=headers)


class StreamResponse(StreamingResponse):
    """Streams the byte chunks of an async generator. When the client disconnects, the
    generator is closed at once (its `finally` cancels the engine request), within one chunk."""

    def __init__(self, chunks: AsyncIterator[bytes], media_type: str, headers: dict | None = None) -> None:
        super().__init__(chunks, media_type=media_type, headers=headers)
        self.chunks = chunks

    async def __call__(self, scope, receive, send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        try:
            async with anyio.create_task_group() as group:
                async def pump() -> None:
                    try:
                        async for chunk in self.chunks:
                            await send({"type": "http.response.body", "body": chunk, "more_body": True})
                        await send({"type": "http.response.body", "body": b"", "more_body": False})
                    except OSError:  # the socket went away while writing
                        pass
                    finally:
                        group.cancel_scope.cancel()

                async def watch() -> None:
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    group.cancel_scope.cancel()

                group.start_soon(pump)
                group.start_soon(watch)
        finally:
            await self.chunks.aclose()


def ndjson(obj) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def sse(obj, event: str | None = None) -> bytes:
    data = obj if isinstance(obj, str) else json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    return (f"event: {event}\n" if event else "").encode() + f"data: {data}\n\n".encode()


def keep_alive_seconds(value) -> float | None:
    """A request's `keep_alive` in seconds (`ossy.duration`: negative or beyond ten years is
    forever); None: the server default. A 400 naming the field when it is not a duration."""
    if value is None or value == "":
        return None
    try:
        return parse_duration(value)
    except ValueError as e:
        raise RequestError(f"keep_alive: {e}", param="keep_alive") from None
