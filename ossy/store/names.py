"""Model names: `[host/][namespace/]model[:tag]` with Ollama's defaults and character rules.

Owns: parsing and validating a name (`parse_name`), filling the defaults (host
`registry.ollama.ai`, namespace `library`, tag `latest`), the short display form Ollama prints
(`gpt-oss:20b`, `me/mine:latest`), and the relative path of a name's manifest.
Does not own: where manifests live or what they hold (`ossy.store.store`).

Rules (Ollama's `types/model/name.go`): every part starts with a letter, digit or `_` and then
holds letters, digits, `_`, `-` and `.`; a namespace holds no `.`; a host may also hold `:`
(a port). Hosts are at most 350 characters, the other parts at most 80.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath

from ossy.errors import OssyError

DEFAULT_HOST = "registry.ollama.ai"
DEFAULT_NAMESPACE = "library"
DEFAULT_TAG = "latest"

_PART = {
    "host": (re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:-]*"), 350, "letters, digits, '_', '-', '.' and ':'"),
    "namespace": (re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]*"), 80, "letters, digits, '_' and '-'"),
    "model": (re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*"), 80, "letters, digits, '_', '-' and '.'"),
    "tag": (re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*"), 80, "letters, digits, '_', '-' and '.'"),
}


class InvalidNameError(OssyError):
    """A string that is not a valid model name."""


@dataclass(frozen=True, order=True)
class ModelName:
    host: str
    namespace: str
    model: str
    tag: str

    def __str__(self) -> str:
        """The shortest form: default host and namespace left out, the tag always shown."""
        if self.host != DEFAULT_HOST:
            return f"{self.host}/{self.namespace}/{self.model}:{self.tag}"
        if self.namespace != DEFAULT_NAMESPACE:
            return f"{self.namespace}/{self.model}:{self.tag}"
        return f"{self.model}:{self.tag}"

    @property
    def path(self) -> PurePosixPath:
        """The manifest's path below `manifests/`."""
        return PurePosixPath(self.host, self.namespace, self.model, self.tag)


def parse_name(text: str) -> ModelName:
    """Parse `[host/][namespace/]model[:tag]`, filling Ollama's defaults; `InvalidNameError` if bad."""
    if "@" in text:
        raise InvalidNameError(f"invalid model name {text!r}: digests ('@sha256:...') are not supported")
    parts = text.split("/")
    if len(parts) > 3:
        raise InvalidNameError(f"invalid model name {text!r}: expected [host/][namespace/]model[:tag]")
    model, colon, tag = parts[-1].partition(":")
    if colon and not tag:
        raise InvalidNameError(f"invalid model name {text!r}: empty tag after ':'")
    name = ModelName(
        host=parts[0] if len(parts) == 3 else DEFAULT_HOST,
        namespace=parts[-2] if len(parts) >= 2 else DEFAULT_NAMESPACE,
        model=model,
        tag=tag or DEFAULT_TAG,
    )
    for kind in ("host", "namespace", "model", "tag"):
        _check_part(text, kind, getattr(name, kind))
    return name


def _check_part(text: str, kind: str, value: str) -> None:
    pattern, limit, allowed = _PART[kind]
    if not value:
        raise InvalidNameError(f"invalid model name {text!r}: the {kind} is empty")
    if len(value) > limit:
        raise InvalidNameError(f"invalid model name {text!r}: the {kind} is longer than {limit} characters")
    if not pattern.fullmatch(value):
        raise InvalidNameError(f"invalid model name {text!r}: the {kind} {value!r} may hold only {allowed}, "
                               f"and must start with a letter, digit or '_'")


def name_from_path(parts: tuple[str, ...]) -> ModelName | None:
    """The name of a manifest at `manifests/<host>/<namespace>/<model>/<tag>`, None if not valid."""
    if len(parts) != 4:
        return None
    name = ModelName(*parts)
    try:
        for kind in ("host", "namespace", "model", "tag"):
            _check_part("", kind, getattr(name, kind))
    except InvalidNameError:
        return None
    return name
