"""Structured output as the chat layer hands it to the engine: a `TokenConstraint`.

Owns: checking a request's `format` ("json", or a JSON Schema object, valid against its
metaschema and compilable: every `$ref` resolves and llguidance does not find it unsatisfiable;
OpenAI's response_format and the Responses API's text.format are translated to it by the server), the developer-message
text that tells the model the schema (harmony's `# Response Formats`), the `FormatConstraint`
passed to the engine (grammar-constrained decoding, docs/reference/gpt-oss-spec.md §5.5), and the after-the-fact check
that reports a `format_unmet` warning (kept as a safety net: a schema keyword the grammar library
cannot enforce is ignored by it, "lenient", and then only this check reports it).
Does not own: applying the mask to logits (`ossy.engine.sampling.mask`) or harmony parsing.

How it constrains: `FormatConstraint.allowed` watches the generated ids. While the model is in
the analysis (or commentary) channel it returns None: thinking stays free. From the
`<|message|>` of a header naming `<|channel|>final` (or from the first token, for a plain /
raw prompt) every id is fed to an llguidance `LLMatcher` built from the schema ("json" = any JSON
object), and `allowed` returns a dense bool mask [tokenizer.vocab_size]: the grammar's tokens, plus
the stop token (`<|return|>`; `<|endoftext|>` for plain prompts) once the grammar accepts. No
other special id is ever allowed, and ids >= tokenizer.vocab_size are not in the mask at all.
Caches: the llguidance tokenizer per ossy `Tokenizer` (weakly keyed, ~0.8 s to build for
gpt-oss's 200k ids), the compiled grammar text per schema (LRU); a matcher per request (~1 ms).

Library choice (llguidance 1.9.1 over xgrammar 0.2.8), measured on 2 shared CPU cores with the
real gpt-oss tokenizer.json: llguidance installs as one 3 MB abi3 wheel with no dependencies
(xgrammar 0.2.8 pulls triton 3.9.0 and apache-tvm-ffi into our CPU-only venv); its tokenizer
build takes 0.7 s, a small schema compiles in ~1 ms (xgrammar: ~1.1 s per the machine probe), and
filling the bitmask costs ~0.1 ms per token plus ~0.03 ms to unpack it to a bool mask (xgrammar:
~0.85 ms). It is maintained by Microsoft (guidance-ai), and is the grammar engine behind
llama.cpp's and vLLM's llguidance backends and OpenAI's own structured outputs.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import jsonschema
import llguidance
import numpy as np
import torch

from ossy.chat.options import RequestError, check_schema

log = logging.getLogger(__name__)

# JSON compile options: unknown keywords/formats are ignored rather than failing the grammar, and
# whitespace between tokens is bounded (unbounded whitespace lets a model loop on newlines).
JSON_OPTIONS = {"lenient": True, "whitespace_flexible": True, "whitespace_pattern": r"[ \t\n]{0,24}"}
ANY_OBJECT = {"type": "object"}
_STOPS = {True: "<|return|>", False: "<|endoftext|>"}  # harmony final answer / plain prompt

_lock = threading.Lock()
_tokenizers: "weakref.WeakKeyDictionary[Any, Any]" = weakref.WeakKeyDictionary()


def grammar_tokenizer(tokenizer):
    """The llguidance `LLTokenizer` for an ossy `Tokenizer` (built once, then cached).

    Every id below `tokenizer.vocab_size` gets its byte string; special ids are marked special
    (llguidance never lets a grammar produce them); `<|return|>` and `<|endoftext|>`, where the
    vocabulary has them, are its end tokens."""

    with _lock:
        cached = _tokenizers.get(tokenizer)
        if cached is not None:
            return cached
        specials = tokenizer.special_tokens
        names = {i: name for name, i in specials.items()}
        size = tokenizer.vocab_size
        words = []
        for i in range(size):
            if i in names:
                words.append(b"\xff" + names[i].encode())
                continue
            try:
                words.append(tokenizer.decode_bytes([i]))
            except Exception:  # a hole in the id space: a word nothing can match
                words.append(b"")
        ends = [specials[n] for n in _STOPS.values() if n in specials and specials[n] < size]

        class _Words:
            eos_token_id = ends[0] if ends else None
            bos_token_id = None
            tokens = words
            special_token_ids = sorted(i for i in names if i < size)

            def __call__(self, text):
                return tokenizer.encode(text.decode("utf-8", "replace") if isinstance(text, bytes) else text)

        lt = llguidance.LLTokenizer(llguidance.TokenizerWrapper(_Words()), n_vocab=size, eos_token=ends or None)
        _tokenizers[tokenizer] = lt
        return lt


@functools.lru_cache(maxsize=64)
def _grammar(schema_json: str) -> str:
    return llguidance.LLMatcher.grammar_from_json_schema(schema_json, overrides=JSON_OPTIONS)


def grammar_for(schema: dict | None) -> str:
    """llguidance grammar text for a JSON schema (None: any JSON object); LRU-cached per schema."""
    # not sort_keys: llguidance emits properties in the order the schema lists them
    return _grammar(json.dumps(schema if schema is not None else ANY_OBJECT))


@dataclass
class FormatConstraint:
    """The engine's hook for `format`. `schema` is None for plain "json".

    `harmony`: the output is harmony (constrain only the final channel's message); False for raw
    prompts / non-harmony templates, where the whole output is the answer. One instance serves one
    request (it keeps the matcher's state)."""

    schema: dict | None
    tokenizer: Any = field(repr=False, default=None)
    name: str = "response"
    harmony: bool = True

    def __post_init__(self) -> None:
        self._seen = 0  # how many generated ids were looked at
        self._header: list[int] = []  # ids since the last <|start|>/<|end|> (harmony header)
        self._matcher = None  # set while inside the final message
        self._done = False  # the constrained message ended (or the matcher failed)
        self._bits = None
        sp = self.tokenizer.special_tokens if self.tokenizer is not None else {}
        self._ids = {n: sp.get(n) for n in ("<|start|>", "<|end|>", "<|message|>", "<|channel|>")}
        self._stop = sp.get(_STOPS[self.harmony])
        self._other_stops = [i for n, i in sp.items() if n in _STOPS.values() and i != self._stop]
        if not self.harmony:
            self._open()

    def _open(self) -> None:
        try:
            matcher = llguidance.LLMatcher(grammar_tokenizer(self.tokenizer), grammar_for(self.schema))
        except Exception as e:  # should not happen: lenient compile; fall back to the after-check
            log.warning("format grammar failed, output is not constrained: %s", e)
            self._done = True
            return
        if matcher.is_error():
            log.warning("format grammar failed, output is not constrained: %s", matcher.get_error())
            self._done = True
            return
        self._matcher = matcher
        self._bits = np.zeros((self.tokenizer.vocab_size + 31) // 32, dtype=np.int32)

    def _feed(self, token: int) -> None:
        if self._matcher is not None:
            if token == self._stop or not self._matcher.consume_token(token):
                self._matcher, self._done = None, True
            return
        if self._done or not self.harmony:
            return
        ids = self._ids
        if token in (ids["<|start|>"], ids["<|end|>"]):
            self._header = []
        elif token == ids["<|message|>"]:
            header = self.tokenizer.decode(self._header)
            self._header = []
            if "<|channel|>final" in header.replace(" ", ""):
                self._open()
        else:
            self._header.append(token)

    def allowed(self, generated: Sequence[int]):
        """None outside the final message; inside it a bool tensor [vocab_size] (True = allowed)."""
        for token in generated[self._seen:]:
            self._feed(int(token))
        self._seen = len(generated)
        m = self._matcher
        if m is None:
            return None
        m.unsafe_compute_mask_ptr(self._bits.ctypes.data, self._bits.nbytes)
        keep = np.unpackbits(self._bits.view(np.uint8), bitorder="little")[: self.tokenizer.vocab_size].astype(bool)
        for i in self._other_stops:  # a stop that does not end this kind of output
            keep[i] = False
        if self._stop is not None and m.is_accepting():
            keep[self._stop] = True
        return torch.from_numpy(keep)


def check_format(value: Any, *, param: str = "format") -> str | dict | None:
    """None, "json", or a JSON Schema object (checked against its metaschema)."""
    if value in (None, ""):
        return None
    if value == "json":
        return "json"
    if not isinstance(value, dict):
        raise RequestError(f'{param} must be "json" or a JSON schema object', param=param)
    check_schema(value, param)
    problem = grammar_problem(value)
    if problem:
        raise RequestError(f"{param} cannot be enforced: {problem}", param=param)
    return value


def grammar_problem(schema: dict) -> str:
    """What keeps `schema` from becoming a grammar ("" if nothing): a `$ref` that does not
    resolve, a schema no value satisfies (minLength > maxLength, incompatible allOf...)."""

    try:
        return llguidance.LLMatcher.validate_grammar(grammar_for(schema))
    except Exception as e:  # llguidance raises for what it cannot compile at all
        return str(e)


def make_constraint(format: str | dict | None, tokenizer, name: str = "response", *,
                    harmony: bool = True) -> FormatConstraint | None:
    """The engine constraint for `format` (None: none). `harmony=False` constrains the whole output."""
    if format is None or tokenizer is None:
        return None
    return FormatConstraint(None if format == "json" else format, tokenizer, name, harmony=harmony)


def instructions(format: str | dict | None, name: str = "response") -> str | None:
    """What the developer message says about the format (`# Response Formats`, docs/reference/gpt-oss-spec.md §5.5)."""
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
