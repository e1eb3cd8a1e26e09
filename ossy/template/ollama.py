"""Rendering chat prompts the way Ollama does with a Modelfile TEMPLATE.

Owns, after ollama/ollama template/template.go (docs/reference/ollama-reference.md §3.4):
  * Ollama's template functions: `json`, `currentDate`, `yesterdayDate` (YYYY-MM-DD; arguments
    ignored) and `toTypeScriptType`;
  * the values templates see: `.System .Prompt .Response .Suffix .Messages .Tools .Think
    .ThinkLevel .IsThinkSet`, with messages, tool calls and tools built as the Go types Ollama
    hands to templates (so they print, compare, range and marshal as there: tools, arguments
    and properties print as JSON, properties range in key order, numbers in arguments are
    float64);
  * message collation (consecutive same-role messages joined with a blank line, tool messages
    excepted; all system messages joined into .System);
  * the three ways a template runs: prompt+suffix (fill in the middle), once over the whole
    conversation when it mentions .Messages, or the legacy mode (once per user/assistant turn,
    the last turn cut after .Response, `{{ .Response }}` appended when never mentioned).
Does not own: the template language (executor), choosing which template or system prompt a
model uses (the model store and server), images (never passed to templates here).
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date, timedelta
from typing import Any, Iterable, Mapping

from ossy.errors import OssyError
from ossy.template.errors import GoError, TemplateError
from ossy.template.executor import Budget, Template, parse
from ossy.template.funcs import GoFunc
from ossy.template.gojson import marshal, quote_string
from ossy.template.nodes import (
    ActionNode,
    BranchNode,
    CommandNode,
    FieldNode,
    ListNode,
    Node,
    PipeNode,
    TemplateNode,
    VariableNode,
)
from ossy.template.values import GoMap, GoSlice, NilPointer, Struct

THINK_LEVELS = ("high", "medium", "low", "max")


# ------------------------------------------------------------------------------- functions


def _json(value: Any) -> str:
    try:
        return marshal(value)
    except GoError:
        return ""


def _type_script(prop: Any) -> str:
    if isinstance(prop, Struct) and prop.type_name == "api.ToolProperty":
        return property_type_script(prop)
    return "any"


def property_type_script(prop: Struct) -> str:
    """api.ToolProperty.ToTypeScriptType: unions for anyOf and type lists, `any` if unknown."""
    if prop.fields["AnyOf"]:
        return " | ".join(property_type_script(alt) for alt in prop.fields["AnyOf"])
    names = {"string": "string", "boolean": "boolean", "null": "null", "number": "number",
             "integer": "number", "array": "any[]", "object": "Record<string, any>"}
    types = prop.fields["Type"]
    return " | ".join(names.get(t, "any") for t in types) if types else "any"


def ollama_funcs(today: date | None = None) -> dict[str, GoFunc]:
    """Ollama's template functions; `today` fixes currentDate (default: the local date)."""

    def day(offset: int) -> str:
        return ((today or date.today()) - timedelta(days=offset)).isoformat()

    return {
        "json": GoFunc(_json, ("any",)),
        "currentDate": GoFunc(lambda *_: day(0), (), "string"),
        "yesterdayDate": GoFunc(lambda *_: day(1), (), "string"),
        "toTypeScriptType": GoFunc(_type_script, ("any",)),
    }


# ---------------------------------------------------------------------------------- values


def _floats(value: Any) -> Any:
    """JSON data as Go decodes it into interface{}: every number a float64."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, Mapping):
        return {str(k): _floats(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_floats(v) for v in value]
    raise TypeError(f"not JSON data: {value!r}")


def _strings(items: list[str] | None) -> GoSlice:
    return GoSlice(items or [], type_name="[]string", nil=items is None)


def _json_or_empty(value: GoMap) -> str:
    """The String method of Ollama's templateArgs and templateProperties."""
    return "{}" if value.nil else marshal(value)


