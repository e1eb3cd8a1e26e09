"""Go's template builtins (text/template/funcs.go) and how template functions are described.

Owns: `GoFunc` (a function with Go-like parameter types, so argument checking and error texts
match Go's), the builtins `and or not eq ne lt le gt ge len index slice print printf println
html js urlquery call` with Go's comparison rules and error texts, and `as_go_func`, which
turns a plain Python callable into a template function.
Does not own: the short-circuiting of `and`/`or` and the dispatch of `call`, which need the
evaluator (executor), or Ollama's functions (ollama).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, replace
from typing import Any, Callable
from urllib.parse import quote_plus

from ossy.template.errors import GoError
from ossy.template.gofmt import sprint, sprintf, sprintln
from ossy.template.values import (
    INVALID,
    GoSlice,
    Iface,
    NilPointer,
    Struct,
    Uint8,
    element,
    is_nil_slice_or_map,
    is_true,
    kind,
    map_zero,
    type_name,
)


@dataclass(frozen=True)
class GoFunc:
    """A template function: `fn` takes `params` and then any number of `variadic` arguments.

    Parameter types: "value" is Go's reflect.Value (the builtins see values as they are, nil
    and all), "any" is interface{} (the function sees the dynamic value, None for nil), "string"
    is a Go string (anything else is a type error before the call, worded as Go words it).
    """

    fn: Callable[..., Any]
    params: tuple[str, ...] = ()
    variadic: str | None = None
    builtin: bool = False


def as_go_func(fn: Any) -> GoFunc:
    """A GoFunc for a Python callable; its parameters are interface{} (or ...interface{})."""
    if isinstance(fn, GoFunc):
        return fn
    if not callable(fn):
        raise TypeError(f"template function {fn!r} is not callable")
    fixed, variadic = 0, None
    for param in inspect.signature(fn).parameters.values():
        if param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD) and \
                param.default is param.empty:
            fixed += 1
        elif param.kind == param.VAR_POSITIONAL:
            variadic = "any"
    return GoFunc(fn, ("any",) * fixed, variadic)


# ---------------------------------------------------------------------------- value helpers


def indirect_interface(value: Any) -> Any:
    """Go's indirectInterface: the concrete value in an interface, INVALID for a nil one."""
    if isinstance(value, Iface):
        value = value.value
    return INVALID if value is None else value


def indirect(value: Any) -> tuple[Any, bool]:
    """Go's indirect: follow interfaces and pointers; (value, True) if a nil is reached."""
    if isinstance(value, Iface):
        value = value.value
    if value is None or isinstance(value, NilPointer):
        return value, True
    if isinstance(value, Struct) and value.pointer:
        return replace(value, pointer=False), False
    return value, False


def _utf8(s: str) -> bytes:
    return s.encode("utf-8", "surrogateescape")


def _is_nil(value: Any) -> bool:
    if value is INVALID or value is None or isinstance(value, NilPointer):
        return True
    return is_nil_slice_or_map(value)


# ------------------------------------------------------------------------- len index slice


def _len(item: Any) -> int:
    item, is_nil = indirect(item)
    if is_nil:
        raise GoError("len of nil pointer")
    if item is INVALID:
        raise GoError("reflect: call of reflect.Value.Type on zero Value")
    k = kind(item)
    if k == "string":
        return len(_utf8(item))
    if k in ("slice", "map"):
        return len(item)
    raise GoError(f"len of type {type_name(item)}")


def _index_arg(index: Any, cap: int) -> int:
    k = kind(index)
    if k in ("int", "uint"):
        x = int(index)
    elif k == "invalid":
        raise GoError("cannot index slice/array with nil")
    else:
        raise GoError(f"cannot index slice/array with type {_static_type(index)}")
    if x < 0 or x > cap:
        raise GoError(f"index out of range: {x}")
    return x


def _static_type(value: Any) -> str:
    return "interface {}" if isinstance(value, Iface) or value is None else type_name(value)


