"""Embeddings for /api/embed, /api/embeddings and /v1/embeddings: inputs -> the engine's vectors.

Owns: turning inputs into ids (text tokenized as it is, with no template and no special tokens;
the OpenAI API may also send ids), truncation to the model's num_ctx (or a 400 when `truncate`
is false), and `dimensions` (the first N values, L2-normalised again, as Ollama does). The vector
itself is the model's (`LanguageModel.embedding`: the mean of the final RMS-normed hidden states over
the input's tokens, L2-normalised), so every endpoint gives the same one for the same input.
Does not own: the HTTP shapes (`ossy.server`), the model math.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import anyio

from ossy.chat.options import RequestError, check_options, resolve_options
from ossy.engine.protocol import ContextOverflowError, Engine, ResolvedModel


@dataclass(frozen=True)
class EmbedResult:
    vectors: list[list[float]]
    prompt_tokens: int
    load_duration: int  # ns


async def embed(engine: Engine, model: ResolvedModel, inputs: list, *, truncate: bool = True,
                dimensions: int | None = None, keep_alive: float | None = None,
                options: dict | None = None) -> EmbedResult:
    """`inputs`: strings, or lists of token ids. An empty list gives no vectors."""
    if dimensions is not None and (isinstance(dimensions, bool) or not isinstance(dimensions, int) or dimensions < 1):
        raise RequestError("dimensions must be a positive whole number", param="dimensions")
    num_ctx = resolve_options(model.parameters, check_options(options), context_length=model.ref.context_length).num_ctx
    ids = await anyio.to_thread.run_sync(lambda: [_ids(model, x, i) for i, x in enumerate(inputs)])
    for i, sequence in enumerate(ids):
        if len(sequence) > num_ctx:
            if not truncate:
                raise ContextOverflowError(f"input {i} is {len(sequence)} tokens, longer than the context window "
                                           f"(num_ctx {num_ctx}); set truncate to true or shorten it")
            ids[i] = sequence[:num_ctx]
    if not ids:
        return EmbedResult([], 0, 0)
    result = await engine.embed(model.ref, [tuple(x) for x in ids], keep_alive)
    vectors = result.vectors
    if dimensions is not None:
        if dimensions > len(vectors[0]):
            raise RequestError(f"dimensions {dimensions} is more than the model's {len(vectors[0])}",
                               param="dimensions")
        vectors = [_normalised(v[:dimensions]) for v in vectors]
    return EmbedResult(vectors, result.prompt_tokens, result.load_duration)


def _ids(model: ResolvedModel, value, index: int) -> list[int]:
    if isinstance(value, str):
        ids = model.tokenizer.encode(value)
    elif isinstance(value, list) and all(isinstance(x, int) and not isinstance(x, bool) for x in value):
        ids = list(value)
        if any(not 0 <= x < model.tokenizer.vocab_size for x in ids):
            raise RequestError(f"input {index} has a token id outside [0, {model.tokenizer.vocab_size})", param="input")
    else:
        raise RequestError("input must be a string, a list of strings, or token ids", param="input")
    if not ids:
        raise RequestError(f"input {index} is empty", param="input")
    return ids


def _normalised(vector: list[float]) -> list[float]:
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return [x / norm for x in vector]
