"""The lexer of Go's text/template, ported state for state (text/template/parse/lex.go).

Owns: splitting template text into items (text, delimiters, identifiers, fields, variables,
strings, numbers, keywords...), the `{{- ` / ` -}}` trim markers, comments, line counting, and
the lexer's error texts ("unclosed action", "bad character U+0023 '#'", ...).
Does not own: what the items mean (parser).

Positions are indices into the Python string (code points); Go's are byte offsets, so callers
that print a column convert it (see nodes.error_context).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from ossy.template.gofmt import quote

LEFT_DELIM, RIGHT_DELIM = "{{", "}}"
LEFT_COMMENT, RIGHT_COMMENT = "/*", "*/"
SPACE_CHARS = " \t\r\n"


class T(IntEnum):
    """Item types, in Go's order (keywords sort after KEYWORD)."""

    ERROR = 0
    BOOL = 1
    CHAR = 2
    CHAR_CONSTANT = 3
    COMMENT = 4
    COMPLEX = 5
    ASSIGN = 6
    DECLARE = 7
    EOF = 8
    FIELD = 9
    IDENTIFIER = 10
    LEFT_DELIM = 11
    LEFT_PAREN = 12
    NUMBER = 13
    PIPE = 14
    RAW_STRING = 15
    RIGHT_DELIM = 16
    RIGHT_PAREN = 17
    SPACE = 18
    STRING = 19
    TEXT = 20
    VARIABLE = 21
    KEYWORD = 22
    BLOCK = 23
    BREAK = 24
    CONTINUE = 25
    DOT = 26
    DEFINE = 27
    ELSE = 28
    END = 29
    IF = 30
    NIL = 31
    RANGE = 32
    TEMPLATE = 33
    WITH = 34


KEYWORDS = {".": T.DOT, "block": T.BLOCK, "break": T.BREAK, "continue": T.CONTINUE,
            "define": T.DEFINE, "else": T.ELSE, "end": T.END, "if": T.IF, "range": T.RANGE,
            "nil": T.NIL, "template": T.TEMPLATE, "with": T.WITH}


@dataclass(frozen=True)
class Item:
    typ: T
    pos: int
    val: str
    line: int

    def __str__(self) -> str:
        if self.typ == T.EOF:
            return "EOF"
        if self.typ == T.ERROR:
            return self.val
        if self.typ > T.KEYWORD:
            return f"<{self.val}>"
        if len(self.val) > 10:
            return quote(self.val[:10]) + "..."
        return quote(self.val)


def is_space(ch: str) -> bool:
    return ch in (" ", "\t", "\r", "\n")


def is_alnum(ch: str) -> bool:
    return ch == "_" or (ch != "" and (ch.isalpha() or ch.isdecimal()))


def has_left_trim_marker(s: str) -> bool:
    return len(s) >= 2 and s[0] == "-" and is_space(s[1])


def has_right_trim_marker(s: str) -> bool:
    return len(s) >= 2 and is_space(s[0]) and s[1] == "-"


