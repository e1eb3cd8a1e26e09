"""Calling a tool: the one path from "the model asked for NAME with ARGUMENTS" to a result.

Owns: name resolution through the registry, strict argument parsing and schema validation,
the policy decision (read-only mode, approvals ask/auto/never, "always" for the conversation,
dry-run), running the handler with timing, the output cap, the audit row, the approval request
shown to a user (`ApprovalRequest`, `terminal_approver`) and escaping text for a terminal
(`escape_control`). Does not own what a tool does (the toolset modules), path containment
(`ossy.tools.paths`), processes and their time limits (`ossy.sandbox`) or the audit storage
(`ossy.tools.audit`).

`Executor.call` never raises: every problem becomes a `ToolResult` the model can read, with
status "invalid" (unknown tool, arguments that are not a strict JSON object matching the
schema), "denied" (the policy or the user said no), "dry-run" (a destructive call previewed,
nothing changed), "error" (the tool failed; a bug in a tool too), "timeout" (set by the tool) or
"ok". Each call writes exactly one audit row, refused ones included.

Strict arguments: duplicate keys, NaN/Infinity, numbers that overflow to infinity, anything
but an object and texts over `MAX_ARGUMENTS` bytes are refused before the schema (JSON Schema
2020-12) is checked. A tool with `raw_payload` (python) takes a text that is not a JSON object
with a "code" field as the code itself. The arguments the user approves are the arguments that
run: the approver gets a copy.

The policy, in order: read-only tools run; a destructive tool is refused in read-only mode; under
dry-run it returns its preview (or "would call NAME with ARGS") and changes nothing; approvals
"auto" run it, "never" refuse it, "ask" asks the approver, whose "always" covers the rest of this
executor's conversation for tools with `approval_scope == "session"` (else it is one "yes");
"ask" without an approver refuses, saying how to allow it. The audit row's backend is what the
tool put in `ToolResult.data["backend"]`, else `ossy.sandbox.backend()`.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import re
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, TextIO

import jsonschema

from ossy import sandbox
from ossy.errors import OssyError
from ossy.tools.audit import AuditLog
from ossy.tools.base import Policy, Tool, ToolContext, ToolError, ToolResult, truncate_middle
from ossy.tools.registry import Registry

log = logging.getLogger(__name__)

MAX_ARGUMENTS = 1 << 20  # bytes of argument text
MAX_LISTED = 50  # tool names an unknown-tool error lists
MAX_PREVIEW = 20_000  # characters of a preview shown in an approval prompt
MAX_MESSAGE = 300  # characters of a quoted value or exception text in an error message


@dataclass(frozen=True)
class ApprovalRequest:
    """What the user is asked to approve: exactly these arguments (a copy), and what they would
    change."""

    tool: Tool
    arguments: dict
    preview: str
    policy: Policy


Approver = Callable[[ApprovalRequest], str]  # -> "yes", "no" or "always"


class InvalidArguments(Exception):
    """Arguments refused before the tool runs (the message is one line)."""


@dataclass
class _Record:
    """What the audit row says about a call, filled in as the call goes."""

    tool: str
    arguments: str
    decision: str = "invalid"
    decided_by: str = "policy"
    ran: bool = False  # the handler was called
    output_bytes: int = 0

    def decide(self, decision: str, decided_by: str) -> None:
        self.decision, self.decided_by = decision, decided_by


class Executor:
    def __init__(self, registry: Registry, ctx: ToolContext, *, approver: Approver | None = None,
                 audit: AuditLog | None = None) -> None:
        self.registry = registry
        self.ctx = ctx
        self.approver = approver
        self.audit = audit if audit is not None else AuditLog.default(ctx.home)
        self._approved_for_session: set[str] = set()  # tools the user answered "always" for
        self._validators: dict[str, jsonschema.Draft202012Validator] = {}
        self._backend: str | None = None

    @property
    def policy(self) -> Policy:
        return self.ctx.policy

    def call(self, name: str, arguments: str | dict) -> ToolResult:
        """Resolve, check, decide, run and audit one call (see the module docstring)."""
        record = _Record(tool=str(name), arguments=_audit_text(arguments))
        try:
            result = self._call(name, arguments, record)
            record.output_bytes = len(result.output.encode("utf-8", "replace"))
            result.output, cut = truncate_middle(result.output, self.policy.max_output)
            result.truncated = result.truncated or cut
        except Exception as exc:  # a bug in ossy, not in the call: still only a result
            result = _refused("error", f"internal error: {_describe(exc)}")
        self._write_audit(record, result)
        return result

    def _call(self, name: str, arguments: str | dict, record: _Record) -> ToolResult:
        tool = self.registry.get(name) if isinstance(name, str) else None
        if tool is None:
            return _refused("invalid", self._unknown_tool(name))
        record.tool = tool.name
        try:
            args = self._arguments(tool, arguments)
        except InvalidArguments as exc:
            return _refused("invalid", f"invalid arguments for {tool.name}: {exc}")
        record.arguments = json.dumps(args, ensure_ascii=False)
        return self._decide_and_run(tool, args, record)

    def _decide_and_run(self, tool: Tool, args: dict, record: _Record) -> ToolResult:
        if not tool.destructive:
            record.decide("allowed", "policy")
            return self._run(tool, args, record)
        if self.policy.mode == "read-only":
            return _denied(record, "policy", f"{tool.name} can change files or run code, and the sandbox mode is "
                                             "read-only (use --mode workspace-write)")
        if self.policy.dry_run:
            record.decide("dry-run", "policy")
            return self._dry_run(tool, args)
        if self.policy.approvals == "auto":
            record.decide("allowed", "auto")
            return self._run(tool, args, record)
        if self.policy.approvals == "never":
            return _denied(record, "policy", f"{tool.name} needs approval; approvals are set to never")
        if tool.name in self._approved_for_session:
            record.decide("approved", "user")
            return self._run(tool, args, record)
        return self._ask(tool, args, record)

    def _ask(self, tool: Tool, args: dict, record: _Record) -> ToolResult:
        if self.approver is None:
            return _denied(record, "policy", f"{tool.name} needs approval and nobody can be asked; answer in a "
                                             "terminal or allow it with `--approve auto`")
        try:
            preview = self._preview(tool, args)
        except OssyError as exc:  # the tool refuses these arguments: nothing to ask about
            return _refused("error", str(exc))
        try:
            answer = str(self.approver(ApprovalRequest(tool, copy.deepcopy(args), preview, self.policy)))
        except Exception as exc:
            return _denied(record, "policy", f"could not ask for approval of {tool.name}: {_describe(exc)}")
        answer = answer.strip().lower()
        if answer not in ("yes", "y", "always", "a"):
            return _denied(record, "user", f"the user did not approve this call to {tool.name}")
        if answer in ("always", "a") and tool.approval_scope == "session":
            self._approved_for_session.add(tool.name)
        record.decide("approved", "user")
        return self._run(tool, args, record)

    def _dry_run(self, tool: Tool, args: dict) -> ToolResult:
        started = time.monotonic()
        try:
            result = ToolResult(output=self._preview(tool, args), status="dry-run", data={"dry_run": True})
        except OssyError as exc:
            result = _refused("error", str(exc))
        result.duration = time.monotonic() - started
        return result

    def _preview(self, tool: Tool, args: dict) -> str:
        """What the call would change: the tool's preview, or the call itself."""
        if tool.preview is None:
            return f"would call {tool.name} with {json.dumps(args, ensure_ascii=False)}"
        try:
            return str(tool.preview(copy.deepcopy(args), self.ctx))
        except OssyError:
            raise
        except Exception as exc:  # a bug in the preview: refuse the call rather than guess
            raise ToolError(f"{tool.name} could not preview: {_describe(exc)}") from None

    def _run(self, tool: Tool, args: dict, record: _Record) -> ToolResult:
        record.ran = True
        started = time.monotonic()
        try:
            result = _as_result(tool, tool.handler(args, self.ctx))
        except OssyError as exc:  # ToolError, SandboxUnavailable, a refused path...
            result = ToolResult(error=str(exc) or type(exc).__name__, exit_code=1, status="error")
        except Exception as exc:  # a bug in the tool; the model still gets a result
            result = ToolResult(error=f"{tool.name} failed: {_describe(exc)}", exit_code=1, status="error")
        result.duration = time.monotonic() - started
        return result

    def _arguments(self, tool: Tool, arguments: Any) -> dict:
        if isinstance(arguments, dict):
            args = _copy_as_json(arguments)
        elif isinstance(arguments, str):
            args = _parse_text(tool, arguments)
        else:
            raise InvalidArguments(f"arguments must be a JSON object, not {type(arguments).__name__}")
        error = jsonschema.exceptions.best_match(self._validator(tool).iter_errors(args))
        if error is not None:
            where = "/".join(str(part) for part in error.absolute_path) or "arguments"
            raise InvalidArguments(f"{where}: {_one_line(error.message)}")
        return args

    def _validator(self, tool: Tool) -> jsonschema.Draft202012Validator:
        if tool.name not in self._validators:
            self._validators[tool.name] = jsonschema.Draft202012Validator(tool.parameters)
        return self._validators[tool.name]

    def _unknown_tool(self, name: Any) -> str:
        names = self.registry.names
        listed = ", ".join(names[:MAX_LISTED]) + (f", ... ({len(names) - MAX_LISTED} more)"
                                                  if len(names) > MAX_LISTED else "")
        shown = _one_line(name) if isinstance(name, str) else type(name).__name__
        return f'unknown tool "{shown}"; available tools: {listed or "none"}'

    def _write_audit(self, record: _Record, result: ToolResult) -> None:
        try:
            self.audit.record(conversation=self.ctx.conversation, tool=record.tool, arguments=record.arguments,
                              decision=record.decision, decided_by=record.decided_by, status=result.status,
                              exit_code=result.exit_code if record.ran else None, duration=result.duration,
                              output_bytes=record.output_bytes, truncated=result.truncated, error=result.error,
                              mode=self.policy.mode, backend=self._backend_of(result) if record.ran else "")
        except Exception as exc:  # the call happened; say loudly that its row is missing
            log.warning("could not write the audit log %s: %s", self.audit.path, exc)

    def _backend_of(self, result: ToolResult) -> str:
        """The sandbox backend the call ran under: the tool's word for it, else the machine's."""
        if isinstance(result.data, dict) and result.data.get("backend"):
            return str(result.data["backend"])
        if self._backend is None:
            try:
                found = sandbox.backend()
                self._backend = f"{found.name} {found.version}".strip()
            except Exception:
                self._backend = ""
        return self._backend


