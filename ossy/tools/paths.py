"""Path containment and symlink-safe file I/O for tools that touch files in-process.

Owns: `resolve` (a tool's path argument -> the real path it may use, or ToolError), the
descriptor-level primitives every in-process file operation goes through (`open_dir`,
`parent_dir`, `open_regular_at`, `lstat_at`, `read_fd`, `write_fd`, `replace_file`, `walk`,
`os_errors`), the helpers built on them (`read_bytes`, `read_text`, `write_bytes`, `write_text`)
and how paths are shown (`display`: control/bidi characters and undecodable bytes escaped;
`shown`: relative to the workspace). Does not own the file tools themselves (`ossy.tools.fs`), processes (`ossy.sandbox`,
which confines shell tools by mounts rather than by these checks) or the policy (`base.Policy`).

Threat model: the model (or text it read) picks the path, and another process may change the
tree while a call runs. Defences, in order:
  * `resolve` refuses NUL bytes, over-long paths or names, a leading "~" (nothing is expanded),
    /proc, /sys and /dev (by the path as written and by its real path, so /proc/self/cwd and
    /proc/self/root magic links never count as "inside"), and — unless the mode is full-access —
    any path whose real path (os.path.realpath: symlinks and ".." resolved, also for a target
    that does not exist yet) is not inside the workspace by `os.path.commonpath`, never by
    string prefix (a sibling "workspace_evil" is outside). write=True also refuses everything in
    read-only mode and, in every mode, protected names anywhere in the real path, existing or
    not (`PROTECTED_NAMES`: .git, .ssh, shell rc files, .gitconfig, .gitmodules) and the ossy home.
  * The check and the use are separate moments, so every use re-walks the real path from "/"
    one component at a time with O_NOFOLLOW (`open_dir`): a component swapped for a symlink after
    the check fails with ELOOP/ENOTDIR instead of being followed. Reads open the final name with
    O_NOFOLLOW|O_NONBLOCK and accept regular files only (a FIFO, socket or device fails at once).
  * Writes never write through an existing name: a new file is created with
    O_CREAT|O_EXCL|O_NOFOLLOW (a dangling symlink is never followed), an existing one is replaced
    by a temporary file in the same directory and os.replace. So a hard link to a file outside
    the workspace is broken, not written through; the outside file keeps its contents.
Not covered: the full-access mode deliberately lets paths leave the workspace (protected names,
the ossy home and /proc, /sys, /dev stay refused); races that replace a whole directory with
another real directory (not a symlink) inside the workspace are harmless and not detected.
"""

from __future__ import annotations

import codecs
import errno
import os
import secrets
import stat
import unicodedata
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from ossy.tools.base import ToolContext, ToolError

PATH_MAX = 4096  # bytes in a path (Linux PATH_MAX)
NAME_MAX = 255  # bytes in one path component (Linux NAME_MAX)
SPECIAL_ROOTS = ("/proc", "/sys", "/dev")  # kernel file systems: never reachable by file tools
# Names that configure something that runs code or holds credentials: never written (nor
# created, deleted or moved) when they appear anywhere in a path.
PROTECTED_NAMES = frozenset({
    ".git", ".ssh", ".gitconfig", ".gitmodules",
    ".bashrc", ".bash_profile", ".bash_login", ".bash_logout", ".profile",
    ".zshrc", ".zprofile", ".zshenv", ".zlogin",
})
_DIR_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_ESCAPED_CATEGORIES = ("Cc", "Cf", "Cs", "Co", "Zl", "Zp")  # controls, bidi/format, surrogates
_CHUNK = 1 << 20
MAX_DEPTH = 64  # directory levels `walk` enters


# --- showing names -----------------------------------------------------------------------------

