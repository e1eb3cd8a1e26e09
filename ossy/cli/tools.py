"""`ossy tools list|show|run`: the built-in tools from the command line, to try one in isolation.

Owns: these subcommands and how they print. `run` goes through the same `Executor` as the agent
(strict arguments, policy, approvals on this terminal, audit row with conversation "cli") and
exits 0 for "ok" (or the tool's own exit code when it reports one) and "dry-run", 1 for "error",
2 for "invalid", 3 for "denied" and 124 for "timeout". The result goes to stdout, an error to
stderr; on a terminal, control characters are shown escaped. Does not own the tools
(`ossy.tools`), the policy's meaning (`ossy.tools.executor`) or the audit log (`ossy.tools.audit`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ossy.cli.ps import table
from ossy.config import settings
from ossy.errors import OssyError
from ossy.tools import Executor, Policy, ToolContext, terminal_approver
from ossy.tools.base import APPROVALS, MODES
from ossy.tools.executor import escape_control, is_terminal
from ossy.tools.registry import Registry

EXIT_CODES = {"dry-run": 0, "error": 1, "invalid": 2, "denied": 3, "timeout": 124}
DESCRIPTION_WIDTH = 72


def register(subparsers) -> None:
    p = subparsers.add_parser("tools", help="List, show and run the tools models can call")
    sub = p.add_subparsers(dest="tools_command", metavar="COMMAND", required=True)

    q = sub.add_parser("list", help="List the tools")
    q.add_argument("--toolset", help="only this toolset (comma-separated for several)")
    q.set_defaults(func=run_list)

    q = sub.add_parser("show", help="Show a tool's description and argument schema")
    q.add_argument("name", metavar="NAME")
    q.set_defaults(func=run_show)

    q = sub.add_parser("run", help="Run a tool once with JSON arguments")
    q.add_argument("name", metavar="NAME")
    q.add_argument("arguments", metavar="JSON-ARGS", nargs="?", default="{}", help="the arguments (default {})")
    q.add_argument("--workspace", type=Path, default=None, help="the directory tools may use (default: .)")
    q.add_argument("--mode", choices=MODES, default="workspace-write", help="sandbox mode")
    q.add_argument("--approve", choices=APPROVALS, default="ask",
                   help="destructive calls: ask on this terminal, run (auto) or refuse (never)")
    q.add_argument("--dry-run", action="store_true", help="show what a destructive call would change")
    q.add_argument("--network", action="store_true", help="let the tool reach the network")
    q.add_argument("--unsandboxed", action="store_true",
                   help="without bubblewrap, run process tools in the weaker unsandboxed mode")
    q.add_argument("--timeout", type=float, metavar="SECONDS", help="the tool's time limit")
    q.add_argument("--json", action="store_true", help="print the whole result as JSON")
    q.set_defaults(func=run_run)


def _registry(toolsets: str = "all"):
    return Registry.from_toolsets(toolsets)


def _kind(tool) -> str:
    return "destructive" if tool.destructive else "read-only"


def run_list(args: argparse.Namespace) -> int:
    rows = [["TOOLSET", "NAME", "KIND", "DESCRIPTION"]]
    for tool in _registry(args.toolset or "all"):
        summary = tool.description.strip().splitlines()[0] if tool.description.strip() else ""
        if len(summary) > DESCRIPTION_WIDTH:
            summary = summary[:DESCRIPTION_WIDTH - 3] + "..."
        rows.append([tool.toolset, tool.name, _kind(tool), summary])
    print(table(rows), end="")
    return 0


def run_show(args: argparse.Namespace) -> int:
    tool = _registry().get(args.name)
    if tool is None:
        raise OssyError(f'unknown tool "{args.name}"; `ossy tools list` shows them')
    approval = ("not needed" if not tool.destructive else
                "once per conversation" if tool.approval_scope == "session" else "every call")
    facts = [f"toolset: {tool.toolset}", f"kind: {_kind(tool)}", f"timeout: {tool.timeout:g} s",
             f"approval: {approval}"]
    if tool.aliases:
        facts.append("aliases: " + ", ".join(tool.aliases))
    if tool.raw_payload:
        facts.append('arguments: the code itself, or {"code": ...}')
    print(f"{tool.name}\n  " + "\n  ".join(facts) + f"\n\n{tool.description.strip()}\n\nparameters:\n"
          + json.dumps(tool.parameters, indent=2, ensure_ascii=False))
    return 0


def run_run(args: argparse.Namespace) -> int:
    registry = _registry()
    tool = registry.get(args.name)
    s = settings()
    ctx = ToolContext(workspace=_workspace(args.workspace), policy=_policy(args, tool), conversation="cli",
                      home=s.home, search_url=s.search_url)
    approver = terminal_approver() if is_terminal(sys.stdin) else None
    try:
        result = Executor(registry, ctx, approver=approver).call(args.name, args.arguments)
    finally:
        ctx.close()
    _print_result(result, as_json=args.json)
    if result.status == "ok":
        return result.exit_code if 0 <= result.exit_code < 256 else 1
    return EXIT_CODES.get(result.status, 1)


def _workspace(path: Path | None) -> Path:
    workspace = (path or Path.cwd()).expanduser()
    if not workspace.is_dir():
        raise OssyError(f"workspace {workspace} is not a directory")
    return workspace


def _policy(args: argparse.Namespace, tool):
    timeouts = {}
    if args.timeout is not None:
        if not args.timeout > 0:
            raise OssyError(f"--timeout must be a positive number of seconds, not {args.timeout:g}")
        if tool is not None:
            timeouts[tool.name] = args.timeout
    return Policy(mode=args.mode, approvals=args.approve, dry_run=args.dry_run, network=args.network,
                  allow_unsandboxed=args.unsandboxed, timeouts=timeouts)


def _print_result(result, *, as_json: bool) -> None:
    if as_json:
        fields = ("status", "output", "error", "exit_code", "duration", "truncated", "data")
        print(json.dumps({name: getattr(result, name) for name in fields}, default=str))
        return
    if result.output:
        print(_for_terminal(result.output, sys.stdout), end="" if result.output.endswith("\n") else "\n")
    if result.error is not None:
        print(f"Error: {_for_terminal(result.error, sys.stderr)}", file=sys.stderr)
    elif result.status == "dry-run":
        print("dry run: nothing was changed", file=sys.stderr)


def _for_terminal(text: str, stream) -> str:
    return escape_control(text, keep="\n\t") if is_terminal(stream) else text
