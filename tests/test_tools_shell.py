"""The shell toolset on real files in temporary workspaces, with real sandboxed processes.

Covers each tool's happy path and the structured-argument cases of docs/reference/tools-security.md §6.2
(rows 14, 26-31, 36) plus bash's canaries (rm -rf outside the workspace, secrets in the
environment) and timeouts. Checks that need no process run everywhere; the others skip when
bubblewrap is missing.
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
import time
from pathlib import Path

import pytest
from conftest import require

from ossy.tools import shell
from ossy.tools.audit import AuditLog
from ossy.tools.base import Policy, ToolContext, ToolError
from ossy.tools.executor import Executor
from ossy.tools.registry import Registry

TOOLS = {tool.name: tool for tool in shell.toolset()}
JQ_MISSING = shell.installed("jq") is None


@pytest.fixture
def needs_sandbox() -> None:
    require(shutil.which("bwrap", path=shell.UTILITY_PATH), "bubblewrap (bwrap) is not installed (make sandbox)")


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    (root / "sub").mkdir(parents=True)
    (root / "notes.txt").write_text("alpha\nbeta\ngamma\n")
    (root / "other.txt").write_text("alpha\nBETA\ngamma\n")
    (root / "sub" / "deep.txt").write_text("beta in a subdirectory\n")
    (root / "data.json").write_text('{"items": [{"name": "a"}, {"name": "b"}]}')
    return root


@pytest.fixture
def ctx(workspace: Path) -> ToolContext:
    return ToolContext(workspace=workspace, home=workspace.parent / "ossy-home", policy=Policy(approvals="auto"))


@pytest.fixture
def marker(workspace: Path) -> tuple[Path, Path]:
    """Marker files a command injection would create: one in the workspace (visible to the
    sandbox), one in the host's /tmp."""
    token = secrets.token_hex(6)
    return workspace / f"pwned-{token}", Path(f"/tmp/pwned-{token}")


def call(ctx: ToolContext, name: str, **args):
    return TOOLS[name].handler(args, ctx)


def assert_no_marker(marker: tuple[Path, Path]) -> None:
    assert not any(path.exists() for path in marker)


# --- the catalogue and the options parser (no processes) -------------------------------------


def test_toolset_has_the_fixed_names_and_valid_schemas():
    registry = Registry(shell.toolset())
    assert registry.names == ["bash", "grep", "sed", "awk", "find", "jq", "ls", "cat", "head", "tail", "wc",
                              "diff", "make"]
    assert {tool.name for tool in registry if tool.destructive} == {"bash", "make"}
    assert registry.get("linux.grep").name == "grep"


def test_options_parse_clusters_values_and_long_forms():
    parsed = shell.GREP_OPTIONS.parse("-rn -A 2 -C3 --include=*.py --max-count 5")
    assert parsed == [("-r", None), ("-n", None), ("-A", "2"), ("-C", "3"), ("--include", "*.py"),
                      ("--max-count", "5")]
    assert shell.GREP_OPTIONS.argv(parsed) == ["-r", "-n", "-A", "2", "-C", "3", "--include=*.py", "--max-count=5"]


@pytest.mark.parametrize("options, named", [
    ("--pre=sh", "--pre"), ("-f /etc/passwd", "-f"), ("-rnZ", "-Z"), ("-R", "-R"),
    ("; touch x", ";"), ("-A x", "-A"), ("--include=../x", "--include"), ("-A", "-A"),
])
def test_grep_options_outside_the_allowlist_are_refused_by_name(ctx, options, named):
    with pytest.raises(ToolError, match=f"[\"' ]{named}"):
        call(ctx, "grep", pattern="x", options=options)


def test_unbalanced_quotes_in_options_are_refused(ctx):
    with pytest.raises(ToolError, match="cannot parse options"):
        call(ctx, "ls", options="-l '")


def test_pattern_goes_through_e_and_operands_after_double_dash(ctx):
    invocation = shell._grep({"pattern": "--pre=sh", "file": "notes.txt"}, ctx)
    argv = invocation.argv
    assert argv[argv.index("-e") + 1] == "--pre=sh"
    assert argv[-2:] == ["--", "./notes.txt"]


