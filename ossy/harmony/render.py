"""Rendering prompts: OpenAI chat messages -> harmony tokens, exactly as openai-harmony 0.0.8 does.

Owns: the mapping from OpenAI chat messages (what the HTTP layers receive) to harmony messages,
the system and developer message texts, dropping old chain-of-thought, and turning harmony
messages into token ids. Does not own: the `# Tools` text (`ossy.harmony.typescript`), token ids
(always `tokenizer.token_id(name)`), or parsing model output (`ossy.harmony.parser`).

The mapping (`conversation()`), in the order the harmony messages are rendered:

* **system** (always first, harmony `SystemContent`): `model_identity`, `Knowledge cutoff:`,
  `Current date:` (only if `current_date` is given), `Reasoning: {reasoning_effort}` (left out
  when it is None), the built-in `browser`/`python` namespaces (`builtin_tools`, alphabetical),
  and the valid-channels line, plus "Calls to these tools must go to the commentary channel:
  'functions'." when there are function tools.
* **developer** (harmony `DeveloperContent`, only if there are instructions or tools):
  `# Instructions` holds the content of every OpenAI `system` and `developer` message, wherever it
  stands in the list, in order, joined by a blank line (empty ones skipped), as the HF chat
  template and vLLM put the system prompt there; then the `functions` namespace built from
  `tools` (OpenAI function tools: name, description, JSON Schema `parameters`).
* **user** -> `user` message with the text.
* **assistant** -> up to three kinds of harmony messages, in this order:
  `reasoning_content` (or `reasoning`, or `thinking`) -> `assistant` on channel `analysis`;
  `content` -> channel `commentary` (a preamble) if the message has `tool_calls`, else channel
  `final`; each tool call -> `assistant` to `functions.{name}` on `commentary` with content type
  `<|constrain|>json`, content = `arguments` (a JSON string as given; a dict is written as
  compact JSON), ended by `<|call|>` (the form harmony replays, recipient before channel). A
  call to a built-in (`python`, `browser.*`) goes to that name on `analysis` with content type
  `code`, as the model generates it (docs/reference/gpt-oss-spec.md §5.5).
* **tool** -> author `functions.{name}` to `assistant` on `commentary`, content = the result;
  a built-in's result is authored by its own name on `analysis`.
  `name` is the message's `name`, else the name of the earlier tool call whose `id` is
  `tool_call_id`.
* Content may be a string or a list of OpenAI text parts (joined without separator). Empty or
  missing content makes no message. Other roles or part types raise `RenderError`.
* Chain of thought: as openai-harmony's `auto_drop_analysis` (docs/reference/gpt-oss-spec.md §5.6):
  if the last assistant message is `final`, the `analysis` messages before the first `final` message are dropped;
  while a tool loop is open (last assistant message not final) everything is kept.

`render()` returns the tokens of all that plus `<|start|>assistant`. An agent loop that holds raw
harmony messages (built-in tool calls and results, model output) can append them to
`conversation(...)` and call `render_conversation()`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from ossy.errors import OssyError
from ossy.harmony import tokens as T
from ossy.harmony.typescript import BUILTIN_NAMESPACES, Function, Namespace, tools_section

DEFAULT_IDENTITY = "You are ChatGPT, a large language model trained by OpenAI."
REASONING_EFFORTS = ("low", "medium", "high")
CHANNELS_LINE = "# Valid channels: analysis, commentary, final. Channel must be included for every message."
FUNCTIONS_LINE = "Calls to these tools must go to the commentary channel: 'functions'."
REASONING_KEYS = ("reasoning_content", "reasoning", "thinking")
SEPARATOR = "\n\n"  # between texts joined into one message (instructions, text blocks, content)


class RenderError(OssyError):
    """A chat request that cannot be written as a harmony prompt."""


@dataclass(frozen=True)
class Message:
    """One harmony message. `author` is a role (system, developer, user, assistant) or, for a
    tool's output, the tool's name (`functions.get_weather`, `python`, `browser.search`)."""

    author: str
    content: str
    channel: str | None = None
    recipient: str | None = None
    content_type: str | None = None


def render(
    messages: list[dict],
    tokenizer,
    *,
    tools: list[dict] | None = None,
    reasoning_effort: str | None = "medium",
    current_date: str | None = None,
    model_identity: str | None = DEFAULT_IDENTITY,
    knowledge_cutoff: str | None = "2024-06",
    builtin_tools: tuple[str, ...] = (),
) -> list[int]:
    """Token ids of the prompt for the next assistant turn (ends with `<|start|>assistant`)."""
    harmony = conversation(
        messages,
        tools=tools,
        reasoning_effort=reasoning_effort,
        current_date=current_date,
        model_identity=model_identity,
        knowledge_cutoff=knowledge_cutoff,
        builtin_tools=builtin_tools,
    )
    return render_conversation(harmony, tokenizer)


def conversation(
    messages: list[dict],
    *,
    tools: list[dict] | None = None,
    reasoning_effort: str | None = "medium",
    current_date: str | None = None,
    model_identity: str | None = DEFAULT_IDENTITY,
    knowledge_cutoff: str | None = "2024-06",
    builtin_tools: tuple[str, ...] = (),
) -> list[Message]:
    """The harmony messages for OpenAI chat `messages` (the mapping in the module docstring)."""
    if not all(isinstance(m, dict) for m in messages):
        raise RenderError("every message must be an object with a role")
    functions = [_function(tool) for tool in tools or []]
    header = [
        Message(
            "system",
            system_text(reasoning_effort, current_date, model_identity, knowledge_cutoff, builtin_tools, bool(functions)),
        )
    ]
    instructions = [content_text(m.get("content")) for m in messages if m.get("role") in ("system", "developer")]
    developer = developer_text(SEPARATOR.join(text for text in instructions if text), functions)
    if developer:
        header.append(Message("developer", developer))
    return header + _chat_messages(messages)


def system_text(
    reasoning_effort: str | None,
    current_date: str | None,
    model_identity: str | None,
    knowledge_cutoff: str | None,
    builtin_tools: tuple[str, ...],
    has_functions: bool,
) -> str:
    top = [model_identity] if model_identity is not None else []
    top += [f"Knowledge cutoff: {knowledge_cutoff}"] if knowledge_cutoff is not None else []
    top += [f"Current date: {current_date}"] if current_date is not None else []
    sections = ["\n".join(top)] if top else []
    if reasoning_effort is not None:
        if reasoning_effort not in REASONING_EFFORTS:
            raise RenderError(f"reasoning_effort must be one of {', '.join(REASONING_EFFORTS)}, not {reasoning_effort!r}")
        sections.append(f"Reasoning: {reasoning_effort}")
    if builtin_tools:
        sections.append(tools_section([_builtin(name) for name in sorted(set(builtin_tools))]))
    sections.append(CHANNELS_LINE + ("\n" + FUNCTIONS_LINE if has_functions else ""))
    return SEPARATOR.join(sections)


def developer_text(instructions: str, functions: list[Function]) -> str:
    """`# Instructions` + text, then the `functions` namespace; "" when there is neither."""
    sections = ["# Instructions", instructions] if instructions else []
    if functions:
        sections.append(tools_section([Namespace("functions", None, tuple(functions))]))
    return SEPARATOR.join(sections)


def _builtin(name: str) -> Namespace:
    if name not in BUILTIN_NAMESPACES:
        raise RenderError(f"unknown built-in tool {name!r} (known: {', '.join(sorted(BUILTIN_NAMESPACES))})")
    return BUILTIN_NAMESPACES[name]


def _function(tool: dict) -> Function:
    fn = tool.get("function") if isinstance(tool, dict) else None
    if not isinstance(fn, dict) or tool.get("type", "function") != "function" or not fn.get("name"):
        raise RenderError(f"not an OpenAI function tool: {tool!r}")
    return Function(fn["name"], fn.get("description") or "", fn.get("parameters"))


def _chat_messages(messages: list[dict]) -> list[Message]:
    out: list[Message] = []
    call_names: dict[str, str] = {}  # tool_call id -> function name
    for message in messages:
        role = message.get("role")
        if role == "user":
            out += _if_text(Message("user", content_text(message.get("content"))))
        elif role == "assistant":
            out += _assistant(message, call_names)
        elif role == "tool":
            out.append(_tool_result(message, call_names))
        elif role not in ("system", "developer"):
            raise RenderError(f"unknown message role {role!r}")
    return out


def _assistant(message: dict, call_names: dict[str, str]) -> list[Message]:
    reasoning = next((message[k] for k in REASONING_KEYS if message.get(k)), None)
    calls = message.get("tool_calls") or []
    out = _if_text(Message("assistant", content_text(reasoning), channel="analysis"))
    out += _if_text(Message("assistant", content_text(message.get("content")), channel="commentary" if calls else "final"))
    for call in calls:
        name, arguments = _call(call)
        if call.get("id"):
            call_names[call["id"]] = name
        if _is_builtin_call(name):
            out.append(Message("assistant", arguments, "analysis", name, "code"))
        else:
            out.append(Message("assistant", arguments, "commentary", f"functions.{name}", "<|constrain|>json"))
    return out


def _is_builtin_call(name: str) -> bool:
    """A call to a built-in tool (`python`, `browser.search`...): analysis channel, no functions. prefix."""
    return name.split(".")[0] in BUILTIN_NAMESPACES


def _call(call: dict) -> tuple[str, str]:
    fn = call.get("function") if isinstance(call, dict) else None
    if not isinstance(fn, dict) or not fn.get("name"):
        raise RenderError(f"not an OpenAI tool call: {call!r}")
    arguments = fn.get("arguments")
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments if arguments is not None else {}, ensure_ascii=False, separators=(",", ":"))
    return fn["name"], arguments


def _tool_result(message: dict, call_names: dict[str, str]) -> Message:
    name = message.get("name") or call_names.get(message.get("tool_call_id"))
    if not name:
        raise RenderError(f"tool message without a name or a known tool_call_id: {message.get('tool_call_id')!r}")
    if _is_builtin_call(name):
        return Message(name, content_text(message.get("content")), "analysis", "assistant")
    return Message(f"functions.{name}", content_text(message.get("content")), "commentary", "assistant")


def content_text(content) -> str:
    """The text of an OpenAI `content`: a string, a list of text parts, or None."""
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list) and all(isinstance(p, dict) and p.get("type") == "text" for p in content):
        return "".join(str(p.get("text") or "") for p in content)
    raise RenderError(f"unsupported message content (only text is supported): {content!r:.200}")


def _if_text(message: Message) -> list[Message]:
    return [message] if message.content else []


def render_conversation(messages: list[Message], tokenizer, *, next_role: str = "assistant") -> list[int]:
    """Tokens of harmony `messages` plus `<|start|>{next_role}`, old analysis dropped."""
    ids: list[int] = []
    for message in drop_old_analysis(messages):
        ids += render_message(message, tokenizer)
    return ids + [tokenizer.token_id(T.START), *tokenizer.encode(next_role)]


def drop_old_analysis(messages: list[Message]) -> list[Message]:
    """openai-harmony's `auto_drop_analysis`: if the last assistant message is final, drop the
    analysis messages before the first final message (later ones are kept, as harmony does)."""
    last_assistant = next((m for m in reversed(messages) if m.author == "assistant"), None)
    if last_assistant is None or last_assistant.channel != "final":
        return list(messages)
    first_final = next(i for i, m in enumerate(messages) if m.channel == "final")
    return [m for i, m in enumerate(messages) if not (i < first_final and m.channel == "analysis")]


def render_message(message: Message, tokenizer) -> list[int]:
    """`<|start|>{author}[ to=R][<|channel|>C][ type]<|message|>{content}<|end|>` (or `<|call|>`
    for an assistant message with a recipient); each text piece is encoded on its own, as harmony
    does."""
    special, text = tokenizer.token_id, tokenizer.encode
    ids = [special(T.START), *text(message.author)]
    if message.recipient is not None and message.recipient != "all":
        ids += text(f" to={message.recipient}")
    if message.channel is not None:
        ids += [special(T.CHANNEL), *text(message.channel)]
    if message.content_type is not None:
        ids += _content_type(message.content_type, tokenizer)
    ids += [special(T.MESSAGE), *text(message.content)]
    ends_in_call = message.author == "assistant" and message.recipient is not None
    return ids + [special(T.CALL if ends_in_call else T.END)]


def _content_type(content_type: str, tokenizer) -> list[int]:
    if not content_type.startswith(T.CONSTRAIN):
        return tokenizer.encode(f" {content_type}")
    rest = content_type[len(T.CONSTRAIN) :]
    return [*tokenizer.encode(" "), tokenizer.token_id(T.CONSTRAIN), *tokenizer.encode(rest)]
