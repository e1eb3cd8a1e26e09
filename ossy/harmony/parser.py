"""Parsing what gpt-oss generates: harmony tokens in, reasoning, content and tool calls out.

Owns: the streaming state machine `StreamParser` (fed one token at a time, emits typed events),
`parse(ids, tokenizer)` (the whole output as one OpenAI-style assistant message) and the best
reading of output that breaks the format. Does not own: header text (`ossy.harmony.header`),
JSON repair (`ossy.harmony.jsonrepair`), token ids (always asked of the tokenizer), or what the
HTTP layers make of the fields.

Input: the tokens generated after the prompt's `<|start|>assistant`, with or without the stop
token. The first message has no `<|start|>`; later ones (`<|end|><|start|>assistant...`) do.

Mapping of harmony messages (channel, recipient) to fields, one `kind` per message:
  - any recipient (`to=functions.f`, `to=browser.search`, `to=python`, on any channel) -> a tool
    call. `function.name` drops the `functions.` prefix, as OpenAI clients expect; built-in
    names keep their namespace (`browser.search`, `python`); the full recipient is kept on the
    `ParsedMessage` and in `ToolCallStarted`. Arguments are repaired where JSON is expected (every
    recipient except `python`, whose payload is code) and otherwise passed on as generated.
  - `analysis` -> `reasoning_content`; `final` -> `content`.
  - `commentary` without recipient (a preamble, "I'll look that up") -> `preamble`, its own field
    and event, never merged into `content`: the user-facing answer stays the final channel's, and
    the HTTP layer decides whether to show a preamble (e.g. as content when no final answer came).
  - a missing or unknown channel -> `content` (flag `unknown_channel`), or the field of a known
    channel the value starts with (`commentary?` -> preamble).
  - a message whose author is not the assistant (the model writing a user turn or a tool result)
    -> ignored (flag `unexpected_role`), kept in `messages` only.
Several messages of one field are joined by a blank line, in the stream too.

Stop reason (`Done.stop_reason`): "tool_calls" if the last message is a tool call, "stop" after
`<|return|>`, "end" when a message ended with `<|end|>` and nothing followed, and "length" when
the output was cut inside a message (or the engine's own reason, passed to `finish`, when it
stopped for one and the output does not say more). After `<|call|>`, another `<|start|>` message
is still parsed (several calls in one generation when the engine did not stop); after
`<|return|>` nothing is (flag `tokens_after_stop`).

Never raises on model output. Problems are reported as warnings `{"code", "detail"}`:
  truncated          output ended inside a header or a message (cut at max tokens)
  missing_message    a header ended by a terminator, or too long, without `<|message|>`: its
                     leading header words are the header, the rest is read as content
  missing_start      a message began without `<|start|>` (after `<|end|>`, with `<|channel|>`)
  missing_end        a message ended without a terminator: `<|start|>`/`<|channel|>` came first
  bad_header         header words harmony would reject (see `ossy.harmony.header`)
  unknown_channel    a channel other than analysis/commentary/final, or none
  unexpected_role    a message not from the assistant
  missing_call       a tool call ended by `<|end|>`/`<|return|>` or by the next message
  call_without_recipient  `<|call|>` ended a message that has no recipient
  tokens_after_stop  tokens after `<|return|>`, ignored
  stray_token        a special token where it means nothing, dropped (never shown as text)
  unknown_token      an id the tokenizer cannot decode, dropped
  repaired_arguments tool-call arguments repaired into a JSON object
  invalid_arguments  tool-call arguments not a JSON object and not repairable: passed on raw
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import ClassVar, Union

from ossy.harmony.header import ASSISTANT, Header, Problem, read_header, read_unfinished_header
from ossy.harmony.jsonrepair import REPAIRED, repair_arguments
from ossy.harmony.tokens import ALL_STOPS, CALL, CHANNEL, CONSTRAIN, CONTROL_TOKENS, END, MESSAGE, RETURN, START
from ossy.harmony.typescript import takes_code
from ossy.tokenizer import TokenizerError

MAX_HEADER_TOKENS = 64  # real headers are ~15 tokens; past this the model is writing content
SEPARATOR = "\n\n"  # between two messages of one field

REASONING, CONTENT, PREAMBLE, TOOL_CALL, IGNORED = (
    "reasoning_content", "content", "preamble", "tool_call", "ignored"
)
_CHANNEL_KIND = {"analysis": REASONING, "final": CONTENT, "commentary": PREAMBLE}
_EXPECT_START, _HEADER, _CONTENT, _STOPPED = range(4)


# ---- events ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TextDelta:
    text: str
    field: ClassVar[str]  # the field of the assistant message this text belongs to


class ReasoningDelta(TextDelta):
    field = REASONING


class ContentDelta(TextDelta):
    field = CONTENT


class PreambleDelta(TextDelta):
    field = PREAMBLE


@dataclass(frozen=True)
class ToolCallStarted:
    index: int
    id: str
    name: str  # `functions.` stripped
    recipient: str  # as generated, e.g. "functions.get_weather", "browser.search"
    channel: str | None
    content_type: str | None


@dataclass(frozen=True)
class ToolCallDelta:
    index: int
    text: str  # argument text as generated


@dataclass(frozen=True)
class ToolCallFinished:
    index: int
    id: str
    name: str
    arguments: str  # final: repaired where that was unambiguous, else as generated


@dataclass(frozen=True)
class ParsedMessage:
    """One harmony message as read: the unit compared with openai-harmony's messages."""

    author: str
    channel: str | None
    recipient: str | None
    content_type: str | None
    text: str
    terminator: str | None  # <|end|>, <|return|>, <|call|>, or None (cut off / no terminator)
    kind: str  # REASONING, CONTENT, PREAMBLE, TOOL_CALL or IGNORED
    tool_call: dict | None = None  # OpenAI form, for a tool call


