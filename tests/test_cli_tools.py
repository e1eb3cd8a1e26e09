"""`ossy tools list|show|run` and `ossy audit`, through `ossy.cli.main.main` with the fake tools of
test_tools_registry standing in for the real toolsets."""

from __future__ import annotations

import datetime
import json
import sys

import pytest
from test_tools_registry import fake_tools, schema

from ossy.cli.audit import parse_since
from ossy.cli.main import main
from ossy.tools import Tool, ToolResult
from ossy.tools.audit import AuditLog
from ossy.tools.registry import TOOLSETS


def _probe(args: dict, ctx) -> ToolResult:
    """Reports the policy it ran under; ends with the status and exit code it is asked for."""
    policy = ctx.policy
    report = json.dumps({"mode": policy.mode, "approvals": policy.approvals, "dry_run": policy.dry_run,
                         "network": policy.network, "unsandboxed": policy.allow_unsandboxed,
                         "timeouts": dict(policy.timeouts), "workspace": str(ctx.workspace),
                         "conversation": ctx.conversation})
    status = args.get("status", "ok")
    return ToolResult(output=report, status=status, exit_code=args.get("exit_code", 0),
                      error=None if status == "ok" else f"ended with {status}")


PROBE = Tool("probe", "system", "Report the policy.", schema({"status": {"type": "string"},
                                                              "exit_code": {"type": "integer"}}), _probe)


@pytest.fixture(autouse=True)
def toolsets(monkeypatch, tmp_path):
    """The fake tools as the built-in toolsets of the same names; the ossy home in tmp."""
    monkeypatch.setenv("OSSY_HOME", str(tmp_path / "home"))
    tools = fake_tools() + [PROBE]
    for toolset in TOOLSETS:
        monkeypatch.setitem(TOOLSETS, toolset, lambda toolset=toolset: [t for t in tools if t.toolset == toolset])


@pytest.fixture
def workspace(tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "a.txt").write_text("alpha\n")
    return ws


def audit_rows(tmp_path) -> list[dict]:
    return AuditLog(tmp_path / "home" / "audit.sqlite").query()


