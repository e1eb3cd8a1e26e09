"""Crash-safe file writing for the store: temp file, fsync, rename; and the store lock.

Owns: how a file gets its final name only once it is complete (`TempFile`, `publish`,
`atomic_write`), the naming of temp files and directories (`.tmp-<pid>-<random>`, so that the
leftovers of a killed process are recognised and removed by `remove_stale_temps`), and
`StoreLock`, the `flock` that any number of writers share and that garbage collection takes
only when no writer holds it.
Does not own: what is written (`ossy.store.store`).
"""

from __future__ import annotations

import fcntl
import os
import secrets
import shutil
from pathlib import Path

TEMP_PREFIX = ".tmp-"


def temp_name(directory: Path) -> Path:
    """A fresh temp path in `directory` (created if missing), tagged with this process id."""
    directory.mkdir(parents=True, exist_ok=True)
    return directory / f"{TEMP_PREFIX}{os.getpid()}-{secrets.token_hex(6)}"


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class TempFile:
    """A file being written under a temp name; `finish` makes it durable, `discard` drops it."""

    def __init__(self, directory: Path) -> None:
        self.path = temp_name(directory)
        self._file = open(self.path, "xb")

    def write(self, data: bytes) -> None:
        self._file.write(data)

    def finish(self) -> Path:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        return self.path

    def discard(self) -> None:
        try:
            self._file.close()  # may fail again flushing its buffer on a full disk
        except OSError:
            pass
        finally:
            self.path.unlink(missing_ok=True)


def publish(temp: Path, final: Path, *, replace: bool = True) -> None:
    """Rename a finished temp file to `final`. With `replace=False` an existing `final` wins and
    the temp file is dropped (content-addressed files with the same name are equal)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    if not replace and final.exists():
        temp.unlink(missing_ok=True)
        return
    os.replace(temp, final)
    fsync_dir(final.parent)


def atomic_write(path: Path, data: bytes, *, replace: bool = True) -> None:
    """Write `data` to `path` so that readers see the old file or the whole new one, never part."""
    tmp = TempFile(path.parent)
    try:
        tmp.write(data)
        tmp.finish()
        publish(tmp.path, path, replace=replace)
    except BaseException:
        tmp.discard()
        raise


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temps(directory: Path, *, all_stale: bool = False) -> None:
    """Delete temp files and directories below `directory` whose writer is no longer running;
    every one with `all_stale` (the caller holds the store lock alone, so no writer runs: a
    process id reused since a writer was killed does not keep its leftovers)."""
    if not directory.is_dir():
        return
    for entry in list(directory.rglob(TEMP_PREFIX + "*")):
        pid = entry.name[len(TEMP_PREFIX):].split("-", 1)[0]
        if all_stale or (pid.isdigit() and not _pid_alive(int(pid))):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)


class StoreLock:
    """`flock` on `<root>/.lock`: writers share it (`shared`); garbage collection runs only if
    it gets it alone at once (`try_exclusive`), so a long create never blocks `rm`."""

    def __init__(self, root: Path) -> None:
        self.path = root / ".lock"
        self._fd: int | None = None

    def _open(self) -> int:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        return self._fd

    def shared(self) -> "StoreLock":
        fcntl.flock(self._open(), fcntl.LOCK_SH)
        return self

    def try_exclusive(self) -> bool:
        fd = self._open()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.release()
            return False
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    def __enter__(self) -> "StoreLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()
