'''Modelfiles: parse them, check them, write them back; and the gpt-oss library defaults.

A Modelfile is Ollama's recipe for a model (docs/reference/ollama-reference.md §3): `FROM` (required), then any of
`PARAMETER name value` (repeat `stop` for several), `TEMPLATE`, `SYSTEM`, `ADAPTER`, `LICENSE`
(repeatable), `MESSAGE system|user|assistant text`, `REQUIRES x.y.z`, one instruction per
line, names in any case, `#` comments on their own lines. Values are bare (to the end of the
line) or quoted with `"` or `"""`, over as many lines as needed, without escapes.

ossy adds one instruction, `TOOLS name[,name...]`: the toolsets (identifiers such as `fs`,
`shell`) a model created from this Modelfile gets. It may be repeated; names add up and may
not repeat. Ollama rejects it, so a Modelfile using it is ossy-only.

Public API: `parse(text, *, path=None, check_template=True)`, `parse_file(path)`,
`Modelfile` (with `.to_text()` and `.with_defaults()`), `ModelfileError`, `PARAMETERS`,
`gptoss_defaults()`. Every error is a `ModelfileError` whose message is one line,
`<path or Modelfile>:<line>[:<column>]: <what is wrong>[; <what to do instead>]`.
This package does not touch the model store or resolve FROM.
'''

from ossy.modelfile.defaults import gptoss_defaults
from ossy.modelfile.errors import ModelfileError
from ossy.modelfile.modelfile import Modelfile
from ossy.modelfile.parameters import PARAMETERS
from ossy.modelfile.parser import parse, parse_file

__all__ = ["Modelfile", "ModelfileError", "PARAMETERS", "gptoss_defaults", "parse", "parse_file"]
