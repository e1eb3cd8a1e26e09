"""Writing a trained model as a standard gpt-oss checkpoint directory.

Owns: `export`, which writes config.json and model.safetensors (experts quantized to MXFP4
`*_blocks`/`*_scales` by `ossy.model.weights.save_checkpoint`), the tokenizer.json, and the
Modelfile nano is created from (a num_predict cap so a confused model stops in seconds rather
than running on to num_ctx, greedy decoding by default; no TOOLS: a plain chat does not pay for
2,500 tokens of tool schemas, and `--tools` offers them, as `make demo` does).
Does not own: the checkpoint format (`ossy.model.weights`) or training.
"""

from __future__ import annotations

from pathlib import Path

from ossy.model.weights import save_checkpoint
from ossy.modelfile import Modelfile
from ossy.train.model import TrainableGptOss

NANO_PARAMETERS = {"temperature": 0.0, "num_ctx": 8192, "num_predict": 400}


def modelfile() -> Modelfile:
    return Modelfile(from_=".", parameters=dict(NANO_PARAMETERS))


def export(model: TrainableGptOss, tokenizer_json: str, path: str | Path) -> Path:
    """Write the checkpoint directory `path` (it must not exist or be empty)."""
    path = save_checkpoint(path, model.config, model.tensors(), mxfp4=True)
    (path / "tokenizer.json").write_text(tokenizer_json)
    (path / "Modelfile").write_text(modelfile().to_text())
    return path
