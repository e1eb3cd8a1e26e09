"""`ossy.store.registry.pull` against a real registry server on loopback (tests/registry_server.py):
Ollama's v2 protocol, parallel ranged parts behind a redirect, resuming an interrupted pull
without fetching finished bytes again, digests checked before anything enters the store, clear
one-line errors, plain HTTP only when asked, bearer tokens, pruning."""

from __future__ import annotations

import os

import httpx
import pytest
from registry_server import Registry, digest_of
from store_util import snapshot

from ossy.errors import NotFoundError
from ossy.store import Library, Store
from ossy.store import manifest as mt
from ossy.store.pull_event import PullEvent
from ossy.store.registry import DigestMismatchError, InsecureError, RegistryError, pull

TEMPLATE = "{{ .Prompt }}"


@pytest.fixture
def registry():
    with Registry() as r:
        yield r


@pytest.fixture
def library(tmp_path):
    return Library(Store(tmp_path / "models"))


def publish(registry: Registry, size: int = 300_000, tag: str = "latest", seed: int = 1) -> bytes:
    weights = b"GGUF" + os.urandom(size) if seed else b"GGUF" + bytes(size)
    registry.add_model("library", "tiny", tag, [(mt.GGUF, weights), (mt.TEMPLATE, TEMPLATE.encode()),
                                                (mt.PARAMS, b'{"temperature":0}')])
    return weights


def name(registry: Registry, model: str = "tiny") -> str:
    return f"http://{registry.host}/library/{model}"


def test_pull_stores_the_model_and_reports_progress_as_ollama(registry, library):
    weights = publish(registry)
    events: list[PullEvent] = []
    model = pull(library, name(registry), insecure=True, progress=events.append, min_part=64 * 1024)
    assert str(model.name) == f"{registry.host}/library/tiny:latest"
    assert model.template == TEMPLATE and model.parameters == {"temperature": 0}
    assert library.store.blob_path(digest_of(weights)).read_bytes() == weights
    assert [str(m.name) for m in library.store.models()] == [str(model.name)]
    statuses = [e.status for e in events]
    assert statuses[0] == "pulling manifest" and statuses[-1] == "success"
    assert "verifying sha256 digest" in statuses and "writing manifest" in statuses
    short = digest_of(weights)[7:19]
    mine = [e for e in events if e.status == f"pulling {short}"]
    assert mine[0].to_json() == {"status": f"pulling {short}", "digest": digest_of(weights),
                                 "total": len(weights), "completed": 0}
    assert mine[-1].completed == mine[-1].total == len(weights)
    ranges = [rng for path, rng in registry.blob_requests() if path.endswith(digest_of(weights))]
    assert len(ranges) == 5  # 300 KB in 64 KB parts, each its own Range request, from the redirect's target
    assert not any(p.startswith(f"/v2/library/tiny/blobs/{digest_of(weights)}") and rng != "bytes=0-0"
                   for p, rng in registry.log)
    assert not (library.store.root / "partial").exists() or not any((library.store.root / "partial").iterdir())


def test_pull_again_fetches_nothing(registry, library):
    publish(registry)
    pull(library, name(registry), insecure=True, min_part=64 * 1024)
    before = len(registry.blob_requests())
    events = []
    pull(library, name(registry), insecure=True, progress=events.append)
    assert len(registry.blob_requests()) == before
    assert any(e.completed == e.total and e.total for e in events)


def test_an_interrupted_pull_resumes_where_it_stopped(registry, library):
    weights = publish(registry, size=1_000_000)
    digest = digest_of(weights)
    seen = []

    def interrupt(event: PullEvent) -> None:  # Ctrl-C once about half is there
        seen.append(event)
        if event.digest == digest and event.completed and event.completed > 500_000:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pull(library, name(registry), insecure=True, progress=interrupt, min_part=100_000)
    assert library.store.models() == []  # nothing named yet
    fetched_before = sum(_length(rng, len(weights)) for path, rng in registry.blob_requests() if path.endswith(digest))
    registry.log.clear()
    events = []
    pull(library, name(registry), insecure=True, progress=events.append, min_part=100_000)
    first = next(e for e in events if e.digest == digest)
    assert first.completed >= 400_000  # the saved progress: not started from zero
    refetched = sum(_length(rng, len(weights)) for path, rng in registry.blob_requests() if path.endswith(digest))
    assert refetched <= len(weights) - first.completed  # finished bytes are not fetched again
    assert fetched_before < len(weights) + 100_000
    assert library.store.blob_path(digest).read_bytes() == weights


