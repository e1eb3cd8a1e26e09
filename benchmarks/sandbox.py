"""What safety costs: a tool call through ossy against the same work done directly.

Peers, run in this process one after the other, best of three rounds:
  - starting a process: `ossy.sandbox.run(["true"])` (bubblewrap, namespaces, rlimits, cgroup)
    against `subprocess.run(["true"])`;
  - a shell command: the `bash` tool through the executor (schema check, policy, audit row,
    sandbox) against `subprocess.run(["bash", "-c", ...])`;
  - reading a file: the `read_file` tool through the executor (path checks, O_NOFOLLOW walk,
    audit row) against `open().read()`;
  - a python cell: the stateful sandboxed kernel (`python` tool) against `exec` in this process.

Usage: .venv/bin/python benchmarks/sandbox.py [--calls N]
Prints one row per peer pair: milliseconds per call for each and the ratio ossy / direct.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from ossy import sandbox
from ossy.tools.audit import AuditLog
from ossy.tools.base import Policy, ToolContext
from ossy.tools.executor import Executor
from ossy.tools.registry import Registry


def per_call_ms(fn, calls: int, rounds: int = 3) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - start) / calls)
    return best * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=20)
    args = parser.parse_args()
    if sandbox.backend().name != "bwrap":
        raise SystemExit(f"bubblewrap is not available: {sandbox.backend().problem}")

    root = Path(tempfile.mkdtemp(prefix="ossy-bench-", dir="/var/tmp"))
    workspace = root / "ws"
    workspace.mkdir()
    (workspace / "notes.txt").write_text("hello\n" * 1000)
    ctx = ToolContext(workspace, policy=Policy(approvals="auto"), conversation="bench", home=root / "home")
    executor = Executor(Registry.from_toolsets(["fs", "shell", "python"]), ctx, audit=AuditLog(root / "audit.sqlite"))
    spec = ctx.sandbox_spec()
    namespace: dict = {}
    executor.call("python", {"code": "x = 0"})  # start the kernel outside the timing

    pairs = [
        ("start a process", lambda: sandbox.run(["true"], spec), lambda: subprocess.run(["true"], check=True)),
        ("bash 'ls | wc -l'", lambda: executor.call("bash", {"command": "ls | wc -l"}),
         lambda: subprocess.run(["bash", "-c", "ls | wc -l"], cwd=workspace, capture_output=True, check=True)),
        ("read a 6 KB file", lambda: executor.call("read_file", {"path": "notes.txt"}),
         lambda: (workspace / "notes.txt").read_text()),
        ("python cell 'x += 1'", lambda: executor.call("python", {"code": "x += 1"}),
         lambda: exec("x = x + 1 if 'x' in dir() else 0", namespace)),
    ]
    print(f"{'operation':24} {'ossy ms':>9} {'direct ms':>10} {'ratio':>8}")
    try:
        for name, ours, direct in pairs:
            a, b = per_call_ms(ours, args.calls), per_call_ms(direct, args.calls)
            print(f"{name:24} {a:9.2f} {b:10.3f} {a / b:8.1f}x")
    finally:
        ctx.close()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
