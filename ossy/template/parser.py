"""The parser of Go's text/template, ported rule for rule (text/template/parse/parse.go).

Owns: turning items into trees (one per template, `define` and `block` adding more), the
checks Go makes while parsing (undefined functions and variables, `break` outside `range`,
unexpected `{{end}}`/`{{else}}`, missing `{{end}}`, bad pipelines, multiple definitions), number
and string literal syntax, and Go's parse-error texts with their line numbers.
Does not own: lexing (lexer) or execution (executor).
"""

from __future__ import annotations

import re

from ossy.template.errors import TemplateError
from ossy.template.gofmt import quote
from ossy.template.lexer import Item, Lexer, T
from ossy.template.nodes import (
    ActionNode,
    BoolNode,
    BranchNode,
    BreakNode,
    ChainNode,
    CommandNode,
    CommentNode,
    ContinueNode,
    DotNode,
    ElseNode,
    EndNode,
    FieldNode,
    IdentifierNode,
    ListNode,
    NilNode,
    Node,
    NumberNode,
    PipeNode,
    StringNode,
    TemplateNode,
    TextNode,
    Tree,
    VariableNode,
    is_empty_tree,
)

MAX_STACK_DEPTH = 10000
INT64 = 1 << 63


def parse(name: str, text: str, funcs: set[str]) -> dict[str, Tree]:
    """Go's parse.Parse: every template the text defines, the top-level one under `name`."""
    tree_set: dict[str, Tree] = {}
    lexer = Lexer(text, break_ok="break" not in funcs, continue_ok="continue" not in funcs)
    _TreeParser(Tree(name, name, text), lexer, funcs, tree_set).parse()
    return tree_set