def _length(rng: str | None, size: int) -> int:
    if not rng:
        return size
    start, end = rng.removeprefix("bytes=").split("-")
    return min(int(end), size - 1) - int(start) + 1


def test_a_cut_connection_is_retried_from_where_it_was_cut(registry, library):
    weights = publish(registry, size=200_000)
    digest = digest_of(weights)
    registry.cut_once[digest] = 50_000
    pull(library, name(registry), insecure=True, min_part=1 << 30, retry_delay=0.01)
    assert library.store.blob_path(digest).read_bytes() == weights
    ranges = [rng for path, rng in registry.blob_requests() if path.endswith(digest)]
    assert ranges == [f"bytes=0-{len(weights) - 1}", f"bytes=50000-{len(weights) - 1}"]


def test_a_blob_that_does_not_match_its_digest_never_enters_the_store(registry, library):
    weights = publish(registry)
    registry.corrupt.add(digest_of(weights))
    before = snapshot(library.store.root)
    with pytest.raises(DigestMismatchError, match=r"digest mismatch: the blob downloaded for sha256:\w+ from "
                                                  r"127\.0\.0\.1:\d+ hashes to sha256:\w+; nothing was stored"):
        pull(library, name(registry), insecure=True)
    assert snapshot(library.store.root) == before
    assert library.store.models() == []
    bad = library.store.root / "partial" / ("sha256-" + digest_of(weights).split(":")[1])
    assert not bad.exists() and not bad.with_name(bad.name + ".json").exists()  # the bad download is gone


@pytest.mark.parametrize("status,message", [(401, "registry answered 401 unauthorized"),
                                            (500, "registry answered 500 error")])
def test_registry_errors_are_one_line(registry, library, status, message):
    publish(registry)
    registry.manifest_status = status
    with pytest.raises(RegistryError, match=f"pull model manifest of '.*tiny:latest': {message}") as e:
        pull(library, name(registry), insecure=True)
    assert "\n" not in str(e.value)


def test_unknown_model_is_not_found(registry, library):
    with pytest.raises(NotFoundError, match=r"pull model manifest: model '.*/library/nope:latest' not found on "):
        pull(library, name(registry, "nope"), insecure=True)


def test_plain_http_needs_insecure(registry, library):
    publish(registry)
    with pytest.raises(InsecureError, match="insecure protocol http"):
        pull(library, name(registry))
    with pytest.raises(RegistryError, match=f"cannot reach {registry.host}"):  # https to a plain-HTTP server
        pull(library, f"{registry.host}/library/tiny")


def test_a_bearer_token_is_fetched_when_the_registry_asks(registry, library):
    publish(registry)
    registry.token = "s3cret"
    model = pull(library, name(registry), insecure=True)
    assert model.template == TEMPLATE
    assert any(path.startswith("/token") for path, _ in registry.log)


def test_a_new_version_of_a_tag_prunes_the_old_blobs(registry, library):
    old = publish(registry, seed=1)
    pull(library, name(registry), insecure=True)
    new = publish(registry, seed=2)
    pull(library, name(registry), insecure=True)
    assert not library.store.blob_path(digest_of(old)).exists()
    assert library.store.blob_path(digest_of(new)).read_bytes() == new


def test_unreachable_registry(library):
    with pytest.raises(RegistryError, match=r"cannot reach 127\.0\.0\.1:9"):
        pull(library, "http://127.0.0.1:9/library/x", insecure=True, client=httpx.Client(timeout=2))


