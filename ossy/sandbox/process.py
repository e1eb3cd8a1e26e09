"""`spawn`: a long-lived process in the sandbox (the stateful python kernel).

Owns: `Process` — binary pipes, `interrupt()`, `kill()`, `alive`, `close()`. The isolation and
the rlimits are those of `run` (`ossy.sandbox.launch`); `Limits.timeout` and the output cap do
not apply: the caller times each request and reads the pipes itself.
"""

from __future__ import annotations

import os
import signal
import subprocess
from typing import IO, Sequence

from ossy.sandbox.child import Child
from ossy.sandbox.launch import prepare
from ossy.sandbox.probe import require
from ossy.sandbox.spec import Limits, Spec


class Process:
    """A running sandboxed process. `stdin`, `stdout` and `stderr` are unbuffered binary pipes
    (`stderr` is None when spawned with merge_stderr=True: it goes to `stdout`). The caller must
    keep reading the output pipes, or the process blocks once a pipe buffer is full. Spawn from a
    thread that outlives the process: bubblewrap's --die-with-parent (PR_SET_PDEATHSIG) fires when
    the *thread* that started it exits."""

    def __init__(self, child: Child, backend: str) -> None:
        self._child = child
        self.backend = backend
        self.stdin: IO[bytes] = child.popen.stdin
        self.stdout: IO[bytes] = child.popen.stdout
        self.stderr: IO[bytes] | None = child.popen.stderr

    @property
    def alive(self) -> bool:
        return self._child.popen.poll() is None

    @property
    def exit_code(self) -> int | None:
        return self._child.popen.poll()

    def interrupt(self) -> bool:
        """SIGINT to the command itself (Python raises KeyboardInterrupt); False if it is gone."""
        pid = self._child.command_pid()
        if pid is None:
            return False
        try:
            os.kill(pid, signal.SIGINT)
        except ProcessLookupError:
            return False
        return True

    def kill(self) -> None:
        """SIGKILL the whole process tree and reap it."""
        self._child.kill()

    def close(self) -> None:
        """Kill the tree, close the pipes and undo the sandbox's traces. Safe to call again."""
        self._child.kill()
        for pipe in (self.stdin, self.stdout, self.stderr):
            if pipe:
                pipe.close()
        self._child.launch.cleanup()

    def __enter__(self) -> "Process":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def spawn(argv: Sequence[str], spec: Spec, limits: Limits = Limits(), *, merge_stderr: bool = False) -> Process:
    """Start `argv` under `spec` with the rlimits of `limits` (no timeout); close() it when done."""
    backend = require(spec)
    launch = prepare(argv, spec, limits, backend)
    try:
        child = Child(launch, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                      stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE)
    except BaseException:
        launch.cleanup()
        raise
    return Process(child, backend.name)
