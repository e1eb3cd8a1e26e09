"""Manifests and layers: the Docker v2 image manifest Ollama uses, and its layer media types.

Owns: the media types (Ollama's, plus ossy's checkpoint-file and tools layers), `Layer` and
`Manifest` with their JSON form, and `digest_of`.
Does not own: where manifests and blobs are kept (`ossy.store.store`).

A manifest (docs/reference/ollama-reference.md §4):
    {"schemaVersion": 2, "mediaType": MANIFEST,
     "config": {"mediaType": CONFIG, "digest": "sha256:<hex>", "size": n},
     "layers": [{"mediaType": ..., "digest": ..., "size": ..., "name": ...}, ...]}
A gpt-oss checkpoint is stored as one CHECKPOINT_FILE layer per file, its path relative to the
checkpoint directory in the layer's `name` (the field Ollama uses for tensor layers).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass

from ossy.errors import OssyError

MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG = "application/vnd.docker.container.image.v1+json"

_OLLAMA = "application/vnd.ollama.image."
GGUF = _OLLAMA + "model"
TEMPLATE = _OLLAMA + "template"
SYSTEM = _OLLAMA + "system"
PARAMS = _OLLAMA + "params"
LICENSE = _OLLAMA + "license"
MESSAGES = _OLLAMA + "messages"
ADAPTER = _OLLAMA + "adapter"
CHECKPOINT_FILE = "application/vnd.ossy.checkpoint.file"
TOOLS = "application/vnd.ossy.tools"

# Layers that come from a Modelfile instruction rather than from the weights, in manifest order.
METADATA = (TEMPLATE, SYSTEM, PARAMS, MESSAGES, TOOLS, LICENSE)


_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def valid_digest(digest: str) -> bool:
    return bool(_DIGEST.fullmatch(digest))


@dataclass(frozen=True)
class Layer:
    media_type: str
    digest: str  # "sha256:<64 hex>"
    size: int
    name: str | None = None  # CHECKPOINT_FILE: the file's path inside the checkpoint

    @classmethod
    def of(cls, media_type: str, data: bytes, name: str | None = None) -> "Layer":
        return cls(media_type, digest_of(data), len(data), name)

    def to_dict(self) -> dict:
        d = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.name is not None:
            d["name"] = self.name
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Layer":
        digest = d["digest"]
        if not (isinstance(digest, str) and valid_digest(digest)):
            raise ValueError(f"bad digest {digest!r}")
        return cls(str(d["mediaType"]), digest, int(d["size"]), d.get("name"))


@dataclass(frozen=True)
class Manifest:
    config: Layer
    layers: tuple[Layer, ...]

    def to_json(self) -> bytes:
        return json.dumps({
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "config": self.config.to_dict(),
            "layers": [layer.to_dict() for layer in self.layers],
        }, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: bytes, source: str) -> "Manifest":
        try:
            d = json.loads(data)
            return cls(Layer.from_dict(d["config"]), tuple(Layer.from_dict(x) for x in d["layers"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise OssyError(f"{source}: corrupt manifest ({exc})") from None

    @property
    def size(self) -> int:
        """Bytes of all blobs, the config included (what `ollama list` shows)."""
        return self.config.size + sum(layer.size for layer in self.layers)

    def of_type(self, media_type: str) -> list[Layer]:
        return [layer for layer in self.layers if layer.media_type == media_type]
