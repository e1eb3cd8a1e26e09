"""ossy.harmony.render, token for token against openai-harmony 0.0.8 and the golden vectors of
docs/reference/gpt-oss-spec.md Appendix B.

Each case is an OpenAI-style conversation. `to_harmony` converts it to openai-harmony objects by
the mapping documented in `ossy/harmony/render.py`, written here independently of ossy's code;
openai-harmony renders it and ossy's tokens must be identical.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openai_harmony import (
    Author,
    Conversation,
    DeveloperContent,
    HarmonyEncodingName,
    Message,
    ReasoningEffort,
    Role,
    SystemContent,
    ToolDescription,
    load_harmony_encoding,
)

import ossy.tokenizer
from ossy.harmony import Message as HMessage
from ossy.harmony import RenderError, render, render_conversation
from ossy.harmony.render import conversation, render_message

IDENTITY = "You are ChatGPT, a large language model trained by OpenAI."
EFFORTS = {"low": ReasoningEffort.LOW, "medium": ReasoningEffort.MEDIUM, "high": ReasoningEffort.HIGH, None: None}


@pytest.fixture(scope="session")
def tok(vocab_dir):
    return ossy.tokenizer.load(vocab_dir / "o200k_base.tiktoken")


@pytest.fixture(scope="session")
def encoding(vocab_dir):
    return load_harmony_encoding(HarmonyEncodingName.HARMONY_GPT_OSS)


# --- the reference conversion (OpenAI messages -> openai-harmony objects) -------------------------


def text_of(content) -> str:
    if isinstance(content, list):
        return "".join(part["text"] for part in content)
    return content or ""


def to_harmony(messages, tools=None, reasoning_effort="medium", current_date=None, model_identity=IDENTITY,
               knowledge_cutoff="2024-06", builtin_tools=()) -> Conversation:  # fmt: skip
    system = SystemContent(
        model_identity=model_identity,
        reasoning_effort=EFFORTS[reasoning_effort],
        conversation_start_date=current_date,
        knowledge_cutoff=knowledge_cutoff,
    )
    if "browser" in builtin_tools:
        system = system.with_browser_tool()
    if "python" in builtin_tools:
        system = system.with_python_tool()
    out = [Message.from_role_and_content(Role.SYSTEM, system)]
    instructions = "\n\n".join(
        text_of(m.get("content")) for m in messages if m["role"] in ("system", "developer") and text_of(m.get("content"))
    )
    developer = DeveloperContent.new()
    if instructions:
        developer = developer.with_instructions(instructions)
    if tools:
        fns = [t["function"] for t in tools]
        developer = developer.with_function_tools(
            [ToolDescription.new(f["name"], f.get("description") or "", parameters=f.get("parameters")) for f in fns]
        )
    if instructions or tools:
        out.append(Message.from_role_and_content(Role.DEVELOPER, developer))
    names = {}
    for m in messages:
        if m["role"] == "user":
            out.append(Message.from_role_and_content(Role.USER, text_of(m["content"])))
        elif m["role"] == "assistant":
            reasoning = m.get("reasoning_content") or m.get("reasoning") or m.get("thinking")
            calls = m.get("tool_calls") or []
            if reasoning:
                out.append(Message.from_role_and_content(Role.ASSISTANT, reasoning).with_channel("analysis"))
            if text_of(m.get("content")):
                channel = "commentary" if calls else "final"
                out.append(Message.from_role_and_content(Role.ASSISTANT, text_of(m["content"])).with_channel(channel))
            for call in calls:
                fn = call["function"]
                names[call.get("id")] = fn["name"]
                args = fn["arguments"] if isinstance(fn["arguments"], str) else compact_json(fn["arguments"])
                builtin = fn["name"].split(".")[0] in ("python", "browser")
                out.append(
                    Message.from_role_and_content(Role.ASSISTANT, args)
                    .with_recipient(fn["name"] if builtin else f"functions.{fn['name']}")
                    .with_channel("analysis" if builtin else "commentary")
                    .with_content_type("code" if builtin else "<|constrain|>json")
                )
        elif m["role"] == "tool":
            name = m.get("name") or names[m["tool_call_id"]]
            builtin = name.split(".")[0] in ("python", "browser")
            author = Author.new(Role.TOOL, name if builtin else f"functions.{name}")
            out.append(
                Message.from_author_and_content(author, text_of(m["content"]))
                .with_recipient("assistant")
                .with_channel("analysis" if builtin else "commentary")
            )
    return Conversation.from_messages(out)


def compact_json(value) -> str:
    import json

    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


# --- tools of rising difficulty -------------------------------------------------------------------


def fn(name, description=None, parameters=None):
    function = {"name": name}
    if description is not None:
        function["description"] = description
    if parameters is not None:
        function["parameters"] = parameters
    return {"type": "function", "function": function}


OBJ = "object"
TOOLS = {
    "no_params": fn("get_time", "Returns the current UTC time."),
    "no_description": fn("ping"),
    "empty_object": fn("list_files", "Lists files.", {"type": OBJ, "properties": {}}),
    "one_string": fn("get_weather", "Gets weather.", {"type": OBJ, "properties": {"city": {"type": "string"}}, "required": ["city"]}),
    "scalars": fn("book", "Book a table.\nReturns a booking id.", {
        "type": OBJ,
        "properties": {
            "name": {"type": "string", "description": "Guest name"},
            "people": {"type": "integer", "description": "How many"},
            "budget": {"type": "number"},
            "terrace": {"type": "boolean", "description": "Outside?"},
        },
        "required": ["name", "people"],
    }),
    "enums_defaults": fn("convert", "Convert units.", {
        "type": OBJ,
        "properties": {
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "default": "celsius"},
            "label": {"type": "string", "default": "temp"},
            "precision": {"type": "integer", "default": 2},
            "scale": {"type": "number", "default": 0.5},
            "tiny": {"type": "number", "default": 1.5e-7},
            "huge": {"type": "number", "default": 1e21},
            "strict": {"type": "boolean", "default": False},
            "mode": {"enum": ["a", "b"]},
            "level": {"type": "integer", "enum": [1, 2, 3], "default": 1},
            "opts": {"type": "object", "default": {"a": [1, 2.0, None], "b": "x\"y"}},
        },
    }),
    "arrays": fn("stats", "Statistics.", {
        "type": OBJ,
        "properties": {
            "values": {"type": "array", "items": {"type": "number"}, "description": "Data"},
            "labels": {"type": "array", "items": {"type": "string", "enum": ["x", "y"]}},
            "anything": {"type": "array"},
            "matrix": {"type": "array", "items": {"type": "array", "items": {"type": "integer"}}},
            "points": {"type": "array", "items": {"type": OBJ, "properties": {"x": {"type": "number"}, "y": {"type": "number"}}, "required": ["x", "y"]}},
        },
        "required": ["values"],
    }),
    "nested": fn("create_user", "Create a user.", {
        "type": OBJ,
        "description": "The new user",
        "properties": {
            "profile": {
                "type": OBJ,
                "description": "Profile data",
                "properties": {
                    "name": {"type": "string"},
                    "address": {
                        "type": OBJ,
                        "description": "Postal address",
                        "properties": {"street": {"type": "string"}, "zip": {"type": "string", "description": "ZIP"}},
                        "required": ["street"],
                    },
                },
                "required": ["name"],
            },
            "tags": {"type": "array", "items": {"type": OBJ, "properties": {"k": {"type": "string"}, "v": {"type": "string"}}}},
        },
        "required": ["profile"],
    }),
    "nullable_unions": fn("search", "Search.", {
        "type": OBJ,
        "properties": {
            "q": {"type": "string", "nullable": True},
            "limit": {"type": ["integer", "null"]},
            "id": {"type": ["number", "string"], "default": -1},
            "after": {"type": ["string", "null"], "nullable": True},
            "raw": {},
        },
    }),
    "one_of": fn("schedule", "Schedule something.", {
        "type": OBJ,
        "properties": {
            "when": {
                "oneOf": [
                    {"type": "string", "description": "ISO date", "default": "today"},
                    {"type": "integer", "description": "Unix time", "nullable": True},
                ],
                "description": "When to run",
            },
            "repeat": {
                "oneOf": [{"type": "string", "enum": ["daily", "weekly"], "default": "daily", "description": "Repeat rule"},
                          {"type": "boolean"}],
                "description": "Repeat rule",
                "default": "never",
            },
            "priority": {"oneOf": [{"type": "number"}, {"type": "string", "enum": ["low", "high"]}], "default": 1},
        },
        "required": ["when"],
    }),
    "title_examples": fn("translate", "Translate text.", {
        "type": OBJ,
        "properties": {
            "text": {"type": "string", "title": "Text", "description": "What to translate", "examples": ["hello", "wie geht's"]},
            "target": {"type": "string", "title": "Target language", "examples": ["de", 3]},
            "glossary": {"type": "string", "examples": []},
        },
        "required": ["text", "target"],
    }),
    "kitchensink": fn("kitchensink", "A function with various complex schemas.", {
        "description": "params object",
        "type": OBJ,
        "properties": {
            "string": {"type": "string", "title": "STRING", "description": "A string", "examples": ["hello", "world"]},
            "string_nullable": {"type": "string", "nullable": True, "description": "A nullable string", "default": "the default"},
            "string_enum": {"type": "string", "enum": ["a", "b", "c"]},
            "oneof_string_or_number": {
                "oneOf": [
                    {"type": "string", "default": "default_string_in_oneof"},
                    {"type": "number", "description": "numbers can happen too"},
                ],
                "description": "a oneof",
                "default": 20,
            },
        },
    }),
    "top_level_one_of": fn("lookup", "Look up by id or by name.", {
        "oneOf": [
            {"type": OBJ, "properties": {"id": {"type": "integer"}}, "required": ["id"], "description": "by id"},
            {"type": OBJ, "properties": {"name": {"type": "string"}}, "default": {"name": "x"}},
            {"type": "string", "enum": ["me"], "default": "me"},
        ],
    }),
    "unicode_multiline": fn("notiz", "Speichert eine Notiz. 📝\r\nZweite Zeile\n\nNach Leerzeile\n", {
        "type": OBJ,
        "properties": {"inhalt": {"type": "string", "description": "Der Text\nüber zwei Zeilen"}, "größe": {"type": "integer"}},
        "required": ["inhalt"],
    }),
    "odd_line_ends": fn("odd", "a\r\r\nb\u2028c\x85d\r", {"type": OBJ, "properties": {"v": {"type": "string", "description": "x\r\ny"}}}),
}  # fmt: skip

WEATHER = TOOLS["one_string"]
USER = {"role": "user", "content": "What is 2 + 2?"}


def call(id_, name, arguments):
    return {"id": id_, "type": "function", "function": {"name": name, "arguments": arguments}}


def case(messages, **kwargs):
    return messages, kwargs


CASES = {
    # roles, efforts, dates, identity
    "user_only": case([USER]),
    "no_messages": case([]),
    "effort_low": case([USER], reasoning_effort="low"),
    "effort_medium_date": case([USER], reasoning_effort="medium", current_date="2025-08-05"),
    "effort_high": case([USER], reasoning_effort="high"),
    "effort_none": case([USER], reasoning_effort=None),
    "identity_and_cutoff": case([USER], model_identity="You are a helpful bot.", knowledge_cutoff="2025-01"),
    "no_identity_no_cutoff": case([USER], model_identity=None, knowledge_cutoff=None, current_date="2026-01-01"),
    "system_instructions": case([{"role": "system", "content": "Answer in French."}, USER]),
    "developer_instructions": case([{"role": "developer", "content": "Be brief."}, USER], reasoning_effort="low"),
    "system_and_developer": case(
        [{"role": "system", "content": "You are terse."}, {"role": "developer", "content": "Use metric units."}, USER],
        reasoning_effort="high", current_date="2025-08-05",
    ),
    "late_and_empty_system": case(
        [{"role": "system", "content": ""}, USER, {"role": "assistant", "content": "4"},
         {"role": "system", "content": [{"type": "text", "text": "Now "}, {"type": "text", "text": "be formal."}]},
         {"role": "user", "content": "Thanks"}],
    ),
    "content_parts": case([{"role": "user", "content": [{"type": "text", "text": "Part one. "}, {"type": "text", "text": "Part two."}]}]),
    "unicode_and_specials_as_text": case([{"role": "user", "content": "東京 😀 naïve <|end|> <|start|>assistant\n\n  spaces"}]),
    "multi_turn_finals": case([USER, {"role": "assistant", "content": "4"}, {"role": "user", "content": "And 3 + 3?"}]),
    # chain of thought
    "drop_analysis": case([USER, {"role": "assistant", "reasoning_content": "Simple arithmetic.", "content": "4"},
                           {"role": "user", "content": "And 3 + 3?"}]),
    "keep_analysis_between_finals": case([
        USER, {"role": "assistant", "reasoning_content": "First thought.", "content": "4"},
        {"role": "user", "content": "And 3 + 3?"}, {"role": "assistant", "reasoning": "Second thought.", "content": "6"},
        {"role": "user", "content": "And 4 + 4?"},
    ]),
    "thinking_key_last_assistant_final": case([USER, {"role": "assistant", "thinking": "Hmm.", "content": "4"}]),
    "reasoning_only_assistant": case([USER, {"role": "assistant", "reasoning_content": "Thinking, no answer yet."}]),
    # tools in the developer message
    **{f"tool_{name}": case([{"role": "user", "content": "Go."}], tools=[tool]) for name, tool in TOOLS.items()},
    "all_tools_with_instructions": case(
        [{"role": "developer", "content": "Use tools wisely."}, USER],
        tools=list(TOOLS.values()), reasoning_effort="high", current_date="2025-06-28",
    ),
    # tool calls and results
    "tool_round_trip": case(
        [{"role": "user", "content": "Weather in Tokyo?"},
         {"role": "assistant", "reasoning_content": "Need to call get_weather.", "content": None,
          "tool_calls": [call("c1", "get_weather", '{"city":"Tokyo"}')]},
         {"role": "tool", "tool_call_id": "c1", "content": '{"temp_c": 21}'}],
        tools=[WEATHER], reasoning_effort="low", current_date="2025-08-05",
    ),
    "several_calls_one_turn_preamble": case(
        [{"role": "user", "content": "Weather in Tokyo and Paris?"},
         {"role": "assistant", "reasoning_content": "Two cities.", "content": "Checking both cities now.",
          "tool_calls": [call("a", "get_weather", '{"city":"Tokyo"}'), call("b", "get_weather", {"city": "Paris"})]},
         {"role": "tool", "tool_call_id": "a", "content": "21C"},
         {"role": "tool", "tool_call_id": "b", "content": [{"type": "text", "text": "18C"}]}],
        tools=[WEATHER, TOOLS["scalars"]],
    ),
    "tool_result_by_name": case(
        [USER, {"role": "assistant", "tool_calls": [call("x", "book", {"name": "Ann", "people": 2})]},
         {"role": "tool", "name": "book", "content": "booked #12"}],
        tools=[TOOLS["scalars"]],
    ),
    "tool_loop_then_final_then_user": case(
        [{"role": "user", "content": "Weather?"},
         {"role": "assistant", "reasoning_content": "Call it.", "tool_calls": [call("1", "get_weather", '{"city":"Oslo"}')]},
         {"role": "tool", "tool_call_id": "1", "content": "-3C"},
         {"role": "assistant", "reasoning_content": "Got it.", "content": "It is -3C in Oslo."},
         {"role": "user", "content": "Thanks! And Rome?"}],
        tools=[WEATHER], reasoning_effort="high",
    ),
    "tool_loop_open_after_finished_turn": case(
        [USER, {"role": "assistant", "reasoning_content": "Easy.", "content": "4"},
         {"role": "user", "content": "Weather in Rome?"},
         {"role": "assistant", "reasoning_content": "Call tool.", "tool_calls": [call("r", "get_weather", '{"city": "Rome"}')]},
         {"role": "tool", "tool_call_id": "r", "content": "25C"}],
        tools=[WEATHER],
    ),
    "two_tool_loops": case(
        [{"role": "system", "content": "Be helpful."}, {"role": "user", "content": "Book and check."},
         {"role": "assistant", "reasoning_content": "First book.", "tool_calls": [call("1", "book", '{"name":"Bo","people":3}')]},
         {"role": "tool", "tool_call_id": "1", "content": "ok"},
         {"role": "assistant", "reasoning_content": "Now weather.", "content": "Booked; checking weather.",
          "tool_calls": [call("2", "get_weather", '{"city":"Bern"}')]},
         {"role": "tool", "tool_call_id": "2", "content": "sunny"}],
        tools=[TOOLS["scalars"], WEATHER], current_date="2025-08-05",
    ),
    # built-in tools
    "builtin_browser": case([USER], builtin_tools=("browser",)),
    "builtin_python": case([USER], builtin_tools=("python",), reasoning_effort="low"),
    "builtin_python_call_and_result": case(
        [USER, {"role": "assistant", "reasoning_content": "Compute it.",
                "tool_calls": [call("p", "python", "print(6 * 7)")]},
         {"role": "tool", "tool_call_id": "p", "content": "42\n"}],
        builtin_tools=("python",),
    ),
    "builtin_browser_calls_and_results": case(
        [USER, {"role": "assistant", "reasoning_content": "Search.",
                "tool_calls": [call("s", "browser.search", {"query": "ossy", "topn": 3})]},
         {"role": "tool", "tool_call_id": "s", "content": "[0] results"},
         {"role": "assistant", "tool_calls": [call("o", "browser.open", {"id": 1})]},
         {"role": "tool", "name": "browser.open", "content": "L0: text"}],
        builtin_tools=("browser",),
    ),
    "builtin_both_and_functions": case(
        [{"role": "developer", "content": "Research carefully."}, USER],
        builtin_tools=("python", "browser"), tools=[WEATHER, TOOLS["kitchensink"]], current_date="2025-08-05",
    ),
}  # fmt: skip


def test_enough_cases():
    assert len(CASES) >= 40
    assert len(TOOLS) >= 10


@pytest.mark.parametrize("name", CASES)
def test_equal_to_openai_harmony(name, tok, encoding):
    messages, kwargs = CASES[name]
    expected = encoding.render_conversation_for_completion(to_harmony(messages, **kwargs), Role.ASSISTANT)
    got = render(messages, tok, **kwargs)
    assert tok.decode(got) == encoding.decode_utf8(expected)
    assert got == expected


def test_hf_tokenizer_json_renders_the_same(vocab_dir, tok):
    hf = ossy.tokenizer.load(vocab_dir / "gpt-oss" / "tokenizer.json")
    for name in ("tool_round_trip", "builtin_both_and_functions", "keep_analysis_between_finals"):
        messages, kwargs = CASES[name]
        assert render(messages, hf, **kwargs) == render(messages, tok, **kwargs)


# --- random schemas -------------------------------------------------------------------------------

TEXT = st.text(alphabet=st.sampled_from(list("ab Z_\"\\\n\r\t/é😀")), max_size=6)
# Floats serde_json parses exactly (few digits, |exponent| <= 22): harmony's serde_json float parser
# is not correctly rounded beyond that (1e-23 comes out one ulp off there), a difference we accept.
FLOAT = st.builds(lambda m, e: float(f"{m}e{e}"), st.integers(-999, 999), st.integers(-22, 22))
SCALAR = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), TEXT, FLOAT)
JSON_VALUE = st.recursive(SCALAR, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3), max_leaves=6)
TYPE = st.sampled_from(["string", "number", "integer", "boolean", "array", "object", "null", "weird"])


def schemas(children):
    fields = {
        "type": TYPE | st.lists(TYPE | st.integers(), max_size=3),
        "description": TEXT | st.integers(),
        "title": TEXT,
        "examples": st.lists(TEXT | st.integers(), max_size=2),
        "enum": st.lists(TEXT | st.integers(), max_size=3),
        "default": JSON_VALUE,
        "nullable": st.booleans() | st.just(1),
        "items": children,
        "oneOf": st.lists(children, max_size=3),
        "properties": st.dictionaries(TEXT, children, max_size=3),
        "required": st.lists(TEXT, max_size=2),
    }
    return st.fixed_dictionaries({}, optional=fields)


SCHEMA = st.recursive(st.fixed_dictionaries({"type": TYPE}), schemas, max_leaves=8)


@settings(max_examples=150, deadline=None)
@given(parameters=SCHEMA, description=TEXT)
def test_random_schemas_equal_to_openai_harmony(tok, encoding, parameters, description):
    tools = [fn("f", description, parameters)]
    expected = encoding.render_conversation_for_completion(to_harmony([], tools=tools), Role.ASSISTANT)
    assert render([], tok, tools=tools) == expected


# --- golden vectors (docs/reference/gpt-oss-spec.md Appendix B)


@pytest.fixture(scope="session")
def appendix_b() -> dict[str, str]:
    spec = (Path(__file__).resolve().parents[1] / "docs" / "reference" / "gpt-oss-spec.md").read_text(encoding="utf-8")
    body = spec[spec.index("## Appendix B") :]
    parts = re.split(r"\n\*\*([A-F])\. ", body)
    return dict(zip(parts[1::2], parts[2::2]))


def golden_tokens(section: str) -> list[int]:
    return [int(x) for x in re.search(r"Tokens: `\[([\d, ]+)\]`", section).group(1).split(",")]


def golden_text(section: str) -> str:
    return re.search(r"```text\n(.*?)\n```", section, re.S).group(1)


DATE = "2025-08-05"
GOLDEN_B_TOOLS = [
    fn("get_time", "Returns the current UTC time."),
    fn("get_current_weather", "Gets the current weather in the provided location.", {
        "type": "object",
        "properties": {
            "location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"},
            "format": {"type": "string", "enum": ["celsius", "fahrenheit"], "default": "celsius"},
            "days": {"type": "integer", "description": "Forecast days", "default": 1},
            "detailed": {"type": "boolean"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "options": {"type": "object", "description": "Extra options",
                        "properties": {"units": {"type": "string", "nullable": True}, "max": {"type": "number"}},
                        "required": ["max"]},
            "points": {"type": "array", "items": {"type": "object", "properties": {"x": {"type": "number"}, "y": {"type": "number"}},
                                                  "required": ["x", "y"]}},
        },
        "required": ["location"],
    }),
]  # fmt: skip


def test_golden_a(appendix_b, tok):
    ids = render([USER], tok, current_date=DATE)
    assert ids == golden_tokens(appendix_b["A"]) and len(ids) == 75


def test_golden_b(appendix_b, tok):
    messages = [{"role": "developer", "content": "Answer concisely."}, {"role": "user", "content": "Weather in Tokyo?"}]
    ids = render(messages, tok, tools=GOLDEN_B_TOOLS, reasoning_effort="low", current_date=DATE)
    assert tok.decode(ids) == golden_text(appendix_b["B"])
    assert ids == golden_tokens(appendix_b["B"]) and len(ids) == 244


def test_golden_c(appendix_b, tok):
    messages, kwargs = CASES["tool_round_trip"]
    ids = render(messages, tok, **kwargs)
    assert tok.decode(ids) == golden_text(appendix_b["C"])
    assert ids == golden_tokens(appendix_b["C"]) and len(ids) == 171


def test_golden_d_low_level_messages(appendix_b, tok):
    """D has no system message: rendered from raw harmony messages (the agent-loop API)."""
    msgs = [
        HMessage("user", "What is 2 + 2?"),
        HMessage("assistant", "Simple arithmetic.", channel="analysis"),
        HMessage("assistant", "4", channel="final"),
        HMessage("user", "And 3 + 3?"),
    ]
    assert render_conversation(msgs, tok) == golden_tokens(appendix_b["D"])


def test_golden_e_builtin_system_message(appendix_b, tok):
    (system,) = conversation([], builtin_tools=("browser", "python"), current_date=DATE)
    ids = render_message(system, tok)
    assert ids == tok.encode(golden_text(appendix_b["E"]), allow_special=True) and len(ids) == 595


# --- the agent-loop API and errors ----------------------------------------------------------------


def test_raw_builtin_call_and_result(tok, encoding):
    """Built-in tool calls and results appended as raw harmony messages render as harmony does."""
    messages, kwargs = CASES["builtin_python"]
    msgs = [
        *conversation(messages, **kwargs),
        HMessage("assistant", "print(2 + 2)", channel="analysis", recipient="python", content_type="code"),
        HMessage("python", "4\n", channel="analysis", recipient="assistant"),
    ]
    ref = to_harmony(messages, **kwargs).messages + [
        Message.from_role_and_content(Role.ASSISTANT, "print(2 + 2)").with_channel("analysis").with_recipient("python").with_content_type("code"),
        Message.from_author_and_content(Author.new(Role.TOOL, "python"), "4\n").with_channel("analysis").with_recipient("assistant"),
    ]  # fmt: skip
    expected = encoding.render_conversation_for_completion(Conversation.from_messages(ref), Role.ASSISTANT)
    assert render_conversation(msgs, tok) == expected


@pytest.mark.parametrize(
    "messages,kwargs",
    [
        ([{"role": "tool", "tool_call_id": "nope", "content": "x"}], {}),
        ([{"role": "robot", "content": "x"}], {}),
        (["just a string"], {}),
        ([USER], {"tools": ["not a tool"]}),
        ([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}], {}),
        ([USER], {"reasoning_effort": "extreme"}),
        ([USER], {"builtin_tools": ("shell",)}),
        ([USER], {"tools": [{"type": "web_search"}]}),
        ([{"role": "assistant", "tool_calls": [{"id": "1", "function": {}}]}], {}),
    ],
)
def test_bad_requests_raise_render_error(tok, messages, kwargs):
    with pytest.raises(RenderError):
        render(messages, tok, **kwargs)
