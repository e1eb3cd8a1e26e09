"""`ossy create`, `list` (`ls`), `cp`, `rm` and `verify`, in Ollama's formats.

Owns: these subcommands, their output (the `NAME ID SIZE MODIFIED` table with Ollama's size and
time wording, a `warning:` line on stderr per manifest the listing skipped, create's progress
lines, `deleted '...'`, verify's line per model). Does not own: `ossy show` (`ossy.cli.show`), the store (`ossy.store`), Modelfile syntax (`ossy.modelfile`), or reading
checkpoints (`ossy.model.weights`).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ossy.config import settings
from ossy.modelfile import parse_file
from ossy.store import Library, Progress, create, parse_name


def register(subparsers) -> None:
    p = subparsers.add_parser("create", help="Create a model from a Modelfile")
    p.add_argument("name", metavar="MODEL")
    p.add_argument("-f", "--file", default="Modelfile", help="the Modelfile (default: ./Modelfile)")
    p.set_defaults(func=run_create)

    p = subparsers.add_parser("list", aliases=["ls"], help="List models")
    p.add_argument("pattern", nargs="?", help="only models whose name starts with this")
    p.set_defaults(func=run_list)

    p = subparsers.add_parser("cp", help="Copy a model")
    p.add_argument("source", metavar="SOURCE")
    p.add_argument("destination", metavar="DESTINATION")
    p.set_defaults(func=run_cp)

    p = subparsers.add_parser("rm", help="Remove models")
    p.add_argument("names", metavar="MODEL", nargs="+")
    p.set_defaults(func=run_rm)

    p = subparsers.add_parser("verify", help="Re-hash models' blobs against their digests")
    p.add_argument("names", metavar="MODEL", nargs="*", help="the models to check (default: every model)")
    p.set_defaults(func=run_verify)


# -- create ------------------------------------------------------------------------------------
class _Printer(Progress):
    """Create's progress on stderr, as Ollama prints it: a percentage updated in place on a
    terminal, one line per tenth otherwise."""

    def __init__(self, stream) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self._shown: tuple[str, int] | None = None  # the transfer line on screen, by percent

    def status(self, text: str) -> None:
        self._close()
        print(text, file=self.stream, flush=True)

    def transfer(self, text: str, done: int, total: int) -> None:
        percent = 100 if total == 0 else done * 100 // total
        step = percent if self.tty else percent // 10 * 10
        if self._shown == (text, step):
            return
        self._shown = (text, step)
        if self.tty:
            self.stream.write(f"\r\x1b[K{text}  {percent:3d}%")
            self.stream.flush()
        else:
            print(f"{text}  {step:3d}%", file=self.stream, flush=True)

    def _close(self) -> None:
        if self._shown and self.tty:
            self.stream.write("\n")
        self._shown = None


def run_create(args: argparse.Namespace) -> int:
    parse_name(args.name)  # a bad name fails before any work
    path = Path(args.file)
    modelfile = parse_file(path)
    printer = _Printer(sys.stderr)
    create(Library.from_settings(settings()), args.name, modelfile, base_dir=path.resolve().parent, progress=printer)
    printer.status("success")
    return 0


# -- list / cp / rm ----------------------------------------------------------------------------
def run_list(args: argparse.Namespace) -> int:
    listing = Library.from_settings(settings()).listing()
    for problem in listing.problems:
        print(f"warning: {problem}", file=sys.stderr)
    models = [m for m in listing.models
              if not args.pattern or str(m.name).lower().startswith(args.pattern.lower())]
    models.sort(key=lambda m: -m.modified)
    rows = [["NAME", "ID", "SIZE", "MODIFIED"]]
    rows += [[str(m.name), m.digest[:12], format_size(m.size), format_modified(m.modified)] for m in models]
    if any(m.store.read_only for m in models):  # say which models are Ollama's (read-only)
        rows[0].append("SOURCE")
        for row, m in zip(rows[1:], models):
            row.append("ollama" if m.store.read_only else "ossy")
    print(_columns(rows), end="")
    return 0


def _columns(rows: list[list[str]]) -> str:
    """Left-aligned columns, four spaces apart (Ollama's tablewriter settings)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "".join("    ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() + "\n" for row in rows)


def run_cp(args: argparse.Namespace) -> int:
    Library.from_settings(settings()).copy(args.source, args.destination, _Printer(sys.stderr))
    print(f"copied '{args.source}' to '{args.destination}'")
    return 0


def run_rm(args: argparse.Namespace) -> int:
    library = Library.from_settings(settings())
    for name in args.names:
        library.remove(name)
        print(f"deleted '{name}'")
    return 0


def run_verify(args: argparse.Namespace) -> int:
    """Re-hash every blob of the named models (or of all); 1 if any is missing or corrupt."""
    library = Library.from_settings(settings())
    if args.names:
        models = [library.get(name) for name in args.names]
    else:
        listing = library.listing()
        models = listing.models
        for problem in listing.problems:
            print(f"warning: {problem}", file=sys.stderr)
    bad = 0
    for model in models:
        problems = model.store.verify(model)
        blobs = 1 + len(model.manifest.layers)
        if problems:
            bad += 1
            for problem in problems:
                print(f"{model.name}: {problem}; re-create or re-pull it")
        else:
            print(f"{model.name}: ok ({blobs} blobs, {format_size(model.size)})")
    return 1 if bad else 0


# -- Ollama's formats (format/bytes.go, format/time.go) -----------------------------------------
def format_size(n: int) -> str:
    """1000-based units; whole values and values >= 100 without decimals: 13 GB, 1.5 KB, 999 MB."""
    for unit, size in (("TB", 10**12), ("GB", 10**9), ("MB", 10**6), ("KB", 10**3)):
        if n >= size:
            value = n / size
            return f"{int(value)} {unit}" if value >= 100 or value.is_integer() else f"{value:.1f} {unit}"
    return f"{n} B"


def format_modified(timestamp: float, now: float | None = None) -> str:
    """`2 minutes ago`, `About an hour ago`, `3 weeks ago` ..."""
    delta = (time.time() if now is None else now) - timestamp
    return _duration(-delta) + " from now" if delta < 0 else _duration(delta) + " ago"


def _duration(seconds: float) -> str:
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s < 60:
        return "1 second" if s == 1 else f"{s} seconds"
    minutes = s // 60
    if minutes < 60:
        return "About a minute" if minutes == 1 else f"{minutes} minutes"
    hours = round(seconds / 3600)
    for limit, unit, per in ((48, "hours", 1), (24 * 14, "days", 24), (24 * 60, "weeks", 24 * 7),
                             (24 * 365 * 2, "months", 24 * 30)):
        if hours < limit:
            return "About an hour" if hours == 1 else f"{hours // per} {unit}"
    return f"{hours // (24 * 365)} years"
