"""How one sandboxed process is started: the bubblewrap command line, the scrubbed
environment, the resource limits, and the traces a start leaves that must be undone.

Owns: `prepare(argv, spec, limits, backend) -> Launch` (argv, env, cwd, the pre-exec hook) and
`Launch.cleanup()` (placeholders mounted over missing protected paths, the scratch directory,
the pids cgroup). Does not own: running the process (`ossy.sandbox.child`, `.runner`,
`.process`) or finding bubblewrap (`ossy.sandbox.probe`).
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import secrets
import select
import shutil
import stat
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

from ossy.errors import OssyError
from ossy.sandbox.spec import MODES, Backend, Limits, Spec

SANDBOX_UID = 65534  # "nobody" inside the user namespace, mapped to the user running ossy
SANDBOX_HOME = "/tmp/home"  # HOME inside the sandbox, on its private /tmp
SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# The whole environment a sandboxed process gets (plus HOME and Spec.env): nothing of the host's.
BASE_ENV = {
    "PATH": SAFE_PATH, "LANG": "C.UTF-8", "TERM": "dumb", "TMPDIR": "/tmp",
    "PAGER": "cat", "GIT_PAGER": "cat", "MANPAGER": "cat", "LESSSECURE": "1",
    "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null",
    # git -c core.fsmonitor=false -c core.hooksPath=/dev/null for every git run in the sandbox
    "GIT_CONFIG_COUNT": "2", "GIT_CONFIG_KEY_0": "core.fsmonitor", "GIT_CONFIG_VALUE_0": "false",
    "GIT_CONFIG_KEY_1": "core.hooksPath", "GIT_CONFIG_VALUE_1": "/dev/null",
    "OSSY_SANDBOX": "1",
}
# Paths inside the workspace that stay read-only in workspace-write mode, and whether each is a
# directory: code that runs later on the host (git hooks and config, shell startup files).
PROTECTED = ((".git/hooks", True), (".git/config", False), (".bashrc", False), (".bash_profile", False),
             (".bash_login", False), (".profile", False), (".zshrc", False), (".zshenv", False),
             (".zprofile", False))
PRLIMIT_PATHS = ("/usr/bin/prlimit", "/bin/prlimit")
CGROUP_FS = Path("/sys/fs/cgroup")
INFO_TIMEOUT = 5.0  # seconds to wait for bubblewrap to report its pid 1
PR_SET_NO_NEW_PRIVS = 38
_LIBC = ctypes.CDLL(None, use_errno=True)


@dataclass
class Launch:
    command: list[str]  # the command asked for
    argv: list[str]  # what Popen executes (bubblewrap's command line, or the command itself)
    env: dict[str, str]
    cwd: Path  # Popen's cwd (the sandbox's own working directory is bubblewrap's --chdir)
    backend: str  # "bwrap" or "unsandboxed"
    scratch: Path  # per-process host directory: HOME outside bubblewrap, placeholder sources
    rlimits: list[tuple[int, tuple[int, int]]] = field(default_factory=list)
    placeholders: list[Path] = field(default_factory=list)  # created in the workspace by mounts
    cgroup: Path | None = None
    info_read: int | None = None  # bubblewrap's --info-fd pipe: it reports its pid 1 there
    info_write: int | None = None
    cgroup_procs: int | None = None  # open cgroup.procs of `cgroup`, written by the child

    @property
    def pass_fds(self) -> tuple[int, ...]:
        return () if self.info_write is None else (self.info_write,)

    def preexec(self) -> None:
        """Runs in the child between fork and exec, so C-level calls only."""
        for which, value in self.rlimits:
            resource.setrlimit(which, value)
        if self.cgroup_procs is not None:
            os.write(self.cgroup_procs, b"0")
        if self.backend == "unsandboxed":  # bubblewrap sets no_new_privs inside the sandbox itself
            _LIBC.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)

    def started(self) -> None:
        """Close what only the child needed (after Popen, whether it worked or not)."""
        for fd in (self.cgroup_procs, self.info_write):
            if fd is not None:
                os.close(fd)
        self.cgroup_procs = self.info_write = None

    def read_init_pid(self) -> int | None:
        """The host pid of the sandbox's pid 1, from bubblewrap's --info-fd (None without bwrap)."""
        if self.info_read is None:
            return None
        fd, data, deadline = self.info_read, b"", time.monotonic() + INFO_TIMEOUT
        while (left := deadline - time.monotonic()) > 0 and select.select([fd], [], [], left)[0]:
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            data += chunk
        os.close(fd)
        self.info_read = None
        try:
            return int(json.loads(data)["child-pid"])
        except (ValueError, KeyError, TypeError):
            return None  # bubblewrap failed before starting the sandbox; its stderr says why

    def cgroup_pids(self) -> list[int]:
        if self.cgroup is None:
            return []
        try:
            return [int(line) for line in (self.cgroup / "cgroup.procs").read_text().split()]
        except OSError:
            return []

    def cleanup(self) -> None:
        self.started()
        if self.info_read is not None:
            os.close(self.info_read)
            self.info_read = None
        for path in reversed(self.placeholders):
            _remove_placeholder(path)
        if self.cgroup is not None:
            _remove_cgroup(self.cgroup)
        shutil.rmtree(self.scratch, ignore_errors=True)


def prepare(argv: Sequence[str], spec: Spec, limits: Limits, backend: Backend) -> Launch:
    """Everything needed to start `argv` under `spec` with `backend`; call `cleanup()` after."""
    argv = _checked_argv(argv)
    if spec.mode not in MODES:
        raise OssyError(f'sandbox mode must be one of {", ".join(MODES)}, not "{spec.mode}"')
    workspace, cwd = _places(spec)
    scratch = Path(tempfile.mkdtemp(prefix="ossy-sandbox-"))
    launch = Launch(command=argv, argv=argv, env={}, cwd=cwd, backend=backend.name, scratch=scratch,
                    rlimits=_rlimits(limits))
    try:
        launch.cgroup = _pids_cgroup(limits.processes)
        if launch.cgroup is not None:
            launch.cgroup_procs = os.open(launch.cgroup / "cgroup.procs", os.O_WRONLY)
        isolated = backend.name == "bwrap" and spec.mode != "full-access"
        home = SANDBOX_HOME if isolated else str(_made(scratch / "home"))
        launch.env = _env(spec, home)
        if backend.name == "bwrap":
            launch.info_read, launch.info_write = os.pipe()
            args, launch.placeholders = _bwrap_args(backend.path, spec, workspace, cwd, scratch, launch.info_write)
            launch.argv = [*args, "--", *_nproc_prefix(limits), *argv]
            launch.cwd = Path("/")
    except BaseException:
        launch.cleanup()
        raise
    return launch


def _checked_argv(argv: Sequence[str]) -> list[str]:
    argv = list(argv)
    if not argv or not all(isinstance(a, str) and "\0" not in a for a in argv):
        raise OssyError("sandbox: the command must be a non-empty list of strings without NUL bytes")
    return argv


def _places(spec: Spec) -> tuple[Path, Path]:
    """The resolved workspace and working directory (which must lie inside it)."""
    workspace = Path(spec.workspace).resolve()
    if not workspace.is_dir():
        raise OssyError(f"sandbox: the workspace {workspace} is not a directory")
    cwd = (workspace / spec.cwd).resolve() if spec.cwd else workspace
    if not (cwd == workspace or workspace in cwd.parents) or not cwd.is_dir():
        raise OssyError(f"sandbox: the working directory {cwd} is not a directory inside the workspace {workspace}")
    return workspace, cwd


def _env(spec: Spec, home: str) -> dict[str, str]:
    env = {**BASE_ENV, "HOME": home, **spec.env}
    if not all(k and "=" not in k and "\0" not in k + v for k, v in env.items()):
        raise OssyError("sandbox: environment names must be non-empty without '=' and no value may hold a NUL")
    return env


def _rlimits(limits: Limits) -> list[tuple[int, tuple[int, int]]]:
    """(resource, (soft, hard)) pairs, never above the current hard limits (we cannot raise them).
    RLIMIT_NPROC is not here: it is set inside the sandbox (`_nproc_prefix`)."""
    wanted = [(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 1)),
              (resource.RLIMIT_AS, (limits.memory_bytes,) * 2),
              (resource.RLIMIT_FSIZE, (limits.file_size_bytes,) * 2),
              (resource.RLIMIT_NOFILE, (limits.open_files,) * 2),
              (resource.RLIMIT_CORE, (0, 0))]
    result = []
    for which, (soft, hard) in wanted:
        ceiling = resource.getrlimit(which)[1]
        if ceiling != resource.RLIM_INFINITY:
            hard = min(hard, ceiling)
        result.append((which, (min(soft, hard), hard)))
    return result


def _nproc_prefix(limits: Limits) -> list[str]:
    """RLIMIT_NPROC is set by `prlimit` inside the sandbox: set before bubblewrap it would also
    count the user's processes outside the new user namespace, and bubblewrap could not start."""
    path = next((p for p in PRLIMIT_PATHS if os.access(p, os.X_OK)), None)
    return [path, f"--nproc={limits.processes}:{limits.processes}", "--"] if path else []


