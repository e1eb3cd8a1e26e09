"""The agent loop (`ossy.agent`) over the stub engine playing scripted harmony replies, with small
tools of the test's own through the real registry, executor and audit log: call -> result ->
answer, two calls in a turn, bad JSON, an unknown tool, failing tools, the step limit,
approvals and dry-run, the seeds' namespaced names, chain of thought across user turns, the
per-run context. Then `ClientModel` over HTTP, and a real tiny random model end to end."""

from __future__ import annotations

from pathlib import Path

import pytest
from stub_engine import RunningServer, StubEngine, tokenizer

import ossy.agent
from ossy.agent import (
    AgentResult,
    ClientModel,
    EngineModel,
    TextDelta,
    Toolbox,
    ToolCalled,
    ToolReturned,
    TurnStarted,
    parse_toolsets,
)
from ossy.client.agent import run_agent
from ossy.engine.protocol import ModelRef, ResolvedModel
from ossy.errors import OssyError
from ossy.tools.audit import AuditLog
from ossy.tools.base import Policy, Tool, ToolContext, ToolError
from ossy.tools.registry import Registry

ASK = [{"role": "user", "content": "What does a.txt say?"}]
OBJECT = {"type": "object", "additionalProperties": False}


def analysis(text: str) -> str:
    return f"<|channel|>analysis<|message|>{text}<|end|><|start|>assistant"


def call(name: str, arguments: str) -> str:
    return f"<|channel|>commentary to={name} <|constrain|>json<|message|>{arguments}<|call|>"


def final(text: str) -> str:
    return f"<|channel|>final<|message|>{text}<|return|>"


class Script:
    """The stub "model": plays `replies` in order (the last one again when they run out) and
    keeps every prompt it was given."""

    def __init__(self, *replies: str) -> None:
        self.replies, self.prompts = list(replies), []

    def __call__(self, prompt_text: str, request) -> str:
        self.prompts.append(prompt_text)
        return self.replies[min(len(self.prompts), len(self.replies)) - 1]


def resolved() -> ResolvedModel:
    return ResolvedModel(ref=ModelRef("tiny:latest", "d" * 64, None, 4096), tokenizer=tokenizer())


def roomy_library(root, modelfiles: dict[str, str]):
    """A `Library` in `root` with a tiny random checkpoint that claims an 8k context (the stub
    engine never runs it; tool descriptions need the room), the models `modelfiles` names
    ({"tiny": "FROM {checkpoint}"}: `{checkpoint}` is its path), and a resolver."""
    import dataclasses

    import torch
    from store_util import tiny_config

    from ossy.chat.models import StoreResolver
    from ossy.model.tensors import tensor_shapes
    from ossy.model.weights import save_checkpoint
    from ossy.modelfile import parse
    from ossy.store import Library, Store, create

    config = dataclasses.replace(tiny_config(), max_position_embeddings=8192)
    tensors = {name: torch.zeros(shape) for name, shape in tensor_shapes(config, mxfp4=False).items()}
    checkpoint = save_checkpoint(root / "ckpt", config, tensors)
    library = Library(Store(root / "models"))
    for name, text in modelfiles.items():
        create(library, name, parse(text.format(checkpoint=checkpoint)), base_dir=root)
    return library, StoreResolver(library, lambda directory: tokenizer())


# ---- the tools of these tests -----------------------------------------------------------------


def read_note(args: dict, ctx: ToolContext) -> str:
    path = ctx.workspace / args["path"]
    if not path.is_file():
        raise ToolError(f"no such file: {args['path']}")
    return path.read_text()


def write_note(args: dict, ctx: ToolContext) -> str:
    (ctx.workspace / args["path"]).write_text(args["content"])
    return f"wrote {len(args['content'])} characters"


def count_calls(args: dict, ctx: ToolContext) -> str:
    ctx.state["counter"] = ctx.state.get("counter", 0) + 1  # state kept across steps
    return str(ctx.state["counter"])


def grep(args: dict, ctx: ToolContext) -> str:
    return "\n".join(line for line in read_note({"path": args["file"]}, ctx).splitlines() if args["pattern"] in line)