def _property_type(value: Any) -> GoSlice:
    names = [value] if isinstance(value, str) else value
    return GoSlice(names or [], type_name="api.PropertyType", nil=not names,
                   methods={"String": _property_type_string}, marshal=_marshal_property_type)


def _property_type_string(pt: GoSlice) -> str:
    if len(pt) <= 1:
        return pt[0] if pt else ""
    return "[" + " ".join(pt) + "]"


def _marshal_property_type(pt: GoSlice) -> str:
    if len(pt) == 1:
        return quote_string(pt[0])
    return marshal(list(pt))


def _properties_map(props: Mapping | None) -> Any:
    """A *api.ToolPropertiesMap: kept in request order; Go would print its address."""
    if props is None:
        return NilPointer("*api.ToolPropertiesMap")
    ordered = {name: tool_property(prop) for name, prop in props.items()}
    return Struct("api.ToolPropertiesMap", {}, pointer=True, opaque=True,
                  marshal=lambda _: "{" + ",".join(quote_string(k) + ":" + marshal(v)
                                                   for k, v in ordered.items()) + "}")


_PROPERTY_JSON = (("AnyOf", "anyOf", True), ("Type", "type", True), ("Items", "items", True),
                  ("Description", "description", True), ("Enum", "enum", True),
                  ("Properties", "properties", True), ("Required", "required", True))


def tool_property(prop: Mapping | None) -> Struct:
    """An api.ToolProperty from a JSON Schema property (the zero property for None)."""
    prop = prop or {}
    any_of = prop.get("anyOf")
    return Struct(
        "api.ToolProperty",
        {"AnyOf": GoSlice([tool_property(p) for p in any_of or []], type_name="[]api.ToolProperty",
                          nil=any_of is None),
         "Type": _property_type(prop.get("type")),
         "Items": _floats(prop.get("items")),
         "Description": prop.get("description") or "",
         "Enum": GoSlice(_floats(prop.get("enum")) or [], type_name="[]interface {}",
                         elem_iface=True, nil=prop.get("enum") is None),
         "Properties": _properties_map(prop.get("properties")),
         "Required": _strings(prop.get("required"))},
        iface_fields=frozenset({"Items"}), json=_PROPERTY_JSON,
        methods={"ToTypeScriptType": property_type_script})


def _template_properties(props: Mapping | None) -> GoMap:
    items = {name: tool_property(prop) for name, prop in (props or {}).items()}
    return GoMap(items, type_name="template.templateProperties", elem_iface=False,
                 nil=props is None, zero=lambda: tool_property(None),
                 methods={"String": _json_or_empty})


def template_tool(tool: Mapping) -> Struct:
    """Ollama's templateTool for one request tool ({"type", "function": {...}})."""
    function = tool.get("function") or {}
    params = function.get("parameters") or {}
    parameters = Struct(
        "template.templateToolFunctionParameters",
        {"Type": params.get("type") or "", "Defs": _floats(params.get("$defs")),
         "Items": _floats(params.get("items")), "Required": _strings(params.get("required")),
         "Properties": _template_properties(params.get("properties"))},
        iface_fields=frozenset({"Defs", "Items"}),
        json=(("Type", "type", False), ("Defs", "$defs", True), ("Items", "items", True),
              ("Required", "required", True), ("Properties", "properties", False)))
    fn = Struct("template.templateToolFunction",
                {"Name": function.get("name") or "",
                 "Description": function.get("description") or "", "Parameters": parameters},
                json=(("Name", "name", False), ("Description", "description", False),
                      ("Parameters", "parameters", False)))
    return Struct("template.templateTool",
                  {"Type": tool.get("type") or "", "Items": _floats(tool.get("items")),
                   "Function": fn},
                  iface_fields=frozenset({"Items"}),
                  json=(("Type", "type", False), ("Items", "items", True),
                        ("Function", "function", False)),
                  methods={"String": marshal})


def template_tools(tools: Iterable[Mapping] | None) -> GoSlice:
    items = [template_tool(t) for t in tools or []]
    return GoSlice(items, type_name="template.templateTools", nil=tools is None,
                   methods={"String": marshal})


