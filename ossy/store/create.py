"""Building a stored model from a Modelfile (`ollama create`), and the Modelfile of a stored model.

Owns: resolving FROM (a checkpoint directory or a GGUF file, relative to the Modelfile's
directory; a model name in either store), a checkpoint or GGUF given as uploaded blobs
(`create_from_blobs`: /api/create's `files`), refusing a TEMPLATE that does not parse, copying
checkpoint files into blobs (a GGUF into one model layer, as Ollama stores it), the
gpt-oss defaults a bare checkpoint gets (`ossy.modelfile.gptoss_defaults`: the library
TEMPLATE, `temperature 1`, the Apache-2.0 LICENSE), the layers each instruction makes and how
they combine with a base model's (Ollama's rules: TEMPLATE, SYSTEM and MESSAGE replace,
PARAMETERs merge name by name, LICENSEs add up; TOOLS, ossy's own, is not inherited: tools act on
the user's machine, so a model offers them only when its own Modelfile says so), the config blob, and `modelfile_of`, the
inverse used by `show --modelfile`.
Does not own: Modelfile syntax (`ossy.modelfile`), blob and manifest writing (`ossy.store.store`)
or any output (progress goes to a `Progress`).

Config blob (Ollama's ConfigV2): model_format ("safetensors", or the base's), model_family
"gptoss", model_families, model_type (parameter count as Ollama shows it, "20.9B"), file_type
(the experts' precision, "MXFP4"), context_length, requires, and, as in Ollama, architecture and
os naming the platform that built it (e.g. "amd64", "linux"), plus rootfs.diff_ids.
"""

from __future__ import annotations

import json
import platform
import sys
import tempfile
from pathlib import Path

from ossy.errors import NotFoundError, OssyError
from ossy.format import human_number
from ossy.modelfile import Modelfile, gptoss_defaults
from ossy.store import manifest as mt
from ossy.store.files import StoreLock
from ossy.store.manifest import Layer, Manifest
from ossy.store.names import InvalidNameError, ModelName, parse_name
from ossy.store.store import Counter, Library, Model, Progress, Transaction, disk_space, safe_relative
from ossy.template import TemplateError
from ossy.template import parse as parse_template

CHECKPOINT_SUFFIXES = (".json", ".safetensors", ".jinja")  # what a checkpoint directory keeps
GGUF_MAGIC = b"GGUF"
NAME_MAX = 255  # bytes of a file name (Linux)


def create(library: Library, name: str, modelfile: Modelfile, *, base_dir: Path, progress: Progress | None = None) -> Model:
    """Store the model `modelfile` describes as `name`; FROM paths are relative to `base_dir`."""
    progress = progress or Progress()
    target = parse_name(name)
    if modelfile.adapters:
        raise OssyError("ADAPTER is not supported yet: merge the adapter into the checkpoint first")
    source = _resolve_from(library, modelfile.from_, base_dir)
    return create_from(library, target, modelfile, source, progress)


def create_from_blobs(library: Library, target: ModelName, modelfile: Modelfile, files: dict,
                      progress: Progress | None = None) -> Model:
    """Store `target` from checkpoint files already uploaded as blobs: {file name: digest}; or
    from one uploaded GGUF file."""
    store = library.store
    # the store lock, shared, from the check of each blob to the commit: gc cannot take them away
    with StoreLock(store.root).shared(), tempfile.TemporaryDirectory(prefix="ossy-create-") as tmp:
        for name, digest in files.items():
            rel = safe_relative(name) if isinstance(name, str) else None
            if rel is None or len(rel.parts) != 1 or "\0" in name or len(name.encode()) > NAME_MAX:
                raise OssyError(f"files: {name!r} is not a plain file name")
            if rel.suffix == ".gguf" and len(files) > 1:
                raise OssyError(f"files: {name} is GGUF: send it alone (a GGUF is the whole model)")
            if rel.suffix not in (*CHECKPOINT_SUFFIXES, ".gguf"):
                raise OssyError(f"files: {name} is not part of a checkpoint (expected "
                                f"{', '.join(CHECKPOINT_SUFFIXES)} files)")
            if not (isinstance(digest, str) and mt.valid_digest(digest)) or not store.blob_path(digest).is_file():
                raise OssyError(f"files: blob {digest!r} for {name} not found; upload it first with "
                                f"POST /api/blobs/{digest}")
            link = Path(tmp) / rel
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(store.blob_path(digest).resolve())
            if rel.suffix == ".gguf":
                return create_from(library, target, modelfile, link, progress)
        return create_from(library, target, modelfile, Path(tmp), progress)


