"""Helpers for the store tests: tiny gpt-oss checkpoints written by ossy (no transformers), a
fake Ollama store laid out as Ollama lays it out, and the real `ossy` command in a subprocess
with OSSY_HOME / OLLAMA_MODELS pointing into a test directory."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import torch

from ossy.model.config import FULL, SLIDING, GptOssConfig
from ossy.model.tensors import tensor_shapes
from ossy.model.weights import save_checkpoint


def tiny_config(vocab_size: int = 101, context: int = 256) -> GptOssConfig:
    return GptOssConfig(vocab_size=vocab_size, hidden_size=64, intermediate_size=32, num_hidden_layers=2,
                        num_attention_heads=4, num_key_value_heads=2, head_dim=16, num_local_experts=4,
                        num_experts_per_tok=2, sliding_window=4, layer_types=(SLIDING, FULL),
                        max_position_embeddings=context)


def make_checkpoint(path: Path, *, vocab_size: int = 101, seed: int = 0, context: int = 256) -> Path:
    """A random MXFP4 gpt-oss checkpoint directory; a large `vocab_size` makes it big."""
    config = tiny_config(vocab_size, context)
    gen = torch.Generator().manual_seed(seed)
    tensors = {name: torch.randn(shape, generator=gen) * 0.1
               for name, shape in tensor_shapes(config, mxfp4=False).items()}
    return save_checkpoint(path, config, tensors, mxfp4=True)


def greedy_tiny_library(root: Path):
    """A `Library` in `root` holding `tiny`: a random checkpoint with the gpt-oss vocabulary size
    (so the real o200k tokenizer's ids fit), `PARAMETER temperature 0`."""
    from ossy.modelfile import parse
    from ossy.store import Library, Store, create

    checkpoint = make_checkpoint(root / "ckpt", vocab_size=201088)
    library = Library(Store(root / "models"))
    create(library, "tiny", parse(f"FROM {checkpoint}\nPARAMETER temperature 0\n"), base_dir=root)
    return library


def _blob(root: Path, data: bytes) -> dict:
    digest = hashlib.sha256(data).hexdigest()
    (root / "blobs").mkdir(parents=True, exist_ok=True)
    (root / "blobs" / f"sha256-{digest}").write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


OLLAMA_TEMPLATE = "{{ if .System }}<|start|>system<|message|>{{ .System }}<|end|>{{ end }}{{ .Prompt }}"
OLLAMA_LICENSE = "Apache License\nVersion 2.0, January 2004\nhttp://www.apache.org/licenses/\n"


def fake_ollama_store(root: Path, name: tuple[str, ...] = ("registry.ollama.ai", "library", "gpt-oss", "20b"),
                      system: str | None = None, gguf: bytes = b"GGUF" + bytes(1000), template: str = OLLAMA_TEMPLATE,
                      params: bytes = b'{"temperature":1}') -> Path:
    """An Ollama models directory holding one model: a GGUF layer (a dummy unless `gguf` is
    given), template, params, license (and system), and a ConfigV2 config blob, exactly where
    Ollama puts them."""
    layers = [
        {"mediaType": "application/vnd.ollama.image.model", **_blob(root, gguf)},
        {"mediaType": "application/vnd.ollama.image.template", **_blob(root, template.encode())},
        {"mediaType": "application/vnd.ollama.image.license", **_blob(root, OLLAMA_LICENSE.encode())},
        {"mediaType": "application/vnd.ollama.image.params", **_blob(root, params)},
    ]
    if system is not None:
        layers.append({"mediaType": "application/vnd.ollama.image.system", **_blob(root, system.encode())})
    config = {"model_format": "gguf", "model_family": "gptoss", "model_families": ["gptoss"],
              "model_type": "20.9B", "file_type": "MXFP4", "architecture": "amd64", "os": "linux",
              "rootfs": {"type": "layers", "diff_ids": [x["digest"] for x in layers]}}
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                           **_blob(root, json.dumps(config).encode())},
                "layers": layers}
    path = root.joinpath("manifests", *name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(manifest))
    return root


def env_for(home: Path, ollama: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OSSY_MODELS", "OLLAMA_MODELS", "OSSY_HOME")}
    return {**env, "OSSY_HOME": str(home), "OLLAMA_MODELS": str(ollama)}


def ossy_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "ossy", *args]


def run_ossy(env: dict[str, str], *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(ossy_command(*args), env=env, cwd=cwd, capture_output=True, text=True, timeout=120)


def snapshot(models: Path) -> dict[str, bytes]:
    """Every file under blobs/ and manifests/ (relative path -> content), temp files left out."""
    return {str(p.relative_to(models)): p.read_bytes()
            for sub in ("blobs", "manifests") if (models / sub).is_dir()
            for p in sorted((models / sub).rglob("*")) if p.is_file() and not p.name.startswith(".tmp-")}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_serving(url: str, proc: subprocess.Popen, seconds: float = 60) -> None:
    """Poll `url`/api/version until the `ossy serve` subprocess `proc` answers."""
    import httpx

    deadline = time.monotonic() + seconds
    while True:
        try:
            if httpx.get(url + "/api/version", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"ossy serve did not start: {proc.stderr.read() if proc.poll() is not None else 'timeout'}")
        time.sleep(0.1)


def kill_create_halfway(env: dict[str, str], name: str, modelfile: Path, blobs: Path) -> int:
    """Start `ossy create NAME -f MODELFILE` and SIGKILL it once it writes a blob; its pid."""
    proc = subprocess.Popen(ossy_command("create", name, "-f", str(modelfile)), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not list(blobs.glob(".tmp-*")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.001)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the create finished before it could be killed"
    assert list(blobs.glob(f".tmp-{proc.pid}-*"))  # it was writing a blob
    return proc.pid
