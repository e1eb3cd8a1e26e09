"""Chat messages -> prompt token ids, fitted to the context window.

Owns: where the Modelfile's SYSTEM and MESSAGEs go, the think level, built-in tool names, the
forced-tool-call prefill, the `keep` count the engine must never truncate, and the context
overflow policy at message level. Does not own: the harmony format (`ossy.harmony.render`) or
Go templates (`ossy.template`).

Two renderers:
  * harmony (`model.harmony`, the gpt-oss library TEMPLATE or none): `ossy.harmony.render`.
  * a custom Modelfile TEMPLATE: rendered by `ossy.template.OllamaTemplate` as Ollama renders
    it (collation, .Messages or legacy mode, .Think...), then tokenized with special tokens
    allowed (a template writes `<|start|>` as text). The output is read with the harmony parser
    when the template writes `<|start|>`, else as plain text (`ossy.chat.turn`).
Messages are OpenAI-style dicts (role, content, reasoning_content, tool_calls[].function
{name, arguments: JSON string}, tool_call_id, name); the server translates into that form.

Context overflow (prompt too long for num_ctx): "error" raises `ContextOverflowError` (400);
"truncate" drops the oldest messages after the system/developer ones (never the last user
message), as Ollama's `truncate: true`, and reports how many in a `truncated` warning.
"""

from __future__ import annotations

import datetime
import functools
from dataclasses import dataclass, field

from ossy import harmony
from ossy.chat.options import RequestError
from ossy.engine.protocol import ContextOverflowError, ResolvedModel
from ossy.harmony import tokens as T
from ossy.harmony.render import REASONING_EFFORTS, REASONING_KEYS, RenderError, _text, render_message

BUILTIN_TOOLS = {"browser.search": "browser", "browser.open": "browser", "browser.find": "browser",
                 "python": "python"}


@dataclass
class Prompt:
    ids: list[int]
    keep: int = 0  # leading tokens (system + developer) that truncation must keep
    prefill: list[int] = field(default_factory=list)  # tail of `ids` the output parser must see first
    warnings: list[dict] = field(default_factory=list)
    text: str | None = None  # the rendered template text (custom templates, raw prompts)


def think_level(think) -> str:
    """Ollama's `think` / OpenAI's reasoning effort -> harmony's level. gpt-oss cannot turn
    reasoning off, so false / "none" / "minimal" give "low" (the shortest trace)."""
    if think is None or think is True:
        return "medium"
    if think is False:
        return "low"
    if isinstance(think, str):
        level = {"none": "low", "minimal": "low", "max": "high", "xhigh": "high"}.get(think, think)
        if level in REASONING_EFFORTS:
            return level
    raise RequestError(f'think must be true, false, "low", "medium" or "high", not {think!r}', param="think")


def build(model: ResolvedModel, messages: list[dict], *, tools: list[dict] | None = None, think=None,
          tool_choice=None, format_instructions: str | None = None, num_ctx: int, room: int = 0,
          overflow: str = "truncate") -> Prompt:
    """The prompt for the next assistant turn, fitted to `num_ctx` with `room` tokens to spare."""
    messages = _with_model_defaults(model, messages, format_instructions)
    tools = list(tools or [])
    if tool_choice == "none":
        tools = []
    elif isinstance(tool_choice, str) and tool_choice not in ("auto", "required"):
        tools = [t for t in tools if _tool_name(t) == tool_choice]
    render = _harmony if model.harmony else _template
    # First without tokenizing: no token covers more than `longest_token` bytes, so a text of n
    # bytes is at least n / longest_token tokens; a huge message is refused or dropped unread.
    lower_bound = functools.partial(_at_least, longest=model.tokenizer.longest_token)
    messages, dropped = _fit(messages, lower_bound, "at least ", num_ctx=num_ctx, room=room, overflow=overflow)
    rendered: list[Prompt] = []

    def length(candidate: list[dict]) -> int:
        rendered.append(render(model, candidate, tools, think, tool_choice))
        return len(rendered[-1].ids)

    messages, more = _fit(messages, length, "", num_ctx=num_ctx, room=room, overflow=overflow)
    prompt, dropped = rendered[-1], dropped + more
    if dropped:
        prompt.warnings.append({"code": "truncated",
                                "detail": f"the prompt did not fit num_ctx {num_ctx}: dropped the {dropped} oldest "
                                          f"message(s) or tool exchanges"})
    return prompt


def _fit(messages: list[dict], length, qualifier: str, *, num_ctx: int, room: int,
         overflow: str) -> tuple[list[dict], int]:
    """Drop the oldest turns while `length(messages)` + `room` exceeds num_ctx ("truncate"), or
    raise when the prompt itself cannot fit; the messages kept and how many turns were dropped.
    `length` is called last on the messages returned."""
    dropped = 0
    while (n := length(messages)) + room > num_ctx:
        first = _first_droppable(messages) if overflow == "truncate" else None
        if first is None:
            if n < num_ctx:
                break  # it fits; only the room for the answer is short
            raise ContextOverflowError(f"the prompt is {qualifier}{n} tokens, longer than the context window "
                                       f"(num_ctx {num_ctx}); raise num_ctx or shorten the conversation")
        messages = messages[:first] + _drop_turn(messages[first:])
        dropped += 1
    return messages, dropped