def display(text: str, limit: int | None = None) -> str:
    """`text` (a file name or path) with control, bidi/format and surrogate-escaped characters
    written as \\xNN / \\uNNNN escapes, so it shows and serialises as itself; `limit` keeps the
    head and tail of a longer text."""
    if not text.isprintable():
        text = "".join(_escape(ch) if unicodedata.category(ch) in _ESCAPED_CATEGORIES else ch
                       for ch in text)
    if limit is not None and len(text) > limit:
        half = max(limit // 2 - 1, 1)
        text = f"{text[:half]}...{text[-half:]}"
    return text


def _escape(ch: str) -> str:
    code = ord(ch)
    if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte of a file name (surrogateescape)
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def shown(ctx: ToolContext, real: str | Path) -> str:
    """A real path as tools show it: relative to the workspace when inside, escaped."""
    real = os.fspath(real)
    workspace = workspace_of(ctx)
    return display(os.path.relpath(real, workspace) if within(real, workspace) else real)


# --- resolving ---------------------------------------------------------------------------------

def workspace_of(ctx: ToolContext) -> str:
    return os.path.realpath(ctx.workspace)


def resolve(ctx: ToolContext, path: str | os.PathLike, *, write: bool = False,
            must_exist: bool = True, follow: bool = True) -> Path:
    """The real path `path` names (relative paths start at the workspace), checked against the
    policy (module docstring), or ToolError naming the path and the reason. follow=False keeps a
    final symlink itself (delete, move and file_info act on the link, not on what it points to)."""
    path = _checked_text(path)
    workspace = workspace_of(ctx)
    joined = os.path.join(workspace, path)
    try:
        real = _real_path(joined, follow)
    except (OSError, ValueError) as exc:
        raise _refused(path, f"cannot be resolved ({exc})") from None
    _refuse_special(path, joined, real, workspace)
    if ctx.policy.mode != "full-access" and not within(real, workspace):
        raise _refused(path, f"is outside the workspace {display(workspace)}")
    if write:
        _refuse_write(ctx, path, real, workspace)
    if must_exist and not os.path.lexists(real):
        raise _refused(path, "does not exist")
    return Path(real)


def _checked_text(path: str | os.PathLike) -> str:
    if isinstance(path, os.PathLike):
        path = os.fspath(path)
    if not isinstance(path, str):
        raise ToolError("a path must be a string")
    if not path:
        raise ToolError("the path is empty")
    if "\x00" in path:
        raise _refused(path, "contains a NUL byte")
    if path.startswith("~"):
        raise _refused(path, '"~" is not expanded: give a path relative to the workspace')
    try:
        encoded = os.fsencode(path)
    except ValueError:
        raise _refused(path, "is not a valid file name (unpaired surrogate)") from None
    if len(encoded) > PATH_MAX:
        raise _refused(path, f"is too long ({len(encoded)} bytes; the limit is {PATH_MAX})")
    longest = max(len(part) for part in encoded.split(b"/"))
    if longest > NAME_MAX:
        raise _refused(path, f"has a name of {longest} bytes (the limit is {NAME_MAX})")
    return path


def _real_path(joined: str, follow: bool) -> str:
    head, tail = os.path.split(joined)
    if follow or tail in ("", ".", ".."):
        return _single_root(os.path.realpath(joined))
    return os.path.join(_single_root(os.path.realpath(head)), tail)


def _single_root(path: str) -> str:
    return "/" + path.lstrip("/") if path.startswith("//") else path


def within(path: str | Path, root: str | Path) -> bool:
    """`path` is `root` or below it (absolute, normalised paths; by components, not prefix)."""
    path, root = os.fspath(path), os.fspath(root)
    return os.path.commonpath([path, root]) == root


def _refuse_special(path: str, joined: str, real: str, workspace: str) -> None:
    lexical = _single_root(os.path.normpath(joined))
    for root in SPECIAL_ROOTS:
        if within(workspace, root):  # a workspace in /dev/shm: containment (and the regular-file
            continue                  # check of reads) still keep devices out
        if within(lexical, root) or within(real, root):
            raise _refused(path, f"is under {root}, which file tools may not use")


def _refuse_write(ctx: ToolContext, path: str, real: str, workspace: str) -> None:
    if ctx.policy.mode == "read-only":
        raise _refused(path, "cannot be changed: the sandbox mode is read-only")
    parts = os.path.relpath(real, workspace) if within(real, workspace) else real
    protected = next((part for part in parts.split("/") if part in PROTECTED_NAMES), None)
    if protected is not None:
        raise _refused(path, f"is protected ({protected} configures code or credentials); "
                             "ask the user to change it")
    home = os.path.realpath(ctx.home)
    if within(real, home):
        raise _refused(path, f"is inside the ossy home {display(home)}, which tools may not change")


def _refused(path: str, why: str) -> ToolError:
    return ToolError(f'"{display(path, 160)}" {why}')


# --- descriptor-level primitives ---------------------------------------------------------------

@contextmanager
def os_errors(path: str | Path) -> Iterator[None]:
    """Turn an OSError of a file operation into a ToolError naming `path`."""
    try:
        yield
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR) and os.path.islink(os.fspath(path)):
            why = "is a symbolic link now (it changed during the call); refused"
        elif exc.errno == errno.ELOOP:
            why = "has a symbolic link in its path now (it changed during the call); refused"
        else:
            why = f"failed: {exc.strerror or exc}"
        raise ToolError(f'"{display(os.fspath(path), 160)}" {why}') from None