class _TreeParser:
    """The parsing state of one tree (Go's parse.Tree while it parses)."""

    def __init__(self, tree: Tree, lexer: Lexer, funcs: set[str], tree_set: dict[str, Tree]):
        self.tree = tree
        self.lex = lexer
        self.funcs = funcs
        self.tree_set = tree_set
        self.token: list[Item] = [Item(T.EOF, 0, "", 0)] * 3
        self.peek_count = 0
        self.vars = ["$"]
        self.action_line = 0
        self.range_depth = 0
        self.stack_depth = 0

    # -- token stream -------------------------------------------------------------------

    def next(self) -> Item:
        if self.peek_count > 0:
            self.peek_count -= 1
        else:
            self.token[0] = self.lex.next_item()
        return self.token[self.peek_count]

    def backup(self) -> None:
        self.peek_count += 1

    def backup2(self, t1: Item) -> None:
        self.token[1] = t1
        self.peek_count = 2

    def backup3(self, t2: Item, t1: Item) -> None:
        self.token[1] = t1
        self.token[2] = t2
        self.peek_count = 3

    def peek(self) -> Item:
        if self.peek_count > 0:
            return self.token[self.peek_count - 1]
        self.peek_count = 1
        self.token[0] = self.lex.next_item()
        return self.token[0]

    def next_non_space(self) -> Item:
        while True:
            token = self.next()
            if token.typ != T.SPACE:
                return token

    def peek_non_space(self) -> Item:
        token = self.next_non_space()
        self.backup()
        return token

    # -- errors -------------------------------------------------------------------------

    def errorf(self, message: str):
        raise TemplateError(f"template: {self.tree.parse_name}:{self.token[0].line}: {message}")

    def expect(self, expected: T, context: str) -> Item:
        token = self.next_non_space()
        if token.typ != expected:
            self.unexpected(token, context)
        return token

    def unexpected(self, token: Item, context: str):
        if token.typ == T.ERROR:
            extra = ""
            if self.action_line != 0 and self.action_line != token.line:
                extra = f" in action started at {self.tree.parse_name}:{self.action_line}"
                if token.val.endswith(" action"):
                    extra = extra[len(" in action"):]
            self.errorf(f"{token}{extra}")
        self.errorf(f"unexpected {token} in {context}")

    # -- nodes --------------------------------------------------------------------------

    def node(self, cls, pos: int, **fields) -> Node:
        return cls(pos, tree=self.tree, **fields)

    def add(self) -> None:
        existing = self.tree_set.get(self.tree.name)
        if existing is None or is_empty_tree(existing.root):
            self.tree_set[self.tree.name] = self.tree
            return
        if not is_empty_tree(self.tree.root):
            self.errorf(f"template: multiple definition of template {quote(self.tree.name)}")

    def child(self, name: str) -> "_TreeParser":
        tree = Tree(name, self.tree.parse_name, self.tree.text)
        return _TreeParser(tree, self.lex, self.funcs, self.tree_set)

    # -- grammar ------------------------------------------------------------------------

    def parse(self) -> None:
        self.tree.root = self.node(ListNode, self.peek().pos)
        while self.peek().typ != T.EOF:
            if self.peek().typ == T.LEFT_DELIM:
                delim = self.next()
                if self.next_non_space().typ == T.DEFINE:
                    self.child("definition").parse_definition()
                    continue
                self.backup2(delim)
            n = self.text_or_action()
            if isinstance(n, (EndNode, ElseNode)):
                self.errorf(f"unexpected {n}")
            self.tree.root.nodes.append(n)
        self.add()

    def parse_definition(self) -> None:
        context = "define clause"
        name = self.next_non_space()
        if name.typ not in (T.STRING, T.RAW_STRING):
            self.unexpected(name, context)
        self.tree.name = self.unquote(name.val)
        self.expect(T.RIGHT_DELIM, context)
        self.tree.root, end = self.item_list()
        if not isinstance(end, EndNode):
            self.errorf(f"unexpected {end} in {context}")
        self.add()

    def item_list(self) -> tuple[ListNode, Node]:
        nodes = self.node(ListNode, self.peek_non_space().pos)
        while self.peek_non_space().typ != T.EOF:
            n = self.text_or_action()
            if isinstance(n, (EndNode, ElseNode)):
                return nodes, n
            nodes.nodes.append(n)
        self.errorf("unexpected EOF")

    def text_or_action(self) -> Node:
        token = self.next_non_space()
        if token.typ == T.TEXT:
            return self.node(TextNode, token.pos, text=token.val)
        if token.typ == T.LEFT_DELIM:
            self.action_line = token.line
            try:
                return self.action()
            finally:
                self.action_line = 0
        if token.typ == T.COMMENT:
            return self.node(CommentNode, token.pos, text=token.val)
        self.unexpected(token, "input")

    def action(self) -> Node:
        token = self.next_non_space()
        controls = {T.BLOCK: self.block_control, T.ELSE: self.else_control,
                    T.END: self.end_control, T.IF: self.if_control,
                    T.RANGE: self.range_control, T.TEMPLATE: self.template_control,
                    T.WITH: self.with_control}
        if token.typ in controls:
            return controls[token.typ]()
        if token.typ in (T.BREAK, T.CONTINUE):
            return self.loop_control(token)
        self.backup()
        token = self.peek()
        pipe = self.pipeline("command", T.RIGHT_DELIM)
        return self.node(ActionNode, token.pos, line=token.line, pipe=pipe)

    def loop_control(self, keyword: Item) -> Node:
        word = "break" if keyword.typ == T.BREAK else "continue"
        token = self.next_non_space()
        if token.typ != T.RIGHT_DELIM:
            self.unexpected(token, "{{" + word + "}}")
        if self.range_depth == 0:
            self.errorf("{{" + word + "}} outside {{range}}")
        cls = BreakNode if keyword.typ == T.BREAK else ContinueNode
        return self.node(cls, keyword.pos, line=keyword.line)

    def pipeline(self, context: str, end: T) -> PipeNode:
        token = self.peek_non_space()
        pipe = self.node(PipeNode, token.pos, line=token.line)
        self.declarations(pipe, context)
        while True:
            token = self.next_non_space()
            if token.typ == end:
                self.check_pipeline(pipe, context)
                return pipe
            if token.typ in (T.BOOL, T.CHAR_CONSTANT, T.COMPLEX, T.DOT, T.FIELD, T.IDENTIFIER,
                             T.NUMBER, T.NIL, T.RAW_STRING, T.STRING, T.VARIABLE, T.LEFT_PAREN):
                self.backup()
                pipe.cmds.append(self.command())
            else:
                self.unexpected(token, context)

    def declarations(self, pipe: PipeNode, context: str) -> None:
        while True:
            v = self.peek_non_space()
            if v.typ != T.VARIABLE:
                return
            self.next()
            token_after = self.peek()
            nxt = self.peek_non_space()
            if nxt.typ in (T.ASSIGN, T.DECLARE):
                pipe.is_assign = nxt.typ == T.ASSIGN
                self.next_non_space()
                pipe.decl.append(self.node(VariableNode, v.pos, ident=v.val.split(".")))
                self.vars.append(v.val)
                return
            if nxt.typ == T.CHAR and nxt.val == ",":
                self.next_non_space()
                pipe.decl.append(self.node(VariableNode, v.pos, ident=v.val.split(".")))
                self.vars.append(v.val)
                if context == "range" and len(pipe.decl) < 2:
                    if self.peek_non_space().typ in (T.VARIABLE, T.RIGHT_DELIM, T.RIGHT_PAREN):
                        continue
                    self.errorf("range can only initialize variables")
                self.errorf(f"too many declarations in {context}")
            if token_after.typ == T.SPACE:
                self.backup3(v, token_after)
            else:
                self.backup2(v)
            return

    def check_pipeline(self, pipe: PipeNode, context: str) -> None:
        if not pipe.cmds:
            self.errorf(f"missing value for {context}")
        for i, cmd in enumerate(pipe.cmds[1:]):
            if isinstance(cmd.args[0], (BoolNode, DotNode, NilNode, NumberNode, StringNode)):
                self.errorf(f"non executable command in pipeline stage {i + 2}")

    def parse_control(self, context: str) -> tuple[int, int, PipeNode, ListNode, ListNode | None]:
        mark = len(self.vars)
        try:
            pipe = self.pipeline(context, T.RIGHT_DELIM)
            if context == "range":
                self.range_depth += 1
            body, nxt = self.item_list()
            if context == "range":
                self.range_depth -= 1
            else_list = None
            if isinstance(nxt, ElseNode):
                if context == "if" and self.peek().typ == T.IF:
                    self.next()
                    else_list = self.node(ListNode, nxt.pos, nodes=[self.if_control()])
                elif context == "with" and self.peek().typ == T.WITH:
                    self.next()
                    else_list = self.node(ListNode, nxt.pos, nodes=[self.with_control()])
                else:
                    else_list, nxt = self.item_list()
                    if not isinstance(nxt, EndNode):
                        self.errorf(f"expected end; found {nxt}")
            return pipe.pos, pipe.line, pipe, body, else_list
        finally:
            del self.vars[mark:]

    def branch(self, keyword: str) -> Node:
        pos, line, pipe, body, else_list = self.parse_control(keyword)
        return self.node(BranchNode, pos, keyword=keyword, line=line, pipe=pipe, list=body,
                         else_list=else_list)

    def if_control(self) -> Node:
        return self.branch("if")

    def range_control(self) -> Node:
        return self.branch("range")

    def with_control(self) -> Node:
        return self.branch("with")

    def end_control(self) -> Node:
        return self.node(EndNode, self.expect(T.RIGHT_DELIM, "end").pos)

    def else_control(self) -> Node:
        peek = self.peek_non_space()
        if peek.typ in (T.IF, T.WITH):
            return self.node(ElseNode, peek.pos, line=peek.line)
        token = self.expect(T.RIGHT_DELIM, "else")
        return self.node(ElseNode, token.pos, line=token.line)

    def block_control(self) -> Node:
        context = "block clause"
        token = self.next_non_space()
        name = self.template_name(token, context)
        pipe = self.pipeline(context, T.RIGHT_DELIM)
        block = self.child(name)
        block.tree.root, end = block.item_list()
        if not isinstance(end, EndNode):
            self.errorf(f"unexpected {end} in {context}")
        block.add()
        return self.node(TemplateNode, token.pos, line=token.line, name=name, pipe=pipe)

    def template_control(self) -> Node:
        context = "template clause"
        token = self.next_non_space()
        name = self.template_name(token, context)
        pipe = None
        if self.next_non_space().typ != T.RIGHT_DELIM:
            self.backup()
            pipe = self.pipeline(context, T.RIGHT_DELIM)
        return self.node(TemplateNode, token.pos, line=token.line, name=name, pipe=pipe)

    def template_name(self, token: Item, context: str) -> str:
        if token.typ not in (T.STRING, T.RAW_STRING):
            self.unexpected(token, context)
        return self.unquote(token.val)

    def command(self) -> CommandNode:
        cmd = self.node(CommandNode, self.peek_non_space().pos)
        while True:
            self.peek_non_space()
            operand = self.operand()
            if operand is not None:
                cmd.args.append(operand)
            token = self.next()
            if token.typ == T.SPACE:
                continue
            if token.typ in (T.RIGHT_DELIM, T.RIGHT_PAREN):
                self.backup()
            elif token.typ != T.PIPE:
                self.unexpected(token, "operand")
            break
        if not cmd.args:
            self.errorf("empty command")
        return cmd

    def operand(self) -> Node | None:
        node = self.term()
        if node is None:
            return None
        if self.peek().typ == T.FIELD:
            fields = []
            chain_pos = self.peek().pos
            while self.peek().typ == T.FIELD:
                fields.append(self.next().val[1:])
            if isinstance(node, FieldNode):
                return self.node(FieldNode, chain_pos, ident=node.ident + fields)
            if isinstance(node, VariableNode):
                return self.node(VariableNode, chain_pos, ident=node.ident + fields)
            if isinstance(node, (BoolNode, StringNode, NumberNode, NilNode, DotNode)):
                self.errorf(f"unexpected . after term {quote(str(node))}")
            return self.node(ChainNode, chain_pos, node=node, fields=fields)
        return node

    def term(self) -> Node | None:
        token = self.next_non_space()
        typ = token.typ
        if typ == T.IDENTIFIER:
            if token.val not in self.funcs:
                self.errorf(f"function {quote(token.val)} not defined")
            return self.node(IdentifierNode, token.pos, ident=token.val)
        if typ == T.DOT:
            return self.node(DotNode, token.pos)
        if typ == T.NIL:
            return self.node(NilNode, token.pos)
        if typ == T.VARIABLE:
            return self.use_var(token)
        if typ == T.FIELD:
            return self.node(FieldNode, token.pos, ident=token.val[1:].split("."))
        if typ == T.BOOL:
            return self.node(BoolNode, token.pos, true=token.val == "true")
        if typ in (T.CHAR_CONSTANT, T.COMPLEX, T.NUMBER):
            return self.number(token)
        if typ == T.LEFT_PAREN:
            if self.stack_depth >= MAX_STACK_DEPTH:
                self.errorf("max expression depth exceeded")
            self.stack_depth += 1
            try:
                return self.pipeline("parenthesized pipeline", T.RIGHT_PAREN)
            finally:
                self.stack_depth -= 1
        if typ in (T.STRING, T.RAW_STRING):
            return self.node(StringNode, token.pos, quoted=token.val, text=self.unquote(token.val))
        self.backup()
        return None

    def use_var(self, token: Item) -> Node:
        ident = token.val.split(".")
        if ident[0] not in self.vars:
            self.errorf(f"undefined variable {quote(ident[0])}")
        return self.node(VariableNode, token.pos, ident=ident)

    # -- literals -----------------------------------------------------------------------

    def unquote(self, text: str) -> str:
        try:
            return unquote(text)
        except ValueError as exc:
            self.errorf(str(exc))

    def number(self, token: Item) -> NumberNode:
        try:
            fields = number_fields(token.val, token.typ)
        except ValueError as exc:
            self.errorf(str(exc))
        return self.node(NumberNode, token.pos, text=token.val, **fields)


