"""The Open Responses OpenAPI document (tests/fixtures/openresponses: source, commit, checksum) as
validators: a response object against `ResponseResource`, a streamed event against the union the
document gives for `POST /responses`' `text/event-stream` — as the project's compliance tester
checks them (its zod schemas are generated from the same document). `discriminator` is an
OpenAPI annotation that JSON Schema ignores; the `type` enums in each variant do its work."""

from __future__ import annotations

import json
from pathlib import Path

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPEC_PATH = Path(__file__).parent / "fixtures" / "openresponses" / "openapi.json"
SPEC = json.loads(SPEC_PATH.read_text(encoding="utf-8"))
_URI = "urn:openresponses:openapi"
_REGISTRY = Registry().with_resource(_URI, Resource.from_contents(SPEC, default_specification=DRAFT202012))


def _validator(pointer: str) -> Draft202012Validator:
    return Draft202012Validator({"$ref": f"{_URI}#{pointer}"}, registry=_REGISTRY)


RESPONSE = _validator("/components/schemas/ResponseResource")
_UNION = SPEC["paths"]["/responses"]["post"]["responses"]["200"]["content"]["text/event-stream"]["schema"]["oneOf"]
EVENTS = {SPEC["components"]["schemas"][name]["properties"]["type"]["enum"][0]: _validator(f"/components/schemas/{name}")
          for name in (variant["$ref"].rsplit("/", 1)[-1] for variant in _UNION)}  # event type -> its schema


def problems(validator: Draft202012Validator, instance) -> list[str]:
    """Each way `instance` breaks the schema, as 'path: message' (inside a oneOf, the variant that
    came closest)."""
    out = []
    for error in validator.iter_errors(instance):
        best = error
        while best.context:  # a oneOf/anyOf: follow the variant whose error lies deepest
            best = max(best.context, key=_closeness)
        out.append(f"{'.'.join(map(str, best.absolute_path)) or '(root)'}: {best.message}")
    return out


def _closeness(error) -> tuple[int, bool]:
    """Deeper is closer; at one depth, a wrong `type` (another variant) is farther."""
    path = list(error.absolute_path)
    return len(path), not (path[-1:] == ["type"] and error.validator in ("enum", "const"))


def response_problems(response: dict) -> list[str]:
    return problems(RESPONSE, response)


def event_problems(event: dict) -> list[str]:
    """Problems of one streamed event: its type must be one of the union's (the variant with that
    `type` is the one it is checked against, as the discriminator says)."""
    validator = EVENTS.get(event.get("type"))
    if validator is None:
        return [f"event type {event.get('type')!r} is not one of the spec's streaming events"]
    return [f"{event['type']}: {p}" for p in problems(validator, event)]
