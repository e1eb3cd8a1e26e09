"""`make demo`: the whole local pipeline on a small random gpt-oss checkpoint, offline.

Until the bundled, trained nano model exists (issue 8), this demo makes its own checkpoint with
random weights (the real architecture at a small size, MXFP4 experts), then does what a user does
with a downloaded gpt-oss: inspect it, create a named model from a Modelfile, list and show it,
load it from the store and generate. The tokens are meaningless (random weights); every step is
the real code path. Everything is written under a temporary OSSY_HOME that is removed at the end.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from ossy.model.config import GptOssConfig
from ossy.model.weights import save_checkpoint, tensor_shapes

CONFIG = GptOssConfig(
    vocab_size=2048, hidden_size=256, intermediate_size=256, num_hidden_layers=4, num_attention_heads=8,
    num_key_value_heads=2, head_dim=32, num_local_experts=8, num_experts_per_tok=2, sliding_window=128,
    layer_types=("sliding_attention", "full_attention") * 2, rope_scaling_factor=32.0,
    max_position_embeddings=131072, quantization="mxfp4",
)


def random_tensors(config: GptOssConfig, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {name: torch.randn(shape, generator=g) * (0.2 if name.endswith("norm.weight") else 0.05)
            + (1.0 if name.endswith("norm.weight") else 0.0)
            for name, shape in tensor_shapes(config, mxfp4=False).items()}


def ossy(*args: str, env: dict[str, str]) -> None:
    print(f"\n$ ossy {' '.join(args)}", flush=True)
    subprocess.run([sys.executable, "-m", "ossy", *args], env=env, check=True)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="ossy-demo-") as tmp:
        root = Path(tmp)
        checkpoint = root / "gpt-oss-mini"
        save_checkpoint(checkpoint, CONFIG, random_tensors(CONFIG), mxfp4=True)
        (root / "Modelfile").write_text(f"FROM {checkpoint}\nSYSTEM You are a demo.\nPARAMETER temperature 0.7\n")
        env = {**os.environ, "OSSY_HOME": str(root / "home"), "OLLAMA_MODELS": str(root / "no-ollama")}

        ossy("show", str(checkpoint), "--verbose", env=env)
        ossy("create", "mini", "-f", str(root / "Modelfile"), env=env)
        ossy("list", env=env)
        ossy("show", "mini", env=env)

        import ossy as api

        model = api.load(checkpoint, dtype="bfloat16")
        prompt = [1, 2, 3, 4]
        print(f"\n>>> ossy.load(...).generate({prompt}, max_new_tokens=12, temperature=0)")
        print(model.generate(prompt, max_new_tokens=12, temperature=0.0))


if __name__ == "__main__":
    main()
