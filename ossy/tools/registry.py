"""The tool catalogue: which tools a conversation has, and what a name the model writes means.

Owns: the built-in toolsets (`TOOLSETS`: name -> the `toolset()` of the module `ossy.tools.<name>`),
`Registry` (the tools of some toolsets, unique by name and alias, with checked schemas; the
toolsets are an argument, the built-in ones by default) and name resolution. Does not own the
tools themselves (the toolset modules), calling them (`ossy.tools.executor`) or rendering them
into a prompt (`ossy.harmony`, `ossy.template`).

Names the model may write for a tool (`Registry.get`), first match wins:
  * the name itself or an alias: "read_file", "list_dir", "browser.open", "python";
  * "functions.NAME": harmony's namespace for function tools ("functions.read_file");
  * "NAMESPACE.NAME" where NAMESPACE is a toolset ("fs.read_file", "shell.grep") or a namespace
    the guides' templates declare (`SEED_NAMESPACES`: "linux.grep", "sys.df",
    "analysis.system_analysis", "tools.read_file"), and NAME is a tool of that toolset.
Anything else ("browser.delete", "container.exec", "functions.nope") is unknown.
"""

from __future__ import annotations

from typing import Callable, Iterable, Iterator, Mapping

import jsonschema

from ossy.errors import OssyError
from ossy.tools import browser, fs, python, shell, system
from ossy.tools.base import Tool

Toolsets = Mapping[str, Callable[[], Iterable[Tool]]]  # toolset name -> its tools

TOOLSETS: Toolsets = {"fs": fs.toolset, "shell": shell.toolset, "system": system.toolset, "python": python.toolset,
                      "browser": browser.toolset}

# Namespaces of the guides' TEMPLATEs -> the toolsets whose tools they may name.
SEED_NAMESPACES = {
    "linux": ("shell",),
    "sys": ("system",),
    "analysis": ("system",),
    "tools": ("fs", "shell"),
    "edit": ("fs",),
    "dev": ("shell",),
}

FUNCTIONS_PREFIX = "functions."


class Registry:
    """An ordered set of tools, looked up by the names the model uses."""

    def __init__(self, tools: Iterable[Tool]) -> None:
        self._tools: dict[str, Tool] = {}
        self._by_name: dict[str, Tool] = {}  # names and aliases
        for tool in tools:
            _check_schema(tool)
            for name in (tool.name, *tool.aliases):
                other = self._by_name.get(name)
                if other is not None:
                    raise OssyError(f'tool name "{name}" is used by both {other.toolset}.{other.name} '
                                    f'and {tool.toolset}.{tool.name}')
                self._by_name[name] = tool
            self._tools[tool.name] = tool

    @classmethod
    def from_toolsets(cls, names: Iterable[str] | str, toolsets: Toolsets = TOOLSETS) -> "Registry":
        """The tools of the named `toolsets` ("all" for every one; a string may list several,
        comma-separated: "fs,shell")."""
        return cls(tool for name in _toolset_names(names, toolsets) for tool in toolsets[name]())

    def get(self, name: str) -> Tool | None:
        """The tool the model means by `name`, or None (see the module docstring)."""
        if not isinstance(name, str):
            return None
        name = name.strip()
        tool = self._by_name.get(name)
        if tool is None and name.startswith(FUNCTIONS_PREFIX):
            name = name[len(FUNCTIONS_PREFIX):]
            tool = self._by_name.get(name)
        return tool or self._namespaced(name)

    def _namespaced(self, name: str) -> Tool | None:
        namespace, dot, rest = name.partition(".")
        toolsets = SEED_NAMESPACES.get(namespace, (namespace,))
        tool = self._by_name.get(rest) if dot else None
        return tool if tool is not None and tool.toolset in toolsets else None

    def openai_tools(self) -> list[dict]:
        """The tools as OpenAI function tools, for a chat request or a prompt."""
        return [tool.openai() for tool in self]

    @property
    def names(self) -> list[str]:
        return list(self._tools)

    def __iter__(self) -> Iterator[Tool]:
        return iter(self._tools.values())

    def __len__(self) -> int:
        return len(self._tools)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None


def _toolset_names(names: Iterable[str] | str, toolsets: Toolsets) -> list[str]:
    items = [names] if isinstance(names, str) else list(names)
    wanted = [part.strip() for item in items for part in str(item).split(",") if part.strip()]
    if "all" in wanted:
        return list(toolsets)
    unknown = [name for name in wanted if name not in toolsets]
    if unknown:
        raise OssyError(f'unknown toolset "{unknown[0]}" (known: {", ".join(toolsets)}, all)')
    return list(dict.fromkeys(wanted))


def _check_schema(tool: Tool) -> None:
    """A tool's parameters must be a valid JSON Schema (2020-12) of an object."""
    try:
        jsonschema.Draft202012Validator.check_schema(tool.parameters)
    except jsonschema.SchemaError as exc:
        raise OssyError(f"tool {tool.name}: invalid parameters schema: {exc.message}") from None
    if tool.parameters.get("type") != "object":
        raise OssyError(f'tool {tool.name}: parameters must be a schema of "type": "object"')
