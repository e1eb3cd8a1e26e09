"""The `fs` toolset: file tools that run in-process, inside the workspace.

Owns: read_file, write_file, edit_file, list_directory (alias list_dir), create_directory,
delete_file, copy_file, move_file, file_info, find_files, search_files (alias search_file) — their
schemas, handlers and dry-run previews, and the caps that bound their work. Does not own path
checks and symlink-safe I/O (`ossy.tools.paths`, which every file access here goes through),
approvals, dry-run dispatch and output caps (`ossy.tools.executor`) or processes (none start here).

Paths shown to the model are relative to the workspace, with control and bidi characters escaped.
Destructive tools (write, edit, create, delete, copy, move) have a preview that states exactly
what would change: a unified diff for write/edit, the paths for delete and create, source ->
destination and what is overwritten for copy/move.
"""

from __future__ import annotations

import difflib
import fnmatch
import grp
import os
import pwd
import re
import shutil
import stat
import time
from datetime import datetime
from pathlib import Path
from typing import Callable

import regex

from ossy.tools import paths
from ossy.tools.base import Tool, ToolContext, ToolError, ToolResult
from ossy.tools.paths import display, resolve, shown

READ_LIMIT = 1 << 20  # bytes read_file returns at most (max_size can only lower it)
EDIT_LIMIT = 10 << 20  # bytes of a file edit_file will load
DIFF_LIMIT = 256 << 10  # characters per side a preview diffs; larger changes are summarised
COPY_LIMIT = 1 << 30  # bytes copy_file copies (larger: use the shell)
LIST_LIMIT = 1000  # entries list_directory shows
FIND_LIMIT = 500  # paths find_files returns
SCAN_LIMIT = 100_000  # entries a listing, find, search or delete walks at most
PREVIEW_PATHS = 100  # paths a delete preview names
SEARCH_RESULTS = 200  # default matching lines search_files returns (max_results: up to 1000)
SEARCH_FILE_LIMIT = 4 << 20  # bytes searched per file
SEARCH_TOTAL_LIMIT = 64 << 20  # bytes searched per call
SEARCH_SECONDS = 10.0  # time a search may take (regex backtracking included)
LINE_SHOWN = 300  # characters of a matching line shown
PRUNED = frozenset({".git"})  # directories find_files and search_files do not enter
_LINE = re.compile(r"[^\n]*\n|[^\n]+\Z")


# --- schemas -----------------------------------------------------------------------------------

def _schema(required: list[str], **properties: dict) -> dict:
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}


def _string(description: str, **extra) -> dict:
    return {"type": "string", "description": description, **extra}


def _boolean(description: str, default: bool) -> dict:
    return {"type": "boolean", "description": description, "default": default}


def _path(description: str = "File path, relative to the workspace (or absolute inside it)", **extra) -> dict:
    return _string(description, minLength=1, **extra)


_ENCODING = _string("Text encoding", default="utf-8")
_OVERWRITE = _boolean("Replace the destination if it already exists", False)


# --- read_file ---------------------------------------------------------------------------------

def _read_file(args: dict, ctx: ToolContext) -> ToolResult:
    limit = min(int(args.get("max_size", READ_LIMIT)), READ_LIMIT)
    text, truncated, size = paths.read_text(ctx, args["path"], limit, encoding=args.get("encoding", "utf-8"))
    if truncated:
        text += f"\n[... truncated: showed the first {limit} of {size} bytes ...]"
    return ToolResult(output=text, truncated=truncated, data={"size": size, "truncated": truncated})


# --- write_file and edit_file ------------------------------------------------------------------

def _write_target(args: dict, ctx: ToolContext) -> Path:
    real = resolve(ctx, args["path"], write=True, must_exist=False)
    if not args.get("create_dirs", True) and not os.path.isdir(real.parent):
        raise ToolError(f'the directory of "{shown(ctx, real)}" does not exist (pass create_dirs=true)')
    if real.is_dir():
        raise ToolError(f'"{shown(ctx, real)}" is a directory')
    return real


