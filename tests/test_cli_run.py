"""`ossy run`, `ossy ps`, `ossy stop` as users run them, against a live server over the stub
engine (`live_server` from test_client.py): the REPL through a pseudo-terminal (/set, /show,
\"\"\" multi-line input, /bye), one-shot with a prompt and with stdin, ps/stop. Plus unit tests of
the command interpreter (`ossy.cli.repl`) with a fake client, and of the formatting helpers.
"""

from __future__ import annotations

import datetime
import io
import os
import pty
import select
import subprocess
import sys
import time

import pytest
from test_client import live_server, tokenizer  # noqa: F401  (the fixture)

from ossy.cli.ps import human_bytes, processor, until
from ossy.cli.repl import QUIT, Interpreter, Printer, Session, go_duration, parse_think, read_message, summary
from ossy.client import Client
from ossy.errors import NotFoundError, OssyError


def env_for(live) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OSSY_")}
    return {**env, "OSSY_HOST": live.host, "OSSY_HOME": str(live.home), "TERM": "dumb", "NO_COLOR": "1"}


def ossy(live, *args, stdin: str | None = "") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ossy", *args], env=env_for(live), input=stdin,
                          capture_output=True, text=True, timeout=60)


class Terminal:
    """A process on a pseudo-terminal: `send` a line, `expect` text on the screen."""

    def __init__(self, argv, env) -> None:
        master, slave = pty.openpty()
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True)
        os.close(slave)
        self.fd, self.screen, self.pos = master, "", 0

    def _read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return False
        try:
            data = os.read(self.fd, 65536)
        except OSError:  # the child closed the terminal
            return False
        self.screen += data.decode(errors="replace").replace("\r\n", "\n")
        return bool(data)

    def expect(self, text: str, timeout: float = 20) -> str:
        deadline = time.monotonic() + timeout
        while text not in self.screen[self.pos:]:
            if time.monotonic() > deadline or (not self._read(0.2) and self.proc.poll() is not None):
                raise AssertionError(f"{text!r} not on the screen:\n{self.screen[self.pos:]}")
        end = self.screen.index(text, self.pos) + len(text)
        seen, self.pos = self.screen[self.pos:end], end
        return seen

    def send(self, line: str) -> None:
        os.write(self.fd, (line + "\n").encode())

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        os.close(self.fd)


def test_repl_through_a_pseudo_terminal(live_server):
    engine = live_server.engine
    term = Terminal([sys.executable, "-m", "ossy", "run", "tiny"], env_for(live_server))
    try:
        term.expect(">>> ")
        term.send("/?")
        term.expect("/set            Set session variables")
        term.expect(">>> ")
        term.send("/set parameter temperature 0.25")
        term.expect("Set parameter 'temperature' to '0.25'")
        term.send("/set system Talk like a pirate.")
        term.expect("Set system message.")
        term.send("/show system")
        term.expect("Talk like a pirate.")
        term.send("/show parameters")
        term.expect("temperature")
        term.send("/show info")
        term.expect("Capabilities")
        term.expect("thinking")
        term.send("/show license")
        term.expect("Version 2.0, January 2004")
        term.send("/set think high")
        term.expect("Set 'think' mode (level high).")
        term.expect(">>> ")
        n = len(engine.requests)
        term.send('"""first line')
        term.expect("... ")
        term.send('second line"""')
        seen = term.expect("...done thinking.")
        assert "Thinking...\nThe user greets me." in seen
        term.expect("Hello! You said: first line\nsecond line")
        term.expect(">>> ")
        request = engine.requests[n]
        prompt = tokenizer().decode(list(request.prompt))
        assert "first line\nsecond line" in prompt and "Talk like a pirate." in prompt
        assert "Reasoning: high" in prompt and request.sampling.temperature == 0.25
        term.send("/set hidethinking")
        term.send("/set verbose")
        term.expect("Set 'verbose' mode.")
        term.send("and again")
        seen = term.expect("eval rate:")
        assert "Thinking..." not in seen and "Hello! You said: and again" in seen and "prompt eval count:" in seen
        prompt = tokenizer().decode(list(engine.requests[-1].prompt))
        assert "first line\nsecond line" in prompt  # the history goes along
        term.send("/clear")
        term.expect("Cleared session context")
        term.send("/bogus")
        term.expect("Unknown command '/bogus'")
        term.send("/bye")
        assert term.proc.wait(timeout=20) == 0
    finally:
        term.close()
    history = (live_server.home / "history").read_text()
    assert "/set system Talk like a pirate." in history