def create_from(library: Library, target: ModelName, modelfile: Modelfile, source: Path | Model,
                progress: Progress | None = None) -> Model:
    """Store `target` from a resolved FROM: a checkpoint directory, a GGUF file or a stored model."""
    progress = progress or Progress()
    check_template(modelfile.template)
    progress.status("gathering model components")
    needed = _checkpoint_bytes(source) if isinstance(source, Path) else \
        (source.size if source.store is not library.store else 0)
    with disk_space(library.store, f"model '{target}'", needed), library.store.transaction() as tx:
        if isinstance(source, Path):
            weights, config = _checkpoint_layers(tx, source, progress)
            metadata = _metadata(tx, modelfile.with_defaults(gptoss_defaults()), [], progress)
        else:
            library.bring(source, tx, progress)
            weights = [x for x in source.manifest.layers if x.media_type not in mt.METADATA]
            config = dict(source.config)
            metadata = _metadata(tx, modelfile, source.manifest.layers, progress)
        layers = weights + metadata
        if modelfile.requires:
            config["requires"] = modelfile.requires
        config["rootfs"] = {"type": "layers", "diff_ids": [x.digest for x in layers]}
        config_layer, _ = tx.put(mt.CONFIG, _json(config))
        progress.status("writing manifest")
        return tx.commit(target, Manifest(config_layer, tuple(layers)).to_json())


# -- FROM --------------------------------------------------------------------------------------
def _resolve_from(library: Library, value: str, base_dir: Path) -> Path | Model:
    """The checkpoint directory or stored model FROM names (Ollama: an existing path wins)."""
    path = Path(value).expanduser()
    path = path if path.is_absolute() else base_dir / path
    if path.is_dir():
        return path
    if path.is_file():
        if not _is_gguf(path):
            raise OssyError(f"FROM {value}: not a checkpoint directory or GGUF file")
        return path
    try:
        model = library.find(value)
    except InvalidNameError:
        model = None
    if model is None:
        raise NotFoundError(f"FROM {value}: no such checkpoint directory ({path}) or model (see 'ossy list')")
    return model


def _is_gguf(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == GGUF_MAGIC


def _checkpoint_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir()
                  if p.suffix in CHECKPOINT_SUFFIXES and p.is_file() and not p.name.startswith("."))


def _checkpoint_bytes(source: Path) -> int:
    return source.stat().st_size if source.is_file() else sum(p.stat().st_size for p in _checkpoint_files(source))


def check_template(template: str | None) -> None:
    """A TEMPLATE that does not parse is refused when the model is created, not at every chat."""
    if template is None:
        return
    try:
        parse_template(template)
    except TemplateError as e:
        raise OssyError(f"TEMPLATE does not parse: {e}") from None


def _checkpoint_layers(tx: Transaction, directory: Path, progress: Progress) -> tuple[list[Layer], dict]:
    """Copy a checkpoint's files into blobs (one layer each) and describe it in a config."""
    from ossy.model.weights import Checkpoint  # lazy: torch, unneeded by `ossy list`

    checkpoint = Checkpoint.open(directory)  # refuses what is not a valid gpt-oss checkpoint (or GGUF)
    if directory.is_file():  # a GGUF: one model layer, as Ollama stores it
        counter = Counter(progress, "copying model file", directory.stat().st_size)
        return [Layer(mt.GGUF, *_copy_file(tx, directory, counter))], _checkpoint_config(checkpoint, "gguf")
    files = _checkpoint_files(checkpoint.path)
    counter = Counter(progress, "copying model files", sum(p.stat().st_size for p in files))
    layers = [Layer(mt.CHECKPOINT_FILE, *_copy_file(tx, p, counter), name=p.name) for p in files]
    return layers, _checkpoint_config(checkpoint)


