"""The sandbox's contract types: what to run under (`Spec`, `Limits`), what ran (`Completed`),
which isolation is available (`Backend`) and the error when none is (`SandboxUnavailable`).

Owns: these data types only. Does not own: starting anything (`ossy.sandbox.launch`,
`ossy.sandbox.runner`, `ossy.sandbox.process`) or probing bubblewrap (`ossy.sandbox.probe`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

from ossy.errors import OssyError

MODES = ("read-only", "workspace-write", "full-access")


class SandboxUnavailable(OssyError):
    """bubblewrap is missing or cannot start, and the weaker mode was not allowed."""

    http_status = 503


@dataclass(frozen=True)
class Spec:
    workspace: Path  # the only writable directory (workspace-write); bound at the same path
    mode: str = "workspace-write"  # read-only | workspace-write | full-access
    network: bool = False  # False: own network namespace (no loopback services of the host)
    allow_unsandboxed: bool = False  # bubblewrap missing: run the weaker mode instead of refusing
    cwd: Path | None = None  # working directory (inside the workspace); default the workspace
    env: Mapping[str, str] = field(default_factory=dict)  # added after scrubbing (never host secrets)
    read_only: Sequence[Path] = ()  # extra host paths to show read-only (e.g. the python install)
    hidden: Sequence[Path] = ()  # host directories covered by an empty tmpfs besides HOME and /root (the ossy home)


@dataclass(frozen=True)
class Limits:
    timeout: float = 30.0  # wall clock, seconds; then the whole process tree is killed (not for spawn)
    cpu_seconds: int = 60  # RLIMIT_CPU, per process
    memory_bytes: int = 2 << 30  # RLIMIT_AS, per process
    file_size_bytes: int = 256 << 20  # RLIMIT_FSIZE
    processes: int = 128  # RLIMIT_NPROC inside the user namespace, or a pids cgroup when ossy runs as root
    open_files: int = 256  # RLIMIT_NOFILE
    output_bytes: int = 1 << 20  # kept per stream (head + tail); the rest is dropped (truncated=True)


@dataclass(frozen=True)
class Backend:
    name: str  # "bwrap" or "unsandboxed"
    version: str = ""
    path: str = ""
    problem: str = ""  # why bubblewrap cannot be used ("" when it can)


@dataclass
class Completed:
    argv: list[str]
    exit_code: int | None  # None when the sandbox killed it (timeout, output flood)
    stdout: str  # decoded UTF-8 with errors="replace", capped at Limits.output_bytes (marker inside)
    stderr: str
    timed_out: bool = False
    truncated: bool = False
    duration: float = 0.0
    backend: str = "bwrap"
    signal: int | None = None  # the signal that ended it, if any (exit codes 129-192 read as 128+signal)
