"""The `python` toolset: one stateful Python kernel per conversation, inside the sandbox.

Owns: the `python` tool (gpt-oss's built-in: the model sends code, not JSON), the kernel program
(`KERNEL_SOURCE`) and the host side (`Kernel`, kept in `ctx.state["python"]`). Does not own
process isolation, limits or the scrubbed environment (`ossy.sandbox`, the only place that starts
processes) or the output cap the model finally sees (`ossy.tools.executor`).

How it works: the kernel is `python -I -u -c KERNEL_SOURCE`, started lazily through
`ossy.sandbox.spawn` with the conversation's sandbox spec (the workspace as working directory and
the only writable place; the Python installation shown read-only). It reads length-prefixed JSON
requests on stdin and exec()s each cell in one persistent namespace, like a Jupyter cell: stdout
and stderr are captured (also what child processes write to fds 1 and 2), the value of a final
bare expression is shown, tracebacks show the cell's lines. Replies go back length-prefixed on a
private copy of the original stdout, so nothing the cell prints or reads can touch the protocol.

Failure handling: at the timeout (120 s by default, as harmony's description promises; per-tool
overrides in `Policy.timeouts`) the kernel gets SIGINT, so the cell ends in KeyboardInterrupt and
the variables survive; if it does not answer within `GRACE` seconds it is killed and the next call
starts a fresh kernel, and the result says the state was lost. A kernel that died (`os._exit`) is
replaced on the next call, which says so. Builtins a cell overwrote (`builtins.print = None`) are
put back after the cell. The cell `%reset` restarts the kernel with empty state.
"""

from __future__ import annotations

import dataclasses
import json
import os
import select
import sys
import threading
import time

from ossy import sandbox
from ossy.tools.base import Tool, ToolContext, ToolError, ToolResult

TIMEOUT = 120.0  # seconds; harmony's python description promises 120 s
GRACE = 5.0  # seconds an interrupted cell has to answer before the kernel is killed
START_TIMEOUT = 30.0  # seconds for a new kernel to say it is ready
KERNEL_CPU_SECONDS = 24 * 3600  # RLIMIT_CPU counts the kernel's whole life, not one cell
STREAM_CAP = 1 << 20  # bytes per stream a cell may leave in its reply (head and tail kept)
RESET = "%reset"
MAGIC = b"OSSY"  # every frame starts with it: anything else on the pipe means a broken kernel