def _index(item: Any, *indexes: Any) -> Any:
    item = indirect_interface(item)
    if item is INVALID:
        raise GoError("index of untyped nil")
    for index in indexes:
        index = indirect_interface(index)
        item, is_nil = indirect(item)
        if is_nil:
            raise GoError("index of nil pointer")
        k = kind(item)
        if k == "string":
            data = _utf8(item)
            x = _index_arg(index, len(data))
            if x == len(data):
                raise GoError("reflect: string index out of range")
            item = Uint8(data[x])
        elif k == "slice":
            x = _index_arg(index, len(item))
            if x == len(item):
                raise GoError("reflect: slice index out of range")
            item = element(item, item[x])
        elif k == "map":
            if index is INVALID:
                raise GoError("value is nil; should be of type string")
            if not isinstance(index, str):
                raise GoError(f"value has type {type_name(index)}; should be string")
            item = element(item, item[index]) if index in item else map_zero(item)
        else:
            raise GoError(f"can't index item of type {type_name(item)}")
    return item


def _slice(item: Any, *indexes: Any) -> Any:
    item = indirect_interface(item)
    if item is INVALID:
        raise GoError("slice of untyped nil")
    item, is_nil = indirect(item)
    if is_nil:
        raise GoError("slice of nil pointer")
    if len(indexes) > 3:
        raise GoError(f"too many slice indexes: {len(indexes)}")
    k = kind(item)
    if k == "string":
        if len(indexes) == 3:
            raise GoError("cannot 3-index slice a string")
        cap = len(_utf8(item))
    elif k == "slice":
        cap = len(item)
    else:
        raise GoError(f"can't slice item of type {type_name(item)}")
    idx = [0, cap, cap]
    for i, index in enumerate(indexes):
        idx[i] = _index_arg(index, cap)
    if idx[0] > idx[1]:
        raise GoError(f"invalid slice index: {idx[0]} > {idx[1]}")
    if len(indexes) == 3 and idx[1] > idx[2]:
        raise GoError(f"invalid slice index: {idx[1]} > {idx[2]}")
    if k == "string":
        return _utf8(item)[idx[0]:idx[1]].decode("utf-8", "surrogateescape")
    part = item[idx[0]:idx[1]]
    if isinstance(item, GoSlice):
        return GoSlice(part, type_name=item.type_name, elem_iface=item.elem_iface,
                       methods=item.methods, marshal=item.marshal)
    return part


# ------------------------------------------------------------------------------ comparison

_BASIC = ("bool", "int", "uint", "float", "complex", "string")


def _basic_kind(value: Any) -> str | None:
    k = kind(value)
    return k if k in _BASIC else None


def _comparable(value: Any) -> bool:
    return kind(value) in _BASIC + ("ptr", "invalid")


def _eq(arg1: Any, *arg2: Any) -> bool:
    arg1 = indirect_interface(arg1)
    if not arg2:
        raise GoError("missing argument for comparison")
    k1 = _basic_kind(arg1)
    for arg in arg2:
        arg = indirect_interface(arg)
        k2 = _basic_kind(arg)
        if k1 != k2:
            if k1 == "int" and k2 == "uint" or k1 == "uint" and k2 == "int":
                truth = int(arg1) == int(arg)
            elif arg1 is not INVALID and arg is not INVALID:
                raise GoError("incompatible types for comparison: "
                              f"{type_name(arg1)} and {type_name(arg)}")
            else:
                truth = False
        elif k1 is not None:
            truth = arg1 == arg
        else:
            if kind(arg1) != kind(arg) and arg1 is not INVALID and arg is not INVALID:
                raise GoError(f"non-comparable types {sprintf('%s', [arg1])}: {type_name(arg1)}, "
                              f"{type_name(arg)}: {sprintf('%v', [arg])}")
            if _is_nil(arg1) or _is_nil(arg):
                truth = _is_nil(arg) == _is_nil(arg1)
            elif not _comparable(arg):
                raise GoError(f"non-comparable type {sprintf('%s', [arg])}: {type_name(arg)}")
            else:
                truth = arg1 is arg
        if truth:
            return True
    return False


def _ne(arg1: Any, arg2: Any) -> bool:
    return not _eq(arg1, arg2)


def _lt(arg1: Any, arg2: Any) -> bool:
    arg1, arg2 = indirect_interface(arg1), indirect_interface(arg2)
    k1, k2 = _basic_kind(arg1), _basic_kind(arg2)
    if k1 is None or k2 is None:
        raise GoError("invalid type for comparison")
    if k1 != k2:
        if k1 == "int" and k2 == "uint" or k1 == "uint" and k2 == "int":
            return int(arg1) < int(arg2)
        raise GoError(f"incompatible types for comparison: {type_name(arg1)} and {type_name(arg2)}")
    if k1 in ("bool", "complex"):
        raise GoError("invalid type for comparison")
    return arg1 < arg2