def _write_file(args: dict, ctx: ToolContext) -> str:
    real = _write_target(args, ctx)
    created = paths.write_text(ctx, real, args["content"], encoding=args.get("encoding", "utf-8"),
                               create_dirs=args.get("create_dirs", True))
    size = os.path.getsize(real)
    return f'{"created" if created else "replaced"} {shown(ctx, real)} ({size} bytes)'


def _preview_write(args: dict, ctx: ToolContext) -> str:
    real = _write_target(args, ctx)
    new, label = args["content"], shown(ctx, real)
    if not real.exists():
        return f"would create {label} ({len(new)} characters)\n" + _diff(label, "", new)
    old, truncated, size = paths.read_text(ctx, real, DIFF_LIMIT, encoding=args.get("encoding", "utf-8"))
    head = f"would replace {label} ({size} bytes) with {len(new)} characters"
    return head + (" (too large to diff)" if truncated else "\n" + _diff(label, old, new))


def _diff(label: str, old: str, new: str) -> str:
    """A unified diff of `old` -> `new` (summarised when either side is too large)."""
    if old == new:
        return "(no changes)"
    if max(len(old), len(new)) > DIFF_LIMIT:
        return f"(diff not shown: over {DIFF_LIMIT} characters)"
    lines = difflib.unified_diff(_lines(old), _lines(new),
                                 fromfile=f"a/{label}", tofile=f"b/{label}")
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)


def _lines(text: str) -> list[str]:
    """`text` split after each "\\n" (only "\\n" ends a line, as for grep and sed)."""
    return _LINE.findall(text)


def _as_lines(content: str) -> str:
    return content if not content or content.endswith("\n") else content + "\n"


def _needed(args: dict, key: str) -> object:
    if args.get(key) is None:
        raise ToolError(f'operation "{args["operation"]}" needs "{key}"')
    return args[key]


def _line_in(lines: list[str], line: int, last: int) -> int:
    if not 1 <= line <= last:
        raise ToolError(f"line {line} is out of range: the file has {len(lines)} lines")
    return line - 1


def _edit_insert(text: str, args: dict) -> tuple[str, str]:
    content, lines = _as_lines(_needed(args, "content")), _lines(text)
    index = _line_in(lines, _needed(args, "line"), len(lines) + 1)
    if index == len(lines) and lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    lines.insert(index, content)
    where = "at the end" if index == len(lines) - 1 else f"before line {index + 1}"
    return "".join(lines), f"inserted {len(_lines(content))} line(s) {where}"


def _edit_replace(text: str, args: dict) -> tuple[str, str]:
    target = _needed(args, "target")
    replacement = args.get("replacement", args.get("content"))
    if replacement is None:
        raise ToolError('operation "replace" needs "replacement"')
    count = _occurrences(text, target)
    return text.replace(target, replacement), f"replaced {count} occurrence(s) of the target text"


def _edit_append(text: str, args: dict) -> tuple[str, str]:
    content = _needed(args, "content")
    separator = "\n" if text and not text.endswith("\n") else ""
    return text + separator + content, f"appended {len(content)} characters"


def _edit_delete(text: str, args: dict) -> tuple[str, str]:
    if (args.get("line") is None) == (args.get("target") is None):
        raise ToolError('operation "delete" needs either "line" or "target" (not both)')
    if args.get("target") is not None:
        count = _occurrences(text, args["target"])
        return text.replace(args["target"], ""), f"deleted {count} occurrence(s) of the target text"
    lines = _lines(text)
    index = _line_in(lines, args["line"], len(lines))
    del lines[index]
    return "".join(lines), f"deleted line {index + 1}"


def _occurrences(text: str, target: str) -> int:
    count = text.count(target)
    if count == 0:
        raise ToolError("the target text was not found in the file (nothing changed); "
                        "read the file and copy the exact text, whitespace included")
    return count


_EDITS: dict[str, Callable[[str, dict], tuple[str, str]]] = {
    "insert": _edit_insert, "replace": _edit_replace, "append": _edit_append, "delete": _edit_delete,
}


