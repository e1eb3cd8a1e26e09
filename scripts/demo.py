"""`make demo`: ossy's main job, offline, with the bundled nano model.

nano ships inside the package (a demo-sized model with the gpt-oss architecture, trained by
`ossy train`; not gpt-oss-20b). The demo makes a small project folder, then runs what a user
runs: `ossy pull nano` (from the package, offline), `ossy show nano`, then one agent task, `ossy run nano --tools fs,shell,system`, in which
the model reasons in the analysis channel, calls a tool, ossy runs it (path checks, sandbox,
audit) and feeds the result back, and the model writes its answer (nano's answers after a tool
result are often wrong: see the README); then `ossy audit` lists the call. Everything is written
under a temporary OSSY_HOME and workspace, removed at the end.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

TASK = "What files are here?"
FILES = {
    "notes.txt": "Buy milk and eggs.\nCall Anna on Monday.\n",
    "src/app.py": "print('hello')\n",
    "README.md": "# demo project\n",
}


def ossy(*args: str, env: dict[str, str]) -> None:
    print(f"\n$ ossy {' '.join(args)}", flush=True)
    # tool calls and results go to stderr, the reasoning and answer to stdout: one stream keeps their order
    subprocess.run([sys.executable, "-m", "ossy", *args], env=env, check=True, stderr=subprocess.STDOUT)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="ossy-demo-") as tmp:
        root = Path(tmp)
        workspace = root / "project"
        for name, text in FILES.items():
            (workspace / name).parent.mkdir(parents=True, exist_ok=True)
            (workspace / name).write_text(text)
        env = {**os.environ, "OSSY_HOME": str(root / "home"), "OLLAMA_MODELS": str(root / "no-ollama"),
               "OSSY_HOST": "127.0.0.1:1"}  # no server: the CLI runs the model in this process
        print("# nano is a demo-sized gpt-oss (8M parameters, trained by `ossy train` on synthetic\n"
              "# conversations): it shows the whole job on a laptop, offline; it is not gpt-oss-20b.", flush=True)
        ossy("pull", "nano", env=env)  # from the ossy package: no network
        ossy("show", "nano", env=env)
        print(f"\n# a project folder at {workspace}: {', '.join(FILES)}")
        ossy("run", "nano", "--think", "low", "--tools", "fs,shell,system", "--workspace", str(workspace), TASK,
             env=env)
        ossy("audit", env=env)


if __name__ == "__main__":
    main()