def boom(args: dict, ctx: ToolContext) -> str:
    raise RuntimeError("the tool has a bug")


PATH = {"path": {"type": "string"}}
TOOLS = [
    Tool("read_note", "fs", "Read a note.", {**OBJECT, "properties": PATH, "required": ["path"]}, read_note),
    Tool("write_note", "fs", "Write a note.", {**OBJECT, "properties": {**PATH, "content": {"type": "string"}},
                                               "required": ["path", "content"]}, write_note, destructive=True,
         preview=lambda args, ctx: f"would write {len(args['content'])} characters to {args['path']}"),
    Tool("count", "python", "Count calls.", {**OBJECT, "properties": {}}, count_calls),
    Tool("grep", "shell", "Lines with a pattern.", {**OBJECT, "properties": {"pattern": {"type": "string"},
                                                                             "file": {"type": "string"}},
                                                    "required": ["pattern", "file"]}, grep),
    Tool("boom", "system", "Always fails.", {**OBJECT, "properties": {}}, boom),
]


@pytest.fixture
def workspace(tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "a.txt").write_text("hello from a\nsecond line\n")
    return ws


def agent_run(script: Script, workspace, audit, *, policy=None, approver=None, max_steps=8, messages=ASK,
              context=None, play_whole_script=False):
    """Run the loop over the stub engine; returns (result, events, engine)."""
    engine = StubEngine(tokenizer(), script)
    engine.honour_stop_ids = not play_whole_script
    events = []
    with EngineModel(engine, resolved()) as model:
        result = ossy.agent.run(model, messages, tools=Registry(TOOLS), policy=policy or Policy(),
                                workspace=workspace, home=workspace.parent / "ossy-home", approver=approver, audit=audit, max_steps=max_steps,
                                on_event=events.append, conversation="test-convo", context=context)
    return result, events, engine


def tool_messages(result: AgentResult) -> list[str]:
    return [m["content"] for m in result.messages if m["role"] == "tool"]


# ---- the loop ---------------------------------------------------------------------------------


def test_call_result_answer(workspace, audit):
    script = Script(analysis("I need the file.") + call("functions.read_note", '{"path": "a.txt"}'),
                    analysis("It answered.") + final("It says hello."))
    result, events, engine = agent_run(script, workspace, audit)
    assert (result.answer, result.stopped, result.steps, result.turns) == ("It says hello.", "answer", 1, 2)
    assert [m["role"] for m in result.messages] == ["user", "assistant", "tool", "assistant"]
    asked = result.messages[1]
    assert asked["thinking"] == "I need the file." and asked["content"] == ""
    assert asked["tool_calls"][0]["function"] == {"name": "read_note", "arguments": '{"path": "a.txt"}'}
    assert result.messages[2] == {"role": "tool", "tool_call_id": asked["tool_calls"][0]["id"], "name": "read_note",
                                  "content": "hello from a\nsecond line\n"}
    second = script.prompts[1]
    assert "<|start|>functions.read_note to=assistant<|channel|>commentary<|message|>hello from a" in second
    assert "<|channel|>analysis<|message|>I need the file.<|end|>" in second  # this turn's analysis is kept
    assert "// Read a note." in script.prompts[0]  # the tools are offered
    kinds = [type(e) for e in events]
    assert kinds[0] is TurnStarted and ToolCalled in kinds and ToolReturned in kinds
    assert kinds.index(ToolCalled) < kinds.index(ToolReturned) < kinds.index(TurnStarted, 1)
    assert "".join(e.text for e in events if isinstance(e, TextDelta) and e.field == "content") == "It says hello."
    rows = audit.query()
    assert [(r["tool"], r["decision"], r["status"], r["conversation"]) for r in rows] == \
        [("read_note", "allowed", "ok", "test-convo")]


def test_two_calls_in_one_turn(workspace, audit):
    both = (analysis("Two things.") + call("functions.read_note", '{"path": "a.txt"}') + "<|start|>assistant"
            + call("functions.count", "{}"))
    script = Script(both, final("Done."))
    result, events, _ = agent_run(script, workspace, audit, play_whole_script=True)
    assert result.answer == "Done." and result.steps == 1
    assert [c.name for c, _ in result.calls] == ["read_note", "count"]
    assert tool_messages(result) == ["hello from a\nsecond line\n", "1"]
    assert len(result.messages[1]["tool_calls"]) == 2
    assert "functions.count to=assistant<|channel|>commentary<|message|>1<|end|>" in script.prompts[1]