def _arguments(args: Any) -> GoMap:
    if isinstance(args, str):
        args = json.loads(args)
    return GoMap(_floats(args) if args is not None else {}, type_name="template.templateArgs",
                 nil=args is None, methods={"String": _json_or_empty})


def _tool_call(call: Mapping) -> Struct:
    function = call.get("function") or {}
    fn = Struct("template.templateToolCallFunction",
                {"Index": int(function.get("index") or 0), "Name": function.get("name") or "",
                 "Arguments": _arguments(function.get("arguments"))})
    return Struct("template.templateToolCall", {"ID": call.get("id") or "", "Function": fn})


def template_message(message: Mapping) -> Struct:
    """Ollama's *templateMessage for one (collated) message."""
    calls = [_tool_call(c) for c in message.get("tool_calls") or []]
    return Struct(
        "template.templateMessage",
        {"Role": message.get("role") or "", "Content": message.get("content") or "",
         "Thinking": message.get("thinking") or "",
         "Images": GoSlice(type_name="[]api.ImageData", nil=True),
         "ToolCalls": GoSlice(calls, type_name="[]template.templateToolCall", nil=not calls),
         "ToolName": message.get("tool_name") or "",
         "ToolCallID": message.get("tool_call_id") or ""},
        pointer=True)


def collate(messages: Iterable[Mapping]) -> tuple[str, list[dict]]:
    """Ollama's collate: same-role runs merged (not tool messages); all system text joined."""
    system: list[str] = []
    collated: list[dict] = []
    for message in messages:
        message = dict(message, role=str(message.get("role") or "").lower())
        if message["role"] == "system":
            system.append(message.get("content") or "")
        if collated and collated[-1]["role"] == message["role"] and message["role"] != "tool":
            collated[-1]["content"] = (collated[-1].get("content") or "") + "\n\n" + \
                (message.get("content") or "")
        else:
            collated.append(message)
    return "\n\n".join(system), collated


def think_values(think: bool | str | None) -> dict[str, Any]:
    """.Think, .ThinkLevel and .IsThinkSet for a request's think field."""
    if isinstance(think, str) and think not in THINK_LEVELS:
        raise OssyError(f'invalid think value: "{think}" (must be "high", "medium", "low", '
                        '"max", true, or false)')
    if think is None:
        return {"Think": False, "ThinkLevel": "", "IsThinkSet": False}
    level = think if isinstance(think, str) else ("medium" if think else "")
    return {"Think": bool(think), "ThinkLevel": level, "IsThinkSet": True}


def ollama_data(messages: Iterable[Mapping], *, tools: Iterable[Mapping] | None = None,
                think: bool | str | None = None) -> dict[str, Any]:
    """The values Ollama executes a .Messages template with."""
    system, collated = collate(messages)
    return {"System": system,
            "Messages": GoSlice([template_message(m) for m in collated],
                                type_name="[]*template.templateMessage", nil=not collated),
            "Tools": template_tools(tools), "Response": "", **think_values(think)}


# ------------------------------------------------------------------------------- templates


def _identifiers(node: Node | None) -> list[str]:
    """Ollama's Identifiers: the field and variable names a template mentions."""
    if isinstance(node, ListNode):
        return [name for child in node.nodes for name in _identifiers(child)]
    if isinstance(node, TemplateNode):
        if node.pipe is None:
            raise TemplateError("undefined template specified")
        return _identifiers(node.pipe)
    if isinstance(node, ActionNode):
        return _identifiers(node.pipe)
    if isinstance(node, BranchNode):
        return _identifiers(node.pipe) + _identifiers(node.list) + _identifiers(node.else_list)
    if isinstance(node, PipeNode):
        return [name for cmd in node.cmds for arg in cmd.args for name in _identifiers(arg)]
    if isinstance(node, (FieldNode, VariableNode)):
        return list(node.ident)
    return []


def _response_action() -> ActionNode:
    field = FieldNode(0, ident=["Response"])
    return ActionNode(0, pipe=PipeNode(0, cmds=[CommandNode(0, args=[field])]))