def _refused(status: str, message: str) -> ToolResult:
    return ToolResult(error=message, exit_code=1, status=status)


def _denied(record: _Record, decided_by: str, message: str) -> ToolResult:
    record.decide("denied", decided_by)
    return _refused("denied", message)


def _as_result(tool: Tool, value: Any) -> ToolResult:
    if isinstance(value, str):
        return ToolResult(output=value)
    if not isinstance(value, ToolResult) or not isinstance(value.output, str):
        return ToolResult(error=f"{tool.name} returned {type(value).__name__}, not a result", exit_code=1,
                          status="error")
    if value.error is not None and value.status == "ok":
        value.status = "error"
    return value


# -- strict arguments --------------------------------------------------------------------------
def _parse_text(tool: Tool, text: str) -> dict:
    if len(text.encode("utf-8", "replace")) > MAX_ARGUMENTS:
        raise InvalidArguments(f"arguments are larger than {MAX_ARGUMENTS} bytes")
    if tool.raw_payload:
        try:
            value = _strict_json(text)
        except InvalidArguments:
            value = None
        return value if isinstance(value, dict) and "code" in value else {"code": text}
    if not text.strip():
        return {}
    value = _strict_json(text)
    if not isinstance(value, dict):
        raise InvalidArguments(f"arguments must be a JSON object, not {_json_type(value)}")
    return value