@pytest.mark.parametrize("name, args", [
    ("grep", {"pattern": "x", "file": "--help"}), ("cat", {"path": "-n"}), ("ls", {"path": "--all"}),
    ("find", {"path": "-delete", "criteria": "-name", "value": "*"}),
    ("diff", {"path_a": "notes.txt", "path_b": "--to-file=/etc/passwd"}),
])
def test_operands_that_look_like_options_are_refused(ctx, name, args):
    with pytest.raises(ToolError, match='starts with "-"'):
        call(ctx, name, **args)


@pytest.mark.parametrize("name, args", [
    ("cat", {"path": "/etc/passwd"}), ("cat", {"path": "../outside.txt"}),
    ("grep", {"pattern": "root", "file": "/etc"}), ("jq", {"filter": ".", "input": "/etc/passwd"}),
    ("head", {"path": "/proc/self/environ"}), ("make", {"directory": "/etc"}),
])
def test_file_operands_outside_the_workspace_are_refused(ctx, name, args):
    with pytest.raises(ToolError):
        call(ctx, name, **args)


def test_nul_bytes_in_arguments_are_refused(ctx):
    with pytest.raises(ToolError, match="NUL"):
        call(ctx, "grep", pattern="a\x00b", file="notes.txt")


@pytest.mark.parametrize("criteria", ["-exec", "-execdir", "-ok", "-delete", "-fprint", "-fls", "-printf", "exec"])
def test_find_actions_are_refused(ctx, criteria):
    with pytest.raises(ToolError, match="not supported"):
        call(ctx, "find", path=".", criteria=criteria, value="sh -c id ;")


@pytest.mark.parametrize("criteria, value", [("-type", "x"), ("-size", "1 -delete"), ("-mtime", "soon"),
                                             ("-maxdepth", "-1"), ("-newer", "/etc/passwd")])
def test_find_values_are_checked(ctx, criteria, value):
    with pytest.raises(ToolError):
        call(ctx, "find", path=".", criteria=criteria, value=value)


def test_sed_in_place_is_refused_and_the_file_is_unchanged(ctx, workspace):
    with pytest.raises(ToolError, match="in_place"):
        call(ctx, "sed", command="s/alpha/omega/", file="notes.txt", in_place=True)
    assert (workspace / "notes.txt").read_text() == "alpha\nbeta\ngamma\n"


@pytest.mark.parametrize("script", [
    'BEGIN{system("id")}', '{print > "/tmp/pwned"}', '{ print $0 >> "log" }', '"id" | getline',
    '{ print $0 | "sh" }', '{ printf("%s\\n", $0) > "f" }', "BEGIN { x++ / 2; print | \"sh\"; y = 1 / 1 }",
    '{ getline line < "/etc/passwd" }', '@load "filefuncs"', 'BEGIN { print |& "cat" }',
    'BEGIN { "date" |\n getline }', '{ print \\\n > "f" }',
])
def test_awk_scripts_that_run_commands_or_write_are_refused(script):
    with pytest.raises(ToolError, match="awk scripts may not"):
        shell.check_awk_script(script)


@pytest.mark.parametrize("script", [
    "{ if ($1 > 2) print $1 }", "$1 ~ /a|b/ { print }", "{ print ($1 > 2) }", "BEGIN { x = 1 || 0; print x }",
    '{ s = "a > b | c"; print s }', "# a comment | with > signs\n{ print }", "{ n += NF } END { print n }",
    "NR > 1 && $2 >= 3 { print $1 }", "{ printf \"%d\\n\", $1 }",
])
def test_awk_scripts_that_only_compute_are_accepted(script):
    shell.check_awk_script(script)


@pytest.mark.parametrize("text", [
    "$ENV", "$ENV.OPENAI_API_KEY", "env.OPENAI_API_KEY", "env | keys", '"\\(env.HOME)"', "input_filename",
    'import "a" as a; .', 'include "x"; .', "--rawfile x /etc/passwd", "-L /tmp .", "--args", "$ ENV",
    'get_search_list', '"x\\("y" + (env | tostring))"',
])
def test_jq_filters_reading_environment_files_or_modules_are_refused(text):
    with pytest.raises(ToolError):
        shell.check_jq_filter(text)


