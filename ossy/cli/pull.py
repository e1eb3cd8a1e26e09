"""`ossy pull NAME [--insecure]` and `ossy push NAME [--insecure]`, and the progress display `ossy run` also uses when it pulls a
missing model first (docs/reference/ollama-reference.md §1.1, §4).

Owns: the subcommands and how transfer progress is drawn: on a terminal, one line per blob redrawn in
place as Ollama draws it (`pulling 9ce18ba6a0c4:  45% ▕████      ▏ 5.9 GB/ 13 GB  102 MB/s  1m12s`),
each other status on a line of its own; elsewhere (a pipe, a log) each status once and each blob
once, when done. Does not own: pulling (`ossy.store.registry`, through the server's /api/pull).
"""

from __future__ import annotations

import argparse
import sys
import time

from ossy.cli.models import format_size
from ossy.client.local import connect

BAR = 25


def register(subparsers) -> None:
    p = subparsers.add_parser("pull", help="Pull a model from a registry (registry.ollama.ai, hf.co, ...)")
    p.add_argument("model", metavar="NAME", help="e.g. gpt-oss:20b, hf.co/USER/REPO:QUANT")
    p.add_argument("--insecure", action="store_true", help="allow a registry over plain HTTP")
    p.set_defaults(func=lambda args: _transfer(args, "pull"))
    p = subparsers.add_parser("push", help="Push a model to the registry its name says")
    p.add_argument("model", metavar="NAME", help="e.g. registry.example.com/me/my-model:latest")
    p.add_argument("--insecure", action="store_true", help="allow a registry over plain HTTP")
    p.set_defaults(func=lambda args: _transfer(args, "push"))


def _transfer(args: argparse.Namespace, verb: str) -> int:
    with connect() as client:
        with_progress(getattr(client, verb)(args.model, insecure=args.insecure))
    return 0


def pull_with_progress(client, model: str, insecure: bool = False) -> None:
    with_progress(client.pull(model, insecure=insecure))


def with_progress(events, out=None) -> None:
    display = PullDisplay(out or sys.stderr)
    try:
        for event in events:
            display.show(event)
    finally:
        display.finish()


class PullDisplay:
    """Draws /api/pull events on `out` (see the module docstring)."""

    def __init__(self, out) -> None:
        self.out = out
        self.tty = out.isatty()
        self.current: str | None = None  # the status of the line being redrawn
        self.started: dict[str, tuple[float, int]] = {}  # digest -> (when its progress began, bytes then)
        self.last: dict | None = None

    def show(self, event: dict) -> None:
        status = event.get("status", "")
        if "total" in event and "digest" in event:
            self._blob(status, event)
            return
        self._end_line()
        self.out.write(status + "\n")
        self.out.flush()

    def _blob(self, status: str, event: dict) -> None:
        digest, total, done = event["digest"], event["total"] or 0, event.get("completed") or 0
        self.started.setdefault(digest, (time.monotonic(), done))
        if status != self.current:
            self._end_line()
            self.current = status
        self.last = event
        if self.tty:
            self.out.write("\r" + self._line(status, digest, total, done) + "\x1b[K")
            self.out.flush()
        elif done >= total:
            self.out.write(self._line(status, digest, total, done) + "\n")
            self.out.flush()
            self.current = None

    def _line(self, status: str, digest: str, total: int, done: int) -> str:
        fraction = done / total if total else 1.0
        filled = int(fraction * BAR)
        bar = "▕" + "█" * filled + " " * (BAR - filled) + "▏"
        if done >= total:
            return f"{status}: 100% {bar} {format_size(total):>7}"
        since, at_start = self.started[digest]
        elapsed = time.monotonic() - since
        rate = (done - at_start) / elapsed if elapsed > 0.5 else 0
        eta = _duration((total - done) / rate) if rate else ""
        speed = f"{format_size(int(rate))}/s" if rate else ""
        return f"{status}: {fraction:4.0%} {bar} {format_size(done):>7}/{format_size(total):>7}  {speed:>9}  {eta}"

    def _end_line(self) -> None:
        if self.current is not None and self.tty:
            self.out.write("\n")
        self.current = None

    def finish(self) -> None:
        self._end_line()


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60}s"
    return f"{seconds}s"
