"""Models the user pulled with Ollama run in ossy straight from Ollama's store: a real Ollama
layout (manifest, config blob, a GGUF model layer in Ollama's own `gptoss` flavour with its
vocabulary, the library TEMPLATE and params layers) served by `ossy serve` as a subprocess, used
by `ossy run` and `/api/chat`, and `ossy show`; the Ollama store is read, never written or copied.
"""

from __future__ import annotations

import json
import subprocess

import gguf_files
import httpx
import pytest
import torch
from store_util import (
    env_for,
    fake_ollama_store,
    free_port,
    ossy_command,
    run_ossy,
    snapshot,
    tiny_config,
    wait_until_serving,
)
from test_gguf import numpy_tensors

from ossy.model.tensors import tensor_shapes
from ossy.model.weights import Checkpoint, save_checkpoint
from ossy.modelfile import gptoss_defaults


@pytest.fixture(scope="module")
def ollama_gguf(tmp_path_factory, shared_dir) -> bytes:
    """A tiny gpt-oss in Ollama's GGUF (o200k vocabulary, so the model's ids are the tokenizer's)."""
    root = tmp_path_factory.mktemp("gguf")
    config = tiny_config(vocab_size=201088).replace(rope_scaling_factor=32.0, original_max_position_embeddings=4096,
                                                    max_position_embeddings=131072)
    gen = torch.Generator().manual_seed(5)
    tensors = {name: (torch.randn(shape, generator=gen) * 0.1).bfloat16()
               for name, shape in tensor_shapes(config, mxfp4=False).items()}
    hf = Checkpoint.open(save_checkpoint(root / "ckpt", config, tensors))
    vocabulary = gguf_files.hf_vocabulary(shared_dir / "vocab" / "gpt-oss" / "tokenizer.json", "ollama")
    gguf_files.write(root / "model.gguf", numpy_tensors(hf), json.loads((hf.path / "config.json").read_text()),
                     "ollama", vocabulary=vocabulary)
    return (root / "model.gguf").read_bytes()


def test_an_ollama_model_runs_from_the_ollama_store(tmp_path, ollama_gguf):
    ollama = fake_ollama_store(tmp_path / "ollama", gguf=ollama_gguf, template=gptoss_defaults().template,
                               params=b'{"temperature":0,"num_predict":32}')  # random weights never stop
    before = snapshot(ollama)
    env = env_for(tmp_path / "home", ollama)
    port = free_port()
    env["OSSY_HOST"] = f"127.0.0.1:{port}"
    url = f"http://127.0.0.1:{port}"

    shown = run_ossy(env, "show", "gpt-oss:20b", "--verbose")
    assert shown.returncode == 0, shown.stderr
    assert "GGUF (Ollama 'gptoss' flavour)" in shown.stdout and "MXFP4" in shown.stdout
    assert "blk.0.ffn_gate_exps.weight" in shown.stdout and "untruncated" in shown.stdout

    proc = subprocess.Popen(ossy_command("serve"), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until_serving(url, proc)
        r = httpx.post(url + "/api/chat", timeout=120, json={
            "model": "gpt-oss:20b", "stream": False, "options": {"num_predict": 8},
            "messages": [{"role": "user", "content": "Say hello."}]})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["done"] and body["eval_count"] > 0 and body["prompt_eval_count"] > 10
        one_shot = subprocess.run(ossy_command("run", "gpt-oss:20b", "Say hello."), env={**env, "TERM": "dumb"},
                                  capture_output=True, text=True, timeout=120)
        assert one_shot.returncode == 0, one_shot.stderr
        ps = httpx.get(url + "/api/ps").json()
        assert [m["name"] for m in ps["models"]] == ["gpt-oss:20b"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert snapshot(ollama) == before  # read in place: nothing written, nothing added
    ossy_blobs = tmp_path / "home" / "models" / "blobs"
    assert not ossy_blobs.exists() or all(p.stat().st_size < len(ollama_gguf) for p in ossy_blobs.iterdir())


def test_pull_a_gguf_model_from_a_registry_then_chat_show_and_list(tmp_path, ollama_gguf):
    from registry_server import Registry

    from ossy.store import manifest as mt

    env = env_for(tmp_path / "home", tmp_path / "no-ollama")
    port = free_port()
    env["OSSY_HOST"] = f"127.0.0.1:{port}"
    url = f"http://127.0.0.1:{port}"
    with Registry() as registry:
        registry.add_model("library", "gpt-oss", "20b", [(mt.GGUF, ollama_gguf),
                                                        (mt.TEMPLATE, gptoss_defaults().template.encode()),
                                                        (mt.PARAMS, b'{"temperature":1}')],
                           config={"model_format": "gguf", "model_family": "gptoss", "file_type": "MXFP4"})
        name = f"{registry.host}/library/gpt-oss:20b"
        proc = subprocess.Popen(ossy_command("serve"), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            wait_until_serving(url, proc)
            with httpx.stream("POST", url + "/api/pull", json={"model": "http://" + name, "insecure": True},
                              timeout=120) as r:
                lines = [json.loads(line) for line in r.iter_lines() if line.strip()]
            assert lines[0] == {"status": "pulling manifest"} and lines[-1] == {"status": "success"}, lines[-1]
            tags = httpx.get(url + "/api/tags").json()["models"]
            assert name in [m["name"] for m in tags]
            r = httpx.post(url + "/api/chat", timeout=120, json={
                "model": name, "stream": False, "options": {"num_predict": 4, "temperature": 0},
                "messages": [{"role": "user", "content": "Hi"}]})
            assert r.status_code == 200 and r.json()["eval_count"] > 0, r.text
            shown = httpx.post(url + "/api/show", json={"model": name}).json()
            assert shown["details"]["format"] == "gguf" and shown["details"]["quantization_level"] == "MXFP4"
        finally:
            proc.terminate()
            proc.wait(timeout=30)
