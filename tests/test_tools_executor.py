"""The executor: strict arguments, unknown tools, policy and approvals, dry-run, failures as
results, the output cap, one audit row per call, and the terminal approval prompt.

Uses the fake tools of test_tools_registry (real names, simple handlers on the workspace).
"""

from __future__ import annotations

import io
import json
import logging

import pytest
from test_tools_registry import fake_tools, schema

from ossy.tools import ApprovalRequest, AuditLog, Executor, Policy, Tool, ToolContext, escape_control, terminal_approver
from ossy.tools.registry import Registry


@pytest.fixture
def workspace(tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "a.txt").write_text("alpha\n")
    return ws


class Scripted:
    """An approver answering from a script and remembering what it was asked."""

    def __init__(self, *answers: str) -> None:
        self.answers = list(answers)
        self.requests: list[ApprovalRequest] = []

    def __call__(self, request: ApprovalRequest) -> str:
        self.requests.append(request)
        return self.answers.pop(0)


@pytest.fixture
def make(workspace, audit):
    def make(approver=None, conversation="conv", **policy) -> Executor:
        ctx = ToolContext(workspace=workspace, policy=Policy(**policy), conversation=conversation,
                          home=workspace.parent / "ossy-home")
        return Executor(Registry(fake_tools()), ctx, approver=approver, audit=audit)

    return make


def test_read_only_tool_runs_and_is_audited(make, audit):
    result = make().call("functions.read_file", '{"path": "a.txt"}')
    assert (result.status, result.output, result.error, result.exit_code) == ("ok", "alpha\n", None, 0)
    [row] = audit.query()
    assert (row["conversation"], row["tool"], row["decision"], row["decided_by"], row["status"]) == \
        ("conv", "read_file", "allowed", "policy", "ok")
    assert (row["exit_code"], row["output_bytes"], row["truncated"], row["mode"]) == (0, 6, False, "workspace-write")
    assert json.loads(row["arguments"]) == {"path": "a.txt"}


@pytest.mark.parametrize("name", ["browser.delete", "container.exec", "functions.nope", "linux.read_file"])
def test_unknown_tools_are_invalid_results(make, audit, name):
    result = make().call(name, "{}")
    assert result.status == "invalid"
    assert result.error.startswith(f'unknown tool "{name}"; available tools: read_file, write_file, ')
    [row] = audit.query()
    assert (row["tool"], row["decision"], row["status"], row["exit_code"]) == (name, "invalid", "invalid", None)


def test_unknown_tool_message_escapes_the_name_and_caps_the_list(workspace, audit):
    many = [Tool(f"t{i}", "shell", "", schema(), lambda a, c: "") for i in range(60)]
    executor = Executor(Registry(many), ToolContext(workspace, home=workspace.parent / "ossy-home"), audit=audit)
    error = executor.call("\x1b[2Jevil\r" + "x" * 1000, "{}").error
    assert "\x1b" not in error and "\r" not in error and '"\\x1b[2Jevil\\r' in error
    assert error.endswith("t49, ... (10 more)") and len(error) < 1000


NOT_STRICT = [
    ("read_file", '{"path":["a"]}', "path: ['a'] is not of type 'string'"),
    ("read_file", '{"path":"a.txt","max_size":NaN}', "NaN is not a JSON number"),
    ("read_file", '{"path":"a.txt","max_size":-Infinity}', "-Infinity is not a JSON number"),
    ("read_file", '{"path":"a.txt","max_size":1e400}', "number 1e400 is out of range"),
    ("read_file", '{"path":"a.txt","max_size":' + "9" * 5000 + "}", "not valid JSON (Exceeds the limit"),
    ("read_file", '{"path":"a.txt","max_size":1.5}', "max_size: 1.5 is not of type 'integer'"),
    ("list_directory", '{"recursive":"false"}', "recursive: 'false' is not of type 'boolean'"),
    ("read_file", '{"path":"a.txt","path":"../../x"}', 'duplicate key "path"'),
    ("read_file", '{"path":"a.txt","o":{"k":1,"k":2}}', 'duplicate key "k"'),
    ("read_file", '{"path":"a.txt","timeout_ms":"9e9"}', "('timeout_ms' was unexpected)"),
    ("read_file", "please read a.txt", "not valid JSON (Expecting value at line 1 column 1)"),
    ("read_file", '{"path":"a.txt"} trailing', "not valid JSON (Extra data"),
    ("read_file", "-1", "arguments must be a JSON object, not a number"),
    ("read_file", '["a.txt"]', "arguments must be a JSON object, not an array"),
    ("read_file", '"a.txt"', "arguments must be a JSON object, not a string"),
    ("read_file", "null", "arguments must be a JSON object, not null"),
    ("read_file", "{}", "arguments: 'path' is a required property"),
    ("read_file", "[" * 100_000, "not valid JSON"),
    ("read_file", '{"path":"' + "a" * (1 << 20) + '"}', "arguments are larger than 1048576 bytes"),
    ("read_file", {"path": "a.txt", "max_size": float("nan")}, "not JSON: Out of range float values"),
    ("read_file", {"path": object()}, "not JSON: Object of type object is not JSON serializable"),
    ("read_file", 42, "arguments must be a JSON object, not int"),
    ("system_analysis", '{"components":["cpu","gpu"]}', "components/1: 'gpu' is not one of ['cpu', 'memory']"),
]


