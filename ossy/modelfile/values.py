'''How an instruction's value is delimited in Modelfile text, read and written the same way.

Ollama's rule (`parser/parser.go`): a value starts after the instruction and ends at the end of
its line, unless it opens with `"` or `"""`. A quoted value runs on over as many lines as it
needs and ends at the first line whose last non-blank characters are the same quote; on the
opening line the closing quote may not overlap the opening one, so `""""""` is the empty
value and `""""` is still open. A closing quote followed by more text on its line does not
count. Everything between the quotes is kept as written: newlines, indentation, other quote
characters. There are no escapes. Whitespace around the whole value is dropped.

Owns `read_value` (used by the parser) and `quote` (used by the writer); `quote` proves every
value it writes by reading it back, so what it writes always parses to the same string.
Does not know instructions, parameters or error messages.
'''

from __future__ import annotations

from dataclasses import dataclass

QUOTES = ('"""', '"')


@dataclass(frozen=True)
class Value:
    """A value read from `lines`: its text, where it starts (0-based line and column of its
    first character or opening quote), the index of its last line, and the quote used."""

    text: str
    line: int
    column: int
    end: int
    quote: str


class Unterminated(Exception):
    """A quoted value that no line closes; `.quote` opened it at (`.line`, `.column`)."""

    def __init__(self, quote: str, line: int, column: int) -> None:
        super().__init__(quote)
        self.quote, self.line, self.column = quote, line, column


def read_value(lines: list[str], line: int, column: int) -> Value:
    """Read the value that begins at `lines[line][column:]` (after the instruction's name)."""
    body = lines[line][column:].lstrip()
    start = len(lines[line]) - len(body)
    quote = next((q for q in QUOTES if body.startswith(q)), "")
    if not quote:
        return Value(body.rstrip(), line, start, line, "")
    end = _closing_line(lines, line, body, quote)
    if end is None:
        raise Unterminated(quote, line, start)
    whole = "\n".join([body, *lines[line + 1 : end + 1]]).rstrip()
    return Value(whole[len(quote) : -len(quote)], line, start, end, quote)


def quote(text: str) -> str | None:
    '''`text` written as a value that `read_value` reads back unchanged, or None if none can.

    As `ollama show --modelfile` writes it: bare when that reads back, else in `"""` if it
    holds a `"`, else in `"`. None for text with a carriage return or with a line before its
    last that ends in `"""` (which would also end a `"` value there).
    '''
    quoted = ('"""' if '"' in text else '"').join(("", text, ""))
    candidates = [text, quoted] if text else [quoted]
    return next((c for c in candidates if _reads_back(c, text)), None)


def _closing_line(lines: list[str], line: int, body: str, quote: str) -> int | None:
    opening = body.rstrip()
    if len(opening) >= 2 * len(quote) and opening.endswith(quote):
        return line
    for end in range(line + 1, len(lines)):
        if lines[end].rstrip().endswith(quote):
            return end
    return None


def _reads_back(written: str, text: str) -> bool:
    lines = written.split("\n")
    try:
        value = read_value(lines, 0, 0)
    except Unterminated:
        return False
    return value.end == len(lines) - 1 and value.text == text and "\r" not in written
