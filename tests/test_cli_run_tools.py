"""`ossy run MODEL --tools ...` as users run it, against a live server over the stub engine: the
call, its result and the answer are printed; the Modelfile's TOOLS turn tools on and
`--tools none` off; approvals without a terminal; the step limit; escaping; /api/show's
`toolsets`. Then `/tools` in the chat, through the interpreter and through a pseudo-terminal."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest
from stub_engine import RunningServer, StubEngine, tokenizer
from test_agent import analysis, call, final, roomy_library
from test_cli_run import FakeClient, Terminal

from ossy.cli.repl import Interpreter, Session, ToolOptions
from ossy.client import Client
from ossy.server import create_app
from ossy.tools.audit import AuditLog

NOTES = "buy milk\nbuy bread\n"


def respond(prompt: str, request) -> str:
    """The stub "model": reads notes.txt (or writes, or loops), then answers from the result."""
    last = prompt.rsplit("<|start|>", 2)[-2]  # the message before the final "<|start|>assistant"
    if "type read_file" not in prompt:
        return final("No tools here.")
    if "forever" in prompt:
        return call("functions.read_file", '{"path": "notes.txt"}')
    if last.startswith("functions.read_file"):
        return analysis("The tool answered.") + final("The notes say: buy milk.")
    if last.startswith("functions.write_file"):
        return final("I tried to write.")
    if "write" in last:
        return call("functions.write_file", '{"path": "out.txt", "content": "hi"}')
    return analysis("I should read the notes.") + call("functions.read_file", '{"path": "notes.txt"}')


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("tools")
    library, resolver = roomy_library(root, {"tiny": "FROM {checkpoint}\n", "tiny-tools": "FROM tiny\nTOOLS fs\n"})
    engine = StubEngine(tokenizer(), respond)
    with RunningServer(create_app(engine, resolver, library)) as url:
        yield url, engine, root / "home"


@pytest.fixture
def workspace(tmp_path):
    (tmp_path / "notes.txt").write_text(NOTES)
    return tmp_path


def ossy(server, *args, cwd=None) -> subprocess.CompletedProcess:
    url, _, home = server
    env = {k: v for k, v in os.environ.items() if not k.startswith("OSSY_")}
    env.update(OSSY_HOST=url, OSSY_HOME=str(home), TERM="dumb", NO_COLOR="1")
    return subprocess.run([sys.executable, "-m", "ossy", *args], env=env, input="", capture_output=True, text=True,
                          timeout=60, cwd=cwd)


def test_one_shot_prints_the_call_the_result_and_the_answer(server, workspace):
    result = ossy(server, "run", "tiny", "--tools", "fs", "--workspace", str(workspace), "what is in my notes?")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "The notes say: buy milk.\n\n"  # stdout is not a terminal: just the answer
    assert 'tool: read_file {"path": "notes.txt"}\n  ok (' in result.stderr
    assert "2 lines)\n  | buy milk\n  | buy bread\n" in result.stderr
    rows = AuditLog(server[2] / "audit.sqlite").query(tool="read_file")
    assert rows and rows[0]["decision"] == "allowed" and rows[0]["arguments"] == '{"path": "notes.txt"}'


def test_the_modelfile_names_the_toolsets_and_none_turns_them_off(server, workspace):
    url, engine, _ = server
    with Client(url) as client:
        assert client.show("tiny-tools")["toolsets"] == ["fs"] and "toolsets" not in client.show("tiny")
    result = ossy(server, "run", "tiny-tools", "what is in my notes?", cwd=workspace)  # workspace "."
    assert result.returncode == 0 and result.stdout == "The notes say: buy milk.\n\n", result.stderr
    result = ossy(server, "run", "tiny-tools", "--tools", "none", "what is in my notes?", cwd=workspace)
    assert result.stdout == "No tools here.\n\n" and result.stderr == ""
    result = ossy(server, "run", "tiny", "what is in my notes?", cwd=workspace)  # no tools: the plain chat
    assert result.stdout == "No tools here.\n\n" and result.stderr == ""
    assert "# Tools" not in tokenizer().decode(list(engine.requests[-1].prompt))


def test_approvals_without_a_terminal_and_with_auto(server, workspace):
    result = ossy(server, "run", "tiny", "--tools", "fs", "--workspace", str(workspace), "please write")
    assert result.returncode == 0 and result.stdout == "I tried to write.\n\n"
    assert "  denied (" in result.stderr and "--approve auto" in result.stderr
    assert not (workspace / "out.txt").exists()
    result = ossy(server, "run", "tiny", "--tools", "fs", "--workspace", str(workspace), "--approve", "auto",
                  "please write")
    assert "  ok (" in result.stderr and (workspace / "out.txt").read_text() == "hi"


def test_the_step_limit_and_bad_flags(server, workspace):
    result = ossy(server, "run", "tiny", "--tools", "fs", "--workspace", str(workspace), "--max-steps", "1",
                  "read it forever")
    assert result.returncode == 1
    assert result.stderr.count("tool: read_file") == 2
    assert "  denied (0.00s): not run: the step limit was reached (max_steps 1)" in result.stderr
    assert "Stopped: the step limit was reached (--max-steps 1)" in result.stderr
    result = ossy(server, "run", "tiny", "--tools", "fs,bogus", "hi")
    assert result.returncode == 1 and result.stderr.startswith('Error: unknown toolset "bogus"')
    result = ossy(server, "run", "tiny", "--tools", "fs", "--workspace", str(workspace / "nope"), "hi")
    assert result.returncode == 1 and "is not a directory" in result.stderr


def test_tool_output_cannot_drive_the_terminal(server, workspace):
    (workspace / "notes.txt").write_text("\x1b[2Jgone\x1b]0;title\x07\n")
    result = ossy(server, "run", "tiny", "--tools", "fs", "--workspace", str(workspace), "what is in my notes?")
    assert "\x1b" not in result.stderr and "\x07" not in result.stderr
    assert "  | \\x1b[2Jgone\\x1b]0;title\\x07" in result.stderr


# ---- /tools in the chat -----------------------------------------------------------------------


def test_tools_command(workspace):
    out, err = io.StringIO(), io.StringIO()
    it = Interpreter(FakeClient(), Session("m", tool_options=ToolOptions(home=workspace.parent / "ossy-home", workspace=workspace)), out, err, color=False)
    it.handle("/tools")
    assert "Tools are off. Turn them on with /tools LIST (toolsets: fs, shell, system, python, browser)" in out.getvalue()
    it.handle("/tools fs")
    assert "Enabled tools: fs." in out.getvalue() and it.session.tools == ("fs",)
    it.handle("/tools")
    assert "Tools: fs (read_file, write_file" in out.getvalue()
    assert f"workspace {workspace}, sandbox workspace-write, approvals ask" in out.getvalue()
    it.handle("/tools fs,bogus")
    assert 'Error: unknown toolset "bogus"' in out.getvalue() and it.session.tools == ("fs",)
    it.handle("/tools off")
    assert "Disabled tools." in out.getvalue() and it.session.tools == ()
    it.handle("/help")
    assert "/tools [list]   Show or set the tools the model may call" in out.getvalue()
    it.handle("/? tools")
    assert "/tools off             Turn tools off" in out.getvalue()
    it.close()


def test_a_chat_with_tools_keeps_the_calls_in_its_history(server, workspace):
    url, engine, _ = server
    out, err = io.StringIO(), io.StringIO()
    with Client(url) as client:
        it = Interpreter(client, Session("tiny", tools=("fs",), tool_options=ToolOptions(home=workspace.parent / "ossy-home", workspace=workspace)),
                         out, err, color=False)
        it.handle("what is in my notes?")
        assert out.getvalue() == ("Thinking...\nI should read the notes.\n...done thinking.\n\n"
                                  "Thinking...\nThe tool answered.\n...done thinking.\n\n"
                                  "The notes say: buy milk.\n\n")
        assert err.getvalue().startswith('tool: read_file {"path": "notes.txt"}\n  ok (')
        assert [m["role"] for m in it.session.messages] == ["user", "assistant", "tool", "assistant"]
        it.handle("and again?")
        first_turn, second_turn = (tokenizer().decode(list(r.prompt)) for r in engine.requests[-2:])
        for prompt in (first_turn, second_turn):  # the first message's analysis is done with
            assert "The tool answered." not in prompt and prompt.count("I should read the notes.") <= 1
        assert "I should read the notes." in second_turn and "I should read the notes." not in first_turn
        assert "<|message|>buy milk\nbuy bread\n<|end|>" in first_turn  # its tool results are not
        it.handle("/tools off")
        it.handle("now without tools")  # the plain chat sends the history with its tool messages
        assert out.getvalue().endswith("No tools here.\n\n") and len(it.session.messages) == 10
        it.handle("/save tools-chat")  # MESSAGEs hold text: the calls and results stay out
        saved = client.show("tools-chat")["messages"]
        assert [m["role"] for m in saved] == ["user", "assistant"] * 3
        assert saved[1]["content"] == "The notes say: buy milk."
        it.close()


def test_tools_in_the_repl_through_a_pseudo_terminal(server, workspace):
    url, _, home = server
    env = {k: v for k, v in os.environ.items() if not k.startswith("OSSY_")}
    env.update(OSSY_HOST=url, OSSY_HOME=str(home), TERM="dumb", NO_COLOR="1")
    term = Terminal([sys.executable, "-m", "ossy", "run", "tiny", "--workspace", str(workspace)], env)
    try:
        term.expect(">>> ")
        term.send("/tools fs")
        term.expect("Enabled tools: fs.")
        term.send("what is in my notes?")
        seen = term.expect("The notes say: buy milk.")
        assert 'tool: read_file {"path": "notes.txt"}' in seen and "| buy bread" in seen
        term.send("/bye")
        assert term.proc.wait(timeout=20) == 0
    finally:
        term.close()
