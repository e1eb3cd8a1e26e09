"""ossy.sandbox with real processes: isolation, limits, the tree kill, the scrubbed environment,
spawn, and the refusal (or the weaker mode) without bubblewrap.

Every escape attempt comes with a control that shows the attempt would be seen if it worked
(the canary is readable, the listener is reachable with network on), so no case passes
vacuously. Cases that need bubblewrap skip when it is missing.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from ossy import sandbox
from ossy.errors import OssyError
from ossy.sandbox import Limits, SandboxUnavailable, Spec, probe

needs_bwrap = pytest.mark.usefixtures("bwrap")
FAST = Limits(timeout=2.0)
GRACE = 1.5  # allowed past the timeout for the kill and the reaping
# The test interpreter may live under HOME (hidden in the sandbox), so show its install read-only.
PYTHON = sys.executable
PY_PATHS = (Path(sys.prefix), Path(sys.base_prefix))


def spec(workspace: Path, **kw) -> Spec:
    return Spec(workspace=workspace, read_only=kw.pop("read_only", PY_PATHS), **kw)


def sh(script: str, workspace: Path, limits: Limits = FAST, **kw) -> sandbox.Completed:
    return sandbox.run(["sh", "-c", script], spec(workspace, **kw), limits)


def py(code: str, workspace: Path, limits: Limits = FAST, **kw) -> sandbox.Completed:
    return sandbox.run([PYTHON, "-c", code], spec(workspace, **kw), limits)


def marker() -> str:
    """A unique `sleep` argument to find leftover processes by."""
    return f"999.{secrets.randbelow(10**9)}"


def processes_with(text: str) -> list[int]:
    found = []
    for entry in os.scandir("/proc"):
        try:
            if entry.name.isdigit() and text in Path(entry.path, "cmdline").read_bytes().decode(errors="replace"):
                found.append(int(entry.name))
        except OSError:
            pass
    return found


def assert_none_left(text: str) -> None:
    deadline = time.monotonic() + 0.5  # zombies of the weaker mode are reaped by init, not us
    while processes_with(text) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert processes_with(text) == []


@pytest.fixture
def ws(tmp_path) -> Path:
    path = tmp_path / "ws"
    path.mkdir()
    return path


@pytest.fixture
def visible(tmp_path):
    """A directory outside pytest's tmp_path (which the sandbox's private /tmp hides), so it is
    visible read-only in the sandbox: a workspace inside it, and a canary beside it."""
    base = Path(tempfile.mkdtemp(prefix="ossy-sandbox-test-", dir="/var/tmp"))
    (base / "ws").mkdir()
    (base / "outside").mkdir()
    (base / "outside" / "canary").write_text("canary-" + secrets.token_hex(8))
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def listener():
    """A loopback TCP listener counting the connections it accepts."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.settimeout(0.1)
    hits, stop = [], threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            hits.append(1)
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], hits
    stop.set()
    thread.join()
    server.close()


@pytest.fixture
def no_bwrap(monkeypatch):
    """Simulate a host without bubblewrap."""
    monkeypatch.setattr(probe, "BWRAP_PATHS", ("/nonexistent/bwrap",))
    probe.backend.cache_clear()
    yield
    monkeypatch.undo()
    probe.backend.cache_clear()


# --- basics -----------------------------------------------------------------------------------

@needs_bwrap
def test_echo_runs_in_the_workspace(ws):
    done = sh("echo hello; pwd; id -u", ws)
    assert (done.exit_code, done.stdout, done.backend) == (0, f"hello\n{ws}\n65534\n", "bwrap")
    assert not done.timed_out and not done.truncated and done.signal is None


@needs_bwrap
def test_cwd_inside_the_workspace_and_refused_outside(ws, tmp_path):
    (ws / "sub").mkdir()
    assert sandbox.run(["pwd"], spec(ws, cwd=Path("sub")), FAST).stdout == f"{ws / 'sub'}\n"
    with pytest.raises(OssyError, match="not a directory inside the workspace"):
        sandbox.run(["pwd"], spec(ws, cwd=tmp_path), FAST)


def test_bad_argv_is_refused(ws):
    for argv in ([], ["echo", "a\0b"]):
        with pytest.raises(OssyError, match="non-empty list of strings"):
            sandbox.run(argv, spec(ws, allow_unsandboxed=True), FAST)


@needs_bwrap
def test_an_argument_list_too_long_is_a_clean_error(ws):
    with pytest.raises(OssyError, match="cannot start echo: Argument list too long"):
        sandbox.run(["echo", "x" * 300_000], spec(ws), FAST)
    assert os.listdir(ws) == []


