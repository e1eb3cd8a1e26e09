"""The agent loop over HTTP, for the chat page: the model calls tools, the server runs them in its
sandbox, the user approves what changes things, the model answers.

Owns: `POST /api/agent` (one user turn run to its answer by `ossy.agent.loop`, streamed as NDJSON
events), `POST /api/agent/approvals/{id}` (the user's answer to an approval event), `GET
/api/agent/toolsets` (what can be enabled), `ServerModel` (an `ossy.agent.ChatModel` whose turns
run on this server's engine through `State.start`, so they are queued, counted and measured like
every other request) and `Approvals` (the approval requests waiting for an answer). Does not own:
the loop (`ossy.agent.loop`), checking, approving, running and auditing a call
(`ossy.tools.executor`), the page (`ossy.server.page`).

Who may call: a request that carries an `Origin` must come from this server's own origin (the
page it serves: `http://<Host>`); any other page, even one the Guard lets through (Ollama's
defaults allow every localhost port), gets 403, so no other site can make this machine run
tools. A request without `Origin` (curl, a script) is the local user, as with `ossy run --tools`.
Tools act in the server's workspace (`State.workspace`: the directory `ossy serve` started in),
sandboxed (workspace-write), approvals "ask": a destructive call waits for the page's answer,
for at most `APPROVAL_WAIT` seconds, then counts as "no". One request is one toolbox: "always"
lasts for the request; the python kernel and browser pages end with it.

Request: {"model", "messages" (OpenAI-style, as `done` gave them back), "toolsets": ["fs", ...],
"think", "options", "max_steps"}. Events, one JSON object a line:
  {"type": "turn", "turn": n}                           a model reply starts
  {"type": "thinking" | "content", "text": ...}         streamed text
  {"type": "tool_call", "id", "name", "arguments"}      the model called a tool
  {"type": "approval", "id", "tool", "toolset", "arguments", "preview"}
                                                        answer at /api/agent/approvals/{id}
  {"type": "tool_result", "id", "status", "output", "error"}
  {"type": "done", "stopped", "answer", "messages", "stats"}   messages: the whole conversation
  {"type": "error", "error": "..."}                     the run failed (after the 200)
Closing the connection (the page's stop button) cancels the running generation and any wait.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response
from pydantic import Field

from ossy.agent import TextDelta, Toolbox, ToolCalled, ToolReturned, TurnStarted, loop, parse_toolsets
from ossy.agent.model import reply_of
from ossy.chat import ChatRequest, RequestError
from ossy.errors import ForbiddenError, NotFoundError, OssyError
from ossy.server.http import NDJSON, Body, StreamResponse, log, ndjson, parse_body
from ossy.server.native import expert_json
from ossy.server.state import State
from ossy.tools.base import Policy
from ossy.tools.registry import TOOLSETS, Registry

APPROVAL_WAIT = 600.0  # seconds an approval waits for the page before it counts as "no"
ANSWERS = ("yes", "no", "always")


class AgentBody(Body):
    model: str
    messages: list[dict[str, Any]]
    toolsets: list[str] = []
    think: bool | str | None = None
    options: dict[str, Any] | None = None
    max_steps: int = Field(8, ge=1, le=64)


class AnswerBody(Body):
    answer: str


@dataclass
class _Waiting:
    done: threading.Event = field(default_factory=threading.Event)
    answer: str = "no"


class Approvals:
    """Approval requests waiting for the page; each run's are refused when it ends."""

    def __init__(self) -> None:
        self._waiting: dict[str, _Waiting] = {}
        self._lock = threading.Lock()

    def open(self) -> tuple[str, _Waiting]:
        key = secrets.token_urlsafe(12)
        with self._lock:
            waiting = self._waiting[key] = _Waiting()
        return key, waiting

    def answer(self, key: str, answer: str) -> None:
        with self._lock:
            waiting = self._waiting.pop(key, None)
        if waiting is None:
            raise NotFoundError(f"no approval {key!r} is waiting (answered already, or its run ended)")
        waiting.answer = answer
        waiting.done.set()

    def close(self, key: str) -> None:
        with self._lock:
            waiting = self._waiting.pop(key, None)
        if waiting is not None:
            waiting.done.set()  # answer stays "no"


