"""`ossy serve` as a user starts it: a subprocess on a free loopback port (OSSY_HOST), with its
real engine and a temp store; model management only (generation end-to-end needs a model with a
tokenizer, which the lead's tiny-model tests wire)."""

from __future__ import annotations

import signal
import subprocess

import httpx
import ollama
from store_util import env_for, free_port, make_checkpoint, ossy_command, run_ossy, wait_until_serving


def test_ossy_serve_subprocess(tmp_path):
    env = env_for(tmp_path / "home", tmp_path / "ollama")
    port = free_port()
    env["OSSY_HOST"] = f"127.0.0.1:{port}"
    checkpoint = make_checkpoint(tmp_path / "ckpt")
    (tmp_path / "Modelfile").write_text(f"FROM {checkpoint}\n")
    assert run_ossy(env, "create", "tiny", "-f", str(tmp_path / "Modelfile")).returncode == 0
    proc = subprocess.Popen(ossy_command("serve"), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(url, proc)
        client = ollama.Client(host=url)
        assert [m.model for m in client.list().models] == ["nano:latest", "tiny:latest"]  # nano: bundled, listed on a fresh store
        assert client.ps().models == []
        r = httpx.post(url + "/api/chat", json={"model": "nope", "messages": [{"role": "user", "content": "x"}]})
        assert r.status_code == 404 and r.json() == {"error": "model 'nope' not found"}
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
    lines = [line for line in err.splitlines() if "ossy.server" in line]
    assert any('"GET /api/tags" 200' in line for line in lines), err
    assert any('"POST /api/chat" 404' in line for line in lines), err
    assert len([line for line in lines if '"GET /api/ps"' in line]) == 1  # one line per request


def test_serve_rejects_a_bad_host(tmp_path):
    env = env_for(tmp_path / "home", tmp_path / "ollama")
    r = run_ossy(env, "serve", "--host", "127.0.0.1:notaport")
    assert r.returncode == 1 and "invalid host" in r.stderr and "Traceback" not in r.stderr
