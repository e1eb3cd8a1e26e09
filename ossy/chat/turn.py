"""One assistant turn: request in, streamed text and tool calls out, over any `Engine`.

Owns: `ChatRequest` (what every endpoint, native or OpenAI, translates into), `Turn` (prompt ->
engine -> harmony parser -> chunks) and the turn's `Result`. The HTTP layers only format
chunks; none of them talks to the engine or the parser itself.

What a turn yields, in order of generation:
  TextChunk("thinking", ...)   the analysis channel
  TextChunk("content", ...)    the final channel; a preamble (commentary without recipient) is
                               content too, as Ollama shows it, separated by a blank line
  ToolCallChunk                one per finished call, with its final (repaired) arguments: a
                               client never sees argument text that is corrected afterwards
  ToolCallStart, ToolCallArgs  instead of ToolCallChunk when `ChatRequest.stream_tool_arguments`
                               (OpenAI chat streaming): the call's header, then argument deltas as
                               generated. Only text that is a prefix of a valid JSON object is
                               streamed (without a trailing comma or blank); the rest is held back
                               until the call ends, and the last delta then completes the
                               arguments so that the concatenation parses to the final (repaired)
                               object. In the rare case no such completion exists (the model's
                               JSON broke after a valid prefix), the stream's arguments stay as
                               sent and a warning `streamed_arguments_differ` carries the final
                               arguments (also in the non-streamed `Result`).
Never raises on model output. An invalid call travels as data, not as text: a call of an offered
tool whose arguments are not a JSON object (and cannot be repaired) is a ToolCallChunk with
`error` saying why and the arguments exactly as written (streamed: the last ToolCallArgs carries
the `error`, and the deltas add up to the raw arguments), and the parser's `invalid_arguments`
warning; an agent loop answers it with an error so the model can try again. A call the client
did not ask for (no tools offered, tool_choice "none", or a tool the request did not offer: a
client's SDK fails on a name it does not know) comes back as content, with an
`unexpected_tool_call` warning carrying its `tool` and `arguments`. Stop strings apply to the
content only (the analysis channel is not the answer); the text that might begin one is held
back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Callable, Literal

from ossy import harmony
from ossy.chat import constraint
from ossy.chat import prompt as prompting
from ossy.chat.options import Resolved, resolve_options
from ossy.chat.stops import StopMatcher
from ossy.chat.tools import offered as offered_tools
from ossy.engine.protocol import (
    ContextOverflowError,
    Engine,
    Finished,
    GenerateRequest,
    ResolvedModel,
    Stats,
    Token,
    reply_room,
)
from ossy.harmony import jsonrepair
from ossy.harmony import tokens as T
from ossy.harmony.render import SEPARATOR
from ossy.harmony.typescript import takes_code


@dataclass
class ChatRequest:
    """A chat (or generate) request, endpoint-neutral. Messages are OpenAI-style dicts."""

    messages: list[dict] = field(default_factory=list)
    tools: list[dict] | None = None  # OpenAI function tools ({"type": "function", "function": {...}})
    tool_choice: str | None = None  # "auto" (None), "none", "required", or a function name
    think: bool | str | None = None  # see `ossy.chat.prompt.think_level`
    format: str | dict | None = None  # "json" or a JSON Schema (checked)
    options: dict = field(default_factory=dict)  # Ollama option names (checked)
    logprobs: bool = False
    top_logprobs: int = 0
    keep_alive: float | None = None
    overflow: str = "truncate"  # "truncate" | "error"
    raw: str | None = None  # a raw prompt: no template, output returned as plain text
    seed_offset: int = 0  # added to a set seed (choice i of n)
    request_id: str = ""
    stream_tool_arguments: bool = False  # yield ToolCallStart/ToolCallArgs deltas, not ToolCallChunk
    warnings: list[dict] = field(default_factory=list)  # found while reading the request (ignored options)


@dataclass(frozen=True)
class TextChunk:
    field: Literal["content", "thinking"]
    text: str
    logprobs: tuple[dict, ...] = ()  # of the content tokens since the last chunk, when asked


@dataclass(frozen=True)
class ToolCallChunk:
    index: int  # 0, 1, ... within the turn
    id: str
    name: str
    arguments: str  # a JSON object as text (raw code for `python`; as written when `error`)
    error: str | None = None  # an invalid call: why (its arguments are not a JSON object)

    def openai(self) -> dict:
        call = {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": self.arguments}}
        if self.error:
            call["error"] = self.error
        return call


@dataclass(frozen=True)
class ToolCallStart:
    index: int  # as ToolCallChunk.index
    id: str
    name: str


@dataclass(frozen=True)
class ToolCallArgs:
    index: int
    text: str  # an argument fragment; a call's fragments concatenate to its arguments
    error: str | None = None  # on the last fragment of an invalid call: ToolCallChunk.error


Chunk = TextChunk | ToolCallChunk | ToolCallStart | ToolCallArgs  # what `Turn.stream` yields


@dataclass
class _LiveCall:
    """A tool call being streamed as deltas (`stream_tool_arguments`)."""

    start: ToolCallStart
    json: bool  # arguments are JSON (not `python` code)
    raw: str = ""
    sent: str = ""
    started: bool = False


@dataclass
class Result:
    content: str = ""
    thinking: str = ""
    tool_calls: list[ToolCallChunk] = field(default_factory=list)
    done_reason: str = "stop"  # "stop" | "length" | "tool_calls" | "cancelled"
    stats: Stats = field(default_factory=Stats)
    warnings: list[dict] = field(default_factory=list)
    logprobs: list[dict] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0  # generated tokens that were reasoning text


class Turn:
    """`await turn.start()` (raises request errors before anything is sent), then
    `async for chunk in turn.stream()`; `turn.result` is complete when the stream ends.
    `turn.cancel()` stops the engine (client gone); the server calls it in a `finally`."""

    def __init__(self, engine: Engine, model: ResolvedModel, request: ChatRequest,
                 on_finish: Callable[[str, Stats], None] | None = None) -> None:
        """`on_finish(model name, stats)` is called once the engine's Finished event is in (the
        server's metrics)."""
        self.engine, self.model, self.request, self.on_finish = engine, model, request, on_finish
        self.result = Result()
        self.prompt: prompting.Prompt | None = None
        self.options: Resolved | None = None
        self._generation = None
        self._finished = False
        self._live: _LiveCall | None = None

    @property
    def plain(self) -> bool:
        """Output read as plain text (raw prompts, non-harmony templates), not harmony."""
        return self.request.raw is not None or (not self.model.harmony and T.START not in (self.model.template or ""))

    def build_prompt(self) -> prompting.Prompt:
        req, model = self.request, self.model
        self.options = opts = resolve_options(model.parameters, req.options, logprobs=req.logprobs,
                                              top_logprobs=req.top_logprobs,
                                              context_length=model.ref.context_length, seed_offset=req.seed_offset)
        room = reply_room(opts.max_tokens, opts.num_ctx)
        if req.raw is not None:
            self.prompt = prompting.Prompt(model.tokenizer.encode(req.raw, allow_special=True), text=req.raw)
            if len(self.prompt.ids) >= opts.num_ctx and req.overflow == "error":
                raise ContextOverflowError(f"the prompt is {len(self.prompt.ids)} tokens, longer than the context "
                                           f"window (num_ctx {opts.num_ctx})")
        else:
            self.prompt = prompting.build(model, req.messages, tools=req.tools, think=req.think,
                                          tool_choice=req.tool_choice,
                                          format_instructions=constraint.instructions(req.format),
                                          num_ctx=opts.num_ctx, room=room, overflow=req.overflow)
        self.result.warnings += self.request.warnings + self.prompt.warnings
        return self.prompt

    async def start(self) -> None:
        prompt = self.prompt or self.build_prompt()
        tok = self.model.tokenizer
        self._stop_ids = self._stop_token_ids()
        request = GenerateRequest(
            model=self.model.ref, prompt=tuple(prompt.ids), sampling=self.options.sampling,
            max_tokens=self.options.max_tokens, stop_ids=self._stop_ids,
            constraint=constraint.make_constraint(self.request.format, tok, harmony=not self.plain), num_ctx=self.options.num_ctx,
            overflow="error" if self.request.overflow == "error" else "truncate", keep=prompt.keep,
            keep_alive=self.request.keep_alive, request_id=self.request.request_id)
        self._generation = await self.engine.submit(request)

    def _stop_token_ids(self) -> frozenset[int]:
        """The ids that end this turn: harmony's stops, and <|endoftext|> for plain text."""
        tok = self.model.tokenizer
        plain_end = {tok.token_id(T.ENDOFTEXT)} if self.plain and T.ENDOFTEXT in tok.special_tokens else set()
        return frozenset(harmony.stop_token_ids(tok)) | plain_end

    def cancel(self) -> None:
        if self._generation is not None and not self._finished:
            self._generation.cancel()

    async def complete(self, on_chunk: Callable[[Chunk], None] | None = None) -> "Result":
        """Run the turn to its end, each chunk to `on_chunk`; cancelled if the caller goes away."""
        try:
            async for chunk in self.stream():
                if on_chunk is not None:
                    on_chunk(chunk)
        finally:
            self.cancel()
        return self.result

    async def stream(self):
        assert self._generation is not None, "call start() first"
        tok = self.model.tokenizer
        self._stops = StopMatcher(self.options.stop)
        self._pending_logprobs: list[dict] = []
        self._content_kind = None
        parser = None if self.plain else harmony.StreamParser(tok)
        decoder = tok.stream_decoder() if self.plain else None
        finished: Finished | None = None
        generated = 0
        try:
            if parser is not None:
                for token_id in self.prompt.prefill:
                    for chunk in self._handle(parser.feed(token_id), None):
                        yield chunk
            async for event in self._generation:
                if isinstance(event, Finished):
                    finished = event
                    break
                generated += 1
                if self._stops.stopped:
                    continue  # draining after a stop string: the engine is already cancelled
                if parser is not None:
                    chunks = self._handle(parser.feed(event.id), event)
                else:
                    chunks = self._plain(decoder, event)
                for chunk in chunks:
                    yield chunk
                if self._stops.stopped:
                    self._generation.cancel()
        finally:
            self._finished = finished is not None
            if not self._finished:
                self._generation.cancel()
        if finished is None:  # the engine ended the stream without its Finished event
            finished = Finished("cancelled" if self._stops.stopped else "stop")
        if parser is not None:
            engine_reason = "stop" if self._stops.stopped else ("length" if finished.reason == "length" else None)
            for chunk in self._handle(parser.finish(engine_reason), None):
                yield chunk
        elif not self._stops.stopped:
            for chunk in self._content(decoder.flush()):
                yield chunk
        for chunk in self._content(self._stops.flush(), final=True):
            yield chunk
        self._finish(finished, generated)

    # -- parser events -> chunks ---------------------------------------------------------------

    def _handle(self, events, token: Token | None) -> list:
        out = []
        entry = self._logprob_entry(token) if token is not None and token.logprob is not None else None
        for event in events:
            if isinstance(event, harmony.ReasoningDelta):
                self.result.thinking += event.text
                self.result.reasoning_tokens += token is not None
                out.append(TextChunk("thinking", event.text))
            elif isinstance(event, (harmony.ContentDelta, harmony.PreambleDelta)):
                text = event.text
                if self._content_kind not in (None, type(event)) and (self.result.content or self._stops._held):
                    text = SEPARATOR + text.lstrip("\n")
                self._content_kind = type(event)
                if entry is not None:
                    self._pending_logprobs.append(entry)
                    entry = None
                out += self._content(text)
            elif isinstance(event, harmony.ToolCallStarted):
                self._live = self._live_call(event)
            elif isinstance(event, harmony.ToolCallDelta):
                if self._live is not None:
                    out += self._live_delta(self._live, event.text)
            elif isinstance(event, harmony.ToolCallFinished):
                out += self._tool_call(event)
            elif isinstance(event, harmony.ParseWarning):
                self.result.warnings.append({"code": event.code, "detail": event.detail})
        return out

    def _plain(self, decoder, token: Token) -> list:
        if token.id in self._stop_ids:
            return []
        if token.logprob is not None:
            self._pending_logprobs.append(self._logprob_entry(token))
        return self._content(decoder.feed(token.id))

    def _content(self, text: str, *, final: bool = False) -> list:
        if not text:
            return []
        safe = text if final else self._stops.feed(text)[0]
        if not safe:
            return []
        self.result.content += safe
        logprobs, self._pending_logprobs = tuple(self._pending_logprobs), []
        self.result.logprobs += logprobs
        return [TextChunk("content", safe, logprobs)]

    def _tool_call(self, event: harmony.ToolCallFinished) -> list:
        unexpected = self._unexpected(event.name)
        if unexpected is not None:
            self.result.warnings.append({"code": "unexpected_tool_call", "detail": unexpected + "; returned as content",
                                         "tool": event.name, "arguments": event.arguments})
            sep = SEPARATOR if self.result.content else ""
            return self._content(sep + event.arguments)
        call = ToolCallChunk(len(self.result.tool_calls), event.id, event.name, event.arguments,
                             self._invalid(event.name, event.arguments))
        self.result.tool_calls.append(call)
        live, self._live = self._live, None
        if live is None:
            return [call]
        return self._live_finish(live, call)

    def _unexpected(self, name: str) -> str | None:
        """Why a call of `name` is not passed on as a tool call (None: it is)."""
        if self.request.tool_choice == "none" or not (self.request.tools or self.prompt.prefill):
            return f"the model called {name!r} although no tools were offered"
        if self.request.tools and not self.prompt.prefill and name not in offered_tools(self.request.tools):
            return f"the model called {name!r}, which is not one of the offered tools"
        return None

    @staticmethod
    def _invalid(name: str, arguments: str) -> str | None:
        """Why a call's arguments are invalid (None: they are valid)."""
        if takes_code(name):
            return None
        try:
            value = json.loads(arguments)
        except ValueError as e:
            return f"the arguments of {name!r} are not JSON ({e})"
        return None if isinstance(value, dict) else f"the arguments of {name!r} are not a JSON object"

    # -- tool-call arguments as deltas (stream_tool_arguments) ---------------------------------

    def _live_call(self, event: harmony.ToolCallStarted) -> _LiveCall | None:
        if not self.request.stream_tool_arguments or self._unexpected(event.name) is not None:
            return None  # not streamed; an unexpected call will come back as content
        is_json = not takes_code(event.recipient)
        return _LiveCall(ToolCallStart(len(self.result.tool_calls), event.id, event.name), is_json)

    def _live_send(self, live: _LiveCall, text: str) -> list:
        out = []
        if not live.started:
            live.started = True
            out.append(live.start)
        if text:
            live.sent += text
            out.append(ToolCallArgs(live.start.index, text))
        return out

    def _live_delta(self, live: _LiveCall, text: str) -> list:
        live.raw += text
        if not live.json:
            return self._live_send(live, text)
        committed = json_prefix(live.raw)
        if len(committed) > len(live.sent):
            return self._live_send(live, committed[len(live.sent):])
        return []

    def _live_finish(self, live: _LiveCall, call: ToolCallChunk) -> list:
        arguments = call.arguments
        if call.error is not None:  # the rest as written, and the error on the last fragment
            out = self._live_send(live, "")
            tail = arguments[len(live.sent):]
            if not arguments.startswith(live.sent):
                self._streamed_differ(live, arguments)
                tail = ""
            return out + [ToolCallArgs(live.start.index, tail, call.error)]
        if not live.json or not live.sent:
            return self._live_send(live, arguments[len(live.sent):] if not live.json else arguments)
        tail = json_completion(live.sent, live.raw, arguments)
        if tail is None:
            self._streamed_differ(live, arguments)
            tail = ""
        return self._live_send(live, tail)

    def _streamed_differ(self, live: _LiveCall, arguments: str) -> None:
        self.result.warnings.append({"code": "streamed_arguments_differ",
                                     "detail": f"the streamed arguments of {live.start.name!r} were "
                                               f"corrected after they were sent; final: {arguments}"})

    def _logprob_entry(self, token: Token) -> dict:
        tok = self.model.tokenizer

        def one(token_id: int, logprob: float) -> dict:
            data = tok.decode_bytes([token_id])
            return {"id": token_id, "token": data.decode("utf-8", "replace"), "logprob": logprob, "bytes": list(data)}

        entry = one(token.id, token.logprob)
        entry["top_logprobs"] = [one(i, lp) for i, lp in token.top_logprobs]
        return entry

    def _finish(self, finished: Finished, generated: int) -> None:
        result = self.result
        result.stats = finished.stats
        if self.on_finish is not None:
            self.on_finish(self.model.ref.name, finished.stats)
        if finished.stats.truncated_tokens:
            dropped = finished.stats.truncated_tokens
            result.warnings.append({"code": "truncated", "detail": f"the engine dropped {dropped} prompt tokens "
                                                                   f"to fit num_ctx"})
        if self._stops.stopped:
            result.done_reason = "stop"
        elif result.tool_calls:
            result.done_reason = "tool_calls"
        elif finished.reason in ("length", "cancelled"):
            result.done_reason = finished.reason
        else:
            result.done_reason = "stop"
        unmet = constraint.check_output(self.request.format, result.content) if not result.tool_calls else None
        if unmet is not None and result.done_reason != "length":
            result.warnings.append(unmet)
        result.prompt_tokens = finished.stats.prompt_eval_count or len(self.prompt.ids)
        result.completion_tokens = finished.stats.eval_count or generated