def _le(arg1: Any, arg2: Any) -> bool:
    return _lt(arg1, arg2) or _eq(arg1, arg2)


def _gt(arg1: Any, arg2: Any) -> bool:
    return not _le(arg1, arg2)


def _ge(arg1: Any, arg2: Any) -> bool:
    return not _lt(arg1, arg2)


def _not(arg: Any) -> bool:
    return not is_true(indirect_interface(arg))


# -------------------------------------------------------------------------------- escapers


def _printable(arg: Any) -> Any:
    """Go's printableValue for one escaper argument: nil prints as <no value>."""
    if arg is None:
        return "<no value>"
    return indirect(arg)[0] if isinstance(arg, Struct) else arg


def _eval_args(args: tuple) -> str:
    if len(args) == 1 and isinstance(args[0], str):
        return args[0]
    return sprint([_printable(arg) for arg in args])


def html_escape(s: str) -> str:
    table = {"\0": "\ufffd", '"': "&#34;", "'": "&#39;", "&": "&amp;", "<": "&lt;", ">": "&gt;"}
    return "".join(table.get(ch, ch) for ch in s)


def js_escape(s: str) -> str:
    table = {"\\": "\\\\", "'": "\\'", '"': '\\"', "<": "\\u003C", ">": "\\u003E",
             "&": "\\u0026", "=": "\\u003D"}
    out = []
    for ch in s:
        if ch in table:
            out.append(table[ch])
        elif ch < " ":
            out.append(f"\\u00{ord(ch):02X}")
        elif ch >= "\x80" and not ch.isprintable():
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return "".join(out)


def _html(*args: Any) -> str:
    return html_escape(_eval_args(args))


def _js(*args: Any) -> str:
    return js_escape(_eval_args(args))


def _urlquery(*args: Any) -> str:
    return quote_plus(_eval_args(args), safe="", errors="surrogateescape")


def _unreachable(*_args: Any) -> Any:
    raise AssertionError("handled by the executor")


BUILTINS: dict[str, GoFunc] = {
    "and": GoFunc(_unreachable, ("value",), "value", builtin=True),
    "call": GoFunc(_unreachable, ("value",), "value", builtin=True),
    "html": GoFunc(_html, (), "any", builtin=True),
    "index": GoFunc(_index, ("value",), "value", builtin=True),
    "slice": GoFunc(_slice, ("value",), "value", builtin=True),
    "js": GoFunc(_js, (), "any", builtin=True),
    "len": GoFunc(_len, ("value",), builtin=True),
    "not": GoFunc(_not, ("value",), builtin=True),
    "or": GoFunc(_unreachable, ("value",), "value", builtin=True),
    "print": GoFunc(lambda *a: sprint(list(a)), (), "any", builtin=True),
    "printf": GoFunc(lambda f, *a: sprintf(f, list(a)), ("string",), "any", builtin=True),
    "println": GoFunc(lambda *a: sprintln(list(a)), (), "any", builtin=True),
    "urlquery": GoFunc(_urlquery, (), "any", builtin=True),
    "eq": GoFunc(_eq, ("value",), "value", builtin=True),
    "ge": GoFunc(_ge, ("value", "value"), builtin=True),
    "gt": GoFunc(_gt, ("value", "value"), builtin=True),
    "le": GoFunc(_le, ("value", "value"), builtin=True),
    "lt": GoFunc(_lt, ("value", "value"), builtin=True),
    "ne": GoFunc(_ne, ("value", "value"), builtin=True),
}


def call_value(name: str, fn: Any, args: list) -> Any:
    """Go's `call` builtin: call a function value found in the data."""
    fn = indirect_interface(fn)
    if fn is INVALID:
        raise GoError("call of nil")
    if kind(fn) != "func":
        raise GoError(f"non-function {name} of type {type_name(fn)}")
    go = as_go_func(fn)
    want = len(go.params)
    if go.variadic is None and len(args) != want:
        raise GoError(f"wrong number of args for {name}: got {len(args)} want {want}")
    if go.variadic is not None and len(args) < want:
        raise GoError(f"wrong number of args for {name}: got {len(args)} want at least {want}")
    values = [indirect_interface(arg) for arg in args]
    return go.fn(*(None if value is INVALID else value for value in values))