@pytest.mark.parametrize("text", [".", ".env", ".items[] | .name", 'select(.name == "env")', '"\\(.a) env"',
                                  ". as $env | $env", "[.[] | .import]"])
def test_jq_filters_that_only_transform_are_accepted(text):
    shell.check_jq_filter(text)


def test_bash_and_make_need_approval_and_preview_exactly(ctx):
    assert TOOLS["bash"].destructive and TOOLS["make"].destructive
    preview = TOOLS["bash"].preview({"command": "echo ok\rrm -rf ~", "description": "greet"}, ctx)
    assert "echo ok\\rrm -rf ~" in preview  # the carriage return cannot hide the second command
    assert "network off" in preview and str(ctx.workspace) in preview and "workspace-write" in preview
    make_preview = TOOLS["make"].preview({"target": "all", "options": "-n"}, ctx)
    assert "make -n -- all" in make_preview and "$(shell" in make_preview and "even with -n" in make_preview


def test_make_is_denied_without_approval_and_nothing_runs(workspace, marker, tmp_path):
    (workspace / "Makefile").write_text(f"X := $(shell touch {marker[0]})\nall:\n\t@echo built\n")
    policy = Policy(approvals="never")
    executor = Executor(Registry(shell.toolset()), ToolContext(workspace=workspace, home=workspace.parent / "ossy-home", policy=policy),
                        audit=AuditLog(tmp_path / "audit.sqlite"))
    for options in ("", "-n"):
        result = executor.call("make", {"options": options} if options else {})
        assert result.status == "denied"
    assert_no_marker(marker)
    assert len(AuditLog(tmp_path / "audit.sqlite").query()) == 2


def test_make_targets_are_names_not_options_or_assignments(ctx):
    for target in ("-f/etc/passwd", "SHELL=/bin/sh", "all; id"):
        with pytest.raises(ToolError, match="not a make target"):
            call(ctx, "make", target=target)


# --- real processes in the sandbox ------------------------------------------------------------


def test_grep_finds_lines_and_reports_no_match(needs_sandbox, ctx):
    result = call(ctx, "grep", pattern="beta", file="notes.txt", options="-n")
    assert result.ok and result.output == "2:beta"
    recursive = call(ctx, "grep", pattern="beta", options="-i")  # the workspace, recursively
    assert sorted(recursive.output.splitlines()) == ["./notes.txt:beta", "./other.txt:BETA",
                                                     "./sub/deep.txt:beta in a subdirectory"]
    none = call(ctx, "grep", pattern="zeta", file="notes.txt")
    assert none.ok and none.exit_code == 1 and none.output == "(no matches)"


def test_grep_option_like_patterns_are_literal(needs_sandbox, ctx, workspace):
    (workspace / "flags.txt").write_text("use --pre=sh carefully\n")
    assert call(ctx, "grep", pattern="--pre=sh", file="flags.txt").output == "use --pre=sh carefully"
    result = call(ctx, "grep", pattern="-f/etc/passwd", file=".")
    assert result.output == "(no matches)" and "root:" not in result.output


def test_shell_metacharacters_in_structured_arguments_stay_literal(needs_sandbox, ctx, workspace, marker):
    injected = f"x; touch {marker[0]}; touch {marker[1]}"
    (workspace / "$(id)").write_text(f"{injected}\n")
    assert call(ctx, "grep", pattern=injected, file="$(id)", options="-F").output == injected
    sed = call(ctx, "sed", command=f"s|x|$(touch {marker[0]})|", file="$(id)")
    assert sed.output.startswith(f"$(touch {marker[0]});")
    awk = call(ctx, "awk", script=f'{{ print "`touch {marker[0]}`" }}', input="line\n")
    assert awk.output == f"`touch {marker[0]}`"
    assert call(ctx, "cat", path="$(id)").output == injected
    assert_no_marker(marker)


