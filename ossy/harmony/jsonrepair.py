"""Repair of tool-call arguments: JSON objects that the model broke in a way with one sensible fix.

Owns: deciding whether argument text is a JSON object, can become one by an unambiguous edit,
or must be passed on as the raw string. Does not own: which tools expect JSON (the parser asks
for a repair only where JSON is expected) or validation against a tool's schema.

Unambiguous repairs (each gives `"repaired"`, and the arguments are re-serialised with
`json.dumps`):
  - empty or blank arguments -> `{}`;
  - control characters (raw newlines, tabs) inside strings -> escaped (multi-line file contents);
  - trailing junk after one complete value (`{"a": 1}}`, `{"a": 1}<|call|>`) -> cut, unless the
    junk starts another JSON value (`{..} {..}`: two calls jammed together is not a guess we make);
  - output cut inside the value: an open string is closed (a dangling backslash dropped), a
    trailing comma dropped, and the open brackets and braces closed in order;
  - a one-element array holding an object (`[{"a": 1}]`) -> the object.
Anything else (a bare command `ls -R`, a dangling key or colon, mismatched brackets, text before
the object, a non-object value) is `"invalid"` and the raw text is returned unchanged.
"""

from __future__ import annotations

import json

REPAIRED = "repaired"
INVALID = "invalid"

_STRICT = json.JSONDecoder()
_LENIENT = json.JSONDecoder(strict=False)  # allows control characters inside strings
_FAILED = object()
_CLOSER = {"{": "}", "[": "]"}


def repair_arguments(text: str) -> tuple[str, str | None]:
    """`(arguments, problem)`: problem is None for a valid JSON object (text returned as is),
    `"repaired"` with the fixed object as JSON, or `"invalid"` with the raw text."""
    if isinstance(_load(text, _STRICT), dict):
        return text, None
    stripped = text.strip()
    if not stripped:
        return "{}", REPAIRED
    for candidate in (stripped, without_trailing_junk(stripped), closed_json(stripped)):
        obj = _as_object(_load(candidate, _LENIENT)) if candidate is not None else None
        if obj is not None:
            return json.dumps(obj, ensure_ascii=False), REPAIRED
    return text, INVALID


def _load(text: str, decoder: json.JSONDecoder):
    try:
        return decoder.decode(text)
    except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        return _FAILED


def _as_object(value) -> dict | None:
    if isinstance(value, dict):
        return value
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], dict):
        return value[0]
    return None


def without_trailing_junk(text: str) -> str | None:
    """The first complete JSON value of `text` if junk (not another value) follows it."""
    try:
        _, end = _LENIENT.raw_decode(text)
    except (ValueError, RecursionError):
        return None
    rest = text[end:].lstrip()
    if not rest or rest[0] in "{[":
        return None
    return text[:end]


# Where a scan of JSON text stands with respect to strings (see `string_state`).
OUTSIDE, IN_STRING, AFTER_BACKSLASH = 0, 1, 2


def string_state(state: int, ch: str) -> int:
    """The scan state after `ch`, given the state before it (the one JSON string scanner)."""
    if state == AFTER_BACKSLASH:
        return IN_STRING
    if state == IN_STRING:
        return AFTER_BACKSLASH if ch == "\\" else OUTSIDE if ch == '"' else IN_STRING
    return IN_STRING if ch == '"' else OUTSIDE


def closed_json(text: str) -> str | None:
    """`text` with its open string, brackets and braces closed; None if nothing is open or a
    closing bracket does not match."""
    expected: list[str] = []
    state = OUTSIDE
    for ch in text:
        if state == OUTSIDE:
            if ch in _CLOSER:
                expected.append(_CLOSER[ch])
            elif ch in "}]" and (not expected or expected.pop() != ch):
                return None
        state = string_state(state, ch)
    if state != OUTSIDE:
        text = (text[:-1] if state == AFTER_BACKSLASH else text) + '"'
    elif not expected:
        return None
    else:
        text = text.rstrip().removesuffix(",")
    return text + "".join(reversed(expected))