def _plan_edit(args: dict, ctx: ToolContext) -> tuple[Path, str, str, str]:
    """(real path, old text, new text, what changed)."""
    real = resolve(ctx, args["path"], write=True)
    data, truncated, size = paths.read_bytes(ctx, real, EDIT_LIMIT)
    if truncated:
        raise ToolError(f'"{shown(ctx, real)}" is {size} bytes; edit_file edits files up to {EDIT_LIMIT} bytes')
    try:
        old = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ToolError(f'"{shown(ctx, real)}" is not UTF-8 text (byte {exc.start}); editing it would '
                        "corrupt it, use write_file to replace it") from None
    new, summary = _EDITS[args["operation"]](old, args)
    return real, old, new, summary


def _edit_file(args: dict, ctx: ToolContext) -> str:
    real, _, new, summary = _plan_edit(args, ctx)
    paths.write_bytes(ctx, real, new.encode("utf-8"))
    return f"{summary} in {shown(ctx, real)}"


def _preview_edit(args: dict, ctx: ToolContext) -> str:
    real, old, new, summary = _plan_edit(args, ctx)
    label = shown(ctx, real)
    return f"would edit {label}: {summary}\n" + _diff(label, old, new)


# --- list_directory, find_files ----------------------------------------------------------------

_LS_FLAGS = {"a": "show_hidden", "A": "show_hidden", "R": "recursive", "l": None, "h": None, "1": None}


def _list_options(options: dict | str | None) -> dict:
    """The options object, or an `ls`-style flag string ("-la", "-R") turned into one."""
    if not isinstance(options, str):
        return options or {}
    parsed = {}
    for token in options.split():
        letters = token[1:]
        if not token.startswith("-") or not letters or any(ch not in _LS_FLAGS for ch in letters):
            raise ToolError(f'unsupported option "{display(token, 40)}": use -a (hidden), -R (recursive) or '
                            'an object {"recursive": true, "show_hidden": true, "filter": "*.py"}')
        parsed.update({_LS_FLAGS[ch]: True for ch in letters if _LS_FLAGS[ch]})
    return parsed


def _entries(count: int) -> str:
    return f"{count} {'entry' if count == 1 else 'entries'}"


def _directory(ctx: ToolContext, path: str) -> Path:
    real = resolve(ctx, path)
    if not real.is_dir():
        raise ToolError(f'"{shown(ctx, real)}" is not a directory')
    return real


def _entry_line(entry: paths.Entry, shown_path: str) -> str:
    if entry.kind == "symlink":
        return f"{shown_path} -> {display(os.readlink(entry.name, dir_fd=entry.dir_fd))}"
    return listing_line(entry.kind, shown_path, entry.size)


def listing_line(kind: str, shown_path: str, size: int) -> str:
    """A listing's line for a directory (`name/`), a file (`name  (N bytes)`) or another kind."""
    if kind == "directory":
        return f"{shown_path}/"
    if kind == "file":
        return f"{shown_path}  ({size} bytes)"
    return f"{shown_path}  [{kind}]"


def listing_header(shown_directory: str, count: int, capped: bool = False) -> str:
    """A listing's first line: `dir/ (N entries)`."""
    return f"{shown_directory}/ ({_entries(count)}{', more not shown' if capped else ''})"


def _list_directory(args: dict, ctx: ToolContext) -> ToolResult:
    real = _directory(ctx, args["path"])
    options = _list_options(args.get("options"))
    pattern = options.get("filter")
    lines, entries, capped = [], [], False
    walk = paths.walk(real, recursive=bool(options.get("recursive")), hidden=bool(options.get("show_hidden")))
    with paths.os_errors(real):
        for scanned, entry in enumerate(walk):
            if scanned >= SCAN_LIMIT or len(lines) >= LIST_LIMIT:
                capped = True
                break
            if pattern and not fnmatch.fnmatchcase(entry.name, pattern):
                continue
            lines.append(_entry_line(entry, display(entry.rel)))
            entries.append({"path": display(entry.rel), "type": entry.kind, "size": entry.size})
    header = listing_header(shown(ctx, real), len(lines), capped)
    if capped:
        lines.append(f"[... listing stopped after {len(lines)} entries; use filter or a subdirectory ...]")
    return ToolResult(output="\n".join([header, *lines]), truncated=capped,
                      data={"entries": entries, "truncated": capped})


