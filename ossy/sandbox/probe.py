"""Finding bubblewrap and checking, once per process, that it can build a sandbox here.

Owns: `backend()` (cached), `BWRAP_PATHS` (where bubblewrap is looked for; tests point it at a
missing file to simulate a host without it) and `require(spec)`, which refuses to go on without
bubblewrap unless the spec allows the weaker mode. Does not own: the sandbox's command line
(`ossy.sandbox.launch`).
"""

from __future__ import annotations

import functools
import os
import subprocess

from ossy.sandbox.spec import Backend, SandboxUnavailable, Spec

# The system bubblewrap first: Ubuntu's AppArmor exception for user namespaces covers that path only.
BWRAP_PATHS = ("/usr/bin/bwrap", "/usr/local/bin/bwrap", "/bin/bwrap")
PROBE_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
PROBE_TIMEOUT = 10.0


@functools.cache
def backend() -> Backend:
    """bubblewrap's path and version when it can build the sandbox the tools use, otherwise the
    weaker mode with the reason in `problem`. Cached; `backend.cache_clear()` probes again."""
    path = next((p for p in BWRAP_PATHS if os.access(p, os.X_OK)), "")
    if not path:
        return Backend("unsandboxed", problem="bubblewrap (bwrap) is not installed")
    problem = _try_sandbox(path)
    if problem:
        return Backend("unsandboxed", path=path, problem=f"bubblewrap cannot create a sandbox here ({problem})")
    return Backend("bwrap", version=_version(path), path=path)


def require(spec: Spec) -> Backend:
    """The backend to run `spec` with, or SandboxUnavailable: never a silent fallback."""
    found = backend()
    if found.name == "bwrap" or spec.allow_unsandboxed:
        return found
    fix = ("install it (`apt install bubblewrap`)" if not found.path
           else "allow unprivileged user namespaces (e.g. sysctl kernel.apparmor_restrict_unprivileged_userns=0)")
    raise SandboxUnavailable(f"sandbox unavailable: {found.problem}; {fix}, or allow the weaker "
                             "unisolated mode with --unsandboxed")


def _try_sandbox(path: str) -> str:
    """"" when bubblewrap runs `true` in the namespaces the tools use, else its first error line."""
    argv = [path, "--unshare-all", "--unshare-user", "--uid", "65534", "--gid", "65534", "--die-with-parent",
            "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--", "true"]
    try:
        done = subprocess.run(argv, env=PROBE_ENV, stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=PROBE_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as e:
        return str(e)
    if done.returncode == 0:
        return ""
    lines = done.stderr.decode("utf-8", "replace").strip().splitlines()
    return lines[0] if lines else f"exit status {done.returncode}"


def _version(path: str) -> str:
    try:
        done = subprocess.run([path, "--version"], env=PROBE_ENV, stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=PROBE_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.decode("utf-8", "replace").strip().removeprefix("bubblewrap ").strip()
