"""ossy.harmony's parser against openai-harmony's `StreamableParser` on well-formed outputs, and the
OpenAI-style reading (fields, tool calls, events, stop reasons) of the same outputs."""

from __future__ import annotations

import functools

import pytest
from conftest import VOCAB
from openai_harmony import HarmonyEncodingName, Role, StreamableParser, load_harmony_encoding

import ossy.tokenizer
from ossy.harmony import (
    Done,
    MessageFinished,
    ParseWarning,
    StreamParser,
    TextDelta,
    ToolCallDelta,
    ToolCallFinished,
    ToolCallStarted,
    message_terminator_ids,
    parse,
    stop_token_ids,
)

S = "<|start|>assistant"
CALL_WEATHER = '<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{"city":"Tokyo"}<|call|>'

# Well-formed completions (what follows the prompt's <|start|>assistant), all accepted by harmony.
STREAMS = {
    "final_only": "<|channel|>final<|message|>Hello! How can I help?<|return|>",
    "final_no_stop_token": "<|channel|>final<|message|>Paris is the capital of France.",
    "analysis_final": f"<|channel|>analysis<|message|>User greets. Reply.<|end|>{S}<|channel|>final<|message|>Hi there.<|return|>",
    "analysis_final_no_stop": f"<|channel|>analysis<|message|>Think.<|end|>{S}<|channel|>final<|message|>Done",
    "spec_example_channel_first": f"<|channel|>analysis<|message|>Need weather.<|end|>{S}{CALL_WEATHER}",
    "call_first_message": CALL_WEATHER,
    "call_recipient_first": 'to=functions.get_weather<|channel|>commentary <|constrain|>json<|message|>{"city":"Paris"}<|call|>',
    "call_recipient_first_later": f"<|channel|>analysis<|message|>Check.<|end|>{S} to=functions.lookup<|channel|>commentary <|constrain|>json<|message|>{{\"q\":1}}<|call|>",
    "call_no_space_before_constrain": '<|channel|>commentary to=functions.get_weather<|constrain|>json<|message|>{"city":"Rome"}<|call|>',
    "call_plain_json_type": '<|channel|>commentary to=functions.get_weather json<|message|>{"city":"Oslo"}<|call|>',
    "call_no_content_type": "<|channel|>commentary to=functions.get_time<|message|>{}<|call|>",
    "call_without_stop_token": '<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{"city":"Lima"}',
    "call_on_analysis_channel": '<|channel|>analysis to=functions.search <|constrain|>json<|message|>{"q":"x"}<|call|>',
    "preamble_then_call": (
        f"<|channel|>analysis<|message|>Need to look it up.<|end|>{S}<|channel|>commentary<|message|>Let me check the "
        f"forecast.<|end|>{S}{CALL_WEATHER}"
    ),
    "preamble_then_final": f"<|channel|>commentary<|message|>Working on it.<|end|>{S}<|channel|>final<|message|>Done.<|return|>",
    "two_calls": (
        f"{CALL_WEATHER}{S}<|channel|>commentary to=functions.get_time <|constrain|>json<|message|>"
        '{"tz":"Asia/Tokyo"}<|call|>'
    ),
    "browser_search": f"<|channel|>analysis<|message|>Search it.<|end|>{S}<|channel|>analysis to=browser.search code<|message|>"
    '{"query": "openai harmony format", "topn": 5}<|call|>',
    "browser_open_recipient_first": (
        f'<|channel|>analysis<|message|>Open result 3.<|end|>{S} to=browser.open<|channel|>analysis code<|message|>'
        '{"id": 3, "loc": 120}<|call|>'
    ),
    "browser_find_no_type": '<|channel|>analysis to=browser.find<|message|>{"pattern": "gpt-oss"}<|call|>',
    "python_code": "<|channel|>analysis to=python code<|message|>import math\nprint(math.sqrt(2))\n<|call|>",
    "python_recipient_first": "to=python<|channel|>analysis code<|message|>x = [i*i for i in range(5)]\nx<|call|>",
    "unicode": (
        f"<|channel|>analysis<|message|>思考中… 🤔 Ünïcödé ✓<|end|>{S}<|channel|>final<|message|>"
        "Résumé: naïve café — 東京 👍🏽 👨‍👩‍👧<|return|>"
    ),
    "unicode_arguments": '<|channel|>commentary to=functions.translate <|constrain|>json<|message|>{"text":"こんにちは 🌸","to":"fr"}<|call|>',
    "nested_multiline_arguments": (
        "<|channel|>commentary to=functions.write_file <|constrain|>json<|message|>"
        '{\n  "path": "src/a.js",\n  "content": "/** doc */\\nfunction f() { return {a: [1, 2]}; }\\n",\n'
        '  "options": {"mode": "w", "tags": ["x", "y"]}\n}<|call|>'
    ),
    "hyphenated_tool_name": '<|channel|>commentary to=functions.web-browsing <|constrain|>json<|message|>{"url":"https://x.org"}<|call|>',
    "markdown_final": (
        f"<|channel|>analysis<|message|>Write code.<|end|>{S}<|channel|>final<|message|># Title\n\n```python\n"
        "def f(x):\n    return {'a': x}\n```\n\n- item 1\n- item 2\n<|return|>"
    ),
    "empty_analysis": f"<|channel|>analysis<|message|><|end|>{S}<|channel|>final<|message|>ok<|return|>",
    "role_word_repeated": "assistant<|channel|>final<|message|>Sure.<|return|>",
    "whitespace_content": "<|channel|>final<|message|>\n\n  indented\n\ttabbed  \n<|return|>",
    "analysis_call_analysis_final_end": (
        f"<|channel|>analysis<|message|>First.<|end|>{S}<|channel|>analysis<|message|>Second thought.<|end|>"
        f"{S}<|channel|>final<|message|>Answer.<|end|>"
    ),
    "long_reasoning": "<|channel|>analysis<|message|>" + " ".join(f"step {i}: consider x{i}." for i in range(60)) + "<|end|>",
}