@pytest.mark.parametrize("tool, arguments, message", NOT_STRICT)
def test_arguments_must_be_a_strict_json_object_matching_the_schema(make, audit, tool, arguments, message):
    result = make().call(tool, arguments)
    assert result.status == "invalid" and result.output == ""
    assert result.error.startswith(f"invalid arguments for {tool}: ") and message in result.error
    assert "\n" not in result.error and len(result.error) < 500
    [row] = audit.query()
    assert (row["tool"], row["decision"], row["exit_code"]) == (tool, "invalid", None)


def test_duplicate_keys_never_reach_a_destructive_tool(make, workspace):
    result = make(approvals="auto").call("write_file", '{"path":"ok.txt","path":"../x.txt","content":"c"}')
    assert result.status == "invalid"
    assert sorted(p.name for p in workspace.parent.rglob("*.txt")) == ["a.txt"]


def test_lone_surrogates_in_arguments_are_still_audited(make, audit):
    assert make().call("read_file", '{"path": "\\ud800"}').status == "error"
    assert audit.query()[0]["arguments"] == '{"path": "\\ud800"}'


def test_already_parsed_arguments_and_empty_text(make):
    assert make().call("read_file", {"path": "a.txt"}).output == "alpha\n"
    assert make().call("df", "").output == "Filesystem Size"
    assert make().call("df", "  ").status == "ok"


@pytest.mark.parametrize("arguments, code", [
    ("print(1)", "print(1)"),
    ('{"code": "x = 1"}', "x = 1"),
    ('{"a": 1}', '{"a": 1}'),
    ("[1, 2]", "[1, 2]"),
    ({"code": "y = 2"}, "y = 2"),
])
def test_raw_payload_tools_take_the_text_as_code(make, arguments, code):
    result = make(approvals="auto").call("python", arguments)
    assert (result.status, result.output) == ("ok", f"ran {code!r}")


def test_read_only_mode_denies_destructive_tools(make, workspace, audit):
    executor = make(mode="read-only", approvals="auto")
    result = executor.call("write_file", '{"path": "new.txt", "content": "x"}')
    assert result.status == "denied" and "sandbox mode is read-only" in result.error
    assert not (workspace / "new.txt").exists()
    assert executor.call("read_file", '{"path": "a.txt"}').ok
    assert [(r["decision"], r["decided_by"], r["mode"]) for r in audit.query()] == \
        [("allowed", "policy", "read-only"), ("denied", "policy", "read-only")]


def test_approvals_auto_and_never(make, workspace, audit):
    result = make(approvals="never").call("write_file", '{"path": "new.txt", "content": "x"}')
    assert (result.status, result.error) == ("denied", "write_file needs approval; approvals are set to never")
    assert not (workspace / "new.txt").exists()
    assert make(approvals="auto").call("write_file", '{"path": "new.txt", "content": "x"}').ok
    assert (workspace / "new.txt").read_text() == "x"
    assert [(r["decision"], r["decided_by"]) for r in audit.query()] == [("allowed", "auto"), ("denied", "policy")]


def test_ask_without_an_approver_is_denied_with_how_to_allow_it(make, workspace):
    result = make(approvals="ask").call("write_file", '{"path": "new.txt", "content": "x"}')
    assert result.status == "denied" and "--approve auto" in result.error
    assert not (workspace / "new.txt").exists()


