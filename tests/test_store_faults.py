"""The store under faults, as a user's machine meets them: a corrupt manifest, bytes flipped in a
blob, a full disk, a create and a server killed with SIGKILL. Real files, the real `ossy`
command and a real `ossy serve` in subprocesses."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
from pathlib import Path

import httpx
import pytest
from store_util import (
    env_for,
    free_port,
    kill_create_halfway,
    make_checkpoint,
    ossy_command,
    run_ossy,
    snapshot,
    wait_until_serving,
)
from stub_engine import RunningServer, StubEngine, scripted, tiny_library, tokenizer

from ossy.chat.models import StoreResolver
from ossy.cli.models import format_size
from ossy.config import settings
from ossy.format import human_bytes
from ossy.modelfile import parse
from ossy.server import create_app
from ossy.store import Library, Store, create, parse_name
from ossy.store import manifest as mt


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "gpt-oss-tiny")


@pytest.fixture
def env(tmp_path):
    return env_for(tmp_path / "home", tmp_path / "no-ollama")


def store_of(env) -> Library:
    return Library(Store(Path(env["OSSY_HOME"]) / "models"))


def weights_blob(model) -> Path:
    layer = max(model.manifest.of_type(mt.CHECKPOINT_FILE), key=lambda x: x.size)
    return model.store.blob_path(layer.digest)


def flip(path: Path, offset: int, length: int = 4096, keep_mtime: bool = False) -> None:
    st = path.stat()
    with open(path, "r+b") as f:
        f.seek(offset)
        data = f.read(length)
        f.seek(offset)
        f.write(bytes(b ^ 0xFF for b in data))
    if keep_mtime:
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size


# -- a corrupt manifest --------------------------------------------------------------------------


def test_a_corrupt_manifest_is_skipped_and_removable(env, checkpoint, tmp_path):
    library = store_of(env)
    for name in ("good", "broken"):
        create(library, name, parse(f"FROM {checkpoint}\n"), base_dir=tmp_path)
    (library.store.manifests / parse_name("broken").path).write_text("{not json")
    listed = run_ossy(env, "list")
    assert listed.returncode == 0 and "good:latest" in listed.stdout and "broken" not in listed.stdout
    assert listed.stderr.startswith("warning: skipped broken:latest: ") and listed.stderr.count("\n") == 1
    assert "corrupt manifest" in listed.stderr and "remove it with 'ossy rm broken:latest'" in listed.stderr
    app = create_app(StubEngine(tokenizer(), scripted), StoreResolver(library, lambda d: tokenizer()), library)
    with RunningServer(app) as url:
        tags = httpx.get(url + "/api/tags", timeout=30)
        models = httpx.get(url + "/v1/models", timeout=30)
        assert tags.status_code == models.status_code == 200
        assert sorted(m["name"] for m in tags.json()["models"]) == ["good:latest"]
        assert "corrupt manifest" in tags.json()["warnings"][0]
        assert sorted(m["id"] for m in models.json()["data"]) == ["good:latest"]
        assert models.json()["warnings"] == tags.json()["warnings"]
        shown = httpx.post(url + "/api/show", json={"model": "broken"}, timeout=30)
        assert shown.status_code == 400 and "corrupt manifest" in shown.json()["error"]
    removed = run_ossy(env, "rm", "broken")
    assert (removed.returncode, removed.stdout) == (0, "deleted 'broken'\n"), removed.stderr
    again = run_ossy(env, "list")
    assert again.returncode == 0 and again.stderr == "" and "good:latest" in again.stdout
    assert run_ossy(env, "verify").returncode == 0


# -- bytes flipped in a blob ---------------------------------------------------------------------


def test_a_flipped_blob_is_refused_before_it_is_loaded(tmp_path):
    library, resolver = tiny_library(tmp_path, tokenizer())
    model = library.get("tiny")
    blob = weights_blob(model)
    with RunningServer(create_app(StubEngine(tokenizer(), scripted), resolver, library)) as url:
        body = {"model": "tiny", "messages": [{"role": "user", "content": "Hi"}], "stream": False}
        assert httpx.post(url + "/api/chat", json=body, timeout=30).status_code == 200
        flip(blob, blob.stat().st_size // 2)  # 4 KB inside, the same size: only the content changed
        r = httpx.post(url + "/api/chat", json=body, timeout=30)
        assert r.status_code == 500
        assert r.json()["error"] == (f"blob {blob.name.replace('-', ':', 1)} of tiny:latest is corrupt (its content "
                                     f"does not match its digest); re-create or re-pull it")
        terse = httpx.post(url + "/v1/chat/completions", json={**body, "model": "tiny-terse"}, timeout=30)
        assert terse.status_code == 500 and "is corrupt" in terse.json()["error"]["message"]  # it shares the blob


def test_ossy_verify_rehashes_every_blob(env, checkpoint, tmp_path):
    library = store_of(env)
    create(library, "a", parse(f"FROM {checkpoint}\n"), base_dir=tmp_path)
    create(library, "b", parse(f"FROM {checkpoint}\nSYSTEM Hi.\n"), base_dir=tmp_path)
    good = run_ossy(env, "verify")
    assert good.returncode == 0 and good.stdout.splitlines() == [
        f"{m.name}: ok ({1 + len(m.manifest.layers)} blobs, {format_size(m.size)})"
        for m in sorted(library.models(), key=lambda m: str(m.name))]
    blob = weights_blob(library.get("a"))
    flip(blob, 100, keep_mtime=True)  # mtime and size as recorded: only a full re-hash can tell
    bad = run_ossy(env, "verify", "a")
    digest = blob.name.replace("-", ":", 1)
    assert bad.returncode == 1
    assert bad.stdout == f"a:latest: blob {digest} is corrupt (its content does not match its digest); re-create " \
                         f"or re-pull it\n"
    assert run_ossy(env, "verify").returncode == 1  # b shares the blob
    blob.unlink()
    missing = run_ossy(env, "verify", "b")
    assert missing.returncode == 1 and f"blob {digest} is missing" in missing.stdout
    assert run_ossy(env, "verify", "nope").stderr == "Error: model 'nope' not found\n"


def test_a_blob_written_before_records_existed_is_checked_once(tmp_path):
    library, _ = tiny_library(tmp_path, tokenizer())
    model = library.get("tiny")
    records = library.store.root / "verified"
    for record in records.iterdir():  # as a store written by an older ossy
        record.unlink()
    fresh = Library(Store(library.store.root))  # as a new process opens it
    assert StoreResolver(fresh, lambda d: tokenizer()).resolve("tiny").ref.checkpoint is not None
    assert (records / weights_blob(model).name).is_file()  # re-hashed, found good, recorded


# -- a full disk ---------------------------------------------------------------------------------


@contextlib.contextmanager
def small_disk(path: Path, size: str):
    if os.geteuid() != 0:
        pytest.skip("a small tmpfs needs root (mount -t tmpfs); CI runs as root")
    path.mkdir(parents=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


def test_a_full_disk_is_one_line_and_leaves_nothing(tmp_path, checkpoint):
    big = make_checkpoint(tmp_path / "big", vocab_size=20_000, seed=3)  # ~10 MB of files
    (tmp_path / "Modelfile").write_text(f"FROM {big}\n")
    (tmp_path / "Small").write_text(f"FROM {checkpoint}\n")
    with small_disk(tmp_path / "disk", "4m") as disk:
        env = env_for(disk / "home", tmp_path / "no-ollama")
        assert run_ossy(env, "create", "small", "-f", str(tmp_path / "Small")).returncode == 0
        before = snapshot(disk / "home" / "models")
        r = run_ossy(env, "create", "big", "-f", str(tmp_path / "Modelfile"))
        needs = human_bytes(sum(p.stat().st_size for p in big.iterdir()))
        assert r.returncode == 1 and "Traceback" not in r.stderr
        last = r.stderr.splitlines()[-1]  # after create's progress lines, as `ollama create` prints them
        assert last.startswith(f"Error: no space left on device writing model 'big:latest' (needs {needs}, ")
        assert last.endswith(" free)"), r.stderr
        assert snapshot(disk / "home" / "models") == before
        assert not list((disk / "home").rglob(".tmp-*"))
        listed = run_ossy(env, "list")
        assert "small:latest" in listed.stdout and "big" not in listed.stdout

        library = Library(Store(disk / "home" / "models"))
        s = settings({"OSSY_HOME": str(disk / "home"), "OSSY_CREATE_ROOT": str(tmp_path)})
        app = create_app(StubEngine(tokenizer(), scripted), StoreResolver(library, lambda d: tokenizer()), library,
                         settings=s)
        with RunningServer(app) as url:
            r = httpx.post(url + "/api/create", json={"model": "big", "from": "big", "stream": False}, timeout=60)
            assert r.status_code == 507 and r.json()["error"].startswith(
                f"no space left on device writing model 'big:latest' (needs {needs}, ")
            data = os.urandom(6 << 20)
            digest = "sha256:" + hashlib.sha256(data).hexdigest()
            up = httpx.post(url + f"/api/blobs/{digest}", content=data, timeout=60)
            assert up.status_code == 507 and up.json()["error"].startswith(f"no space left on device writing blob "
                                                                           f"{digest}")
            assert httpx.head(url + f"/api/blobs/{digest}", timeout=30).status_code == 404
            assert httpx.get(url + "/api/tags", timeout=30).status_code == 200
        assert snapshot(disk / "home" / "models") == before
        assert not list((disk / "home").rglob(".tmp-*"))


# -- SIGKILL: a create, then the server mid-generation -------------------------------------------


@contextlib.contextmanager
def ossy_serve(env, port: int):
    proc = subprocess.Popen(ossy_command("serve", "--host", f"127.0.0.1:{port}"), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(url, proc)
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        proc.stderr.close()


def consistent(library: Library) -> None:
    """Every manifest reads, every blob it names is there and matches its digest, no temp file."""
    listing = library.listing()
    assert listing.problems == []
    for model in listing.models:
        assert model.store.verify(model) == []
    assert not list(library.store.root.rglob(".tmp-*"))


def test_kill_9_of_create_and_of_the_server_then_restart(env, tmp_path):
    library = store_of(env)
    big = make_checkpoint(tmp_path / "big", vocab_size=150_000, seed=2)  # ~70 MB to copy
    (tmp_path / "Modelfile").write_text(f"FROM {big}\n")
    assert run_ossy(env, "pull", "nano").returncode == 0  # the bundled nano, from the package
    before = snapshot(library.store.root)
    kill_create_halfway(env, "lost", tmp_path / "Modelfile", library.store.blobs)
    port = free_port()
    prompt = {"model": "nano", "prompt": "Tell me a long story.", "options": {"num_predict": 400, "seed": 1}}
    with ossy_serve(env, port) as (url, server):
        assert not list(library.store.root.rglob(".tmp-*"))  # swept when the server started
        assert snapshot(library.store.root) == before
        with httpx.stream("POST", url + "/api/generate", json=prompt, timeout=60) as r:
            lines = r.iter_lines()
            assert json.loads(next(lines))["done"] is False
            server.send_signal(signal.SIGKILL)  # mid-generation
            server.wait(10)
    consistent(library)
    assert snapshot(library.store.root) == before
    with ossy_serve(env, port) as (url, _):
        r = httpx.post(url + "/api/generate", json={**prompt, "stream": False, "options": {"num_predict": 8}},
                       timeout=120)
        assert r.status_code == 200 and r.json()["done"] is True and r.json()["eval_count"] > 0
        assert [m["name"] for m in httpx.get(url + "/api/tags", timeout=30).json()["models"]] == ["nano:latest"]
    consistent(library)


def test_re_creating_or_re_uploading_repairs_a_corrupt_blob(env, checkpoint, tmp_path):
    (tmp_path / "Modelfile").write_text(f"FROM {checkpoint}\n")
    assert run_ossy(env, "create", "a", "-f", str(tmp_path / "Modelfile")).returncode == 0
    library = store_of(env)
    blob = weights_blob(library.get("a"))
    flip(blob, 100)
    assert run_ossy(env, "verify", "a").returncode == 1
    assert run_ossy(env, "create", "a", "-f", str(tmp_path / "Modelfile")).returncode == 0  # as the error advises
    assert run_ossy(env, "verify", "a").returncode == 0
    flip(blob, 100)
    app = create_app(StubEngine(tokenizer(), scripted), StoreResolver(library, lambda d: tokenizer()), library)
    with RunningServer(app) as url:
        r = httpx.post(f"{url}/api/blobs/{blob.name.replace('-', ':', 1)}", content=(checkpoint / _name_of(
            library, blob)).read_bytes())
        assert r.status_code == 201
    assert library.store.verify(library.get("a")) == []


def _name_of(library, blob: Path) -> str:
    model = library.get("a")
    return next(layer.name for layer in model.manifest.layers if model.store.blob_path(layer.digest) == blob)


def test_concurrent_checks_hash_a_blob_once_and_remember_it_without_a_record(tmp_path, monkeypatch):
    import threading

    from ossy.store import store as store_module

    library, _ = tiny_library(tmp_path, tokenizer())
    model = library.get("tiny")
    layers = model.manifest.of_type(mt.CHECKPOINT_FILE)
    records = library.store.root / "verified"
    for record in records.iterdir():
        record.unlink()
    records.rmdir()
    records.write_text("not a directory: no record can be written")
    hashed = []
    real = store_module.hash_file
    monkeypatch.setattr(store_module, "hash_file", lambda path: hashed.append(path) or real(path))
    fresh = Store(library.store.root)  # as a server process sees the store
    threads = [threading.Thread(target=fresh.check_blobs, args=(model, layers)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(hashed) == sorted(fresh.blob_path(layer.digest) for layer in layers)  # once each
    fresh.check_blobs(model, layers)
    assert len(hashed) == len(layers)  # remembered in memory, though the record could not be written