def _bwrap_args(bwrap: str, spec: Spec, workspace: Path, cwd: Path, scratch: Path,
                info_fd: int) -> tuple[list[str], list[Path]]:
    """bubblewrap's options (everything before `--`) and the placeholders its mounts create."""
    args = [bwrap, "--new-session", "--die-with-parent", "--unshare-all", "--unshare-user",
            "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID), "--info-fd", str(info_fd)]
    if spec.network:
        args.append("--share-net")
    if spec.mode == "full-access":
        return [*args, "--bind", "/", "/", "--proc", "/proc", "--chdir", str(cwd)], []
    args += ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
    hidden = _hidden_dirs(spec.hidden)
    args += _tmpfs(p for p in hidden if workspace not in p.parents)
    args += ["--bind" if spec.mode == "workspace-write" else "--ro-bind", str(workspace), str(workspace)]
    args += _tmpfs(p for p in hidden if workspace in p.parents)
    for path in spec.read_only:
        if os.path.exists(path):
            args += ["--ro-bind", str(path), str(path)]
    placeholders = []
    if spec.mode == "workspace-write":
        ops = _protection_ops(workspace, _made(scratch / "empty", file=True), _made(scratch / "empty.d"))
        args += [part for op in ops for part in op]
        placeholders = [Path(dest) for _, source, dest in ops if Path(source).parent == scratch]
    return [*args, "--dir", SANDBOX_HOME, "--chdir", str(cwd)], placeholders


def _hidden_dirs(extra: Sequence[Path]) -> list[Path]:
    """Directories covered by an empty tmpfs: the user's home, /root, and `extra` (the ossy home)."""
    candidates = [Path("/root"), *map(Path, extra)]
    try:
        candidates.insert(0, Path.home())
    except RuntimeError:
        pass
    found: list[Path] = []
    for path in (p.resolve() for p in candidates):
        if path != Path("/") and path.is_dir() and path not in found:
            found.append(path)
    return found


def _tmpfs(paths: Iterator[Path]) -> list[str]:
    return [part for path in paths for part in ("--tmpfs", str(path))]


def _protection_ops(workspace: Path, empty_file: Path, empty_dir: Path) -> list[tuple[str, str, str]]:
    """Mounts keeping PROTECTED read-only: an existing path is bound read-only onto itself, its
    parent directories inside the workspace onto themselves (a mount point cannot be renamed
    away), and the first missing component gets an empty read-only placeholder, so it cannot be
    created either. A symbolic link cannot be covered this way, so it is refused."""
    ops: list[tuple[str, str, str]] = []
    for relative, is_dir in PROTECTED:
        parts = relative.split("/")
        path = workspace
        for depth, part in enumerate(parts, 1):
            path = path / part
            last = depth == len(parts)
            try:
                mode = path.lstat().st_mode
            except FileNotFoundError:
                source = empty_dir if is_dir or not last else empty_file
                op = ("--ro-bind", str(source), str(path))
            else:
                if stat.S_ISLNK(mode):
                    raise OssyError(f"sandbox: {path} is a symbolic link, which the sandbox cannot keep read-only; "
                                    "replace it with the real file, or use --mode full-access")
                op = ("--bind" if stat.S_ISDIR(mode) and not last else "--ro-bind", str(path), str(path))
            if op not in ops:
                ops.append(op)
            if op[0] == "--ro-bind":
                break
    return ops


def _pids_cgroup(limit: int) -> Path | None:
    """A pids cgroup holding the tree to `limit` processes when ossy runs as root (RLIMIT_NPROC
    never binds uid 0, even mapped inside a user namespace) and a pids controller is writable;
    else None (a non-root user's RLIMIT_NPROC in the user namespace does the job)."""
    if os.geteuid() != 0:
        return None
    name = f"ossy-sandbox-{os.getpid()}-{secrets.token_hex(4)}"
    for parent in _pids_controllers():
        group = parent / name
        try:
            group.mkdir()
        except OSError:
            continue
        try:
            fd = os.open(group / "pids.max", os.O_WRONLY)  # no O_CREAT: only a real cgroup has it
            try:
                os.write(fd, str(limit).encode())
            finally:
                os.close(fd)
            return group
        except OSError:
            _remove_cgroup(group)
    return None


def _pids_controllers() -> Iterator[Path]:
    """cgroup v1's pids hierarchy, then (v2) the cgroup ossy runs in."""
    if (CGROUP_FS / "pids" / "cgroup.procs").exists():
        yield CGROUP_FS / "pids"
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return
    for line in lines:
        if line.startswith("0::"):
            own = CGROUP_FS / line[3:].strip().lstrip("/")
            if (own / "cgroup.controllers").exists():
                yield own


def _remove_cgroup(group: Path, wait: float = 2.0) -> None:
    """rmdir the cgroup once its last process is gone (exiting processes take a moment)."""
    deadline = time.monotonic() + wait
    while True:
        try:
            group.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            if time.monotonic() > deadline:
                return
            time.sleep(0.01)


def _remove_placeholder(path: Path) -> None:
    """Remove an empty mount-point file or directory bubblewrap made for a missing protected path."""
    try:
        st = path.lstat()
        if stat.S_ISDIR(st.st_mode):
            path.rmdir()
        elif stat.S_ISREG(st.st_mode) and st.st_size == 0:
            path.unlink()
    except OSError:
        pass  # gone, or no longer empty (then it is the user's now)


def _made(path: Path, *, file: bool = False) -> Path:
    if file:
        path.touch()
    else:
        path.mkdir()
    return path