KERNEL_SOURCE = r'''
import ast, builtins, codecs, io, json, linecache, os, signal, sys, tempfile, traceback

CAP = %(cap)d
MAGIC = %(magic)r
proto_in = os.fdopen(os.dup(0), "rb", buffering=0)
proto_out = os.dup(1)
null = os.open(os.devnull, os.O_RDONLY)
os.dup2(null, 0)
streams = {name: tempfile.TemporaryFile() for name in ("stdout", "stderr")}
os.dup2(streams["stdout"].fileno(), 1)
os.dup2(streams["stderr"].fileno(), 2)
sys.path.insert(0, "")
builtins_dict = builtins.__dict__
saved_builtins = dict(builtins_dict)
namespace = {"__name__": "__main__", "__builtins__": builtins}
running = [False]


def on_sigint(signum, frame):
    if running[0]:
        raise KeyboardInterrupt


signal.signal(signal.SIGINT, on_sigint)


class Sink(io.RawIOBase):
    """A cell's writes to sys.stdout/sys.stderr: into the stream's file, at most CAP bytes."""

    def __init__(self, fd):
        self.fd, self.left, self.dropped = fd, CAP, 0

    def writable(self):
        return True

    def write(self, data):
        data = bytes(data)
        keep = data[:max(self.left, 0)]
        self.left -= len(keep)
        self.dropped += len(data) - len(keep)
        while keep:
            keep = keep[os.write(self.fd, keep):]
        return len(data)


def text_stream(fd):
    sink = Sink(fd)
    stream = io.TextIOWrapper(io.BufferedWriter(sink), encoding="utf-8", errors="backslashreplace",
                              line_buffering=True, write_through=True)
    return stream, sink


def read_frame():
    header = proto_in.read(len(MAGIC) + 11)
    if len(header) < len(MAGIC) + 11 or not header.startswith(MAGIC):
        return None
    size, data = int(header[len(MAGIC):]), b""
    while len(data) < size:
        chunk = proto_in.read(size - len(data))
        if not chunk:
            return None
        data += chunk
    return json.loads(data)


def write_frame(reply):
    data = json.dumps(reply).encode()
    data = MAGIC + b"%%010d\n" %% len(data) + data
    while data:
        data = data[os.write(proto_out, data):]


def collect(name):
    """(what went to a stream during the cell, head and tail when huge; bytes left out), then
    empty it."""
    f = streams[name]
    size = os.lseek(f.fileno(), 0, os.SEEK_END)
    os.lseek(f.fileno(), 0, os.SEEK_SET)
    if size <= CAP:
        data = os.read(f.fileno(), size) if size else b""
    else:
        head = os.read(f.fileno(), CAP // 2)
        os.lseek(f.fileno(), size - CAP // 2, os.SEEK_SET)
        data = head + b"\n[... %%d bytes omitted ...]\n" %% (size - CAP) + os.read(f.fileno(), CAP // 2)
    os.ftruncate(f.fileno(), 0)
    os.lseek(f.fileno(), 0, os.SEEK_SET)
    return codecs.decode(data, "utf-8", "replace"), max(0, size - CAP)


def run_cell(code, number):
    filename = "<cell %%d>" %% number
    linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
    tree = ast.parse(code, filename)
    last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
    exec(compile(tree, filename, "exec"), namespace)
    if last is not None:
        value = eval(compile(ast.Expression(last.value), filename, "eval"), namespace)
        if value is not None:
            namespace["_"] = value
            print(repr(value))


def restore_builtins():
    """Put back the builtins a cell overwrote or deleted (the kernel needs them too)."""
    changed = [name for name, value in saved_builtins.items() if builtins_dict.get(name, builtins_dict) is not value]
    builtins_dict.update(saved_builtins)
    return changed


def main():
    write_frame({"ready": True})
    number = 0
    while True:
        request = read_frame()
        if request is None:
            return
        number += 1
        sys.stdout, out_sink = text_stream(1)
        sys.stderr, err_sink = text_stream(2)
        failure = None
        running[0] = True
        try:
            run_cell(request["code"], number)
        except BaseException as exc:
            failure = exc
        running[0] = False
        restored = restore_builtins()
        if isinstance(failure, SystemExit) and failure.code in (None, 0):
            failure = None
        if failure is not None:
            trace = traceback.TracebackException.from_exception(failure)
            trace.stack = traceback.StackSummary.from_list(
                [frame for frame in trace.stack if frame.filename.startswith("<cell ")])
            sys.stderr.write("".join(trace.format()))
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        dropped = out_sink.dropped + err_sink.dropped
        sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
        error = traceback.format_exception_only(type(failure), failure)[-1].strip() if failure else None
        (stdout, out_omitted), (stderr, err_omitted) = collect("stdout"), collect("stderr")
        write_frame({"stdout": stdout, "stderr": stderr, "error": error, "dropped": dropped,
                     "omitted": out_omitted + err_omitted, "restored": restored})


main()
''' % {"cap": STREAM_CAP, "magic": MAGIC}


class KernelGone(Exception):
    """The kernel process ended or wrote something that is not a frame."""


