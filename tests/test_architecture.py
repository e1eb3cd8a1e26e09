"""The house rules of docs/architecture.md, checked on the source: a violation fails and names the
module, the line and the import or call.

- the layers and the forbidden imports: import-linter's contracts in pyproject.toml (imports
  inside functions included);
- no import cycles anywhere, between any two modules (grimp's graph, imports inside functions
  included);
- only `ossy.config` reads the environment; only the entry points (`ossy.cli`, `ossy.client`,
  `ossy.server`'s app factory) read the settings, and hand them down;
- only `ossy.sandbox` starts processes;
- an import inside a function says why (`# lazy: ...` on its line or the line above);
- a private name (`_x`) is used only in its own module;
- every module starts with a docstring;
- `ossy --help` and the engine protocol load neither torch nor the web framework.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import grimp
import pytest
from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "ossy"
ENTRY_POINTS = ("ossy.cli", "ossy.client", "ossy.server")  # where settings() may be called
ENVIRONMENT = ("environ", "environb", "getenv", "putenv", "unsetenv")  # os's names for the environment
PROCESS_CALLS = {("os", name) for name in ("system", "popen", "fork", "forkpty", "execv", "execve", "execvp",
                                           "execvpe", "execl", "execle", "execlp", "execlpe", "spawnv", "spawnve",
                                           "spawnvp", "spawnvpe", "spawnl", "spawnle", "posix_spawn", "posix_spawnp")}
PROCESS_CALLS |= {("asyncio", "create_subprocess_exec"), ("asyncio", "create_subprocess_shell"), ("pty", "spawn")}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
TREES = {name: ast.parse(path.read_text(), str(path)) for name, path in MODULES.items()}


def where(name: str, node: ast.AST) -> str:
    return f"{MODULES[name].relative_to(ROOT)}:{node.lineno}"


def inside(name: str, *packages: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


def test_import_linter_contracts_are_kept(capsys):
    code = lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True)
    assert code == 0, capsys.readouterr().out


def test_no_import_cycles():
    graph = grimp.build_graph("ossy", cache_dir=None)
    cycles = strongly_connected(graph)
    assert not cycles, "import cycles:\n" + "\n".join(
        " -> ".join(sorted(cycle)) + "\n  " + "\n  ".join(
            f"{d['importer']}:{d['line_number']} {d['line_contents']}"
            for a in cycle for b in graph.find_modules_directly_imported_by(a) if b in cycle
            for d in graph.get_import_details(importer=a, imported=b))
        for cycle in cycles)


def strongly_connected(graph) -> list[set[str]]:
    """Tarjan's algorithm over the module graph: the components of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[set[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for other in graph.find_modules_directly_imported_by(module):
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            component = set()
            while True:
                member = stack.pop()
                component.add(member)
                if member == module:
                    break
            if len(component) > 1:
                found.append(component)

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return found


def test_only_config_reads_the_environment():
    found = []
    for name, tree in TREES.items():
        if name == "ossy.config":
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in ENVIRONMENT \
                    and isinstance(node.value, ast.Name) and node.value.id == "os":
                found.append(f"{where(name, node)} os.{node.attr}")
            if isinstance(node, ast.ImportFrom) and node.module == "os" and {a.name for a in node.names} & set(ENVIRONMENT):
                found.append(f"{where(name, node)} from os import ...")
    assert not found, "the environment is read outside ossy.config:\n" + "\n".join(found)


def test_only_the_entry_points_read_the_settings():
    found = [f"{where(name, node)} imports ossy.config.settings"
             for name, tree in TREES.items() if not inside(name, "ossy.config", *ENTRY_POINTS)
             for node in ast.walk(tree)
             if isinstance(node, ast.ImportFrom) and node.module == "ossy.config"
             and any(a.name == "settings" for a in node.names)]
    assert not found, "settings read below the entry points (hand them down instead):\n" + "\n".join(found)