@functools.cache
def tokenizer():
    return ossy.tokenizer.load(VOCAB / "o200k_base.tiktoken")


@functools.cache
def encoding():
    return load_harmony_encoding(HarmonyEncodingName.HARMONY_GPT_OSS)


def ids_of(text: str) -> list[int]:
    return tokenizer().encode(text, allow_special=True)


def harmony_messages(ids: list[int]) -> list[tuple]:
    """openai-harmony's reading, fed one token at a time as an engine would."""
    parser = StreamableParser(encoding(), role=Role.ASSISTANT)
    for token in ids:
        parser.process(token)
    parser.process_eos()
    return [_harmony_tuple(m) for m in parser.messages]


def _harmony_tuple(m) -> tuple:
    author = m.author.name or m.author.role.value
    return author, m.channel, m.recipient, m.content_type, "".join(c.text for c in m.content)


def run_stream(ids, stop_reason=None) -> tuple[StreamParser, list]:
    parser = StreamParser(tokenizer())
    events = [event for token in ids for event in parser.feed(token)]
    return parser, events + parser.finish(stop_reason)


def ossy_messages(ids: list[int]) -> list[tuple]:
    parser, _ = run_stream(ids)
    return [(m.author, m.channel, m.recipient, m.content_type, m.text) for m in parser.messages]


def fold(events: list) -> dict:
    """What a streaming client rebuilds from the events alone."""
    out = {"content": "", "reasoning_content": "", "preamble": "", "tool_calls": [], "warnings": []}
    for event in events:
        if isinstance(event, TextDelta):
            out[event.field] += event.text
        elif isinstance(event, ToolCallFinished):
            out["tool_calls"].append({"name": event.name, "arguments": event.arguments})
        elif isinstance(event, ParseWarning):
            out["warnings"].append({"code": event.code, "detail": event.detail})
        elif isinstance(event, Done):
            out["stop_reason"] = event.stop_reason
    for key in ("content", "reasoning_content", "preamble"):
        out[key] = out[key] or None
    return out