class Lexer:
    """Hands out items one at a time, like Go's lexer.nextItem."""

    def __init__(self, text: str, *, break_ok: bool = True, continue_ok: bool = True):
        self.input = text
        self.pos = 0
        self.start = 0
        self.at_eof = False
        self.paren_depth = 0
        self.line = 1
        self.start_line = 1
        self.inside_action = False
        self.break_ok = break_ok
        self.continue_ok = continue_ok
        self.item: Item | None = None

    # -- primitives ---------------------------------------------------------------------

    def next(self) -> str:
        if self.pos >= len(self.input):
            self.at_eof = True
            return ""
        ch = self.input[self.pos]
        self.pos += 1
        if ch == "\n":
            self.line += 1
        return ch

    def peek(self) -> str:
        ch = self.next()
        self.backup()
        return ch

    def backup(self) -> None:
        if not self.at_eof and self.pos > 0:
            self.pos -= 1
            if self.input[self.pos] == "\n":
                self.line -= 1

    def this_item(self, typ: T) -> Item:
        item = Item(typ, self.start, self.input[self.start:self.pos], self.start_line)
        self.start = self.pos
        self.start_line = self.line
        return item

    def emit(self, typ: T):
        return self.emit_item(self.this_item(typ))

    def emit_item(self, item: Item):
        self.item = item
        return None

    def ignore(self) -> None:
        self.line += self.input.count("\n", self.start, self.pos)
        self.start = self.pos
        self.start_line = self.line

    def accept(self, valid: str) -> bool:
        ch = self.next()
        if ch != "" and ch in valid:
            return True
        self.backup()
        return False

    def accept_run(self, valid: str) -> None:
        while True:
            ch = self.next()
            if ch == "" or ch not in valid:
                break
        self.backup()

    def errorf(self, message: str):
        self.item = Item(T.ERROR, self.start, message, self.start_line)
        self.start = 0
        self.pos = 0
        self.input = ""
        return None

    def next_item(self) -> Item:
        self.item = Item(T.EOF, self.pos, "EOF", self.start_line)
        state = self.lex_inside_action if self.inside_action else self.lex_text
        while state is not None:
            state = state()
        return self.item

    # -- states -------------------------------------------------------------------------

    def lex_text(self):
        x = self.input.find(LEFT_DELIM, self.pos)
        if x >= 0:
            if x > self.pos:
                self.pos = x
                trim = 0
                if has_left_trim_marker(self.input[x + len(LEFT_DELIM):]):
                    before = self.input[self.start:self.pos]
                    trim = len(before) - len(before.rstrip(SPACE_CHARS))
                self.pos -= trim
                self.line += self.input.count("\n", self.start, self.pos)
                item = self.this_item(T.TEXT)
                self.pos += trim
                self.ignore()
                if item.val:
                    return self.emit_item(item)
            return self.lex_left_delim
        self.pos = len(self.input)
        if self.pos > self.start:
            self.line += self.input.count("\n", self.start, self.pos)
            return self.emit(T.TEXT)
        return self.emit(T.EOF)

    def at_right_delim(self) -> tuple[bool, bool]:
        rest = self.input[self.pos:]
        if has_right_trim_marker(rest) and rest[2:].startswith(RIGHT_DELIM):
            return True, True
        if rest.startswith(RIGHT_DELIM):
            return True, False
        return False, False

    def left_trim_length(self) -> int:
        rest = self.input[self.pos:]
        return len(rest) - len(rest.lstrip(SPACE_CHARS))

    def lex_left_delim(self):
        self.pos += len(LEFT_DELIM)
        trim_space = has_left_trim_marker(self.input[self.pos:])
        after_marker = 2 if trim_space else 0
        if self.input.startswith(LEFT_COMMENT, self.pos + after_marker):
            self.pos += after_marker
            self.ignore()
            return self.lex_comment
        item = self.this_item(T.LEFT_DELIM)
        self.inside_action = True
        self.pos += after_marker
        self.ignore()
        self.paren_depth = 0
        return self.emit_item(item)

    def lex_comment(self):
        self.pos += len(LEFT_COMMENT)
        x = self.input.find(RIGHT_COMMENT, self.pos)
        if x < 0:
            return self.errorf("unclosed comment")
        self.pos = x + len(RIGHT_COMMENT)
        delim, trim_space = self.at_right_delim()
        if not delim:
            return self.errorf("comment ends before closing delimiter")
        self.line += self.input.count("\n", self.start, self.pos)
        self.this_item(T.COMMENT)
        if trim_space:
            self.pos += 2
        self.pos += len(RIGHT_DELIM)
        if trim_space:
            self.pos += self.left_trim_length()
        self.ignore()
        return self.lex_text

    def lex_right_delim(self):
        _, trim_space = self.at_right_delim()
        if trim_space:
            self.pos += 2
            self.ignore()
        self.pos += len(RIGHT_DELIM)
        item = self.this_item(T.RIGHT_DELIM)
        if trim_space:
            self.pos += self.left_trim_length()
            self.ignore()
        self.inside_action = False
        return self.emit_item(item)

    def lex_inside_action(self):
        delim, _ = self.at_right_delim()
        if delim:
            if self.paren_depth == 0:
                return self.lex_right_delim
            return self.errorf("unclosed left paren")
        ch = self.next()
        if ch == "":
            return self.errorf("unclosed action")
        if is_space(ch):
            self.backup()
            return self.lex_space
        if ch == "=":
            return self.emit(T.ASSIGN)
        if ch == ":":
            if self.next() != "=":
                return self.errorf("expected :=")
            return self.emit(T.DECLARE)
        if ch == "|":
            return self.emit(T.PIPE)
        if ch == '"':
            return self.lex_quote
        if ch == "`":
            return self.lex_raw_quote
        if ch == "$":
            return self.lex_variable
        if ch == "'":
            return self.lex_char
        if ch == ".":
            if self.pos < len(self.input) and not ("0" <= self.input[self.pos] <= "9"):
                return self.lex_field
            self.backup()
            return self.lex_number
        if ch in "+-" or "0" <= ch <= "9":
            self.backup()
            return self.lex_number
        if is_alnum(ch):
            self.backup()
            return self.lex_identifier
        if ch == "(":
            self.paren_depth += 1
            return self.emit(T.LEFT_PAREN)
        if ch == ")":
            self.paren_depth -= 1
            if self.paren_depth < 0:
                return self.errorf("unexpected right paren")
            return self.emit(T.RIGHT_PAREN)
        if ord(ch) < 0x80 and ch.isprintable():
            return self.emit(T.CHAR)
        return self.errorf(f"unrecognized character in action: {unicode_repr(ch)}")

    def lex_space(self):
        spaces = 0
        while is_space(self.peek()):
            self.next()
            spaces += 1
        rest = self.input[self.pos - 1:]
        if has_right_trim_marker(rest) and rest[2:].startswith(RIGHT_DELIM):
            self.backup()
            if spaces == 1:
                return self.lex_right_delim
        return self.emit(T.SPACE)

    def lex_identifier(self):
        while True:
            ch = self.next()
            if is_alnum(ch):
                continue
            self.backup()
            word = self.input[self.start:self.pos]
            if not self.at_terminator():
                return self.errorf(f"bad character {unicode_repr(ch)}")
            keyword = KEYWORDS.get(word)
            if keyword is not None and keyword > T.KEYWORD:
                if (keyword == T.BREAK and not self.break_ok) or \
                        (keyword == T.CONTINUE and not self.continue_ok):
                    return self.emit(T.IDENTIFIER)
                return self.emit(keyword)
            if word[0] == ".":
                return self.emit(T.FIELD)
            if word in ("true", "false"):
                return self.emit(T.BOOL)
            return self.emit(T.IDENTIFIER)

    def lex_field(self):
        return self.lex_field_or_variable(T.FIELD)

    def lex_variable(self):
        if self.at_terminator():
            return self.emit(T.VARIABLE)
        return self.lex_field_or_variable(T.VARIABLE)

    def lex_field_or_variable(self, typ: T):
        if self.at_terminator():
            return self.emit(T.VARIABLE if typ == T.VARIABLE else T.DOT)
        while True:
            ch = self.next()
            if not is_alnum(ch):
                self.backup()
                break
        if not self.at_terminator():
            return self.errorf(f"bad character {unicode_repr(ch)}")
        return self.emit(typ)

    def at_terminator(self) -> bool:
        ch = self.peek()
        if ch == "" or is_space(ch) or ch in ".,|:)(":
            return True
        return self.input.startswith(RIGHT_DELIM, self.pos)

    def lex_char(self):
        return self.lex_escaped("'", T.CHAR_CONSTANT, "unterminated character constant")

    def lex_number(self):
        if not self.scan_number():
            return self.errorf(f"bad number syntax: {quote(self.input[self.start:self.pos])}")
        if self.peek() in ("+", "-"):
            if not self.scan_number() or self.input[self.pos - 1] != "i":
                return self.errorf(f"bad number syntax: {quote(self.input[self.start:self.pos])}")
            return self.emit(T.COMPLEX)
        return self.emit(T.NUMBER)

    def scan_number(self) -> bool:
        self.accept("+-")
        digits = "0123456789_"
        if self.accept("0"):
            if self.accept("xX"):
                digits = "0123456789abcdefABCDEF_"
            elif self.accept("oO"):
                digits = "01234567_"
            elif self.accept("bB"):
                digits = "01_"
        self.accept_run(digits)
        if self.accept("."):
            self.accept_run(digits)
        if len(digits) == 11 and self.accept("eE"):
            self.accept("+-")
            self.accept_run("0123456789_")
        if len(digits) == 23 and self.accept("pP"):
            self.accept("+-")
            self.accept_run("0123456789_")
        self.accept("i")
        if is_alnum(self.peek()):
            self.next()
            return False
        return True

    def lex_quote(self):
        return self.lex_escaped('"', T.STRING, "unterminated quoted string")

    def lex_escaped(self, close: str, token, unterminated: str):
        """A '...' or "..." literal with backslash escapes, ended by `close` on the same line."""
        while True:
            ch = self.next()
            if ch == "\\":
                ch = self.next()
                if ch not in ("", "\n"):
                    continue
            if ch in ("", "\n"):
                return self.errorf(unterminated)
            if ch == close:
                return self.emit(token)

    def lex_raw_quote(self):
        while True:
            ch = self.next()
            if ch == "":
                return self.errorf("unterminated raw quoted string")
            if ch == "`":
                return self.emit(T.RAW_STRING)


def unicode_repr(ch: str) -> str:
    """Go's %#U: U+0023 '#'."""
    if ch == "":
        return "U+FFFFFFFFFFFFFFFF"
    code = ord(ch)
    text = f"U+{code:04X}"
    return text + f" '{ch}'" if ch.isprintable() else text
