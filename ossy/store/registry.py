"""Pulling models from (and pushing them to) registries that speak the Docker registry v2 protocol as Ollama does:
registry.ollama.ai (`gpt-oss:20b`), Hugging Face (`hf.co/USER/REPO[:QUANT]`), a private one.

Owns: a name -> its URLs (https; plain http only with `insecure`, as `ollama pull --insecure`),
the manifest request (Ollama's Accept header; an anonymous bearer token when the registry asks
for one), blob downloads (the first redirect resolved once, up to MAX_PARTS ranged parts in
parallel into one partial file under `<store>/partial/`, each part's progress saved beside it so
an interrupted pull resumes where it stopped, a stalled part retried), the sha256 check before a
blob enters the store (a mismatch deletes the download and stores nothing), writing the manifest,
pruning blobs no manifest uses, pushing (each blob the registry lacks as one upload, then the
manifest), and the progress events of `/api/pull` and `/api/push` (Ollama's: status, digest,
total, completed). Pushing to registry.ollama.ai needs Ollama's signed key auth, which ossy does
not do; registries that take anonymous or bearer-token pushes work.
Does not own: the store layout and its transactions (`ossy.store.store`), names
(`ossy.store.names`), how progress is drawn (`ossy.cli`), HTTP routes (`ossy.server`).

Written on httpx (already ossy's HTTP client); the v2 protocol, resumable ranged downloads and
Ollama's progress events are small and specific enough that no library does them as Ollama does.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx

from ossy.errors import DigestMismatchError, InsecureError, NotFoundError, RegistryError
from ossy.modelfile import Modelfile
from ossy.store import bundled, huggingface
from ossy.store import manifest as mt
from ossy.store.create import create_from
from ossy.store.files import atomic_write
from ossy.store.names import ModelName, parse_name
from ossy.store.pull_event import Progress, PullEvent
from ossy.store.store import Progress as CreateProgress

MANIFEST_ACCEPT = "application/vnd.docker.distribution.manifest.v2+json"
MAX_PARTS = 16
MIN_PART = 100 * 1024 * 1024  # Ollama's part sizes: 100 MB to 1 GB, at most 16 parts
MAX_PART = 1024 * 1024 * 1024
STALL_SECONDS = 30.0  # a part that receives nothing this long is retried
ATTEMPTS = 6
CHUNK = 1 << 20
SAVE_EVERY = 1.0  # seconds between saves of a download's progress


@dataclass(frozen=True)
class Remote:
    """Where a model name lives: `{scheme}://{host}/v2/{namespace}/{model}/...`."""

    name: ModelName
    scheme: str

    @classmethod
    def of(cls, text: str, insecure: bool = False) -> "Remote":
        scheme = "https"
        for prefix in ("https://", "http://"):
            if text.startswith(prefix):
                scheme, text = prefix[:-3], text[len(prefix):]
        if scheme == "http" and not insecure:
            raise InsecureError("insecure protocol http: use --insecure (\"insecure\": true) for a registry over plain HTTP")
        return cls(parse_name(text), scheme)

    @property
    def base(self) -> str:
        n = self.name
        return f"{self.scheme}://{n.host}/v2/{n.namespace}/{n.model}"


def short(digest: str) -> str:
    """The 12 hex digits Ollama shows for a blob ("pulling 9ce18ba6a0c4")."""
    return digest.split(":", 1)[-1][:12]


class Registry:
    """An HTTP session with one registry (the token it granted is kept for the session)."""

    def __init__(self, remote: Remote, client: httpx.Client | None = None) -> None:
        self.remote = remote
        self.client = client or httpx.Client(timeout=httpx.Timeout(STALL_SECONDS, connect=10.0),
                                             headers={"User-Agent": "ossy"})
        self._token: str | None = None

    def close(self) -> None:
        self.client.close()

    def _headers(self, extra: dict | None = None) -> dict:
        headers = dict(extra or {})
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        return headers

    def get(self, url: str, headers: dict | None = None, follow: bool = True, stream: bool = False) -> httpx.Response:
        return self.request("GET", url, headers, follow=follow, stream=stream)

    def request(self, method: str, url: str, headers: dict | None = None, content=None, follow: bool = True,
                stream: bool = False) -> httpx.Response:
        """A request with the session's token; a 401 with a Bearer challenge fetches an anonymous
        token once and retries (`content` must then be bytes or a callable making it again)."""
        for attempt in range(2):
            body = content() if callable(content) else content
            request = self.client.build_request(method, url, headers=self._headers(headers), content=body)
            try:
                response = self.client.send(request, follow_redirects=follow, stream=stream)
            except httpx.HTTPError as e:
                raise RegistryError(f"cannot reach {self.remote.name.host}: {_reason(e)}") from None
            if response.status_code == 401 and attempt == 0 and self._authorize(response):
                response.close()
                continue
            return response
        return response

    def _authorize(self, response: httpx.Response) -> bool:
        challenge = response.headers.get("www-authenticate", "")
        if not challenge.lower().startswith("bearer "):
            return False
        params = dict(part.split("=", 1) for part in _split_challenge(challenge[7:]))
        realm = params.pop("realm", "").strip('"')
        if not realm:
            return False
        try:
            answer = self.client.get(realm, params={k: v.strip('"') for k, v in params.items()})
            self._token = answer.json().get("token") or answer.json().get("access_token")
        except (httpx.HTTPError, ValueError, AttributeError):
            return False
        return bool(self._token)

    def manifest(self) -> bytes:
        n = self.remote.name
        r = self.get(f"{self.remote.base}/manifests/{n.tag}", {"Accept": MANIFEST_ACCEPT})
        if r.status_code == 404:
            raise NotFoundError(f"pull model manifest: model '{n}' not found on {n.host}")
        _raise_for(r, f"pull model manifest of '{n}'")
        return r.content

    def upload(self, layer: mt.Layer, path: Path, progress: Progress) -> None:
        """Push one blob unless the registry has it: POST an upload, PUT the bytes to its Location."""
        status = f"pushing {short(layer.digest)}"
        head = self.request("HEAD", f"{self.remote.base}/blobs/{layer.digest}")
        if head.status_code == 200:
            progress(PullEvent(status, layer.digest, layer.size, layer.size))
            return
        started = self.request("POST", f"{self.remote.base}/blobs/uploads/")
        _raise_for(started, f"push blob {short(layer.digest)}")
        if "location" not in started.headers:
            raise RegistryError(f"push blob {short(layer.digest)}: the registry gave no upload location")
        location = httpx.URL(str(started.url.join(started.headers["location"])))
        target = location.copy_merge_params({"digest": layer.digest})

        def chunks():
            sent = 0
            progress(PullEvent(status, layer.digest, layer.size, 0))
            with open(path, "rb") as f:
                while chunk := f.read(CHUNK):
                    sent += len(chunk)
                    yield chunk
                    progress(PullEvent(status, layer.digest, layer.size, sent))

        done = self.request("PUT", str(target), {"Content-Type": "application/octet-stream",
                                                 "Content-Length": str(layer.size)}, content=chunks)
        _raise_for(done, f"push blob {short(layer.digest)}")

    def put_manifest(self, data: bytes) -> None:
        n = self.remote.name
        r = self.request("PUT", f"{self.remote.base}/manifests/{n.tag}", {"Content-Type": MANIFEST_ACCEPT}, data)
        _raise_for(r, f"push manifest of '{n}'")


def _split_challenge(text: str) -> list[str]:
    parts, current, quoted = [], "", False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            parts.append(current.strip())
            current = ""
        else:
            current += ch
    return [p for p in parts + [current.strip()] if "=" in p]


def _reason(e: Exception) -> str:
    return str(e) or type(e).__name__


def _raise_for(r: httpx.Response, what: str) -> None:
    if r.status_code < 400:
        return
    try:
        errors = r.json().get("errors") or []
        detail = "; ".join(e.get("message", "") for e in errors if isinstance(e, dict)) or r.text[:200]
    except (ValueError, AttributeError):
        detail = r.text[:200]
    words = {401: "unauthorized", 403: "forbidden", 429: "too many requests"}.get(r.status_code, "error")
    raise RegistryError(f"{what}: registry answered {r.status_code} {words}" + (f" ({detail.strip()})" if detail.strip() else ""))


# -- downloads -----------------------------------------------------------------------------------
@dataclass
class _Part:
    start: int
    end: int  # exclusive
    done: int = 0

    @property
    def left(self) -> int:
        return self.end - self.start - self.done


def plan_parts(size: int, min_part: int = MIN_PART, max_part: int = MAX_PART, max_parts: int = MAX_PARTS) -> list[_Part]:
    """Ollama's split: parts of size/16, but at least min_part and at most max_part bytes."""
    part = min(max(size // max_parts, min_part), max_part) if size else 1
    return [_Part(s, min(s + part, size)) for s in range(0, size, part)] or [_Part(0, 0)]


class Download:
    """One blob into `<store>/partial/<blob>` (`fetch`, then `verify`): parts fetched in parallel
    with Range requests, each part's progress saved in `<blob>.json` (at most SAVE_EVERY old), so a
    new Download of the same blob continues where the last one stopped."""

    def __init__(self, registry: Registry, layer: mt.Layer, directory: Path, progress: Progress,
                 min_part: int = MIN_PART, retry_delay: float = 1.0) -> None:
        self.registry, self.layer, self.progress = registry, layer, progress
        name = "sha256-" + layer.digest.split(":", 1)[1]
        self.path, self.record = directory / name, directory / (name + ".json")
        self.min_part, self.retry_delay = min_part, retry_delay
        self.parts = self._resume() or plan_parts(layer.size, min_part)
        self._lock = threading.Lock()
        self._saved = 0.0
        self._reported = 0.0

    def _resume(self) -> list[_Part] | None:
        try:
            saved = json.loads(self.record.read_text())
            parts = [_Part(*p) for p in saved["parts"]]
            if saved["size"] != self.layer.size or not self.path.is_file() or \
                    self.path.stat().st_size != self.layer.size:
                return None
            return parts
        except (OSError, ValueError, KeyError, TypeError):
            return None

    @property
    def completed(self) -> int:
        return sum(p.done for p in self.parts)

    def _save(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._saved < SAVE_EVERY:
            return
        self._saved = now
        record = {"size": self.layer.size, "parts": [[p.start, p.end, p.done] for p in self.parts]}
        atomic_write(self.record, json.dumps(record).encode())

    def _report(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._reported >= 0.1:
            self._reported = now
            self.progress(PullEvent(f"pulling {short(self.layer.digest)}", self.layer.digest, self.layer.size,
                                    self.completed))

    def fetch(self) -> None:
        """Fetch what is left of the blob into the partial file."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.is_file() or self.path.stat().st_size != self.layer.size:
            with open(self.path, "wb") as f:
                f.truncate(self.layer.size)
            self.parts = plan_parts(self.layer.size, self.min_part)
        self._report(force=True)
        left = [p for p in self.parts if p.left > 0]
        if left:
            url = self._direct_url()
            try:
                with ThreadPoolExecutor(max_workers=min(len(left), MAX_PARTS)) as pool:
                    for future in [pool.submit(self._fetch_part, url, p) for p in left]:
                        future.result()
            finally:
                with self._lock:
                    self._save(force=True)
        self._report(force=True)

    def verify(self) -> Path:
        """The finished file, once its sha256 is the digest; a mismatch deletes the download."""
        digest = _sha256(self.path)
        if digest != self.layer.digest:
            self.discard()
            raise DigestMismatchError(f"digest mismatch: the blob downloaded for {self.layer.digest} from "
                                      f"{self.registry.remote.name.host} hashes to {digest}; nothing was stored")
        self.record.unlink(missing_ok=True)
        return self.path

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)
        self.record.unlink(missing_ok=True)

    def _direct_url(self) -> str:
        """The blob's URL; the first redirect (a CDN) resolved once and used for every part."""
        url = f"{self.registry.remote.base}/blobs/{self.layer.digest}"
        r = self.registry.get(url, {"Range": "bytes=0-0"}, follow=False, stream=True)
        r.close()
        if r.is_redirect and "location" in r.headers:
            return str(r.url.join(r.headers["location"]))
        if r.status_code == 404:
            raise RegistryError(f"pull blob {short(self.layer.digest)}: registry answered 404 not found")
        _raise_for(r, f"pull blob {short(self.layer.digest)}")
        return url

    def _fetch_part(self, url: str, part: _Part) -> None:
        for attempt in range(ATTEMPTS):
            try:
                self._fetch_once(url, part)
                return
            except (httpx.TransportError, _ShortRead) as e:
                if attempt == ATTEMPTS - 1:
                    raise RegistryError(f"pull blob {short(self.layer.digest)}: {_reason(e)} after {ATTEMPTS} tries")
                time.sleep(self.retry_delay * 2 ** attempt)

    def _fetch_once(self, url: str, part: _Part) -> None:
        if part.left <= 0:
            return
        first = part.start + part.done
        headers = {"Range": f"bytes={first}-{part.end - 1}"}
        request = self.registry.client.build_request("GET", url, headers=self.registry._headers(headers))
        response = self.registry.client.send(request, stream=True, follow_redirects=True)
        try:
            if response.status_code >= 500:  # the registry's trouble: worth another try
                raise _ShortRead(f"registry answered {response.status_code}")
            if response.status_code != 206 and not (response.status_code == 200 and first == 0 and
                                                    part.end == self.layer.size):
                _raise_for(response, f"pull blob {short(self.layer.digest)}")
                raise RegistryError(f"pull blob {short(self.layer.digest)}: the registry ignored the Range request")
            fd = os.open(self.path, os.O_WRONLY)
            try:
                for chunk in response.iter_bytes():  # as it arrives: a cut keeps what came before
                    chunk = chunk[:part.left]
                    os.pwrite(fd, chunk, part.start + part.done)
                    with self._lock:
                        part.done += len(chunk)
                        self._save()
                        self._report()
                    if part.left <= 0:
                        break
            finally:
                os.close(fd)
        finally:
            response.close()
        if part.left > 0:
            raise _ShortRead(f"the connection ended {part.left} bytes early")


class _ShortRead(Exception):
    pass


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


# -- pull and push -------------------------------------------------------------------------------
def pull(library, name: str, *, insecure: bool = False, progress: Progress = lambda event: None,
         min_part: int = MIN_PART, retry_delay: float = 1.0, client: httpx.Client | None = None):
    """Pull `name` into `library`'s store and return the stored `Model`. Blobs the store already
    holds (sound) are not fetched again; nothing is named in the store until every blob has been
    checked against its digest. A Hugging Face safetensors repo is downloaded and stored as a
    checkpoint (`ossy.store.huggingface`)."""
    remote = Remote.of(name, insecure)
    shipped = bundled.bundled().get(remote.name)
    if shipped is not None:  # nano: from the ossy package, no network
        progress(PullEvent(f"installing {remote.name} from the ossy package"))
        model = bundled.install(library, remote.name, shipped)
        progress(PullEvent("success"))
        return model
    progress(PullEvent("pulling manifest"))
    files = huggingface.checkpoint_files(remote)
    if files is not None:
        return _pull_checkpoint(library, remote, files, progress)
    registry = Registry(remote, client)
    store = library.store
    try:
        data = registry.manifest()
        manifest = mt.Manifest.from_json(data, f"manifest of '{remote.name}' from {remote.name.host}")
        partial = store.root / "partial"
        with store.transaction() as tx:
            downloads = []
            for layer in (*manifest.layers, manifest.config):
                if not tx.needs(layer.digest):
                    progress(PullEvent(f"pulling {short(layer.digest)}", layer.digest, layer.size, layer.size))
                    continue
                downloads.append(Download(registry, layer, partial, progress, min_part, retry_delay))
                downloads[-1].fetch()
            progress(PullEvent("verifying sha256 digest"))
            for download in downloads:
                tx.stage_verified(download.verify(), download.layer.digest)
            progress(PullEvent("writing manifest"))
            model = tx.commit(remote.name, data)
        progress(PullEvent("removing any unused layers"))
        store.gc()
        progress(PullEvent("success"))
        return model
    finally:
        if client is None:
            registry.close()


def _pull_checkpoint(library, remote: Remote, files: list[tuple[str, int]], progress: Progress):
    """A Hub safetensors repo: its checkpoint files downloaded, then stored as `ossy create` would."""

    class Statuses(CreateProgress):
        def status(self, text: str) -> None:
            progress(PullEvent(text))

    n = remote.name
    directory = library.store.root / "partial" / "hf" / f"{n.namespace}--{n.model}"
    huggingface.download(remote, files, directory, progress)
    model = create_from(library, n, Modelfile(from_=str(directory)), directory, Statuses())
    huggingface.remove(directory)
    progress(PullEvent("success"))
    return model


def push(library, name: str, *, insecure: bool = False, progress: Progress = lambda event: None,
         client: httpx.Client | None = None) -> None:
    """Push the stored model `name` to the registry its name says (Ollama's statuses)."""
    remote = Remote.of(name, insecure)
    model = library.get(str(remote.name))  # NotFoundError
    registry = Registry(remote, client)
    try:
        progress(PullEvent("retrieving manifest"))
        for layer in (*model.manifest.layers, model.manifest.config):
            registry.upload(layer, model.store.blob_path(layer.digest), progress)
        progress(PullEvent("pushing manifest"))
        registry.put_manifest(model.raw)
        progress(PullEvent("success"))
    finally:
        if client is None:
            registry.close()