def test_ctrl_d_exits_the_repl(live_server):
    term = Terminal([sys.executable, "-m", "ossy", "run", "tiny"], env_for(live_server))
    try:
        term.expect(">>> ")
        os.write(term.fd, b"\x04")
        assert term.proc.wait(timeout=20) == 0
    finally:
        term.close()


def test_one_shot_with_a_prompt_and_with_stdin(live_server):
    result = ossy(live_server, "run", "tiny", "hello", "there")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Hello! You said: hello there\n\n"  # no thinking when stdout is not a terminal
    result = ossy(live_server, "run", "tiny", stdin="from stdin\n")
    assert result.returncode == 0 and "You said: from stdin" in result.stdout
    result = ossy(live_server, "run", "tiny", "Summarize:", stdin="piped text")
    assert "You said: piped text Summarize:" in result.stdout
    result = ossy(live_server, "run", "tiny", "--think", "low", "--verbose", "hi")
    assert result.stdout.startswith("Thinking...\nThe user greets me.\n...done thinking.\n\nHello! You said: hi")
    assert "eval count:" in result.stderr and "total duration:" in result.stderr
    result = ossy(live_server, "run", "tiny", "--format", "json", "give json")
    assert result.stdout.strip() == '{"ok": true}'
    assert live_server.engine.requests[-1].constraint is not None


def test_one_shot_errors_are_one_line(live_server):
    result = ossy(live_server, "run", "127.0.0.1:9/library/nope", "hi")  # missing: pulled first, as ollama does
    assert result.returncode == 1
    assert result.stderr.startswith("pulling manifest\nError: cannot reach 127.0.0.1:9") and result.stderr.count("\n") == 2
    result = ossy(live_server, "run", "tiny", "--format", "yaml", "hi")
    assert result.returncode == 1 and result.stderr.startswith("Error: --format: unknown format")


def test_a_bare_think_before_the_prompt(live_server):
    result = ossy(live_server, "run", "tiny", "--think", "hello")
    assert result.stdout.startswith("Thinking...") and "You said: hello" in result.stdout


