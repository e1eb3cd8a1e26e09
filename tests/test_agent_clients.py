"""Real agent clients against `ossy serve` on loopback, installed from npm (a test skips only
when npm cannot reach its registry), each completing one session with the bundled nano, given the
context an agent client needs (nano's num_ctx raised to 64k in a derived model, as the README
says):
- Claude Code 2.1.197: `claude -p` with ANTHROPIC_BASE_URL pointed at ossy (about 30,000 prompt
  tokens through /v1/messages);
- Codex CLI 0.171.0: `codex exec` with a custom provider whose wire_api is "responses" (about
  14,000 prompt tokens through /v1/responses, streamed, with its namespace and web_search tools).
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
CODEX = "@openai/codex@0.171.0"
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


CODEX_CONFIG = """model = "nano-agent"
model_provider = "ossy"

[model_providers.ossy]
name = "ossy"
base_url = "{url}/v1"
wire_api = "responses"
env_key = "OSSY_API_KEY"
"""


def test_codex_completes_a_session_with_nano(served, tmp_path):
    codex = npm_client(CODEX, "codex")
    url, proc = served
    work, home = tmp_path / "project", tmp_path / "codex-home"
    work.mkdir()
    home.mkdir()
    (home / "config.toml").write_text(CODEX_CONFIG.format(url=url))
    env = {"PATH": "/usr/bin:/bin:/usr/local/bin", "HOME": str(tmp_path), "CODEX_HOME": str(home),
           "OSSY_API_KEY": "ossy"}
    done = subprocess.run([str(codex), "exec", "--json", "--skip-git-repo-check", "What is the capital of France?"],
                          cwd=work, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    answers = [e["item"]["text"] for e in events if e["type"] == "item.completed" and e["item"]["type"] == "agent_message"]
    assert answers and answers[-1].strip(), events
    usage = next(e["usage"] for e in events if e["type"] == "turn.completed")
    assert usage["input_tokens"] > 10_000 and usage["output_tokens"] > 0  # ossy read Codex's whole prompt
    assert not [e for e in events if e["type"] in ("turn.failed", "error")], events
