"""A small synchronous client for ossy's native (Ollama-shaped) HTTP API.

Owns: `Client` (chat / generate streaming NDJSON, show, ps, tags, unload, load, create, copy,
delete, version), `base_url(host)` (what `OSSY_HOST` means to a client), and the mapping of the
server's `{"error": "..."}` bodies (and mid-stream error lines) to `OssyError`s.
Used by the CLI (`ossy run`, `ossy ps`, `ossy stop`) and tests. Does not own: the server.
"""

from ossy.client.client import Client, base_url, server_running

__all__ = ["Client", "base_url", "server_running"]
