"""The chat of `ossy run`: a session, the `/...` command interpreter, streaming output and the
terminal loop (docs/reference/ollama-reference.md §1.2).

Owns: `Session` (model, system, parameters, think, format, messages, toolsets), `Interpreter`
(one input -> what to do; it only talks to a `Client` and writes to two text streams, so tests
drive it without a terminal), `Printer` (streamed chunks -> text: thinking dimmed between
`Thinking...` and `...done thinking.`), `AgentPrinter` (an agent run: each turn as `Printer`
writes it, tool calls and a short, escaped summary of each result on the error stream),
`summary` (Ollama's `--verbose` statistics), `read_message` (one message, with `\"\"\"`
multi-line blocks) and `repl` (the loop: readline history, Ctrl-C stops a generation, Ctrl-D
exits). Does not own: argument parsing or server discovery (`ossy.cli.run`), the agent loop
(`ossy.agent`) or the tools (`ossy.tools`).

With toolsets enabled (`--tools`, the Modelfile's `TOOLS`, `/tools fs,shell`) a message goes
through `ossy.agent.loop` with one `Toolbox` per chat, so "always" approvals and the python
kernel's state last until the toolsets change or the chat ends (`Interpreter.close`).
"""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from ossy.agent import ClientModel, TextDelta, Toolbox, ToolCalled, ToolReturned, loop, parse_toolsets
from ossy.cli.show import render_show
from ossy.config import settings
from ossy.errors import OssyError
from ossy.modelfile.parameters import PARAMETERS, convert
from ossy.tools.base import Policy, ToolContext
from ossy.tools.executor import escape_control, terminal_approver
from ossy.tools.registry import TOOLSETS

DIM, RESET = "\x1b[2m", "\x1b[0m"
THINK_LEVELS = ("low", "medium", "high")

HELP = """Available Commands:
  /set            Set session variables
  /show           Show model information
  /load <model>   Load a session or model
  /save <model>   Save your current session
  /clear          Clear session context
  /tools [list]   Show or set the tools the model may call
  /bye            Exit
  /?, /help       Help for a command
  /? shortcuts    Help for keyboard shortcuts

Use \"\"\" to begin a multi-line message.
"""

HELP_SET = """Available Commands:
  /set parameter ...     Set a parameter
  /set system <string>   Set system message
  /set history           Enable history
  /set nohistory         Disable history
  /set wordwrap          Enable wordwrap
  /set nowordwrap        Disable wordwrap
  /set format json       Enable JSON mode
  /set noformat          Disable formatting
  /set verbose           Show LLM stats
  /set quiet             Disable LLM stats
  /set think [level]     Enable thinking (level: low, medium, high)
  /set nothink           Disable thinking
  /set hidethinking      Do not print the thinking
  /set showthinking      Print the thinking
"""

HELP_TOOLS = """Available Commands:
  /tools                 Show the enabled toolsets
  /tools fs,shell        Let the model call these toolsets (fs, shell, system, python, browser, all)
  /tools off             Turn tools off
"""

HELP_SHOW = """Available Commands:
  /show info         Show details for this model
  /show license      Show model license
  /show modelfile    Show Modelfile for this model
  /show parameters   Show parameters for this model
  /show system       Show system message
  /show template     Show prompt template
"""

HELP_PARAMETERS = """Parameters:
  /set parameter seed <int>             Random number seed
  /set parameter num_predict <int>      Max number of tokens to predict
  /set parameter top_k <int>            Pick from top k num of tokens
  /set parameter top_p <float>          Pick token based on sum of probabilities
  /set parameter min_p <float>          Pick token based on top token probability * min_p
  /set parameter num_ctx <int>          Set the context size
  /set parameter temperature <float>    Set creativity level
  /set parameter repeat_penalty <float> How strongly to penalize repetitions
  /set parameter repeat_last_n <int>    Set how far back to look for repetitions
  /set parameter stop <string> <string> ...   Set the stop parameters
"""

HELP_SHORTCUTS = """Available keyboard shortcuts:
  Ctrl + a            Move to the beginning of the line (Home)
  Ctrl + e            Move to the end of the line (End)
  Ctrl + k            Delete the sentence after the cursor
  Ctrl + u            Delete the sentence before the cursor
  Ctrl + w            Delete the word before the cursor
  Ctrl + l            Clear the screen
  Ctrl + c            Stop the model from responding
  Ctrl + d            Exit ossy (/bye)
"""


# ---- statistics -------------------------------------------------------------------------------


