"""The chat layer over the stub engine: prompts, option layering, parsing, stops, tool calls."""

from __future__ import annotations

import asyncio
import functools
import json
from pathlib import Path

import pytest
from stub_engine import StubEngine

import ossy.tokenizer
from ossy.chat import ChatRequest, RequestError, Turn, check_options, run
from ossy.chat.prompt import think_level
from ossy.chat.stops import StopMatcher
from ossy.engine.protocol import ContextOverflowError, ModelRef, ResolvedModel

VOCAB = Path(__file__).resolve().parents[2] / "shared" / "vocab" / "o200k_base.tiktoken"


@functools.cache
def tokenizer():
    return ossy.tokenizer.load(VOCAB)


def model(**kw) -> ResolvedModel:
    return ResolvedModel(ref=ModelRef("tiny:latest", "d" * 64, None, 4096), tokenizer=tokenizer(), **kw)


def turn_result(respond, request: ChatRequest, **model_kw):
    engine = StubEngine(tokenizer(), lambda text, req: respond)
    result = asyncio.run(run(engine, model(**model_kw), request))
    return result, engine


def chunks_of(respond, request: ChatRequest):
    engine = StubEngine(tokenizer(), lambda text, req: respond)

    async def go():
        turn = Turn(engine, model(), request)
        await turn.start()
        return [c async for c in turn.stream()], turn.result

    return asyncio.run(go())


USER = [{"role": "user", "content": "Hi"}]


def test_reasoning_and_content():
    out = "<|channel|>analysis<|message|>Think.<|end|><|start|>assistant<|channel|>final<|message|>Hello.<|return|>"
    result, engine = turn_result(out, ChatRequest(messages=USER))
    assert (result.thinking, result.content, result.done_reason) == ("Think.", "Hello.", "stop")
    assert result.prompt_tokens == len(engine.requests[0].prompt) and result.completion_tokens > 0
    prompt = tokenizer().decode(list(engine.requests[0].prompt))
    assert prompt.endswith("<|start|>user<|message|>Hi<|end|><|start|>assistant") and "Reasoning: medium" in prompt


def test_modelfile_defaults_are_not_overridden_by_omitted_fields():
    _, engine = turn_result("<|channel|>final<|message|>x<|return|>",
                            ChatRequest(messages=USER, options={"top_k": 5}),
                            parameters={"temperature": 0.3, "top_p": 0.5, "num_ctx": 2048})
    s = engine.requests[0].sampling
    assert (s.temperature, s.top_p, s.top_k) == (0.3, 0.5, 5)
    assert engine.requests[0].num_ctx == 2048
    _, engine = turn_result("<|channel|>final<|message|>x<|return|>",
                            ChatRequest(messages=USER, options={"temperature": 0.9}), parameters={"temperature": 0.3})
    assert engine.requests[0].sampling.temperature == 0.9


def test_modelfile_system_and_messages():
    _, engine = turn_result("<|channel|>final<|message|>x<|return|>", ChatRequest(messages=USER),
                            system="Be terse.", messages=[{"role": "user", "content": "Earlier"}])
    prompt = tokenizer().decode(list(engine.requests[0].prompt))
    assert "# Instructions\n\nBe terse." in prompt and prompt.index("Earlier") < prompt.index(">Hi<")
    assert engine.requests[0].keep > 0


def test_check_options():
    assert check_options({"temperature": 1, "stop": "x", "num_predict": 5.0}) == {"temperature": 1.0, "stop": ["x"], "num_predict": 5}
    for bad, field in (({"temperature": "hot"}, "options.temperature"),
                       ({"top_p": 2}, "options.top_p"), ({"num_ctx": 1.5}, "options.num_ctx")):
        with pytest.raises(RequestError) as e:
            check_options(bad)
        assert e.value.param == field and field.split(".")[1] in str(e.value)
    ignored = []
    assert check_options({"temprature": 1, "top_k": 3}, ignored=ignored) == {"top_k": 3}  # Ollama ignores it
    assert ignored == [{"code": "unknown_option", "detail": "options.temprature is not an option; it was ignored"}]


def test_think_levels():
    assert [think_level(x) for x in (None, True, False, "low", "high", "max", "none")] == \
        ["medium", "medium", "low", "low", "high", "high", "low"]
    with pytest.raises(RequestError):
        think_level("extreme")