@pytest.mark.parametrize("command", ["1e id", "s/.*/id/e", "w {marker}", "r /etc/passwd", "s/a/b/w {marker}"])
def test_sed_commands_that_run_read_or_write_are_rejected(needs_sandbox, ctx, marker, command):
    result = call(ctx, "sed", command=command.format(marker=marker[0]), file="notes.txt")
    assert result.status == "error" and "disabled in sandbox mode" in result.output
    assert "root:" not in result.output and "uid=" not in result.output
    assert_no_marker(marker)


def test_sed_transforms_and_accepts_leading_flags(needs_sandbox, ctx, workspace):
    assert call(ctx, "sed", command="s/a/A/g", file="notes.txt").output == "AlphA\nbetA\ngAmmA"
    assert call(ctx, "sed", command="-n '2p'", file="notes.txt").output == "beta"
    assert (workspace / "notes.txt").read_text() == "alpha\nbeta\ngamma\n"


def test_awk_on_a_file_and_on_input(needs_sandbox, ctx):
    assert call(ctx, "awk", script="{ n += length($0) } END { print NR, n }", file="notes.txt").output == "3 14"
    assert call(ctx, "awk", script="$2 > 1 { print $1 }", input="a 1\nb 2\nc 3\n").output == "b\nc"
    with pytest.raises(ToolError, match="not both"):
        call(ctx, "awk", script="{print}", file="notes.txt", input="x")


def test_find_by_name_type_and_depth(needs_sandbox, ctx, workspace):
    assert sorted(call(ctx, "find", path=".", criteria="-name", value="*.txt").output.splitlines()) == [
        "./notes.txt", "./other.txt", "./sub/deep.txt"]
    directories = call(ctx, "find", path=".", criteria="type", value="d").output.splitlines()
    # the sandbox shows an empty read-only ./.git placeholder while it runs (so hooks cannot be planted)
    assert [name for name in directories if not name.startswith("./.git")] == [".", "./sub"]
    (workspace / "sub" / "empty").touch()
    assert call(ctx, "find", path="sub", criteria="-empty", value="").output == "./sub/empty"


def test_find_values_with_actions_are_only_patterns(needs_sandbox, ctx, workspace):
    result = call(ctx, "find", path=".", criteria="-name", value="x -exec rm {} ;")
    assert result.ok and result.output == "(no output)"
    assert (workspace / "notes.txt").exists()
    assert call(ctx, "find", path=".", criteria="-name", value="-delete").output == "(no output)"
    assert (workspace / "notes.txt").exists()


@pytest.mark.skipif(JQ_MISSING, reason="jq is not installed")
def test_jq_on_json_text_and_on_a_file(needs_sandbox, ctx):
    assert call(ctx, "jq", filter=".items[].name", input="data.json").output == '"a"\n"b"'
    assert call(ctx, "jq", filter=".a + 1", input='{"a": 41}').output == "42"
    bad = call(ctx, "jq", filter=".[", input="{}")
    assert bad.status == "error" and bad.exit_code != 0


@pytest.mark.skipif(JQ_MISSING, reason="jq is not installed")
def test_jq_environment_is_scrubbed_anyway(needs_sandbox, ctx, monkeypatch):
    canary = f"canary-{secrets.token_hex(8)}"
    monkeypatch.setenv("OPENAI_API_KEY", canary)
    result = shell.execute(shell.Invocation([shell.require("jq"), "-n", "$ENV"]), ctx, 5)
    assert result.ok and canary not in result.output


def test_ls_cat_head_tail_wc(needs_sandbox, ctx):
    assert call(ctx, "ls").output.splitlines() == ["data.json", "notes.txt", "other.txt", "sub"]
    assert "notes.txt" in call(ctx, "ls", path=".", options="-la").output
    assert call(ctx, "cat", path="notes.txt").output == "alpha\nbeta\ngamma"
    assert call(ctx, "head", path="notes.txt", lines=2).output == "alpha\nbeta"
    assert call(ctx, "tail", path="notes.txt", lines=1).output == "gamma"
    assert call(ctx, "wc", path="notes.txt", options="-l").output == "3 ./notes.txt"