def _strict_json(text: str) -> Any:
    try:
        return json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_no_constant,
                          parse_float=_finite_float)
    except json.JSONDecodeError as exc:
        raise InvalidArguments(f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except (ValueError, RecursionError) as exc:
        raise InvalidArguments(f"not valid JSON ({_one_line(exc)})") from None


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict:
    value = dict(pairs)
    if len(value) != len(pairs):
        seen: set[str] = set()
        duplicate = next(key for key, _ in pairs if key in seen or seen.add(key))
        raise InvalidArguments(f'duplicate key "{_one_line(duplicate)}"')
    return value


def _no_constant(name: str) -> Any:
    raise InvalidArguments(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise InvalidArguments(f"number {_one_line(text)} is out of range")
    return value


def _copy_as_json(arguments: dict) -> dict:
    """A fresh copy of already-parsed arguments, if they are plain JSON (no NaN, no objects)."""
    try:
        text = json.dumps(arguments, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidArguments(f"not JSON: {_one_line(exc)}") from None
    if len(text) > MAX_ARGUMENTS:
        raise InvalidArguments(f"arguments are larger than {MAX_ARGUMENTS} bytes")
    return json.loads(text)


def _json_type(value: Any) -> str:
    names = {list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _audit_text(arguments: Any) -> str:
    """The arguments as received, for the audit row of a call refused before parsing them."""
    if isinstance(arguments, str):
        return arguments
    try:
        return json.dumps(arguments, ensure_ascii=False, default=repr)
    except (ValueError, RecursionError):
        return repr(arguments)


# -- showing text to a person ------------------------------------------------------------------
# C0 and C1 controls, DEL, zero-width and bidirectional formatting characters, line separators.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def escape_control(text: str, keep: str = "") -> str:
    """`text` with control and invisible formatting characters written as escapes (\\x1b,
    \\r, \\u202e), so a terminal shows them instead of obeying them; characters in `keep` stay."""

    def escaped(match: re.Match) -> str:
        ch = match.group()
        if ch in keep:
            return ch
        return _NAMED.get(ch) or (f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")

    return _CONTROL.sub(escaped, text)


def _describe(exc: BaseException) -> str:
    """An unexpected exception in one line: "ZeroDivisionError: division by zero"."""
    message = _one_line(exc)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def _one_line(value: Any, limit: int = MAX_MESSAGE) -> str:
    text = escape_control(str(value))
    return text if len(text) <= limit else text[:limit] + "..."


def approval_prompt(request: ApprovalRequest) -> str:
    """The full, escaped request as a person reads it before answering."""
    tool = request.tool
    arguments = escape_control(json.dumps(request.arguments, indent=2, ensure_ascii=False), keep="\n")
    preview, _ = truncate_middle(request.preview, MAX_PREVIEW)
    return (f"\n{tool.name} ({tool.toolset}) wants to run; it can change files or run code "
            f"(sandbox mode {request.policy.mode}).\narguments:\n{arguments}\n"
            f"it would:\n{escape_control(preview, keep=chr(10) + chr(9))}\n")


def terminal_approver(input: TextIO | None = None, output: TextIO | None = None) -> Approver:
    """An approver that asks on a terminal (default: stdin, with the prompt on stderr):
    [y]es / [n]o / [a]lways. Without an interactive `input` every answer is "no"."""

    def approve(request: ApprovalRequest) -> str:
        stdin, out = input or sys.stdin, output or sys.stderr
        out.write(approval_prompt(request))
        if not is_terminal(stdin):
            out.write("not a terminal, so not approved\n")
            out.flush()
            return "no"
        session = request.tool.approval_scope == "session"
        out.write("Run it? [y]es / [n]o" + (" / [a]lways for this conversation" if session else "") + ": ")
        out.flush()
        answer = stdin.readline().strip().lower()
        if answer in ("y", "yes"):
            return "yes"
        if session and answer in ("a", "always"):
            return "always"
        return "no"

    return approve


def is_terminal(stream: TextIO) -> bool:
    """Whether `stream` is an interactive terminal (False for anything closed or odd)."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False