def _name_matches(entry: paths.Entry, pattern: str) -> bool:
    """A pattern without "/" matches names; with "/" the path below the search root ("*" also
    matches "/"; a leading "**/" means "at any depth", the top level included)."""
    if "/" not in pattern:
        return fnmatch.fnmatchcase(entry.name, pattern)
    return fnmatch.fnmatchcase(entry.rel, pattern) or (
        pattern.startswith("**/") and fnmatch.fnmatchcase(entry.rel, pattern[3:]))


def _find_files(args: dict, ctx: ToolContext) -> ToolResult:
    real = _directory(ctx, args.get("path", "."))
    pattern = args["pattern"]
    found, capped = [], False
    with paths.os_errors(real):
        for scanned, entry in enumerate(paths.walk(real, recursive=args.get("recursive", True), prune=PRUNED)):
            if scanned >= SCAN_LIMIT or len(found) >= FIND_LIMIT:
                capped = True
                break
            if _name_matches(entry, pattern):
                found.append(shown(ctx, real / entry.rel) + ("/" if entry.kind == "directory" else ""))
    if not found:
        return ToolResult(output=f'no names match "{display(pattern)}" under {shown(ctx, real)}', data={"paths": []})
    output = "\n".join(found)
    if capped:
        output += f"\n[... stopped after {len(found)} results; narrow the pattern or the path ...]"
    return ToolResult(output=output, truncated=capped, data={"paths": found, "truncated": capped})


# --- search_files ------------------------------------------------------------------------------

class _Search:
    """Matching lines of files, within the caps on results, bytes and time."""

    def __init__(self, ctx: ToolContext, args: dict) -> None:
        self.ctx = ctx
        source = args["pattern"] if args.get("regex") else regex.escape(args["pattern"])
        flags = regex.MULTILINE | (regex.IGNORECASE if args.get("ignore_case") else 0)
        try:
            self.pattern = regex.compile(source, flags)
        except regex.error as exc:
            raise ToolError(f"invalid regular expression: {exc}") from None
        self.include = args.get("include")
        self.limit = args.get("max_results", SEARCH_RESULTS)
        self.deadline = time.monotonic() + SEARCH_SECONDS
        self.results: list[str] = []
        self.budget = SEARCH_TOTAL_LIMIT
        self.files = self.binary = self.partial = 0
        self.stopped = ""

    def file(self, dir_fd: int, name: str, real: Path) -> None:
        if self.include and not fnmatch.fnmatchcase(name, self.include):
            return
        cap = min(SEARCH_FILE_LIMIT, self.budget)
        try:
            fd = paths.open_regular_at(dir_fd, name)
            try:
                data = paths.read_fd(fd, cap + 1)
            finally:
                os.close(fd)
        except (OSError, ToolError):  # unreadable, or not a regular file: nothing to search
            return
        if b"\0" in data[:8192]:
            self.binary += 1
            return
        if len(data) > cap:
            data = data[:cap]
            self.partial += 1
        self.budget -= len(data)
        self.files += 1
        self._lines(data.decode("utf-8", "replace"), shown(self.ctx, real))

    def _lines(self, text: str, label: str) -> None:
        pos, line_no, counted = 0, 1, 0
        while len(self.results) < self.limit:
            try:
                match = self.pattern.search(text, pos, timeout=max(self.deadline - time.monotonic(), 0.001))
            except TimeoutError:
                self.stopped = f"the search took over {SEARCH_SECONDS:g} s"
                return
            if match is None:
                return
            line_no += text.count("\n", counted, match.start())
            counted = match.start()
            start = text.rfind("\n", 0, match.start()) + 1
            end = text.find("\n", match.start())
            end = len(text) if end < 0 else end
            self.results.append(f"{label}:{line_no}: {text[start:end][:LINE_SHOWN]}")
            pos = end + 1
            if pos > len(text):
                return

    def cap_reached(self) -> str:
        """Why the search must stop now ("" while it may go on)."""
        if len(self.results) >= self.limit:
            return f"showing the first {self.limit} matches"
        return f"searched {SEARCH_TOTAL_LIMIT} bytes" if self.budget <= 0 else ""

    def report(self, where: str) -> ToolResult:
        self.stopped = self.stopped or self.cap_reached()
        notes = [f"{count} {what}" for count, what in ((self.binary, "binary file(s) skipped"),
                 (self.partial, f"file(s) searched only in their first {SEARCH_FILE_LIMIT} bytes")) if count]
        if self.stopped:
            notes.append(f"stopped: {self.stopped}")
        body = self.results or [f"no matches in {self.files} file(s) under {where}"]
        output = "\n".join(body + ([f"[... {'; '.join(notes)} ...]"] if notes else []))
        return ToolResult(output=output, truncated=bool(self.stopped),
                          data={"matches": len(self.results), "files": self.files, "binary_skipped": self.binary,
                                "truncated": bool(self.stopped)})