def comparable(result: dict) -> dict:
    """`parse`'s result without the random tool-call ids."""
    calls = [{"name": c["function"]["name"], "arguments": c["function"]["arguments"]} for c in result["tool_calls"]]
    keep = ("content", "reasoning_content", "preamble", "warnings", "stop_reason")
    return {**{k: result[k] for k in keep}, "tool_calls": calls}


def test_at_least_25_streams():
    assert len(STREAMS) >= 25


@pytest.mark.parametrize("name", sorted(STREAMS))
def test_messages_equal_openai_harmony(name):
    ids = ids_of(STREAMS[name])
    expected = harmony_messages(ids)
    assert expected, "harmony read no message"
    assert ossy_messages(ids) == expected
    batch = encoding().parse_messages_from_completion_tokens(ids, Role.ASSISTANT)
    assert [_harmony_tuple(m) for m in batch] == expected


@pytest.mark.parametrize("name", sorted(STREAMS))
def test_events_fold_to_parse_result(name):
    ids = ids_of(STREAMS[name])
    _, events = run_stream(ids)
    assert fold(events) == comparable(parse(ids, tokenizer()))


@pytest.mark.parametrize("name", sorted(STREAMS))
def test_well_formed_streams_have_no_warnings_but_cut_ones(name):
    result = parse(ids_of(STREAMS[name]), tokenizer())
    codes = {w["code"] for w in result["warnings"]}
    ends_with_terminator = STREAMS[name].endswith(("<|return|>", "<|call|>", "<|end|>"))
    assert codes == (set() if ends_with_terminator else {"truncated"})


def test_analysis_and_final_fields():
    result = parse(ids_of(STREAMS["analysis_final"]), tokenizer())
    assert result["role"] == "assistant"
    assert result["reasoning_content"] == "User greets. Reply."
    assert result["content"] == "Hi there."
    assert result["preamble"] is None
    assert result["tool_calls"] == []
    assert result["stop_reason"] == "stop"


def test_tool_call_fields_strip_functions_prefix():
    result = parse(ids_of(STREAMS["spec_example_channel_first"]), tokenizer())
    [call] = result["tool_calls"]
    assert call["type"] == "function" and call["id"].startswith("call_")
    assert call["function"] == {"name": "get_weather", "arguments": '{"city":"Tokyo"}'}
    assert result["reasoning_content"] == "Need weather." and result["content"] is None
    assert result["stop_reason"] == "tool_calls"


def test_builtin_tools_keep_their_namespace_and_raw_code():
    names = {key: [c["function"] for c in parse(ids_of(STREAMS[key]), tokenizer())["tool_calls"]]
             for key in ("browser_search", "python_code")}
    assert names["browser_search"] == [{"name": "browser.search", "arguments": '{"query": "openai harmony format", "topn": 5}'}]
    assert names["python_code"] == [{"name": "python", "arguments": "import math\nprint(math.sqrt(2))\n"}]


def test_preamble_is_kept_apart_from_content():
    result = parse(ids_of(STREAMS["preamble_then_call"]), tokenizer())
    assert result["preamble"] == "Let me check the forecast."
    assert result["content"] is None
    assert [c["function"]["name"] for c in result["tool_calls"]] == ["get_weather"]
    final = parse(ids_of(STREAMS["preamble_then_final"]), tokenizer())
    assert (final["preamble"], final["content"]) == ("Working on it.", "Done.")


def test_two_calls_in_one_output_get_their_own_index_and_id():
    parser, events = run_stream(ids_of(STREAMS["two_calls"]))
    started = [e for e in events if isinstance(e, ToolCallStarted)]
    finished = [e for e in events if isinstance(e, ToolCallFinished)]
    assert [(e.index, e.name) for e in started] == [(0, "get_weather"), (1, "get_time")]
    assert [e.id for e in started] == [e.id for e in finished] and started[0].id != started[1].id
    assert [c["id"] for c in parser.result()["tool_calls"]] == [e.id for e in started]


def test_messages_of_one_field_are_joined_by_a_blank_line():
    result = parse(ids_of(STREAMS["analysis_call_analysis_final_end"]), tokenizer())
    assert result["reasoning_content"] == "First.\n\nSecond thought."
    assert result["stop_reason"] == "end"


