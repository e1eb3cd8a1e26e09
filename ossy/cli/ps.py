"""`ossy ps` (the models in memory, like `ollama ps`) and `ossy stop MODEL` (unload it now).

Owns: both subcommands, the table's formatting (NAME ID SIZE PROCESSOR CONTEXT UNTIL) and the
expert-routing table of `ossy ps --experts` (from /api/experts). They
ask the running server (`settings().host`); without one nothing is loaded, which is an error.
"""

from __future__ import annotations

import argparse
import datetime

from ossy.client import Client, server_running
from ossy.config import settings
from ossy.errors import OssyError


def register(subparsers) -> None:
    p = subparsers.add_parser("ps", help="List the models in memory")
    p.add_argument("--experts", action="store_true",
                   help="also show how often each expert was chosen, per layer, since the model was loaded")
    p.set_defaults(func=ps)
    p = subparsers.add_parser("stop", help="Unload a running model now")
    p.add_argument("model", metavar="MODEL", help="model name")
    p.set_defaults(func=stop)


def _client():
    host = settings().host
    if not server_running(host):
        raise OssyError(f"could not connect to an ossy server at {host}; is `ossy serve` running?")
    return Client(host)


def human_bytes(n: int) -> str:
    """Ollama's format.HumanBytes: decimal units, e.g. 13 GB, 1.2 GB, 812 MB."""
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= size:
            value = n / size
            return f"{value:.1f} {unit}" if value < 10 and value != int(value) else f"{value:.0f} {unit}"
    return f"{n} B"


def processor(size: int, size_vram: int) -> str:
    if size <= 0 or size_vram <= 0:
        return "100% CPU"
    if size_vram >= size:
        return "100% GPU"
    gpu = round(size_vram / size * 100)
    return f"{100 - gpu}%/{gpu}% CPU/GPU"


def until(expires_at: str | None, now: datetime.datetime | None = None) -> str:
    """When a model unloads, as Ollama says it: "4 minutes from now", "Forever", "Stopping..."."""
    if not expires_at:
        return "Forever"
    try:
        when = datetime.datetime.fromisoformat(expires_at.replace("Z", "+00:00"))
    except ValueError:
        return expires_at
    now = now or datetime.datetime.now(datetime.timezone.utc)
    seconds = (when - now).total_seconds()
    if seconds <= 0:
        return "Stopping..."
    if seconds > 20 * 365 * 86400:
        return "Forever"
    for unit, size in (("year", 365 * 86400), ("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        if seconds >= size:
            count = int(seconds // size)
            if count == 1:
                return f"About a{'n' if unit == 'hour' else ''} {unit} from now"
            return f"{count} {unit}s from now"
    return "Less than a second from now"


def table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "".join("    ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() + "\n" for r in rows)


def ps(args: argparse.Namespace) -> int:
    with _client() as client:
        models = client.ps()
        experts = client.experts() if args.experts else []
    rows = [["NAME", "ID", "SIZE", "PROCESSOR", "CONTEXT", "UNTIL"]]
    for m in models:
        digest = str(m.get("digest", "")).removeprefix("sha256:")
        backend = str(m.get("backend") or "").removeprefix("native-")
        rows.append([m.get("name", ""), digest[:12], human_bytes(int(m.get("size") or 0)),
                     processor(int(m.get("size") or 0), int(m.get("size_vram") or 0)) +
                     (f" ({backend})" if backend else ""),
                     str(m.get("context_length") or ""), until(m.get("expires_at"))])
    print(table(rows), end="")
    if args.experts:
        for counts in experts:
            print("\n" + expert_table(counts), end="")
    return 0


SHADES = " .:-=+*#%@"  # share of the layer's most chosen expert, low to high


def expert_table(counts: dict) -> str:
    """An /api/experts item as text: a row per layer, a column per expert, each cell the
    percentage of the layer's tokens that chose the expert, shaded by it."""
    tokens, rows = counts["tokens"], counts["counts"]
    lines = [f"{counts['model']}: experts chosen per layer over {tokens} tokens "
             f"({counts['top_k']} per token per layer; % of tokens)"]
    width = max(3, len(str(counts["experts"] - 1)) + 1)
    lines.append("layer " + "".join(f"{e:>{width}}" for e in range(counts["experts"])))
    for layer, row in enumerate(rows):
        most = max(row) or 1
        cells = "".join(f"{round(100 * n / tokens) if tokens else 0:>{width}}" for n in row)
        shades = "".join(SHADES[min(len(SHADES) - 1, n * len(SHADES) // (most + 1))] for n in row)
        lines.append(f"{layer:<6}{cells}  {shades}")
    return "\n".join(lines) + "\n"


def _same(a: str, b: str) -> bool:
    def norm(name: str) -> str:
        return name if ":" in name.rsplit("/", 1)[-1] else name + ":latest"

    return norm(a) == norm(b)


def stop(args: argparse.Namespace) -> int:
    with _client() as client:
        loaded = [m.get("name", "") for m in client.ps()]
        if not any(_same(name, args.model) for name in loaded):
            raise OssyError(f'couldn\'t find model "{args.model}" to stop')
        client.unload(args.model)
    return 0
