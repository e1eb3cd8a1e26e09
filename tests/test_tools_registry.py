"""The tool registry: toolsets, unique names, the names the model writes, OpenAI tool dicts.

Also holds `fake_tools()`, small tools with the real tools' names and simple handlers on the
workspace, which the executor and CLI tests use so they do not depend on the real toolsets.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from ossy import harmony
from ossy.errors import OssyError
from ossy.sandbox import SandboxUnavailable
from ossy.tools import Tool, ToolContext, ToolError, ToolResult
from ossy.tools.registry import TOOLSETS, Registry


def schema(properties: dict | None = None, required: tuple[str, ...] = ()) -> dict:
    return {"type": "object", "properties": properties or {}, "required": list(required),
            "additionalProperties": False}


def _read(args: dict, ctx: ToolContext) -> str:
    path = ctx.workspace / args["path"]
    if not path.is_file():
        raise ToolError(f"no such file: {args['path']}")
    return path.read_text()


def _write(args: dict, ctx: ToolContext) -> ToolResult:
    (ctx.workspace / args["path"]).write_text(args["content"])
    return ToolResult(output=f"wrote {len(args['content'])} characters to {args['path']}")


def _preview_write(args: dict, ctx: ToolContext) -> str:
    if ".." in Path(args["path"]).parts:
        raise ToolError(f"{args['path']} is outside the workspace")
    return f"would write {len(args['content'])} characters to {args['path']}"


def _delete(args: dict, ctx: ToolContext) -> str:
    (ctx.workspace / args["path"]).unlink()
    return f"deleted {args['path']}"


def _slow(args: dict, ctx: ToolContext) -> str:
    time.sleep(args["seconds"])
    return "done"


def _boom(args: dict, ctx: ToolContext) -> str:
    raise {"tool": ToolError("the tool said no"), "sandbox": SandboxUnavailable("bubblewrap is missing"),
           "bug": ZeroDivisionError("division by zero\nsecond line")}[args["kind"]]


def fake_tools() -> list[Tool]:
    path = {"path": {"type": "string"}}
    return [
        Tool("read_file", "fs", "Read a file.\nMore text.",
             schema({**path, "max_size": {"type": "integer"}}, ("path",)), _read),
        Tool("write_file", "fs", "Write a file.", schema({**path, "content": {"type": "string"}}, ("path", "content")),
             _write, destructive=True, preview=_preview_write, approval_scope="session"),
        Tool("delete_file", "fs", "Delete a file.", schema(path, ("path",)), _delete, destructive=True),
        Tool("list_directory", "fs", "List a directory.", schema({**path, "recursive": {"type": "boolean"}}),
             lambda a, c: "\n".join(sorted(p.name for p in c.workspace.iterdir())), aliases=("list_dir",)),
        Tool("grep", "shell", "Search text.", schema({"pattern": {"type": "string"}, "file": {"type": "string"}},
                                                      ("pattern",)), lambda a, c: f"grep {a['pattern']}"),
        Tool("echo", "shell", "Echo text.", schema({"text": {"type": "string"}, "times": {"type": "integer"}},
                                                    ("text",)), lambda a, c: a["text"] * a.get("times", 1)),
        Tool("slow", "shell", "Sleep.", schema({"seconds": {"type": "number"}}, ("seconds",)), _slow),
        Tool("boom", "shell", "Fail.", schema({"kind": {"type": "string"}}, ("kind",)), _boom),
        Tool("bad_return", "shell", "Return a number.", schema(), lambda a, c: 42),
        Tool("df", "system", "Disk usage.", schema(path), lambda a, c: "Filesystem Size"),
        Tool("system_analysis", "system", "Analyse the system.",
             schema({"components": {"type": "array", "items": {"enum": ["cpu", "memory"]}}}), lambda a, c: "cpu ok"),
        Tool("python", "python", "Run Python.", schema({"code": {"type": "string"}}, ("code",)),
             lambda a, c: f"ran {a['code']!r}", destructive=True, raw_payload=True, approval_scope="session"),
        Tool("browser.open", "browser", "Open a page.", schema({"id": {"type": ["string", "integer"]}}),
             lambda a, c: "L0: page"),
    ]


@pytest.fixture
def registry() -> Registry:
    return Registry(fake_tools())


@pytest.mark.parametrize("name, expected", [
    ("read_file", "read_file"), ("list_dir", "list_directory"), ("browser.open", "browser.open"),
    ("functions.read_file", "read_file"), ("functions.list_dir", "list_directory"),
    ("functions.python", "python"), ("fs.read_file", "read_file"), ("fs.list_dir", "list_directory"),
    ("linux.grep", "grep"), ("shell.grep", "grep"), ("sys.df", "df"), ("system.df", "df"),
    ("analysis.system_analysis", "system_analysis"), ("tools.read_file", "read_file"),
    (" functions.read_file ", "read_file"),
])
def test_names_the_model_writes_resolve(registry, name, expected):
    assert registry.get(name).name == expected
    assert name in registry


@pytest.mark.parametrize("name", ["browser.delete", "container.exec", "functions.nope", "nope", "",
                                  "linux.read_file", "sys.grep", "fs.df", "os.read_file", "browser.grep",
                                  "functions.", "read_file.x", None, 3])
def test_unknown_names_resolve_to_nothing(registry, name):
    assert registry.get(name) is None
    assert name not in registry


def test_names_iteration_and_length(registry):
    assert registry.names[:2] == ["read_file", "write_file"]
    assert [tool.name for tool in registry] == registry.names
    assert len(registry) == len(fake_tools())


def test_duplicate_names_or_aliases_are_refused():
    tool = fake_tools()[0]
    with pytest.raises(OssyError, match='"read_file" is used by both fs.read_file and shell.read_file'):
        Registry([tool, Tool("read_file", "shell", "again", schema(), lambda a, c: "")])
    with pytest.raises(OssyError, match='"list_dir"'):
        Registry(fake_tools() + [Tool("list_dir", "shell", "clash", schema(), lambda a, c: "")])


def test_bad_schemas_are_refused():
    with pytest.raises(OssyError, match="invalid parameters schema"):
        Registry([Tool("x", "fs", "", {"type": "object", "properties": {"a": {"type": "nonsense"}}}, _read)])
    with pytest.raises(OssyError, match='"type": "object"'):
        Registry([Tool("x", "fs", "", {"type": "string"}, _read)])


@pytest.fixture
def toolsets():
    """Two fake toolsets, "alpha" and "beta"."""
    tools = fake_tools()
    members = {"alpha": [t for t in tools if t.toolset == "fs"], "beta": [t for t in tools if t.toolset == "shell"]}
    return {name: (lambda tools=tools: list(tools)) for name, tools in members.items()}


def test_from_toolsets(toolsets):
    alpha, beta = toolsets["alpha"](), toolsets["beta"]()
    assert Registry.from_toolsets(["alpha"], toolsets).names == [t.name for t in alpha]
    assert Registry.from_toolsets("beta, alpha", toolsets).names == [t.name for t in beta + alpha]
    assert len(Registry.from_toolsets(["all"], toolsets)) == len(alpha) + len(beta)
    assert len(Registry.from_toolsets(["alpha", "alpha"], toolsets)) == len(alpha)


def test_unknown_toolset_lists_the_known_ones(toolsets):
    with pytest.raises(OssyError, match=r'unknown toolset "gamma" \(known: alpha, beta, all\)'):
        Registry.from_toolsets(["alpha", "gamma"], toolsets)


def test_the_built_in_toolsets():
    assert set(TOOLSETS) == {"fs", "shell", "system", "python", "browser"}
    for name in TOOLSETS:
        assert {tool.toolset for tool in Registry.from_toolsets(name)} == {name}


def test_openai_tools_render_in_harmony(registry):
    from ossy.harmony.typescript import BUILTIN_TOOLS

    tools = registry.openai_tools()
    assert tools[0] == {"type": "function", "function": {"name": "read_file", "description": "Read a file.\nMore text.",
                                                         "parameters": fake_tools()[0].parameters}}
    functions = [t for t in tools if t["function"]["name"] not in BUILTIN_TOOLS]
    assert len(functions) == len(tools) - 2  # python and browser.open render as harmony's built-ins
    messages = harmony.conversation([{"role": "user", "content": "hi"}], tools=functions,
                                    builtin_tools=("browser", "python"))
    developer = next(m.content for m in messages if m.author == "developer")
    assert "namespace functions {" in developer
    assert "type read_file = (_: {\npath: string,\nmax_size?: number,\n}) => any;" in developer
    assert "type list_directory" in developer and "type system_analysis" in developer