def test_stop_strings_hold_back_and_cut():
    m = StopMatcher(["STOP"])
    assert m.feed("abc ST") == ("abc ", False)
    assert m.feed("OP tail") == ("", True)
    m = StopMatcher(["STOP"])
    assert m.feed("abc ST") == ("abc ", False) and m.feed("x") == ("STx", False)
    out = "<|channel|>final<|message|>one two STOP three<|return|>"
    chunks, result = chunks_of(out, ChatRequest(messages=USER, options={"stop": ["STOP"]}))
    assert result.content == "one two " and result.done_reason == "stop"
    assert "".join(c.text for c in chunks if c.field == "content") == "one two "


def test_tool_call_and_malformed_call():
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    out = ("<|channel|>analysis<|message|>Need weather.<|end|><|start|>assistant<|channel|>commentary "
           "to=functions.get_weather <|constrain|>json<|message|>{\"city\": \"Paris\"}<|call|>")
    result, engine = turn_result(out, ChatRequest(messages=USER, tools=tools))
    assert result.done_reason == "tool_calls" and result.content == ""
    call = result.tool_calls[0]
    assert call.name == "get_weather" and json.loads(call.arguments) == {"city": "Paris"}
    assert "type get_weather" in tokenizer().decode(list(engine.requests[0].prompt))
    bad = "<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>ls -R ~<|call|>"
    result, _ = turn_result(bad, ChatRequest(messages=USER, tools=tools))
    # an invalid call is data: the call, its arguments as written, and why
    assert [(c.name, c.arguments) for c in result.tool_calls] == [("get_weather", "ls -R ~")]
    assert result.tool_calls[0].error.startswith("the arguments of 'get_weather' are not JSON")
    assert result.content == "" and result.done_reason == "tool_calls"
    assert [w["code"] for w in result.warnings] == ["invalid_arguments"]


def test_tool_choice_named_prefills_the_call():
    tools = [{"type": "function", "function": {"name": "a"}}, {"type": "function", "function": {"name": "b"}}]
    out = '{"x": 1}<|call|>'
    result, engine = turn_result(out, ChatRequest(messages=USER, tools=tools, tool_choice="b"))
    assert [c.name for c in result.tool_calls] == ["b"]
    prompt = tokenizer().decode(list(engine.requests[0].prompt), skip_special=False)
    assert prompt.endswith("<|start|>assistant<|channel|>commentary to=functions.b <|constrain|>json<|message|>")
    assert "type a" not in prompt


def test_max_tokens_gives_length():
    out = "<|channel|>final<|message|>" + "word " * 50 + "<|return|>"
    result, _ = turn_result(out, ChatRequest(messages=USER, options={"num_predict": 8}))
    assert result.done_reason == "length" and result.completion_tokens == 8


def test_context_overflow_policies():
    long = [{"role": "user", "content": "word " * 300}, {"role": "assistant", "content": "ok"},
            {"role": "user", "content": "last question"}]
    with pytest.raises(ContextOverflowError):
        turn_result("x", ChatRequest(messages=long, options={"num_ctx": 200}, overflow="error"))
    result, engine = turn_result("<|channel|>final<|message|>x<|return|>",
                                 ChatRequest(messages=long, options={"num_ctx": 200, "num_predict": 10}))
    assert any(w["code"] == "truncated" for w in result.warnings)
    prompt = tokenizer().decode(list(engine.requests[0].prompt))
    assert "last question" in prompt and "word word" not in prompt


def test_format_constraint_is_passed_and_checked():
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    result, engine = turn_result('<|channel|>final<|message|>{"a": 1}<|return|>', ChatRequest(messages=USER, format=schema))
    assert engine.requests[0].constraint.schema == schema and result.warnings == []
    result, _ = turn_result('<|channel|>final<|message|>{"b": 1}<|return|>', ChatRequest(messages=USER, format=schema))
    assert [w["code"] for w in result.warnings] == ["format_unmet"]


def test_raw_prompt_is_plain_text():
    result, engine = turn_result("plain words<|return|>", ChatRequest(raw="<|start|>user<|message|>x<|end|>"))
    assert result.content == "plain words" and engine.requests[0].prompt[0] == tokenizer().token_id("<|start|>")


