"""Go's encoding/json Marshal over template values, byte for byte.

Owns: the JSON text Go writes for template data: compact, map keys sorted, `<`, `>` and `&`
escaped as \\u003c \\u003e \\u0026, U+2028/2029 escaped, floats in ES6 style (1e+21, 1e-7),
struct fields named and omitted as their json tags say, nil slices and maps as null.
Does not own: decoding (plain `json.loads` suffices), or marshalling Go types the template data
never holds (byte slices, channels).
"""

from __future__ import annotations

from typing import Any

from ossy.template.errors import GoError
from ossy.template.gofmt import format_float
from ossy.template.values import INVALID, GoMap, GoSlice, NilPointer, Struct, kind, type_name, unwrap

_SHORT = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r",
          "\t": "\\t"}


def quote_string(s: str) -> str:
    out = ['"']
    for ch in s:
        if ch in _SHORT:
            out.append(_SHORT[ch])
        elif ch < " " or ch in "<>&\u2028\u2029":
            out.append(f"\\u{ord(ch):04x}")
        elif "\ud800" <= ch <= "\udfff":
            out.append("\\ufffd")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _float(value: float) -> str:
    if value != value or value in (float("inf"), float("-inf")):
        raise GoError(f"json: unsupported value: {format_float(value, 'g', -1)}")
    magnitude = abs(value)
    if magnitude != 0 and (magnitude < 1e-6 or magnitude >= 1e21):
        text = format_float(value, "e", -1)
        if text[-4:-1] == "e-0":
            text = text[:-2] + text[-1]
        return text
    return format_float(value, "f", -1)


def _empty(value: Any) -> bool:
    """Whether a field with `omitempty` is left out."""
    value = unwrap(value)
    if value is None or isinstance(value, NilPointer):
        return True
    if isinstance(value, (str, list, tuple, dict)):
        return len(value) == 0
    if isinstance(value, (bool, int, float)):
        return not value
    return False


def _struct(value: Struct) -> str:
    tags = value.json or tuple((name, name, False) for name in value.fields)
    parts = [quote_string(json_name) + ":" + marshal(value.fields[name])
             for name, json_name, omitempty in tags
             if not (omitempty and _empty(value.fields[name]))]
    return "{" + ",".join(parts) + "}"


def marshal(value: Any) -> str:
    """json.Marshal(value); raises GoError where Go returns an error."""
    value = unwrap(value)
    if value is None or value is INVALID or isinstance(value, NilPointer):
        return "null"
    custom = getattr(value, "marshal", None)
    if custom is not None:
        return custom(value)
    k = kind(value)
    if k == "bool":
        return "true" if value else "false"
    if k in ("int", "uint"):
        return str(int(value))
    if k == "float":
        return _float(value)
    if k == "string":
        return quote_string(value)
    if isinstance(value, (GoSlice, GoMap)) and value.nil:
        return "null"
    if k == "slice":
        return "[" + ",".join(marshal(item) for item in value) + "]"
    if k == "map":
        return "{" + ",".join(quote_string(key) + ":" + marshal(value[key])
                              for key in sorted(value)) + "}"
    if isinstance(value, Struct):
        return _struct(value)
    raise GoError(f"json: unsupported type: {type_name(value)}")
