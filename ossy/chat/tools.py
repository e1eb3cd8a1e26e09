"""The function tools a request offers: checking them, and which names the model may then call.

Owns: `check_tools` (every endpoint's tools go through it: `{"type": "function", "function":
{"name", "description"?, "parameters"?}}`, a non-empty string name, and `parameters` that is a
valid JSON Schema object, checked against its metaschema) and `offered` (the names a call may
use: a tool's name as given; the model writes `functions.NAME`, which the harmony parser already
strips, and built-ins keep their namespace, `browser.search`, `python`).
Does not own: rendering tools into a prompt (`ossy.harmony`, `ossy.template`) or what happens
to a call of a tool that was not offered (`ossy.chat.turn`: returned as content with an
`unexpected_tool_call` warning; the agent loop answers it with the executor's "unknown tool").
"""

from __future__ import annotations

from ossy.chat.options import RequestError, check_schema

SHAPE = '{"type": "function", "function": {"name": ..., "parameters": {JSON Schema}}}'


def check_tools(tools, param: str = "tools") -> list[dict] | None:
    """`tools` if every one is a well-formed function tool (None for none), else a 400 naming it."""
    if not tools:
        return None
    if not isinstance(tools, list):
        raise RequestError(f"{param} must be a list of function tools", param=param)
    for i, tool in enumerate(tools):
        where = f"{param}.{i}"
        if not isinstance(tool, dict) or tool.get("type", "function") != "function":
            raise RequestError(f"{where}: only function tools are supported: {SHAPE}", param=where)
        fn = tool.get("function")
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"].strip():
            raise RequestError(f"{where}: a function tool needs a name: {SHAPE}", param=f"{where}.function.name")
        if fn.get("parameters") is not None:
            check_schema(fn["parameters"], f"{where}.function.parameters")
    return tools


def offered(tools: list[dict] | None) -> set[str]:
    """The names of the offered tools, as a call must name one."""
    return {tool["function"]["name"].strip() for tool in tools or []}