def _search_files(args: dict, ctx: ToolContext) -> ToolResult:
    search = _Search(ctx, args)
    real = resolve(ctx, args.get("path", "."))
    with paths.os_errors(real):
        if not real.is_dir():
            with paths.parent_dir(real) as (dir_fd, name):
                search.file(dir_fd, name, real)
            return search.report(shown(ctx, real))
        walk = paths.walk(real, recursive=args.get("recursive", True), prune=PRUNED)
        for scanned, entry in enumerate(walk):
            if scanned >= SCAN_LIMIT:
                search.stopped = f"walked {SCAN_LIMIT} entries"
            if search.stopped or search.cap_reached():
                break
            if entry.kind == "file":
                search.file(entry.dir_fd, entry.name, real / entry.rel)
    return search.report(shown(ctx, real))


# --- create_directory, delete_file -------------------------------------------------------------

def _plan_mkdir(args: dict, ctx: ToolContext) -> tuple[Path, list[Path]]:
    """(real path, the directories that would be made, outermost first)."""
    real = resolve(ctx, args["path"], write=True, must_exist=False)
    missing, existing = [], real
    while not os.path.lexists(existing):
        missing.insert(0, existing)
        existing = existing.parent
    if not existing.is_dir():
        raise ToolError(f'"{shown(ctx, existing)}" exists and is not a directory')
    if len(missing) > 1 and not args.get("recursive", True):
        raise ToolError(f'"{shown(ctx, missing[0])}" does not exist (pass recursive=true to create parents)')
    return real, missing


def _create_directory(args: dict, ctx: ToolContext) -> str:
    real, missing = _plan_mkdir(args, ctx)
    if not missing:
        return f"{shown(ctx, real)} already exists"
    with paths.os_errors(real):
        os.close(paths.open_dir(real, create=True))
    return "created " + ", ".join(shown(ctx, path) for path in missing)


def _preview_mkdir(args: dict, ctx: ToolContext) -> str:
    real, missing = _plan_mkdir(args, ctx)
    if not missing:
        return f"no change: {shown(ctx, real)} already exists"
    return "would create directories:\n" + "\n".join(shown(ctx, path) for path in missing)


def _refuse_container(ctx: ToolContext, real: Path, what: str) -> None:
    if paths.within(paths.workspace_of(ctx), real):
        raise ToolError(f'refusing to {what} "{shown(ctx, real)}": it is the workspace root or contains it')


