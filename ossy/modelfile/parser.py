"""Reading Modelfile text into a `Modelfile`, with errors that say where and what to do instead.

Follows Ollama's `parser/parser.go` for what it accepts: instruction names in any case and
order, `#` comments on their own lines, a UTF-8 (or UTF-16) byte-order mark, values bare or
quoted as `values.py` describes. Stricter where Ollama silently does something surprising:
a second FROM, TEMPLATE, SYSTEM or REQUIRES, or a parameter set twice, is an error instead of
"the last one wins"; so are an empty FROM and an empty `stop`. DRAFT, RENDERER and PARSER
(undocumented Ollama instructions) are refused by name. Deprecated parameters are accepted
and dropped with a warning, as Ollama does. Carriage returns end lines like newlines.

With `check_template` (the default) the TEMPLATE is parsed by `ossy.template` as soon as it is
read, and a template error is reported at the Modelfile line it falls on.

Does not resolve FROM (a model name, a checkpoint directory or a file: the store does that)
and does not know the store.
"""

from __future__ import annotations

import codecs
import difflib
import re
from os import PathLike
from pathlib import Path

from ossy.modelfile.errors import ModelfileError
from ossy.modelfile.modelfile import Modelfile
from ossy.modelfile.parameters import DEPRECATED, PARAMETERS, convert
from ossy.modelfile.values import Unterminated, Value, read_value
from ossy.template import OllamaTemplate, TemplateError
from ossy.tools.registry import TOOLSETS

INSTRUCTIONS = (
    "FROM", "PARAMETER", "TEMPLATE", "SYSTEM", "ADAPTER", "LICENSE", "MESSAGE", "REQUIRES", "TOOLS",
)
OLLAMA_ONLY = ("DRAFT", "RENDERER", "PARSER")
ROLES = ("system", "user", "assistant")
_SINGLE = ("FROM", "TEMPLATE", "SYSTEM", "REQUIRES")
_MAY_BE_EMPTY = ("TEMPLATE", "SYSTEM", "LICENSE")
_USAGE = {
    "FROM": "FROM <model name or path>",
    "PARAMETER": "PARAMETER <name> <value>",
    "TEMPLATE": 'TEMPLATE """<Go template>"""',
    "SYSTEM": 'SYSTEM """<system prompt>"""',
    "ADAPTER": "ADAPTER <path>",
    "LICENSE": 'LICENSE """<license text>"""',
    "MESSAGE": "MESSAGE <system|user|assistant> <text>",
    "REQUIRES": "REQUIRES <version such as 0.14.0>",
    "TOOLS": "TOOLS <name>[,<name>...]",
}

_NUMBER = r"(?:0|[1-9][0-9]*)"
_PRERELEASE = rf"(?:{_NUMBER}|[0-9]*[A-Za-z-][0-9A-Za-z-]*)"
_BUILD = r"[0-9A-Za-z-]+"
_SEMVER = re.compile(  # golang.org/x/mod/semver, as Ollama checks REQUIRES; "v" optional
    rf"{_NUMBER}(?:\.{_NUMBER}(?:\.{_NUMBER}(?:-{_PRERELEASE}(?:\.{_PRERELEASE})*)?"
    rf"(?:\+{_BUILD}(?:\.{_BUILD})*)?)?)?"
)
_TOOLSET = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
_TOOLS_HINT = "write names separated by commas, such as TOOLS fs,shell"
_GO_ERROR_PREFIX = re.compile(r"^template: [^:]*:\d+:(?:\d+:)? ")


def parse(text: str, *, path: str | None = None, check_template: bool = True) -> Modelfile:
    """Parse Modelfile `text`; `path` names it in error messages (default "Modelfile")."""
    return _Parser(text, path, check_template).run()


def parse_file(path: str | PathLike[str], *, check_template: bool = True) -> Modelfile:
    """Read and parse the Modelfile at `path`."""
    return parse(_read_text(str(path)), path=str(path), check_template=check_template)


