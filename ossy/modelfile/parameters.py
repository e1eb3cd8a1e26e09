"""Every PARAMETER a Modelfile may set: its type, its valid range, and how its value is written.

Owns the table of Ollama's options (docs/reference/ollama-reference.md §3.3), turning a PARAMETER's text into a
typed value (int, float, bool, or a list of strings for `stop`) and back. Integers are decimal
and fit in 64 bits, floats are finite decimals, booleans are Go's `strconv.ParseBool` words, as
Ollama reads them. Ranges are ossy's own checks; Ollama has none. Does not read Modelfile
syntax or know line numbers: failures raise `ValueError` with a reason the parser places.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

ParameterValue = int | float | bool | list[str]

_INT = re.compile(r"[+-]?[0-9]+")
_FLOAT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_BOOLS = {
    **dict.fromkeys(("1", "t", "T", "TRUE", "true", "True"), True),
    **dict.fromkeys(("0", "f", "F", "FALSE", "false", "False"), False),
}
INT64 = 2**63  # integers are Go int64s: -INT64 <= n < INT64


@dataclass(frozen=True)
class Parameter:
    """One option: its type, inclusive bounds (None: unbounded) and whether it repeats."""

    kind: type
    low: float | None = None
    high: float | None = None

    @property
    def repeats(self) -> bool:
        return self.kind is str


PARAMETERS: dict[str, Parameter] = {
    "num_ctx": Parameter(int, 1),
    "num_predict": Parameter(int, -1),
    "temperature": Parameter(float, 0),
    "top_k": Parameter(int, 0),
    "top_p": Parameter(float, 0, 1),
    "min_p": Parameter(float, 0, 1),
    "typical_p": Parameter(float, 0, 1),
    "repeat_penalty": Parameter(float, 0),
    "repeat_last_n": Parameter(int, -1),
    "presence_penalty": Parameter(float),
    "frequency_penalty": Parameter(float),
    "seed": Parameter(int),
    "stop": Parameter(str),
    "num_keep": Parameter(int, -1),
    "num_batch": Parameter(int, 1),
    "num_gpu": Parameter(int, -1),
    "main_gpu": Parameter(int, 0),
    "use_mmap": Parameter(bool),
    "num_thread": Parameter(int, 0),
    "draft_num_predict": Parameter(int, 0),
}

# Ollama only warns about these and drops them; so does ossy.
DEPRECATED = frozenset(
    (
        "penalize_newline",
        "low_vram",
        "f16_kv",
        "logits_all",
        "vocab_only",
        "use_mlock",
        "mirostat",
        "mirostat_tau",
        "mirostat_eta",
    )
)

_EXPECTED = {
    int: "expected a whole number",
    float: "expected a number such as 0.7",
    bool: "expected true or false",
}


def convert(name: str, text: str) -> int | float | bool | str:
    """The typed, range-checked value of PARAMETER `name` (a known name) written as `text`."""
    spec = PARAMETERS[name]
    if spec.kind is str:
        if not text:
            raise ValueError(f'{name} needs a non-empty string; write PARAMETER {name} "<text>"')
        return text
    value = _read(spec.kind, text)
    if value is None:
        raise ValueError(_invalid(spec.kind, name, text))
    _check_range(name, spec, value)
    return value


def format_value(value: int | float | bool | str) -> str:
    """A single parameter value as Ollama writes it: `1` not `1.0`, `true`, strings as they are."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return str(value) if isinstance(value, (int, str)) else repr(value)


def _read(kind: type, text: str) -> int | float | bool | None:
    if kind is bool:
        return _BOOLS.get(text)
    if kind is int:
        number = int(text) if _INT.fullmatch(text) else None
        return number if number is not None and -INT64 <= number < INT64 else None
    number = float(text) if _FLOAT.fullmatch(text) else None
    return number if number is not None and math.isfinite(number) else None


def _invalid(kind: type, name: str, text: str) -> str:
    reason = f'invalid {kind.__name__} value "{text}" for {name}; {_EXPECTED[kind]}'
    if " #" in text or text.startswith("#"):
        reason += " (comments must be on their own line)"
    return reason


def _check_range(name: str, spec: Parameter, value: float) -> None:
    if spec.kind is bool:
        return
    too_low = spec.low is not None and value < spec.low
    too_high = spec.high is not None and value > spec.high
    if too_low or too_high:
        raise ValueError(f"{name} {format_value(value)} is out of range; expected {_bounds(name, spec)}")


def _bounds(name: str, spec: Parameter) -> str:
    low, high = (None if b is None else format_value(float(b)) for b in (spec.low, spec.high))
    if high is None:
        return f"{name} >= {low}"
    return f"{low} <= {name} <= {high}"
