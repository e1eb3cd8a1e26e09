"""Executing parsed templates as Go's text/template does (text/template/exec.go).

Owns: `Template` (a parsed template set: the named trees, the functions, the missingkey
option) and its execution: walking if/with/range/template/block, break and continue, the
variable stack and its scopes, pipelines and commands, field chains over maps and structs,
method calls, argument checking against function signatures, short-circuit `and`/`or`,
printing (`<no value>` for missing), and Go's execution-error texts with their locations; and
`Budget`, which Go has not: how much output and how many steps (actions, texts, iterations)
executions may take, so that a hostile template ("{{range}}" nested eight deep around a printf
padded to a megabyte) ends in a `TemplateLimitError` instead of running for hours.
Does not own: lexing and parsing (parser), value formatting (gofmt), the builtins (funcs), or
Ollama's functions and data (ollama).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from ossy.template.errors import GoError, TemplateError
from ossy.template.funcs import BUILTINS, GoFunc, as_go_func, call_value, indirect, indirect_interface
from ossy.template.gofmt import quote, sprint, sprintf
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
    error_context,
)
from ossy.template.parser import parse as parse_trees
from ossy.template.values import (
    INVALID,
    Iface,
    Struct,
    element,
    is_true,
    kind,
    map_zero,
    methods,
    struct_field,
    type_name,
    unwrap,
)

MISSINGKEY = ("default", "invalid", "zero", "error")
MAX_EXEC_DEPTH = 100000
MAX_OUTPUT = 64 << 20  # characters a Budget allows by default
MAX_STEPS = 10_000_000  # walk steps a Budget allows by default (a 100k-message chat takes ~2M)


class TemplateLimitError(TemplateError):
    """An execution went past its `Budget`. `output` says which limit: output (True) or steps."""

    def __init__(self, message: str, *, output: bool) -> None:
        super().__init__(message)
        self.output = output


class Budget:
    """What executions sharing it may still produce: characters of output, walk steps, and
    characters made by function calls."""

    def __init__(self, max_output: int = MAX_OUTPUT, max_steps: int = MAX_STEPS) -> None:
        self.max_output, self.max_steps = max_output, max_steps
        self.max_computed = 4 * MAX_OUTPUT
        self.output = self.steps = self.computed = 0

    def write(self, text: str) -> None:
        self.output += len(text)
        if self.output > self.max_output:
            raise TemplateLimitError(f"template: the output is longer than {self.max_output} characters",
                                     output=True)

    def compute(self, characters: int) -> None:
        """Characters made by functions (printf, json...), printed or not."""
        self.computed += characters
        if self.computed > self.max_computed:
            raise TemplateLimitError(f"template: functions made more than {self.max_computed} characters",
                                     output=False)

    def step(self) -> None:
        self.steps += 1
        if self.steps > self.max_steps:
            raise TemplateLimitError(f"template: execution took more than {self.max_steps} steps", output=False)


class _Output(list):
    """The output of one execution, charged to a `Budget`."""

    def __init__(self, budget: Budget) -> None:
        super().__init__()
        self.budget = budget

    def append(self, text: str) -> None:
        self.budget.write(text)
        super().append(text)


class _Missing:
    """Go's missingVal: "no value from an earlier pipeline stage"."""


MISSING = _Missing()


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


@dataclass(eq=False)
class _Common:
    """What all templates of one set share."""

    trees: dict[str, Tree]
    funcs: dict[str, GoFunc]
    missingkey: str