# ------------------------------------------------------------------------------ literals

_SIMPLE_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
                   "\\": "\\"}


def unquote_char(s: str, quote_char: str) -> tuple[str, str]:
    """strconv.UnquoteChar: the first character of s (decoding one escape) and the rest."""
    if not s:
        raise ValueError("invalid syntax")
    ch = s[0]
    if ch == quote_char and quote_char in "'\"":
        raise ValueError("invalid syntax")
    if ch != "\\":
        return ch, s[1:]
    if len(s) < 2:
        raise ValueError("invalid syntax")
    c, rest = s[1], s[2:]
    if c in _SIMPLE_ESCAPES:
        return _SIMPLE_ESCAPES[c], rest
    if c in "xuU":
        size = {"x": 2, "u": 4, "U": 8}[c]
        digits = rest[:size]
        if len(digits) < size or not all(d in "0123456789abcdefABCDEF" for d in digits):
            raise ValueError("invalid syntax")
        code = int(digits, 16)
        if c != "x" and (code > 0x10FFFF or 0xD800 <= code <= 0xDFFF):
            raise ValueError("invalid syntax")
        return chr(code), rest[size:]
    if c in "01234567":
        digits = s[1:4]
        if len(digits) < 3 or not all(d in "01234567" for d in digits) or int(digits, 8) > 255:
            raise ValueError("invalid syntax")
        return chr(int(digits, 8)), s[4:]
    if c in "'\"" and c == quote_char:
        return c, rest
    raise ValueError("invalid syntax")


