"""Model names -> `ResolvedModel`, from the model store.

Owns: `StoreResolver` (the `ModelResolver` the server and the in-process CLI use) and
`memory_of` (a model's memory estimate at the num_ctx its requests get by default). Harmony or
template: a model renders with `ossy.harmony` when it has no TEMPLATE or the gpt-oss library one
(`gptoss_defaults()`); any other TEMPLATE is a custom one. Tokenizers are loaded once per
checkpoint directory.
Does not own: the store (`ossy.store`) or loading weights (the engine, from `ModelRef.checkpoint`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from ossy.chat.options import resolve_options
from ossy.engine.protocol import ModelRef, ResolvedModel
from ossy.errors import OssyError
from ossy.store import Library, Model
from ossy.store.show import capabilities, details, library_template
from ossy.tokenizer import load


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
                    if checkpoint is None:
                        raise OssyError(f"model '{model.name}' has no weights ossy can run "
                                        f"(neither a checkpoint nor a GGUF layer)")
                    self._tokenizers[key] = load(checkpoint)  # a GGUF carries its vocabulary
            return self._tokenizers[key]


def memory_of(resolver, name: str, estimate: Callable) -> Callable:
    """config -> `estimate(config, num_ctx)` at the num_ctx a request to `name` gets when it sets
    none (its PARAMETER num_ctx, else OSSY_CONTEXT_LENGTH, else the default; capped at the
    model's context): the memory `ossy show --verbose` and /api/show report."""

    def of(config):
        parameters = resolver.resolve(name).parameters  # a `ModelResolver`'s: OSSY_CONTEXT_LENGTH merged in
        return estimate(config, resolve_options(parameters, {}, context_length=config.context_length).num_ctx)

    return of