def test_diff_unified_by_default(needs_sandbox, ctx):
    result = call(ctx, "diff", path_a="notes.txt", path_b="other.txt")
    assert result.ok and result.exit_code == 1
    assert "--- ./notes.txt" in result.output and "-beta\n+BETA" in result.output
    same = call(ctx, "diff", path_a="notes.txt", path_b="notes.txt", options="-q")
    assert same.ok and same.output == "(no differences)"
    missing = call(ctx, "diff", path_a="notes.txt", path_b="sub", options="-q")
    assert missing.exit_code in (1, 2)


def test_bash_output_is_labelled_with_the_exit_code(needs_sandbox, ctx):
    result = call(ctx, "bash", command="echo out; printf 'a\\0b\\n'; echo err >&2; exit 3")
    assert result.output == "[stdout]\nout\nab\n[stderr]\nerr"
    assert result.exit_code == 3 and result.status == "error" and "exit code 3" in result.error
    assert call(ctx, "bash", command="true").output == "(no output)"


@pytest.fixture
def visible_canary():
    """A directory outside the workspace that the sandbox shows read-only (/var/tmp; its /tmp is private)."""
    path = Path(tempfile.mkdtemp(prefix="ossy-canary-", dir="/var/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_bash_cannot_remove_a_directory_outside_the_workspace(needs_sandbox, ctx, visible_canary):
    canary = visible_canary
    token = secrets.token_hex(8)
    (canary / "keep.txt").write_text(token)
    result = call(ctx, "bash", command=f"cat {canary}/keep.txt; rm -rf {canary}; ls {canary}")
    assert (canary / "keep.txt").read_text() == token
    assert token in result.output  # the sandbox saw the directory and still could not remove it


def test_bash_writes_land_only_in_the_workspace(needs_sandbox, ctx, workspace, marker):
    result = call(ctx, "bash", command=f"touch {marker[1]} && touch {marker[0]} && echo done")
    assert result.ok and result.output == "done"
    assert marker[0].exists() and not marker[1].exists()  # /tmp is private to the sandbox


def test_bash_does_not_see_secrets_from_the_environment(needs_sandbox, ctx, monkeypatch):
    canary = f"canary-{secrets.token_hex(8)}"
    monkeypatch.setenv("OPENAI_API_KEY", canary)
    monkeypatch.setenv("OSSY_TEST_TOKEN", canary)
    result = call(ctx, "bash", command="env; cat /proc/self/environ; cat /proc/$PPID/environ")
    assert canary not in result.output


def test_bash_timeout_kills_and_reports(needs_sandbox, workspace):
    ctx = ToolContext(workspace=workspace, home=workspace.parent / "ossy-home", policy=Policy(approvals="auto", timeouts={"bash": 1}))
    started = time.monotonic()
    result = call(ctx, "bash", command="echo started; sleep 30")
    assert time.monotonic() - started < 6
    assert result.status == "timeout" and result.exit_code == 124 and "timed out after 1 s" in result.error
    assert "started" in result.output


def test_make_runs_when_approved_and_writes_only_in_the_workspace(needs_sandbox, workspace, marker, visible_canary,
                                                                   tmp_path):
    canary = visible_canary
    (workspace / "Makefile").write_text(
        f"X := $(shell touch {marker[0]} {marker[1]} {canary}/pwned)\nall:\n\t@echo built\n")
    executor = Executor(Registry(shell.toolset()), ToolContext(workspace=workspace, home=workspace.parent / "ossy-home", policy=Policy(approvals="auto")),
                        audit=AuditLog(tmp_path / "audit.sqlite"))
    result = executor.call("linux.make", {"target": "all"})
    assert result.ok and "built" in result.output
    assert marker[0].exists() and not marker[1].exists() and not (canary / "pwned").exists()


def test_make_in_a_subdirectory(needs_sandbox, ctx, workspace):
    (workspace / "sub" / "Makefile").write_text("hello:\n\t@pwd\n")
    assert call(ctx, "make", target="hello", directory="sub").output == str(workspace / "sub")
