"""/api/create over HTTP as Ollama's clients do it: files uploaded to /api/blobs/DIGEST (digest
checked), then named in `files`; `from` a model name; a server directory only below
OSSY_CREATE_ROOT. And CPU work off the event loop: a request being tokenized never holds up
another one."""

from __future__ import annotations

import hashlib
import threading

import httpx
import ollama
import pytest
from store_util import make_checkpoint
from stub_engine import RunningServer, StubEngine, scripted, tokenizer

from ossy.chat.models import StoreResolver
from ossy.config import settings
from ossy.server import create_app
from ossy.store import Library, Store

HI = [{"role": "user", "content": "Hi"}]


@pytest.fixture
def setup(tmp_path):
    checkpoint = make_checkpoint(tmp_path / "outside" / "ckpt")
    root = tmp_path / "allowed"
    inside = make_checkpoint(root / "ckpt", seed=4)
    library = Library(Store(tmp_path / "models"))
    return tmp_path, checkpoint, inside, library


def serving(library, **env):
    s = settings({"OSSY_HOME": "/nonexistent-home", **env})
    return RunningServer(create_app(StubEngine(tokenizer(), scripted),
                                    StoreResolver(library, lambda directory: tokenizer()), library, settings=s))


def test_files_uploaded_as_blobs_make_a_model_that_runs(setup):
    tmp_path, checkpoint, _, library = setup
    with serving(library) as url:
        client = ollama.Client(host=url)
        files = {p.name: client.create_blob(p) for p in sorted(checkpoint.iterdir())}
        for name, digest in files.items():
            assert httpx.head(f"{url}/api/blobs/{digest}").status_code == 200
            assert library.store.blob_path(digest).read_bytes() == (checkpoint / name).read_bytes()
        library.store.gc()  # an upload waits for its create: gc keeps it
        assert all(library.store.blob_path(d).is_file() for d in files.values())
        progress = list(client.create(model="uploaded", files=files, system="Be brief.", stream=True))
        assert progress[-1].status == "success"
        shown = client.show("uploaded")
        assert "SYSTEM Be brief." in shown.modelfile and shown.details.family == "gptoss"
        reply = client.chat(model="uploaded", messages=HI)
        assert reply.message.content == "Hello! How can I help?"
        model = library.get("uploaded")
        assert {layer.name: layer.digest for layer in model.manifest.layers if layer.name} == files
        assert model.store.verify(model) == []


def test_an_upload_that_does_not_match_its_digest_is_dropped(setup):
    _, _, _, library = setup
    with serving(library) as url:
        data = b"the real bytes"
        claimed = "sha256:" + hashlib.sha256(b"other bytes").hexdigest()
        r = httpx.post(f"{url}/api/blobs/{claimed}", content=data)
        assert r.status_code == 400 and "digest mismatch" in r.json()["error"]
        assert httpx.head(f"{url}/api/blobs/{claimed}").status_code == 404
        assert not list(library.store.blobs.glob(".tmp-*")) and not library.store.blob_path(claimed).exists()
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        assert httpx.post(f"{url}/api/blobs/{digest}", content=data).status_code == 201
        assert httpx.post(f"{url}/api/blobs/{digest}", content=data).status_code == 201  # again: the same blob
        assert httpx.head(f"{url}/api/blobs/{digest.replace(':', '-')}").status_code == 200


def test_from_is_a_model_name_and_a_path_only_below_the_allowed_root(setup):
    tmp_path, checkpoint, inside, library = setup
    with serving(library) as url:
        r = httpx.post(f"{url}/api/create", json={"model": "x", "from": str(checkpoint), "stream": False})
        assert r.status_code == 404 and "upload a checkpoint's files" in r.json()["error"]
        assert library.find("x") is None
    with serving(library, OSSY_CREATE_ROOT=str(tmp_path / "allowed")) as url:
        for outside in (str(checkpoint), "../outside/ckpt", str(tmp_path / "allowed" / ".." / "outside" / "ckpt")):
            r = httpx.post(f"{url}/api/create", json={"model": "x", "from": outside, "stream": False})
            assert r.status_code == 404 and r.json()["error"] == (
                f"from: no model '{outside}' or checkpoint directory below {tmp_path / 'allowed'}")
        (tmp_path / "loop").symlink_to(tmp_path / "loop")
        for odd in ("a\u0000b", "../loop", "../loop/x", "x" * 5000):  # a NUL, a symlink loop, a long name
            r = httpx.post(f"{url}/api/create", json={"model": "x", "from": odd, "stream": False})
            assert r.status_code == 404 and "checkpoint directory below" in r.json()["error"], r.text
        for name in ("a\u0000.json", "x" * 300 + ".json"):
            r = httpx.post(f"{url}/api/create", json={"model": "x", "files": {name: "sha256:" + "0" * 64}})
            assert r.status_code == 400 and "not a plain file name" in r.json()["error"]
        r = httpx.post(f"{url}/api/create", json={"model": "inside", "from": "ckpt", "stream": False})
        assert r.status_code == 200, r.text
        r = httpx.post(f"{url}/api/create", json={"model": "copy", "from": "inside", "system": "Hi.", "stream": False})
        assert r.status_code == 200 and library.get("copy").system == "Hi."
        assert library.find("x") is None


def test_tokenizing_a_request_does_not_hold_up_the_others(setup):
    """The tokenizer blocks until /api/version has answered; if the prompt were built on the event
    loop, /api/version could not answer and the chat would time out."""
    tmp_path, checkpoint, _, library = setup
    from ossy.modelfile import parse
    from ossy.store import create

    create(library, "tiny", parse(f"FROM {checkpoint}\n"), base_dir=tmp_path)
    answered, entered = threading.Event(), threading.Event()

    class SlowTokenizer:
        def __init__(self, inner):
            self.inner = inner

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def encode(self, text, **kw):
            if "slow please" in text:
                entered.set()
                assert answered.wait(20), "the event loop was blocked"
            return self.inner.encode(text, **kw)

    s = settings({"OSSY_HOME": str(tmp_path / "home")})
    app = create_app(StubEngine(tokenizer(), scripted), StoreResolver(library, lambda d: SlowTokenizer(tokenizer())),
                     library, settings=s)
    with RunningServer(app) as url:
        result = {}
        chat = threading.Thread(target=lambda: result.update(r=httpx.post(url + "/api/chat", timeout=30, json={
            "model": "tiny", "messages": [{"role": "user", "content": "slow please"}], "stream": False})))
        chat.start()
        assert entered.wait(20)
        assert httpx.get(url + "/api/version", timeout=10).status_code == 200
        answered.set()
        chat.join(30)
        assert result["r"].status_code == 200


def test_a_stalled_upload_is_dropped(setup, monkeypatch):
    import socket

    from ossy.server import native

    monkeypatch.setattr(native, "UPLOAD_IDLE", 0.5)
    _, _, _, library = setup
    digest = "sha256:" + hashlib.sha256(b"0123456789").hexdigest()
    with serving(library) as url:
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(f"POST /api/blobs/{digest} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10\r\n\r\n01234"
                         .encode())
            answer = b""  # the other five bytes never come
            while b"the upload stalled" not in answer and (data := sock.recv(4096)):
                answer += data
        assert answer.startswith(b"HTTP/1.1 408") and b"the upload stalled" in answer, answer
        assert not list(library.store.blobs.glob(".tmp-*")) and httpx.head(f"{url}/api/blobs/{digest}").status_code == 404