def open_dir(real: str | Path, *, create: bool = False, flags: int = _DIR_FLAGS) -> int:
    """A descriptor of the directory `real` (a resolved path), reached from "/" one component at
    a time without following symlinks; create=True makes missing components (mode 0o777 & umask).
    Raises OSError (ELOOP/ENOTDIR when a component is, or became, a symlink)."""
    parts = [part for part in os.fspath(real).split("/") if part]
    fd = os.open("/", _DIR_FLAGS)
    try:
        for index, part in enumerate(parts):
            next_fd = _open_component(fd, part, flags if index == len(parts) - 1 else _DIR_FLAGS, create)
            os.close(fd)
            fd = next_fd
        if not parts and flags != _DIR_FLAGS:
            next_fd = os.open(".", flags, dir_fd=fd)
            os.close(fd)
            fd = next_fd
    except BaseException:
        os.close(fd)
        raise
    return fd


def _open_component(dir_fd: int, name: str, flags: int, create: bool) -> int:
    try:
        return os.open(name, flags, dir_fd=dir_fd)
    except FileNotFoundError:
        if not create:
            raise
    try:
        os.mkdir(name, dir_fd=dir_fd)
    except FileExistsError:  # made by someone else meanwhile: opened (and checked) below
        pass
    return os.open(name, flags, dir_fd=dir_fd)


@contextmanager
def parent_dir(real: str | Path, *, create: bool = False) -> Iterator[tuple[int, str]]:
    """(descriptor of the directory holding `real`, final name); closed on exit."""
    head, name = os.path.split(os.fspath(real))
    fd = open_dir(head, create=create)
    try:
        yield fd, name
    finally:
        os.close(fd)


def lstat_at(dir_fd: int, name: str) -> os.stat_result | None:
    """The entry `name` itself (a symlink is not followed), or None when there is none."""
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def kind(mode: int) -> str:
    """A file type in words."""
    for test, word in ((stat.S_ISREG, "file"), (stat.S_ISDIR, "directory"), (stat.S_ISLNK, "symlink"),
                       (stat.S_ISFIFO, "fifo"), (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "character device"),
                       (stat.S_ISBLK, "block device")):
        if test(mode):
            return word
    return "unknown"


def open_regular_at(dir_fd: int, name: str) -> int:
    """A read descriptor of the regular file `name` in `dir_fd`: the name is checked with lstat
    before opening (a device is never opened) and the opened file is checked again with fstat
    (O_NONBLOCK|O_NOFOLLOW, so neither a FIFO nor a swapped-in symlink can block or redirect)."""
    before = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    if not stat.S_ISREG(before.st_mode):
        raise ToolError(f'"{display(name, 160)}" is a {kind(before.st_mode)}, not a regular file')
    fd = os.open(name, _READ_FLAGS, dir_fd=dir_fd)
    after = os.fstat(fd)
    if not stat.S_ISREG(after.st_mode) or (after.st_dev, after.st_ino) != (before.st_dev, before.st_ino):
        os.close(fd)
        raise ToolError(f'"{display(name, 160)}" changed while it was opened; refused')
    return fd