# -- /api/pull, through the official ollama client --------------------------------------------
def test_api_pull_streams_ollamas_progress_to_the_ollama_client(registry, tmp_path):
    import ollama
    from stub_engine import RunningServer, StubEngine

    from ossy.server import create_app

    weights = publish(registry)
    library = Library(Store(tmp_path / "models"))
    with RunningServer(create_app(StubEngine(tokenizer=None), library=library)) as url:
        client = ollama.Client(host=url)
        events = list(client.pull(name(registry), insecure=True, stream=True))
        assert events[0].status == "pulling manifest" and events[-1].status == "success"
        mine = [e for e in events if e.digest == digest_of(weights)]
        assert mine[-1].completed == mine[-1].total == len(weights)
        assert [m.model for m in client.list().models if "tiny" in m.model] == [f"{registry.host}/library/tiny:latest"]
        with pytest.raises(ollama.ResponseError, match="insecure protocol http"):
            list(client.pull(name(registry), stream=True))
        r = httpx.post(url + "/api/pull", json={"model": name(registry, "nope"), "insecure": True, "stream": False})
        assert r.status_code == 404 and "not found" in r.json()["error"]
        r = httpx.post(url + "/api/pull", json={"model": name(registry), "insecure": True, "stream": False})
        assert r.status_code == 200 and r.json() == {"status": "success"}


# -- `ossy pull` -----------------------------------------------------------------------------------
def test_ossy_pull_command(registry, tmp_path):
    from store_util import env_for, free_port, run_ossy

    weights = publish(registry)
    env = env_for(tmp_path / "home", tmp_path / "ollama")
    env["OSSY_HOST"] = f"127.0.0.1:{free_port()}"  # no server there: the command runs one in-process
    result = run_ossy(env, "pull", "--insecure", name(registry))
    assert result.returncode == 0, result.stderr
    short = digest_of(weights)[7:19]
    lines = result.stderr.splitlines()
    assert lines[0] == "pulling manifest" and lines[-1] == "success"
    assert any(line.startswith(f"pulling {short}: 100% ▕█████████████████████████▏  300 KB") for line in lines)
    assert lines[-4:-1] == ["verifying sha256 digest", "writing manifest", "removing any unused layers"]
    listed = run_ossy(env, "list")
    assert f"{registry.host}/library/tiny:latest" in listed.stdout
    refused = run_ossy(env, "pull", name(registry))
    assert refused.returncode == 1 and refused.stderr.strip().endswith(
        "Error: insecure protocol http: use --insecure (\"insecure\": true) for a registry over plain HTTP")


def test_progress_on_a_terminal_is_one_line_per_blob_redrawn():
    import io

    from ossy.cli.pull import PullDisplay

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    out = Terminal()
    display = PullDisplay(out)
    display.show({"status": "pulling manifest"})
    for done in (0, 500_000_000, 1_000_000_000):
        display.show({"status": "pulling abcdef123456", "digest": "sha256:abc", "total": 1_000_000_000,
                      "completed": done})
    display.show({"status": "success"})
    text = out.getvalue()
    assert text.startswith("pulling manifest\n\rpulling abcdef123456:   0% ▕")
    assert "\rpulling abcdef123456:  50% ▕████████████             ▏  500 MB/   1 GB" in text
    assert text.endswith("\rpulling abcdef123456: 100% ▕█████████████████████████▏    1 GB\x1b[K\nsuccess\n")


# -- push ---------------------------------------------------------------------------------------------
def test_push_round_trips(registry, tmp_path):
    from ossy.store.registry import push

    weights = publish(registry)
    here = Library(Store(tmp_path / "here"))
    model = pull(here, name(registry), insecure=True)
    target = f"http://{registry.host}/me/copy:v1"
    here.copy(str(model.name), target.removeprefix("http://"))
    registry.token = "s3cret"
    events = []
    push(here, target, insecure=True, progress=events.append)
    assert [e.status for e in events][0] == "retrieving manifest" and events[-1].status == "success"
    assert registry.manifests[("me", "copy", "v1")] == here.get(target.removeprefix("http://")).raw
    uploads = [p for p, _ in registry.log if p.startswith("PUT /v2/me/copy/blobs/uploads/")]
    assert uploads == []  # every blob was already there (published under library/tiny): HEAD said so
    there = Library(Store(tmp_path / "there"))
    copy = pull(there, target, insecure=True)
    assert there.store.blob_path(digest_of(weights)).read_bytes() == weights and copy.template == TEMPLATE

    registry.blobs.clear()  # a registry without the blobs: each is uploaded, the digest checked
    registry.log.clear()
    push(here, target, insecure=True)
    uploaded = [p for p, _ in registry.log if p.startswith("PUT /v2/me/copy/blobs/uploads/")]
    assert len(uploaded) == 4 and registry.blobs[digest_of(weights)] == weights
    with pytest.raises(InsecureError):
        push(here, target)
    with pytest.raises(NotFoundError):
        push(here, f"http://{registry.host}/me/absent:v1", insecure=True)


