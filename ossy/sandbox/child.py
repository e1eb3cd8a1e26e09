"""A started sandboxed process: the Popen of bubblewrap (or of the command in the weaker
mode), the sandbox's pid 1, and killing the whole tree.

Owns: `Child` (start, `command_pid()` for signals, `kill()`). Does not own: building the
command line (`ossy.sandbox.launch`) or reading the output (`ossy.sandbox.runner`,
`ossy.sandbox.process`).
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from ossy.errors import OssyError
from ossy.sandbox.launch import Launch

GRACE = 1.0  # seconds for a killed tree to go away


class Child:
    def __init__(self, launch: Launch, *, stdin, stdout, stderr) -> None:
        self.launch = launch
        try:
            # start_new_session: bubblewrap (or the weaker mode's command) leads its own process group
            self.popen = subprocess.Popen(launch.argv, stdin=stdin, stdout=stdout, stderr=stderr, env=launch.env,
                                          cwd=launch.cwd, preexec_fn=launch.preexec, start_new_session=True,
                                          pass_fds=launch.pass_fds)
        except OSError as e:  # E2BIG, or (weaker mode) a missing command: the caller's error, not ours
            raise OssyError(f"sandbox: cannot start {launch.command[0]}: {e.strerror or e}") from None
        finally:
            launch.started()
        self.init_pid = launch.read_init_pid()

    def command_pid(self) -> int | None:
        """The host pid of the command itself (pid 2 under bubblewrap's pid 1), None once gone."""
        if self.popen.poll() is not None:
            return None
        if self.launch.backend != "bwrap":
            return self.popen.pid
        if self.init_pid is None:
            return None
        for entry in os.scandir("/proc"):
            if entry.name.isdigit() and _is_command_of(Path(entry.path), self.init_pid):
                return int(entry.name)
        return None

    def kill(self) -> None:
        """SIGKILL every process of the tree and reap; once this returns none is left (in the
        weaker mode: none that stayed in the process group or, as root, in the pids cgroup)."""
        if self.popen.poll() is None and self.init_pid is not None:
            # pid 1 of the sandbox: the kernel kills its whole pid namespace before pid 1 is
            # reaped, and bubblewrap exits once pid 1 is reaped, so bubblewrap's exit means empty.
            _signal(self.init_pid)
            try:
                self.popen.wait(GRACE)
            except subprocess.TimeoutExpired:
                pass
        if self.popen.poll() is None or self.launch.backend != "bwrap":
            _signal(self.popen.pid, group=True)  # bubblewrap itself (--die-with-parent), or the group
        for pid in self.launch.cgroup_pids():
            _signal(pid)
        self.popen.wait()


def _is_command_of(proc: Path, init_pid: int) -> bool:
    try:
        fields = dict(line.split(":", 1) for line in (proc / "status").read_text().splitlines() if ":" in line)
    except OSError:
        return False
    return fields.get("PPid", "").strip() == str(init_pid) and fields.get("NSpid", "").split()[-1:] == ["2"]


def _signal(pid: int, sig: int = signal.SIGKILL, *, group: bool = False) -> None:
    try:
        (os.killpg if group else os.kill)(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
