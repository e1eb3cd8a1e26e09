"""What a web page can do to a server on loopback: nothing, unless its origin is allowed.

A real server (stub engine, real store) over loopback; requests are sent as a browser sends
them: `text/plain` "simple" POSTs that need no preflight, preflights, DELETE, and a rebinding
page whose Host header is its own domain. Each refused request must leave the store as it was.
"""

from __future__ import annotations

import hashlib

import httpx
import pytest
from stub_engine import RunningServer, StubEngine, scripted, tiny_library, tokenizer

from ossy.config import settings
from ossy.server import create_app
from ossy.server.guard import Guard, local_host

EVIL = "http://evil.example"
HI = [{"role": "user", "content": "Hi"}]
BLOB = b"uploaded bytes"
BLOB_DIGEST = "sha256:" + hashlib.sha256(BLOB).hexdigest()

# every endpoint that changes something or runs the model: (method, path, JSON body)
MUTATING = [
    ("POST", "/api/chat", {"model": "tiny", "messages": HI, "stream": False}),
    ("POST", "/api/generate", {"model": "tiny", "prompt": "Hi", "stream": False}),
    ("POST", "/api/create", {"model": "tiny", "from": "tiny-terse", "stream": False}),
    ("POST", "/api/copy", {"source": "tiny-terse", "destination": "tiny"}),
    ("DELETE", "/api/delete", {"model": "tiny"}),
    ("POST", f"/api/blobs/{BLOB_DIGEST}", None),
    ("POST", "/api/show", {"model": "tiny"}),
    ("POST", "/v1/chat/completions", {"model": "tiny", "messages": HI}),
    ("POST", "/v1/completions", {"model": "tiny", "prompt": "Hi"}),
    ("POST", "/v1/responses", {"model": "tiny", "input": "Hi"}),
]
READING = ["/api/tags", "/api/ps", "/api/version", "/v1/models", "/health"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("guard")
    library, resolver = tiny_library(root, tokenizer())
    s = settings({"OSSY_HOME": str(root / "home"), "OSSY_ORIGINS": "https://app.example, https://*.trusted.example"})
    with RunningServer(create_app(StubEngine(tokenizer(), scripted), resolver, library, settings=s)) as url:
        yield url, library


def state(library) -> dict:
    """What a refused request must not change: each model's manifest digest, and the blobs."""
    return {str(m.name): m.digest for m in library.models()} | \
        {p.name: p.stat().st_size for p in library.store.blobs.iterdir()}


def simple(url, method, path, body, **headers) -> httpx.Response:
    """The request as a page's fetch(..., {mode: "no-cors"}) or a form sends it: text/plain."""
    content = BLOB if body is None else httpx.Request("POST", url, json=body).content
    return httpx.request(method, url + path, content=content, timeout=30,
                         headers={"Content-Type": "text/plain;charset=UTF-8", **headers})


@pytest.mark.parametrize("method,path,body", MUTATING, ids=[f"{m} {p}" for m, p, _ in MUTATING])
def test_a_foreign_page_cannot_use_the_api(server, method, path, body):
    url, library = server
    before = state(library)
    r = simple(url, method, path, body, Origin=EVIL)
    assert r.status_code == 403 and "evil.example" in str(r.json()["error"])
    assert "access-control-allow-origin" not in r.headers
    preflight = httpx.options(url + path, timeout=30, headers={
        "Origin": EVIL, "Access-Control-Request-Method": method, "Access-Control-Request-Headers": "content-type"})
    assert preflight.status_code == 403 and "access-control-allow-origin" not in preflight.headers
    for origin in ("null", "http://localhost.evil.example", "http://127.0.0.1.evil.example:11434"):
        assert simple(url, method, path, body, Origin=origin).status_code == 403
    assert state(library) == before


@pytest.mark.parametrize("method,path,body", MUTATING, ids=[f"{m} {p}" for m, p, _ in MUTATING])
def test_a_rebinding_page_is_refused_by_its_host(server, method, path, body):
    url, library = server
    before = state(library)
    port = url.rsplit(":", 1)[1]
    for host in (f"evil.example:{port}", "evil.example", f"attacker.com:{port}"):
        r = simple(url, method, path, body, Host=host)  # same-origin to the page: no Origin on a GET
        assert r.status_code == 403 and "host" in str(r.json()["error"])
        r = simple(url, method, path, body, Host=host, Origin=f"http://{host}")
        assert r.status_code == 403
    assert state(library) == before


@pytest.mark.parametrize("path", READING)
def test_nothing_can_be_read_by_a_foreign_page(server, path):
    url, _ = server
    port = url.rsplit(":", 1)[1]
    assert httpx.get(url + path, headers={"Origin": EVIL}, timeout=30).status_code == 403
    assert httpx.get(url + path, headers={"Host": f"evil.example:{port}"}, timeout=30).status_code == 403


@pytest.mark.parametrize("origin", ["http://localhost:3000", "http://127.0.0.1:8080", "https://localhost",
                                    "http://[::1]:5173", "app://ossy", "tauri://localhost", "file://",
                                    "vscode-webview://abc", "https://app.example", "https://ui.trusted.example"])
def test_allowed_origins_get_cors(server, origin):
    url, _ = server
    preflight = httpx.options(url + "/api/chat", timeout=30, headers={
        "Origin": origin, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type, authorization, x-stainless-os"})
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == origin
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert preflight.headers["access-control-allow-headers"] == "content-type, authorization, x-stainless-os"
    r = httpx.post(url + "/api/chat", json={"model": "tiny", "messages": HI, "stream": False},
                   headers={"Origin": origin}, timeout=30)
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == origin
    assert r.json()["message"]["content"] == "Hello! How can I help?"
    streamed = httpx.post(url + "/v1/chat/completions", json={"model": "tiny", "messages": HI, "stream": True},
                          headers={"Origin": origin}, timeout=30)
    assert streamed.headers["access-control-allow-origin"] == origin and "[DONE]" in streamed.text


def test_local_names_and_no_origin_pass(server):
    url, library = server
    port = url.rsplit(":", 1)[1]
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"ossy.localhost:{port}", f"box.local:{port}",
                 f"10.0.0.7:{port}", f"[::1]:{port}", f"192.168.1.5:{port}"):
        assert httpx.get(url + "/api/version", headers={"Host": host}, timeout=30).status_code == 200
    same_origin = f"http://localhost:{port}"  # the server's own page
    r = httpx.post(url + "/api/copy", json={"source": "tiny", "destination": "tiny-copy"},
                   headers={"Origin": same_origin, "Host": f"localhost:{port}"}, timeout=30)
    assert r.status_code == 200 and library.find("tiny-copy") is not None
    r = httpx.request("DELETE", url + "/api/delete", json={"model": "tiny-copy"}, timeout=30)  # an SDK: no Origin
    assert r.status_code == 200 and library.find("tiny-copy") is None


def test_the_host_check_applies_to_loopback_connections_only():
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    guard = Guard(app, max_body=100)

    def status(server_address, host):
        import asyncio

        sent = []

        async def send(message):
            sent.append(message)

        async def receive():
            return {"type": "http.request", "body": b"", "more_body": False}

        scope = {"type": "http", "method": "GET", "path": "/api/tags", "scheme": "http",
                 "server": (server_address, 11434), "headers": [(b"host", host.encode())]}
        asyncio.run(guard(scope, receive, send))
        return sent[0]["status"]

    assert status("127.0.0.1", "evil.example:11434") == 403
    assert status("::1", "evil.example") == 403
    assert status("192.168.1.5", "ossy.example.com:11434") == 200  # bound to a LAN address: names are fine
    assert status("127.0.0.1", "localhost:11434") == 200


def test_local_host_names():
    assert all(map(local_host, ["localhost", "127.0.0.1", "a.localhost", "nas.local", "db.internal", "10.1.2.3",
                                "172.16.0.1", "[::1]", "0.0.0.0", "169.254.1.1", "fe80::1"]))
    assert not any(map(local_host, ["evil.example", "8.8.8.8", "localhost.evil.example", "127.0.0.1.nip.io"]))