def _at_least(messages: list[dict], longest: int) -> int:
    """A lower bound on the tokens of `messages`' text (content, reasoning, call arguments)."""
    size = 0
    for m in messages:
        texts = [m.get("content"), *(m.get(k) for k in REASONING_KEYS)]
        texts += [(call.get("function") or {}).get("arguments") for call in m.get("tool_calls") or []
                  if isinstance(call, dict)]
        size += sum(len(t.encode()) for t in texts if isinstance(t, str))
        if isinstance(m.get("content"), list):
            size += sum(len(str(p.get("text") or "").encode()) for p in m["content"] if isinstance(p, dict))
    return size // longest


def _with_model_defaults(model: ResolvedModel, messages: list[dict], format_instructions: str | None) -> list[dict]:
    """Modelfile MESSAGEs first; the Modelfile SYSTEM unless the request has its own."""
    out = [dict(m) for m in model.messages] + list(messages)
    if model.system and not any(m.get("role") in ("system", "developer") for m in messages):
        out.insert(0, {"role": "system", "content": model.system})
    if format_instructions:
        out.append({"role": "developer", "content": format_instructions})
    return out


def _first_droppable(messages: list[dict]) -> int | None:
    """Index of the oldest message truncation may drop: not system/developer, not the last user one."""
    last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=len(messages))
    for i, m in enumerate(messages):
        if m.get("role") not in ("system", "developer") and i < last_user:
            return i
    return None


def _drop_turn(rest: list[dict]) -> list[dict]:
    """Drop the first message; an assistant tool call goes together with its tool results."""
    first, rest = rest[0], rest[1:]
    if first.get("role") == "assistant" and first.get("tool_calls"):
        while rest and rest[0].get("role") == "tool":
            rest = rest[1:]
    return rest


def _tool_name(tool: dict) -> str | None:
    fn = tool.get("function") if isinstance(tool, dict) else None
    return fn.get("name") if isinstance(fn, dict) else None


def _harmony(model: ResolvedModel, messages: list[dict], tools: list[dict], think, tool_choice) -> Prompt:
    tok = model.tokenizer
    builtin = tuple(sorted({BUILTIN_TOOLS[n] for n in map(_tool_name, tools) if n in BUILTIN_TOOLS}))
    functions = [t for t in tools if _tool_name(t) not in BUILTIN_TOOLS]
    try:
        convo = harmony.conversation(messages, tools=functions, reasoning_effort=think_level(think),
                                     current_date=datetime.date.today().isoformat(), builtin_tools=builtin)
        ids = harmony.render_conversation(convo, tok)
        keep = sum(len(render_message(m, tok)) for m in convo if m.author in ("system", "developer"))
    except RenderError as e:
        raise RequestError(str(e), param="messages") from None
    prefill = _forced_call(tool_choice, functions, tok)
    return Prompt(ids + prefill, keep, prefill)


def _forced_call(tool_choice, functions: list[dict], tok) -> list[int]:
    """tool_choice "required" or a function name: the prompt ends inside a call's header, so the
    model's next message is a function call (it skips its analysis; a grammar will later allow
    both). "required" with several tools leaves the name to the model."""
    if tool_choice in (None, "auto", "none") or not functions:
        return []
    if tool_choice == "required" and len(functions) > 1:
        return [tok.token_id(T.CHANNEL), *tok.encode("commentary to=functions.")]
    name = _tool_name(functions[0]) if tool_choice == "required" else tool_choice
    return [tok.token_id(T.CHANNEL), *tok.encode(f"commentary to=functions.{name} "), tok.token_id(T.CONSTRAIN),
            *tok.encode("json"), tok.token_id(T.MESSAGE)]


def _template(model: ResolvedModel, messages: list[dict], tools: list[dict], think, tool_choice) -> Prompt:
    """A custom TEMPLATE, rendered as Ollama renders it and tokenized with special tokens."""
    from ossy.template import OllamaTemplate, TemplateError

    think = think if think is None or isinstance(think, bool) else think_level(think)
    try:
        text = OllamaTemplate(model.template).render([_ollama_message(m) for m in messages], tools=tools or None,
                                                     think=think)
    except TemplateError as e:
        raise RequestError(f"the model's TEMPLATE cannot render this request: {e}") from None
    return Prompt(model.tokenizer.encode(text, allow_special=True), 0, [], text=text)


def _ollama_message(message: dict) -> dict:
    """An OpenAI-style message as Ollama's templates see it (developer is system there)."""
    out = {"role": "system" if message.get("role") == "developer" else message.get("role"),
           "content": harmony_text(message.get("content"))}
    thinking = next((message[k] for k in REASONING_KEYS if message.get(k)), None)
    if thinking:
        out["thinking"] = thinking
    if message.get("tool_calls"):
        out["tool_calls"] = message["tool_calls"]
    if message.get("name"):
        out["tool_name"] = message["name"]
    if message.get("tool_call_id"):
        out["tool_call_id"] = message["tool_call_id"]
    return out


def harmony_text(content) -> str:
    try:
        return _text(content)
    except RenderError as e:
        raise RequestError(str(e), param="messages") from None