@dataclass(frozen=True)
class MessageFinished:
    message: ParsedMessage


@dataclass(frozen=True)
class ParseWarning:
    code: str
    detail: str


@dataclass(frozen=True)
class Done:
    stop_reason: str


Event = Union[TextDelta, ToolCallStarted, ToolCallDelta, ToolCallFinished, MessageFinished, ParseWarning, Done]
_TEXT_EVENT = {cls.field: cls for cls in (ReasoningDelta, ContentDelta, PreambleDelta)}


# ---- the state machine -----------------------------------------------------------------------


@dataclass
class _Open:
    """The message whose content is being read."""

    header: Header
    kind: str
    decoder: object  # the tokenizer's stream decoder: never half a UTF-8 character
    parts: list[str] = field(default_factory=list)
    call: ToolCallStarted | None = None
    emitted: bool = False


class StreamParser:
    """Feed the generated tokens one by one; each call returns the events it completed.

    `feed(id) -> list[Event]`, then `finish(stop_reason=None) -> list[Event]` (ends with `Done`).
    After that, `messages`, `warnings`, `stop_reason` and `result()` hold the whole reading.
    """

    def __init__(self, tokenizer) -> None:
        self._tok = tokenizer
        self._names = {token_id: name for name, token_id in tokenizer.special_tokens.items()}
        for name in CONTROL_TOKENS:  # control names as harmony spells them, whatever the file says
            self._names[tokenizer.token_id(name)] = name
        self.messages: list[ParsedMessage] = []
        self.warnings: list[dict] = []
        self._warned: set[tuple[str, str]] = set()
        self.stop_reason: str | None = None
        self._state = _HEADER
        self._header: list[int] = []
        self._role_known = True  # the prompt's <|start|>assistant gave the first message's role
        self._open: _Open | None = None
        self._fields_used: set[str] = set()
        self._out: list = []

    def feed(self, token_id: int) -> list[Event]:
        self._out = []
        name = self._names.get(token_id)
        if name is None and not self._decodable(token_id):
            return self._out
        if self._state == _EXPECT_START:
            self._expect_start(token_id, name)
        elif self._state == _HEADER:
            self._in_header(token_id, name)
        elif self._state == _CONTENT:
            self._in_content(token_id, name)
        else:
            self._warn("tokens_after_stop", "tokens after the end of the turn were ignored")
        return self._out

    def finish(self, stop_reason: str | None = None) -> list[Event]:
        """End of output. `stop_reason`: the engine's, if it stopped for a reason of its own
        ("length" at max tokens, "stop" at a stop string); the tokens' own reading wins."""
        self._out = []
        cut = self._state == _CONTENT or (self._state == _HEADER and (self._header or not self._role_known))
        if cut and stop_reason in (None, "length"):
            where = "a message" if self._state == _CONTENT else "a message header"
            self._warn("truncated", f"output ended inside {where}")
        if self._state == _CONTENT:
            self._close(None, cut=True)
        self.stop_reason = self._reason(stop_reason, cut)
        self._state = _STOPPED
        self._out.append(Done(self.stop_reason))
        return self._out

    def result(self) -> dict:
        """The whole reading as an OpenAI-style assistant message (plus `preamble`,
        `stop_reason`, `warnings`). Text fields are None when empty; `tool_calls` is a list."""

        def text(kind: str) -> str | None:
            return SEPARATOR.join(m.text for m in self.messages if m.kind == kind and m.text) or None

        return {
            "role": ASSISTANT,
            "content": text(CONTENT),
            "reasoning_content": text(REASONING),
            "preamble": text(PREAMBLE),
            "tool_calls": [m.tool_call for m in self.messages if m.tool_call is not None],
            "stop_reason": self.stop_reason,
            "warnings": list(self.warnings),
        }

    # -- states --------------------------------------------------------------------------------

    def _expect_start(self, token_id: int, name: str | None) -> None:
        if name == START:
            self._begin_header(role_known=False)
        elif name in (None, CHANNEL, MESSAGE):
            self._warn("missing_start", "a message began without <|start|>")
            self._begin_header(role_known=True)
            self._in_header(token_id, name)
        else:
            self._stray(name)

    def _in_header(self, token_id: int, name: str | None) -> None:
        if name == MESSAGE:
            header, problems = read_header(self._tok.decode(self._header), role_known=self._role_known)
            self._open_message(header, problems)
        elif name == START:
            if self._header:
                self._warn("bad_header", "a header was restarted by <|start|>")
            self._begin_header(role_known=False)
        elif name in ALL_STOPS:
            self._open_unfinished()
            self._close(name)
        elif name in (None, CHANNEL, CONSTRAIN):
            self._header.append(token_id)
            if len(self._header) > MAX_HEADER_TOKENS:
                self._open_unfinished()
        else:
            self._stray(name)

    def _in_content(self, token_id: int, name: str | None) -> None:
        if name in ALL_STOPS:
            self._close(name)
        elif name in (START, CHANNEL):
            self._warn("missing_end", f"{name} came before the message's terminator")
            self._close(None)
            self._begin_header(role_known=name == CHANNEL)
            if name == CHANNEL:
                self._header.append(token_id)
        elif name is not None:
            self._stray(name)
        else:
            self._emit_text(self._open.decoder.feed(token_id))

    # -- messages ------------------------------------------------------------------------------

    def _begin_header(self, *, role_known: bool) -> None:
        self._state, self._header, self._role_known = _HEADER, [], role_known

    def _open_unfinished(self) -> None:
        self._warn("missing_message", "a header without <|message|>: its text is read as content")
        text = self._tok.decode(self._header)
        header, content, problems = read_unfinished_header(text, role_known=self._role_known)
        self._open_message(header, problems)
        self._emit_text(content)

    def _open_message(self, header: Header, problems: list[Problem]) -> None:
        for code, detail in problems:
            self._warn(code, detail)
        kind = self._kind(header)
        call = None
        if kind == TOOL_CALL:
            index = sum(m.kind == TOOL_CALL for m in self.messages)
            name = header.recipient.removeprefix("functions.")
            call = ToolCallStarted(index, f"call_{secrets.token_hex(12)}", name, header.recipient,
                                   header.channel, header.content_type)
            self._out.append(call)
        self._open = _Open(header, kind, self._tok.stream_decoder(), call=call)
        self._state = _CONTENT

    def _kind(self, header: Header) -> str:
        if header.author != ASSISTANT:
            self._warn("unexpected_role", f"a message from {header.author!r} was ignored")
            return IGNORED
        if header.recipient:
            return TOOL_CALL
        kind = _CHANNEL_KIND.get(header.channel)
        if kind is None:
            self._warn("unknown_channel", f"channel {header.channel!r} read as content")
            kind = next((k for c, k in _CHANNEL_KIND.items() if (header.channel or "").startswith(c)), CONTENT)
        return kind

    def _emit_text(self, text: str) -> None:
        if not text:
            return
        current = self._open
        current.parts.append(text)
        if current.call is not None:
            self._out.append(ToolCallDelta(current.call.index, text))
        elif current.kind != IGNORED:
            if not current.emitted and current.kind in self._fields_used:
                text = SEPARATOR + text
            current.emitted = True
            self._fields_used.add(current.kind)
            self._out.append(_TEXT_EVENT[current.kind](text))

    def _close(self, terminator: str | None, *, cut: bool = False) -> None:
        current = self._open
        self._emit_text(current.decoder.flush())
        self._open = None
        text = "".join(current.parts)
        tool_call = None
        if current.call is not None:
            tool_call = self._finish_call(current, text, terminator, cut)
        elif terminator == CALL:
            self._warn("call_without_recipient", "<|call|> ended a message with no recipient")
        header = current.header
        message = ParsedMessage(header.author, header.channel, header.recipient, header.content_type, text,
                                terminator, current.kind, tool_call)
        self.messages.append(message)
        self._out.append(MessageFinished(message))
        self._state = _STOPPED if terminator == RETURN else _EXPECT_START

    def _finish_call(self, current: _Open, text: str, terminator: str | None, cut: bool) -> dict:
        call = current.call
        if terminator != CALL and not cut:
            self._warn("missing_call", f"tool call {call.recipient!r} not ended by <|call|>")
        arguments = text
        if not takes_code(call.recipient):
            arguments, problem = repair_arguments(text)
            if problem is not None:
                code = "repaired_arguments" if problem == REPAIRED else "invalid_arguments"
                self._warn(code, f"arguments of {call.recipient!r}: {text[:200]!r}")
        self._out.append(ToolCallFinished(call.index, call.id, call.name, arguments))
        return {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": arguments}}

    def _reason(self, given: str | None, cut: bool) -> str:
        last = self.messages[-1] if self.messages else None
        if cut or last is None:
            return given or "length"
        if last.kind == TOOL_CALL:
            return "tool_calls"
        if last.terminator == END:
            return given or "end"
        return "stop"  # <|return|> (or a <|call|> with no recipient: nothing to call)

    # -- problems ------------------------------------------------------------------------------

    def _decodable(self, token_id: int) -> bool:
        try:
            self._tok.decode_bytes([token_id])
        except TokenizerError:
            self._warn("unknown_token", f"id {token_id} is not in the vocabulary")
            return False
        return True

    def _stray(self, name: str) -> None:
        self._warn("stray_token", f"{name} out of place, dropped")

    def _warn(self, code: str, detail: str) -> None:
        if (code, detail) not in self._warned:
            self._warned.add((code, detail))
            self.warnings.append({"code": code, "detail": detail})
            self._out.append(ParseWarning(code, detail))


def parse(ids, tokenizer, *, stop_reason: str | None = None) -> dict:
    """The assistant message in `ids` (see `StreamParser.result`); never raises on bad output."""
    parser = StreamParser(tokenizer)
    for token_id in ids:
        parser.feed(token_id)
    parser.finish(stop_reason)
    return parser.result()