def test_ask_yes_and_no(make, workspace, audit):
    approver = Scripted("no", "yes")
    executor = make(approver=approver)
    denied = executor.call("write_file", '{"path": "new.txt", "content": "hello"}')
    assert denied.status == "denied" and denied.error == "the user did not approve this call to write_file"
    assert not (workspace / "new.txt").exists()
    assert executor.call("write_file", '{"path": "new.txt", "content": "hello"}').ok
    assert (workspace / "new.txt").read_text() == "hello"
    request = approver.requests[0]
    assert (request.tool.name, request.arguments, request.preview) == \
        ("write_file", {"path": "new.txt", "content": "hello"}, "would write 5 characters to new.txt")
    assert request.policy.approvals == "ask"
    assert executor.call("read_file", '{"path": "a.txt"}').ok  # read-only tools never ask
    assert len(approver.requests) == 2
    assert [(r["decision"], r["decided_by"]) for r in audit.query()][::-1] == \
        [("denied", "user"), ("approved", "user"), ("allowed", "policy")]


def test_always_covers_the_conversation_only_for_session_scoped_tools(make, workspace):
    approver = Scripted("always", "always", "no")
    executor = make(approver=approver)
    for i in range(3):
        assert executor.call("write_file", json.dumps({"path": f"f{i}.txt", "content": "x"})).ok
    assert len(approver.requests) == 1
    (workspace / "b.txt").write_text("b")
    assert executor.call("delete_file", '{"path": "a.txt"}').ok  # per-call scope: "always" is one yes
    assert executor.call("delete_file", '{"path": "b.txt"}').status == "denied"
    assert len(approver.requests) == 3 and (workspace / "b.txt").exists()
    other = make(approver=Scripted("no"))  # another conversation asks again
    assert other.call("write_file", '{"path": "g.txt", "content": "x"}').status == "denied"


def test_what_runs_is_what_was_approved(make, workspace):
    def tamper(request: ApprovalRequest) -> str:
        request.arguments["path"] = "other.txt"
        return "yes"

    assert make(approver=tamper).call("write_file", '{"path": "new.txt", "content": "x"}').ok
    assert (workspace / "new.txt").exists() and not (workspace / "other.txt").exists()


@pytest.mark.parametrize("approver, message", [
    (Scripted("sure"), "the user did not approve"),
    (lambda request: 1 / 0, "could not ask for approval of write_file: ZeroDivisionError: division by zero"),
])
def test_other_answers_deny(make, workspace, approver, message):
    result = make(approver=approver).call("write_file", '{"path": "new.txt", "content": "x"}')
    assert result.status == "denied" and message in result.error
    assert not (workspace / "new.txt").exists()


def test_a_refused_preview_is_not_asked_about(make):
    approver = Scripted("yes")
    result = make(approver=approver).call("write_file", '{"path": "../x.txt", "content": "x"}')
    assert (result.status, result.error) == ("error", "../x.txt is outside the workspace")
    assert approver.requests == []


def test_dry_run_previews_and_changes_nothing(make, workspace, audit):
    executor = make(dry_run=True, approvals="auto")
    result = executor.call("write_file", '{"path": "a.txt", "content": "changed"}')
    assert (result.status, result.output, result.error) == ("dry-run", "would write 7 characters to a.txt", None)
    generic = executor.call("delete_file", '{"path": "a.txt"}')
    assert (generic.status, generic.output) == ("dry-run", 'would call delete_file with {"path": "a.txt"}')
    assert generic.text().startswith("Dry run: nothing was changed.")  # what the model reads
    assert (workspace / "a.txt").read_text() == "alpha\n"
    assert executor.call("read_file", '{"path": "a.txt"}').status == "ok"  # read-only tools run
    refused = executor.call("write_file", '{"path": "../x.txt", "content": "x"}')
    assert (refused.status, refused.error) == ("error", "../x.txt is outside the workspace")
    assert [(r["decision"], r["status"], r["exit_code"]) for r in audit.query()][::-1] == \
        [("dry-run", "dry-run", None), ("dry-run", "dry-run", None), ("allowed", "ok", 0), ("dry-run", "error", None)]


@pytest.mark.parametrize("kind, message", [
    ("tool", "the tool said no"),
    ("sandbox", "bubblewrap is missing"),
    ("bug", "boom failed: ZeroDivisionError: division by zero\\nsecond line"),
])
def test_handler_failures_become_results(make, audit, kind, message):
    result = make().call("boom", {"kind": kind})
    assert (result.status, result.error, result.exit_code) == ("error", message, 1)
    [row] = audit.query()
    assert (row["decision"], row["status"], row["error"], row["exit_code"]) == ("allowed", "error", message, 1)


def test_a_handler_returning_nonsense_is_an_error(make):
    result = make().call("bad_return", "{}")
    assert (result.status, result.error) == ("error", "bad_return returned int, not a result")


def test_output_is_capped_with_a_marker(make, audit):
    result = make(max_output=1000).call("echo", {"text": "0123456789", "times": 10_000})
    assert result.truncated and len(result.output) < 1200
    assert "characters omitted of 100000" in result.output and "output truncated" in result.output
    assert result.output.startswith("0123456789") and result.output.endswith("0123456789")
    [row] = audit.query()
    assert (row["output_bytes"], row["truncated"]) == (100_000, True)


