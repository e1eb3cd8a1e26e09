"""Harmony's `# Tools` section: tool namespaces with functions written as TypeScript-like types.

Owns: the JSON Schema -> TypeScript conversion, the namespace/function layout, and the built-in
`browser` and `python` namespaces, all reproducing openai-harmony 0.0.8 (`src/encoding.rs`
`json_schema_to_typescript` / `template_tools_section`, `src/chat.rs`) character for character,
quirks included: the odd indentation of nested objects, object descriptions printed twice,
property descriptions not split into lines, enums only for `type: string`, defaults printed as
JSON the way Rust's serde_json prints them. Does not own: where the section goes (the system
message for built-ins, the developer message for functions: `ossy.harmony.render`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Function:
    name: str
    description: str = ""
    parameters: object = None  # a JSON Schema (dict), or None for `() => any`


@dataclass(frozen=True)
class Namespace:
    name: str
    description: str | None = None
    functions: tuple[Function, ...] = ()


def tools_section(namespaces: list[Namespace]) -> str:
    """`# Tools` followed by one `## name` block per namespace, in the given order."""
    return "\n\n".join(["# Tools", *(_namespace_block(ns) for ns in namespaces)])


def _namespace_block(ns: Namespace) -> str:
    lines = [f"## {ns.name}\n"]
    prefix = "// " if ns.functions else ""
    lines += [prefix + line for line in rust_lines(ns.description or "")]
    if ns.functions:
        lines.append(f"namespace {ns.name} {{\n")
        for fn in ns.functions:
            lines += [f"// {line}" for line in rust_lines(fn.description)]
            signature = "()" if fn.parameters is None else f"(_: {to_typescript(fn.parameters, '')})"
            lines.append(f"type {fn.name} = {signature} => any;\n")
        lines.append(f"}} // namespace {ns.name}")
    return "\n".join(lines)


def rust_lines(text: str) -> list[str]:
    """Rust's `str::lines()`: split at "\n" or "\r\n"; no empty last line; a "\r" at the very
    end (not followed by "\n") stays."""
    *ended, last = text.split("\n")
    return [line.removesuffix("\r") for line in ended] + ([last] if last else [])


def to_typescript(schema, indent: str) -> str:
    """The TypeScript-like type of a JSON Schema, as harmony writes it."""
    if not isinstance(schema, dict):
        return "any"
    if isinstance(schema.get("oneOf"), list):
        variants = schema["oneOf"]
        return "".join(f"\n{indent} | " + _variant(v, indent, _trailing_comments(v, None, raw_enum=False)) for v in variants)
    kind = schema.get("type")
    if isinstance(kind, list):
        names = ["number" if k == "integer" else k for k in kind if isinstance(k, str)]
        if names:
            return " | ".join(names)
    if kind == "object":
        return _object(schema, indent)
    if kind == "string":
        values = schema["enum"] if isinstance(schema.get("enum"), list) else []
        return " | ".join(f'"{v}"' for v in values if isinstance(v, str)) or "string"
    if kind in ("number", "integer"):
        return "number"
    if kind == "boolean":
        return "boolean"
    if kind == "array":
        return f"{to_typescript(schema['items'], indent)}[]" if "items" in schema else "Array<any>"
    return "any"


def _object(schema: dict, indent: str) -> str:
    out = f"{indent}// {schema['description']}\n" if isinstance(schema.get("description"), str) else ""
    out += "{\n"
    properties = schema.get("properties")
    if isinstance(properties, dict):
        required = schema["required"] if isinstance(schema.get("required"), list) else []
        for key, prop in properties.items():
            out += _property(key, prop, key in required, indent)
    return out + f"{indent}}}"


def _property(key: str, prop, required: bool, indent: str) -> str:
    prop = prop if isinstance(prop, dict) else {}
    optional = "" if required else "?"
    one_of = prop.get("oneOf")
    out = ""
    if isinstance(prop.get("title"), str):
        out += f"{indent}// {prop['title']}\n{indent}//\n"
    if one_of is None and isinstance(prop.get("description"), str):
        out += f"{indent}// {prop['description']}\n"
    examples = prop.get("examples")
    if isinstance(examples, list) and examples:
        out += f"{indent}// Examples:\n" + "".join(f'{indent}// - "{ex}"\n' for ex in examples if isinstance(ex, str))
    if isinstance(one_of, list):
        return out + _one_of_property(key + optional, prop, one_of, indent)
    out += f"{indent}{key}{optional}: " + _nullable(prop, to_typescript(prop, indent + "    ")) + ","
    if one_of is None and "default" in prop:
        out += " // " + _default(prop)
    return out + "\n"


def _one_of_property(label: str, prop: dict, variants: list, indent: str) -> str:
    """A property whose schema is a `oneOf`: one `| variant // comments` line per variant."""
    desc = prop.get("description") if isinstance(prop.get("description"), str) else None
    first_desc = variants[0].get("description") if variants and isinstance(variants[0], dict) else None
    desc_above = desc is not None and desc != first_desc
    out = f"{indent}// {desc}\n" if desc_above else ""
    if "default" in prop:
        out += f"{indent}// {_default(prop)}\n"
    out += f"{indent}{label}:\n"
    for i, variant in enumerate(variants):
        skip = desc if not (i == 0 and desc_above) else _ANY_DESCRIPTION
        out += f"{indent} | " + _variant(variant, indent, _trailing_comments(variant, skip, raw_enum=True)) + "\n"
    return out + f"{indent},\n"


_ANY_DESCRIPTION = object()  # marker: leave out the variant's description whatever it is


def _variant(variant, indent: str, comments: list[str]) -> str:
    text = _nullable(variant, to_typescript(variant, indent + "   "))
    return text + (" // " + " ".join(comments) if comments else "")


def _trailing_comments(variant, skip_description, *, raw_enum: bool) -> list[str]:
    """A `oneOf` variant's `// description default: ...` comment (harmony prints an enum variant's
    string default raw inside a property, JSON-quoted in a top-level `oneOf`)."""
    if not isinstance(variant, dict):
        return []
    comments = []
    desc = variant.get("description")
    if isinstance(desc, str) and skip_description is not _ANY_DESCRIPTION and desc != skip_description:
        comments.append(desc)
    if "default" in variant:
        comments.append(_default(variant, raw_enum=raw_enum))
    return comments


def _nullable(schema, text: str) -> str:
    if isinstance(schema, dict) and schema.get("nullable") is True and "null" not in text:
        return f"{text} | null"
    return text


def _default(schema: dict, *, raw_enum: bool = True) -> str:
    value = schema["default"]
    if isinstance(value, str) and not _is_enum(schema):
        return f'default: "{value}"'
    if isinstance(value, str) and raw_enum:
        return f"default: {value}"
    return f"default: {serde_json(value)}"


def _is_enum(schema: dict) -> bool:
    return isinstance(schema.get("enum"), list) and bool(schema["enum"])


def serde_json(value) -> str:
    """Compact JSON as Rust's serde_json prints a `Value` (floats in ryu's shortest form)."""
    if isinstance(value, float) or (type(value) is int and not -(2**63) <= value < 2**64):
        return _ryu(float(value))  # serde_json holds integers beyond 64 bits as f64
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k, ensure_ascii=False)}:{serde_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(serde_json(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)


def _ryu(x: float) -> str:
    """ryu's `format_finite` (what serde_json uses): shortest digits, `1e21`, `1e-7`, `1.0`.

    harmony reads the schema with serde_json's default float parser, which is not correctly
    rounded: a default with many digits or an exponent beyond +-22 (1e-23) can print one ulp
    off there, not here."""
    if not math.isfinite(x):
        return "null"  # serde_json cannot hold non-finite numbers
    sign = "-" if math.copysign(1.0, x) < 0 else ""
    digits, exponent = _shortest_digits(abs(x))
    point = len(digits) + exponent  # position of the decimal point in `digits`
    if 0 <= exponent and point <= 16:
        return f"{sign}{digits}{'0' * exponent}.0"
    if 0 < point <= 16:
        return f"{sign}{digits[:point]}.{digits[point:]}"
    if -5 < point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    exp_text = point - 1
    body = digits[0] + (f".{digits[1:]}" if len(digits) > 1 else "")
    return f"{sign}{body}e{exp_text}"


def _shortest_digits(x: float) -> tuple[str, int]:
    """The shortest round-trip decimal digits of `x` and the power of ten of the last one."""
    if x == 0:
        return "0", 0
    mantissa, _, exp = repr(x).partition("e")
    whole, _, frac = mantissa.partition(".")
    digits = (whole + frac).lstrip("0")
    exponent = int(exp or 0) - len(frac)
    stripped = digits.rstrip("0")
    return stripped, exponent + len(digits) - len(stripped)


BROWSER = Namespace(
    "browser",
    "Tool for browsing.\n"
    "The `cursor` appears in brackets before each browsing display: `[{cursor}]`.\n"
    "Cite information from the tool using the following format:\n"
    "`【{cursor}†L{line_start}(-L{line_end})?】`, for example: `【6†L9-L11】` or `【8†L3】`.\n"
    "Do not quote more than 10 words directly from the tool output.\n"
    "sources=web (default: web)",
    (
        Function(
            "search",
            "Searches for information related to `query` and displays `topn` results.",
            {
                "type": "object",
                "properties": {
                    "query": {"type": "string"},
                    "topn": {"type": "number", "default": 10},
                    "source": {"type": "string"},
                },
                "required": ["query"],
            },
        ),
        Function(
            "open",
            "Opens the link `id` from the page indicated by `cursor` starting at line number `loc`, showing `num_lines` lines.\n"
            "Valid link ids are displayed with the formatting: `【{id}†.*】`.\n"
            "If `cursor` is not provided, the most recent page is implied.\n"
            "If `id` is a string, it is treated as a fully qualified URL associated with `source`.\n"
            "If `loc` is not provided, the viewport will be positioned at the beginning of the document or centered on the most relevant passage, if available.\n"
            "Use this function without `id` to scroll to a new location of an opened page.",
            {
                "type": "object",
                "properties": {
                    "id": {"type": ["number", "string"], "default": -1},
                    "cursor": {"type": "number", "default": -1},
                    "loc": {"type": "number", "default": -1},
                    "num_lines": {"type": "number", "default": -1},
                    "view_source": {"type": "boolean", "default": False},
                    "source": {"type": "string"},
                },
            },
        ),
        Function(
            "find",
            "Finds exact matches of `pattern` in the current page, or the page given by `cursor`.",
            {
                "type": "object",
                "properties": {"pattern": {"type": "string"}, "cursor": {"type": "number", "default": -1}},
                "required": ["pattern"],
            },
        ),
    ),
)

PYTHON = Namespace(
    "python",
    "Use this tool to execute Python code in your chain of thought. The code will not be shown to the user. "
    "This tool should be used for internal reasoning, but not for code that is intended to be visible to the user "
    "(e.g. when creating plots, tables, or files).\n\n"
    "When you send a message containing Python code to python, it will be executed in a stateful Jupyter notebook "
    "environment. python will respond with the output of the execution or time out after 120.0 seconds. The drive at "
    "'/mnt/data' can be used to save and persist user files. Internet access for this session is UNKNOWN. "
    "Depends on the cluster.",
)

BUILTIN_NAMESPACES = {"browser": BROWSER, "python": PYTHON}

# The built-in tools by the name a client offers them under ("browser.search", "python") -> namespace.
BUILTIN_TOOLS = {**{f"{ns.name}.{fn.name}": ns.name for ns in BUILTIN_NAMESPACES.values() for fn in ns.functions},
                 **{ns.name: ns.name for ns in BUILTIN_NAMESPACES.values() if not ns.functions}}
CODE_KEY = "code"  # a code call's text where an API's arguments must be an object: {"code": ...} (Ollama's)


def takes_code(name: str) -> bool:
    """Whether a call of the tool `name` carries code, not a JSON object: gpt-oss's built-in
    python tool ("python", or a recipient under it such as "python.exec")."""
    return name.split(".", 1)[0] == PYTHON.name


def arguments_text(name: str, arguments) -> str:
    """A call's arguments as the model writes them: a string as it is; a code call's
    {"code": ...} object (`CODE_KEY`), its code; any other value as JSON."""
    if isinstance(arguments, str):
        return arguments
    if takes_code(name) and isinstance(arguments, dict) and set(arguments) == {CODE_KEY}:
        return str(arguments[CODE_KEY])
    return json.dumps(arguments if arguments is not None else {}, ensure_ascii=False)