class _Cut:
    """Ollama's deleteNode pass: everything after the first field naming Response goes."""

    def __init__(self) -> None:
        self.done = False

    def node(self, node: Node | None) -> Node | None:
        if self.done or node is None:
            return None
        if isinstance(node, FieldNode):
            self.done = "Response" in node.ident
            return node
        if isinstance(node, ListNode):
            return replace(node, nodes=[k for k in map(self.node, node.nodes) if k is not None])
        if isinstance(node, BranchNode):
            return self.branch(node)
        if isinstance(node, ActionNode):
            pipe = self.node(node.pipe)
            return None if pipe is None else replace(node, pipe=pipe)
        if isinstance(node, PipeNode):
            cmds = []
            for cmd in node.cmds:
                args = [a for a in map(self.node, cmd.args) if a is not None]
                if not args:
                    return None
                cmds.append(replace(cmd, args=args))
            return replace(node, cmds=cmds) if cmds else None
        return node

    def branch(self, node: BranchNode) -> BranchNode:
        body = self.node(node.list)
        if node.else_list is None:
            return replace(node, list=body)
        else_list = self.node(node.else_list)
        if else_list is None:
            raise TemplateError(f"template: {node.tree.parse_name if node.tree else ''}: "
                                f"legacy rendering cannot cut {{{{{node.keyword}}}}} after "
                                ".Response when it has an {{else}} (Ollama fails here too)")
        return replace(node, list=body, else_list=else_list)


class OllamaTemplate:
    """A Modelfile TEMPLATE, parsed and run as Ollama parses and runs it."""

    def __init__(self, text: str, name: str = "TEMPLATE", *, today: date | None = None):
        self.text = text
        self.template: Template = parse(text, name, funcs=ollama_funcs(today), missingkey="zero")
        self.vars = self._vars()
        if "messages" not in self.vars and "response" not in self.vars:
            self.template.tree.root.nodes.append(_response_action())

    def _vars(self) -> list[str]:
        names = {name.lower() for tmpl in self.template.templates()
                 for node in tmpl.tree.root.nodes for name in _identifiers(node)}
        return sorted(names)

    def render(self, messages: Iterable[Mapping] = (), *, tools: Iterable[Mapping] | None = None,
               think: bool | str | None = None, prompt: str = "", suffix: str = "",
               system: str | None = None, budget: Budget | None = None) -> str:
        """The prompt for a request. `system` is a default system prompt (the Modelfile's
        SYSTEM), put first unless the conversation already starts with a system message.
        `budget` (default: a fresh `Budget()`) bounds the whole render, every turn included."""
        budget = budget or Budget()
        messages = list(messages)
        if system and (not messages or messages[0].get("role") != "system"):
            messages.insert(0, {"role": "system", "content": system})
        thinking = think_values(think)
        if prompt and suffix:
            return self.template.execute({"Prompt": prompt, "Suffix": suffix, "Response": "",
                                          **thinking}, budget=budget)
        if "messages" in self.vars:
            return self.template.execute(ollama_data(messages, tools=tools, think=think), budget=budget)
        return self._render_legacy(collate(messages)[1], thinking, budget)

    def _render_legacy(self, messages: list[dict], thinking: dict[str, Any], budget: Budget) -> str:
        out: list[str] = []
        turn = {"System": "", "Prompt": "", "Response": ""}

        def flush() -> None:
            out.append(self.template.execute({**turn, **thinking}, budget=budget))
            turn.update(System="", Prompt="", Response="")

        for message in messages:
            role, content = message["role"], message.get("content") or ""
            if role == "system":
                if turn["Prompt"] or turn["Response"]:
                    flush()
                turn["System"] = content
            elif role == "user":
                if turn["Response"]:
                    flush()
                turn["Prompt"] = content
            elif role == "assistant":
                turn["Response"] = content
        root = _Cut().node(self.template.tree.root)
        out.append(self.template.bare("", root).execute({**turn, **thinking}, budget=budget))
        return "".join(out)
