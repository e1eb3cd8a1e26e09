"""A registry for tests, in-process on loopback: the Docker registry v2 endpoints Ollama's
registry answers (manifests with Ollama's media types, blobs behind a redirect to a "CDN" path
that serves Range requests), plus the faults a pull must survive: a connection cut partway, a
blob whose bytes do not match its digest, a manifest answered with an error status, a bearer
token required; and the upload endpoints a push uses (HEAD blob, POST an upload, PUT its bytes
with the digest, PUT a manifest whose blobs it holds); and, for `hf_repos`, the Hugging Face Hub
endpoints huggingface_hub downloads a repo through (model info with its files, HEAD and ranged
GET of /{repo}/resolve/{revision}/{file}). Every request is logged (path and Range) so tests can see what was fetched.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
HF_COMMIT = "0123456789abcdef0123456789abcdef01234567"
CONFIG_TYPE = "application/vnd.docker.container.image.v1+json"


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Registry:
    def __init__(self) -> None:
        self.manifests: dict[tuple[str, str, str], bytes] = {}
        self.blobs: dict[str, bytes] = {}
        self.log: list[tuple[str, str | None]] = []  # (path, Range header)
        self.cut_once: dict[str, int] = {}  # digest -> its next request gets this many bytes, then a cut
        self.corrupt: set[str] = set()  # digests served with one byte flipped
        self.manifest_status: int | None = None  # answer manifests with this status instead
        self.token: str | None = None  # when set, requests need "Authorization: Bearer <token>"
        self.uploads = 0
        self.hf_repos: dict[tuple[str, str], dict[str, bytes]] = {}  # Hugging Face repos: (user, repo) -> files
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> "Registry":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def add_model(self, namespace: str, model: str, tag: str, layers: list[tuple[str, bytes]],
                  config: dict | None = None) -> bytes:
        """Publish a model: layers are (media type, bytes); returns the manifest bytes."""
        config_bytes = json.dumps(config or {"model_format": "gguf", "model_family": "gptoss"}).encode()
        self.blobs[digest_of(config_bytes)] = config_bytes
        entries = []
        for media_type, data in layers:
            self.blobs[digest_of(data)] = data
            entries.append({"mediaType": media_type, "digest": digest_of(data), "size": len(data)})
        manifest = json.dumps({"schemaVersion": 2, "mediaType": MANIFEST_TYPE,
                               "config": {"mediaType": CONFIG_TYPE, "digest": digest_of(config_bytes),
                                          "size": len(config_bytes)},
                               "layers": entries}).encode()
        self.manifests[(namespace, model, tag)] = manifest
        return manifest

    def blob_requests(self) -> list[tuple[str, str | None]]:
        return [(path, rng) for path, rng in self.log if path.startswith("/cdn/")]

    def _handler(self):
        registry = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def _send(self, status: int, body: bytes = b"", headers: dict | None = None) -> None:
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _error(self, status: int, code: str, message: str) -> None:
                body = json.dumps({"errors": [{"code": code, "message": message}]}).encode()
                self._send(status, body, {"Content-Type": "application/json"})

            def _authorized(self) -> bool:
                if registry.token and self.headers.get("Authorization") != f"Bearer {registry.token}":
                    host = registry.host
                    self._send(401, b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}',
                               {"WWW-Authenticate": f'Bearer realm="http://{host}/token",service="{host}",'
                                                   f'scope="repository:push"'})
                    return False
                return True

            def _body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _hf_file(self) -> tuple[bytes, str] | None:
                m = re.fullmatch(r"/([^/]+)/([^/]+)/resolve/([^/]+)/(.+)", self.path.split("?")[0])
                files = registry.hf_repos.get((m[1], m[2])) if m else None
                if files is None or m[4] not in files:
                    return None
                return files[m[4]], m[4]

            def _hf_headers(self, data: bytes) -> dict:
                return {"X-Repo-Commit": HF_COMMIT, "ETag": f'"{hashlib.sha256(data).hexdigest()}"',
                        "Accept-Ranges": "bytes"}

            def do_HEAD(self) -> None:
                with registry.lock:
                    registry.log.append(("HEAD " + self.path, None))
                found = self._hf_file()
                if found is not None:
                    self.send_response(200)
                    for k, v in self._hf_headers(found[0]).items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(found[0])))
                    self.end_headers()
                    return
                m = re.fullmatch(r"/v2/([^/]+)/([^/]+)/blobs/(sha256:[0-9a-f]{64})", self.path)
                status = 200 if m and m[3] in registry.blobs else 404
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_POST(self) -> None:
                with registry.lock:
                    registry.log.append(("POST " + self.path, None))
                self._body()
                if not self._authorized():
                    return
                m = re.fullmatch(r"/v2/([^/]+)/([^/]+)/blobs/uploads/", self.path)
                if not m:
                    return self._error(404, "NOT_FOUND", "not found")
                registry.uploads += 1
                self._send(202, headers={"Location": f"/v2/{m[1]}/{m[2]}/blobs/uploads/{registry.uploads}"})

            def do_PUT(self) -> None:
                with registry.lock:
                    registry.log.append(("PUT " + self.path, None))
                body = self._body()
                if not self._authorized():
                    return
                m = re.fullmatch(r"/v2/([^/]+)/([^/]+)/blobs/uploads/\d+\?digest=(sha256(?::|%3A)[0-9a-f]{64})", self.path)
                if m:
                    digest = m[3].replace("%3A", ":")
                    if digest_of(body) != digest:
                        return self._error(400, "DIGEST_INVALID", "provided digest did not match uploaded content")
                    registry.blobs[digest] = body
                    return self._send(201, headers={"Docker-Content-Digest": digest})
                m = re.fullmatch(r"/v2/([^/]+)/([^/]+)/manifests/([^/]+)", self.path)
                if m:
                    manifest = json.loads(body)
                    missing = [x["digest"] for x in (manifest["config"], *manifest["layers"]) if x["digest"] not in registry.blobs]
                    if missing:
                        return self._error(400, "BLOB_UNKNOWN", f"blob unknown: {missing[0]}")
                    registry.manifests[m.groups()] = body
                    return self._send(201)
                self._error(404, "NOT_FOUND", "not found")

            def do_GET(self) -> None:
                with registry.lock:
                    registry.log.append((self.path, self.headers.get("Range")))
                if self.path.startswith("/token"):
                    return self._send(200, json.dumps({"token": registry.token}).encode())
                m = re.fullmatch(r"/api/models/([^/]+)/([^/?]+)(?:/revision/[^/?]+)?(?:\?.*)?", self.path)
                if m:
                    files = registry.hf_repos.get((m[1], m[2]))
                    if files is None:
                        return self._send(404, b'{"error":"Repository not found"}', {"Content-Type": "application/json",
                                                                                     "X-Error-Code": "RepoNotFound"})
                    info = {"id": f"{m[1]}/{m[2]}", "modelId": f"{m[1]}/{m[2]}", "sha": HF_COMMIT,
                            "siblings": [{"rfilename": name, "size": len(data)} for name, data in files.items()]}
                    return self._send(200, json.dumps(info).encode(), {"Content-Type": "application/json"})
                found = self._hf_file()
                if found is not None:
                    return self._blob_bytes(found[0], self._hf_headers(found[0]))
                if registry.token and self.headers.get("Authorization") != f"Bearer {registry.token}" \
                        and not self.path.startswith("/cdn/"):
                    host = registry.host
                    return self._send(401, b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}',
                                      {"WWW-Authenticate": f'Bearer realm="http://{host}/token",service="{host}",'
                                                          f'scope="repository:pull"'})
                m = re.fullmatch(r"/v2/([^/]+)/([^/]+)/manifests/([^/]+)", self.path)
                if m:
                    if registry.manifest_status:
                        return self._error(registry.manifest_status, "SERVER", "something went wrong")
                    data = registry.manifests.get(m.groups())
                    if data is None:
                        return self._error(404, "MANIFEST_UNKNOWN", "manifest unknown")
                    return self._send(200, data, {"Content-Type": MANIFEST_TYPE})
                m = re.fullmatch(r"/v2/([^/]+)/([^/]+)/blobs/(sha256:[0-9a-f]{64})", self.path)
                if m:
                    if m[3] not in registry.blobs:
                        return self._error(404, "BLOB_UNKNOWN", "blob unknown")
                    return self._send(307, headers={"Location": f"/cdn/{m[3]}"})
                m = re.fullmatch(r"/cdn/(sha256:[0-9a-f]{64})", self.path)
                if m and m[1] in registry.blobs:
                    return self._blob(m[1])
                self._error(404, "NOT_FOUND", "not found")

            def _blob(self, digest: str) -> None:
                data = registry.blobs[digest]
                if digest in registry.corrupt:
                    data = bytes([data[0] ^ 0xFF]) + data[1:]
                self._blob_bytes(data, {}, digest)

            def _blob_bytes(self, data: bytes, headers: dict, digest: str | None = None) -> None:
                start, end = 0, len(data) - 1
                rng = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
                if rng:
                    start, end = int(rng[1]), min(int(rng[2]) if rng[2] else len(data) - 1, len(data) - 1)
                body = data[start:end + 1]
                self.send_response(206 if rng else 200)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                if rng:
                    self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
                self.end_headers()
                with registry.lock:
                    allowed = min(registry.cut_once.pop(digest, len(body)), len(body))
                self.wfile.write(body[:allowed])
                if allowed < len(body):  # cut: the client sees the connection end early
                    self.wfile.flush()
                    self.close_connection = True

        return Handler
