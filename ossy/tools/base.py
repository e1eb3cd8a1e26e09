"""The tool interface: what a tool is, what a call returns, and what a call may see.

Owns: `Tool` (name, toolset, description, JSON Schema of the arguments, handler, read-only vs
destructive, approval scope, timeout), `ToolResult`, `ToolContext` (workspace, policy,
per-conversation state), `Policy` (sandbox mode, approvals, dry-run, network, timeouts, output
cap), `ToolError` and `truncate_middle`. Does not own: argument checking, approvals, dry-run and
the audit log (`ossy.tools.executor`), the tool catalogue (`ossy.tools.registry`), path
containment (`ossy.tools.paths`) or starting processes (`ossy.sandbox`).

A handler gets arguments that already passed the schema and the policy; it returns a
`ToolResult` (or a plain string, taken as the output) and raises `ToolError` for a failure the
model should read (a missing file, a refused path). Anything else it raises is a bug, which the
executor still turns into an error result rather than a crash.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from ossy import sandbox
from ossy.errors import OssyError

MODES = ("read-only", "workspace-write", "full-access")
APPROVALS = ("ask", "auto", "never")
STATUSES = ("ok", "error", "denied", "invalid", "dry-run", "timeout")


class ToolError(OssyError):
    """A failure the model should read as the tool's result (bad path, missing file, refused)."""


@dataclass(frozen=True)
class Policy:
    """What tools may do. The sandbox mode is enforced by the OS (`ossy.sandbox`) and by the
    path checks (`ossy.tools.paths`); approvals decide whether a destructive call runs."""

    mode: str = "workspace-write"  # read-only | workspace-write | full-access
    approvals: str = "ask"  # ask: destructive calls ask the user; auto: run; never: deny
    dry_run: bool = False  # destructive calls report what they would change and change nothing
    network: bool = False  # sandboxed processes and the browser may reach the network
    allow_unsandboxed: bool = False  # without bubblewrap, run process tools in the weaker mode
    timeouts: Mapping[str, float] = field(default_factory=dict)  # per-tool overrides, seconds
    max_output: int = 16_000  # characters of a result the model sees (head + tail kept)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise OssyError(f'sandbox mode must be one of {", ".join(MODES)}, not "{self.mode}"')
        if self.approvals not in APPROVALS:
            raise OssyError(f'approvals must be one of {", ".join(APPROVALS)}, not "{self.approvals}"')

    def timeout(self, tool: "Tool") -> float:
        return float(self.timeouts.get(tool.name, tool.timeout))


@dataclass
class ToolResult:
    output: str = ""  # what the tool printed or returned (for the model)
    error: str | None = None  # a one-line message when the call failed or was refused
    exit_code: int = 0  # the process's exit code; 0/1 for in-process tools
    duration: float = 0.0  # seconds (filled in by the executor)
    truncated: bool = False  # output was cut (a visible marker is in `output`)
    status: str = "ok"  # one of STATUSES
    data: dict[str, Any] | None = None  # structured extras (dry-run changes, file info...)

    @property
    def ok(self) -> bool:
        return self.status == "ok" and self.error is None

    def text(self) -> str:
        """The tool message the model reads."""
        if self.status == "dry-run":
            return f"Dry run: nothing was changed. The call would do this:\n{self.output}"
        if self.error is None:
            return self.output
        head = f"Error: {self.error}"
        return f"{head}\n{self.output}" if self.output else head


@dataclass
class ToolContext:
    """Where and under which policy a call runs; `state` keeps per-conversation objects (the
    python kernel, the browser's pages). `close()` ends them (each value with a `close`)."""

    workspace: Path
    policy: Policy = field(default_factory=Policy)
    conversation: str = ""  # id written to the audit log
    home: Path = field(kw_only=True)  # the ossy home: the index and audit log; hidden from processes, never written
    search_url: str = ""  # browser.search's web backend (a SearXNG-style JSON endpoint); empty: the local index
    state: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.workspace = Path(self.workspace).resolve()

    def close(self) -> None:
        for value in list(self.state.values()):
            close = getattr(value, "close", None)
            if callable(close):
                close()
        self.state.clear()

    def sandbox_spec(self, *, network: bool | None = None, cwd: Path | None = None):
        """The `ossy.sandbox.Spec` for a process this context starts."""
        return sandbox.Spec(workspace=self.workspace, mode=self.policy.mode,
                            network=self.policy.network if network is None else network,
                            allow_unsandboxed=self.policy.allow_unsandboxed, cwd=cwd, hidden=(self.home,))


Handler = Callable[[dict, ToolContext], "ToolResult | str"]
Preview = Callable[[dict, ToolContext], str]


@dataclass(frozen=True)
class Tool:
    name: str  # unique across toolsets; what the model calls (e.g. "read_file", "browser.open")
    toolset: str  # "fs", "shell", "system", "python", "browser"
    description: str
    parameters: dict  # JSON Schema (type object, additionalProperties false)
    handler: Handler
    destructive: bool = False  # writes files or runs arbitrary code: needs approval, honours dry-run
    preview: Preview | None = None  # dry-run: exactly what the call would change
    timeout: float = 30.0  # seconds, overridable per tool in `Policy.timeouts`
    approval_scope: str = "call"  # "call": every call asks; "session": a yes covers the conversation
    raw_payload: bool = False  # the model sends code, not JSON (python): arguments = {"code": text}
    aliases: tuple[str, ...] = ()  # other names the seeds' templates use (e.g. "list_dir")

    def openai(self) -> dict:
        """The tool as an OpenAI function tool (renders in harmony and in Go templates)."""
        return {"type": "function",
                "function": {"name": self.name, "description": self.description, "parameters": self.parameters}}


def truncate_middle(text: str, limit: int) -> tuple[str, bool]:
    """Keep the head and tail of `text` within `limit` characters, with a visible marker."""
    if len(text) <= limit:
        return text, False
    lines = text.count("\n") + 1
    half = max(limit // 2, 1)
    head, tail = text[:half], text[-half:]
    omitted = len(text) - len(head) - len(tail)
    marker = f"\n[... {omitted} characters omitted of {len(text)} ({lines} lines); output truncated ...]\n"
    return head + marker + tail, True
