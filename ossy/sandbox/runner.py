"""`run`: one command to completion in the sandbox, with a wall-clock timeout and capped output.

Owns: feeding stdin, reading stdout and stderr together (head and tail kept up to
`Limits.output_bytes` per stream, the middle dropped with a visible marker, the process killed
once a stream passes FLOOD_FACTOR times the cap), the timeout, and the `Completed` record. Does
not own: the isolation (`ossy.sandbox.launch`) or the tree kill (`ossy.sandbox.child`).
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import time
from typing import Sequence

from ossy.sandbox.child import GRACE, Child
from ossy.sandbox.launch import prepare
from ossy.sandbox.probe import require
from ossy.sandbox.spec import Completed, Limits, Spec

FLOOD_FACTOR = 8  # a stream this many times over its cap gets the process killed
CHUNK = 1 << 16
POLL = 0.05  # seconds between checks that the command itself is still running


class _Capture:
    """One output stream: the first and last halves of the cap, and how much went past."""

    def __init__(self, cap: int) -> None:
        self.cap, self.head_cap = cap, cap // 2
        self.head, self.tail, self.total = bytearray(), bytearray(), 0

    def add(self, data: bytes) -> None:
        self.total += len(data)
        room = self.head_cap - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        self.tail += data
        excess = len(self.tail) - (self.cap - self.head_cap)
        if excess > 0:
            del self.tail[:excess]

    @property
    def dropped(self) -> int:
        return self.total - len(self.head) - len(self.tail)

    def text(self) -> str:
        if not self.dropped:
            return (self.head + self.tail).decode("utf-8", "replace")
        head, tail = self.head.decode("utf-8", "replace"), self.tail.decode("utf-8", "replace")
        return (f"{head}\n[... {self.dropped} bytes omitted of {self.total}: output truncated by the sandbox "
                f"(kept {self.cap} bytes) ...]\n{tail}")


def run(argv: Sequence[str], spec: Spec, limits: Limits = Limits(), *, stdin: bytes = b"") -> Completed:
    """Run `argv` to completion under `spec` and `limits`; the process tree is gone on return."""
    backend = require(spec)
    launch = prepare(argv, spec, limits, backend)
    try:
        start = time.monotonic()
        child = Child(launch, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                      stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            out, err = _Capture(limits.output_bytes), _Capture(limits.output_bytes)
            killed_for = _pump(child, stdin, out, err, start + limits.timeout, limits.output_bytes * FLOOD_FACTOR)
        finally:
            child.kill()
        return _completed(launch.command, child.popen.returncode, out, err, killed_for,
                          time.monotonic() - start, backend.name)
    finally:
        launch.cleanup()


def _pump(child: Child, data: bytes, out: _Capture, err: _Capture, deadline: float, flood: int) -> str:
    """Feed stdin and read both streams until they close; returns why the sandbox killed the
    process ("timeout", "output") or "". Once the command exits (or is killed), what is left in
    the pipes is read for at most GRACE seconds: a process that escaped the weaker mode's
    process group could hold them open forever."""
    popen, why, drain_until = child.popen, "", None
    selector = selectors.DefaultSelector()
    for pipe, capture in ((popen.stdout, out), (popen.stderr, err)):
        os.set_blocking(pipe.fileno(), False)
        selector.register(pipe, selectors.EVENT_READ, capture)
    if popen.stdin:
        os.set_blocking(popen.stdin.fileno(), False)
        selector.register(popen.stdin, selectors.EVENT_WRITE, None)
    view = memoryview(data)
    try:
        while selector.get_map():
            exited, now = popen.poll() is not None, time.monotonic()
            if drain_until is None and (exited or now >= deadline):
                why = "" if exited else "timeout"
                child.kill()  # also ends the weaker mode's background jobs once the command exits
                drain_until = time.monotonic() + GRACE
            if drain_until is not None and now >= drain_until:
                break
            wait = min(POLL, (drain_until or deadline) - now)
            for key, _ in selector.select(max(wait, 0)):
                if key.data is None:
                    view = _feed(selector, key.fileobj, view)
                    continue
                chunk = os.read(key.fd, CHUNK)
                if not chunk:
                    selector.unregister(key.fileobj)
                    continue
                key.data.add(chunk)
                if key.data.total > flood and drain_until is None:
                    why = "output"
                    child.kill()
                    drain_until = time.monotonic() + GRACE
    finally:
        selector.close()
        for pipe in (popen.stdin, popen.stdout, popen.stderr):
            if pipe:
                pipe.close()
    return why


def _feed(selector: selectors.BaseSelector, pipe, view: memoryview) -> memoryview:
    """Write what the pipe takes now; close it (EOF for the command) when all is written."""
    try:
        view = view[os.write(pipe.fileno(), view[:CHUNK]):]
    except BrokenPipeError:
        view = view[:0]
    if not view:
        selector.unregister(pipe)
        pipe.close()
    return view


def _completed(argv: list[str], code: int | None, out: _Capture, err: _Capture, killed_for: str,
               duration: float, backend: str) -> Completed:
    if killed_for:
        exit_code, sig = None, signal.SIGKILL
    elif code is not None and code < 0:
        exit_code, sig = 128 - code, -code
    else:
        exit_code, sig = code, (code - 128 if code is not None and 128 < code <= 192 else None)
    return Completed(argv=argv, exit_code=exit_code, stdout=out.text(), stderr=err.text(),
                     timed_out=killed_for == "timeout", truncated=bool(out.dropped or err.dropped),
                     duration=duration, backend=backend, signal=int(sig) if sig else None)