class _Parser:
    def __init__(self, text: str, path: str | None, check_template: bool) -> None:
        text = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
        self.lines = text.split("\n")
        self.path = path
        self.check_template = check_template
        self.result = Modelfile()
        self.first_line: dict[str, int] = {}  # instruction or parameter → line it was set on

    def run(self) -> Modelfile:
        index = 0
        while index < len(self.lines):
            index = self._line(index) + 1
        if not self.result.from_:
            raise self._error("no FROM line; add one such as FROM gpt-oss:20b")
        return self.result

    def _line(self, index: int) -> int:
        """Read the instruction starting on line `index`; return the index of its last line."""
        line = self.lines[index]
        body = line.lstrip()
        if not body or body.startswith("#"):
            return index
        word = re.match(r"[A-Za-z]*", body).group()
        keyword = word.upper()
        if keyword not in INSTRUCTIONS:
            raise self._not_an_instruction(body.split()[0], index)
        after = len(line) - len(body) + len(word)
        if after < len(line) and not line[after].isspace():
            raise self._error(f"expected a space after {keyword}", index, after)
        if keyword == "PARAMETER":
            return self._parameter(index, after)
        if keyword == "MESSAGE":
            return self._message(index, after)
        value = self._value(index, after, keyword, _USAGE[keyword], keyword in _MAY_BE_EMPTY)
        if keyword in _SINGLE:
            self._once(keyword, index)
        self._store(keyword, value)
        return value.end

    def _store(self, keyword: str, value: Value) -> None:
        result = self.result
        if keyword == "FROM":
            result.from_ = value.text
        elif keyword == "TEMPLATE":
            self._check_template(value)
            result.template = value.text
        elif keyword == "SYSTEM":
            result.system = value.text
        elif keyword == "ADAPTER":
            result.adapters.append(value.text)
        elif keyword == "LICENSE":
            result.licenses.append(value.text)
        elif keyword == "REQUIRES":
            result.requires = self._version(value)
        else:
            result.tools += self._toolsets(value)

    def _parameter(self, index: int, column: int) -> int:
        name, start = self._word(index, column, "PARAMETER", _USAGE["PARAMETER"])
        if name not in PARAMETERS and name not in DEPRECATED:
            raise self._error(f'unknown parameter "{name}"; {_choices(name, PARAMETERS)}', index, start)
        label = f"PARAMETER {name}"
        value = self._value(index, start + len(name), label, f"{label} <value>", True)
        if name in DEPRECATED:
            note = f'parameter "{name}" is deprecated and ignored, as in Ollama; remove this line'
            self.result.warnings.append(str(self._error(note, index)))
            return value.end
        try:
            typed = convert(name, value.text)
        except ValueError as err:
            raise self._error(str(err), value.line, value.column) from None
        if PARAMETERS[name].repeats:
            self.result.parameters.setdefault(name, []).append(typed)
        else:
            self._once(label, index)
            self.result.parameters[name] = typed
        return value.end

    def _message(self, index: int, column: int) -> int:
        role, start = self._word(index, column, "MESSAGE", _USAGE["MESSAGE"])
        if role not in ROLES:
            raise self._error(f'unknown MESSAGE role "{role}"; {_choices(role, ROLES)}', index, start)
        label = f"MESSAGE {role}"
        value = self._value(index, start + len(role), label, f"{label} <text>", True)
        self.result.messages.append((role, value.text))
        return value.end

    def _word(self, index: int, column: int, label: str, usage: str) -> tuple[str, int]:
        """The word after an instruction (a parameter name, a role) and its column."""
        rest = self.lines[index][column:]
        if not rest.strip():
            raise self._error(f"{label} needs a value; write {usage}", index)
        word = rest.split()[0]
        return word, column + len(rest) - len(rest.lstrip())

    def _value(self, index: int, column: int, label: str, usage: str, may_be_empty: bool = False) -> Value:
        try:
            value = read_value(self.lines, index, column)
        except Unterminated as err:
            quote = err.quote
            reason = f"{label} value opened with {quote} is never closed; end its last line with {quote}"
            raise self._error(reason, err.line, err.column) from None
        if not value.text and not (value.quote and may_be_empty):
            raise self._error(f"{label} needs a value; write {usage}", index)
        return value

    def _once(self, key: str, index: int) -> None:
        first = self.first_line.setdefault(key, index + 1)
        if first != index + 1:
            raise self._error(f"{key} is already set on line {first}; keep one", index)

    def _version(self, value: Value) -> str:
        version = value.text.removeprefix("v")
        if not _SEMVER.fullmatch(version):
            reason = f'REQUIRES "{value.text}" is not a version; write one such as 0.14.0'
            raise self._error(reason, value.line, value.column)
        return version

    def _toolsets(self, value: Value) -> list[str]:
        names = [name.strip() for name in value.text.split(",")]
        for name in names:
            if not _TOOLSET.fullmatch(name):
                reason = f'invalid toolset name "{name}" in TOOLS; {_TOOLS_HINT}'
            elif name not in TOOLSETS:
                reason = f'unknown toolset "{name}" in TOOLS; ossy has {", ".join(TOOLSETS)}'
            elif name in self.result.tools or names.count(name) > 1:
                reason = f'toolset "{name}" is listed twice in TOOLS; keep one'
            else:
                continue
            raise self._error(reason, value.line, value.column)
        return names

    def _check_template(self, value: Value) -> None:
        if not self.check_template:
            return
        # A sibling leaf package, imported only when a TEMPLATE is checked.

        try:
            OllamaTemplate(value.text, name="TEMPLATE")  # Go's parse plus Ollama's own checks
        except TemplateError as err:
            line = value.line + (err.line or 1) - 1
            raise self._error(_template_problem(str(err)), line) from None

    def _not_an_instruction(self, token: str, index: int) -> ModelfileError:
        if token.startswith('"'):
            quote = '"""' if token.startswith('"""') else '"'
            reason = (
                f"unexpected '{quote}' outside a TEMPLATE/SYSTEM value; "
                f"remove this line or open the value with TEMPLATE {quote}"
            )
        elif token.startswith(("{{", "<|")):
            reason = 'template text outside a TEMPLATE value; put it between TEMPLATE """ and a closing """'
        elif token.startswith("```"):
            reason = "unexpected Markdown code fence; remove this line"
        elif token.upper() in OLLAMA_ONLY:
            reason = f"{token.upper()} is an Ollama instruction ossy does not support; remove this line"
        else:
            reason = f'unknown instruction "{token}"; {_choices(token.upper(), INSTRUCTIONS)}'
        return self._error(reason, index)

    def _error(self, reason: str, index: int | None = None, column: int | None = None) -> ModelfileError:
        """An error at 0-based line `index` and column `column` (shown 1-based)."""
        line = None if index is None else index + 1
        shown_column = None if column is None else column + 1
        return ModelfileError(reason, path=self.path, line=line, column=shown_column)


