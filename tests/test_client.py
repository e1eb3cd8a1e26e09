"""`ossy.client.Client` against a live server: the native routes with the stub engine and a real
model store holding a tiny model; errors (`{"error": ...}` bodies and mid-stream error lines)
become OssyErrors. Also `LocalServer` / `connect` (the CLI's in-process mode) and `base_url`.

`live_server` (also used by test_cli_run.py) serves `ossy.server.create_app` over `StubEngine` in a background thread on a free loopback port, OSSY_HOME in a temp directory.
"""

from __future__ import annotations

import functools
import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import require

from ossy.client import Client, base_url, server_running
from ossy.client.local import LocalServer, connect
from ossy.errors import NotFoundError, OssyError

VOCAB = Path(__file__).resolve().parents[2] / "shared" / "vocab" / "o200k_base.tiktoken"
REPLY = ("<|channel|>analysis<|message|>The user greets me.<|end|>"
         "<|start|>assistant<|channel|>final<|message|>Hello! How can I help?<|return|>")


@functools.cache
def tokenizer():
    import ossy.tokenizer

    return ossy.tokenizer.load(VOCAB)


@dataclass
class Live:
    host: str
    engine: object
    library: object
    home: Path


def respond(prompt_text: str, request) -> str:
    """The stub model: echoes what it was asked so tests can see the prompt it got."""
    last = prompt_text.rsplit("<|start|>user<|message|>", 1)[-1].split("<|end|>", 1)[0]
    if "json" in last.lower():
        return '<|channel|>analysis<|message|>JSON wanted.<|end|><|start|>assistant<|channel|>final<|message|>{"ok": true}<|return|>'
    return ("<|channel|>analysis<|message|>The user greets me.<|end|>"
            f"<|start|>assistant<|channel|>final<|message|>Hello! You said: {last}<|return|>")


@pytest.fixture(scope="session")
def live_server(tmp_path_factory):
    """A live native-API server over the stub engine, with models 'tiny' (SYSTEM, PARAMETER,
    LICENSE) in a temp OSSY_HOME."""
    require(VOCAB.is_file(), "../shared/vocab is not beside the checkout")
    from store_util import make_checkpoint
    from stub_engine import StubEngine

    from ossy.chat.models import StoreResolver
    from ossy.modelfile import parse
    from ossy.server import create_app
    from ossy.store import Library, Store, create

    root = tmp_path_factory.mktemp("live")
    home = root / "home"
    library = Library(Store(home / "models"))
    checkpoint = make_checkpoint(root / "gpt-oss-tiny")
    modelfile = parse(f"FROM {checkpoint}\nPARAMETER temperature 0.7\nSYSTEM You are terse.\n"
                      "LICENSE \"\"\"Apache License\nVersion 2.0, January 2004\nmore\"\"\"\n", check_template=False)
    create(library, "tiny", modelfile, base_dir=root)
    engine = StubEngine(tokenizer(), respond)
    resolver = StoreResolver(library, load_tokenizer=lambda _: tokenizer())
    with LocalServer(create_app(engine, resolver, library)) as server:
        yield Live(server.host, engine, library, home)


@pytest.fixture
def client(live_server):
    with Client(live_server.host, timeout=30) as c:
        yield c


# ---- against the live server --------------------------------------------------------------------


def test_chat_streams_chunks_with_thinking_content_and_stats(client, live_server):
    chunks = list(client.chat("tiny", [{"role": "user", "content": "hi"}]))
    assert len(chunks) > 3 and chunks[-1]["done"] and not any(c["done"] for c in chunks[:-1])
    thinking = "".join(c["message"].get("thinking") or "" for c in chunks)
    content = "".join(c["message"]["content"] for c in chunks)
    assert thinking == "The user greets me." and content == "Hello! You said: hi"
    for key in ("total_duration", "load_duration", "prompt_eval_count", "prompt_eval_duration", "eval_count",
                "eval_duration"):
        assert key in chunks[-1]


