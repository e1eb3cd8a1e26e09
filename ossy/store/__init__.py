"""The model store: where models live on disk, in Ollama's layout, and how they get there.

Owns: model names (`names`), manifests and layer media types (`manifest`), crash-safe writes
(`files`), the ossy and read-only Ollama stores (`store`), and building a model from a
Modelfile (`create`). Does not own: Modelfile syntax (`ossy.modelfile`), loading weights
(`ossy.model.weights`, which opens `Store.checkpoint_dir(model)`), or CLI output.

Layout of a models directory (ossy's is `settings().models`, Ollama's `settings().ollama_models`):
    blobs/sha256-<hex>                                   content-addressed blobs
    manifests/<host>/<namespace>/<model>/<tag>           Docker v2 manifests (JSON)
    checkpoints/<key>/<file> -> ../../blobs/sha256-<hex> runnable checkpoint directories (ossy only)
    .lock                                                writers share it; gc takes it alone
"""

from ossy.store.create import create, modelfile_of
from ossy.store.names import InvalidNameError, ModelName, parse_name
from ossy.store.store import Library, Model, Progress, ReadOnlyError, Store

__all__ = [
    "InvalidNameError",
    "Library",
    "Model",
    "ModelName",
    "Progress",
    "ReadOnlyError",
    "Store",
    "create",
    "modelfile_of",
    "parse_name",
]
