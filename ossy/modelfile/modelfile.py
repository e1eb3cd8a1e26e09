"""The parsed form of a Modelfile, and writing it back as Modelfile text.

Owns the `Modelfile` dataclass and `to_text`, which writes instructions in the order
`ollama show --modelfile` uses (FROM, ADAPTER, TEMPLATE, SYSTEM, PARAMETER, LICENSE, MESSAGE,
then REQUIRES and ossy's TOOLS) and picks for every value a quoting that reads back to the same
string, or raises `ModelfileError` when no quoting can. Does not parse text (`parser.py`) and
does not check parameter values (they were checked when parsed).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ossy.modelfile.errors import ModelfileError
from ossy.modelfile.parameters import PARAMETERS, ParameterValue, format_value
from ossy.modelfile.values import quote


@dataclass
class Modelfile:
    """What a Modelfile says. `None` / empty means the Modelfile does not set it.

    `parameters` maps a name to its typed value; `stop` maps to a list of strings.
    `messages` holds (role, content) pairs. `warnings` (not compared) are one-line notes about
    accepted but ignored input, such as deprecated parameters.
    """

    from_: str = ""
    parameters: dict[str, ParameterValue] = field(default_factory=dict)
    template: str | None = None
    system: str | None = None
    adapters: list[str] = field(default_factory=list)
    licenses: list[str] = field(default_factory=list)
    messages: list[tuple[str, str]] = field(default_factory=list)
    requires: str | None = None
    tools: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list, compare=False, repr=False)

    def to_text(self) -> str:
        """Modelfile text that `ossy.modelfile.parse` turns back into an equal Modelfile."""
        if not self.from_:
            raise ModelfileError("cannot write a Modelfile without FROM; set from_ first")
        lines = [_instruction("FROM", self.from_)]
        lines += [_instruction("ADAPTER", adapter) for adapter in self.adapters]
        if self.template is not None:
            lines.append(_instruction("TEMPLATE", self.template))
        if self.system is not None:
            lines.append(_instruction("SYSTEM", self.system))
        lines += [_parameter(name, value) for name, value in _each_parameter(self.parameters)]
        lines += [_instruction("LICENSE", text) for text in self.licenses]
        lines += [_instruction("MESSAGE", content, role) for role, content in self.messages]
        if self.requires is not None:
            lines.append(_instruction("REQUIRES", self.requires))
        if self.tools:
            lines.append(_instruction("TOOLS", ",".join(self.tools)))
        return "\n".join(lines) + "\n"

    def with_defaults(self, defaults: Modelfile) -> Modelfile:
        """This Modelfile over `defaults`, for a model built from a bare checkpoint: what it sets
        wins, parameters merge name by name, and licenses add up (each text once)."""
        return replace(
            self,
            parameters={**defaults.parameters, **self.parameters},
            template=self.template if self.template is not None else defaults.template,
            system=self.system if self.system is not None else defaults.system,
            licenses=[*defaults.licenses, *(t for t in self.licenses if t not in defaults.licenses)],
        )


def _each_parameter(parameters: dict[str, ParameterValue]):
    for name, value in parameters.items():
        for one in value if isinstance(value, list) else [value]:
            yield name, one


def _parameter(name: str, value: int | float | bool | str) -> str:
    if name not in PARAMETERS:
        raise ModelfileError(f'cannot write unknown parameter "{name}"; valid: {", ".join(PARAMETERS)}')
    return _instruction("PARAMETER", format_value(value), name)


def _instruction(keyword: str, value: str, argument: str = "") -> str:
    written = quote(value)
    if written is None:
        raise ModelfileError(
            f'cannot write this {keyword} value as Modelfile text: a line inside it ends with """ '
            "or it holds a carriage return, and no quoting can enclose that"
        )
    return " ".join(part for part in (keyword, argument, written) if part)
