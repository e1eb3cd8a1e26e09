"""Durations as Ollama accepts them: `keep_alive` in a request and `OSSY_KEEP_ALIVE` in the environment.

Owns: `parse_duration`, the one reader of these values, and what "forever" is. A duration is a
number of seconds (a JSON number, or a string holding one: "300", "-1") or a Go duration
("5m", "1h30m", "1.5h", "300ms", "-1s"). A negative value means forever (Ollama's rule), and so
does anything beyond `FOREVER_AFTER` (about ten years): no timer in ossy ever gets a timeout
larger than that, so no input can overflow one. Zero means "unload now". Booleans, NaN,
infinities, other types and malformed text are errors (`ValueError`, with the reason); callers
turn them into a 400 naming the field or a message naming the variable.
Does not own: what a duration is used for (the engine's keep_alive).
"""

from __future__ import annotations

import math
import re

FOREVER = -1.0
FOREVER_AFTER = 10 * 365.25 * 86400.0  # seconds; a longer duration is forever

_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
EXPECTED = 'a duration such as "5m", "1h30m" or "-1", or a number of seconds'


def parse_duration(value: object) -> float:
    """Seconds (`FOREVER` for negative or overlong durations); ValueError when not a duration."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"expected {EXPECTED}, not {value!r}")
    if isinstance(value, str):
        seconds = _parse_text(value.strip())
    else:
        seconds = float(value)
    if math.isnan(seconds) or math.isinf(seconds):
        raise ValueError(f"expected a finite duration, not {value!r}")
    if seconds < 0 or seconds > FOREVER_AFTER:
        return FOREVER
    return seconds


def _parse_text(text: str) -> float:
    try:
        number = float(text)
    except ValueError:
        pass
    else:
        if not (math.isnan(number) or math.isinf(number)):
            return number
        raise ValueError(f"expected a finite duration, not {text!r}")
    sign = -1.0 if text.startswith("-") else 1.0
    body = text[1:] if text[:1] in "+-" else text
    parts = _PART.findall(body)
    if not body or "".join(n + u for n, u in parts) != body:
        raise ValueError(f"expected {EXPECTED}, not {text!r}")
    return sign * sum(float(n) * _UNITS[u] for n, u in parts)
