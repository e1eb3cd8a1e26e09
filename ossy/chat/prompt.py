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
message), as Ollama's `truncate: true`, and reports how many in a `truncated` warning. The
fewest turns to drop are found by binary search, first on a lower bound computed from the text
alone (so a message far too long is never tokenized), then on rendered prompts; a request holds
at most `MAX_MESSAGES` messages. Either way the work stays O(n log n), whatever is sent.
"""

from __future__ import annotations

import datetime
import functools
import itertools
import math
from dataclasses import dataclass, field

from ossy import harmony
from ossy.chat.options import RequestError
from ossy.engine.protocol import ContextOverflowError, ResolvedModel
from ossy.harmony import tokens as T
from ossy.harmony.render import REASONING_EFFORTS, REASONING_KEYS, RenderError, content_text, render_message
from ossy.harmony.typescript import BUILTIN_TOOLS
from ossy.template import Budget, OllamaTemplate, TemplateError, TemplateLimitError

MAX_MESSAGES = 100_000  # per request: bounds the work of fitting a conversation to num_ctx


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
    if len(messages) > MAX_MESSAGES:
        raise RequestError(f"messages: {len(messages)} messages; at most {MAX_MESSAGES} are accepted",
                           param="messages")
    longest = model.tokenizer.longest_token
    # a template's output beyond num_ctx * longest characters cannot fit: it stops there
    render = _harmony if model.harmony else functools.partial(_template, max_output=num_ctx * longest)
    turns = _drop_order(messages) if overflow == "truncate" else []
    # First without tokenizing: no token covers more than `longest_token` bytes, so a text of n
    # bytes is at least n / longest_token tokens; a huge message is refused or dropped unread.
    sizes = [_text_bytes(m) for m in messages]
    dropped_bytes = list(itertools.accumulate((sum(sizes[i] for i in turn) for turn in turns), initial=0))
    least = _fewest_drops(lambda k: (sum(sizes) - dropped_bytes[k]) // longest, 0, len(turns), "at least ",
                          num_ctx=num_ctx, room=room)
    rendered: dict[int, Prompt] = {}

    def length(k: int) -> float:
        try:
            rendered[k] = render(model, _without(messages, turns[:k]), tools, think, tool_choice)
        except _TooLong:
            return math.inf
        return len(rendered[k].ids)

    dropped = _fewest_drops(length, least, len(turns), "", num_ctx=num_ctx, room=room)
    prompt = rendered[dropped]
    if dropped:
        prompt.warnings.append({"code": "truncated",
                                "detail": f"the prompt did not fit num_ctx {num_ctx}: dropped the {dropped} oldest "
                                          f"message(s) or tool exchanges"})
    return prompt


def _fewest_drops(length, fewest: int, most: int, qualifier: str, *, num_ctx: int, room: int) -> int:
    """The fewest turns to drop, between `fewest` and `most`, so that `length(k)` + `room` fits
    num_ctx (a binary search: dropping more never lengthens the prompt); `most` when even then
    only the room for the answer is short; else ContextOverflowError. `length` has been called
    with the number returned."""
    if length(fewest) + room <= num_ctx:
        return fewest
    n = length(most)
    if n + room > num_ctx:
        if n < num_ctx:
            return most  # it fits; only the room for the answer is short
        size = f"{qualifier}{n} tokens" if n != math.inf else f"more than {num_ctx} tokens"
        raise ContextOverflowError(f"the prompt is {size}, longer than the context window (num_ctx {num_ctx}); "
                                   f"raise num_ctx (options.num_ctx, PARAMETER num_ctx in the Modelfile, or "
                                   f"OSSY_CONTEXT_LENGTH for models that set none; agent clients such as Claude "
                                   f"Code and Codex send 15-30k tokens and want 64k) or shorten the conversation")
    while most - fewest > 1:  # `fewest` does not fit, `most` does
        middle = (fewest + most) // 2
        if length(middle) + room <= num_ctx:
            most = middle
        else:
            fewest = middle
    return most


def _text_bytes(message: dict) -> int:
    """Bytes of a message's text (content, reasoning, call arguments)."""
    texts = [message.get("content"), *(message.get(k) for k in REASONING_KEYS)]
    texts += [(call.get("function") or {}).get("arguments") for call in message.get("tool_calls") or []
              if isinstance(call, dict)]
    size = sum(len(t.encode()) for t in texts if isinstance(t, str))
    if isinstance(message.get("content"), list):
        size += sum(len(str(p.get("text") or "").encode()) for p in message["content"] if isinstance(p, dict))
    return size


def _with_model_defaults(model: ResolvedModel, messages: list[dict], format_instructions: str | None) -> list[dict]:
    """Modelfile MESSAGEs first; the Modelfile SYSTEM unless the request has its own."""
    out = [dict(m) for m in model.messages] + list(messages)
    if model.system and not any(m.get("role") in ("system", "developer") for m in messages):
        out.insert(0, {"role": "system", "content": model.system})
    if format_instructions:
        out.append({"role": "developer", "content": format_instructions})
    return out


def _drop_order(messages: list[dict]) -> list[list[int]]:
    """The turns truncation may drop, oldest first, as lists of message indices: each message
    before the last user one that is not system/developer; an assistant message with tool calls
    goes together with the tool results that follow it."""
    last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=len(messages))
    turns, i = [], 0
    while i < last_user:
        message = messages[i]
        i += 1
        if message.get("role") in ("system", "developer"):
            continue
        turn = [i - 1]
        if message.get("role") == "assistant" and message.get("tool_calls"):
            while i < len(messages) and messages[i].get("role") == "tool":
                turn.append(i)
                i += 1
        turns.append(turn)
    return turns


def _without(messages: list[dict], turns: list[list[int]]) -> list[dict]:
    gone = {i for turn in turns for i in turn}
    return [m for i, m in enumerate(messages) if i not in gone]


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


class _TooLong(Exception):
    """A template's output went past what num_ctx can hold."""


def _template(model: ResolvedModel, messages: list[dict], tools: list[dict], think, tool_choice, *,
              max_output: int) -> Prompt:
    """A custom TEMPLATE, rendered as Ollama renders it (at most `max_output` characters and
    `ossy.template`'s step limit) and tokenized with special tokens."""

    think = think if think is None or isinstance(think, bool) else think_level(think)
    try:
        text = OllamaTemplate(model.template).render([_ollama_message(m) for m in messages], tools=tools or None,
                                                     think=think, budget=Budget(max_output=max_output))
    except TemplateLimitError as e:
        if e.output:
            raise _TooLong() from None
        raise RequestError(f"the model's TEMPLATE cannot render this request: {e}") from None
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
        return content_text(content)
    except RenderError as e:
        raise RequestError(str(e), param="messages") from None