def test_ossy_push_command(registry, tmp_path):
    from store_util import env_for, free_port, run_ossy

    publish(registry)
    env = env_for(tmp_path / "home", tmp_path / "ollama")
    env["OSSY_HOST"] = f"127.0.0.1:{free_port()}"
    assert run_ossy(env, "pull", "--insecure", name(registry)).returncode == 0
    assert run_ossy(env, "cp", f"{registry.host}/library/tiny", f"{registry.host}/me/tiny:v2").returncode == 0
    result = run_ossy(env, "push", "--insecure", f"http://{registry.host}/me/tiny:v2")
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert lines[0] == "retrieving manifest" and lines[-2:] == ["pushing manifest", "success"]
    assert ("me", "tiny", "v2") in registry.manifests


# -- Hugging Face safetensors repos -----------------------------------------------------------------
def test_pull_a_hugging_face_safetensors_repo(registry, library, tmp_path, monkeypatch):
    from store_util import make_checkpoint

    from ossy.store import huggingface

    checkpoint = make_checkpoint(tmp_path / "ckpt")
    files = {p.name: p.read_bytes() for p in checkpoint.iterdir() if p.is_file()}
    registry.hf_repos[("openai", "gpt-oss-tiny")] = {**files, "README.md": b"# tiny",
                                                      "original/model.safetensors": b"not fetched"}
    monkeypatch.setitem(huggingface.HUB_ENDPOINTS, registry.host, f"http://{registry.host}")
    events = []
    model = pull(library, f"{registry.host}/openai/gpt-oss-tiny", progress=events.append)
    assert model.is_checkpoint and str(model.name) == f"{registry.host}/openai/gpt-oss-tiny:latest"
    stored = {layer.name: library.store.blob_path(layer.digest).read_bytes()
              for layer in model.manifest.of_type(mt.CHECKPOINT_FILE)}
    assert stored == files
    fetched = {path.split("/resolve/")[1].split("/", 1)[1] for path, _ in registry.log if "/resolve/" in path}
    assert fetched == set(files)  # not README.md, not original/
    statuses = [e.status for e in events]
    assert statuses[0] == "pulling manifest" and statuses[-1] == "success"
    done = [e for e in events if e.status == "pulling model.safetensors"]
    assert done[-1].completed == done[-1].total == len(files["model.safetensors"])
    assert not (library.store.root / "partial" / "hf" / "openai--gpt-oss-tiny").exists()
    with pytest.raises(NotFoundError, match="not found on"):
        pull(library, f"{registry.host}/openai/absent")


def test_api_pull_errors_have_their_http_status(registry, tmp_path):
    from stub_engine import RunningServer, StubEngine

    from ossy.server import create_app

    weights = publish(registry)
    registry.corrupt.add(digest_of(weights))
    with RunningServer(create_app(StubEngine(tokenizer=None), library=Library(Store(tmp_path / "models")))) as url:
        r = httpx.post(url + "/api/pull", json={"model": name(registry), "insecure": True, "stream": False})
        assert r.status_code == 502 and r.json()["error"].startswith("digest mismatch")
        r = httpx.post(url + "/api/pull", json={"model": name(registry), "stream": False})
        assert r.status_code == 400 and "insecure protocol http" in r.json()["error"]
        registry.manifest_status = 500
        r = httpx.post(url + "/api/pull", json={"model": name(registry), "insecure": True, "stream": False})
        assert r.status_code == 502 and "registry answered 500" in r.json()["error"]
