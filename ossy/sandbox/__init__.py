"""The sandbox: the only module in ossy that starts processes.

API used by the tools:
    backend() -> Backend                      which isolation is available (bwrap + version, or why not)
    run(argv, spec, limits, stdin=b"") -> Completed   run to completion under the policy
    spawn(argv, spec, limits) -> Process      a long-lived process (the python kernel)

Threat model. The model is untrusted: a prompt injection in a web page, a README or a file can
make it ask for any command. What such a command may do is decided here, by the kernel, whatever
the tool or the approval layer thought of it:

- Filesystem (bubblewrap mount namespace): `/` read-only; a private empty /tmp; the user's
  HOME, /root and the ossy home (models, audit log) covered by an empty tmpfs; the workspace
  bound at its own path, read-write in workspace-write mode and read-only in read-only mode;
  `Spec.read_only` paths (e.g. a python install under HOME) shown read-only. In workspace-write
  mode git hooks and config and shell startup files inside the workspace (launch.PROTECTED)
  stay read-only, and missing ones get an empty read-only placeholder so they cannot be created
  (the placeholder appears in the workspace while the process runs, and is removed after); a
  protected path that is a symbolic link is refused. Writes through `/proc/self/cwd/..` hit the
  same read-only mounts.
- Network: an own network namespace with only a loopback of its own, so neither the internet
  nor the host's loopback services (our model server) are reachable; `Spec.network` shares the
  host's network instead.
- Processes: own pid, IPC, UTS and cgroup namespaces and a fresh /proc (host processes and their
  environments are invisible); a new session with no controlling terminal (TIOCSTI cannot
  inject into the user's shell); stdin is the given bytes or /dev/null; no_new_privs and no
  capabilities (bubblewrap); uid 65534 inside a user namespace. rlimits: CPU seconds, address
  space, file size, open files, no core files, and processes (RLIMIT_NPROC counted inside the
  user namespace; when ossy runs as root RLIMIT_NPROC never binds uid 0, so a pids cgroup caps
  the tree where the cgroup filesystem allows it). A wall-clock timeout kills the sandbox's pid 1,
  which makes the kernel kill every process in the namespace: `nohup`, `setsid` and double forks
  leave nothing behind, and neither does a command that ends normally (its background jobs die
  with it). Output is capped per stream (head and tail kept, a visible marker in between) and a
  flood kills the process.
- Environment: built from an allowlist (launch.BASE_ENV: PATH, LANG, TERM=dumb, HOME inside the
  sandbox, pagers set to cat, git's system and global config off, hooks and fsmonitor off) plus
  `Spec.env`; nothing is inherited from the host, so secrets in ossy's environment never reach a
  tool.

What is NOT covered:
- No seccomp filter: every syscall the kernel allows an unprivileged user namespace is allowed
  (e.g. AF_UNIX sockets, io_uring, creating nested namespaces). A kernel bug reachable from a user
  namespace breaks the sandbox.
- Reads are not restricted beyond the hidden directories: whatever the user running ossy can read
  elsewhere (/etc, /srv, other users' readable homes, and as root nearly everything, including
  /etc/shadow) a sandboxed process can read; keep secrets in HOME or out of reach.
- Shared resources: memory is limited per process (RLIMIT_AS), not per tree; CPU time and disk
  I/O are not shared out fairly; the workspace's disk space is only bounded per file
  (RLIMIT_FSIZE). Without a writable pids cgroup, a process run as root is limited in number only
  by the timeout.
- full-access mode: bubblewrap still gives its own pid and user namespaces (tree kill, uid 65534,
  no capabilities), the network namespace unless `Spec.network`, the rlimits, the timeout and the
  scrubbed environment, but the whole host filesystem is bound read-write: nothing is hidden or
  protected; HOME is a scratch directory.
- The weaker mode (no bubblewrap, only with `Spec.allow_unsandboxed`, reported as
  backend="unsandboxed"): rlimits except the process count (RLIMIT_NPROC would count all the
  user's processes), no_new_privs, the timeout, a process-group kill (as root also a pids
  cgroup kill), the scrubbed environment with HOME a scratch directory and the cwd in the
  workspace. No filesystem, network or process isolation: a process that leaves its process
  group (`setsid`) can survive the call.
- Protected paths are a fixed list (launch.PROTECTED); other files that something on the host
  later executes (a Makefile, package scripts, .envrc, editor settings) are ordinary workspace
  files. Two sandboxes sharing a workspace share its placeholders; if one removes its placeholder
  while the other still runs, the other loses that protection.
"""

from __future__ import annotations

from ossy.sandbox.probe import backend
from ossy.sandbox.process import Process, spawn
from ossy.sandbox.runner import run
from ossy.sandbox.spec import Backend, Completed, Limits, SandboxUnavailable, Spec

__all__ = ["Backend", "Completed", "Limits", "Process", "SandboxUnavailable", "Spec", "backend", "run", "spawn"]
