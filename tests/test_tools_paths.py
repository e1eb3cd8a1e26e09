"""Path containment and symlink-safe I/O (`ossy.tools.paths`): the validator rows of
docs/reference/tools-security.md §6.2 (1-3, 5-9, 11, 13) at the resolver level, and a hypothesis property test:
whatever the path, the result is inside the workspace or a ToolError."""

from __future__ import annotations

import os
import socket
import string
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ossy.tools import paths
from ossy.tools.base import Policy, ToolContext, ToolError

CANARY = "canary-7f3a9c1e"


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    """tmp/workspace (with a.txt and sub/), beside tmp/workspace_evil and tmp/outside canaries."""
    workspace = tmp_path / "workspace"
    (workspace / "sub").mkdir(parents=True)
    (workspace / "a.txt").write_text("alpha\n")
    for sibling in ("workspace_evil", "outside"):
        (tmp_path / sibling).mkdir()
        (tmp_path / sibling / "canary").write_text(CANARY)
    return workspace


def context(ws: Path, mode: str = "workspace-write") -> ToolContext:
    return ToolContext(ws, Policy(mode=mode), home=ws.parent / "ossy-home")


def refused(ctx: ToolContext, path, match: str, **kw) -> str:
    with pytest.raises(ToolError, match=match) as info:
        paths.resolve(ctx, path, **kw)
    return str(info.value)


# --- containment -------------------------------------------------------------------------------

def test_relative_and_absolute_paths_inside_resolve_to_the_real_path(ws):
    ctx = context(ws)
    assert paths.resolve(ctx, "a.txt") == ws / "a.txt"
    assert paths.resolve(ctx, str(ws / "sub" / ".." / "a.txt")) == ws / "a.txt"
    assert paths.resolve(ctx, "./sub//../a.txt") == ws / "a.txt"
    assert paths.resolve(ctx, ".") == ws
    assert paths.resolve(ctx, "new/file.txt", must_exist=False) == ws / "new" / "file.txt"


@pytest.mark.parametrize("path", ["../../etc/passwd", "/etc/shadow", "..", "sub/../../outside/canary",
                                  "../workspace_evil/canary", "../workspace_evil"])
def test_paths_outside_the_workspace_are_refused(ws, path):
    message = refused(context(ws), path, "outside the workspace")
    assert path in message  # the message names the path


def test_sibling_with_the_workspace_as_string_prefix_is_outside(ws):
    evil = str(ws) + "_evil/canary"  # "/tmp/x/workspace_evil/canary".startswith("/tmp/x/workspace")
    assert evil.startswith(str(ws))
    refused(context(ws), evil, "outside the workspace")


def test_tilde_is_not_expanded(ws):
    refused(context(ws), "~/.ssh/id_rsa", "not expanded")
    refused(context(ws), "~root/.bashrc", "not expanded")
    assert paths.resolve(context(ws), "./~x", must_exist=False) == ws / "~x"  # a literal name is fine


def test_symlinks_to_outside_files_and_directories_are_refused(ws):
    (ws / "link").symlink_to(ws.parent / "outside" / "canary")
    (ws / "d").symlink_to("/")
    (ws / "up").symlink_to("..")
    ctx = context(ws)
    refused(ctx, "link", "outside the workspace")
    refused(ctx, "d/etc/passwd", "outside the workspace")
    refused(ctx, "up/outside/canary", "outside the workspace")
    refused(ctx, "up/workspace/../outside/canary", "outside the workspace")


def test_symlinks_inside_the_workspace_resolve_to_their_target(ws):
    (ws / "alias").symlink_to("a.txt")
    (ws / "sub" / "back").symlink_to("..")
    ctx = context(ws)
    assert paths.resolve(ctx, "alias") == ws / "a.txt"
    assert paths.resolve(ctx, "sub/back/sub/back/a.txt") == ws / "a.txt"
    assert paths.resolve(ctx, "alias", follow=False) == ws / "alias"  # the link itself