def test_tools_list(capsys):
    assert main(["tools", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["TOOLSET", "NAME", "KIND", "DESCRIPTION"]
    assert lines[1].split() == ["fs", "read_file", "read-only", "Read", "a", "file."]  # first line only
    assert lines[2].split() == ["fs", "write_file", "destructive", "Write", "a", "file."]
    assert len(lines) == 1 + len(fake_tools()) + 1


def test_tools_list_one_toolset(capsys):
    assert main(["tools", "list", "--toolset", "system"]) == 0
    assert [line.split()[1] for line in capsys.readouterr().out.splitlines()[1:]] == ["df", "system_analysis", "probe"]
    assert main(["tools", "list", "--toolset", "nope"]) == 1
    assert capsys.readouterr().err.startswith('Error: unknown toolset "nope" (known: fs, shell, system')


def test_tools_show(capsys):
    assert main(["tools", "show", "list_dir"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("list_directory\n  toolset: fs\n  kind: read-only\n  timeout: 30 s\n"
                          "  approval: not needed\n  aliases: list_dir\n\nList a directory.\n\nparameters:\n")
    assert json.loads(out.split("parameters:\n", 1)[1]) == fake_tools()[3].parameters
    assert main(["tools", "show", "write_file"]) == 0
    assert "kind: destructive\n  timeout: 30 s\n  approval: once per conversation" in capsys.readouterr().out


def test_tools_show_unknown(capsys):
    assert main(["tools", "show", "browser.delete"]) == 1
    err = capsys.readouterr().err
    assert err == 'Error: unknown tool "browser.delete"; `ossy tools list` shows them\n'


def test_tools_run_prints_the_result_and_audits_it(capsys, workspace, tmp_path):
    assert main(["tools", "run", "fs.read_file", '{"path": "a.txt"}', "--workspace", str(workspace)]) == 0
    assert capsys.readouterr().out == "alpha\n"
    [row] = audit_rows(tmp_path)
    assert (row["conversation"], row["tool"], row["decision"], row["status"]) == ("cli", "read_file", "allowed", "ok")


def test_tools_run_workspace_defaults_to_the_current_directory(capsys, workspace, monkeypatch):
    monkeypatch.chdir(workspace)
    assert main(["tools", "run", "read_file", '{"path": "a.txt"}']) == 0
    assert capsys.readouterr().out == "alpha\n"
    assert main(["tools", "run", "read_file", '{"path": "a.txt"}', "--workspace", str(workspace / "nope")]) == 1
    assert "is not a directory" in capsys.readouterr().err


def test_tools_run_passes_the_policy(capsys, workspace):
    argv = ["tools", "run", "probe", "--workspace", str(workspace), "--mode", "full-access", "--approve", "never",
            "--network", "--unsandboxed", "--timeout", "2.5"]
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out) == {
        "mode": "full-access", "approvals": "never", "dry_run": False, "network": True, "unsandboxed": True,
        "timeouts": {"probe": 2.5}, "workspace": str(workspace), "conversation": "cli"}
    assert main(["tools", "run", "probe", "--timeout", "0"]) == 1
    assert "--timeout must be a positive number" in capsys.readouterr().err


@pytest.mark.parametrize("name, arguments, code, message", [
    ("read_file", '{"path": ["a"]}', 2, "Error: invalid arguments for read_file: path: ['a'] is not of type"),
    ("read_file", '{"path": "a.txt", "path": "x"}', 2, 'duplicate key "path"'),
    ("container.exec", "{}", 2, 'Error: unknown tool "container.exec"; available tools: read_file'),
    ("read_file", '{"path": "missing.txt"}', 1, "Error: no such file: missing.txt"),
    ("boom", '{"kind": "bug"}', 1, "Error: boom failed: ZeroDivisionError"),
    ("probe", '{"status": "timeout"}', 124, "Error: ended with timeout"),
    ("write_file", '{"path": "new.txt", "content": "x"}', 3, "--approve auto"),
])
def test_tools_run_exits_non_zero_on_a_refused_or_failed_call(capsys, workspace, name, arguments, code, message):
    assert main(["tools", "run", name, arguments, "--workspace", str(workspace)]) == code
    assert message in capsys.readouterr().err
    assert not (workspace / "new.txt").exists()


def test_tools_run_passes_on_the_tools_exit_code(workspace):
    assert main(["tools", "run", "probe", '{"exit_code": 7}', "--workspace", str(workspace)]) == 7


def test_tools_run_approvals_and_modes(capsys, workspace, tmp_path):
    write = ["tools", "run", "write_file", '{"path": "new.txt", "content": "x"}', "--workspace", str(workspace)]
    assert main(write + ["--approve", "never"]) == 3
    assert main(write + ["--approve", "auto", "--mode", "read-only"]) == 3
    assert "sandbox mode is read-only" in capsys.readouterr().err
    assert not (workspace / "new.txt").exists()
    assert main(write + ["--approve", "auto"]) == 0
    assert (workspace / "new.txt").read_text() == "x"
    assert [(r["decision"], r["decided_by"]) for r in audit_rows(tmp_path)][::-1] == \
        [("denied", "policy"), ("denied", "policy"), ("allowed", "auto")]


def test_tools_run_dry_run_changes_nothing(capsys, workspace, tmp_path):
    argv = ["tools", "run", "write_file", '{"path": "a.txt", "content": "changed"}', "--workspace", str(workspace),
            "--dry-run"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert captured.out == "would write 7 characters to a.txt\n"
    assert captured.err == "dry run: nothing was changed\n"
    assert (workspace / "a.txt").read_text() == "alpha\n"
    assert audit_rows(tmp_path)[0]["decision"] == "dry-run"


def test_tools_run_json(capsys, workspace):
    assert main(["tools", "run", "echo", '{"text": "hi\\u001b"}', "--workspace", str(workspace), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["status"], result["output"], result["error"], result["exit_code"]) == ("ok", "hi\x1b", None, 0)
    assert result["truncated"] is False and result["duration"] >= 0


def test_tools_run_escapes_control_characters_on_a_terminal(capsys, workspace, monkeypatch):
    argv = ["tools", "run", "echo", '{"text": "\\u001b[2Jx\\r\\n"}', "--workspace", str(workspace)]
    assert main(argv) == 0
    assert capsys.readouterr().out == "\x1b[2Jx\r\n"  # not a terminal: the text as it is
    monkeypatch.setattr("ossy.cli.tools.is_terminal", lambda stream: stream is sys.stdout)
    assert main(argv) == 0
    assert capsys.readouterr().out == "\\x1b[2Jx\\r\n"


# -- ossy audit ----------------------------------------------------------------------------------
@pytest.fixture
def some_calls(workspace, capsys):
    for argv in (["read_file", '{"path": "a.txt"}'], ["write_file", '{"path": "n.txt", "content": "x"}'],
                 ["\x1b[31mevil", "{}"]):
        main(["tools", "run", *argv, "--workspace", str(workspace)])
    capsys.readouterr()


def test_audit_table(capsys, some_calls):
    assert main(["audit"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["TIME", "CONVERSATION", "TOOL", "DECISION", "BY", "STATUS", "EXIT", "DURATION",
                                "BYTES", "TRUNCATED"]
    assert lines[1].split()[2:] == ["cli", "read_file", "allowed", "policy", "ok", "0", lines[1].split()[8], "6"]
    assert lines[2].split()[2:7] == ["cli", "write_file", "denied", "policy", "denied"]
    assert lines[3].split()[2:7] == ["cli", "\\x1b[31mevil", "invalid", "policy", "invalid"]
    assert "\x1b" not in "".join(lines) and len(lines) == 4


def test_audit_filters(capsys, some_calls):
    assert main(["audit", "--tool", "write_file"]) == 0
    assert [line.split()[3] for line in capsys.readouterr().out.splitlines()[1:]] == ["write_file"]
    assert main(["audit", "--decision", "denied", "--conversation", "cli", "--since", "1h"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2
    assert main(["audit", "--since", "2999-01-01"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1
    assert main(["audit", "--limit", "2", "--json"]) == 0
    assert [row["decision"] for row in json.loads(capsys.readouterr().out)] == ["denied", "invalid"]


@pytest.mark.parametrize("argv, message", [
    (["--since", "yesterday"], "--since must be an ISO time or an age like 30m, 2h, 1d"),
    (["--limit", "0"], "--limit must be at least 1"),
])
def test_audit_bad_options(capsys, argv, message):
    assert main(["audit", *argv]) == 1
    assert message in capsys.readouterr().err


def test_parse_since():
    now = datetime.datetime(2025, 8, 5, 12, 0, tzinfo=datetime.timezone.utc)
    assert parse_since("30m", now) == now - datetime.timedelta(minutes=30)
    assert parse_since("2h", now) == now - datetime.timedelta(hours=2)
    assert parse_since("1d", now) == now - datetime.timedelta(days=1)
    assert parse_since("90s", now) == now - datetime.timedelta(seconds=90)
    assert parse_since("2025-08-05T10:00:00") == datetime.datetime(2025, 8, 5, 10, tzinfo=datetime.timezone.utc)
    assert parse_since("2025-08-05T10:00:00+02:00").utcoffset() == datetime.timedelta(hours=2)