class Kernel:
    """The host side of one conversation's kernel: start, run a cell, interrupt, restart, close."""

    def __init__(self, ctx: ToolContext) -> None:
        self.ctx = ctx
        self.process = None
        self.buffer = b""
        self.lock = threading.Lock()
        self.lost: str | None = None  # why the previous kernel's state is gone, said on the next call

    def run(self, code: str, timeout: float) -> ToolResult:
        with self.lock:
            if code.strip() == RESET:
                self.stop()
                self.lost = None
                return ToolResult("Kernel restarted: all variables and imports are cleared.")
            note = self._ensure_started()
            result = self._execute(code, timeout)
            if note:
                result.output = f"[{note}]\n{result.output}"
            return result

    def close(self) -> None:
        with self.lock:
            self.stop()

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.close()
        self.process, self.buffer = None, b""

    def _ensure_started(self) -> str | None:
        """Start a kernel if there is none; the note to show when earlier state was lost."""
        if self.process is not None and self.process.alive:
            return None
        if self.process is not None:
            self.lost = self.lost or f"the previous Python kernel died ({self._ending()})"
            self.stop()
        self.process = self._spawn()
        try:
            self._read_frame(time.monotonic() + START_TIMEOUT)
        except (KernelGone, TimeoutError) as exc:
            self.stop()
            raise ToolError(f"the Python kernel did not start: {exc}") from None
        note, self.lost = self.lost, None
        return f"{note}; this is a new kernel, variables from earlier calls are gone" if note else None

    def _spawn(self):
        spec = dataclasses.replace(self.ctx.sandbox_spec(), read_only=(sys.prefix, sys.base_prefix),
                                   env={"MPLBACKEND": "Agg"})
        limits = sandbox.Limits(cpu_seconds=KERNEL_CPU_SECONDS)
        return sandbox.spawn([sys.executable, "-I", "-u", "-c", KERNEL_SOURCE], spec, limits, merge_stderr=True)

    def _execute(self, code: str, timeout: float) -> ToolResult:
        try:
            self._write_frame({"code": code})
            try:
                return self._result(self._read_frame(time.monotonic() + timeout))
            except TimeoutError:
                return self._interrupt(timeout)
        except KernelGone as exc:
            ending = self._ending()
            self.stop()
            self.lost = f"the previous Python kernel died ({ending})"
            return ToolResult(str(exc), error=f"the Python kernel died ({ending}); its variables are lost "
                              "and the next call starts a new kernel", exit_code=1, status="error")

    def _interrupt(self, timeout: float) -> ToolResult:
        self.process.interrupt()
        try:
            reply = self._read_frame(time.monotonic() + GRACE)
        except (TimeoutError, KernelGone):
            self.stop()
            self.lost = f"the previous kernel was killed after a cell ran past {timeout:g} s"
            return ToolResult("", error=f"the cell ran past {timeout:g} s and did not stop when interrupted; the "
                              "kernel was killed and the next call starts a new one: all variables are lost",
                              exit_code=1, status="timeout")
        result = self._result(reply)
        result.error = (f"the cell ran past {timeout:g} s and was interrupted (KeyboardInterrupt); "
                        "the kernel and its variables are kept")
        result.status = "timeout"
        return result

    @staticmethod
    def _result(reply: dict) -> ToolResult:
        notes = []
        if reply["dropped"]:
            notes.append(f"[... {reply['dropped']} more bytes of output were dropped ...]")
        if reply["restored"]:
            notes.append(f"[note: builtins overwritten by this cell were restored: {', '.join(reply['restored'])}]")
        output = _joined(reply["stdout"], reply["stderr"], *notes)
        if not output and not reply["error"]:
            output = "[no output: use print() or end the cell with an expression to see a value]"
        error = reply["error"]
        return ToolResult(output, error=error, exit_code=1 if error else 0, status="error" if error else "ok",
                          truncated=bool(reply["dropped"] or reply["omitted"]))

    def _ending(self) -> str:
        """How the kernel ended (its pipe closes a moment before it can be reaped)."""
        deadline = time.monotonic() + 1.0
        while self.process is not None and self.process.alive and time.monotonic() < deadline:
            time.sleep(0.01)
        code = self.process.exit_code if self.process is not None else None
        return f"exit code {code}" if code is not None else "it stopped answering"

    def _write_frame(self, message: dict) -> None:
        data = json.dumps(message).encode()
        try:
            self.process.stdin.write(MAGIC + b"%010d\n" % len(data) + data)
            self.process.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            raise KernelGone("") from None

    def _read_frame(self, deadline: float) -> dict:
        header = len(MAGIC) + 11
        while True:
            if len(self.buffer) >= header:
                if not self.buffer.startswith(MAGIC):
                    raise KernelGone(self.buffer.decode("utf-8", errors="replace")[:2000])
                size = int(self.buffer[len(MAGIC):header])
                if len(self.buffer) >= header + size:
                    frame, self.buffer = self.buffer[header:header + size], self.buffer[header + size:]
                    return json.loads(frame)
            self.buffer += self._read_some(deadline)

    def _read_some(self, deadline: float) -> bytes:
        fd = self.process.stdout.fileno()
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise TimeoutError("no answer within the time limit")
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            raise KernelGone(self.buffer.decode("utf-8", errors="replace")[:2000])
        return chunk


def _joined(*pieces: str) -> str:
    """The non-empty pieces, each starting on a new line."""
    text = ""
    for piece in filter(None, pieces):
        text += ("\n" if text and not text.endswith("\n") else "") + piece
    return text


def run_python(args: dict, ctx: ToolContext) -> ToolResult:
    kernel = ctx.state.get("python")
    if kernel is None:
        kernel = ctx.state["python"] = Kernel(ctx)
    return kernel.run(args["code"], ctx.policy.timeout(PYTHON))


def preview(args: dict, ctx: ToolContext) -> str:
    return (f"Would run this Python code in the conversation's sandboxed kernel (working directory "
            f"{ctx.workspace}); what it changes cannot be known without running it:\n{args['code']}")


PYTHON = Tool(
    "python", "python",
    "Runs Python code in a stateful, Jupyter-like kernel: variables and imports persist across calls in this "
    "conversation, stdout, stderr and tracebacks are returned, and the value of a final expression is shown. "
    f"A cell times out after {TIMEOUT:g} s (it is interrupted; the variables are kept). The code runs sandboxed: "
    "the working directory is the workspace, the only place files can be written and kept (there is no "
    "/mnt/data), and there is no network unless the session allows it. Send `%reset` to restart the kernel "
    "with empty state.",
    {"type": "object", "additionalProperties": False, "required": ["code"],
     "properties": {"code": {"type": "string", "description": "the Python code to run"}}},
    run_python, destructive=True, preview=preview, timeout=TIMEOUT, approval_scope="session",
    raw_payload=True)


def toolset() -> list[Tool]:
    return [PYTHON]
