"""`make demo` (scripts/demo.py) works on a fresh home, offline: it pulls nano from the package,
shows it, runs the agent task (a tool call through the sandbox) and lists the audit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_demo_runs_end_to_end():
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "demo.py")], capture_output=True, text=True,
                          timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    out = done.stdout
    assert "nano is a demo-sized gpt-oss" in out and "not gpt-oss-20b" in out  # says what nano is, first
    assert "$ ossy pull nano" in out and "success" in out
    assert "tool: list_directory" in out and "ok (" in out
    assert "$ ossy audit" in out and "list_directory    allowed" in out
