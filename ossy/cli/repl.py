"""The chat of `ossy run`: a session, the `/...` command interpreter, streaming output and the
terminal loop (ollama-reference §1.2).

Owns: `Session` (model, system, parameters, think, format, messages), `Interpreter` (one input
-> what to do; it only talks to a `Client` and writes to two text streams, so tests drive it
without a terminal), `Printer` (streamed chunks -> text: thinking dimmed between `Thinking...`
and `...done thinking.`), `summary` (Ollama's `--verbose` statistics), `read_message` (one
message, with `\"\"\"` multi-line blocks) and `repl` (the loop: readline history, Ctrl-C stops a
generation, Ctrl-D exits). Does not own: argument parsing or server discovery (`ossy.cli.run`).
"""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from ossy.errors import OssyError

DIM, RESET = "\x1b[2m", "\x1b[0m"
THINK_LEVELS = ("low", "medium", "high")

HELP = """Available Commands:
  /set            Set session variables
  /show           Show model information
  /load <model>   Load a session or model
  /save <model>   Save your current session
  /clear          Clear session context
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

    def finish(self) -> None:
        """End the reply: close an open thinking block, end the line, leave one blank line."""
        self._close_thinking()
        if self.color:
            self.out.write(RESET)
        self.out.write(("" if self.ends_with_newline else "\n") + "\n")
        self.out.flush()


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
        elif word == "/list":
            for model in self.client.tags():
                self.say(model.get("name", ""))
        else:
            self.say(f"Unknown command '{word}'. Type /? for help")
        return None

    def help(self, topic: str) -> None:
        topic = topic.lower()
        texts = {"": HELP, "shortcuts": HELP_SHORTCUTS, "shortcut": HELP_SHORTCUTS, "set": HELP_SET,
                 "/set": HELP_SET, "show": HELP_SHOW, "/show": HELP_SHOW, "parameters": HELP_PARAMETERS}
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
        from ossy.modelfile.parameters import PARAMETERS, convert

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
            self.out.write(render_info(info, s))
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
        if s.messages:
            fields["messages"] = [{k: m[k] for k in ("role", "content", "thinking") if m.get(k)} for m in s.messages]
        self.client.create(name, **fields)
        self.say(f"Created new model '{name}'")

    # -- chatting --------------------------------------------------------------------------------
    def send(self, text: str) -> dict | None:
        """Send one user message and print the streamed reply; the reply joins the history
        (unless interrupted). Returns the final chunk."""
        s = self.session
        s.messages.append({"role": "user", "content": text})
        printer = Printer(self.out, hidethinking=s.hidethinking, color=self.color)
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
            printer.finish()
            s.messages.pop()
            return None
        except OssyError:
            s.messages.pop()
            if printer.wrote:
                printer.finish()
            raise
        printer.finish()
        reply = {"role": "assistant", "content": "".join(content)}
        if any(thinking):
            reply["thinking"] = "".join(thinking)
        if calls:
            reply["tool_calls"] = calls
        s.messages.append(reply)
        if s.verbose and final:
            self.err.write(summary(final))
            self.err.flush()
        return final


def render_info(info: dict, session: Session | None = None) -> str:
    """`/show info`: the Model, Capabilities, Parameters, System and License sections of
    `ollama show`, from an /api/show response."""
    details = info.get("details") or {}
    model_info = info.get("model_info") or {}
    arch = model_info.get("general.architecture") or details.get("family") or ""
    rows = [("architecture", arch), ("parameters", details.get("parameter_size", "")),
            ("context length", model_info.get(f"{arch}.context_length", "")),
            ("embedding length", model_info.get(f"{arch}.embedding_length", "")),
            ("quantization", details.get("quantization_level", ""))]
    sections = [("Model", [r for r in rows if r[1] not in ("", None)])]
    sections.append(("Capabilities", [(c,) for c in info.get("capabilities") or ()]))
    parameters = [tuple(line.split(None, 1)) for line in (info.get("parameters") or "").splitlines() if line.strip()]
    if session and session.parameters:
        parameters += [(k, str(v)) for k, v in session.parameters.items()]
    if parameters:
        sections.append(("Parameters", parameters))
    system = (session.system if session else None) or info.get("system")
    if system:
        sections.append(("System", [(line,) for line in _first_lines(system)]))
    if info.get("license"):
        sections.append(("License", [(line,) for line in _first_lines(info["license"])]))
    out = []
    for title, table in sections:
        if not table:
            continue
        out.append(f"  {title}\n")
        width = max((len(str(r[0])) for r in table if len(r) > 1), default=0)
        for row in table:
            out.append("    " + (f"{str(row[0]):<{width}}    {row[1]}" if len(row) > 1 else str(row[0])).rstrip() + "\n")
        out.append("\n")
    return "".join(out)


def _first_lines(text: str, n: int = 2) -> list[str]:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[:n] + (["..."] if len(lines) > n else [])


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
    from ossy.config import settings

    return settings().home / "history"


def _setup_history(path: Path) -> Callable[[], None]:
    """Readline history in `path`; returns the function that saves it (a no-op without readline)."""
    try:
        import readline
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
