"""ossy.harmony's parser on output that breaks the format: never raises, best reading plus a flag;
JSON argument repair; property tests (random tokens, truncations, random well-formed outputs
checked against openai-harmony)."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_harmony_parse import STREAMS, comparable, fold, harmony_messages, ids_of, ossy_messages, run_stream, tokenizer

from ossy.harmony import ContentDelta, ParsedMessage, StreamParser, parse
from ossy.harmony.jsonrepair import INVALID, REPAIRED, repair_arguments

SETTINGS = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
S = "<|start|>assistant"


def read(text: str, stop_reason: str | None = None) -> dict:
    return parse(ids_of(text), tokenizer(), stop_reason=stop_reason)


def codes(result: dict) -> list[str]:
    return [w["code"] for w in result["warnings"]]


def call(result: dict, i: int = 0) -> dict:
    return result["tool_calls"][i]["function"]


# ---- each robustness case, with its flag ------------------------------------------------------


def test_missing_message_token_reads_the_rest_of_the_header_as_content():
    result = read("<|channel|>final Hello world, friend.<|return|>")
    assert result["content"] == "Hello world, friend."
    assert codes(result) == ["missing_message"] and result["stop_reason"] == "stop"


def test_missing_message_token_on_a_tool_call_keeps_recipient_and_arguments():
    result = read('<|channel|>commentary to=functions.get_weather <|constrain|>json {"city": "Oslo"}<|call|>')
    assert call(result) == {"name": "get_weather", "arguments": '{"city": "Oslo"}'}
    assert codes(result) == ["missing_message"] and result["stop_reason"] == "tool_calls"


def test_header_that_never_ends_becomes_content_while_streaming():
    words = " ".join(f"word{i}" for i in range(80))
    parser = StreamParser(tokenizer())
    fed = [event for token in ids_of("<|channel|>final " + words) for event in parser.feed(token)]
    assert any(isinstance(event, ContentDelta) for event in fed)  # before the output ends
    parser.finish()
    result = parser.result()
    assert result["content"] == words
    assert codes(result) == ["missing_message", "truncated"]


@pytest.mark.parametrize(
    ("header", "field"),
    [("finale", "content"), ("answer", "content"), ("commentary?", "preamble"), ("analysis_2", "reasoning_content")],
)
def test_unknown_channel_is_read_by_its_known_prefix_or_as_content(header, field):
    result = read(f"<|channel|>{header}<|message|>text<|end|>")
    assert result[field] == "text"
    assert codes(result) == ["unknown_channel"]


def test_no_channel_at_all_is_content():
    result = read("<|message|>plain text<|return|>")
    assert result["content"] == "plain text" and codes(result) == ["unknown_channel"]


def test_empty_channel_is_flagged():
    result = read("<|channel|><|message|>x<|return|>")
    assert result["content"] == "x" and codes(result) == ["bad_header", "unknown_channel"]


@pytest.mark.parametrize("terminator", ["<|end|>", "<|return|>"])
def test_recipient_without_call_token_is_still_a_call(terminator):
    result = read(f'<|channel|>commentary to=functions.f <|constrain|>json<|message|>{{"a": 1}}{terminator}')
    assert call(result) == {"name": "f", "arguments": '{"a": 1}'}
    assert codes(result) == ["missing_call"] and result["stop_reason"] == "tool_calls"


def test_call_token_without_recipient():
    result = read("<|channel|>final<|message|>The answer.<|call|>")
    assert result["content"] == "The answer." and result["tool_calls"] == []
    assert codes(result) == ["call_without_recipient"] and result["stop_reason"] == "stop"


def test_cut_mid_header_drops_the_partial_header():
    result = read(f"<|channel|>analysis<|message|>Need a tool.<|end|>{S}<|channel|>commentary to=functions.get_wea")
    assert result["reasoning_content"] == "Need a tool." and result["tool_calls"] == []
    assert codes(result) == ["truncated"] and result["stop_reason"] == "length"


def test_cut_right_after_start():
    result = read(f"<|channel|>analysis<|message|>x<|end|>{S}", stop_reason="length")
    assert result["reasoning_content"] == "x" and codes(result) == ["truncated"]


def test_cut_mid_content_keeps_the_text():
    result = read("<|channel|>final<|message|>The capital of France is", stop_reason="length")
    assert result["content"] == "The capital of France is"
    assert codes(result) == ["truncated"] and result["stop_reason"] == "length"


def test_cut_mid_arguments_repairs_them():
    result = read('<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{"city": "Tok')
    assert json.loads(call(result)["arguments"]) == {"city": "Tok"}
    assert codes(result) == ["truncated", "repaired_arguments"] and result["stop_reason"] == "length"


def test_cut_inside_a_character_gives_a_replacement_not_a_crash():
    ids = ids_of("<|channel|>final<|message|>🤔")
    result = parse(ids[:-1], tokenizer())  # the emoji is two byte-level tokens
    assert result["content"] == "\ufffd"


def test_tokens_after_return_are_ignored():
    result = read(f"<|channel|>final<|message|>Done.<|return|>{S}<|channel|>final<|message|>more<|return|>")
    assert result["content"] == "Done." and codes(result) == ["tokens_after_stop"]


def test_stray_special_tokens_are_dropped_never_shown():
    result = read("<|channel|>final<|message|>Hel<|constrain|>lo<|reserved_200100|><|message|><|endoftext|>!<|return|>")
    assert result["content"] == "Hello!"
    assert codes(result) == ["stray_token"] * 4


def test_stray_token_between_messages_and_in_header():
    result = read(f"<|channel|>analysis<|message|>a<|end|><|end|>{S}<|endoftext|><|channel|>final<|message|>b<|return|>")
    assert (result["reasoning_content"], result["content"]) == ("a", "b")
    assert codes(result) == ["stray_token", "stray_token"]


def test_missing_start_between_messages():
    for text in (
        "<|channel|>analysis<|message|>a<|end|><|channel|>final<|message|>b<|return|>",
        "<|channel|>analysis<|message|>a<|end|>assistant<|channel|>final<|message|>b<|return|>",
    ):
        result = read(text)
        assert (result["reasoning_content"], result["content"]) == ("a", "b")
        assert codes(result) == ["missing_start"]


@pytest.mark.parametrize("boundary", [f"{S}<|channel|>final", "<|channel|>final"])
def test_missing_end_before_the_next_message(boundary):
    result = read(f"<|channel|>analysis<|message|>thinking{boundary}<|message|>answer<|return|>")
    assert (result["reasoning_content"], result["content"]) == ("thinking", "answer")
    assert codes(result) == ["missing_end"]


def test_hallucinated_tool_result_is_ignored():
    result = read(
        "<|channel|>commentary to=functions.f json<|message|>{}<|end|>"
        '<|start|>functions.f to=assistant<|channel|>commentary<|message|>{"temp": 20}<|end|>'
    )
    assert result["content"] is None and len(result["tool_calls"]) == 1
    assert codes(result) == ["missing_call", "unexpected_role"]


def test_header_words_harmony_rejects_are_read_and_flagged():
    result = read("<|channel|>commentary json to=functions.f<|message|>{}<|call|>")
    assert call(result) == {"name": "f", "arguments": "{}"} and codes(result) == []
    result = read("<|channel|>commentary to=functions.f json extra<|message|>{}<|call|>")
    assert call(result)["name"] == "f" and codes(result) == ["bad_header"]
    result = read("<|channel|>final some stray words<|message|>x<|return|>")
    assert result["content"] == "x" and result["tool_calls"] == [] and codes(result) == ["bad_header"]
    result = read("<|channel|>analysis<|channel|>final<|message|>x<|return|>")
    assert result["reasoning_content"] == "x" and codes(result) == ["bad_header"]


def test_bare_content_type_is_not_a_recipient():
    """Documented deviation: harmony reads `commentary json` as recipient "json" (a tool call)."""
    parser, _ = run_stream(ids_of("<|channel|>commentary json<|message|>I'll check.<|end|>"))
    assert parser.messages[0].recipient is None and parser.messages[0].content_type == "json"
    assert parser.result()["preamble"] == "I'll check."


def test_invalid_arguments_pass_on_raw_with_a_flag():
    result = read("<|channel|>commentary to=functions.shell <|constrain|>json<|message|>ls -R<|call|>")
    assert call(result) == {"name": "shell", "arguments": "ls -R"}
    assert codes(result) == ["invalid_arguments"] and result["stop_reason"] == "tool_calls"


def test_wrapped_and_junk_arguments_are_repaired():
    result = read('<|channel|>commentary to=functions.f <|constrain|>json<|message|>[{"a": 1}]<|call|>')
    assert json.loads(call(result)["arguments"]) == {"a": 1} and codes(result) == ["repaired_arguments"]
    result = read('<|channel|>commentary to=functions.f <|constrain|>json<|message|>{"a": 1}}<|call|>')
    assert json.loads(call(result)["arguments"]) == {"a": 1} and codes(result) == ["repaired_arguments"]


def test_python_code_is_never_repaired():
    result = read("<|channel|>analysis to=python code<|message|>print([1, 2<|call|>")
    assert call(result) == {"name": "python", "arguments": "print([1, 2"} and codes(result) == []


@pytest.mark.parametrize("bad_id", [201088, 10**9, -1])
def test_ids_outside_the_vocabulary_are_dropped(bad_id):
    ids = ids_of("<|channel|>final<|message|>ab<|return|>")
    result = parse([*ids[:3], bad_id, *ids[3:]], tokenizer())
    assert result["content"] == "ab" and codes(result) == ["unknown_token"]


def test_feed_after_finish_is_ignored():
    parser = StreamParser(tokenizer())
    parser.finish()
    events = parser.feed(ids_of("hi")[0])
    assert [type(e).__name__ for e in events] == ["ParseWarning"]


# ---- JSON repair ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", {}),
        ("   ", {}),
        ('{"a": 1}}', {"a": 1}),
        ('{"a": 1}<|call|>', {"a": 1}),
        ('{"a": 1} trailing words', {"a": 1}),
        ('{"a": [1, 2', {"a": [1, 2]}),
        ('{"a": {"b": "x', {"a": {"b": "x"}}),
        ('{"a": "ends with backslash\\', {"a": "ends with backslash"}),
        ('{"a": 1, ', {"a": 1}),
        ('{"a": "brace } in string", "b": [', {"a": "brace } in string", "b": []}),
        ('[{"a": 1}]', {"a": 1}),
        ('{"content": "line 1\nline 2\ttab"}', {"content": "line 1\nline 2\ttab"}),
    ],
)
def test_repairable_arguments(text, expected):
    arguments, problem = repair_arguments(text)
    assert problem == REPAIRED and json.loads(arguments) == expected


@pytest.mark.parametrize(
    "text",
    ["ls -R", '{"a":', '{"a": 1, "b"', '{"a": [1}', '{"a": 1} {"b": 2}', 'Sure: {"a": 1}', '"just a string"',
     "[1, 2]", "42", '[{"a": 1}, {"b": 2}]', "[" * 5000, "{" * 3000],
)
def test_unrepairable_arguments_come_back_raw(text):
    assert repair_arguments(text) == (text, INVALID)


@pytest.mark.parametrize("text", ['{"a": 1}', ' {"a": [1, {"b": null}]}\n', '{"ü": "東京 🌸"}', "{}"])
def test_valid_objects_are_returned_unchanged(text):
    assert repair_arguments(text) == (text, None)


@SETTINGS
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                    max_leaves=12).map(lambda v: {"v": v}),
       st.data())
def test_truncated_json_objects_repair_to_valid_json_or_come_back_raw(obj, data):
    text = json.dumps(obj, ensure_ascii=False)
    cut = text[: data.draw(st.integers(1, len(text)))]
    arguments, problem = repair_arguments(cut)
    if problem == INVALID:
        assert arguments == cut
    else:
        assert isinstance(json.loads(arguments), dict)


# ---- property tests ------------------------------------------------------------------------------


def _pool() -> list[int]:
    tok = tokenizer()
    names = ["<|start|>", "<|end|>", "<|message|>", "<|channel|>", "<|constrain|>", "<|return|>", "<|call|>",
             "<|endoftext|>", "<|startoftext|>", "<|reserved_200013|>", "<|reserved_201087|>"]
    pieces = ["assistant", "analysis", "final", "commentary", " to", "=functions", ".get_weather", "=browser",
              ".search", "python", " json", " code", '{"', "city", '":"', "Tokyo", '"}', "}", "{", "[", " ",
              "\n", "Hello", "!", "user", "東京", "x"]
    regular = sorted({i for piece in pieces for i in tok.encode(piece)})
    emoji = tok.encode("🤔")  # byte-level pieces of one character
    return [tok.token_id(n) for n in names] + regular + emoji + [201088, -1]


POOL = _pool()


def _no_marker_leaks(result: dict) -> None:
    texts = [result["content"], result["reasoning_content"], result["preamble"]]
    texts += [c["function"]["name"] + c["function"]["arguments"] for c in result["tool_calls"]]
    assert not any("<|" in t for t in texts if t)


@SETTINGS
@given(st.lists(st.sampled_from(POOL), max_size=60), st.sampled_from([None, "length", "stop"]))
def test_random_tokens_never_raise_and_stream_equals_parse(ids, engine_reason):
    _, events = run_stream(ids, engine_reason)
    result = parse(ids, tokenizer(), stop_reason=engine_reason)
    assert fold(events) == comparable(result)
    assert result["stop_reason"] in {"stop", "tool_calls", "length", "end"}
    _no_marker_leaks(result)


STREAM_IDS = {name: ids_of(text) for name, text in STREAMS.items()}


@SETTINGS
@given(st.sampled_from(sorted(STREAM_IDS)), st.data())
def test_truncations_never_raise_and_keep_what_came_before(name, data):
    full = STREAM_IDS[name]
    ids = full[: data.draw(st.integers(0, len(full)))]
    parser, events = run_stream(ids, "length")
    assert fold(events) == comparable(parse(ids, tokenizer(), stop_reason="length"))
    whole = ossy_messages(full)
    got = [(m.author, m.channel, m.recipient, m.content_type, m.text) for m in parser.messages]
    if got:
        assert got[:-1] == whole[: len(got) - 1]
        *header, text = got[-1]
        assert tuple(header) == whole[len(got) - 1][:4]
        assert whole[len(got) - 1][4].startswith(text.rstrip("\ufffd"))


_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
_RECIPIENTS = st.sampled_from([None, "functions.get_weather", "functions.do-thing_2", "browser.search", "python"])
_TYPES = st.sampled_from(["", " json", " <|constrain|>json", "<|constrain|>json", " code"])


@st.composite
def _well_formed(draw) -> list[int]:
    """1-4 messages with any channel, recipient, header order and content type, and any text
    (encoded as plain text, so a `<|call|>` in it is text, as in a real model's output)."""
    ids = []
    for i in range(draw(st.integers(1, 4))):
        channel, recipient = draw(st.sampled_from(["analysis", "commentary", "final"])), draw(_RECIPIENTS)
        to = f" to={recipient}" if recipient else ""
        ctype = draw(_TYPES) if recipient else ""
        if recipient and draw(st.booleans()):
            header = f"{to}<|channel|>{channel}{ctype}"  # recipient first, as harmony replays it
        else:
            header = f"<|channel|>{channel}{to}{ctype}"
        header = f"<|end|>{S}{header}" if i else header.lstrip()
        ids += ids_of(header + "<|message|>") + tokenizer().encode(draw(_TEXT))
    return ids + ids_of(draw(st.sampled_from(["<|return|>", "<|call|>", "<|end|>", ""])))


@SETTINGS
@given(_well_formed())
def test_random_well_formed_outputs_read_like_openai_harmony(ids):
    assert ossy_messages(ids) == harmony_messages(ids)
    parser, events = run_stream(ids)
    assert all(isinstance(m, ParsedMessage) for m in parser.messages)
    assert fold(events) == comparable(parse(ids, tokenizer()))