def _choices(word: str, valid) -> str:
    """`did you mean "x"? valid: a, b, c` (the guess only when one is close)."""
    close = difflib.get_close_matches(word, list(valid), n=1)
    guess = f'did you mean "{close[0]}"? ' if close else ""
    return f"{guess}valid: {', '.join(valid)}"


def _template_problem(go_message: str) -> str:
    detail = _GO_ERROR_PREFIX.sub("", go_message)
    if detail.startswith("unexpected {{end}}"):
        return (
            "TEMPLATE has a stray {{end}} with no matching {{if}}, {{range}} or {{with}}; "
            "the template looks cut short: complete the elided part "
            "(ossy show gpt-oss:20b --template prints the full one) or delete this {{end}}"
        )
    if detail == "unexpected EOF":
        return "TEMPLATE ends inside an {{if}}, {{range}} or {{with}}; add the missing {{end}}"
    return f"TEMPLATE: {detail}"


def _read_text(path: str) -> str:
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise ModelfileError(f"cannot read the Modelfile: {err.strerror}", path=path) from None
    utf16 = data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
    encoding = "utf-16" if utf16 else "utf-8-sig"
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as err:
        line = data[: err.start].decode(encoding, errors="replace").count("\n") + 1
        found = f"{'UTF-16' if utf16 else 'UTF-8'} text (byte 0x{data[err.start]:02x})"
        reason = f"not {found}; save the file as UTF-8"
        raise ModelfileError(reason, path=path, line=line) from None