def test_bad_json_arguments_come_back_as_an_error_the_model_reads(workspace, audit):
    preamble = "<|channel|>commentary<|message|>Reading it now.<|end|><|start|>assistant"
    script = Script(analysis("Let me read.") + preamble + call("functions.read_note", "path is a.txt, please"),
                    call("functions.read_note", '{"path": "a.txt", "path": "b.txt"}'),
                    final("Sorry, I could not read it."))
    result, events, _ = agent_run(script, workspace, audit)
    assert result.answer == "Sorry, I could not read it." and result.stopped == "answer" and result.steps == 2
    broken, duplicate = tool_messages(result)
    assert broken.startswith("Error: invalid arguments for read_note: not valid JSON")
    assert duplicate == 'Error: invalid arguments for read_note: duplicate key "path"'
    assert result.calls[0][0].error.startswith("the arguments of 'read_note' are not JSON")  # data, not content
    first = result.messages[1]
    assert first["content"] == "Reading it now."  # the preamble; the broken arguments are the call's
    assert first["tool_calls"][0]["function"] == {"name": "read_note", "arguments": "path is a.txt, please"}
    assert "<|message|>path is a.txt, please<|call|>" in script.prompts[1]  # the model sees what it sent
    assert "Error: invalid arguments for read_note" in script.prompts[1]
    assert [r["decision"] for r in audit.query()] == ["invalid", "invalid"]


def test_an_unknown_tool_and_failing_tools_are_results_not_crashes(workspace, audit):
    script = Script(call("functions.rm_rf", '{"path": "/"}'), call("functions.read_note", '{"path": "nope.txt"}'),
                    call("functions.boom", "{}"), final("All failed."))
    result, _, _ = agent_run(script, workspace, audit)
    assert result.answer == "All failed." and result.steps == 3
    unknown, missing, bug = tool_messages(result)
    assert unknown.startswith('Error: unknown tool "rm_rf"; available tools: read_note, write_note')
    assert missing == "Error: no such file: nope.txt"
    assert bug == "Error: boom failed: RuntimeError: the tool has a bug"
    assert [r.status for _, r in result.calls] == ["invalid", "error", "error"]


def test_the_step_limit_stops_the_loop_and_runs_no_more_calls(workspace, audit):
    script = Script(analysis("Again.") + call("functions.count", "{}"))
    result, _, _ = agent_run(script, workspace, audit, max_steps=2)
    assert (result.stopped, result.steps, result.turns) == ("step_limit", 2, 3)
    assert tool_messages(result) == ["1", "2", "Error: not run: the step limit was reached (max_steps 2)"]
    assert len(audit.query()) == 2  # the call past the limit did not reach the executor
    assert result.messages[-1]["role"] == "tool"  # every call has its result: the history stays well formed


def test_approvals_and_dry_run(workspace, audit):
    write = call("functions.write_note", '{"path": "b.txt", "content": "new"}')
    result, _, _ = agent_run(Script(write, final("ok")), workspace, audit, policy=Policy(approvals="never"))
    assert tool_messages(result) == ["Error: write_note needs approval; approvals are set to never"]
    result, _, _ = agent_run(Script(write, final("ok")), workspace, audit)  # ask, but nobody to ask
    assert "--approve auto" in tool_messages(result)[0] and not (workspace / "b.txt").exists()
    asked = []
    result, _, _ = agent_run(Script(write, final("ok")), workspace, audit,
                             approver=lambda request: asked.append(request.arguments) or "no")
    assert asked == [{"path": "b.txt", "content": "new"}] and "did not approve" in tool_messages(result)[0]
    result, _, _ = agent_run(Script(write, final("ok")), workspace, audit, policy=Policy(dry_run=True))
    assert tool_messages(result) == ["Dry run: nothing was changed. The call would do this:\n"
                                     "would write 3 characters to b.txt"]
    assert result.calls[0][1].status == "dry-run"
    assert not (workspace / "b.txt").exists()
    result, _, _ = agent_run(Script(write, final("ok")), workspace, audit, approver=lambda request: "yes")
    assert tool_messages(result) == ["wrote 3 characters"] and (workspace / "b.txt").read_text() == "new"
    result, _, _ = agent_run(Script(write, final("ok")), workspace, audit, policy=Policy(mode="read-only"),
                             approver=lambda request: "yes")
    assert "read-only" in tool_messages(result)[0]
    assert [r["decision"] for r in audit.query()][::-1] == ["denied", "denied", "denied", "dry-run", "approved",
                                                            "denied"]


