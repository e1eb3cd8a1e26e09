"""Real agent clients against `ossy serve` on loopback, installed from npm (the test skips only
when npm cannot reach its registry): Claude Code 2.1.197 (`claude -p`, ANTHROPIC_BASE_URL pointed
at ossy) completes one session with the bundled nano, given the context an agent client needs
(about 30,000 prompt tokens: nano's num_ctx raised to 64k in a derived model, as the README says).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from store_util import env_for, free_port, ossy_command, run_ossy, wait_until_serving

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".cache" / "agent-clients"  # npm installs, kept between runs (git ignores .cache/)
CLAUDE_CODE = "@anthropic-ai/claude-code@2.1.197"
UNREACHABLE = ("ENOTFOUND", "EAI_AGAIN", "ECONNREFUSED", "ETIMEDOUT", "ECONNRESET", "network")


def npm_client(package: str, binary: str) -> Path:
    found = CACHE / "node_modules" / ".bin" / binary
    if found.exists():
        return found
    if shutil.which("npm") is None:
        pytest.skip("npm is not installed")
    done = subprocess.run(["npm", "install", "--prefix", str(CACHE), "--no-audit", "--no-fund", package],
                          capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        if any(word in done.stderr for word in UNREACHABLE):
            pytest.skip(f"npm cannot reach its registry: {done.stderr.strip().splitlines()[-1]}")
        raise AssertionError(f"npm install {package} failed:\n{done.stderr[-2000:]}")
    return found


@pytest.fixture
def served(tmp_path):
    env = env_for(tmp_path / "home", tmp_path / "no-ollama")
    port = free_port()
    env["OSSY_HOST"] = f"127.0.0.1:{port}"
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(ossy_command("serve"), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until_serving(url, proc)  # its start stores the bundled nano
        (tmp_path / "Modelfile").write_text("FROM nano\nPARAMETER num_ctx 65536\n")
        created = run_ossy(env, "create", "nano-agent", "-f", str(tmp_path / "Modelfile"))
        assert created.returncode == 0, created.stderr
        yield url, proc
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_claude_code_completes_a_session_with_nano(served, tmp_path):
    claude = npm_client(CLAUDE_CODE, "claude")
    url, proc = served
    work = tmp_path / "project"
    work.mkdir()
    env = {"PATH": "/usr/bin:/bin:/usr/local/bin", "HOME": str(tmp_path / "claude-home"), "ANTHROPIC_BASE_URL": url,
           "ANTHROPIC_API_KEY": "ossy", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_TELEMETRY": "1",
           "DISABLE_AUTOUPDATER": "1"}
    done = subprocess.run([str(claude), "-p", "What is the capital of France?", "--model", "nano-agent",
                           "--output-format", "json"], cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout)
    assert result["type"] == "result" and result["subtype"] == "success" and not result["is_error"], result
    assert result["usage"]["input_tokens"] > 10_000 and result["usage"]["output_tokens"] > 0  # ossy read it all
    assert result["stop_reason"] == "end_turn"
