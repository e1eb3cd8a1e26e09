"""`ossy run MODEL [PROMPT]`: one answer, or an interactive chat (docs/reference/ollama-reference.md §1.1, §1.2).

Owns: the `run` subcommand's arguments and the choice between one-shot (a PROMPT, or text piped
on stdin, which comes first when both are given) and the REPL (`ossy.cli.repl`). Requests go to
the server at `OSSY_HOST` when one answers; otherwise the server's app runs in this process on a
free loopback port (`ossy.client.local.connect`), so both paths are the same HTTP code.
A model the server does not have is pulled first (`ossy.cli.pull`), as `ollama run` does.
When stdout is not a terminal, a one-shot answer leaves the thinking out unless `--think` is
given, so `ossy run MODEL "..." > answer.txt` holds just the answer.

Tools: `--tools fs,shell,...` (or the toolsets the model's Modelfile names with `TOOLS`, which
the server reports in /api/show as `toolsets`; `--tools none` turns them off) sends each message
through the agent loop (`ossy.agent`): tool calls and a summary of their results are printed on
stderr as they happen, the answer on stdout. `--workspace`, `--mode`, `--approve`, `--dry-run`,
`--network`, `--unsandboxed` make the `Policy`; destructive calls are approved in the terminal
when stdin is one (otherwise "ask" denies them and says how to allow them). A one-shot run that
stops at `--max-steps` exits with status 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ossy.agent import parse_toolsets
from ossy.cli.pull import pull_with_progress
from ossy.cli.repl import Interpreter, Session, ToolOptions, history_path, parse_think, repl
from ossy.client.local import connect
from ossy.config import settings
from ossy.errors import NotFoundError, OssyError
from ossy.tools.base import APPROVALS, MODES, Policy

_THINK_WORDS = ("true", "false", "low", "medium", "high", "max")


def _options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", metavar="FORMAT", help='response format: "json" or a JSON schema')
    p.add_argument("--keepalive", metavar="DURATION", help='how long the model stays loaded, e.g. "5m", "1h", "-1"')
    p.add_argument("--think", metavar="LEVEL", nargs="?", const="true",
                   help="thinking: true, false, low, medium or high (a bare --think means true)")
    p.add_argument("--hidethinking", action="store_true", help="do not print the model's thinking")
    p.add_argument("--verbose", action="store_true", help="print timings after each response")
    p.add_argument("--nowordwrap", action="store_true", help="accepted for compatibility (output is not wrapped)")
    tools = p.add_argument_group("tools")
    tools.add_argument("--tools", metavar="LIST",
                       help="toolsets the model may call: fs, shell, system, python, browser, all (comma-separated); "
                            "\"none\" turns off those the Modelfile names")
    tools.add_argument("--workspace", metavar="DIR", default=".", help="the directory tools work in (default: .)")
    tools.add_argument("--mode", choices=MODES, default=Policy.mode, help="sandbox mode (default: %(default)s)")
    tools.add_argument("--approve", choices=APPROVALS, default=Policy.approvals,
                       help="destructive calls: ask in the terminal, run (auto) or refuse (never) (default: %(default)s)")
    tools.add_argument("--dry-run", action="store_true", help="destructive calls show what they would change")
    tools.add_argument("--network", action="store_true", help="tools may reach the network")
    tools.add_argument("--unsandboxed", action="store_true",
                       help="without bubblewrap, run process tools in the weaker unsandboxed mode")
    tools.add_argument("--max-steps", metavar="N", type=int, default=8,
                       help="rounds of tool calls per message (default: %(default)s)")


def register(subparsers) -> None:
    p = subparsers.add_parser("run", help="Run a model: answer a prompt, or chat interactively")
    _options(p)
    p.add_argument("model", metavar="MODEL", help="model name")
    # REMAINDER, re-parsed in `run`: options may follow the model and the prompt, as with `ollama run`.
    p.add_argument("prompt", metavar="PROMPT", nargs=argparse.REMAINDER,
                   help="the prompt (otherwise stdin, or an interactive chat)")
    p.set_defaults(func=run)


def _reparse(args: argparse.Namespace) -> None:
    """Options written after MODEL (`ossy run m --verbose "hi"`) land in args.prompt: sort them out."""
    if not any(word.startswith("-") for word in args.prompt):
        return
    parser = argparse.ArgumentParser(prog="ossy run", add_help=False)
    _options(parser)
    parser.add_argument("prompt", nargs="*")
    later = parser.parse_intermixed_args(args.prompt)
    for key, value in vars(later).items():
        if key == "prompt" or value != parser.get_default(key):
            setattr(args, key, value)


def parse_format(text: str | None) -> str | dict | None:
    if text is None or text == "":
        return None
    if text.strip().startswith("{"):
        try:
            return json.loads(text)
        except ValueError as e:
            raise OssyError(f"--format: not a JSON schema: {e}") from None
    if text != "json":
        raise OssyError(f'--format: unknown format "{text}"; use "json" or a JSON schema')
    return "json"


def tool_options(args: argparse.Namespace, stdin_is_terminal: bool):
    """The tool settings of `ossy run`'s flags; approvals in the terminal when stdin is one."""

    if args.max_steps < 0:
        raise OssyError("--max-steps must be 0 or more")
    if not Path(args.workspace).expanduser().is_dir():
        raise OssyError(f"--workspace: {args.workspace} is not a directory")
    policy = Policy(mode=args.mode, approvals=args.approve, dry_run=args.dry_run, network=args.network,
                    allow_unsandboxed=args.unsandboxed)
    s = settings()
    return ToolOptions(home=s.home, search_url=s.search_url, policy=policy, workspace=Path(args.workspace).expanduser(),
                       max_steps=args.max_steps, ask_in_terminal=stdin_is_terminal)