@needs_bwrap
def test_stdin_is_fed_and_otherwise_empty(ws):
    assert sandbox.run(["cat"], spec(ws), FAST, stdin=b"x" * 300_000).stdout == "x" * 300_000
    assert sandbox.run(["cat"], spec(ws), FAST).stdout == ""


# --- filesystem -------------------------------------------------------------------------------

@needs_bwrap
def test_workspace_writable_only_in_workspace_write_mode(ws):
    assert sh("echo data > made.txt", ws).exit_code == 0
    assert (ws / "made.txt").read_text() == "data\n"
    done = sh("echo data > ro.txt", ws, mode="read-only")
    assert done.exit_code != 0 and "Read-only file system" in done.stderr
    assert not (ws / "ro.txt").exists()


@needs_bwrap
def test_writes_outside_the_workspace_fail(visible):
    canary = visible / "outside" / "canary"
    before = canary.read_text()
    assert sh(f"cat {canary}", visible / "ws").stdout == before  # control: visible in the sandbox
    done = sh(f"echo evil > {canary}; touch {visible}/outside/new; rm -rf {visible}/outside; "
              f"echo x > /proc/self/cwd/../escape; echo x > /etc/ossy-pwned", visible / "ws")
    assert done.stderr.count("Read-only file system") >= 4
    assert canary.read_text() == before
    assert sorted(os.listdir(visible)) == ["outside", "ws"] and os.listdir(visible / "outside") == ["canary"]
    assert not Path("/etc/ossy-pwned").exists()


@needs_bwrap
def test_host_tmp_is_invisible_and_untouched(ws, tmp_path):
    canary = tmp_path / "canary"
    canary.write_text("secret")
    done = sh(f"cat {canary}; rm -rf {tmp_path}/canary; echo x > /tmp/pwned-test", ws)
    assert "secret" not in done.stdout and "No such file" in done.stderr
    assert canary.read_text() == "secret"


@needs_bwrap
def test_home_and_ossy_home_are_hidden(visible, monkeypatch):
    home, ossy_home = visible / "home", visible / "ossy-home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_rsa").write_text("canary-key")
    (home / "tools").mkdir()
    (home / "tools" / "shown").write_text("shown")
    ossy_home.mkdir()
    (ossy_home / "audit.sqlite").write_text("canary-audit")
    (home / "project").mkdir()  # the usual place of a workspace: under the hidden HOME
    monkeypatch.setenv("HOME", str(home))
    done = sh(f"cat {home}/.ssh/id_rsa {ossy_home}/audit.sqlite; ls -A {home}; echo HOME=$HOME; pwd; "
              f"cat {home}/tools/shown; touch {home}/tools/new; cat {visible}/outside/canary",
              home / "project", read_only=(*PY_PATHS, home / "tools"), hidden=(ossy_home,))
    assert "canary-key" not in done.stdout and "canary-audit" not in done.stdout
    assert sorted(done.stdout.split("HOME=")[0].split()) == ["project", "tools"]  # only what is bound
    assert f"HOME=/tmp/home\n{home / 'project'}\n" in done.stdout
    assert "shown" in done.stdout and not (home / "tools" / "new").exists()  # read_only paths: visible, not writable
    assert "canary-" in done.stdout  # control: a sibling of the hidden dirs is readable


@needs_bwrap
def test_protected_paths_stay_read_only_and_cannot_be_created(ws):
    (ws / ".git" / "hooks").mkdir(parents=True)
    (ws / ".git" / "config").write_text("[core]\n")
    attempts = ["touch .git/hooks/pre-commit", "echo '[core] fsmonitor = x' >> .git/config", "rm -rf .git/hooks",
                "mv .git .git-moved", "echo evil > .bashrc", "echo evil > .profile"]
    done = sh("".join(f"{a} 2>/dev/null || echo blocked; " for a in attempts) + "echo ok > notes", ws)
    assert done.stdout == "blocked\n" * len(attempts)
    assert os.listdir(ws / ".git" / "hooks") == [] and (ws / ".git" / "config").read_text() == "[core]\n"
    assert sorted(os.listdir(ws)) == [".git", "notes"]  # placeholders removed; ordinary files written
    assert sorted(os.listdir(ws / ".git")) == ["config", "hooks"]


@needs_bwrap
def test_a_new_git_dir_cannot_be_planted(ws):
    done = sh("mkdir -p .git/hooks || echo blocked; git init -q 2>/dev/null || echo blocked", ws)
    assert done.stdout == "blocked\nblocked\n"
    assert os.listdir(ws) == []


@needs_bwrap
def test_a_symlinked_protected_path_is_refused(ws):
    (ws / ".bashrc").symlink_to("elsewhere")
    with pytest.raises(OssyError, match="symbolic link"):
        sh("true", ws)


# --- processes and limits ---------------------------------------------------------------------