def test_names_from_the_seeds_templates_reach_the_registry_as_written(workspace, audit):
    script = Script(call("linux.grep", '{"pattern": "second", "file": "a.txt"}'),
                    call("functions.fs.read_note", '{"path": "a.txt"}'), final("Found."))
    result, events, _ = agent_run(script, workspace, audit)
    assert [e.call.name for e in events if isinstance(e, ToolCalled)] == ["linux.grep", "fs.read_note"]
    assert tool_messages(result) == ["second line", "hello from a\nsecond line\n"]
    assert [r["tool"] for r in audit.query()][::-1] == ["grep", "read_note"]


def test_earlier_turns_analysis_is_left_out_and_this_turns_kept(workspace, audit):
    earlier = [{"role": "user", "content": "Hi"},
               {"role": "assistant", "content": "Hello.", "thinking": "OLD-THOUGHT"},
               {"role": "user", "content": "Count, please."}]
    script = Script(analysis("NEW-THOUGHT") + call("functions.count", "{}"), final("1."))
    result, _, _ = agent_run(script, workspace, audit, messages=earlier)
    assert "OLD-THOUGHT" not in script.prompts[0] and "OLD-THOUGHT" not in script.prompts[1]
    assert "NEW-THOUGHT" in script.prompts[1]
    assert result.messages[1]["thinking"] == "OLD-THOUGHT"  # the record keeps it
    assert result.messages[:3] == earlier and len(earlier) == 3  # the caller's list is not changed


def test_the_context_lives_for_the_run_and_is_closed_unless_passed_in(workspace, audit):
    class Kernel:
        closed = False

        def close(self):
            self.closed = True

    script = Script(call("functions.count", "{}"), call("functions.count", "{}"), final("2."))
    mine = ToolContext(workspace, Policy(), home=workspace.parent / "ossy-home")
    kernel = mine.state["kernel"] = Kernel()
    result, _, _ = agent_run(script, workspace, audit, context=mine)
    assert tool_messages(result) == ["1", "2"] and mine.state["counter"] == 2 and not kernel.closed
    contexts = []
    original = ToolContext.close
    try:
        ToolContext.close = lambda self: contexts.append(self) or original(self)
        agent_run(Script(final("No tools needed.")), workspace, audit)
    finally:
        ToolContext.close = original
    assert len(contexts) == 1 and contexts[0] is not mine


def test_a_reply_cut_by_num_predict_and_no_tools():
    engine = StubEngine(tokenizer(), Script(final("A long answer that goes on")))
    with EngineModel(engine, resolved()) as model:
        toolbox = Toolbox(Registry([]), ToolContext(".", home=Path("ossy-home")), executor=None)
        result = ossy.agent.loop(model, toolbox, ASK, options={"num_predict": 6})
    assert result.stopped == "length" and result.turns == 1 and engine.requests[0].max_tokens == 6
    assert "# Tools" not in tokenizer().decode(list(engine.requests[0].prompt))


def test_parse_toolsets_and_unknown_toolsets():
    assert parse_toolsets("fs, shell,fs") == ("fs", "shell")
    assert parse_toolsets("none") == parse_toolsets("off") == parse_toolsets("") == parse_toolsets(None) == ()
    assert parse_toolsets(["Python"]) == ("python",)
    with pytest.raises(OssyError, match="unknown toolset"):
        Toolbox.open("fs,bogus")