def test_chat_and_generate_not_streamed(client):
    reply = client.chat("tiny", [{"role": "user", "content": "yo"}], stream=False, options={"temperature": 0})
    assert reply["done"] and reply["message"]["content"] == "Hello! You said: yo"
    reply = client.generate("tiny", "hey", stream=False)
    assert reply["response"] == "Hello! You said: hey" and reply["thinking"] == "The user greets me."
    assert "".join(c["response"] for c in client.generate("tiny", "x")) == "Hello! You said: x"


def test_show_tags_ps_unload_create_copy_delete(client, live_server):
    info = client.show("tiny")
    assert "You are terse." in info["system"] and "temperature" in info["parameters"]
    assert "tiny:latest" in [m["name"] for m in client.tags()]
    client.load("tiny")
    assert [m["name"] for m in client.ps()] == ["tiny:latest"]
    assert client.unload("tiny")["done_reason"] == "unload"
    assert client.ps() == []
    client.create("tiny-copy", from_="tiny", system="Be kind.", parameters={"top_k": 5},
                  messages=[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}])
    created = client.show("tiny-copy")
    assert created["system"] == "Be kind." and "top_k" in created["parameters"]
    assert [m["content"] for m in created["messages"]] == ["hi", "hello"]
    statuses = [c["status"] for c in client.create("tiny-copy2", from_="tiny", stream=True)]
    assert statuses[-1] == "success"
    client.copy("tiny-copy", "tiny-copy3")
    for name in ("tiny-copy", "tiny-copy2", "tiny-copy3"):
        client.delete(name)
    assert not {"tiny-copy:latest", "tiny-copy3:latest"} & {m["name"] for m in client.tags()}


def test_server_errors_become_ossy_errors(client):
    with pytest.raises(NotFoundError, match="not found"):
        client.show("nope")
    with pytest.raises(NotFoundError, match="not found"):
        list(client.chat("nope", [{"role": "user", "content": "hi"}]))
    with pytest.raises(OssyError, match="options.temperature"):
        client.chat("tiny", [{"role": "user", "content": "hi"}], stream=False, options={"temperature": "hot"})


def test_nothing_listening_is_a_one_line_error():
    with Client("127.0.0.1:9", timeout=2) as c:
        with pytest.raises(OssyError, match="could not reach"):
            c.version()
    assert not server_running("127.0.0.1:9")


def test_version_and_probe(client, live_server):
    assert client.version() and server_running(live_server.host)


# ---- a fake server for what the stub cannot do: an error line in the middle of a stream -------


class _Fake(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        self._json(200, {"version": "0.0.1-fake"})

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.end_headers()
        self.wfile.write(b'{"message":{"role":"assistant","content":"par"},"done":false}\n')
        self.wfile.write(b'{"error":"the engine failed"}\n')

    def _json(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def fake_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Fake)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_an_error_line_mid_stream_raises_after_the_chunks_before_it(fake_server):
    with Client(fake_server, timeout=5) as c:
        seen = []
        with pytest.raises(OssyError, match="the engine failed"):
            for chunk in c.chat("m", [{"role": "user", "content": "x"}]):
                seen.append(chunk["message"]["content"])
        assert seen == ["par"]


def test_connect_uses_a_running_server_and_otherwise_starts_one_in_process(fake_server, live_server):
    with connect(fake_server, app_factory=lambda: pytest.fail("must not build an app")) as c:
        assert c.version() == "0.0.1-fake"
    from fastapi import FastAPI

    app = FastAPI()
    app.get("/api/version")(lambda: {"version": "in-process"})
    with connect("127.0.0.1:9", app_factory=lambda: app) as c:
        assert c.version() == "in-process" and c.base_url != base_url("127.0.0.1:9")


def test_base_url():
    assert base_url("127.0.0.1:11434") == "http://127.0.0.1:11434"
    assert base_url("0.0.0.0:8080") == "http://127.0.0.1:8080"
    assert base_url(":9000") == "http://127.0.0.1:9000"
    assert base_url("example.com") == "http://example.com:11434"
    assert base_url("https://example.com:443/") == "https://example.com:443"
    assert base_url("[::1]:5") == "http://[::1]:5"