@needs_bwrap
def test_infinite_loop_is_killed_at_the_timeout(ws):
    start = time.monotonic()
    done = sh("while :; do :; done", ws, Limits(timeout=1.0))
    assert done.timed_out and done.exit_code is None and done.signal == 9
    assert time.monotonic() - start <= 1.0 + GRACE


@needs_bwrap
def test_background_processes_do_not_survive(ws):
    tag = marker()
    done = sh(f"nohup sleep {tag} >/dev/null 2>&1 & setsid sleep {tag} & (sleep {tag} &); echo started", ws)
    assert done.stdout == "started\n"
    assert_none_left(tag)
    tag = marker()
    done = sh(f"setsid sleep {tag} & (sleep {tag} &); sleep 10", ws, Limits(timeout=0.5))
    assert done.timed_out
    assert_none_left(tag)


@needs_bwrap
def test_process_count_is_limited(ws):
    code = ("import os, time\nn = 0\nfor _ in range(100):\n    try:\n        pid = os.fork()\n"
            "    except OSError:\n        break\n    if pid == 0:\n        time.sleep(5)\n        os._exit(0)\n"
            "    n += 1\nprint(n)")
    done = py(code, ws, Limits(timeout=3.0, processes=24))
    assert 0 < int(done.stdout) < 24


@needs_bwrap
def test_fork_bomb_is_contained(ws):
    start = time.monotonic()
    sh("b() { b | b & }; b; sleep 5", ws, Limits(timeout=1.0, processes=32))
    assert time.monotonic() - start <= 1.0 + GRACE
    assert sh("echo fine", ws).stdout == "fine\n"


@needs_bwrap
def test_memory_bomb_fails_cleanly(ws):
    done = py("b = bytearray(10 * 2**30)", ws, Limits(timeout=2.0, memory_bytes=1 << 30))
    assert done.exit_code == 1 and "MemoryError" in done.stderr


@needs_bwrap
def test_file_size_is_limited(ws):
    done = sh("dd if=/dev/zero of=big bs=1M count=8", ws, Limits(timeout=2.0, file_size_bytes=1 << 20))
    assert done.exit_code != 0
    assert (ws / "big").stat().st_size <= 1 << 20


# --- output -----------------------------------------------------------------------------------

@needs_bwrap
def test_output_flood_is_capped_and_killed(ws):
    start = time.monotonic()
    done = sh("yes | head -c 50000000", ws, Limits(timeout=5.0, output_bytes=64 << 10))
    assert time.monotonic() - start < 2.0
    assert done.truncated and done.exit_code is None and not done.timed_out
    assert "output truncated" in done.stdout and len(done.stdout) < (64 << 10) + 200


@needs_bwrap
def test_output_over_the_cap_keeps_head_and_tail(ws):
    done = sh("seq 1 30000", ws, Limits(timeout=2.0, output_bytes=64 << 10))
    assert done.exit_code == 0 and done.truncated
    assert done.stdout.startswith("1\n2\n3\n") and done.stdout.endswith("29999\n30000\n")
    assert "bytes omitted" in done.stdout


@needs_bwrap
def test_invalid_utf8_is_replaced(ws):
    done = sh(r"printf 'a\377\376b'; printf '\377' >&2", ws)
    assert done.stdout == "a\ufffd\ufffdb" and done.stderr == "\ufffd"


# --- environment, processes, terminal, network -----------------------------------------------

@needs_bwrap
def test_host_environment_never_reaches_the_sandbox(ws, monkeypatch):
    canary = "canary-" + secrets.token_hex(8)
    monkeypatch.setenv("OPENAI_API_KEY", canary)
    done = sh("env; cat /proc/self/environ /proc/1/environ; printenv OPENAI_API_KEY; echo FOO=$FOO", ws,
              env={"FOO": "bar"})
    assert canary not in done.stdout + done.stderr
    assert "OSSY_SANDBOX=1" in done.stdout and "FOO=bar\n" in done.stdout and "TERM=dumb" in done.stdout


@needs_bwrap
def test_host_processes_are_invisible(ws):
    done = sh("for p in /proc/[0-9]*; do cat $p/comm; done", ws)
    names = done.stdout.split()
    assert len(names) <= 4 and "pytest" not in done.stdout and "python" not in "".join(names)


@needs_bwrap
def test_no_controlling_terminal(ws):
    done = py("import fcntl, termios\nfor fd in (0, 1):\n    try:\n        fcntl.ioctl(fd, termios.TIOCSTI, b'x')\n"
              "    except OSError as e:\n        print('blocked', e.errno)\ntry:\n    open('/dev/tty')\n"
              "except OSError:\n    print('no tty')", ws)
    assert done.stdout.count("blocked") == 2 and "no tty" in done.stdout


