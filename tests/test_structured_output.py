"""Structured output (docs/reference/gpt-oss-spec.md §5.5): `FormatConstraint` with the real gpt-oss tokenizer.

Model-free: random logits are sampled under the constraint's mask, from the final-channel start
until `<|return|>`, and the decoded text must parse as JSON valid against the schema; the
analysis channel stays unconstrained. End to end: a stub engine that samples random logits under
the request's constraint (after a scripted analysis message and final header) behind the real
server, for /api/chat `format` and /v1/chat/completions `response_format` json_schema."""

from __future__ import annotations

import functools
import json

import httpx
import jsonschema
import pytest
import torch
from conftest import VOCAB
from stub_engine import RunningServer, StubEngine, tiny_library

import ossy.tokenizer
from ossy.chat.constraint import FormatConstraint, make_constraint
from ossy.engine.protocol import Token
from ossy.engine.sampling import Sampler, mask
from ossy.server import create_app

PERSON = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 12},
                                           "age": {"type": "integer", "minimum": 0},
                                           "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "maxItems": 3}},
          "required": ["name", "age"], "additionalProperties": False}
HEADER = ("<|channel|>analysis<|message|>Let me think.<|end|>"
          "<|start|>assistant<|channel|>final<|message|>")


@functools.cache
def tokenizer():
    return ossy.tokenizer.load(VOCAB / "gpt-oss" / "tokenizer.json")


def biased_logits(tok, gen: torch.Generator, size: int) -> torch.Tensor:
    """Random logits that favour short punctuation tokens, so a random walk ends soon."""
    logits = torch.randn(size, generator=gen) * 2
    logits[closers(tok)] += 6
    return logits


@functools.cache
def _closers(tok) -> tuple[int, ...]:
    ids = [i for s in ('"', "}", "]", ",", '",', '"}', "1", "0", "<|return|>") for i in tok.encode(s, allow_special=True)]
    return tuple(ids)


def closers(tok):
    return torch.tensor(_closers(tok))


def sample_answer(constraint, prefix: list[int], seed: int, limit: int = 400) -> list[int]:
    tok = tokenizer()
    gen = torch.Generator().manual_seed(seed)
    generated = list(prefix)
    stop = tok.token_id("<|return|>")
    for _ in range(limit):
        allowed = constraint.allowed(generated)
        assert allowed is not None
        token = int(torch.multinomial(torch.softmax(mask(biased_logits(tok, gen, 201088), allowed), 0), 1,
                                      generator=gen))
        assert token < tok.vocab_size and (token == stop or not tok.is_special(token))
        generated.append(token)
        if token == stop:
            return generated[len(prefix):-1]
    raise AssertionError("no <|return|> within the limit")


@pytest.mark.parametrize("schema", [None, PERSON])
def test_random_sampling_under_the_mask_gives_valid_json(schema):
    tok = tokenizer()
    prefix = tok.encode(HEADER, allow_special=True)
    for seed in range(4):
        constraint = make_constraint(schema or "json", tok)
        # the analysis channel and the headers are free
        for n in range(len(prefix)):
            assert constraint.allowed(prefix[:n]) is None
        value = json.loads(tok.decode(sample_answer(constraint, prefix, seed)))
        assert isinstance(value, dict)
        if schema:
            jsonschema.validate(value, schema)


def test_other_channels_stay_free_and_plain_output_is_constrained_from_the_start():
    tok = tokenizer()
    commentary = tok.encode('<|channel|>commentary to=functions.f <|constrain|>json<|message|>{"a":', allow_special=True)
    assert FormatConstraint(PERSON, tok).allowed(commentary) is None
    plain = make_constraint("json", tok, harmony=False)
    first = plain.allowed([])
    assert first is not None and bool(first[tok.encode("{")[0]]) and not bool(first[tok.encode("x")[0]])
    assert not first[tok.token_id("<|return|>")]


def test_the_sampler_applies_a_bool_mask_and_the_mask_is_fast():
    import time

    tok = tokenizer()
    constraint = make_constraint(PERSON, tok)
    prefix = tok.encode(HEADER + '{"name":"Al', allow_special=True)
    constraint.allowed(prefix[:-1])  # build and warm the caches
    started = time.perf_counter()
    allowed = constraint.allowed(prefix)
    assert time.perf_counter() - started < 0.05  # ~0.2 ms on 2 CPU cores
    token = Sampler(0)(torch.randn(201088), prefix, allowed)
    assert isinstance(token, Token) and bool(allowed[token.id])


class ConstrainedStub(StubEngine):
    """Plays the scripted analysis + final header, then samples random logits under the constraint."""

    async def submit(self, request):
        generation = await super().submit(request)
        assert request.constraint is not None
        prefix = self.tokenizer.encode(HEADER, allow_special=True)
        generation.ids = prefix + sample_answer(request.constraint, prefix, 7) + [self.tokenizer.token_id("<|return|>")]
        return generation


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    library, resolver = tiny_library(tmp_path_factory.mktemp("store"), tokenizer())
    engine = ConstrainedStub(tokenizer())
    with RunningServer(create_app(engine, resolver, library)) as url:
        yield url


def test_native_format_and_openai_json_schema_end_to_end(server):
    msgs = [{"role": "user", "content": "Who?"}]
    r = httpx.post(server + "/api/chat", json={"model": "tiny", "messages": msgs, "format": PERSON, "stream": False},
                   timeout=60)
    assert r.status_code == 200, r.text
    jsonschema.validate(json.loads(r.json()["message"]["content"]), PERSON)
    r = httpx.post(server + "/v1/chat/completions", timeout=60, json={
        "model": "tiny", "messages": msgs,
        "response_format": {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON}}})
    assert r.status_code == 200, r.text
    jsonschema.validate(json.loads(r.json()["choices"][0]["message"]["content"]), PERSON)
    r = httpx.post(server + "/v1/chat/completions", timeout=60, json={
        "model": "tiny", "messages": msgs, "response_format": {"type": "json_object"}})
    assert isinstance(json.loads(r.json()["choices"][0]["message"]["content"]), dict)