def _plan_delete(args: dict, ctx: ToolContext) -> tuple[Path, list[str]]:
    """(real path, the paths that would be removed: the path itself first)."""
    real = resolve(ctx, args["path"], write=True, follow=False)
    _refuse_container(ctx, real, "delete")
    label = shown(ctx, real)
    if not real.is_dir() or real.is_symlink():
        return real, [label]
    removed = [label + "/"]
    with paths.os_errors(real):
        for scanned, entry in enumerate(paths.walk(real, recursive=True)):
            if scanned >= SCAN_LIMIT or (entry.kind == "directory" and entry.depth >= paths.MAX_DEPTH):
                raise ToolError(f'"{label}" is too large to check (over {SCAN_LIMIT} entries or '
                                f"{paths.MAX_DEPTH} levels); delete it with the shell")
            if entry.name in paths.PROTECTED_NAMES:
                raise ToolError(f'"{label}" contains {display(entry.rel)}, which is protected; not deleted')
            removed.append(f"{label}/{display(entry.rel)}" + ("/" if entry.kind == "directory" else ""))
    if not args.get("force"):
        raise ToolError(f'"{label}" is a directory with {_entries(len(removed) - 1)}; '
                        "pass force=true to delete it and everything in it")
    return real, removed


def _delete_file(args: dict, ctx: ToolContext) -> str:
    real, removed = _plan_delete(args, ctx)
    with paths.os_errors(real), paths.parent_dir(real) as (dir_fd, name):
        entry = paths.lstat_at(dir_fd, name)
        if entry is not None and stat.S_ISDIR(entry.st_mode):
            shutil.rmtree(name, dir_fd=dir_fd)
        else:
            os.unlink(name, dir_fd=dir_fd)
    more = f" and the {_entries(len(removed) - 1)} in it" if len(removed) > 1 else ""
    return f"deleted {removed[0]}{more}"


def _preview_delete(args: dict, ctx: ToolContext) -> str:
    _, removed = _plan_delete(args, ctx)
    shown_paths = removed[:PREVIEW_PATHS]
    if len(removed) > PREVIEW_PATHS:
        shown_paths.append(f"... and {len(removed) - PREVIEW_PATHS} more")
    return f"would delete {len(removed)} path(s):\n" + "\n".join(shown_paths)


# --- copy_file, move_file ----------------------------------------------------------------------

def _plan_transfer(args: dict, ctx: ToolContext, *, move: bool) -> tuple[Path, Path, os.stat_result | None]:
    """(source, destination, the entry the destination would replace or None). A move acts on a
    symlink itself; a copy copies the regular file a path names. An existing directory as the
    destination means "into it", as for cp and mv."""
    source = resolve(ctx, args["source"], write=move, follow=not move)
    if move:
        _refuse_container(ctx, source, "move")
    elif not source.is_file():
        raise ToolError(f'"{shown(ctx, source)}" is not a regular file (copy_file copies files)')
    destination = resolve(ctx, args["destination"], write=True, must_exist=False)
    if destination.is_dir():
        destination = resolve(ctx, destination / source.name, write=True, must_exist=False)
    if paths.within(destination, source):
        raise ToolError(f'"{shown(ctx, destination)}" is "{shown(ctx, source)}" or inside it')
    replaced = os.lstat(destination) if os.path.lexists(destination) else None
    if replaced is not None and not args.get("overwrite", False):
        raise ToolError(f'"{shown(ctx, destination)}" already exists (pass overwrite=true to replace it)')
    return source, destination, replaced


def _transfer_text(ctx: ToolContext, verb: str, source: Path, destination: Path,
                   replaced: os.stat_result | None) -> str:
    what = f"replacing a {paths.kind(replaced.st_mode)} of {replaced.st_size} bytes" if replaced else "new"
    return f"{verb} {shown(ctx, source)} -> {shown(ctx, destination)} ({what})"


def _copy_fd(source: int, destination: int) -> None:
    copied = 0
    while chunk := os.read(source, 1 << 20):
        copied += len(chunk)
        if copied > COPY_LIMIT:
            raise ToolError(f"the source is over {COPY_LIMIT} bytes; copy it with the shell")
        paths.write_fd(destination, chunk)


def _copy_file(args: dict, ctx: ToolContext) -> str:
    source, destination, replaced = _plan_transfer(args, ctx, move=False)
    with paths.os_errors(source), paths.parent_dir(source) as (dir_fd, name):
        fd = paths.open_regular_at(dir_fd, name)
        try:
            with paths.os_errors(destination):
                paths.replace_file(destination, lambda out: _copy_fd(fd, out), overwrite=replaced is not None)
        finally:
            os.close(fd)
    return _transfer_text(ctx, "copied", source, destination, replaced)