def pull_if_missing(client, model: str) -> None:
    """As `ollama run` does: a model the server does not have is pulled first, with progress."""

    try:
        client.show(model)
    except NotFoundError:
        pull_with_progress(client, model)


def model_toolsets(client, model: str) -> tuple[str, ...]:
    """The toolsets the model's Modelfile names (`TOOLS`); none when the server does not say
    (an Ollama server, an unknown model: the chat request reports that)."""

    try:
        return parse_toolsets(client.show(model).get("toolsets") or ())
    except OssyError:
        return ()


def run(args: argparse.Namespace) -> int:
    _reparse(args)
    if args.think is not None and args.think.lower() not in _THINK_WORDS:  # `--think PROMPT`: a bare --think
        args.prompt = [args.think, *args.prompt]
        args.think = "true"
    session = Session(model=args.model, think=parse_think(args.think), hidethinking=args.hidethinking,
                      verbose=args.verbose, format=parse_format(args.format), keep_alive=args.keepalive,
                      wordwrap=not args.nowordwrap)
    prompt = " ".join(args.prompt)
    interactive = not prompt
    if not sys.stdin.isatty():
        piped = sys.stdin.read()
        if piped.strip():
            prompt = f"{piped} {prompt}" if prompt else piped
        interactive = False
        if not prompt.strip():
            raise OssyError("no prompt: give one as an argument or on stdin")
    if not interactive and not sys.stdout.isatty() and args.think is None:
        session.hidethinking = True

    session.tool_options = tool_options(args, sys.stdin.isatty())
    with connect() as client:
        pull_if_missing(client, args.model)
        session.tools = parse_toolsets(args.tools) if args.tools is not None else model_toolsets(client, args.model)
        interpreter = Interpreter(client, session, color=sys.stdout.isatty())
        try:
            if not interactive:
                interpreter.send(prompt)
                return 1 if interpreter.last_run is not None and interpreter.last_run.stopped == "step_limit" else 0
            client.load(args.model, keep_alive=args.keepalive)  # an unknown model fails here, before the prompt
            interpreter.toolbox()  # so does an unknown toolset
            return repl(interpreter, history=history_path())
        finally:
            interpreter.close()