def test_a_dangling_symlink_to_outside_is_refused_as_a_write_target(ws):
    (ws / "new.txt").symlink_to(ws.parent / "outside" / "new.txt")
    refused(context(ws), "new.txt", "outside the workspace", write=True, must_exist=False)


def test_a_workspace_reached_through_a_symlink_still_contains_its_paths(tmp_path, ws):
    (tmp_path / "ws-link").symlink_to(ws)
    ctx = ToolContext(tmp_path / "ws-link", home=tmp_path / "home")
    assert paths.resolve(ctx, "a.txt") == ws / "a.txt"


@pytest.mark.parametrize("path", ["/proc/self/root/etc/passwd", "/proc/self/cwd/../..", "/proc/self/cwd",
                                  "/proc/1/environ", "/sys/kernel", "/dev/zero", "/dev/shm/x"])
def test_proc_sys_and_dev_are_refused_in_every_mode(ws, path):
    for mode in ("workspace-write", "full-access"):
        refused(context(ws, mode), path, "which file tools may not use|outside the workspace", must_exist=False)


def test_proc_self_cwd_is_refused_even_when_it_points_into_the_workspace(ws, monkeypatch):
    monkeypatch.chdir(ws)
    refused(context(ws), "/proc/self/cwd/a.txt", "under /proc")
    (ws / "magic").symlink_to("/proc/self/cwd")  # a link through /proc: the real path is what counts
    assert paths.resolve(context(ws), "magic/a.txt") == ws / "a.txt"


def test_nothing_is_refused_for_missing_files_before_containment(ws):
    # an outside path that does not exist says "outside", never "does not exist" (no probing)
    refused(context(ws), "/etc/no-such-file-here", "outside the workspace")
    refused(context(ws), "missing.txt", "does not exist")


# --- malformed paths ---------------------------------------------------------------------------

@pytest.mark.parametrize("path, match", [
    ("notes.txt\x00.png", "NUL byte"),
    ("a/" * 2500, "too long"),
    ("x" * 300, "name of 300 bytes"),
    ("", "empty"),
    ("bad\ud800name", "unpaired surrogate"),
    (["a"], "must be a string"),
    (b"a.txt", "must be a string"),
])
def test_malformed_paths_are_tool_errors_not_crashes(ws, path, match):
    refused(context(ws), path, match, must_exist=False)


def test_a_deep_path_within_the_limits_works_end_to_end(ws):
    deep = "/".join(["d" * 200] * 18) + "/f.txt"  # 3,624 bytes: walked one descriptor at a time
    paths.write_text(context(ws), deep, "deep", create_dirs=True)
    assert paths.read_text(context(ws), deep, 10) == ("deep", False, 4)


# --- writes ------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", [".git", ".git/config", ".git/hooks/pre-commit", "sub/.git/hooks/post-checkout",
                                  ".bashrc", ".bash_profile", ".profile", ".zshrc", "sub/.zprofile", ".gitconfig",
                                  ".gitmodules", ".ssh/authorized_keys"])
def test_protected_paths_are_refused_for_writes_even_when_missing(ws, path):
    ctx = context(ws)
    refused(ctx, path, "protected", write=True, must_exist=False)
    (ws / path).parent.mkdir(parents=True, exist_ok=True)
    (ws / path).write_text("x") if not path.endswith(".git") else (ws / path).mkdir(exist_ok=True)
    assert paths.resolve(ctx, path) == ws / path  # reading is fine


def test_a_symlink_to_a_protected_path_is_refused_for_writes(ws):
    (ws / "innocent").symlink_to(".git/config")
    refused(context(ws), "innocent", "protected", write=True, must_exist=False)


def test_env_files_are_writable(ws):
    assert paths.resolve(context(ws), ".env", write=True, must_exist=False) == ws / ".env"


def test_the_ossy_home_is_refused_for_writes(ws):
    ctx = ToolContext(ws, home=ws / "state")
    refused(ctx, "state/audit.sqlite", "ossy home", write=True, must_exist=False)
    assert paths.resolve(ctx, "stateful.txt", write=True, must_exist=False) == ws / "stateful.txt"


