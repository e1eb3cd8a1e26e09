"""Go text/template for Modelfile TEMPLATEs, rendering exactly as Ollama (Go) does.

Owns the public API of ossy.template:
  * `parse(text, name)` -> `Template` (reusable: `.execute(data, funcs=None)`), and
    `render(text, data, funcs=None)`: Go's text/template configured as Ollama configures it
    (Ollama's functions json, currentDate, yesterdayDate, toTypeScriptType; missingkey=zero);
  * `OllamaTemplate(text).render(messages, tools=..., think=..., ...)`: a chat prompt exactly as
    Ollama renders it (collation, .Messages mode, legacy per-turn mode, prompt+suffix mode);
    `ollama_data(...)` gives the values of the .Messages mode;
  * `TemplateError`: what Go's Parse or Execute would return, worded as Go words it, with
    `.line` (and `.column` for execution errors);
  * `Budget` / `TemplateLimitError`: bounds on an execution's output and work (ossy's, not Go's).
Data is plain Python: dict = map[string]any, list = []any, str/int/float/bool, None = nil.
Proven against Go by tests/test_template_golden.py (goldens made by Go itself; see
tests/goldens/template/README.md). Does not own: Modelfiles, the model store, the server.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from ossy.template import executor
from ossy.template.errors import GoError, TemplateError
from ossy.template.executor import Budget, Template, TemplateLimitError
from ossy.template.funcs import GoFunc
from ossy.template.ollama import OllamaTemplate, collate, ollama_data, ollama_funcs

MISSINGKEY = executor.MISSINGKEY


def parse(text: str, name: str = "TEMPLATE", *, funcs: dict[str, Any] | None = None,
          missingkey: str = "zero", today: date | None = None) -> Template:
    """Parses a template as Ollama does; `funcs` add to (or replace) Ollama's functions.

    Raises TemplateError for any template Go's Parse rejects.
    """
    all_funcs = {**ollama_funcs(today), **(funcs or {})}
    return executor.parse(text, name, funcs=all_funcs, missingkey=missingkey)


def render(text: str, data: Any, *, funcs: dict[str, Any] | None = None) -> str:
    """Parses and executes in one step."""
    return parse(text, funcs=funcs).execute(data)


__all__ = ["Budget", "GoError", "GoFunc", "MISSINGKEY", "OllamaTemplate", "Template", "TemplateError",
           "TemplateLimitError", "collate", "ollama_data", "ollama_funcs", "parse", "render"]