def _move_file(args: dict, ctx: ToolContext) -> str:
    source, destination, replaced = _plan_transfer(args, ctx, move=True)
    with paths.os_errors(source), paths.parent_dir(source) as (from_fd, from_name), \
            paths.parent_dir(destination) as (to_fd, to_name):
        if replaced is None and paths.lstat_at(to_fd, to_name) is not None:
            raise ToolError(f'"{shown(ctx, destination)}" appeared during the call; not overwritten')
        os.rename(from_name, to_name, src_dir_fd=from_fd, dst_dir_fd=to_fd)
    return _transfer_text(ctx, "moved", source, destination, replaced)


def _preview_copy(args: dict, ctx: ToolContext) -> str:
    return _transfer_text(ctx, "would copy", *_plan_transfer(args, ctx, move=False))


def _preview_move(args: dict, ctx: ToolContext) -> str:
    return _transfer_text(ctx, "would move", *_plan_transfer(args, ctx, move=True))


# --- file_info ---------------------------------------------------------------------------------

def _owner(st: os.stat_result) -> str:
    try:
        return pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        return str(st.st_uid)


def _group(st: os.stat_result) -> str:
    try:
        return grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        return str(st.st_gid)


def _when(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp).astimezone().isoformat(timespec="seconds")


_DETAILS: dict[str, Callable[[os.stat_result, Path], object]] = {
    "type": lambda st, _: paths.kind(st.st_mode),
    "size": lambda st, _: st.st_size,
    "permissions": lambda st, _: f"{stat.filemode(st.st_mode)} ({stat.S_IMODE(st.st_mode):04o})",
    "owner": lambda st, _: _owner(st),
    "group": lambda st, _: _group(st),
    "modified": lambda st, _: _when(st.st_mtime),
    "accessed": lambda st, _: _when(st.st_atime),
    "changed": lambda st, _: _when(st.st_ctime),
    "inode": lambda st, _: st.st_ino,
    "links": lambda st, _: st.st_nlink,
    "target": lambda st, real: display(os.readlink(real)) if stat.S_ISLNK(st.st_mode) else None,
}


def _file_info(args: dict, ctx: ToolContext) -> ToolResult:
    real = resolve(ctx, args["path"], follow=False)
    with paths.os_errors(real):
        st = os.lstat(real)
        wanted = args.get("details") or list(_DETAILS)
        info = {key: value for key, describe in _DETAILS.items()
                if key in wanted and (value := describe(st, real)) is not None}
    label = shown(ctx, real)
    lines = [f"path: {label}"] + [f"{key}: {value}" for key, value in info.items()]
    return ToolResult(output="\n".join(lines), data={"path": label, **info})


# --- the toolset -------------------------------------------------------------------------------