def test_only_the_sandbox_starts_processes():
    found = []
    for name, tree in TREES.items():
        if inside(name, "ossy.sandbox"):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                    and (node.value.id, node.attr) in PROCESS_CALLS:
                found.append(f"{where(name, node)} {node.value.id}.{node.attr}")
            if isinstance(node, ast.ImportFrom) and any((node.module, a.name) in PROCESS_CALLS for a in node.names):
                found.append(f"{where(name, node)} from {node.module} import ...")
    assert not found, "processes started outside ossy.sandbox:\n" + "\n".join(found)


def test_imports_inside_functions_say_why():
    found = []
    for name, tree in TREES.items():
        lines = MODULES[name].read_text().splitlines()
        for function in ast.walk(tree):
            if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(function):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    said = lines[node.lineno - 1] + (lines[node.lineno - 2] if node.lineno > 1 else "")
                    if "# lazy:" not in said:
                        found.append(f"{where(name, node)} {ast.unparse(node)}")
    assert not found, "imports inside functions without a `# lazy: why` comment:\n" + "\n".join(sorted(set(found)))


def test_private_names_stay_in_their_module():
    found = []
    for name, tree in TREES.items():
        modules = {}  # local name -> an ossy module it stands for
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ossy"):
                for alias in node.names:
                    if alias.name.startswith("_") and not alias.name.startswith("__"):
                        found.append(f"{where(name, node)} imports {node.module}.{alias.name}")
                    elif f"{node.module}.{alias.name}" in MODULES:
                        modules[alias.asname or alias.name] = f"{node.module}.{alias.name}"
            elif isinstance(node, ast.Import):
                modules.update({a.asname: a.name for a in node.names if a.asname and a.name.startswith("ossy")})
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules \
                    and node.attr.startswith("_") and not node.attr.startswith("__"):
                found.append(f"{where(name, node)} uses {modules[node.value.id]}.{node.attr}")
    assert not found, "private names used outside their module:\n" + "\n".join(found)


def test_every_module_starts_with_a_docstring():
    missing = [str(MODULES[name].relative_to(ROOT)) for name, tree in TREES.items() if not ast.get_docstring(tree)]
    assert not missing, "modules without a docstring saying what they own:\n" + "\n".join(missing)


@pytest.mark.parametrize("code,heavy", [
    ("from ossy.cli.main import build_parser; build_parser()", ("torch", "fastapi", "uvicorn")),
    ("import ossy.engine.protocol, ossy.model.interface, ossy.client", ("torch", "fastapi")),
])
def test_light_paths_stay_light(code, heavy):
    """What `ossy --help`, a client or the engine protocol loads: the lazy imports are there for this."""
    check = f"import sys; {code}; print(' '.join(m for m in {heavy!r} if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True).stdout.split()
    assert loaded == [], f"{code!r} loads {loaded}"


def test_the_checks_catch_what_they_look_for(tmp_path, monkeypatch, capsys):
    """A package made to break the rules: a cycle through an import inside a function, and a
    lower layer importing a higher one. Both are reported, naming the import."""
    package = tmp_path / "brokenpkg"
    (package / "low").mkdir(parents=True)
    (package / "__init__.py").write_text('"""A package that breaks the rules."""\n')
    (package / "high.py").write_text('"""High."""\nfrom brokenpkg.low import thing\n')
    (package / "low" / "__init__.py").write_text('"""Low."""\n\n\ndef thing():\n    from brokenpkg import high\n'
                                                 '    return high\n')
    (tmp_path / "contracts.ini").write_text("[importlinter]\nroot_package = brokenpkg\n\n"
                                            "[importlinter:contract:layers]\nname = layers\ntype = layers\n"
                                            "layers =\n    brokenpkg.high\n    brokenpkg.low\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert strongly_connected(grimp.build_graph("brokenpkg", cache_dir=None)) == [{"brokenpkg.high", "brokenpkg.low"}]
    assert lint_imports(config_filename=str(tmp_path / "contracts.ini"), no_cache=True) == 1
    assert "brokenpkg.low -> brokenpkg.high (l.5)" in capsys.readouterr().out
