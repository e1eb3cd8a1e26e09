"""Request options: checking them, and layering them over the model's Modelfile PARAMETERs.

Owns: `RequestError`, `check_schema` (a JSON Schema a request sends), which option names a request may send (every Modelfile PARAMETER, plus Ollama's deprecated
ones, which are accepted and ignored), their JSON types and ranges, and `resolve_options`, which
builds the engine's `SamplingOptions` and limits. The layering rule: ossy's defaults
(`SamplingOptions()`), then the model's PARAMETERs, then what the request sets, field by field;
a field the request leaves out never overrides the model's value (unlike Ollama's /v1, ollama/ollama#17744).

Runner options (num_gpu, num_thread, use_mmap, ...) are accepted and ignored: ossy's engine
sizes itself. num_ctx is honoured per request (capped by the model's trained context).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, fields

import jsonschema

from ossy.engine.protocol import SamplingOptions
from ossy.errors import OssyError
from ossy.modelfile.parameters import DEPRECATED, INT64, PARAMETERS

DEFAULT_NUM_CTX = 65536  # fits agent clients (15-30k-token prompts; Ollama advises >= 64k for them); capped by
# the model's trained context. The KV cache grows with use, so a short chat costs no more (a small
# num_ctx silently truncates prompts: docs/reference/ollama-reference.md §7 D)
MAX_TOP_LOGPROBS = 20
_SAMPLING = {f.name for f in fields(SamplingOptions)} - {"logprobs", "top_logprobs"}

log = logging.getLogger("ossy.chat")


class RequestError(OssyError):
    """400: a request ossy cannot run as sent. `param` names the offending field (OpenAI's
    `error.param`), `code` is OpenAI's `error.code` where one applies."""

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.param = param
        self.code = code


@dataclass(frozen=True)
class Resolved:
    """Options ready for the engine."""

    sampling: SamplingOptions
    max_tokens: int | None  # None: no limit (num_predict -1 / -2)
    num_ctx: int
    stop: tuple[str, ...]  # stop strings (text), applied by the chat layer


def check_schema(schema: object, param: str) -> dict:
    """A JSON Schema object a request sends (a tool's parameters, a response format), valid
    against its metaschema; else a 400 naming `param`."""
    if not isinstance(schema, dict):
        raise RequestError(f"{param} must be a JSON Schema object", param=param)
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as e:
        raise RequestError(f"{param} is not a valid JSON Schema: {e.message}", param=param) from None
    return schema


def check_options(options: object, *, where: str = "options", ignored: list[dict] | None = None) -> dict:
    """`options` as a dict of known names with values of the right type and range.

    Raises `RequestError` naming the field for a wrong type or a value out of range. An unknown
    name is left out, as Ollama does (`tfs_z`, `numa`... from older clients), with a log line and
    a warning ({code: "unknown_option", detail}) appended to `ignored` for the response."""
    if options is None:
        return {}
    if not isinstance(options, dict):
        raise RequestError(f"{where} must be an object", param=where)
    checked = {}
    for name, value in options.items():
        if name in DEPRECATED:
            continue
        spec = PARAMETERS.get(name)
        if spec is None:
            log.warning("invalid option provided: %s (in %s, ignored)", name, where)
            if ignored is not None:
                ignored.append({"code": "unknown_option", "detail": f"{where}.{name} is not an option; it was ignored"})
            continue
        if value is None:
            continue
        checked[name] = _check_value(name, spec, value, f"{where}.{name}")
    return checked


def _check_value(name: str, spec, value, param: str):
    if spec.kind is str:  # stop: a string or a list of strings
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(s, str) and s for s in items):
            raise RequestError(f"{param} must be a non-empty string or a list of them", param=param)
        return list(items)
    if spec.kind is bool:
        if not isinstance(value, bool):
            raise RequestError(f"{param} must be true or false, not {value!r}", param=param)
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RequestError(f"{param} must be a number, not {value!r}", param=param)
    if spec.kind is int:
        if isinstance(value, float):
            if not value.is_integer():
                raise RequestError(f"{param} must be a whole number, not {value!r}", param=param)
            value = int(value)
        if not -INT64 <= value < INT64:
            raise RequestError(f"{param} must fit in 64 bits, not {value!r}", param=param)
    else:
        value = float(value)
        if not math.isfinite(value):
            raise RequestError(f"{param} must be finite", param=param)
    if (spec.low is not None and value < spec.low) or (spec.high is not None and value > spec.high):
        bounds = f">= {spec.low:g}" if spec.high is None else f"between {spec.low:g} and {spec.high:g}"
        raise RequestError(f"{param} must be {bounds}, not {value!r}", param=param)
    return value


def resolve_options(model_parameters: dict, request: dict, *, logprobs: bool = False, top_logprobs: int = 0,
                    context_length: int | None = None, seed_offset: int = 0) -> Resolved:
    """The engine's options: defaults < the model's PARAMETERs < the request (both checked)."""
    merged = {**model_parameters, **request}
    sampling = {k: v for k, v in merged.items() if k in _SAMPLING}
    if sampling.get("seed") is not None and sampling["seed"] < 0:
        sampling["seed"] = None  # Ollama: -1 means random
    if sampling.get("seed") is not None and seed_offset:
        sampling["seed"] += seed_offset  # n > 1: choices differ but stay reproducible
    if not 0 <= top_logprobs <= MAX_TOP_LOGPROBS:
        raise RequestError(f"top_logprobs must be between 0 and {MAX_TOP_LOGPROBS}", param="top_logprobs")
    sampling = SamplingOptions(**sampling, logprobs=bool(logprobs or top_logprobs), top_logprobs=top_logprobs)
    num_predict = merged.get("num_predict")
    max_tokens = None if num_predict is None or num_predict < 0 else num_predict
    num_ctx = int(merged.get("num_ctx") or DEFAULT_NUM_CTX)
    if context_length:
        num_ctx = min(num_ctx, context_length)
    stop = merged.get("stop") or []
    return Resolved(sampling, max_tokens, num_ctx, tuple([stop] if isinstance(stop, str) else stop))