def toolset() -> list[Tool]:
    return [
        Tool("read_file", "fs",
             f"Read a text file in the workspace. Returns its text (at most {READ_LIMIT} bytes; longer files "
             "are cut with a marker). Undecodable bytes show as U+FFFD.",
             _schema(["path"], path=_path(), encoding=_ENCODING,
                     max_size={"type": "integer", "minimum": 1,
                               "description": f"Read at most this many bytes (capped at {READ_LIMIT})"}),
             _read_file),
        Tool("write_file", "fs",
             "Write text to a file, creating it or replacing its whole contents.",
             _schema(["path", "content"], path=_path(), content=_string("The complete new contents"),
                     encoding=_ENCODING,
                     create_dirs=_boolean("Create missing parent directories", True)),
             _write_file, destructive=True, preview=_preview_write),
        Tool("edit_file", "fs",
             "Edit a UTF-8 text file in place. operation: 'insert' puts content before line `line` "
             "(1-based; one past the last line appends); 'replace' replaces every occurrence of `target` "
             "with `replacement` (fails if target is absent); 'append' adds content at the end (after a "
             "newline if the file lacks one); 'delete' removes line `line`, or every occurrence of `target`.",
             _schema(["path", "operation"], path=_path(),
                     operation=_string("What to do", enum=list(_EDITS)),
                     target=_string("Exact text to find (replace, delete)", minLength=1),
                     replacement=_string("Text that replaces target (replace)"),
                     content=_string("Text to insert or append (insert, append)"),
                     line={"type": "integer", "minimum": 1, "description": "1-based line number (insert, delete)"}),
             _edit_file, destructive=True, preview=_preview_edit),
        Tool("list_directory", "fs",
             f"List a directory: directories end with '/', files show their size, symlinks their target. "
             f"At most {LIST_LIMIT} entries.",
             _schema(["path"], path=_path("Directory path, relative to the workspace ('.' for the workspace)"),
                     options={"oneOf": [
                         _schema([], recursive=_boolean("List subdirectories too", False),
                                 show_hidden=_boolean("Include names starting with '.'", False),
                                 filter=_string("Only names matching this glob, e.g. '*.py'")),
                         _string("ls-style flags: -a (hidden), -R (recursive)")],
                         "description": "Listing options"}),
             _list_directory, aliases=("list_dir",)),
        Tool("create_directory", "fs", "Create a directory (and, by default, its missing parents).",
             _schema(["path"], path=_path("Directory path, relative to the workspace"),
                     recursive=_boolean("Create missing parent directories", True)),
             _create_directory, destructive=True, preview=_preview_mkdir),
        Tool("delete_file", "fs",
             "Delete a file or symlink (the link itself, never its target). A directory needs force=true "
             "and is deleted with everything in it. The workspace root cannot be deleted.",
             _schema(["path"], path=_path(), force=_boolean("Allow deleting a directory and its contents", False)),
             _delete_file, destructive=True, preview=_preview_delete),
        Tool("copy_file", "fs",
             "Copy a file. If destination is an existing directory the copy goes into it.",
             _schema(["source", "destination"], source=_path("File to copy"),
                     destination=_path("Destination file or directory"), overwrite=_OVERWRITE),
             _copy_file, destructive=True, preview=_preview_copy),
        Tool("move_file", "fs",
             "Move or rename a file, directory or symlink. If destination is an existing directory the "
             "source moves into it.",
             _schema(["source", "destination"], source=_path("Path to move"),
                     destination=_path("New path or existing directory"), overwrite=_OVERWRITE),
             _move_file, destructive=True, preview=_preview_move),
        Tool("file_info", "fs",
             "Show a path's type, size, permissions, owner, group, times, inode, link count and symlink "
             "target (for a symlink: the link itself).",
             _schema(["path"], path=_path(),
                     details={"type": "array", "items": {"type": "string", "enum": list(_DETAILS)},
                              "description": "Which details to include (default: all)"}),
             _file_info),
        Tool("find_files", "fs",
             f"Find files and directories whose name matches a glob (e.g. '*.py'; a pattern with '/' "
             f"matches the path below `path`). Does not enter .git or follow symlinks. At most {FIND_LIMIT} "
             "results, relative to the workspace.",
             _schema(["pattern"], pattern=_string("Glob pattern for names", minLength=1),
                     path=_path("Directory to search", default="."),
                     recursive=_boolean("Search subdirectories", True)),
             _find_files),
        Tool("search_files", "fs",
             "Search text in files under a path (or in one file). Prints 'path:line: text' for each "
             "matching line. Skips binary files and .git.",
             _schema(["pattern"], pattern=_string("Text to find (a regular expression if regex=true)", minLength=1),
                     path=_path("File or directory to search", default="."),
                     regex=_boolean("Treat pattern as a regular expression", False),
                     ignore_case=_boolean("Ignore case", False),
                     include=_string("Only files whose name matches this glob, e.g. '*.py'"),
                     recursive=_boolean("Search subdirectories", True),
                     max_results={"type": "integer", "minimum": 1, "maximum": 1000, "default": SEARCH_RESULTS,
                                  "description": "Most matching lines to return"}),
             _search_files, aliases=("search_file",)),
    ]
