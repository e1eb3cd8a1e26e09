"""Tools the model can call, run safely: the tool system's parts and how a call flows.

Parts:
  * `ossy.tools.base`: what a tool is (`Tool`: name, toolset, description, JSON Schema of the
    arguments, handler, read-only vs destructive, preview, approval scope, timeout), what a call
    returns (`ToolResult`), where and under which `Policy` it runs (`ToolContext`), `ToolError`.
  * the toolsets `ossy.tools.{fs,shell,system,python,browser}`, each exposing
    `toolset() -> list[Tool]`; `ossy.tools.paths` keeps file arguments inside the workspace.
  * `ossy.tools.registry`: `Registry` (the tools of some toolsets, the built-in ones by default) and what
    a name the model writes means ("functions.read_file", "linux.grep", "sys.df", "list_dir").
  * `ossy.tools.executor`: `Executor.call(name, arguments)`, the only way a tool runs.
  * `ossy.tools.audit`: `AuditLog`, one SQLite row per call in the ossy home.
  * `ossy.sandbox` (outside this package): the only code that starts processes.

A call: the model (or `ossy tools run`) names a tool with JSON arguments ->
`Executor.call` resolves the name -> parses the arguments strictly and checks them against the
schema -> applies the policy (read-only mode refuses destructive tools; a destructive call under
dry-run returns the tool's preview and changes nothing; otherwise approvals auto / never / ask
the user through an approver) -> runs the handler (process tools go through `ossy.sandbox`, with
per-tool time limits) -> caps the output with a visible marker -> writes the audit row -> returns
the `ToolResult`, which goes back to the model as a tool message. It never raises: a refusal or
a failure is a result the model reads.
"""

from ossy.tools.audit import AuditLog
from ossy.tools.base import Policy, Tool, ToolContext, ToolError, ToolResult, truncate_middle
from ossy.tools.executor import ApprovalRequest, Approver, Executor, escape_control, terminal_approver
from ossy.tools.registry import TOOLSETS, Registry

__all__ = [
    "ApprovalRequest",
    "Approver",
    "AuditLog",
    "Executor",
    "Policy",
    "Registry",
    "TOOLSETS",
    "Tool",
    "ToolContext",
    "ToolError",
    "ToolResult",
    "escape_control",
    "terminal_approver",
    "truncate_middle",
]