def test_custom_template_renders_with_ossy_template():
    template = "{{ range .Messages }}<|start|>{{ .Role }}<|message|>{{ .Content }}<|end|>{{ end }}<|start|>assistant"
    out = "<|channel|>final<|message|>Templated.<|return|>"
    result, engine = turn_result(out, ChatRequest(messages=[{"role": "developer", "content": "Rules."}] + USER),
                                 template=template, harmony=False)
    ids = list(engine.requests[0].prompt)
    assert tokenizer().decode(ids) == ("<|start|>system<|message|>Rules.<|end|><|start|>user<|message|>Hi<|end|>"
                                       "<|start|>assistant")
    assert ids[0] == tokenizer().token_id("<|start|>") and result.content == "Templated."
    plain, _ = turn_result("just text<|return|>", ChatRequest(messages=USER), template="{{ .Prompt }}", harmony=False)
    assert plain.content == "just text"


def test_streamed_tool_arguments_complete_to_the_repaired_object():
    """Argument deltas (OpenAI streaming): only valid JSON-object prefixes go out as generated; the
    last delta completes them to the final, repaired arguments."""
    import json as _json

    from ossy.chat.turn import json_completion, json_prefix
    from ossy.harmony.jsonrepair import repair_arguments

    assert json_prefix('{"a": 1,') == '{"a": 1' and json_prefix('{"a"') == "" and json_prefix("ls -R") == ""
    for raw in ['{"city": "Paris"}', '{"a": "x', '{"a": 1,', '{"a": 1}}', '{"text": "line\nnext"}', '{"a": [1, 2']:
        sent = ""
        for end in range(1, len(raw) + 1):  # fed one character at a time
            committed = json_prefix(raw[:end])
            if len(committed) > len(sent):
                assert committed.startswith(sent)
                sent = committed
        final = repair_arguments(raw)[0]
        tail = json_completion(sent, raw, final)
        assert tail is not None and _json.loads(sent + tail) == _json.loads(final), raw


def test_a_prompt_that_cannot_fit_is_refused_or_dropped_without_tokenizing_it():
    from ossy.chat import prompt as prompting

    class Counting:
        """The real tokenizer, remembering the longest text it was asked to encode."""

        def __init__(self, inner):
            self.inner, self.longest = inner, 0

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def encode(self, text, **kw):
            self.longest = max(self.longest, len(text))
            return self.inner.encode(text, **kw)

    tok = Counting(tokenizer())
    huge = "word " * 200_000  # 1 MB: at least 1e6 / 128 tokens, whatever it says
    resolved = ResolvedModel(ref=ModelRef("tiny:latest", "d" * 64, None, 4096), tokenizer=tok)
    with pytest.raises(ContextOverflowError, match="at least"):
        prompting.build(resolved, [{"role": "user", "content": huge}], num_ctx=4096)
    kept = prompting.build(resolved, [{"role": "user", "content": huge}, {"role": "assistant", "content": "ok"},
                                      {"role": "user", "content": "Hi"}], num_ctx=4096)
    assert kept.warnings[0]["code"] == "truncated" and "Hi" in tok.decode(kept.ids)
    assert tok.longest < 10_000  # the huge message was never tokenized
    with pytest.raises(ContextOverflowError) as e:  # under the bound: tokenized, then refused by its real length
        prompting.build(resolved, [{"role": "user", "content": "word " * 5000}], num_ctx=4096)
    assert "at least" not in str(e.value) and tok.longest >= 25_000


def test_fitting_a_long_conversation_renders_it_a_few_times_not_once_per_turn(monkeypatch):
    from ossy.chat import prompt as prompting

    renders = []
    real = prompting._harmony
    monkeypatch.setattr(prompting, "_harmony", lambda *a: renders.append(len(a[1])) or real(*a))
    chat = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"message number {i}"} for i in range(20_001)]
    prompt = prompting.build(model(), chat, num_ctx=4096)
    text = tokenizer().decode(prompt.ids)
    assert 0 < len(prompt.ids) <= 4096 and "message number 20000<|end|>" in text
    dropped = int(prompt.warnings[0]["detail"].split("dropped the ")[1].split()[0])
    one_more = prompting._without(chat, prompting._drop_order(chat)[:dropped - 1])
    assert len(real(model(), one_more, [], None, None).ids) > 4096  # the fewest turns were dropped
    assert len(renders) <= 20  # a binary search, not 20,000 renders
    with pytest.raises(RequestError, match="at most 100000"):
        prompting.build(model(), [{"role": "user", "content": "a"}] * 100_001, num_ctx=4096)
