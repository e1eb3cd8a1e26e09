"""The HTTP server: Ollama's native API and OpenAI's, over one `Engine`.

Owns: `create_app(engine, resolver, library, settings)` (the FastAPI app: routes of `native`,
`openai`, `responses`; the `Guard` in front of them (origins, Host, body size: `ossy.server.guard`);
error bodies; `GET /health`; `GET /metrics` (Prometheus: `ossy.server.metrics`); one log line
per request) and `serve(app, host)` (uvicorn on
`host:port`). Every route translates its request into an `ossy.chat.ChatRequest`; the chat
layer runs it over the engine (`ossy.engine.protocol`), so a stub engine tests every route.

Errors (docs/reference/ollama-reference.md §2): an `OssyError` carries its status (400 bad request, 404 unknown
model, 503 queue full with Retry-After); the body is `{"error": "..."}` on /api and
`{"error": {"message", "type", "param", "code"}}` on /v1. An unknown route is a 404 in the same
shapes, a JSON body nested too deep or any other malformed input a 400. Anything else is a bug,
logged with its traceback and answered 500 "internal server error". After a stream has started, an error is one more NDJSON line / SSE event.
"""

from __future__ import annotations

import contextlib
import logging
import time

import anyio
import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from ossy.chat.models import StoreResolver
from ossy.config import Settings, parse_host
from ossy.config import settings as read_settings
from ossy.engine.protocol import Engine, ModelResolver
from ossy.errors import USER_ERRORS, NotFoundError, OssyError
from ossy.server import agent, anthropic, native, openai, page, responses
from ossy.server.guard import Guard
from ossy.server.http import error_response, log
from ossy.server.metrics import CONTENT_TYPE as METRICS_TYPE
from ossy.server.metrics import CountRequests, Metrics
from ossy.server.response_store import ResponseStore
from ossy.server.state import State
from ossy.store import Library


class LogRequests:
    """ASGI middleware: one line per request when its response ends:
    `127.0.0.1 "POST /api/chat" 200 0.412s`."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start, status = time.perf_counter(), [0]

        async def send_logged(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_logged)
        except Exception:
            status[0] = status[0] or 500
            raise
        finally:
            client = (scope.get("client") or ("-",))[0]
            log.info('%s "%s %s" %s %.3fs', client, scope["method"], scope["path"], status[0] or "-",
                     time.perf_counter() - start)


def create_app(engine: Engine, resolver: ModelResolver | None = None, library: Library | None = None,
               settings: Settings | None = None) -> FastAPI:
    """The app. `resolver` defaults to the store's (`ossy.chat.models.StoreResolver(library)`);
    `settings` (default: read now) gives the origins, the body limit, the default num_ctx and
    the directory /api/create may read checkpoints from."""
    settings = settings or read_settings()
    if resolver is None:
        library = library or Library.from_settings(settings)
        resolver = StoreResolver(library, default_num_ctx=settings.context_length)
    metrics = Metrics(engine, settings.home)
    state = State(engine=engine, resolver=resolver, library=library, create_root=settings.create_root,
                  settings=settings,
                  responses=ResponseStore(settings.home / "responses"), on_turn=metrics.observe_turn)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        await engine.close()

    app = FastAPI(title="ossy", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.ossy = state

    @app.exception_handler(HTTPException)
    async def http_error(request, exc: HTTPException):
        error = NotFoundError(f"{request.method} {request.url.path} not found") if exc.status_code == 404 else \
            OssyError(str(exc.detail))
        error.code = "not_found" if exc.status_code == 404 else None
        return error_response(error, request.url.path, exc.status_code)

    async def user_error(request, exc):
        return error_response(exc, request.url.path)

    for kind in (*USER_ERRORS, Exception):
        app.add_exception_handler(kind, user_error)

    @app.get("/health")
    @app.head("/health")
    async def health():
        """200 while the engine takes requests, 503 while it is being restarted after an error."""
        engine_health = engine.health()
        ok = engine_health["status"] == "ok"
        return JSONResponse({"status": "ok" if ok else "unavailable", "engine": engine_health},
                            status_code=200 if ok else 503)

    @app.get("/metrics")
    async def prometheus_metrics():
        """Prometheus' text format (`ossy.server.metrics`)."""
        return Response(await anyio.to_thread.run_sync(metrics.text), media_type=METRICS_TYPE)

    page.register(app)
    native.register(app, state)
    agent.register(app, state)
    openai.register(app, state)
    responses.register(app, state)
    anthropic.register(app, state)
    app.add_middleware(Guard, origins=settings.origins, max_body=settings.max_body)
    app.add_middleware(LogRequests)
    app.add_middleware(CountRequests, metrics=metrics)
    return app


def split_host(host: str) -> tuple[str, int]:
    """`OSSY_HOST` as the address and port to listen on (`ossy.config.parse_host`; no address: loopback)."""
    _, address, port = parse_host(host)
    return address or "127.0.0.1", port


def serve(app: FastAPI, host: str, port: int) -> None:
    """Run `app` with uvicorn until interrupted (logs: one line per request, no access log)."""

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvicorn.run(app, host=host, port=port, access_log=False, log_level="info", timeout_graceful_shutdown=5)


__all__ = ["create_app", "serve", "split_host"]
