"""Scoring a model on held-out conversations through ossy's real chat path.

Owns: `Case` (one held-out prompt and what a right reply is), `cases` (drawn from the held-out
split, each under its own setting), `score` (one reply: well-formed harmony, right tool with
schema-valid arguments, right final answer), `run_case`, `answer_after_result` (the answer once the tool result is in) and the aggregate
`Report`. Replies come
from a `ChatModel` (`ossy.agent.EngineModel`: prompt rendering, engine, harmony parser, exactly
what `ossy run` and the server use), greedy. Does not own: the data (`ossy.train.data`) or any
output format (`evals/nano_quality.py` prints the report).

Well-formed: the generation ended at `<|return|>` or `<|call|>` (not at the token limit) and the
parser reported nothing (no truncated, missing or stray pieces, no repaired arguments).
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

import jsonschema

from ossy.agent import EngineModel
from ossy.agent.loop import assistant_message, tool_message
from ossy.chat.models import StoreResolver
from ossy.engine.scheduler import LocalEngine
from ossy.modelfile import parse_file
from ossy.store import Library, Store, create
from ossy.tools.base import ToolResult
from ossy.train import data

ANSWER_KINDS = ("fact", "arithmetic", "instruction")
TOOL_KINDS = ("tool", "no_tool")  # a request a tool answers: the call if the tool is declared, else none
KINDS = ("small_talk", "repeat") + TOOL_KINDS + ANSWER_KINDS


@dataclass(frozen=True)
class Case:
    kind: str
    setting: data.Setting
    convo: data.Conversation

    @property
    def messages(self) -> list[dict]:
        return self.setting.header_messages() + self.convo.prompt

    @property
    def tools(self) -> list[dict] | None:
        return self.setting.tools

    @property
    def expected_call(self) -> tuple[str, dict] | None:
        """The call a right reply makes: the conversation's, if its tool is declared; else none."""
        call = self.convo.call
        return call if call is not None and call[0] in self.setting.tool_names else None


def cases(per_kind: int, seed: int = 0, toolsets: tuple[str, ...] | None = None) -> list[Case]:
    """`per_kind` held-out cases of each kind, each under its own setting (effort, date,
    instructions, tools). `toolsets`: every case declares these toolsets instead (in their order;
    () for none), so a tool request whose tool is not among them expects no call."""
    rng = random.Random(f"evaluate:{seed}")
    kinds = list(KINDS)
    if toolsets is not None:  # a kind the forced toolsets cannot give is not asked for
        declared = {t["function"]["name"] for t in data.declared_tools(tuple(toolsets))} if toolsets else set()
        usable = sum(name in declared for name in data.TOOL_NAMES)
        kinds = [k for k in kinds if not (k == "tool" and not usable or k == "no_tool" and usable == len(data.TOOL_NAMES))]
    found: dict[str, list[Case]] = {kind: [] for kind in kinds}
    while any(len(v) < per_kind for v in found.values()):
        drawn = data.sample_setting(rng)
        convo = data.sample_conversation(rng, data.HELDOUT, drawn)  # drawn as trained, then asked under
        setting = drawn if toolsets is None else replace(drawn, toolsets=tuple(toolsets), shuffle=None)
        kind = convo.kind
        if kind in TOOL_KINDS:  # what it is depends on the declared tools
            kind = "tool" if Case(kind, setting, convo).expected_call else "no_tool"
            if kind == "tool" and convo.kind != "tool":
                continue  # no result to answer from: only a conversation with its tool's result is a tool case
        if kind in found and len(found[kind]) < per_kind:  # digit_facts: a drill, not scored
            found[kind].append(Case(kind, setting, convo))
    return [case for kind in kinds for case in found[kind]]


@dataclass(frozen=True)
class Score:
    well_formed: bool
    right_tool: bool | None = None  # tool cases only
    right_answer: bool | None = None  # ANSWER_KINDS only
    used_result: bool | None = None  # tool cases with the right call: the answer after the result, word for word
    named_result: bool | None = None  # ... names what the result shows and nothing it does not (`names_result`)


def answer_is_right(case: Case, content: str) -> bool:
    expected = case.convo.answer.lower()
    text = content.strip().lower()
    if case.setting.style == "number_only":
        return text == expected
    if case.setting.style == "one_word":
        return text.rstrip(".!") == expected
    if case.kind == "arithmetic":
        numbers = re.findall(r"-?\d+", text)
        return bool(numbers) and numbers[-1] == expected
    return re.search(rf"\b{re.escape(expected)}\b", text) is not None