def test_read_only_mode_refuses_every_write(ws):
    ctx = context(ws, "read-only")
    refused(ctx, "new.txt", "read-only", write=True, must_exist=False)
    with pytest.raises(ToolError, match="read-only"):
        paths.write_text(ctx, "a.txt", "changed")
    assert (ws / "a.txt").read_text() == "alpha\n"
    assert paths.resolve(ctx, "a.txt") == ws / "a.txt"


def test_full_access_lifts_containment_but_not_protection(ws):
    ctx = context(ws, "full-access")
    outside = ws.parent / "outside" / "canary"
    assert paths.resolve(ctx, str(outside)) == outside
    assert paths.resolve(ctx, "../outside/canary") == outside
    refused(ctx, str(ws.parent / "outside" / ".bashrc"), "protected", write=True, must_exist=False)
    refused(ctx, str(ws.parent / "ossy-home" / "x"), "ossy home", write=True, must_exist=False)


def test_write_creates_replaces_and_keeps_permissions(ws):
    ctx = context(ws)
    assert paths.write_text(ctx, "deep/er/new.txt", "one\n", create_dirs=True) is True
    (ws / "deep/er/new.txt").chmod(0o640)
    assert paths.write_text(ctx, "deep/er/new.txt", "two\n") is False
    assert (ws / "deep/er/new.txt").read_text() == "two\n"
    assert (ws / "deep/er/new.txt").stat().st_mode & 0o777 == 0o640
    assert sorted(os.listdir(ws / "deep/er")) == ["new.txt"]  # no temporary file left
    with pytest.raises(ToolError, match="already exists"):
        paths.write_text(ctx, "a.txt", "x", overwrite=False)
    with pytest.raises(ToolError, match="cannot be encoded"):
        paths.write_text(ctx, "latin.txt", "\u20ac", encoding="latin-1")
    assert not (ws / "latin.txt").exists()


def test_a_hard_link_to_an_outside_file_is_replaced_not_written_through(ws):
    canary = ws.parent / "outside" / "canary"
    os.link(canary, ws / "h.txt")
    paths.write_text(context(ws), "h.txt", "overwritten")
    assert canary.read_text() == CANARY
    assert (ws / "h.txt").read_text() == "overwritten"
    assert (ws / "h.txt").stat().st_nlink == 1


def test_store_never_follows_a_symlink_swapped_in_after_the_check(ws):
    """The layer under resolve(): a dangling symlink at the final name is replaced or refused,
    never followed, and a symlinked parent directory is not entered."""
    target = ws.parent / "outside" / "planted.txt"
    (ws / "swapped.txt").symlink_to(target)
    fill = lambda fd: paths.write_fd(fd, b"payload")  # noqa: E731
    with pytest.raises(ToolError, match="already exists"):
        paths.replace_file(ws / "swapped.txt", fill, overwrite=False)
    assert paths.replace_file(ws / "swapped.txt", fill, overwrite=True) is False
    assert not target.exists() and not (ws / "swapped.txt").is_symlink()
    (ws / "dir").symlink_to(ws.parent / "outside")
    with pytest.raises(OSError):
        paths.replace_file(ws / "dir" / "planted.txt", fill, overwrite=True)
    with pytest.raises(OSError):
        paths.open_dir(ws / "dir")
    assert not target.exists()


# --- reads -------------------------------------------------------------------------------------

def test_read_text_caps_decodes_and_reports_size(ws):
    ctx = context(ws)
    (ws / "bin").write_bytes(b"\xff\xfeok\n")
    assert paths.read_text(ctx, "bin", 100) == ("\ufffd\ufffdok\n", False, 5)
    (ws / "euro").write_text("\u20ac" * 4)  # 12 bytes; a cut inside a character is dropped
    assert paths.read_text(ctx, "euro", 5) == ("\u20ac", True, 12)
    with pytest.raises(ToolError, match="not a known text encoding"):
        paths.read_text(ctx, "a.txt", 10, encoding="rot13")