def unquote(text: str) -> str:
    """strconv.Unquote for "..." and `...` literals (raw strings drop carriage returns)."""
    if len(text) < 2 or text[0] != text[-1]:
        raise ValueError("invalid syntax")
    body = text[1:-1]
    if text[0] == "`":
        if "`" in body:
            raise ValueError("invalid syntax")
        return body.replace("\r", "")
    if text[0] != '"' or "\n" in body:
        raise ValueError("invalid syntax")
    out = []
    while body:
        ch, body = unquote_char(body, '"')
        out.append(ch)
    return "".join(out)


def _underscore_ok(s: str) -> bool:
    saw = "^"
    i = 0
    if s[:1] in ("+", "-"):
        s = s[1:]
    hexa = False
    if len(s) >= 2 and s[0] == "0" and s[1].lower() in "box":
        i, saw, hexa = 2, "0", s[1].lower() == "x"
    for ch in s[i:]:
        if ch.isdigit() or (hexa and ch.lower() in "abcdef"):
            saw = "0"
        elif ch == "_":
            if saw != "0":
                return False
            saw = "_"
        else:
            if saw == "_":
                return False
            saw = "!"
    return saw != "_"


def parse_int(text: str, *, unsigned: bool) -> int:
    """strconv.ParseInt/ParseUint(text, 0, 64)."""
    s, sign = text, 1
    if s[:1] in ("+", "-"):
        if unsigned:
            raise ValueError(text)
        sign, s = (-1 if s[0] == "-" else 1), s[1:]
    base = 10
    if s[:2].lower() in ("0x", "0o", "0b"):
        base, s = {"x": 16, "o": 8, "b": 2}[s[1].lower()], s[2:]
    elif len(s) > 1 and s[0] == "0":
        base, s = 8, s[1:]
    if "_" in text and not _underscore_ok(text):
        raise ValueError(text)
    digits = s.replace("_", "")
    if not digits or not re.fullmatch("[0-9a-fA-F]+", digits):
        raise ValueError(text)
    value = sign * int(digits, base)
    if (unsigned and value >= 1 << 64) or (not unsigned and not -INT64 <= value < INT64):
        raise ValueError(text)
    return value