def _copy_file(tx: Transaction, file: Path, counter: Counter) -> tuple[str, int]:
    """(digest, size) of `file` staged as a blob. A file that already is one of this store's
    blobs (a `checkpoint_dir` link) is taken by its name, without reading it."""
    real = file.resolve()
    if real.parent == tx.store.blobs.resolve() and real.name.startswith("sha256-"):
        size = real.stat().st_size
        counter.advance(size)
        return real.name.replace("-", ":", 1), size
    with open(file, "rb") as f:
        return tx.put_stream(f, counter)


def _checkpoint_config(checkpoint, model_format: str = "safetensors") -> dict:
    from ossy.model.inspect import count_parameters  # lazy: torch, unneeded by `ossy list`

    return {
        "model_format": model_format,
        "model_family": "gptoss",
        "model_families": ["gptoss"],
        "model_type": human_number(count_parameters(checkpoint.config).total),
        "file_type": "MXFP4" if checkpoint.mxfp4 else checkpoint.expert_precision,
        "context_length": checkpoint.config.context_length,
        "architecture": {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine()),
        "os": sys.platform,
    }


# -- instructions -> layers --------------------------------------------------------------------
def _metadata(tx: Transaction, modelfile: Modelfile, base: list[Layer] | tuple[Layer, ...], progress: Progress) -> list[Layer]:
    """The metadata layers: the base's, with what the Modelfile sets replacing or adding to them."""
    layers = {t: [x for x in base if x.media_type == t] for t in mt.METADATA if t != mt.TOOLS}
    layers[mt.TOOLS] = []  # never inherited (module docstring)

    def put(media_type: str, data: bytes) -> Layer:
        layer, new = tx.put(media_type, data)
        progress.status(f"{'creating new' if new else 'using existing'} layer {layer.digest}")
        return layer

    if modelfile.template is not None:
        layers[mt.TEMPLATE] = [put(mt.TEMPLATE, modelfile.template.encode())]
    if modelfile.system is not None:
        layers[mt.SYSTEM] = [put(mt.SYSTEM, modelfile.system.encode())]
    if modelfile.parameters:
        inherited = json.loads(tx.read(layers[mt.PARAMS][-1])) if layers[mt.PARAMS] else {}
        layers[mt.PARAMS] = [put(mt.PARAMS, _json({**inherited, **modelfile.parameters}))]
    if modelfile.messages:
        messages = [{"role": role, "content": content} for role, content in modelfile.messages]
        layers[mt.MESSAGES] = [put(mt.MESSAGES, _json(messages))]
    if modelfile.tools:
        layers[mt.TOOLS] = [put(mt.TOOLS, _json(list(modelfile.tools)))]
    for text in modelfile.licenses:
        layer = put(mt.LICENSE, text.encode())
        if layer.digest not in {x.digest for x in layers[mt.LICENSE]}:
            layers[mt.LICENSE].append(layer)
    return [x for t in mt.METADATA for x in layers[t]]


def _json(value) -> bytes:
    """Compact JSON with sorted keys and whole floats written as integers, as Go marshals them."""
    def go(v):
        if isinstance(v, float) and v.is_integer():
            return int(v)
        if isinstance(v, dict):
            return {k: go(x) for k, x in v.items()}
        if isinstance(v, list):
            return [go(x) for x in v]
        return v

    return json.dumps(go(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


# -- stored model -> Modelfile -----------------------------------------------------------------
def modelfile_of(model: Model, from_: str) -> Modelfile:
    """The Modelfile that rebuilds `model` from `from_` (its checkpoint directory or a name)."""
    return Modelfile(
        from_=from_,
        parameters=model.parameters,
        template=model.template,
        system=model.system,
        licenses=model.licenses,
        messages=[(m["role"], m["content"]) for m in model.messages],
        requires=model.config.get("requires"),
        tools=list(model.tools or []),
    )