@dataclass(eq=False)
class Template:
    """One named template of a parsed set; `execute` runs it."""

    name: str
    common: _Common = field(repr=False)

    @property
    def tree(self) -> Tree | None:
        return self.common.trees.get(self.name)

    @property
    def funcs(self) -> dict[str, GoFunc]:
        return self.common.funcs

    @property
    def missingkey(self) -> str:
        return self.common.missingkey

    def lookup(self, name: str) -> "Template | None":
        return Template(name, self.common) if name in self.common.trees else None

    def templates(self) -> list["Template"]:
        return [Template(name, self.common) for name in self.common.trees]

    def bare(self, name: str, root: ListNode) -> "Template":
        """Go's template.New(name).AddParseTree(name, tree): `root` alone, with no functions
        but the builtins and the default missingkey option."""
        tree = replace(self.tree, name=name, root=root)
        return Template(name, _Common({name: tree}, {}, "default"))

    def execute(self, data: Any, funcs: dict[str, Any] | None = None, budget: Budget | None = None) -> str:
        """Runs the template on `data`; `funcs` replace or add functions for this run; `budget`
        (default: a fresh `Budget()`) bounds its output and steps."""
        tmpl = self
        if funcs:
            merged = {**self.common.funcs, **_go_funcs(funcs)}
            tmpl = Template(self.name, replace(self.common, funcs=merged))
        if data is None:
            data = INVALID
        out = _Output(budget or Budget())
        state = _State(tmpl, out, [["$", data]], 0)
        tree = self.tree
        if tree is None or tree.root is None:
            state.errorf(f"{quote(self.name)} is an incomplete or empty template")
        try:
            state.walk(data, tree.root)
        except RecursionError:
            raise TemplateError(f"template: {self.name}: exceeded maximum template depth "
                                "(ossy.template's limit is Python's recursion limit)") from None
        return "".join(out)


def _go_funcs(funcs: dict[str, Any] | None) -> dict[str, GoFunc]:
    result = {}
    for name, fn in (funcs or {}).items():
        if not name or not (name[0].isalpha() or name[0] == "_") or \
                not all(c == "_" or c.isalpha() or c.isdigit() for c in name):
            raise ValueError(f"function name {quote(name)} is not a valid identifier")
        result[name] = as_go_func(fn)
    return result


def parse(text: str, name: str = "TEMPLATE", *, funcs: dict[str, Any] | None = None,
          missingkey: str = "default") -> Template:
    """Go's template.New(name).Option("missingkey=...").Funcs(funcs).Parse(text)."""
    if missingkey not in MISSINGKEY:
        raise ValueError(f"unrecognized option: missingkey={missingkey}")
    go_funcs = _go_funcs(funcs)
    trees = parse_trees(name, text, set(go_funcs) | set(BUILTINS))
    return Template(name, _Common(trees, go_funcs, missingkey))