class _Run:
    """One request's run: events to the response, cancellation from it."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.events: asyncio.Queue = asyncio.Queue()
        self.cancelled = threading.Event()
        self.turns: set = set()  # the running chat turns (ossy.chat.turn.Turn)
        self.approvals: set[str] = set()
        self.experts = None  # an `ExpertCounts` over all the run's turns

    def add_experts(self, counts) -> None:
        if counts is not None:
            self.experts = counts if self.experts is None else counts + self.experts

    def post(self, event: dict | None) -> None:
        """From any thread; None ends the stream."""
        self.loop.call_soon_threadsafe(self.events.put_nowait, event)


class ServerModel:
    """An `ossy.agent.ChatModel` on this server's engine; `turn` is called from a worker thread."""

    def __init__(self, state: State, model, run: _Run) -> None:
        self.state, self.model, self.run = state, model, run

    def turn(self, messages, tools, *, think=None, options=None, on_text=None):
        if self.run.cancelled.is_set():
            raise _Stopped()
        request = ChatRequest(messages=list(messages), tools=tools or None, think=think, options=dict(options or {}))
        return asyncio.run_coroutine_threadsafe(self._turn(request, on_text), self.run.loop).result()

    async def _turn(self, request, on_text):
        turn = await self.state.start(self.model, request)
        self.run.turns.add(turn)
        try:
            reply = await reply_of(turn, on_text)
        finally:
            self.run.turns.discard(turn)
        self.run.add_experts(reply.stats.get("experts"))
        return reply


class _Stopped(Exception):
    """The client went away: the run ends without an answer."""


def _approver(approvals: Approvals, run: _Run):
    def approve(request) -> str:
        key, waiting = approvals.open()
        run.approvals.add(key)
        run.post({"type": "approval", "id": key, "tool": request.tool.name, "toolset": request.tool.toolset,
                  "arguments": request.arguments, "preview": request.preview})
        if run.cancelled.is_set():
            approvals.close(key)
        waiting.done.wait(APPROVAL_WAIT)
        approvals.close(key)
        run.approvals.discard(key)
        return waiting.answer

    return approve


def _event(event) -> dict:
    if isinstance(event, TurnStarted):
        return {"type": "turn", "turn": event.turn}
    if isinstance(event, TextDelta):
        return {"type": event.field, "text": event.text}
    if isinstance(event, ToolCalled):
        return {"type": "tool_call", "id": event.call.id, "name": event.call.name, "arguments": event.call.arguments}
    if isinstance(event, ToolReturned):
        r = event.result
        return {"type": "tool_result", "id": event.call.id, "status": r.status, "output": r.output, "error": r.error}
    raise TypeError(f"unknown agent event {event!r}")


def same_origin(request: Request) -> None:
    origin = request.headers.get("origin")
    host = request.headers.get("host", "")
    if origin is not None and origin not in (f"http://{host}", f"https://{host}"):
        raise ForbiddenError(f"origin {origin!r} may not run tools here: only the page this server serves "
                             f"(http://{host}/) may")


def register(app: FastAPI, state: State) -> None:
    approvals = Approvals()

    @app.get("/api/agent/toolsets")
    async def toolsets():
        return {"toolsets": [{"name": name, "tools": Registry.from_toolsets([name]).names}
                             for name in TOOLSETS]}

    @app.post("/api/agent/approvals/{key}")
    async def answer(key: str, request: Request):
        same_origin(request)
        body = await parse_body(request, AnswerBody)
        if body.answer not in ANSWERS:
            raise RequestError(f"answer must be one of {', '.join(ANSWERS)}, not {body.answer!r}", param="answer")
        approvals.answer(key, body.answer)
        return Response(status_code=204)

    @app.post("/api/agent")
    async def agent(request: Request):
        same_origin(request)
        body = await parse_body(request, AgentBody)
        model = await state.resolve(body.model)

        toolbox = Toolbox.open(parse_toolsets(body.toolsets), home=state.settings.home, search_url=state.settings.search_url,
                               policy=Policy(), workspace=state.workspace,
                               conversation=f"page-{state.request_id()}")  # unknown toolset: 400 here
        run = _Run(asyncio.get_running_loop())
        toolbox.executor.approver = _approver(approvals, run)

        def work() -> None:
            try:
                result = loop(ServerModel(state, model, run), toolbox, body.messages, max_steps=body.max_steps,
                              think=body.think, options=body.options, on_event=lambda e: run.post(_event(e)))
                stats = {k: v for k, v in (result.last.stats if result.last else {}).items() if k != "experts"}
                done = {"type": "done", "stopped": result.stopped, "answer": result.answer,
                        "messages": result.messages, "stats": stats}
                if run.experts is not None:
                    done["experts"] = expert_json(run.experts)
                run.post(done)
            except _Stopped:
                pass
            except Exception as e:
                log.error("agent run failed: %s", e, exc_info=not isinstance(e, OssyError))
                run.post({"type": "error", "error": str(e) if isinstance(e, OssyError) else "internal server error"})
            finally:
                toolbox.close()
                run.post(None)

        worker = threading.Thread(target=work, name="ossy-agent", daemon=True)

        async def lines():
            worker.start()
            try:
                while (event := await run.events.get()) is not None:
                    yield ndjson(event)
            finally:
                run.cancelled.set()
                for turn in list(run.turns):
                    turn.cancel()
                for key in list(run.approvals):
                    approvals.close(key)

        return StreamResponse(lines(), NDJSON)