def test_tool_call_events_in_order_with_full_recipient():
    _, events = run_stream(ids_of(STREAMS["call_recipient_first"]))
    kinds = [type(e).__name__ for e in events]
    assert kinds[0] == "ToolCallStarted" and kinds[-3:] == ["ToolCallFinished", "MessageFinished", "Done"]
    assert set(kinds[1:-3]) == {"ToolCallDelta"}
    start = events[0]
    assert (start.name, start.recipient, start.channel, start.content_type) == (
        "get_weather", "functions.get_weather", "commentary", "<|constrain|>json")
    assert "".join(e.text for e in events if isinstance(e, ToolCallDelta)) == '{"city":"Paris"}'


def test_message_finished_events_carry_each_message():
    parser, events = run_stream(ids_of(STREAMS["preamble_then_call"]))
    finished = [e.message for e in events if isinstance(e, MessageFinished)]
    assert finished == parser.messages
    assert [(m.channel, m.recipient, m.terminator, m.kind) for m in finished] == [
        ("analysis", None, "<|end|>", "reasoning_content"),
        ("commentary", None, "<|end|>", "preamble"),
        ("commentary", "functions.get_weather", "<|call|>", "tool_call"),
    ]


def test_unicode_deltas_never_split_a_character():
    _, events = run_stream(ids_of(STREAMS["unicode"]))
    deltas = [e.text for e in events if isinstance(e, TextDelta)]
    assert len(deltas) > 5 and not any("\ufffd" in d for d in deltas)
    assert "".join(deltas) == "思考中… 🤔 Ünïcödé ✓" + "Résumé: naïve café — 東京 👍🏽 👨‍👩‍👧"


@pytest.mark.parametrize(
    ("text", "engine_reason", "expected"),
    [
        ("<|channel|>final<|message|>a<|return|>", None, "stop"),
        (CALL_WEATHER, None, "tool_calls"),
        (CALL_WEATHER, "stop", "tool_calls"),  # the tokens' reading wins over the engine's
        ("<|channel|>analysis<|message|>a<|end|>", None, "end"),
        ("<|channel|>analysis<|message|>a<|end|>", "length", "length"),
        ("<|channel|>final<|message|>a b c", None, "length"),
        ("<|channel|>final<|message|>a b c", "stop", "stop"),  # the engine hit a stop string
        ("", None, "length"),
    ],
)
def test_stop_reasons(text, engine_reason, expected):
    assert parse(ids_of(text), tokenizer(), stop_reason=engine_reason)["stop_reason"] == expected


def test_stop_sets_for_the_engine():
    tok = tokenizer()
    assert stop_token_ids(tok) == set(encoding().stop_tokens_for_assistant_actions()) == {200002, 200012}
    assert message_terminator_ids(tok) == set(encoding().stop_tokens()) == {200002, 200007, 200012}


def test_streaming_matches_harmony_deltas_per_message():
    """The text of each message arrives in deltas that add up to harmony's text of it."""
    ids = ids_of(STREAMS["unicode"])
    reference = StreamableParser(encoding(), role=Role.ASSISTANT)
    parser = StreamParser(tokenizer())
    ours, theirs = [], []
    for token in ids:
        reference.process(token)
        theirs.append(reference.last_content_delta or "")
        ours.append("".join(e.text for e in parser.feed(token) if isinstance(e, TextDelta)))
    assert "".join(ours) == "".join(theirs)


def test_spec_golden_parse_vector():
    """docs/reference/gpt-oss-spec.md §5.8: these ids (+ stop 200012) parse to two messages."""
    ids = [200005, 35644, 200008, 23483, 11122, 13, 200007, 200006, 173781, 200005, 12606, 815, 316, 28, 44580,
           775, 170154, 220, 200003, 4108, 200008, 10848, 17500, 7534, 173844, 18583, 200012]
    assert ossy_messages(ids) == [
        ("assistant", "analysis", None, None, "Need weather."),
        ("assistant", "commentary", "functions.get_weather", "<|constrain|>json", '{"city":"Tokyo"}'),
    ]