@needs_bwrap
def test_no_network_unless_granted(ws, listener):
    port, hits = listener
    attempts = [
        [PYTHON, "-c", f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=1)"],
        ["bash", "-c", f"echo hi > /dev/tcp/127.0.0.1/{port}"],
    ]
    if shutil.which("curl"):
        attempts.append(["curl", "-sS", "-m", "1", f"http://127.0.0.1:{port}/"])
    for argv in attempts:
        assert sandbox.run(argv, spec(ws), FAST).exit_code != 0
    time.sleep(0.2)
    assert hits == []
    granted = sandbox.run(attempts[0], spec(ws, network=True), FAST)  # control: the listener is reachable
    assert granted.exit_code == 0
    time.sleep(0.2)
    assert hits


@needs_bwrap
def test_full_access_writes_the_host_but_keeps_the_rest(visible, listener, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "canary-full")
    port, hits = listener
    target = visible / "outside" / "written"
    done = sh(f"echo x > {target}; env; echo hi > /dev/tcp/127.0.0.1/{port}", visible / "ws", mode="full-access")
    assert target.read_text() == "x\n"
    assert "canary-full" not in done.stdout and hits == []


# --- without bubblewrap -----------------------------------------------------------------------

def test_without_bubblewrap_it_refuses(ws, no_bwrap):
    assert sandbox.backend().name == "unsandboxed" and "not installed" in sandbox.backend().problem
    with pytest.raises(SandboxUnavailable) as info:
        sandbox.run(["echo", "hi"], Spec(ws), FAST)
    message = str(info.value)
    assert "apt install bubblewrap" in message and "--unsandboxed" in message and "\n" not in message


def test_a_bubblewrap_that_cannot_start_is_reported(ws, tmp_path, monkeypatch):
    fake = tmp_path / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: setting up uid map: Permission denied' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setattr(probe, "BWRAP_PATHS", (str(fake),))
    probe.backend.cache_clear()
    try:
        found = sandbox.backend()
        with pytest.raises(SandboxUnavailable, match="user namespaces.*--unsandboxed"):
            sandbox.run(["true"], Spec(ws), FAST)
    finally:
        monkeypatch.undo()
        probe.backend.cache_clear()
    assert found.name == "unsandboxed" and "uid map: Permission denied" in found.problem


def test_weaker_mode_when_allowed(ws, no_bwrap, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "canary-weak")
    done = sh("pwd; env; grep NoNewPrivs /proc/self/status", ws, allow_unsandboxed=True)
    assert done.backend == "unsandboxed" and done.stdout.startswith(f"{ws}\n")
    assert "NoNewPrivs:\t1" in done.stdout and f"HOME={Path.home()}\n" not in done.stdout
    assert "canary-weak" not in done.stdout and "OSSY_SANDBOX=1" in done.stdout
    tag = marker()
    start = time.monotonic()
    done = sh(f"sleep {tag} & sleep {tag}", ws, Limits(timeout=0.5), allow_unsandboxed=True)
    assert done.timed_out and time.monotonic() - start <= 0.5 + GRACE
    assert_none_left(tag)


# --- spawn ------------------------------------------------------------------------------------

KERNEL = """
import sys
total = 0
for line in sys.stdin:
    if line.strip() == "spin":
        try:
            print("spinning", flush=True)
            while True:
                pass
        except KeyboardInterrupt:
            print("interrupted", flush=True)
        continue
    total += int(line)
    print(total, flush=True)
"""


@needs_bwrap
def test_spawn_keeps_state_and_is_interruptible(ws):
    with sandbox.spawn([PYTHON, "-u", "-c", KERNEL], spec(ws), FAST) as kernel:
        assert kernel.alive and kernel.backend == "bwrap"
        for number, expected in ((2, b"2\n"), (3, b"5\n")):
            kernel.stdin.write(b"%d\n" % number)
            kernel.stdin.flush()
            assert kernel.stdout.readline() == expected
        kernel.stdin.write(b"spin\n")
        kernel.stdin.flush()
        assert kernel.stdout.readline() == b"spinning\n"
        assert kernel.interrupt()
        assert kernel.stdout.readline() == b"interrupted\n"
        kernel.stdin.write(b"1\n")
        kernel.stdin.flush()
        assert kernel.stdout.readline() == b"6\n"  # state survived the interrupt
    assert not kernel.alive


@needs_bwrap
def test_spawn_kill_leaves_nothing(ws):
    tag = marker()
    kernel = sandbox.spawn(["sh", "-c", f"setsid sleep {tag} & sleep {tag} & echo up; cat"], spec(ws), FAST)
    assert kernel.stdout.readline() == b"up\n"
    assert processes_with(tag)  # control: they were running
    kernel.kill()
    assert not kernel.alive
    assert_none_left(tag)
    kernel.close()
    assert os.listdir(ws) == []  # placeholders removed