def tool_is_right(case: Case, reply) -> bool:
    """The expected call first, with arguments valid for its tool; or, where none is expected,
    no call at all (a call of a tool that was not offered comes back as content with an
    `unexpected_tool_call` warning: that is a call too)."""
    calls = reply.tool_calls
    if case.expected_call is None:
        return not calls and not any(w.get("code") == "unexpected_tool_call" for w in reply.warnings)
    if not calls:
        return False
    name = calls[0].name.removeprefix("functions.")
    expected, _ = case.expected_call
    schema = next(t["function"]["parameters"] for t in case.tools if t["function"]["name"] == expected)
    try:
        arguments = json.loads(calls[0].arguments)
        jsonschema.validate(arguments, schema)
    except (ValueError, jsonschema.ValidationError):
        return False
    return name == expected and isinstance(arguments, dict)


def score(case: Case, reply) -> Score:
    """`reply`: an `ossy.agent.Reply` (thinking, content, calls, done_reason, warnings)."""
    well_formed = reply.done_reason in ("stop", "tool_calls") and not reply.warnings and bool(
        reply.content.strip() or reply.tool_calls)
    return Score(well_formed,
                 tool_is_right(case, reply) if case.kind in TOOL_KINDS else None,
                 answer_is_right(case, reply.content) if case.kind in ANSWER_KINDS else None)


def open_checkpoint(checkpoint, home):
    """An `ossy.agent.EngineModel` for the checkpoint directory `checkpoint` (written by `ossy
    train`, with its Modelfile), created as "nano" in a scratch store under `home`."""


    library = Library(Store(Path(home)))
    create(library, "nano", parse_file(Path(checkpoint) / "Modelfile"), base_dir=Path(checkpoint))
    return EngineModel(LocalEngine(num_parallel=1, keep_alive=600), StoreResolver(library).resolve("nano"))


def run_case(model, case: Case):
    """The model's greedy reply to `case` (`model` is an `ossy.agent.ChatModel`)."""
    return model.turn(case.messages, case.tools, think=case.setting.effort, options={"temperature": 0})


_WORD = re.compile(r"[\w./%-]+")


def _words(text: str) -> set[str]:
    return {w.strip(".-") for w in _WORD.findall(text)} - {""}


def names_result(expected: str, result: str, answer: str) -> bool:
    """The answer names what the result shows and nothing it does not: every word of the expected
    answer that comes from the result is in it, and it has no word that is neither in the
    expected answer nor in the result (a file it was not shown, a number it made up)."""
    shown, wanted, said = _words(result), _words(expected), _words(answer)
    return (wanted & shown) <= said and not (said - wanted - shown)


def answer_after_result(model, case: Case, reply) -> tuple[bool, bool]:
    """Give the model the tool result of the held-out conversation for its (right) call, as the
    agent loop gives it: (is its final answer the one the conversation has, word for word; does
    it name what the result shows and nothing else (`names_result`))? Either can only come from
    reading that result."""

    call = reply.tool_calls[0]
    result = ToolResult(output=next(m["content"] for m in case.convo.messages if m["role"] == "tool"))
    expected = case.convo.messages[-1]["content"]
    messages = case.messages + [assistant_message(reply, [call]), tool_message(call, result)]
    after = model.turn(messages, case.tools, think=case.setting.effort, options={"temperature": 0})
    ended = after.done_reason == "stop"
    return (ended and after.content.strip() == expected.strip(),
            ended and names_result(expected, result.output, after.content))


@dataclass
class Report:
    counts: Counter = field(default_factory=Counter)

    def add(self, case: Case, s: Score) -> None:
        self.counts["all"] += 1
        self.counts["well_formed"] += s.well_formed
        for flag, total, name in ((s.right_tool, "tool", "right_tool"), (s.right_answer, "answer", "right_answer"),
                                  (s.used_result, "called", "used_result"), (s.named_result, "called", "named_result")):
            if flag is not None:
                self.counts[total] += 1
                self.counts[name] += flag
                self.counts[f"{case.kind}:{total}"] += 1
                self.counts[f"{case.kind}:{name}"] += flag

    def rate(self, part: str, whole: str) -> float:
        return self.counts[part] / self.counts[whole] if self.counts[whole] else 0.0

    def figures(self) -> dict[str, float]:
        return {"well_formed": self.rate("well_formed", "all"), "right_tool": self.rate("right_tool", "tool"),
                "right_answer": self.rate("right_answer", "answer"), "used_result": self.rate("used_result", "called"),
                "named_result": self.rate("named_result", "called"),
                **{f"right_answer[{k}]": self.rate(f"{k}:right_answer", f"{k}:answer") for k in ANSWER_KINDS}}
