"""Structured output as the chat layer hands it to the engine: a `TokenConstraint`.

Owns: checking a request's `format` ("json", or a JSON Schema object; OpenAI's response_format
and the Responses API's text.format are translated to it by the server), the developer-message
text that tells the model the schema (harmony's `# Response Formats`), the `FormatConstraint`
passed to the engine, and the after-the-fact check that reports a `format_unmet` warning.

The grammar itself (issue 6 item 5) plugs in behind `FormatConstraint.allowed`: it must leave
the analysis channel free and constrain only the final message's content. Until it lands,
`allowed` returns None (no restriction) and the result is checked after generation.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import AbstractSet, Any

import jsonschema

from ossy.chat.options import RequestError


@dataclass
class FormatConstraint:
    """The engine's hook for `format`. `schema` is None for plain "json"."""

    schema: dict | None
    tokenizer: Any = field(repr=False, default=None)
    name: str = "response"

    def allowed(self, generated: Sequence[int]) -> AbstractSet[int] | None:
        return None  # the grammar-constrained decoder replaces this (see module docstring)


def check_format(value: Any, *, param: str = "format") -> str | dict | None:
    """None, "json", or a JSON Schema object (checked against its metaschema)."""
    if value in (None, ""):
        return None
    if value == "json":
        return "json"
    if not isinstance(value, dict):
        raise RequestError(f'{param} must be "json" or a JSON schema object', param=param)
    try:
        jsonschema.validators.validator_for(value).check_schema(value)
    except jsonschema.SchemaError as e:
        raise RequestError(f"{param} is not a valid JSON schema: {e.message}", param=param) from None
    return value


def make_constraint(format: str | dict | None, tokenizer, name: str = "response") -> FormatConstraint | None:
    if format is None:
        return None
    return FormatConstraint(None if format == "json" else format, tokenizer, name)


def instructions(format: str | dict | None, name: str = "response") -> str | None:
    """What the developer message says about the format (harmony spec §5: `# Response Formats`)."""
    if format is None:
        return None
    if format == "json":
        return "# Response Formats\n\nRespond with a single JSON value and nothing else."
    return f"# Response Formats\n\n## {name}\n\n{json.dumps(format, ensure_ascii=False)}"


def check_output(format: str | dict | None, content: str | None) -> dict | None:
    """A `format_unmet` warning when `content` is not JSON (valid against the schema), else None."""
    if format is None:
        return None
    try:
        value = json.loads(content or "")
    except ValueError:
        return {"code": "format_unmet", "detail": "the answer is not valid JSON"}
    if isinstance(format, dict):
        error = jsonschema.exceptions.best_match(jsonschema.validators.validator_for(format)(format).iter_errors(value))
        if error is not None:
            return {"code": "format_unmet", "detail": f"the answer does not match the schema: {error.message}"}
    return None