class _State:
    """One execution (Go's exec.state)."""

    def __init__(self, tmpl: Template, out: _Output, variables: list[list], depth: int):
        self.tmpl = tmpl
        self.out = out
        self.vars = variables
        self.depth = depth
        self.node: Node | None = None

    # -- errors and variables -------------------------------------------------------------

    def at(self, node: Node) -> None:
        self.node = node

    def errorf(self, message: str):
        name = self.tmpl.name
        if self.node is None:
            raise TemplateError(f"template: {name}: {message}")
        location, context = error_context(self.node, self.tmpl.tree)
        raise TemplateError(f"template: {location}: executing {quote(name)} at <{context}>: "
                            f"{message}")

    def mark(self) -> int:
        return len(self.vars)

    def pop(self, mark: int) -> None:
        del self.vars[mark:]

    def push(self, name: str, value: Any) -> None:
        self.vars.append([name, value])

    def set_var(self, name: str, value: Any) -> None:
        for var in reversed(self.vars):
            if var[0] == name:
                var[1] = value
                return
        self.errorf(f"undefined variable: {name}")

    def set_top_var(self, n: int, value: Any) -> None:
        self.vars[-n][1] = value

    def var_value(self, name: str) -> Any:
        for var_name, value in reversed(self.vars):
            if var_name == name:
                return value
        self.errorf(f"undefined variable: {name}")

    # -- walking --------------------------------------------------------------------------

    def walk(self, dot: Any, node: Node) -> None:
        self.at(node)
        self.out.budget.step()
        if isinstance(node, ActionNode):
            value = self.eval_pipeline(dot, node.pipe)
            if not node.pipe.decl:
                self.print_value(node, value)
        elif isinstance(node, TextNode):
            self.out.append(node.text)
        elif isinstance(node, ListNode):
            for child in node.nodes:
                self.walk(dot, child)
        elif isinstance(node, BranchNode):
            if node.keyword == "range":
                self.walk_range(dot, node)
            else:
                self.walk_if_or_with(dot, node)
        elif isinstance(node, TemplateNode):
            self.walk_template(dot, node)
        elif isinstance(node, BreakNode):
            raise _Break
        elif isinstance(node, ContinueNode):
            raise _Continue
        elif not isinstance(node, CommentNode):
            self.errorf(f"unknown node: {node}")

    def walk_if_or_with(self, dot: Any, node: BranchNode) -> None:
        mark = self.mark()
        try:
            value = self.eval_pipeline(dot, node.pipe)
            if is_true(indirect_interface(value)):
                self.walk(value if node.keyword == "with" else dot, node.list)
            elif node.else_list is not None:
                self.walk(dot, node.else_list)
        finally:
            self.pop(mark)

    def walk_range(self, dot: Any, node: BranchNode) -> None:
        self.at(node)
        outer = self.mark()
        try:
            value, _ = indirect(self.eval_pipeline(dot, node.pipe))
            if self.range_over(value, node):
                return
            if node.else_list is not None:
                self.walk(dot, node.else_list)
        except _Break:
            pass
        finally:
            self.pop(outer)

    def range_over(self, value: Any, node: BranchNode) -> bool:
        """Runs the range body for each element; False if there were none."""
        mark = self.mark()
        pipe = node.pipe
        k = kind(value)
        if k in ("int", "uint"):
            if len(pipe.decl) > 1:
                self.errorf(f"can't use {sprintf('%v', [value])} to iterate over more than one "
                            "variable")
            items = ((INVALID, type(value)(i)) for i in range(max(int(value), 0)))  # lazily: the budget ends it
        elif k == "slice":
            items = [(i, element(value, item)) for i, item in enumerate(value)]
        elif k == "map":
            items = [(key, element(value, value[key])) for key in sorted(value)]
        elif k == "invalid":
            items = []
        else:
            self.errorf(f"range can't iterate over {sprintf('%v', [value])}")
        ran = False
        for index, elem in items:
            self.one_iteration(node, mark, index, elem)
            ran = True
        return ran

    def one_iteration(self, node: BranchNode, mark: int, index: Any, elem: Any) -> None:
        pipe = node.pipe
        if pipe.decl:
            if pipe.is_assign:
                self.set_var(pipe.decl[0].ident[0], index if len(pipe.decl) > 1 else elem)
            else:
                self.set_top_var(1, elem)
        if len(pipe.decl) > 1:
            if pipe.is_assign:
                self.set_var(pipe.decl[1].ident[0], elem)
            else:
                self.set_top_var(2, index)
        try:
            self.walk(elem, node.list)
        except _Continue:
            pass
        finally:
            self.pop(mark)

    def walk_template(self, dot: Any, node: TemplateNode) -> None:
        self.at(node)
        tmpl = self.tmpl.lookup(node.name)
        if tmpl is None:
            self.errorf(f"template {quote(node.name)} not defined")
        if self.depth == MAX_EXEC_DEPTH:
            self.errorf(f"exceeded maximum template depth ({MAX_EXEC_DEPTH})")
        dot = self.eval_pipeline(dot, node.pipe)
        _State(tmpl, self.out, [["$", dot]], self.depth + 1).walk(dot, tmpl.tree.root)

    # -- pipelines and commands -----------------------------------------------------------

    def eval_pipeline(self, dot: Any, pipe: PipeNode | None) -> Any:
        if pipe is None:
            return INVALID
        self.at(pipe)
        value: Any = MISSING
        for cmd in pipe.cmds:
            value = indirect_interface(self.eval_command(dot, cmd, value))
        for variable in pipe.decl:
            if pipe.is_assign:
                self.set_var(variable.ident[0], value)
            else:
                self.push(variable.ident[0], value)
        return value

    def not_a_function(self, args: list[Node] | None, final: Any) -> None:
        if (args is not None and len(args) > 1) or final is not MISSING:
            self.errorf(f"can't give argument to non-function {args[0]}")

    def eval_command(self, dot: Any, cmd: CommandNode, final: Any) -> Any:
        first = cmd.args[0]
        if isinstance(first, FieldNode):
            return self.eval_field_node(dot, first, cmd.args, final)
        if isinstance(first, ChainNode):
            return self.eval_chain_node(dot, first, cmd.args, final)
        if isinstance(first, IdentifierNode):
            return self.eval_function(dot, first, cmd, cmd.args, final)
        if isinstance(first, PipeNode):
            self.not_a_function(cmd.args, final)
            return self.eval_pipeline(dot, first)
        if isinstance(first, VariableNode):
            return self.eval_variable_node(dot, first, cmd.args, final)
        self.at(first)
        self.not_a_function(cmd.args, final)
        if isinstance(first, BoolNode):
            return first.true
        if isinstance(first, DotNode):
            return dot
        if isinstance(first, NilNode):
            self.errorf("nil is not a command")
        if isinstance(first, NumberNode):
            return self.ideal_constant(first)
        if isinstance(first, StringNode):
            return first.text
        self.errorf(f"can't evaluate command {quote(str(first))}")

    def ideal_constant(self, constant: NumberNode) -> Any:
        self.at(constant)
        text = constant.text
        hex_int = len(text) > 2 and text[0] == "0" and text[1] in "xX" and \
            not any(c in text for c in "pP")
        if constant.is_complex:
            return constant.complex128
        if constant.is_float and not hex_int and not text.startswith("'") and \
                any(c in text for c in ".eEpP"):
            return constant.float64
        if constant.is_int:
            return constant.int64
        if constant.is_uint:
            self.errorf(f"{text} overflows int")
        return INVALID

    def eval_field_node(self, dot: Any, node: FieldNode, args: list[Node] | None,
                        final: Any) -> Any:
        self.at(node)
        return self.eval_field_chain(dot, dot, node, node.ident, args, final)

    def eval_chain_node(self, dot: Any, chain: ChainNode, args: list[Node] | None,
                        final: Any) -> Any:
        self.at(chain)
        if isinstance(chain.node, NilNode):
            self.errorf(f"indirection through explicit nil in {chain}")
        receiver = self.eval_arg(dot, None, chain.node)
        return self.eval_field_chain(dot, receiver, chain, chain.fields, args, final)

    def eval_variable_node(self, dot: Any, variable: VariableNode, args: list[Node] | None,
                           final: Any) -> Any:
        self.at(variable)
        value = self.var_value(variable.ident[0])
        if len(variable.ident) == 1:
            self.not_a_function(args, final)
            return value
        return self.eval_field_chain(dot, value, variable, variable.ident[1:], args, final)

    def eval_field_chain(self, dot: Any, receiver: Any, node: Node, ident: list[str],
                         args: list[Node] | None, final: Any) -> Any:
        for name in ident[:-1]:
            receiver = self.eval_field(dot, name, node, None, MISSING, receiver)
        return self.eval_field(dot, ident[-1], node, args, final, receiver)

    def eval_function(self, dot: Any, node: IdentifierNode, cmd: Node,
                      args: list[Node] | None, final: Any) -> Any:
        self.at(node)
        fn = self.tmpl.funcs.get(node.ident) or BUILTINS.get(node.ident)
        if fn is None:
            self.errorf(f"{quote(node.ident)} is not a defined function")
        return self.eval_call(dot, fn, cmd, node.ident, args, final)

    def eval_field(self, dot: Any, name: str, node: Node, args: list[Node] | None,
                   final: Any, receiver: Any) -> Any:
        if receiver is INVALID:
            if self.tmpl.missingkey == "error":
                self.errorf(f"nil data; no entry for key {quote(name)}")
            return INVALID
        static = "interface {}" if isinstance(receiver, Iface) or receiver is None \
            else type_name(receiver)
        receiver, _ = indirect(receiver)
        if receiver is None:
            self.errorf(f"nil pointer evaluating {static}.{name}")
        method = methods(receiver).get(name)
        if method is not None:
            bound = receiver
            return self.eval_call(dot, GoFunc(lambda: method(bound)), node, name, args, final)
        has_args = (args is not None and len(args) > 1) or final is not MISSING
        k = kind(receiver)
        if k == "struct" and name in receiver.fields:
            if has_args:
                self.errorf(f"{name} has arguments but cannot be invoked as function")
            return struct_field(receiver, name)
        if k == "map":
            if has_args:
                self.errorf(f"{name} is not a method but has arguments")
            if name in receiver:
                return element(receiver, receiver[name])
            if self.tmpl.missingkey == "zero":
                return map_zero(receiver)
            if self.tmpl.missingkey == "error":
                self.errorf(f"map has no entry for key {quote(name)}")
            return INVALID
        self.errorf(f"can't evaluate field {name} in type {static}")

    # -- calls ----------------------------------------------------------------------------

    def eval_call(self, dot: Any, fn: GoFunc, node: Node, name: str, args: list[Node] | None,
                  final: Any) -> Any:
        args = args[1:] if args is not None else []
        num_in = len(args) + (final is not MISSING)
        num_fixed = len(args)
        if fn.variadic is not None:
            num_fixed = len(fn.params)
            if num_in < num_fixed:
                self.errorf(f"wrong number of args for {name}: want at least {num_fixed} "
                            f"got {len(args)}")
        elif num_in != len(fn.params):
            self.errorf(f"wrong number of args for {name}: want {len(fn.params)} got {num_in}")
        if fn.builtin and name in ("and", "or"):
            return self.eval_and_or(dot, name, args, final)
        argv = [self.eval_arg(dot, fn.params[i], arg) for i, arg in enumerate(args[:num_fixed])]
        argv += [self.eval_arg(dot, fn.variadic, arg) for arg in args[num_fixed:]]
        if final is not MISSING:
            last = fn.variadic if fn.variadic is not None and num_in - 1 >= num_fixed \
                else fn.params[num_in - 1]
            argv.append(self.validate_type(final, last))
        try:
            if fn.builtin and name == "call":
                callee = str(args[0]) if args else str(final)
                return call_value(callee, argv[0], argv[1:])
            result = fn.fn(*argv)
        except GoError as exc:
            self.at(node)
            self.errorf(f"error calling {name}: {exc}")
        except TemplateLimitError:
            raise
        except TemplateError as exc:  # a Go behaviour ossy.template does not reproduce
            self.errorf(str(exc))
        except Exception as exc:  # a user function failing is the template's error
            if fn.builtin:
                raise
            self.at(node)
            self.errorf(f"error calling {name}: {exc}")
        if isinstance(result, str):
            self.out.budget.compute(len(result))  # printf "%999999d" in a loop prints nothing, yet works hard
        return result

    def eval_and_or(self, dot: Any, name: str, args: list[Node], final: Any) -> Any:
        value: Any = INVALID
        for arg in args:
            value = self.eval_arg(dot, "value", arg)
            if is_true(indirect_interface(value)) == (name == "or"):
                return value
        if final is not MISSING:
            value = final
        return value

    def validate_type(self, value: Any, typ: str | None) -> Any:
        if typ is None or typ == "value":
            return value
        if typ == "any":
            return None if value is INVALID else unwrap(value)
        if value is INVALID:
            self.errorf(f"invalid value; expected {typ}")
        if isinstance(value, Iface):
            if value.value is None:
                self.errorf(f"wrong type for value; expected {typ}; got interface {{}}")
            value = value.value
        if not isinstance(value, str):
            self.errorf(f"wrong type for value; expected {typ}; got {type_name(value)}")
        return value

    def eval_arg(self, dot: Any, typ: str | None, node: Node) -> Any:
        self.at(node)
        if isinstance(node, DotNode):
            return self.validate_type(dot, typ)
        if isinstance(node, NilNode):
            if typ == "string":
                self.errorf("cannot assign nil to string")
            return None if typ == "any" else INVALID
        if isinstance(node, FieldNode):
            return self.validate_type(self.eval_field_node(dot, node, [node], MISSING), typ)
        if isinstance(node, VariableNode):
            return self.validate_type(self.eval_variable_node(dot, node, None, MISSING), typ)
        if isinstance(node, PipeNode):
            return self.validate_type(self.eval_pipeline(dot, node), typ)
        if isinstance(node, IdentifierNode):
            return self.validate_type(self.eval_function(dot, node, node, None, MISSING), typ)
        if isinstance(node, ChainNode):
            return self.validate_type(self.eval_chain_node(dot, node, None, MISSING), typ)
        if typ == "string":
            if isinstance(node, StringNode):
                return node.text
            self.errorf(f"expected string; found {node}")
        if isinstance(node, BoolNode):
            return node.true
        if isinstance(node, NumberNode):
            return self.ideal_constant(node)
        if isinstance(node, StringNode):
            return node.text
        self.errorf(f"can't handle assignment of {node} to empty interface argument")

    # -- printing -------------------------------------------------------------------------

    def print_value(self, node: Node, value: Any) -> None:
        self.at(node)
        if value is INVALID:
            self.out.append("<no value>")
            return
        if isinstance(value, Struct) and value.pointer:
            value = replace(value, pointer=False)
        if kind(value) == "func":
            self.errorf(f"can't print {node} of type {type_name(value)}")
        try:
            text = sprint([value])
        except TemplateError as exc:
            self.errorf(str(exc))
        self.out.append(text)

