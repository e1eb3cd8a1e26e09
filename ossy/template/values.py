"""Go values as the template engine sees them, built from plain Python data.

Owns: the mapping between Python values and the Go values text/template reasons about (their
kinds, type names, truth, zero values and nil-ness), and the few wrapper types needed where
plain Python data cannot say what Go would know:

    dict            map[string]interface {}     (GoMap: a named or typed map)
    list, tuple     []interface {}              (GoSlice: a named or typed slice)
    str int float bool complex                  string int float64 bool complex128
    None            a nil interface value
    INVALID         Go's invalid reflect.Value (a missing key; prints "<no value>")
    Struct          a Go struct (pointer=True: a pointer to one)
    Iface(v)        v as read from an interface-typed slot (map[string]any value, []any element)
    Uint8           a byte, as `index` yields for a string
    callable        a func

Does not own: formatting (gofmt), JSON (gojson), or evaluation (executor).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable


class _Invalid:
    """Go's zero reflect.Value: what a missing map key or an unset interface becomes."""

    def __repr__(self) -> str:
        return "INVALID"


INVALID = _Invalid()


class Uint8(int):
    """A Go byte (uint8)."""


@dataclass(frozen=True)
class Iface:
    """A value read from an interface-typed slot; Go names its static type `interface {}`."""

    value: Any


class GoSlice(list):
    """A slice with a Go type name other than []interface {}, methods, or nil-ness."""

    def __init__(self, items=(), *, type_name: str, elem_iface: bool = False, nil: bool = False,
                 methods: dict[str, Callable] | None = None, marshal: Callable | None = None):
        super().__init__(items)
        self.type_name = type_name
        self.elem_iface = elem_iface
        self.nil = nil and not self
        self.methods = methods or {}
        self.marshal = marshal


class GoMap(dict):
    """A string-keyed map with a Go type name, methods, a typed element zero, or nil-ness."""

    def __init__(self, items=(), *, type_name: str, elem_iface: bool = True, nil: bool = False,
                 zero: Callable[[], Any] | None = None, methods: dict[str, Callable] | None = None):
        super().__init__(items)
        self.type_name = type_name
        self.elem_iface = elem_iface
        self.nil = nil and not self
        self.zero = zero
        self.methods = methods or {}


@dataclass(eq=False)
class Struct:
    """A Go struct value, or a non-nil pointer to one (`pointer=True`).

    `fields` are the exported fields in declaration order; `iface_fields` names those declared
    with an interface type. `json` lists (field, json name, omitempty) as the struct's tags say
    (None: field names, no omitempty). `marshal` replaces json encoding entirely; `opaque`
    marks a struct whose only fields are unexported pointers, so Go would print an address.
    """

    type_name: str
    fields: dict[str, Any]
    iface_fields: frozenset[str] = frozenset()
    pointer: bool = False
    methods: dict[str, Callable] = field(default_factory=dict)
    json: tuple[tuple[str, str, bool], ...] | None = None
    marshal: Callable | None = None
    opaque: bool = False

    @property
    def go_type(self) -> str:
        return ("*" if self.pointer else "") + self.type_name


@dataclass(frozen=True)
class NilPointer:
    """A typed nil pointer, such as an absent *api.ToolPropertiesMap."""

    type_name: str


def unwrap(value: Any) -> Any:
    """The dynamic value inside an interface slot (Go's indirectInterface, nil staying None)."""
    return value.value if isinstance(value, Iface) else value


def is_nil_slice_or_map(value: Any) -> bool:
    return isinstance(value, (GoSlice, GoMap)) and value.nil


def kind(value: Any) -> str:
    """Go's reflect.Kind of a value, as one of a few names."""
    if value is INVALID:
        return "invalid"
    if isinstance(value, Iface) or value is None:
        return "interface"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, Uint8):
        return "uint"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, complex):
        return "complex"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "slice"
    if isinstance(value, dict):
        return "map"
    if isinstance(value, Struct):
        return "ptr" if value.pointer else "struct"
    if isinstance(value, NilPointer):
        return "ptr"
    if callable(value):
        return "func"
    raise TypeError(f"ossy.template cannot use a Python {type(value).__name__} as template data")


def type_name(value: Any) -> str:
    """Go's reflect.Type.String() for the dynamic type of a (non-nil) value."""
    value = unwrap(value)
    if isinstance(value, (GoSlice, GoMap, NilPointer)):
        return value.type_name
    if isinstance(value, Struct):
        return value.go_type
    return {
        "bool": "bool",
        "uint": "uint8",
        "int": "int",
        "float": "float64",
        "complex": "complex128",
        "string": "string",
        "slice": "[]interface {}",
        "map": "map[string]interface {}",
        "func": "func(...interface {}) interface {}",
    }[kind(value)]


def map_zero(container: Any) -> Any:
    """The zero value of a map's element type (Go's reflect.Zero(elem))."""
    if isinstance(container, GoMap) and container.zero is not None:
        return container.zero()
    return Iface(None)


def element(container: Any, value: Any) -> Any:
    """An element as read out of a container, marked if the slot is interface-typed."""
    is_iface = container.elem_iface if isinstance(container, (GoSlice, GoMap)) else True
    return Iface(value) if is_iface else value


def struct_field(struct: Struct, name: str) -> Any:
    value = struct.fields[name]
    return Iface(value) if name in struct.iface_fields else value


def methods(value: Any) -> dict[str, Callable]:
    if isinstance(value, (GoSlice, GoMap, Struct)):
        return value.methods
    return {}


def is_true(value: Any) -> bool:
    """Go's template truth: false for zero values, nil and empty collections."""
    value = unwrap(value)
    k = kind(value)
    if k in ("invalid", "interface"):
        return False
    if k in ("slice", "map"):
        return len(value) > 0
    if k == "string":
        return value != ""
    if k in ("bool", "int", "uint", "float", "complex"):
        return value != 0
    if isinstance(value, NilPointer):
        return False
    return True