def go_duration(ns: int | float) -> str:
    """A duration as Go's time.Duration.String() writes it: 1.5s, 2m3.4s, 12.345ms, 800µs."""
    ns = int(ns)
    if ns == 0:
        return "0s"
    sign, ns = ("-", -ns) if ns < 0 else ("", ns)
    if ns < 1000:
        return f"{sign}{ns}ns"
    if ns < 1_000_000:
        return f"{sign}{_trim(ns / 1e3)}µs"
    if ns < 1_000_000_000:
        return f"{sign}{_trim(ns / 1e6)}ms"
    hours, rest = divmod(ns, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    seconds = _trim(rest / 1e9)
    if hours:
        return f"{sign}{hours}h{minutes}m{seconds}s"
    if minutes:
        return f"{sign}{minutes}m{seconds}s"
    return f"{sign}{seconds}s"


def _trim(value: float) -> str:
    text = f"{value:.9f}".rstrip("0").rstrip(".")
    return text or "0"


def summary(final: dict) -> str:
    """Ollama's `--verbose` block (api.Metrics.Summary) from a final (done) chunk."""
    rows = []
    if final.get("total_duration"):
        rows.append(("total duration", go_duration(final["total_duration"])))
    if final.get("load_duration"):
        rows.append(("load duration", go_duration(final["load_duration"])))
    for prefix, count_key, duration_key in (("prompt eval", "prompt_eval_count", "prompt_eval_duration"),
                                            ("eval", "eval_count", "eval_duration")):
        count, duration = final.get(count_key) or 0, final.get(duration_key) or 0
        if count:
            rows.append((f"{prefix} count", f"{count} token(s)"))
        if duration:
            rows.append((f"{prefix} duration", go_duration(duration)))
            rows.append((f"{prefix} rate", f"{count / duration * 1e9:.2f} tokens/s"))
    return "".join(f"{name + ':':<22}{value}\n" for name, value in rows)


# ---- output -----------------------------------------------------------------------------------


class Printer:
    """Writes one streamed reply: thinking (dimmed on a terminal) between `Thinking...` and
    `...done thinking.`, then the content; tool calls as JSON lines."""

    def __init__(self, out: TextIO, *, hidethinking: bool = False, color: bool | None = None) -> None:
        self.out = out
        self.hidethinking = hidethinking
        self.color = out.isatty() if color is None else color
        self.thinking = False  # inside the thinking block
        self.wrote = False  # any visible text written
        self.ends_with_newline = True

    def _write(self, text: str) -> None:
        if text:
            self.out.write(text)
            self.out.flush()
            self.wrote = True
            self.ends_with_newline = text.endswith("\n")

    def thinking_text(self, text: str) -> None:
        if self.hidethinking or not text:
            return
        if not self.thinking:
            self.thinking = True
            self._write((DIM if self.color else "") + "Thinking...\n")
        self._write(text)

    def _close_thinking(self) -> None:
        if self.thinking:
            self.thinking = False
            self._write(("" if self.ends_with_newline else "\n") + "...done thinking.\n\n" + (RESET if self.color else ""))

    def content(self, text: str) -> None:
        if text:
            self._close_thinking()
            self._write(text)

    def chunk(self, chunk: dict) -> None:
        """One /api/chat or /api/generate chunk."""
        message = chunk.get("message") or {}
        self.thinking_text(message.get("thinking") or chunk.get("thinking") or "")
        self.content(message.get("content") or chunk.get("response") or "")
        for call in message.get("tool_calls") or chunk.get("tool_calls") or []:
            function = call.get("function", {})
            self.content(f"{function.get('name')}({json.dumps(function.get('arguments', {}), ensure_ascii=False)})\n")

    def end_text(self) -> None:
        """Close an open thinking block and end the line (before something else is written)."""
        self._close_thinking()
        if not self.ends_with_newline:
            self._write("\n")

    def finish(self) -> None:
        """End the reply: close an open thinking block, end the line, leave one blank line."""
        self._close_thinking()
        if self.color:
            self.out.write(RESET)
        self.out.write(("" if self.ends_with_newline else "\n") + "\n")
        self.out.flush()


SUMMARY_LINES = 6  # lines of a tool's output shown in the terminal
SUMMARY_WIDTH = 200  # characters of a line (and of a call's arguments) shown


class AgentPrinter(Printer):
    """Writes an agent run: the turns' thinking and content as `Printer` does on `out`; each
    tool call (name and arguments) and the first lines of its result on `err`, escaped, so a
    file or a web page cannot drive the terminal."""

    def __init__(self, out: TextIO, err: TextIO, *, hidethinking: bool = False, color: bool | None = None) -> None:
        super().__init__(out, hidethinking=hidethinking, color=color)
        self.err = err

    def event(self, event) -> None:
        if isinstance(event, TextDelta):
            (self.thinking_text if event.field == "thinking" else self.content)(event.text)
        elif isinstance(event, ToolCalled):
            if self.wrote:
                self.end_text()
            self.err.write(call_line(event.call.name, event.call.arguments))
            self.err.flush()
        elif isinstance(event, ToolReturned):
            self.err.write(result_summary(event.result))
            self.err.flush()


def _clip(text: str, width: int = SUMMARY_WIDTH) -> str:
    text = escape_control(text, keep="\t")
    return text if len(text) <= width else text[:width] + "..."


def call_line(name: str, arguments: str) -> str:
    """`tool: NAME ARGUMENTS` on one line (JSON arguments compacted, long ones cut)."""
    try:
        arguments = json.dumps(json.loads(arguments), ensure_ascii=False)
    except ValueError:
        pass
    return f"tool: {_clip(name, 100)} {_clip(arguments)}\n"


def result_summary(result) -> str:
    """A `ToolResult` in a few lines: status, time and size, then the first lines of the output."""
    lines = result.output.splitlines()
    size = f", {len(lines)} line{'s' * (len(lines) != 1)}" if lines else ""
    head = f"  {result.status} ({result.duration:.2f}s{size})"
    if result.error is not None:
        head += f": {_clip(result.error)}"
    shown = [f"  | {_clip(line)}" for line in lines[:SUMMARY_LINES]]
    if len(lines) > SUMMARY_LINES:
        shown.append(f"  | ... {len(lines) - SUMMARY_LINES} more lines")
    return "\n".join([head, *shown]) + "\n"


# ---- the session and the interpreter ----------------------------------------------------------


def parse_think(value: str | bool | None) -> bool | str | None:
    """--think / `/set think` values: true/false or a level; anything else is an error."""
    if value is None or isinstance(value, bool):
        return value
    text = value.strip().lower()
    if text in ("true", "yes", "on", "1", ""):
        return True
    if text in ("false", "no", "off", "0"):
        return False
    if text in THINK_LEVELS:
        return text
    if text == "max":
        return "high"
    raise OssyError(f"invalid think value '{value}'; use true, false, low, medium or high")


@dataclass
class ToolOptions:
    """How tool calls run in this chat (`ossy run`'s tool flags)."""

    home: Path  # the ossy home (OSSY_HOME): the tools' audit log and document index
    policy: Policy = field(default_factory=Policy)
    workspace: Path = Path(".")
    max_steps: int = 8  # rounds of tool calls per message
    ask_in_terminal: bool = False  # approve destructive calls on stdin (a terminal)
    search_url: str = ""  # OSSY_SEARCH_URL: browser.search's web backend


@dataclass
class Session:
    """What one chat remembers between messages."""

    model: str
    system: str | None = None
    parameters: dict = field(default_factory=dict)  # /set parameter, sent as options
    messages: list[dict] = field(default_factory=list)  # the conversation (without the system)
    think: bool | str | None = None  # None: the server's default (thinking on for gpt-oss)
    hidethinking: bool = False
    verbose: bool = False
    format: str | None = None
    keep_alive: str | None = None
    history: bool = True
    wordwrap: bool = True
    tools: tuple[str, ...] = ()  # enabled toolsets; none: plain chat
    tool_options: ToolOptions | None = None  # how tool calls run; None: tools cannot be turned on

    def request_messages(self) -> list[dict]:
        return ([{"role": "system", "content": self.system}] if self.system else []) + self.messages


QUIT = "quit"

# `/set WORD` switches: WORD -> (session field, value)
MODE_SWITCHES = {
    "hidethinking": ("hidethinking", True), "showthinking": ("hidethinking", False),
    "verbose": ("verbose", True), "quiet": ("verbose", False),
    "history": ("history", True), "nohistory": ("history", False),
    "wordwrap": ("wordwrap", True), "nowordwrap": ("wordwrap", False),
}


class Interpreter:
    """Handles one complete input (a message or a `/command`) for a `Session` through `client`.

    `handle(text)` returns QUIT to end the chat and None otherwise. Replies and command output
    go to `out`, statistics and warnings to `err`. Errors from the server (unknown model, ...)
    are printed as `Error: ...` and the chat goes on."""

    def __init__(self, client, session: Session, out: TextIO | None = None, err: TextIO | None = None,
                 *, color: bool | None = None) -> None:
        self.client = client
        self.session = session
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.color = color
        self._show_cache: dict | None = None
        self._toolbox = None  # ossy.agent.Toolbox for session.tools, built when first needed
        self._tool_context = None  # lives across toolset changes (python kernel state)
        self.last_run = None  # the AgentResult of the last message sent with tools

    def say(self, text: str = "") -> None:
        self.out.write(text + "\n")
        self.out.flush()

    # -- dispatch --------------------------------------------------------------------------------
    def handle(self, text: str) -> str | None:
        stripped = text.strip()
        if not stripped:
            return None
        try:
            if stripped.startswith("/") and not stripped.startswith("//"):
                return self.command(stripped)
            self.send(text)
        except OssyError as e:
            self.say(f"Error: {e}")
        return None

    def command(self, line: str) -> str | None:
        word, _, rest = line.partition(" ")
        word, rest = word.lower(), rest.strip()
        if word in ("/bye", "/exit", "/quit"):
            return QUIT
        if word in ("/?", "/help"):
            self.help(rest)
        elif word == "/set":
            self.set(rest)
        elif word == "/show":
            self.show(rest)
        elif word == "/clear":
            self.session.messages.clear()
            self.say("Cleared session context")
        elif word == "/load":
            self.load(rest)
        elif word == "/save":
            self.save(rest)
        elif word == "/tools":
            self.tools(rest)
        elif word == "/list":
            for model in self.client.tags():
                self.say(model.get("name", ""))
        else:
            self.say(f"Unknown command '{word}'. Type /? for help")
        return None

    def help(self, topic: str) -> None:
        topic = topic.lower()
        texts = {"": HELP, "shortcuts": HELP_SHORTCUTS, "shortcut": HELP_SHORTCUTS, "set": HELP_SET,
                 "/set": HELP_SET, "show": HELP_SHOW, "/show": HELP_SHOW, "parameters": HELP_PARAMETERS,
                 "tools": HELP_TOOLS, "/tools": HELP_TOOLS}
        self.out.write(texts.get(topic, HELP))
        self.out.flush()

    # -- /set ------------------------------------------------------------------------------------
    def set(self, rest: str) -> None:
        what, _, value = rest.partition(" ")
        what, value = what.lower(), value.strip()
        s = self.session
        if what == "parameter":
            self.set_parameter(value)
        elif what == "system":
            if not value:
                self.say("Usage: /set system <string>")
                return
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
                value = value[1:-1]
            s.system = value
            self.say("Set system message.")
        elif what == "think":
            s.think = parse_think(value or "true")
            level = f" (level {s.think})" if isinstance(s.think, str) else ""
            self.say(f"Set 'think' mode{level}." if s.think is not False else "Set 'nothink' mode.")
        elif what == "nothink":
            s.think = False
            self.say("Set 'nothink' mode.")
        elif what == "format":
            if value.lower() != "json":
                self.say("Invalid or missing format. For 'json' mode use '/set format json'")
                return
            s.format = "json"
            self.say("Set format to 'json' mode.")
        elif what in MODE_SWITCHES:
            field, on = MODE_SWITCHES[what]
            setattr(s, field, on)
            self.say(f"Set '{what}' mode.")
        elif what == "noformat":
            s.format = None
            self.say("Disabled format.")
        else:
            self.help("set")

    def set_parameter(self, text: str) -> None:
        try:
            words = shlex.split(text)
        except ValueError:
            words = text.split()
        if len(words) < 2:
            self.help("parameters")
            return
        name, values = words[0].lower(), words[1:]
        if name not in PARAMETERS:
            raise OssyError(f"unknown parameter '{name}'; /? parameters lists them")
        try:
            if PARAMETERS[name].repeats:
                self.session.parameters[name] = [convert(name, v) for v in values]
            else:
                self.session.parameters[name] = convert(name, " ".join(values))
        except ValueError as e:
            raise OssyError(str(e)) from None
        self.say(f"Set parameter '{name}' to '{', '.join(values)}'")

    # -- /show -----------------------------------------------------------------------------------
    def model_info(self) -> dict:
        if self._show_cache is None:
            self._show_cache = self.client.show(self.session.model)
        return self._show_cache

    def show(self, what: str) -> None:
        what = what.lower()
        if what not in ("info", "license", "modelfile", "parameters", "system", "template"):
            self.help("show")
            return
        info = self.model_info()
        s = self.session
        if what == "info":
            self.out.write(render_show(info, parameters=[(k, str(v)) for k, v in s.parameters.items()],
                                       system=s.system) + "\n")
        elif what == "license":
            self.say(info.get("license") or "No license was specified for this model.")
        elif what == "modelfile":
            self.say(info.get("modelfile") or f"FROM {s.model}")
        elif what == "parameters":
            model_params = (info.get("parameters") or "").strip()
            if not model_params and not s.parameters:
                self.say("No parameters were specified for this model.")
                return
            if model_params:
                self.say("Model defined parameters:")
                self.say(model_params)
            if s.parameters:
                self.say("User defined parameters:")
                for name, value in s.parameters.items():
                    self.say(f"{name:<30} {value}")
        elif what == "system":
            system = s.system or info.get("system")
            self.say(system or "No system message was specified for this model.")
        elif what == "template":
            self.say(info.get("template") or "No prompt template was specified for this model.")

    # -- /tools -----------------------------------------------------------------------------------
    def tools(self, rest: str) -> None:
        s = self.session
        if rest.lower() in ("help", "?"):
            self.help("tools")
            return
        if rest:
            wanted = parse_toolsets(rest)
            previous, s.tools = s.tools, wanted
            self._toolbox = None
            try:
                self.toolbox()  # an unknown toolset is an error here, before the next message
            except OssyError:
                s.tools = previous
                raise
            self.say(f"Enabled tools: {', '.join(wanted)}." if wanted else "Disabled tools.")
            return
        if not s.tools:
            self.say(f"Tools are off. Turn them on with /tools LIST (toolsets: {', '.join(TOOLSETS)}).")
            return
        opts, policy = s.tool_options, s.tool_options.policy
        self.say(f"Tools: {', '.join(s.tools)} ({', '.join(self.toolbox().registry.names)})")
        self.say(f"  workspace {Path(opts.workspace).resolve()}, sandbox {policy.mode}"
                 f"{', network' if policy.network else ''}, approvals {policy.approvals}"
                 f"{', dry run' if policy.dry_run else ''}, at most {opts.max_steps} rounds of tool calls")

    def toolbox(self):
        """The `ossy.agent.Toolbox` of the enabled toolsets (None when tools are off)."""
        s = self.session
        if not s.tools:
            return None
        if self._toolbox is None:
            opts = s.tool_options
            if opts is None:
                raise OssyError("tools are not available in this chat")
            if self._tool_context is None:
                self._tool_context = ToolContext(Path(opts.workspace), opts.policy, home=opts.home,
                                                 search_url=opts.search_url)
            self._toolbox = Toolbox.open(s.tools, context=self._tool_context,
                                         approver=terminal_approver() if opts.ask_in_terminal else None)
        return self._toolbox

    def close(self) -> None:
        """End the tools' per-chat state (the python kernel, the browser's pages)."""
        self._toolbox = None
        if self._tool_context is not None:
            self._tool_context.close()
            self._tool_context = None

    # -- /load and /save --------------------------------------------------------------------------
    def load(self, name: str) -> None:
        if not name:
            self.say("Usage: /load <modelname>")
            return
        self.client.show(name)  # an unknown model is an error before anything changes
        self.say(f"Loading model '{name}'")
        self.client.load(name, keep_alive=self.session.keep_alive)
        self.session.model = name
        self.session.messages.clear()
        self._show_cache = None

    def save(self, name: str) -> None:
        if not name:
            self.say("Usage: /save <modelname>")
            return
        s = self.session
        fields: dict = {"from_": s.model}
        if s.system:
            fields["system"] = s.system
        if s.parameters:
            fields["parameters"] = s.parameters
        saved = [m for m in s.messages if m.get("role") in ("user", "assistant") and not m.get("tool_calls")]
        if saved:  # MESSAGE holds text only: tool calls and their results stay out
            fields["messages"] = [{k: m[k] for k in ("role", "content", "thinking") if m.get(k)} for m in saved]
        self.client.create(name, **fields)
        self.say(f"Created new model '{name}'")

    # -- chatting --------------------------------------------------------------------------------
    def send(self, text: str) -> dict | None:
        """Send one user message and print the streamed reply (through the agent loop when
        toolsets are enabled); the reply joins the history (unless interrupted). Returns the
        final chunk."""
        s = self.session
        s.messages.append({"role": "user", "content": text})
        if s.tools:
            printer = AgentPrinter(self.out, self.err, hidethinking=s.hidethinking, color=self.color)
        else:
            printer = Printer(self.out, hidethinking=s.hidethinking, color=self.color)
        try:
            replies, final = self._agent_reply(printer) if s.tools else self._reply(printer)
        except KeyboardInterrupt:
            printer.finish()
            s.messages.pop()
            return None
        except OssyError:
            s.messages.pop()
            if printer.wrote:
                printer.finish()
            raise
        printer.finish()
        s.messages.extend(replies)
        if s.tools and self.last_run.stopped == "step_limit":
            self.err.write(f"Stopped: the step limit was reached (--max-steps {s.tool_options.max_steps}); "
                           "the tool calls the model asked for next did not run.\n")
            self.err.flush()
        if s.verbose and final:
            self.err.write(summary(final))
            self.err.flush()
        return final

    def _reply(self, printer: Printer) -> tuple[list[dict], dict | None]:
        """One streamed reply: ([the assistant message], the final chunk)."""
        s = self.session
        content, thinking, calls, final = [], [], [], None
        stream = self.client.chat(s.model, s.request_messages(), think=s.think, format=s.format,
                                  options=dict(s.parameters) or None, keep_alive=s.keep_alive)
        try:
            for chunk in stream:
                printer.chunk(chunk)
                message = chunk.get("message") or {}
                content.append(message.get("content") or "")
                thinking.append(message.get("thinking") or "")
                calls.extend(message.get("tool_calls") or [])
                if chunk.get("done"):
                    final = chunk
        except KeyboardInterrupt:
            stream.close()  # closes the connection: the server cancels the generation
            raise
        reply = {"role": "assistant", "content": "".join(content)}
        if any(thinking):
            reply["thinking"] = "".join(thinking)
        if calls:
            reply["tool_calls"] = calls
        return [reply], final

    def _agent_reply(self, printer: AgentPrinter) -> tuple[list[dict], dict | None]:
        """The agent loop over this message: (the assistant and tool messages, the last final chunk)."""

        s = self.session
        request = s.request_messages()
        self.last_run = loop(ClientModel(self.client, s.model, keep_alive=s.keep_alive), self.toolbox(), request,
                             max_steps=s.tool_options.max_steps, think=s.think, options=dict(s.parameters) or None,
                             on_event=printer.event)
        return self.last_run.messages[len(request):], self.last_run.last.stats or None


# ---- terminal input ---------------------------------------------------------------------------


def read_message(read_line: Callable[[str], str], prompt: str = ">>> ", more: str = "... ") -> str:
    """One message: a line, or a `\"\"\"` block (which may start after a command, as in
    `/set system \"\"\"...`) up to the closing `\"\"\"`. EOFError / KeyboardInterrupt pass through."""
    line = read_line(prompt)
    head, sep, tail = line.partition('"""')
    if not sep or '"""' in tail or (head.strip() and not head.strip().startswith("/")):
        return line
    parts = [tail] if tail else []
    while True:
        nxt = read_line(more)
        if '"""' in nxt:
            last = nxt.split('"""', 1)[0]
            if last:
                parts.append(last)
            break
        parts.append(nxt)
    body = "\n".join(parts)
    return f"{head}{body}" if head.strip() else body


def history_path() -> Path:
    return settings().home / "history"


def _setup_history(path: Path) -> Callable[[], None]:
    """Readline history in `path`; returns the function that saves it (a no-op without readline)."""
    try:
        import readline  # lazy: loading it changes how input() reads the terminal; only the REPL wants that
    except ImportError:  # pragma: no cover - Windows
        return lambda: None
    try:
        readline.read_history_file(path)
    except OSError:
        pass
    readline.set_history_length(1000)

    def save() -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            readline.write_history_file(path)
        except OSError:
            pass

    return save


def repl(interpreter: Interpreter, read_line: Callable[[str], str] = input, *, history: Path | None = None) -> int:
    """The interactive loop over `interpreter` until /bye or Ctrl-D."""
    save_history = _setup_history(history) if history else (lambda: None)
    out = interpreter.out
    try:
        while True:
            try:
                text = read_message(read_line)
            except EOFError:
                out.write("\n")
                return 0
            except KeyboardInterrupt:
                out.write("\nUse Ctrl + d or /bye to exit.\n")
                continue
            try:
                if interpreter.handle(text) == QUIT:
                    return 0
            except KeyboardInterrupt:
                out.write("\n")
    finally:
        if interpreter.session.history:
            save_history()
        out.flush()
