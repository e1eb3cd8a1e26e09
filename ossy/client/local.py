"""Where the CLI's requests go: a running server, or the same server started in this process.

Owns: `LocalServer` (an ASGI app served by uvicorn in a background thread on a free loopback
port; the CLI then uses the ordinary `Client` against it, so in-process and remote runs share
every code path) and `connect()` (probe `settings().host` with GET /api/version; when nothing
answers, build the app with `ossy.server`'s factory and serve it locally). Does not own the app.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from ossy.client.client import Client, server_running
from ossy.config import settings
from ossy.errors import OssyError
from ossy.store import Library
from ossy.store.bundled import install_missing


class LocalServer:
    """`with LocalServer(app) as server:` serves `app` on 127.0.0.1:<free port> until the block ends."""

    def __init__(self, app, *, start_timeout: float = 60.0) -> None:
        self.app = app
        self.start_timeout = start_timeout
        self.host = ""
        self._server = None
        self._thread: threading.Thread | None = None

    def start(self) -> "LocalServer":
        import uvicorn  # lazy: 0.1 s of start-up, needed only when no server answers

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.host = f"127.0.0.1:{sock.getsockname()[1]}"
        config = uvicorn.Config(self.app, log_level="warning", access_log=False, lifespan="auto")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]},
                                        name="ossy-local-server", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + self.start_timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise OssyError("could not start the in-process ossy server")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = self._thread = None

    def __enter__(self) -> "LocalServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def default_app():
    """The server's ASGI app over the engine OSSY_BACKEND names and the model store (for in-process runs)."""
    from ossy.engine.backend import open_engine  # lazy: torch, loaded only when no server answers
    try:
        from ossy.server import create_app  # lazy: as above (fastapi too)
    except ImportError as e:  # pragma: no cover - a broken installation
        raise OssyError(f"no ossy server is running and the in-process one cannot start ({e}); "
                        "start one with `ossy serve`") from None

    s = settings()
    library = Library.from_settings(s)
    install_missing(library)  # as `ossy serve` does when it starts: the bundled nano, the first time
    return create_app(open_engine(s), library=library, settings=s)


@contextmanager
def connect(host: str | None = None, *, app_factory=default_app) -> Iterator[Client]:
    """A `Client` for the server at `host` (default `settings().host`) if one answers, else for
    an in-process server built by `app_factory` and stopped when the block ends."""
    if host is None:
        host = settings().host
    if server_running(host):
        with Client(host) as client:
            yield client
        return
    with LocalServer(app_factory()) as local, Client(local.host) as client:
        yield client