def read_fd(fd: int, limit: int) -> bytes:
    """Up to `limit` bytes from `fd`."""
    chunks, left = [], limit
    while left > 0:
        chunk = os.read(fd, min(left, _CHUNK))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def write_fd(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def replace_file(real: str | Path, fill: Callable[[int], None], *, overwrite: bool,
                 create_dirs: bool = False) -> bool:
    """Store a file at `real` whose contents `fill(fd)` writes; True when it was created.
    A new file: O_CREAT|O_EXCL|O_NOFOLLOW on the final name. An existing one (overwrite=True):
    a temporary file in the same directory (existing permission bits kept) and os.replace, which
    replaces the name (a hard link is broken, a symlink itself replaced) and never writes through
    it. Raises OSError or ToolError."""
    with parent_dir(real, create=create_dirs) as (dir_fd, name):
        old = lstat_at(dir_fd, name)
        if old is None:
            _create_at(dir_fd, name, fill)
            return True
        if not overwrite:
            raise ToolError(f'"{display(os.fspath(real), 160)}" already exists (pass overwrite=true to replace it)')
        if not (stat.S_ISREG(old.st_mode) or stat.S_ISLNK(old.st_mode)):
            raise ToolError(f'"{display(os.fspath(real), 160)}" is a {kind(old.st_mode)}, not a regular file')
        temp = f".ossy-{secrets.token_hex(6)}.tmp"
        mode = stat.S_IMODE(old.st_mode) & 0o777 if stat.S_ISREG(old.st_mode) else None
        _create_at(dir_fd, temp, fill, mode=mode)
        try:
            os.replace(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            os.unlink(temp, dir_fd=dir_fd)
            raise
        return False


def _create_at(dir_fd: int, name: str, fill: Callable[[int], None], *, mode: int | None = None) -> None:
    """Create `name` (never an existing name, never through a symlink) and fill it; `mode`
    None: 0o666 less the umask."""
    fd = os.open(name, _CREATE_FLAGS, 0o666 if mode is None else 0o600, dir_fd=dir_fd)
    try:
        if mode is not None:
            os.fchmod(fd, mode)
        fill(fd)
    except BaseException:
        os.close(fd)
        os.unlink(name, dir_fd=dir_fd)
        raise
    os.close(fd)


@dataclass(frozen=True)
class Entry:
    """One entry of `walk`. `dir_fd` is the open directory holding it, valid until the walk
    moves on (open the entry with `open_regular_at(entry.dir_fd, entry.name)`)."""

    rel: str  # path relative to the walked directory
    name: str
    kind: str  # see `kind`
    size: int
    dir_fd: int
    depth: int


def walk(real_dir: str | Path, *, recursive: bool, hidden: bool = True,
         prune: frozenset[str] = frozenset(), max_depth: int = MAX_DEPTH) -> Iterator[Entry]:
    """The entries under `real_dir`, sorted by name per directory, depth first. Directories are
    opened relative to their parent's descriptor with O_NOFOLLOW, so a symlink (even one swapped
    in mid-walk) is listed, never entered. hidden=False skips names starting with "."; `prune`
    names are listed but not entered. Raises OSError when `real_dir` cannot be opened."""
    fd = open_dir(real_dir, flags=os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        yield from _walk_fd(fd, "", recursive, hidden, prune, max_depth, 0)
    finally:
        os.close(fd)


def _walk_fd(fd: int, prefix: str, recursive: bool, hidden: bool, prune: frozenset[str],
             max_depth: int, depth: int) -> Iterator[Entry]:
    with os.scandir(fd) as scan:
        names = sorted(entry.name for entry in scan if hidden or not entry.name.startswith("."))
    for name in names:
        st = lstat_at(fd, name)
        if st is None:  # removed since the directory was read
            continue
        entry = Entry(prefix + name, name, kind(st.st_mode), st.st_size, fd, depth)
        yield entry
        if recursive and entry.kind == "directory" and name not in prune and depth < max_depth:
            try:
                sub = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            except OSError:  # unreadable, or swapped for a symlink: not entered
                continue
            try:
                yield from _walk_fd(sub, f"{entry.rel}/", recursive, hidden, prune, max_depth, depth + 1)
            finally:
                os.close(sub)


# --- reading and writing -----------------------------------------------------------------------

def text_codec(encoding: str) -> str:
    """`encoding` if Python knows it as a text encoding, else ToolError."""
    try:
        b"x".decode(encoding, "replace")  # LookupError for unknown names and bytes codecs (hex, zlib)
    except (LookupError, ValueError):
        raise ToolError(f'"{display(encoding, 60)}" is not a known text encoding') from None
    return encoding


def read_bytes(ctx: ToolContext, path: str | os.PathLike, limit: int) -> tuple[bytes, bool, int]:
    """(up to `limit` bytes of the regular file `path`, truncated, file size)."""
    real = resolve(ctx, path)
    with os_errors(real), parent_dir(real) as (dir_fd, name):
        fd = open_regular_at(dir_fd, name)
        try:
            size = os.fstat(fd).st_size
            data = read_fd(fd, limit + 1)
        finally:
            os.close(fd)
    return data[:limit], len(data) > limit, size


def read_text(ctx: ToolContext, path: str | os.PathLike, limit: int, *,
              encoding: str = "utf-8") -> tuple[str, bool, int]:
    """(text of the first `limit` bytes of `path`, truncated, file size in bytes). Undecodable
    bytes become U+FFFD; a character cut by the limit is dropped rather than mangled."""
    decoder = codecs.getincrementaldecoder(text_codec(encoding))(errors="replace")
    data, truncated, size = read_bytes(ctx, path, limit)
    return decoder.decode(data, final=not truncated), truncated, size


def write_bytes(ctx: ToolContext, path: str | os.PathLike, data: bytes, *, overwrite: bool = True,
                create_dirs: bool = False) -> bool:
    """Store `data` at `path` (checked as a write); True when the file was created. See
    `replace_file` for how existing files, hard links and symlinks are handled."""
    real = resolve(ctx, path, write=True, must_exist=False)
    with os_errors(real):
        return replace_file(real, lambda fd: write_fd(fd, data), overwrite=overwrite,
                            create_dirs=create_dirs)


def write_text(ctx: ToolContext, path: str | os.PathLike, text: str, *, encoding: str = "utf-8",
               overwrite: bool = True, create_dirs: bool = False) -> bool:
    try:
        data = text.encode(text_codec(encoding))
    except UnicodeEncodeError as exc:
        raise ToolError(f"the content cannot be encoded as {encoding}: {exc.reason} "
                        f"at character {exc.start}") from None
    return write_bytes(ctx, path, data, overwrite=overwrite, create_dirs=create_dirs)
