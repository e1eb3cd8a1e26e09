"""`Client`: the native API over httpx. See the package docstring."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx

from ossy.config import parse_host, settings
from ossy.errors import ConflictError, NotFoundError, OssyError, UnavailableError

_BY_STATUS = {404: NotFoundError, 409: ConflictError, 503: UnavailableError}


def base_url(host: str) -> str:
    """`OSSY_HOST` as a URL a client can connect to (`ossy.config.parse_host`): "127.0.0.1:11434",
    ":8080", "myhost", "http://h:1/" all work; no address or a wildcard bind address (0.0.0.0, ::)
    means this machine."""
    scheme, address, port = parse_host(host)
    if address in ("", "0.0.0.0", "::"):
        address = "127.0.0.1"
    return f"{scheme}://{f'[{address}]' if ':' in address else address}:{port}"


def _error(status: int, message: str) -> OssyError:
    return _BY_STATUS.get(status, OssyError)(message)


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip() or f"HTTP {response.status_code}"
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):  # OpenAI's shape
        error = error.get("message")
    return str(error) if error else f"HTTP {response.status_code}"


def server_running(host: str, timeout: float = 0.5) -> bool:
    """Whether an ossy (or Ollama) server answers GET /api/version at `host`."""
    try:
        response = httpx.get(base_url(host) + "/api/version", timeout=timeout)
    except httpx.HTTPError:
        return False
    return response.status_code == 200


class Client:
    """The native API. Streaming calls return iterators of the NDJSON chunks (dicts); closing
    the iterator early (or Ctrl-C while reading it) closes the connection, which makes the
    server cancel the generation. Every failure is an `OssyError` with a one-line message."""

    def __init__(self, host: str | None = None, *, timeout: float | None = None) -> None:
        if host is None:
            host = settings().host
        self.base_url = base_url(host)
        self._http = httpx.Client(base_url=self.base_url, timeout=httpx.Timeout(timeout, connect=5.0))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- plumbing --------------------------------------------------------------------------------
    def _request(self, method: str, path: str, body: dict | None = None) -> Any:
        try:
            response = self._http.request(method, path, json=body)
        except httpx.HTTPError as e:
            raise OssyError(f"could not reach the ossy server at {self.base_url}: {e}") from None
        if response.status_code >= 400:
            raise _error(response.status_code, _message(response))
        if not response.content.strip():
            return {}
        try:
            return response.json()
        except ValueError:
            raise OssyError(f"{path}: the server did not answer with JSON") from None

    def _stream(self, path: str, body: dict) -> Iterator[dict]:
        try:
            with self._http.stream("POST", path, json=body) as response:
                if response.status_code >= 400:
                    response.read()
                    raise _error(response.status_code, _message(response))
                for line in response.iter_lines():
                    if not line.strip():
                        continue
                    try:
                        chunk = json.loads(line)
                    except ValueError:
                        raise OssyError(f"{path}: the server sent a line that is not JSON: {line[:80]!r}") from None
                    if isinstance(chunk, dict) and "error" in chunk and chunk["error"]:
                        raise OssyError(str(chunk["error"]))
                    yield chunk
        except httpx.HTTPError as e:
            raise OssyError(f"could not reach the ossy server at {self.base_url}: {e}") from None

    def _call(self, path: str, body: dict, stream: bool) -> Iterator[dict] | dict:
        body = {k: v for k, v in body.items() if v is not None}
        if stream:
            return self._stream(path, {**body, "stream": True})
        return self._request("POST", path, {**body, "stream": False})

    # -- generation ------------------------------------------------------------------------------
    def chat(self, model: str, messages: list[dict], *, stream: bool = True, think: bool | str | None = None,
             format: str | dict | None = None, options: dict | None = None, keep_alive: str | float | None = None,
             tools: list[dict] | None = None, **extra) -> Iterator[dict] | dict:
        """POST /api/chat. stream=True: an iterator of chunks (the last has done=True and the stats);
        stream=False: the one response object."""
        body = {"model": model, "messages": messages, "think": think, "format": format, "options": options or None,
                "keep_alive": keep_alive, "tools": tools, **extra}
        return self._call("/api/chat", body, stream)

    def generate(self, model: str, prompt: str = "", *, stream: bool = True, think: bool | str | None = None,
                 format: str | dict | None = None, options: dict | None = None, system: str | None = None,
                 keep_alive: str | float | None = None, **extra) -> Iterator[dict] | dict:
        """POST /api/generate, like `chat`."""
        body = {"model": model, "prompt": prompt, "think": think, "format": format, "options": options or None,
                "system": system, "keep_alive": keep_alive, **extra}
        return self._call("/api/generate", body, stream)

    def load(self, model: str, keep_alive: str | float | None = None) -> dict:
        """Load `model` (an empty /api/generate)."""
        return self._call("/api/generate", {"model": model, "keep_alive": keep_alive}, False)

    def unload(self, model: str) -> dict:
        """Unload `model` now (keep_alive 0), as `ossy stop` does."""
        return self._call("/api/generate", {"model": model, "keep_alive": 0}, False)

    # -- models ----------------------------------------------------------------------------------
    def version(self) -> str:
        return self._request("GET", "/api/version").get("version", "")

    def tags(self) -> list[dict]:
        return self._request("GET", "/api/tags").get("models", [])

    def ps(self) -> list[dict]:
        return self._request("GET", "/api/ps").get("models", [])

    def experts(self) -> list[dict]:
        """GET /api/experts (ossy): each loaded model's routing counts."""
        return self._request("GET", "/api/experts").get("models", [])

    def show(self, model: str, verbose: bool = False) -> dict:
        return self._request("POST", "/api/show", {"model": model, **({"verbose": True} if verbose else {})})

    def create(self, model: str, *, stream: bool = False, **fields) -> Iterator[dict] | dict:
        """POST /api/create. `fields`: from_ (or from), system, template, parameters, messages,
        license, files, ... as the API names them."""
        if "from_" in fields:
            fields["from"] = fields.pop("from_")
        return self._call("/api/create", {"model": model, **fields}, stream)

    def pull(self, model: str, *, insecure: bool = False, stream: bool = True) -> Iterator[dict] | dict:
        """POST /api/pull: progress lines ({status, digest, total, completed}) up to "success"."""
        return self._call("/api/pull", {"model": model, "insecure": insecure or None}, stream)

    def push(self, model: str, *, insecure: bool = False, stream: bool = True) -> Iterator[dict] | dict:
        """POST /api/push: progress lines up to "success"."""
        return self._call("/api/push", {"model": model, "insecure": insecure or None}, stream)

    def copy(self, source: str, destination: str) -> None:
        self._request("POST", "/api/copy", {"source": source, "destination": destination})

    def delete(self, model: str) -> None:
        self._request("DELETE", "/api/delete", {"model": model})