# ---- over HTTP --------------------------------------------------------------------------------


def test_client_model_over_the_native_api(tmp_path, workspace, audit, monkeypatch):
    from ossy.client import Client
    from ossy.server import create_app

    script = Script(analysis("Reading.") + call("functions.read_note", "a.txt"),
                    call("functions.read_note", '{"path": "a.txt"}'), call("python", "print(1)"),
                    final("It says hello."))
    library, resolver = roomy_library(tmp_path, {"tiny": "FROM {checkpoint}\n"})
    engine = StubEngine(tokenizer(), script)
    python = Tool("python", "python", "Run code.", {**OBJECT, "properties": {"code": {"type": "string"}}},
                  lambda args, ctx: f"ran {args['code']!r}", raw_payload=True)
    events = []
    with RunningServer(create_app(engine, resolver, library)) as url, Client(url) as client:
        result = ossy.agent.run(ClientModel(client, "tiny"), ASK, tools=Registry([*TOOLS, python]),
                                workspace=workspace, home=tmp_path / "home", audit=audit, on_event=events.append,
                                options={"num_predict": 60})
        # a model name: the server at OSSY_HOST, the built-in fs toolset, the audit log in OSSY_HOME
        monkeypatch.setenv("OSSY_HOST", url)
        monkeypatch.setenv("OSSY_HOME", str(tmp_path / "home"))
        engine.respond = Script(call("functions.read_file", '{"path": "a.txt"}'), final("Read it."))
        by_name = run_agent("tiny", ASK, workspace=workspace)
    assert by_name.answer == "Read it." and tool_messages(by_name) == ["hello from a\nsecond line\n"]
    assert [r["tool"] for r in AuditLog.default(tmp_path / "home").query()] == ["read_file"]
    assert result.answer == "It says hello." and result.steps == 3
    invalid, read, ran = tool_messages(result)
    assert invalid.startswith("Error: invalid arguments for read_note: not valid JSON")
    assert (read, ran) == ("hello from a\nsecond line\n", "ran 'print(1)'")
    # the invalid call crossed the native API as data: its text as written, and the error
    assert result.calls[0][0].arguments == "a.txt" and "not JSON" in result.calls[0][0].error
    assert result.messages[5]["tool_calls"][0]["function"]["arguments"] == "print(1)"  # code, as written
    assert "<|start|>functions.read_note to=assistant<|channel|>commentary<|message|>hello from a" in script.prompts[2]
    assert "<|channel|>analysis<|message|>Reading.<|end|>" in script.prompts[2]
    assert result.last.stats["eval_count"] > 0 and engine.requests[0].max_tokens == 60


# ---- a real tiny random model -----------------------------------------------------------------


def _tiny_engine_model(root):
    from store_util import make_checkpoint

    from ossy.chat.models import StoreResolver
    from ossy.modelfile import parse
    from ossy.store import Library, Store, create

    checkpoint = make_checkpoint(root / "ckpt", vocab_size=201088)
    library = Library(Store(root / "models"))
    create(library, "tiny", parse(f"FROM {checkpoint}\n"), base_dir=root)
    return StoreResolver(library, lambda directory: tokenizer()).resolve("tiny")


def test_a_real_tiny_model_runs_the_loop_to_the_end(tmp_path, workspace, audit):
    """Whatever a random model emits (garbage, half a call), the loop ends cleanly."""
    from ossy.engine.scheduler import LocalEngine

    model = _tiny_engine_model(tmp_path)
    engine = LocalEngine(dtype="float32")
    try:
        with EngineModel(engine, model) as chat:
            for seed in range(3):
                result = ossy.agent.run(chat, ASK, tools=Registry(TOOLS[:1]), workspace=workspace, audit=audit,
                                        home=workspace.parent / "ossy-home",
                                        max_steps=2, options={"num_predict": 12, "seed": seed, "temperature": 1.0})
                assert result.stopped in ("answer", "length", "step_limit") and 1 <= result.turns <= 3
                assert result.messages[0] == ASK[0] and result.messages[-1]["role"] in ("assistant", "tool")
    finally:
        import asyncio

        asyncio.run(engine.close())
