"""The shell toolset: `bash` and structured Linux utilities, each run as a process in the sandbox.

Owns: the tools bash, grep, sed, awk, find, jq, ls, cat, head, tail, wc, diff and make; the
checks that keep the structured ones harmless; how a finished process becomes a `ToolResult`;
and `Options`, the parser of "options" strings (also used by `ossy.tools.system`). Does not own:
starting processes and the OS isolation (`ossy.sandbox`), path containment
(`ossy.tools.paths.resolve`), approvals, dry-run, output caps and the audit log
(`ossy.tools.executor`).

Safety model:
* `bash` and `make` run arbitrary code, so they are destructive: they need approval and a
  dry-run shows the exact command and the sandbox it would run in. `make` is code execution even
  with `-n` (it evaluates `$(shell ...)` while reading the Makefile and runs `+` recipes).
* The other tools are read-only and need no approval, because their arguments cannot run code
  or write: each becomes an argv list (never a shell string), flags come only from per-tool
  allowlists (`Options`), file operands are resolved inside the workspace and passed as
  "./relative" after `--`, so no operand can be read as an option. Per tool:
  grep takes the pattern through `-e` (no `--pre`, `-f`, `-R`); sed runs GNU `sed --sandbox`
  (which rejects `e`, `r`, `w`, `s///e`, `s///w`) and refuses `in_place` (writing goes through
  edit_file/write_file, which ask for approval; sed's `destructive` flag cannot depend on an
  argument); awk refuses `system`, `getline`, pipes and print/printf redirections (and uses
  `gawk --sandbox` as a second guard when gawk is installed); find takes one test from an
  allowlist (no `-exec`, `-delete`, `-fprint`, ...); jq refuses `$ENV`, `env`,
  `input_filename`, modules and option-like filters, and reads only JSON text or a workspace
  file.
* The sandbox is the backstop: it runs every process with a read-only system, the workspace as
  the only writable place, no network unless allowed, and a scrubbed environment, so a check
  that missed something still cannot write outside the workspace or see the user's secrets.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

from ossy import sandbox
from ossy.tools import paths
from ossy.tools.base import Tool, ToolContext, ToolError, ToolResult

# Where the utilities are looked up (the sandbox shows the host's system directories read-only).
UTILITY_PATH = "/usr/local/bin:/usr/bin:/bin"


# ---------------------------------------------------------------------------------------------
# "options" strings


@dataclass(frozen=True)
class Options:
    """An allowlist of flags for a tool's "options" string. The string is split with shlex
    (never given to a shell); every flag must be listed here, and a flag's value passes its
    check, which returns the value to use or raises ValueError."""

    flags: frozenset[str] = frozenset()  # flags without a value: "-i", "--all"; "a" for BSD letters
    valued: Mapping[str, Callable[[str], str]] = field(default_factory=dict)  # flag -> value check
    bare_letters: bool = False  # letters without a dash are flags too ("aux" for ps)

    def parse(self, text: str | None) -> list[tuple[str, str | None]]:
        """[(flag, value or None)] in the order given; ToolError naming the first bad option."""
        try:
            words = shlex.split(text or "")
        except ValueError as exc:
            raise ToolError(f"cannot parse options {text!r}: {exc}") from None
        parsed: list[tuple[str, str | None]] = []
        while words:
            word = words.pop(0)
            if word.startswith("--") and len(word) > 2:
                parsed.append(self._long(word, words))
            elif word.startswith("-") and len(word) > 1:
                parsed.extend(self._letters(word[1:], "-", words))
            elif self.bare_letters and word.isalpha():
                parsed.extend(self._letters(word, "", words))
            else:
                raise ToolError(f'unexpected "{word}" in options: only flags are accepted there '
                                f"(allowed: {self.allowed()})")
        return parsed

    def argv(self, parsed: list[tuple[str, str | None]]) -> list[str]:
        """The parsed options as argv words: "--name=value" or "-x value"."""
        words: list[str] = []
        for flag, value in parsed:
            if value is None:
                words.append(flag)
            elif flag.startswith("--"):
                words.append(f"{flag}={value}")
            else:
                words += [flag, value]
        return words

    def allowed(self) -> str:
        return " ".join(sorted(self.flags) + [f"{flag} VALUE" for flag in sorted(self.valued)])

    def _long(self, word: str, rest: list[str]) -> tuple[str, str | None]:
        name, equals, value = word.partition("=")
        if name in self.flags and not equals:
            return name, None
        if name in self.valued:
            if not equals:
                value = self._next_value(name, rest)
            return name, self._checked(name, value)
        raise self._unknown(name)

    def _letters(self, letters: str, dash: str, rest: list[str]) -> list[tuple[str, str | None]]:
        parsed: list[tuple[str, str | None]] = []
        for index, letter in enumerate(letters):
            flag = dash + letter
            if flag in self.valued:
                value = letters[index + 1:] or self._next_value(flag, rest)
                return parsed + [(flag, self._checked(flag, value))]
            if flag not in self.flags:
                raise self._unknown(flag)
            parsed.append((flag, None))
        return parsed

    @staticmethod
    def _next_value(flag: str, rest: list[str]) -> str:
        if not rest:
            raise ToolError(f"option {flag} needs a value")
        return rest.pop(0)

    def _checked(self, flag: str, value: str) -> str:
        try:
            return self.valued[flag](value)
        except ValueError as exc:
            raise ToolError(f"option {flag}: {exc}") from None

    def _unknown(self, flag: str) -> ToolError:
        return ToolError(f'option "{flag}" is not supported (allowed: {self.allowed()})')


def count_value(low: int, high: int) -> Callable[[str], str]:
    """A value check: an integer from `low` to `high`."""

    def check(value: str) -> str:
        if not re.fullmatch(r"\d+", value) or not low <= int(value) <= high:
            raise ValueError(f'"{value}" is not a whole number from {low} to {high}')
        return str(int(value))

    return check


def glob_value(value: str) -> str:
    """A value check: a non-empty file-name glob."""
    if not value or "/" in value:
        raise ValueError(f'"{value}" is not a file-name glob (no "/", not empty)')
    return value


def flags(*names: str) -> frozenset[str]:
    return frozenset(names)


# ---------------------------------------------------------------------------------------------
# running a utility


@dataclass(frozen=True)
class Invocation:
    """One process to run in the sandbox, and how to read its exit code."""

    argv: list[str]
    stdin: bytes = b""
    cwd: Path | None = None  # inside the workspace; None: the workspace
    answers: tuple[int, ...] = (0,)  # exit codes that answer the question (grep 1: no match)
    empty: str = "(no output)"  # what the model reads when an answer printed nothing


def execute(invocation: Invocation, ctx: ToolContext, timeout: float) -> ToolResult:
    """Run `invocation` in the sandbox under the context's policy; the process's result."""
    try:
        done = sandbox.run(invocation.argv, ctx.sandbox_spec(cwd=invocation.cwd),
                           sandbox.Limits(timeout=timeout), stdin=invocation.stdin)
    except sandbox.SandboxUnavailable as exc:
        raise ToolError(str(exc)) from None
    return completed_result(done, invocation, timeout)


def completed_result(done: sandbox.Completed, invocation: Invocation, timeout: float) -> ToolResult:
    stdout, stderr = _visible_output(done.stdout), _visible_output(done.stderr)
    if stdout and stderr:
        text = f"[stdout]\n{stdout}\n[stderr]\n{stderr}"
    else:
        text = stdout or (f"[stderr]\n{stderr}" if stderr else "")
    data = {"backend": done.backend}
    if done.timed_out:
        return ToolResult(output=text, error=f"timed out after {timeout:g} s; the process was killed",
                          exit_code=124, status="timeout", truncated=done.truncated, data=data)
    if done.exit_code is None:
        code, error = 128 + (done.signal or 9), f"killed by signal {done.signal}"
    else:
        code = done.exit_code
        error = None if code in invocation.answers else f"exit code {code}"
    if not text:
        text = invocation.empty if error is None else "(no output)"
    return ToolResult(output=text, error=error, exit_code=code, status="ok" if error is None else "error",
                      truncated=done.truncated, data=data)


def _visible_output(text: str) -> str:
    return text.replace("\x00", "").rstrip("\n")


def utility(name: str, description: str, properties: dict, required: tuple[str, ...],
            build: Callable[[dict, ToolContext], Invocation], *, destructive: bool = False,
            preview: Callable[[dict, ToolContext], str] | None = None, timeout: float = 30.0) -> Tool:
    """A shell tool: `build` checks the arguments and says what to run; the handler runs it."""

    def handler(args: dict, ctx: ToolContext) -> ToolResult:
        _refuse_nul(args)
        return execute(build(args, ctx), ctx, ctx.policy.timeout(tool))

    parameters = {"type": "object", "properties": properties, "required": list(required),
                  "additionalProperties": False}
    tool = Tool(name=name, toolset="shell", description=description, parameters=parameters,
                handler=handler, destructive=destructive, preview=preview, timeout=timeout)
    return tool


def _refuse_nul(args: dict) -> None:
    for key, value in args.items():
        if isinstance(value, str) and "\x00" in value:
            raise ToolError(f"argument {key} contains a NUL byte")


def resolve_operand(ctx: ToolContext, path: str, *, must_exist: bool = True) -> Path:
    """The real path of a file operand inside the workspace; a path that looks like an option is
    refused before it is resolved."""
    if path.startswith("-"):
        raise ToolError(f'path "{path}" starts with "-"; write "./{path}" for a file of that name')
    return paths.resolve(ctx, path, must_exist=must_exist)


def as_operand(ctx: ToolContext, real: Path) -> str:
    """A resolved path as an argv word: "./relative" (or "."), never taken for an option."""
    if not real.is_relative_to(ctx.workspace):
        return str(real)
    relative = real.relative_to(ctx.workspace).as_posix()
    return "." if relative == "." else f"./{relative}"


def operand(ctx: ToolContext, path: str) -> str:
    return as_operand(ctx, resolve_operand(ctx, path))


def installed(*names: str) -> str | None:
    """The full path of the first of `names` found in `UTILITY_PATH`."""
    for name in names:
        found = shutil.which(name, path=UTILITY_PATH)
        if found:
            return found
    return None


def require(*names: str) -> str:
    found = installed(*names)
    if found is None:
        raise ToolError(f"{names[0]} is not installed on this machine (install the {names[0]} package)")
    return found


def _string(description: str) -> dict:
    return {"type": "string", "description": description}


# ---------------------------------------------------------------------------------------------
# bash and make: code execution (destructive)


def _escaped(text: str) -> str:
    """`text` with control characters other than newline and tab shown as escapes, so a
    preview cannot hide part of a command (carriage returns, ANSI sequences)."""
    return "".join(ch if ch in "\n\t" or (ch.isprintable() and ch != "\x7f") else ch.encode("unicode_escape").decode()
                   for ch in text)


def sandbox_summary(ctx: ToolContext, cwd: Path | None = None) -> str:
    policy = ctx.policy
    writable = "read-only" if policy.mode == "read-only" else "writable"
    return (f"in the sandbox: mode {policy.mode}, network {'allowed' if policy.network else 'off'}, "
            f"workspace {ctx.workspace} ({writable}), working directory {cwd or ctx.workspace}")


def _bash(args: dict, ctx: ToolContext) -> Invocation:
    return Invocation(["bash", "-c", args["command"]])


def _bash_preview(args: dict, ctx: ToolContext) -> str:
    described = args.get("description")
    purpose = f"purpose (as the model describes it): {_escaped(described)}\n" if described else ""
    return (f"{purpose}would run: bash -c <<command>>\n{_escaped(args['command'])}\n<<end of command>>\n"
            f"{sandbox_summary(ctx)}")


MAKE_OPTIONS = Options(flags("-k", "-n", "-B", "-s", "-i", "--no-print-directory"),
                       {"-j": count_value(1, 64)})
MAKE_TARGET = re.compile(r"[A-Za-z0-9_.%+@/][A-Za-z0-9_.%+@/-]*")


def _make_parts(args: dict, ctx: ToolContext) -> tuple[list[str], Path | None]:
    target = args.get("target")
    if target is not None and not MAKE_TARGET.fullmatch(target):
        raise ToolError(f'target "{target}" is not a make target name (letters, digits, . _ - / % + @; '
                        "not starting with -; no variable assignments)")
    directory = args.get("directory")
    cwd = paths.resolve(ctx, directory) if directory else None
    if cwd is not None and not cwd.is_dir():
        raise ToolError(f'"{directory}" is not a directory')
    argv = ["make", *MAKE_OPTIONS.argv(MAKE_OPTIONS.parse(args.get("options"))), "--"]
    return argv + ([target] if target else []), cwd


def _make(args: dict, ctx: ToolContext) -> Invocation:
    argv, cwd = _make_parts(args, ctx)
    return Invocation(argv, cwd=cwd)


def _make_preview(args: dict, ctx: ToolContext) -> str:
    argv, cwd = _make_parts(args, ctx)
    return (f"would run: {shlex.join(argv)}\n{sandbox_summary(ctx, cwd)}\n"
            "make runs the Makefile's recipes and evaluates $(shell ...) while reading it, even with -n: "
            "this is arbitrary code execution (inside the sandbox)")


# ---------------------------------------------------------------------------------------------
# grep, sed, awk


GREP_OPTIONS = Options(
    flags("-i", "-n", "-r", "-l", "-L", "-c", "-v", "-w", "-x", "-E", "-F", "-G", "-P", "-o", "-h", "-H",
          "-s", "-I", "-a"),
    {"-A": count_value(0, 1000), "-B": count_value(0, 1000), "-C": count_value(0, 1000),
     "-m": count_value(0, 1_000_000), "--max-count": count_value(0, 1_000_000),
     "--include": glob_value, "--exclude": glob_value, "--exclude-dir": glob_value})


def _grep(args: dict, ctx: ToolContext) -> Invocation:
    options = GREP_OPTIONS.parse(args.get("options"))
    target = resolve_operand(ctx, args.get("file") or ".")
    recursive = ["-r"] if target.is_dir() and ("-r", None) not in options else []
    argv = ["grep", "--color=never", *GREP_OPTIONS.argv(options), *recursive, "-e", args["pattern"], "--",
            as_operand(ctx, target)]
    return Invocation(argv, answers=(0, 1), empty="(no matches)")


SED_OPTIONS = Options(flags("-n", "-E", "-r", "-s", "-z", "--quiet", "--regexp-extended"))
SED_IN_PLACE_REFUSED = ("in_place is not available: sed is a read-only tool here (it cannot ask for approval); "
                        "run it without in_place to get the edited text, then save it with write_file or "
                        "edit_file, which ask before writing")


def _sed(args: dict, ctx: ToolContext) -> Invocation:
    if args.get("in_place"):
        raise ToolError(SED_IN_PLACE_REFUSED)
    flags_given, script = _sed_script(args["command"])
    argv = ["sed", "--sandbox", *flags_given, "-e", script, "--", operand(ctx, args["file"])]
    return Invocation(argv)


def _sed_script(command: str) -> tuple[list[str], str]:
    """A command is a sed script, or flags then one script word ("-n '1,5p'", as in a shell)."""
    if not command.lstrip().startswith("-"):
        return [], command
    try:
        words = shlex.split(command)
    except ValueError as exc:
        raise ToolError(f"cannot parse sed command {command!r}: {exc}") from None
    flag_words = [word for word in words if word.startswith("-")]
    scripts = words[len(flag_words):]
    if words[:len(flag_words)] != flag_words or len(scripts) != 1:
        raise ToolError("give the sed command as a script (for example 's/a/b/g' or '1,5p'), "
                        "optionally after flags like -n or -E")
    return SED_OPTIONS.argv(SED_OPTIONS.parse(" ".join(flag_words))), scripts[0]


AWK_FORBIDDEN = re.compile(r"\b(system|getline)\b|@\s*(load|include|namespace)\b")
AWK_REGEX_AFTER = set("(,{};!~&|?:=<>+-*%^\n")  # after these a "/" starts a regular expression


def check_awk_script(script: str) -> None:
    """Refuse awk programs that could run commands, read other files or write files: `system`,
    `getline`, gawk's `@load`/`@include`, pipes, and `>`/`>>` redirections of print/printf.
    Strings, regular expressions and comments are skipped; where awk's grammar is ambiguous
    the check errs towards refusing."""
    found = AWK_FORBIDDEN.search(script)
    if found:
        raise ToolError(f'awk scripts may not use "{found.group(0)}" (it can run commands or read files); '
                        "the script gets its input from the file or input argument")
    problem = _awk_redirection(script)
    if problem:
        raise ToolError(f"awk scripts may not {problem}; print to standard output instead")


def _awk_redirection(script: str) -> str | None:
    index, size = 0, len(script)
    in_print, depth, last = False, 0, "\n"  # last: the previous significant character
    while index < size:
        char = script[index]
        if char == "\\" and script[index + 1:index + 2] == "\n":  # line continuation
            index += 2
            continue
        if char == "#":
            end = script.find("\n", index)
            index = size if end < 0 else end
            continue
        if char == '"' or (char == "/" and last in AWK_REGEX_AFTER):
            index = _awk_literal_end(script, index, char)
            last = "a"
            continue
        if char.isalnum() or char == "_":
            end = re.match(r"\w+", script[index:]).end() + index
            if script[index:end] in ("print", "printf"):
                in_print, depth = True, 0
            index, last = end, "a"
            continue
        if char == "|":
            if script[index + 1:index + 2] != "|":
                return "pipe into or out of commands (|)"
            index, last = index + 2, "|"
            continue
        if char == ">" and in_print and depth == 0 and script[index + 1:index + 2] != "=":
            return "redirect print or printf output (>, >>)"
        if char in ";}\n":
            in_print = False
        depth += (char == "(") - (char == ")")
        if char == "+" or char == "-":  # x++ / 2 is a division: "++" and "--" end an operand
            last = "a" if script[index + 1:index + 2] == char else char
            index += 2 if last == "a" else 1
            continue
        if not char.isspace() or char == "\n":
            last = char
        index += 1
    return None


def _awk_literal_end(script: str, index: int, quote: str) -> int:
    """The index after the string or regular expression starting at `index`; a regular
    expression ends at its first unescaped "/" (even inside brackets), which errs towards
    checking more of the program, not less."""
    index += 1
    while index < len(script) and script[index] not in (quote, "\n"):
        index += 2 if script[index] == "\\" else 1
    return index + 1


def _awk(args: dict, ctx: ToolContext) -> Invocation:
    script, file, text = args["script"], args.get("file"), args.get("input")
    check_awk_script(script)
    if file is not None and text is not None:
        raise ToolError("give either file or input, not both")
    gawk = installed("gawk")
    program = [gawk, "--sandbox"] if gawk else [require("awk", "mawk")]
    operands = [operand(ctx, file)] if file is not None else []
    return Invocation([*program, "--", script, *operands], stdin=(text or "").encode())


# ---------------------------------------------------------------------------------------------
# find, jq


def _find_type(value: str) -> str:
    if not re.fullmatch(r"[bcdpfls](,[bcdpfls])*", value):
        raise ValueError(f'"{value}" is not a file type (f, d, l, p, s, b, c; comma-separated)')
    return value


def _find_size(value: str) -> str:
    if not re.fullmatch(r"[+-]?\d+[bcwkMG]?", value):
        raise ValueError(f'"{value}" is not a size like +10M, -1k or 100c')
    return value


def _find_days(value: str) -> str:
    if not re.fullmatch(r"[+-]?\d+", value):
        raise ValueError(f'"{value}" is not a number of days like -7 or +30')
    return value


def _find_pattern(value: str) -> str:
    if not value:
        raise ValueError("the pattern is empty")
    return value


FIND_TESTS: dict[str, Callable[[str], str] | None] = {
    "-name": _find_pattern, "-iname": _find_pattern, "-path": _find_pattern, "-ipath": _find_pattern,
    "-type": _find_type, "-size": _find_size, "-mtime": _find_days, "-newer": _find_pattern,
    "-maxdepth": count_value(0, 1000), "-mindepth": count_value(0, 1000), "-empty": None,
}


def _find(args: dict, ctx: ToolContext) -> Invocation:
    criterion = "-" + args["criteria"].strip().lstrip("-")
    if criterion not in FIND_TESTS:
        raise ToolError(f'find criteria "{args["criteria"]}" is not supported (allowed: {" ".join(FIND_TESTS)}); '
                        "actions like -exec, -delete and -fprint are never run")
    check = FIND_TESTS[criterion]
    start = operand(ctx, args["path"])
    if check is None:
        return Invocation(["find", "-P", start, criterion])
    try:
        value = check(args["value"])
    except ValueError as exc:
        raise ToolError(f"find {criterion}: {exc}") from None
    if criterion == "-newer":
        value = operand(ctx, value)
    return Invocation(["find", "-P", start, criterion, value])


JQ_FORBIDDEN = re.compile(r"\$\s*ENV\b|(?<![.\w$])(env|input_filename|import|include|modulemeta"
                          r"|get_search_list|get_prog_origin|get_jq_origin)\b")


def check_jq_filter(text: str) -> None:
    """Refuse filters that read the environment, files or modules, or look like options.
    String literals are skipped but their `\\(...)` interpolations are checked."""
    if text.lstrip().startswith("-"):
        raise ToolError("the jq filter starts with '-': command-line options (--rawfile, --slurpfile, -L, "
                        "--args...) are not accepted")
    found = JQ_FORBIDDEN.search(_jq_code(text))
    if found:
        raise ToolError(f'jq filters may not use "{found.group(0).strip()}" (environment, files or modules)')


def _jq_code(text: str) -> str:
    """The filter with the plain text of string literals blanked out (interpolations kept)."""
    code, index, strings = [], 0, []  # strings: paren depth at which each open interpolation began
    depth, in_string = 0, False
    while index < len(text):
        char = text[index]
        if in_string:
            if char == "\\" and text[index + 1:index + 2] == "(":
                strings.append(depth)
                depth, in_string = depth + 1, False
                code.append(" (")
                index += 2
                continue
            in_string = char != '"'
            index += 2 if char == "\\" else 1
            code.append(" ")
            continue
        if char == '"':
            in_string = True
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if strings and depth == strings[-1]:
                strings.pop()
                in_string = True
        code.append(char)
        index += 1
    return "".join(code)


def _jq(args: dict, ctx: ToolContext) -> Invocation:
    check_jq_filter(args["filter"])
    program = require("jq")
    source = args["input"]
    if _looks_like_json(source):
        return Invocation([program, args["filter"]], stdin=source.encode())
    return Invocation([program, args["filter"], operand(ctx, source)])


def _looks_like_json(text: str) -> bool:
    if text.lstrip()[:1] in ("{", "[", '"'):
        return True
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


# ---------------------------------------------------------------------------------------------
# ls, cat, head, tail, wc, diff


LS_OPTIONS = Options(flags("-l", "-a", "-A", "-h", "-R", "-t", "-S", "-r", "-1", "-d", "-F"))
WC_OPTIONS = Options(flags("-l", "-w", "-c", "-m", "-L"))
DIFF_OPTIONS = Options(flags("-u", "-c", "-q", "-r", "-N", "-i", "-w", "-b", "-B", "-y", "--brief"),
                       {"-U": count_value(0, 10_000)})
DIFF_FORMATS = {"-u", "-U", "-c", "-q", "-y", "--brief"}


def _ls(args: dict, ctx: ToolContext) -> Invocation:
    options = LS_OPTIONS.argv(LS_OPTIONS.parse(args.get("options")))
    return Invocation(["ls", "--color=never", *options, "--", operand(ctx, args.get("path") or ".")],
                      empty="(empty directory)")


def _cat(args: dict, ctx: ToolContext) -> Invocation:
    return Invocation(["cat", "--", operand(ctx, args["path"])], empty="(empty file)")


def _head_or_tail(program: str) -> Callable[[dict, ToolContext], Invocation]:
    def build(args: dict, ctx: ToolContext) -> Invocation:
        lines = str(int(args.get("lines", 10)))
        return Invocation([program, "-n", lines, "--", operand(ctx, args["path"])], empty="(empty file)")

    return build


def _wc(args: dict, ctx: ToolContext) -> Invocation:
    options = WC_OPTIONS.argv(WC_OPTIONS.parse(args.get("options")))
    return Invocation(["wc", *options, "--", operand(ctx, args["path"])])


def _diff(args: dict, ctx: ToolContext) -> Invocation:
    options = DIFF_OPTIONS.parse(args.get("options"))
    default = [] if any(flag in DIFF_FORMATS for flag, _ in options) else ["-u"]
    argv = ["diff", *default, *DIFF_OPTIONS.argv(options), "--",
            operand(ctx, args["path_a"]), operand(ctx, args["path_b"])]
    return Invocation(argv, answers=(0, 1), empty="(no differences)")


# ---------------------------------------------------------------------------------------------


def toolset() -> list[Tool]:
    path = _string("File path in the workspace")
    options = _string
    return [
        utility("bash", "Run a bash command (bash -c) in the sandbox: read-only system, the workspace is the only "
                "writable directory, no network unless allowed, 30 s limit. Needs the user's approval.",
                {"command": _string("The bash command to execute"),
                 "description": _string("What the command does, shown to the user")}, ("command",),
                _bash, destructive=True, preview=_bash_preview),
        utility("grep", "Search for a pattern in a file, or recursively in a directory (default: the workspace).",
                {"pattern": _string("Regular expression to search for (taken literally as the pattern)"),
                 "file": _string("File or directory to search (default: the workspace)"),
                 "options": options("Flags like -i, -n, -r, -l, -c, -v, -w, -E, -F, -o, -A 2, --include=*.py")},
                ("pattern",), _grep),
        utility("sed", "Run a sed script on a file and return the result (GNU sed in sandbox mode: no e, r or w "
                "commands). The file is not changed; in_place is refused (use edit_file or write_file).",
                {"command": _string("sed script, e.g. 's/old/new/g' or '-n 1,5p'"), "file": path,
                 "in_place": {"type": "boolean", "description": "Not available: use edit_file or write_file"}},
                ("command", "file"), _sed),
        utility("awk", "Run an awk script on a file or on the given input text. system(), getline, pipes and "
                "output redirections are refused.",
                {"script": _string("awk program"), "file": _string("File to process"),
                 "input": _string("Text to process (instead of a file)")}, ("script",), _awk),
        utility("find", f"Find files under a directory by one criterion ({', '.join(FIND_TESTS)}); "
                "-empty ignores value.",
                {"path": _string("Directory to search in"), "criteria": _string("One of " + ", ".join(FIND_TESTS)),
                 "value": _string("Value for the criterion, e.g. '*.py', 'f', '+1M', '-7', 2")},
                ("path", "criteria", "value"), _find),
        utility("jq", "Apply a jq filter to JSON text or to a JSON file in the workspace.",
                {"filter": _string("jq filter, e.g. '.items[] | .name'"),
                 "input": _string("JSON text, or the path of a JSON file in the workspace")},
                ("filter", "input"), _jq),
        utility("ls", "List a directory (default: the workspace).",
                {"path": _string("Directory or file to list"),
                 "options": options("Flags like -l, -a, -h, -R, -t, -S, -r, -1")}, (), _ls),
        utility("cat", "Show a file's contents.", {"path": path}, ("path",), _cat),
        utility("head", "Show the first lines of a file.",
                {"path": path, "lines": {"type": "integer", "minimum": 1, "maximum": 1_000_000,
                                         "description": "Number of lines (default 10)"}}, ("path",),
                _head_or_tail("head")),
        utility("tail", "Show the last lines of a file.",
                {"path": path, "lines": {"type": "integer", "minimum": 1, "maximum": 1_000_000,
                                         "description": "Number of lines (default 10)"}}, ("path",),
                _head_or_tail("tail")),
        utility("wc", "Count lines, words and bytes of a file.",
                {"path": path, "options": options("Flags -l, -w, -c, -m, -L")}, ("path",), _wc),
        utility("diff", "Compare two files or directories (unified format by default).",
                {"path_a": path, "path_b": path, "options": options("Flags like -u, -U 5, -q, -r, -i, -w, -b")},
                ("path_a", "path_b"), _diff),
        utility("make", "Run make in the sandbox. make runs the Makefile's recipes (even -n evaluates $(shell)), "
                "so it needs the user's approval.",
                {"target": _string("Target to build (default: the first)"),
                 "directory": _string("Directory containing the Makefile (default: the workspace)"),
                 "options": options("Flags -j N, -k, -n, -B, -s, -i")}, (), _make,
                destructive=True, preview=_make_preview, timeout=120.0),
    ]