def test_fifo_socket_and_directory_fail_fast(ws):
    os.mkfifo(ws / "fifo")
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(ws / "sock"))
    try:
        start = time.monotonic()
        for name, kind in (("fifo", "fifo"), ("sock", "socket"), ("sub", "directory")):
            with pytest.raises(ToolError, match=f"is a {kind}, not a regular file"):
                paths.read_text(context(ws), name, 100)
        assert time.monotonic() - start < 1
    finally:
        server.close()


def test_walk_lists_symlinks_without_entering_them(ws):
    (ws / "sub" / "inner.txt").write_text("x")
    (ws / "escape").symlink_to(ws.parent / "outside")
    (ws / ".hidden").write_text("h")
    rels = [entry.rel for entry in paths.walk(ws, recursive=True)]
    assert rels == [".hidden", "a.txt", "escape", "sub", "sub/inner.txt"]
    assert "canary" not in " ".join(rels)
    assert [entry.rel for entry in paths.walk(ws, recursive=False, hidden=False)] == ["a.txt", "escape", "sub"]


# --- display -----------------------------------------------------------------------------------

def test_display_escapes_controls_bidi_and_undecodable_bytes():
    assert paths.display("report.txt") == "report.txt"
    assert paths.display("gr\u00fc\u00dfe \u65e5\u672c") == "gr\u00fc\u00dfe \u65e5\u672c"
    assert paths.display("invoice\u202etxt.exe") == "invoice\\u202etxt.exe"
    assert paths.display("a\nb\x1b[2J") == "a\\x0ab\\x1b[2J"
    assert paths.display(os.fsdecode(b"bad\xff")) == "bad\\xff"
    assert paths.display("x" * 50, limit=10) == "xxxx...xxxx"


# --- property ----------------------------------------------------------------------------------

SEGMENTS = st.sampled_from(["..", ".", "", "a", "sub", "a.txt", "l_out", "l_in", "l_up", "l_root", "l_loop",
                            "\u00fc", "\u202e", "~", "workspace", "workspace_evil", "outside", "canary", "..."])
LINK_TARGETS = st.sampled_from(["..", "../..", "/", "sub", "a.txt", "../outside", "../workspace_evil/canary",
                                "l_loop", ".", "nowhere", "/proc/self/cwd", "sub/../.."])
LINK_NAMES = st.sampled_from(["l_out", "l_in", "l_up", "l_root", "l_loop", "sub/l_in", "sub/l_up"])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(segments=st.lists(SEGMENTS, max_size=10), absolute=st.booleans(), doubled=st.booleans(),
       links=st.lists(st.tuples(LINK_NAMES, LINK_TARGETS), max_size=4),
       text=st.text(alphabet=string.ascii_letters + "./\u00e9\u202e\u0000", max_size=12),
       write=st.booleans())
def test_resolve_is_inside_the_workspace_or_a_tool_error(segments, absolute, doubled, links, text, write):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp).resolve()
        ws = root / "workspace"
        (ws / "sub").mkdir(parents=True)
        (ws / "a.txt").write_text("a")
        for sibling in ("outside", "workspace_evil"):
            (root / sibling).mkdir()
            (root / sibling / "canary").write_text(CANARY)
        for name, target in links:  # symlinks made before the call, as a model's earlier calls could
            if not os.path.lexists(ws / name):
                os.symlink(target, ws / name)
        path = ("//" if doubled else "/").join(segments) + text
        if absolute:
            path = str(ws) + "/" + path
        ctx = ToolContext(ws, home=root / "home")
        try:
            real = paths.resolve(ctx, path, write=write, must_exist=False)
        except ToolError:
            return
        where = os.path.realpath(real)  # where the path really leads, not just how it reads
        assert os.path.commonpath([where, str(ws)]) == str(ws)
        if write:
            assert not set(real.relative_to(ws).parts) & paths.PROTECTED_NAMES