def parse_float(text: str) -> float:
    """strconv.ParseFloat(text, 64) for the literals the lexer lets through."""
    s = text.lstrip("+-")
    if "_" in text and not _underscore_ok(text):
        raise ValueError(text)
    body = s.replace("_", "")
    sign = -1.0 if text.startswith("-") else 1.0
    if body[:2].lower() == "0x":
        if "p" not in body.lower():
            raise ValueError(text)
        value = float.fromhex(body)
    elif re.fullmatch(r"(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", body):
        value = float(body)
    else:
        raise ValueError(text)
    if value in (float("inf"),):
        raise ValueError(text)
    return sign * value


def _from_float(fields: dict, f: float) -> None:
    fields.update(is_float=True, float64=f)
    if f == int(f) and -INT64 <= int(f) < INT64:
        fields.update(is_int=True, int64=int(f))
    if f == int(f) and 0 <= int(f) < 1 << 64:
        fields.update(is_uint=True, uint64=int(f))


def number_fields(text: str, typ: T) -> dict:
    """Go's newNumber: every Go type that can hold the literal, and its value in each."""
    fields: dict = {}
    if typ == T.CHAR_CONSTANT:
        ch, tail = unquote_char(text[1:], text[0])
        if tail != "'":
            raise ValueError(f"malformed character constant: {text}")
        code = ord(ch)
        return dict(is_int=True, int64=code, is_uint=True, uint64=code, is_float=True,
                    float64=float(code))
    if typ == T.COMPLEX:
        value = complex(text.replace("i", "j"))
        fields.update(is_complex=True, complex128=value)
        if value.imag == 0:
            _from_float(fields, value.real)
        return fields
    if text.endswith("i"):
        try:
            imag = parse_float(text[:-1])
        except ValueError:
            pass
        else:
            fields.update(is_complex=True, complex128=complex(0, imag))
            if imag == 0:
                _from_float(fields, 0.0)
            return fields
    try:
        fields.update(is_uint=True, uint64=parse_int(text, unsigned=True))
    except ValueError:
        pass
    try:
        value = parse_int(text, unsigned=False)
    except ValueError:
        pass
    else:
        fields.update(is_int=True, int64=value)
        if value == 0:
            fields.update(is_uint=True, uint64=fields.get("uint64", 0))
    if fields.get("is_int"):
        fields.update(is_float=True, float64=float(fields["int64"]))
    elif fields.get("is_uint"):
        fields.update(is_float=True, float64=float(fields["uint64"]))
    else:
        try:
            f = parse_float(text)
        except ValueError:
            pass
        else:
            if not any(c in text for c in ".eEpP"):
                raise ValueError(f"integer overflow: {quote(text)}")
            _from_float(fields, f)
    if not (fields.get("is_int") or fields.get("is_uint") or fields.get("is_float")):
        raise ValueError(f"illegal number syntax: {quote(text)}")
    return fields