def test_without_a_server_the_model_runs_in_process(tmp_path, shared_dir):
    """No server at OSSY_HOST: `ossy run` serves the app itself (LocalEngine, a random tiny model
    with the real gpt-oss tokenizer) on a free port and stops it when done."""
    import shutil

    from store_util import make_checkpoint

    from ossy.modelfile import parse
    from ossy.store import Library, Store, create
    from ossy.tokenizer.files import O200K_HARMONY_SIZE

    checkpoint = make_checkpoint(tmp_path / "ckpt", vocab_size=O200K_HARMONY_SIZE)
    shutil.copy(shared_dir / "vocab" / "gpt-oss" / "tokenizer.json", checkpoint / "tokenizer.json")
    create(Library(Store(tmp_path / "home" / "models")), "tiny",
           parse(f"FROM {checkpoint}\nPARAMETER num_predict 4\nPARAMETER temperature 0\n"), base_dir=tmp_path)
    env = {**os.environ, "OSSY_HOME": str(tmp_path / "home"), "OSSY_HOST": "127.0.0.1:9"}  # nothing listens on 9
    result = subprocess.run([sys.executable, "-m", "ossy", "run", "tiny", "--verbose", "hi"], env=env, stdin=subprocess.DEVNULL,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "eval count:           4 token(s)" in result.stderr and "load duration:" in result.stderr


def test_ps_and_stop(live_server):
    with Client(live_server.host) as c:
        c.load("tiny", keep_alive="10m")
    result = ossy(live_server, "ps")
    assert result.returncode == 0, result.stderr
    header, row = result.stdout.splitlines()
    assert header.split() == ["NAME", "ID", "SIZE", "PROCESSOR", "CONTEXT", "UNTIL"]
    assert row.split()[0] == "tiny:latest" and "100% CPU" in row and "8192" in row and "minutes from now" in row
    assert ossy(live_server, "stop", "tiny").returncode == 0
    assert ossy(live_server, "ps").stdout.splitlines()[1:] == []
    result = ossy(live_server, "stop", "tiny")
    assert result.returncode == 1 and result.stderr.strip() == 'Error: couldn\'t find model "tiny" to stop'


def test_save_and_load_through_the_interpreter(live_server):
    out = io.StringIO()
    with Client(live_server.host) as c:
        it = Interpreter(c, Session("tiny"), out, io.StringIO(), color=False)
        it.handle("/set system Be brief.")
        it.handle("/set parameter top_k 7")
        it.handle("hi")
        it.handle("/save tiny-saved")
        assert "Created new model 'tiny-saved'" in out.getvalue()
        info = c.show("tiny-saved")
        assert info["system"] == "Be brief." and "top_k" in info["parameters"]
        assert [m["role"] for m in info["messages"]] == ["user", "assistant"]
        it.handle("/load tiny-saved")
        assert it.session.model == "tiny-saved" and it.session.messages == []
        it.handle("/load nope")
        assert "Error: model 'nope' not found" in out.getvalue() and it.session.model == "tiny-saved"
        c.delete("tiny-saved")


# ---- the interpreter alone ---------------------------------------------------------------------


class FakeClient:
    def __init__(self, chunks=None) -> None:
        self.calls: list[tuple] = []
        self.chunks = chunks or [
            {"message": {"role": "assistant", "content": "", "thinking": "Hmm."}, "done": False},
            {"message": {"role": "assistant", "content": "Hi"}, "done": False},
            {"message": {"role": "assistant", "content": "!"}, "done": True, "total_duration": 2_500_000_000,
             "load_duration": 1_000_000, "prompt_eval_count": 10, "prompt_eval_duration": 10_000_000,
             "eval_count": 4, "eval_duration": 200_000_000},
        ]

    def chat(self, model, messages, **kw):
        self.calls.append(("chat", model, [dict(m) for m in messages], kw))
        return iter(self.chunks)

    def show(self, model):
        if model == "missing":
            raise NotFoundError(f"model '{model}' not found")
        return {"system": "Model system.", "parameters": "temperature 1", "template": "{{ .Prompt }}",
                "license": "L1\nL2\nL3", "modelfile": "FROM x", "capabilities": ["completion", "thinking"],
                "details": {"family": "gptoss", "parameter_size": "20.9B", "quantization_level": "MXFP4"},
                "model_info": {"general.architecture": "gptoss", "gptoss.context_length": 131072}}

    def load(self, model, keep_alive=None):
        self.calls.append(("load", model))

    def create(self, model, **fields):
        self.calls.append(("create", model, fields))

    def tags(self):
        return [{"name": "a:latest"}]


def interp(client=None, **session):
    out, err = io.StringIO(), io.StringIO()
    return Interpreter(client or FakeClient(), Session("m", **session), out, err, color=False), out, err


def test_set_commands_change_the_session():
    it, out, _ = interp()
    for line in ("/set parameter temperature 0.3", "/set parameter stop <a> <b>", "/set system \"Be short.\"",
                 "/set think low", "/set verbose", "/set format json", "/set hidethinking"):
        assert it.handle(line) is None
    s = it.session
    assert s.parameters == {"temperature": 0.3, "stop": ["<a>", "<b>"]} and s.system == "Be short."
    assert (s.think, s.verbose, s.format, s.hidethinking) == ("low", True, "json", True)
    for line in ("/set nothink", "/set quiet", "/set noformat", "/set showthinking"):
        it.handle(line)
    assert (s.think, s.verbose, s.format, s.hidethinking) == (False, False, None, False)
    it.handle("/set parameter temperature hot")
    it.handle("/set parameter nonsense 1")
    text = out.getvalue()
    assert "Error: invalid float value \"hot\" for temperature" in text and "unknown parameter 'nonsense'" in text
    assert s.parameters["temperature"] == 0.3


def test_messages_carry_system_options_think_and_history():
    client = FakeClient()
    it, out, err = interp(client, think="high")
    it.handle("/set system Sys.")
    it.handle("/set parameter seed 3")
    it.handle("hello")
    it.handle("again")
    _, model, messages, kw = client.calls[-1]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[2] == {"role": "assistant", "content": "Hi!", "thinking": "Hmm."}
    assert kw["options"] == {"seed": 3} and kw["think"] == "high"
    assert out.getvalue().count("Thinking...\nHmm.\n...done thinking.\n\nHi!\n\n") == 2
    assert err.getvalue() == ""
    it.handle("/clear")
    assert it.session.messages == [] and it.session.system == "Sys."


def test_verbose_prints_ollama_stats():
    it, _, err = interp(verbose=True)
    it.handle("hi")
    assert err.getvalue().splitlines() == [
        "total duration:       2.5s", "load duration:        1ms", "prompt eval count:    10 token(s)",
        "prompt eval duration: 10ms", "prompt eval rate:     1000.00 tokens/s", "eval count:           4 token(s)",
        "eval duration:        200ms", "eval rate:            20.00 tokens/s"]


def test_show_commands():
    it, out, _ = interp()
    it.handle("/set parameter top_k 4")
    it.handle("/show info")
    text = out.getvalue()
    assert "  Model\n    architecture      gptoss\n    parameters        20.9B\n" in text
    assert "context length    131072" in text and "quantization      MXFP4" in text
    assert "  Capabilities\n    completion\n    thinking\n" in text and "  License\n    L1\n    L2\n    ...\n" in text
    for what, expected in (("system", "Model system."), ("template", "{{ .Prompt }}"), ("modelfile", "FROM x"),
                           ("license", "L1\nL2\nL3"), ("parameters", "User defined parameters:\ntop_k")):
        out.truncate(0), out.seek(0)
        it.handle(f"/show {what}")
        assert expected in out.getvalue(), what


def test_load_save_bye_help_and_errors():
    client = FakeClient()
    it, out, _ = interp(client)
    it.handle("hi")
    it.handle("/set system S")
    it.handle("/save mine")
    assert client.calls[-1] == ("create", "mine", {"from_": "m", "system": "S", "messages": [
        {"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hi!", "thinking": "Hmm."}]})
    it.handle("/load missing")
    assert "Error: model 'missing' not found" in out.getvalue() and it.session.model == "m"
    it.handle("/load other")
    assert it.session.model == "other" and not it.session.messages and ("load", "other") in client.calls
    it.handle("/? shortcuts")
    assert "Ctrl + d" in out.getvalue()
    assert it.handle("/bye") == QUIT and it.handle("/exit") == QUIT


def test_a_failed_message_leaves_the_history_as_it_was():
    class Failing(FakeClient):
        def chat(self, model, messages, **kw):
            def gen():
                yield {"message": {"content": "part"}, "done": False}
                raise OssyError("the engine failed")
            return gen()

    it, out, _ = interp(Failing())
    it.handle("hi")
    assert it.session.messages == [] and "part\n\nError: the engine failed" in out.getvalue()


def test_read_message_handles_multiline_blocks():
    def reader(lines):
        it = iter(lines)
        return lambda prompt: next(it)

    assert read_message(reader(["plain"])) == "plain"
    assert read_message(reader(['"""a', "b", 'c"""'])) == "a\nb\nc"
    assert read_message(reader(['"""', "x", '"""'])) == "x"
    assert read_message(reader(['"""one line"""'])) == '"""one line"""'
    assert read_message(reader(['/set system """You are', 'a pirate."""'])) == "/set system You are\na pirate."
    assert read_message(reader(['say """ please'])) == 'say """ please'


def test_printer_dims_thinking_on_a_terminal_and_can_hide_it():
    out = io.StringIO()
    p = Printer(out, color=True)
    p.chunk({"message": {"thinking": "t"}})
    p.chunk({"message": {"content": "c"}})
    p.finish()
    assert out.getvalue() == "\x1b[2mThinking...\nt\n...done thinking.\n\n\x1b[0mc\x1b[0m\n\n"
    out = io.StringIO()
    p = Printer(out, hidethinking=True, color=False)
    p.chunk({"message": {"thinking": "t", "content": ""}})
    p.chunk({"response": "c"})
    p.finish()
    assert out.getvalue() == "c\n\n"


def test_helpers():
    assert [parse_think(v) for v in ("true", "false", "low", "HIGH", None)] == [True, False, "low", "high", None]
    with pytest.raises(OssyError):
        parse_think("maybe")
    assert [go_duration(n) for n in (0, 512, 1_500, 12_345_678, 2_500_000_000, 125_000_000_000, 3_723_000_000_000)] == \
        ["0s", "512ns", "1.5µs", "12.345678ms", "2.5s", "2m5s", "1h2m3s"]
    assert summary({"eval_count": 2, "eval_duration": 1_000_000_000}) == \
        "eval count:           2 token(s)\neval duration:        1s\neval rate:            2.00 tokens/s\n"
    assert [human_bytes(n) for n in (13_800_000_000, 1_234_567_890, 812_000_000, 999)] == \
        ["14 GB", "1.2 GB", "812 MB", "999 B"]
    assert (processor(100, 0), processor(100, 100), processor(100, 91)) == ("100% CPU", "100% GPU", "9%/91% CPU/GPU")
    now = datetime.datetime(2025, 1, 1, tzinfo=datetime.timezone.utc)
    assert until("2025-01-01T00:04:30Z", now) == "4 minutes from now"
    assert until("2024-12-31T23:00:00Z", now) == "Stopping..."
    assert until("2318-01-01T00:00:00Z", now) == "Forever"
