"""What stands in front of every route: which browsers and Host names may talk to the API, and how
big a request may be.

Owns:
  * the Origin allow-list. A request that carries an `Origin` header (every browser POST, PUT,
    DELETE and cross-origin fetch does, `text/plain` "simple" requests included) is refused with
    403 unless the origin is allowed: `DEFAULT_ORIGINS` (Ollama's: localhost, 127.0.0.1, [::1] and
    0.0.0.0 over http/https on any port, and the app schemes `app://`, `file://`, `tauri://`,
    `vscode-webview://`, `vscode-file://`) plus the patterns of `OSSY_ORIGINS` / `OLLAMA_ORIGINS`
    (`*` matches within one origin part). `Origin: null` (sandboxed frames, local files) is allowed
    only when listed. A request without `Origin` (curl, the SDKs) passes. Better than Ollama: the
    page the server itself serves is same-origin only when its Host is also allowed (below).
  * CORS for allowed origins: preflights answered 204 with the methods and the headers asked
    for, and `Access-Control-Allow-Origin` on every response to them (`Vary: Origin`).
  * the Host allow-list (DNS rebinding): on a connection that arrived on a loopback address (the
    listener's or the connection's own local address, so also when bound to 0.0.0.0 and reached
    through 127.0.0.1), the Host must be local: localhost or *.localhost, *.local, *.internal,
    this machine's hostname, or an IP address that is loopback, private, link-local or
    unspecified; else 403, as Ollama does.
  * the body limit: `Settings.max_body` bytes, by Content-Length before anything is read and by
    counting what arrives (chunked bodies), answered 413. Blob uploads (`/api/blobs/`) are
    exempt: they stream to disk and are checked against their digest and the free space.
Does not own: the error body shapes (`ossy.server.http.error_response`) or the routes.

Written here rather than with Starlette's CORSMiddleware, which answers a refused preflight
with 400 and lets a refused simple request run (adding no header): the point here is that a
refused origin never reaches a route.
"""

from __future__ import annotations

import ipaddress
import re
import socket

from ossy.errors import ForbiddenError, TooLargeError
from ossy.server.http import error_response

_LOCAL_NAMES = ("localhost", "127.0.0.1", "[::1]", "0.0.0.0")
DEFAULT_ORIGINS = tuple(f"{scheme}://{host}{port}" for host in _LOCAL_NAMES for scheme in ("http", "https")
                        for port in ("", ":*")) + \
    ("app://*", "file://*", "tauri://*", "vscode-webview://*", "vscode-file://*")
_LOCAL_SUFFIXES = (".localhost", ".local", ".internal")
PREFLIGHT_METHODS = "GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS"
BLOBS = "/api/blobs/"


def origin_pattern(origins) -> re.Pattern:
    """One regex for a list of origin patterns; `*` matches any run of characters but '/'."""
    parts = [re.escape(o.strip()).replace(r"\*", "[^/]*") for o in origins if o.strip()]
    return re.compile("|".join(f"(?:{p})" for p in parts) or "(?!)", re.IGNORECASE)


def local_host(host: str) -> bool:
    """Whether a Host header (port stripped) names this machine or a private network address."""
    host = host.strip().lower().rstrip(".")
    if host.startswith("["):
        host = host[1:].split("]", 1)[0]
    if host in ("", "localhost") or host.endswith(_LOCAL_SUFFIXES) or host == socket.gethostname().lower():
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_private or address.is_link_local or address.is_unspecified


def _host_name(host_header: str) -> str:
    if host_header.startswith("["):
        return host_header.split("]", 1)[0] + "]"
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


def _loopback(address: str | None) -> bool:
    try:
        return address is not None and ipaddress.ip_address(address.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


class Guard:
    """ASGI middleware: Host and Origin checks, CORS, the body limit (see the module docstring)."""

    def __init__(self, app, *, origins=(), max_body: int) -> None:
        self.app = app
        self.allowed = origin_pattern((*DEFAULT_ORIGINS, *origins))
        self.max_body = max_body

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        path, method = scope["path"], scope["method"]
        refusal = self._refusal(scope, headers)
        if refusal is not None:
            return await error_response(refusal, path)(scope, receive, send)
        origin = headers.get("origin")
        if origin is not None and method == "OPTIONS" and "access-control-request-method" in headers:
            return await self._preflight(origin, headers, send)
        if not path.startswith(BLOBS):
            length = headers.get("content-length", "")
            if length.isdigit() and int(length) > self.max_body:
                return await error_response(self._too_large(), path)(scope, receive, send)
            receive = self._counted(receive)
        if origin is not None:
            send = self._with_cors(origin, send)
        await self.app(scope, receive, send)

    def _refusal(self, scope, headers: dict) -> ForbiddenError | None:
        host = headers.get("host", "")
        server = (scope.get("server") or (None,))[0]
        if _loopback(server) and not local_host(_host_name(host)):
            return ForbiddenError(f"host {host!r} is not allowed: this server answers local names only "
                                  f"(a guard against DNS rebinding)")
        origin = headers.get("origin")
        if origin is None or self.allowed.fullmatch(origin):
            return None
        scheme = "https" if scope.get("scheme") == "https" else "http"
        if origin.lower() == f"{scheme}://{host}".lower() and local_host(_host_name(host)):
            return None  # the server's own page, reached under a local name
        return ForbiddenError(f"origin {origin!r} is not allowed; add it to OSSY_ORIGINS to let that page "
                              f"use this server")

    def _too_large(self) -> TooLargeError:
        return TooLargeError(f"the request body is larger than {self.max_body} bytes (OSSY_MAX_BODY)")

    def _counted(self, receive):
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    raise self._too_large()
            return message

        return counted

    async def _preflight(self, origin: str, headers: dict, send) -> None:
        reply = [(b"access-control-allow-origin", origin.encode("latin-1")), (b"vary", b"Origin"),
                 (b"access-control-allow-methods", PREFLIGHT_METHODS.encode()),
                 (b"access-control-max-age", b"600"), (b"content-length", b"0")]
        asked = headers.get("access-control-request-headers")
        if asked:
            reply.append((b"access-control-allow-headers", asked.encode("latin-1")))
        if headers.get("access-control-request-private-network") == "true":
            reply.append((b"access-control-allow-private-network", b"true"))
        await send({"type": "http.response.start", "status": 204, "headers": reply})
        await send({"type": "http.response.body", "body": b""})

    @staticmethod
    def _with_cors(origin: str, send):
        async def cors(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []),
                                                   (b"access-control-allow-origin", origin.encode("latin-1")),
                                                   (b"vary", b"Origin")]}
            await send(message)

        return cors