def json_prefix(raw: str) -> str:
    """The longest safe-to-stream prefix of `raw`: text some strict JSON object completes, without
    a trailing blank, comma or backslash ("" if there is none yet)."""
    candidate = raw.rstrip()
    if candidate.endswith(","):
        candidate = candidate[:-1].rstrip()
    if not candidate.lstrip().startswith("{") or candidate.endswith("\\"):
        return ""
    closed = jsonrepair.closed_json(candidate) or candidate
    try:
        ok = isinstance(json.loads(closed), dict)
    except ValueError:
        ok = False
    return candidate if ok else ""


def json_closing(sent: str) -> str:
    """What ends `sent`, the streamed part of an invalid call's arguments (a valid JSON prefix), as
    a JSON object ("{}" when nothing was sent): for clients whose tool input must be an object."""
    if not sent:
        return "{}"
    closed = jsonrepair.closed_json(sent)
    return closed[len(sent):] if closed else ""


def escape_control(text: str) -> str:
    """`text` with control characters inside JSON strings escaped (as `json.dumps` writes them)."""
    out, state = [], jsonrepair.OUTSIDE
    for ch in text:
        out.append(json.dumps(ch)[1:-1] if state == jsonrepair.IN_STRING and ch < " " else ch)
        state = jsonrepair.string_state(state, ch)
    return "".join(out)


def json_completion(sent: str, raw: str, arguments: str) -> str | None:
    """A text that, appended to `sent` (a prefix of `raw`), gives JSON equal to `arguments`."""
    try:
        target = json.loads(arguments)
    except ValueError:
        return None  # invalid arguments: sent as written
    escaped = escape_control(raw.strip())
    candidates = [raw, escaped, jsonrepair.without_trailing_junk(escaped), jsonrepair.closed_json(escaped),
                  jsonrepair.closed_json(sent)]
    for text in candidates:
        if text is None or not text.startswith(sent):
            continue
        try:
            if json.loads(text) == target:
                return text[len(sent):]
        except ValueError:
            continue
    return None


async def run(engine: Engine, model: ResolvedModel, request: ChatRequest) -> Result:
    """A whole turn, not streamed."""
    turn = Turn(engine, model, request)
    await turn.start()
    return await turn.complete()
