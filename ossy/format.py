"""Human-readable numbers and sizes, printed the way Ollama prints them, and RFC 3339 times as
Ollama's API writes them.

Owns: formatting only; used by the CLI, the server and the store (its config blob's `model_type`).
"""

from __future__ import annotations

import datetime


def human_number(n: int) -> str:
    """Ollama's format.HumanNumber: 20914757184 -> 20.9B, 3608166144 -> 3.6B."""
    for unit, size in (("B", 10**9), ("M", 10**6)):
        if n >= size:
            value = n / size
            return f"{value:.0f}{unit}" if value == int(value) else f"{value:.{1 if unit == 'B' else 2}f}{unit}"
    return f"{n / 1000:.0f}K" if n >= 1000 else str(n)


def human_bytes(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    value, unit = n / 1024, "KiB"
    for bigger in ("MiB", "GiB", "TiB"):
        if value < 1024:
            break
        value, unit = value / 1024, bigger
    return f"{value:.2f} {unit}"


def now_rfc3339(ts: float | None = None) -> str:
    """`ts` (unix time; default now) as RFC 3339 in UTC: 2026-12-07T18:22:02.123456Z."""
    t = datetime.datetime.fromtimestamp(ts, datetime.timezone.utc) if ts is not None else \
        datetime.datetime.now(datetime.timezone.utc)
    return t.isoformat().replace("+00:00", "Z")
