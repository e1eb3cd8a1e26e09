"""The stateful python tool: one sandboxed kernel per conversation, Jupyter-like cells, and what
happens on timeouts, hostile output and broken kernels (docs/reference/tools-security.md §6.2 rows 38-40).

The workspace lives under /var/tmp, not /tmp: the sandbox gives the kernel a private /tmp, and a
write "outside the workspace" must aim at a directory the kernel really sees (read-only)."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import tempfile
import time
from pathlib import Path

import pytest

from ossy.tools import python
from ossy.tools.base import Policy, ToolContext

pytestmark = pytest.mark.usefixtures("bwrap")

TIMEOUT = 1.5


@pytest.fixture
def arena():
    root = Path(tempfile.mkdtemp(prefix="ossy-python-", dir="/var/tmp"))
    (root / "ws").mkdir()
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def ctx(arena):
    context = ToolContext(arena / "ws", policy=Policy(timeouts={"python": TIMEOUT}), home=arena / "ossy-home")
    yield context
    context.close()


def run(ctx, code):
    return python.run_python({"code": code}, ctx)


def test_the_tool_is_the_harmony_builtin():
    (tool,) = python.toolset()
    assert (tool.name, tool.raw_payload, tool.destructive, tool.approval_scope, tool.timeout) == \
        ("python", True, True, "session", 120.0)
    assert "/mnt/data" in tool.description and "%reset" in tool.description


def test_state_is_kept_and_a_final_expression_is_shown(ctx):
    assert run(ctx, "x = 1").ok
    assert run(ctx, "x + 1").output == "2\n"
    assert run(ctx, "print('a')\nx * 10").output == "a\n10\n"
    assert run(ctx, "import os\nos.getcwd()").output == repr(str(ctx.workspace)) + "\n"
    assert run(ctx, "x = 5").output.startswith("[no output")


def test_stderr_and_tracebacks_are_shown(ctx):
    result = run(ctx, "import sys\nprint('out')\nprint('err', file=sys.stderr)\ndef f():\n    return 1 / 0\nf()")
    assert result.status == "error" and result.error == "ZeroDivisionError: division by zero"
    assert result.output.startswith("out\nerr\nTraceback (most recent call last):\n")
    assert 'File "<cell 1>", line 6, in <module>' in result.output and "return 1 / 0" in result.output
    assert "ossy" not in result.output  # the kernel's own frames are left out
    assert run(ctx, "def (").error == "SyntaxError: invalid syntax"
    assert run(ctx, "'still alive'").output == "'still alive'\n"


def test_a_timeout_interrupts_the_cell_and_keeps_the_state(ctx):
    run(ctx, "x = 41")
    started = time.monotonic()
    result = run(ctx, "while True: pass")
    assert TIMEOUT <= time.monotonic() - started < TIMEOUT + python.GRACE
    assert result.status == "timeout" and "KeyboardInterrupt" in result.output
    assert "variables are kept" in result.error
    assert run(ctx, "print(1)").output == "1\n"
    assert run(ctx, "x + 1").output == "42\n"


def test_a_cell_that_ignores_the_interrupt_costs_the_state_and_says_so(ctx, monkeypatch):
    monkeypatch.setattr(python, "GRACE", 0.5)
    run(ctx, "x = 1")
    result = run(ctx, "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\ntime.sleep(60)")
    assert result.status == "timeout" and "all variables are lost" in result.error
    result = run(ctx, "print('fresh'); 'x' in globals()")
    assert "this is a new kernel" in result.output and result.output.endswith("fresh\nFalse\n")


def test_invalid_utf8_and_huge_output(ctx):
    assert run(ctx, "import sys; n = sys.stdout.buffer.write(b'\\xff' * 8)").output == "\ufffd" * 8
    started = time.monotonic()
    result = run(ctx, "print('x' * 10**8)")
    assert result.truncated and "more bytes of output were dropped" in result.output
    assert len(result.output) <= python.STREAM_CAP + 200 and time.monotonic() - started < 5
    result = run(ctx, "import os; os.system('head -c 3000000 /dev/zero | tr \"\\\\0\" y')")
    assert result.truncated and "bytes omitted" in result.output and len(result.output) <= python.STREAM_CAP + 200
    assert run(ctx, "print('ok')").output == "ok\n"


def test_child_processes_cannot_write_outside_the_workspace(ctx, arena):
    result = run(ctx, "import os\nprint(os.system('touch ../outside-marker'), os.system('touch inside-marker'))")
    outside_status, inside_status = result.output.splitlines()[0].split()
    assert outside_status != "0" and inside_status == "0" and "Read-only file system" in result.output
    assert (ctx.workspace / "inside-marker").exists() and not (arena / "outside-marker").exists()


def test_the_environment_has_no_host_secrets(ctx, monkeypatch):
    canary = "canary-" + secrets.token_hex(8)
    monkeypatch.setenv("OPENAI_API_KEY", canary)
    result = run(ctx, "import os, subprocess\nprint(os.environ.get('OPENAI_API_KEY'))\n"
                      "print(subprocess.run(['env'], capture_output=True, text=True).stdout)")
    assert result.output.startswith("None\n") and canary not in result.output


def test_subprocesses_run_inside_the_sandbox_without_network(ctx):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(0.5)
    port = listener.getsockname()[1]
    try:
        code = ("import socket, subprocess\n"
                f"r = subprocess.run(['bash', '-c', 'echo pid $$; echo > /dev/tcp/127.0.0.1/{port} && echo connected'],"
                " capture_output=True, text=True)\nprint(r.stdout + r.stderr)\n"
                "try:\n"
                f"    socket.create_connection(('127.0.0.1', {port}), timeout=1); print('socket connected')\n"
                "except OSError as e:\n    print('socket refused')")
        result = run(ctx, code)
        assert "pid " in result.output and "connected" not in result.output
        assert "socket refused" in result.output
        with pytest.raises(TimeoutError):
            listener.accept()
    finally:
        listener.close()


def test_broken_builtins_are_restored_and_a_dead_kernel_is_replaced(ctx):
    run(ctx, "y = 7")
    result = run(ctx, "import builtins; builtins.print = None; del builtins.len")
    assert "builtins overwritten by this cell were restored: len, print" in result.output
    assert run(ctx, "print(len('abc'), y)").output == "3 7\n"

    result = run(ctx, "import os; os._exit(1)")
    assert result.status == "error" and "exit code 1" in result.error and "next call starts a new kernel" in result.error
    result = run(ctx, "print('back')")
    assert result.ok and "the previous Python kernel died (exit code 1)" in result.output
    assert result.output.endswith("back\n")


def test_reset_clears_the_state(ctx):
    run(ctx, "z = 3")
    assert "restarted" in run(ctx, "%reset").output
    assert run(ctx, "z").error == "NameError: name 'z' is not defined"


def test_close_leaves_no_process(ctx):
    tag = secrets.token_hex(6)
    run(ctx, f"import subprocess\np = subprocess.Popen(['bash', '-c', 'sleep 600; : {tag}'])")
    assert _wait_for(lambda: _processes_with(tag))
    ctx.close()
    assert "python" not in ctx.state
    assert _wait_for(lambda: not _processes_with(tag))


def _wait_for(condition, seconds: float = 3.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
    return bool(condition())


def _processes_with(tag: str) -> list[int]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if tag.encode() in cmdline:
            found.append(int(pid))
    return found
