"""Model names -> `ResolvedModel`, from the model store.

Owns: `StoreResolver` (the `ModelResolver` the server and the in-process CLI use) and the
Ollama-shaped `details` of a stored model. Harmony or template: a model renders with
`ossy.harmony` when it has no TEMPLATE or the gpt-oss library one (`gptoss_defaults()`); any
other TEMPLATE is a custom one. Tokenizers are loaded once per checkpoint directory.
Does not own: the store (`ossy.store`) or loading weights (the engine, from `ModelRef.checkpoint`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import cache

from ossy.engine.protocol import ModelRef, ResolvedModel
from ossy.store import Library, Model


@cache
def library_template() -> str:
    from ossy.modelfile import gptoss_defaults

    return gptoss_defaults().template


def details(model: Model) -> dict:
    """Ollama's `details` object from the model's config blob."""
    c = model.config
    return {"parent_model": "", "format": c.get("model_format") or "safetensors",
            "family": c.get("model_family") or "gptoss",
            "families": c.get("model_families") or [c.get("model_family") or "gptoss"],
            "parameter_size": c.get("model_type") or "", "quantization_level": c.get("file_type") or ""}


def capabilities(model: Model) -> tuple[str, ...]:
    c = model.config
    if c.get("capabilities"):
        return tuple(c["capabilities"])
    template = model.template
    if template is None or template == library_template():
        return ("completion", "tools", "thinking")
    return ("completion",) + ("tools",) * (".Tools" in template) + ("thinking",) * (".Think" in template)


def _weights(model: Model):
    """What the loader opens: the checkpoint directory of an ossy-stored checkpoint, or the GGUF
    blob (in either store, in place); None when the model has neither."""
    if model.is_checkpoint and not model.store.read_only:
        return model.store.checkpoint_dir(model)
    if model.is_gguf:
        return model.store.gguf_file(model)
    return None


class StoreResolver:
    """`resolve(name)` through a `Library`; `load_tokenizer(checkpoint_dir)` makes the tokenizer
    (default `ossy.tokenizer.load`, which reads the checkpoint's tokenizer.json);
    `default_num_ctx` (OSSY_CONTEXT_LENGTH) is the num_ctx of models whose Modelfile sets none."""

    def __init__(self, library: Library, load_tokenizer: Callable | None = None,
                 default_num_ctx: int | None = None) -> None:
        self.library = library
        self._load_tokenizer = load_tokenizer
        self.default_num_ctx = default_num_ctx
        self._tokenizers: dict[str, object] = {}
        self._lock = threading.Lock()

    def resolve(self, name: str) -> ResolvedModel:
        model = self.library.get(name)  # NotFoundError
        checkpoint = _weights(model)
        template = model.template
        return ResolvedModel(
            ref=ModelRef(str(model.name), model.digest, checkpoint, model.config.get("context_length")),
            tokenizer=self._tokenizer(checkpoint, model),
            template=template,
            harmony=template is None or template == library_template(),
            system=model.system,
            parameters={**({"num_ctx": self.default_num_ctx} if self.default_num_ctx else {}), **model.parameters},
            messages=[{"role": m["role"], "content": m["content"]} for m in model.messages],
            licenses=model.licenses,
            capabilities=capabilities(model),
            details=details(model),
            size=model.size,
            modified=model.modified,
        )

    def _tokenizer(self, checkpoint, model: Model):
        key = str(checkpoint)
        with self._lock:
            if key not in self._tokenizers:
                if self._load_tokenizer is not None:
                    self._tokenizers[key] = self._load_tokenizer(checkpoint)
                else:
                    from ossy.errors import OssyError
                    from ossy.tokenizer import load

                    if checkpoint is None:
                        raise OssyError(f"model '{model.name}' has no weights ossy can run "
                                        f"(neither a checkpoint nor a GGUF layer)")
                    self._tokenizers[key] = load(checkpoint)  # a GGUF carries its vocabulary
            return self._tokenizers[key]