def test_duration_is_measured(make, audit):
    result = make().call("slow", {"seconds": 0.05})
    assert result.ok and 0.05 <= result.duration < 2
    assert audit.query()[0]["duration"] == pytest.approx(result.duration)


def test_exactly_one_audit_row_per_call(make, audit):
    executor = make(approver=Scripted("no"))
    calls = [("read_file", '{"path": "a.txt"}'), ("nope", "{}"), ("read_file", "NaN"),
             ("write_file", '{"path": "n.txt", "content": ""}'), ("boom", '{"kind": "bug"}'), ("df", "{}")]
    statuses = [executor.call(name, arguments).status for name, arguments in calls]
    assert statuses == ["ok", "invalid", "invalid", "denied", "error", "ok"]
    assert [(r["tool"], r["status"]) for r in audit.query()][::-1] == \
        [(name, status) for (name, _), status in zip(calls, statuses)]


def test_default_audit_log_is_in_the_ossy_home(tmp_path, workspace):
    Executor(Registry(fake_tools()), ToolContext(workspace, home=tmp_path / "home")).call("df", "{}")
    Executor(Registry(fake_tools()), ToolContext(workspace, home=tmp_path / "other")).call("df", "{}")
    assert len(AuditLog(tmp_path / "home" / "audit.sqlite").query()) == 1
    assert len(AuditLog(tmp_path / "other" / "audit.sqlite").query()) == 1


def test_an_unwritable_audit_log_does_not_break_the_call(workspace, tmp_path, caplog):
    (tmp_path / "blocked").write_text("a file, not a directory")
    executor = Executor(Registry(fake_tools()), ToolContext(workspace, home=workspace.parent / "ossy-home"),
                        audit=AuditLog(tmp_path / "blocked" / "audit.sqlite"))
    with caplog.at_level(logging.WARNING, logger="ossy.tools.executor"):
        assert executor.call("read_file", '{"path": "a.txt"}').output == "alpha\n"
    assert "could not write the audit log" in caplog.text


# -- the terminal approver ---------------------------------------------------------------------
class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def request(tool_name: str = "write_file", **arguments) -> ApprovalRequest:
    tool = next(t for t in fake_tools() if t.name == tool_name)
    return ApprovalRequest(tool, arguments or {"path": "a.txt", "content": "x"}, "would write", Policy())


@pytest.mark.parametrize("typed, tool_name, answer", [
    ("y\n", "write_file", "yes"), ("YES\n", "write_file", "yes"), ("a\n", "write_file", "always"),
    ("always\n", "write_file", "always"), ("n\n", "write_file", "no"), ("\n", "write_file", "no"),
    ("", "write_file", "no"), ("a\n", "delete_file", "no"), ("y\n", "delete_file", "yes"),
])
def test_terminal_approver_answers(typed, tool_name, answer):
    out = io.StringIO()
    assert terminal_approver(Terminal(typed), out)(request(tool_name, path="a.txt")) == answer
    offered = "[y]es / [n]o / [a]lways for this conversation: " if tool_name == "write_file" else "[y]es / [n]o: "
    assert out.getvalue().endswith(offered)


def test_terminal_approver_without_a_terminal_says_no():
    out = io.StringIO()
    assert terminal_approver(io.StringIO("y\n"), out)(request()) == "no"
    assert "not a terminal" in out.getvalue()


def test_terminal_approver_shows_the_full_arguments_escaped():
    command = "echo ok\r rm -rf ~ \x1b[8mhidden\x1b[0m \u202eevil \x9b" + "x" * 20_000 + "PAYLOAD-AT-THE-END"
    out = io.StringIO()
    terminal_approver(Terminal("n\n"), out)(request(path="a.txt", content=command))
    shown = out.getvalue()
    assert not any(ch in shown for ch in "\r\x1b\u202e\x9b")
    assert "echo ok\\r rm -rf ~ \\u001b[8mhidden" in shown and "\\u202eevil \\x9b" in shown
    assert "PAYLOAD-AT-THE-END" in shown and "would write" in shown


def test_escape_control():
    assert escape_control("\x1b[31mred\r\n\tx\x7f\u200b") == "\\x1b[31mred\\r\\n\\tx\\x7f\\u200b"
    assert escape_control("a\nb\tc\rd", keep="\n\t") == "a\nb\tc\\rd"
    assert escape_control("plain ünïcode 日本") == "plain ünïcode 日本"
