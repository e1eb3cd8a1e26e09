"""`ossy serve`: the Ollama- and OpenAI-compatible HTTP server on `OSSY_HOST`.

Owns: the subcommand and its flags (`--host HOST[:PORT]`, `--port PORT`, which override
`OSSY_HOST`, default 127.0.0.1:11434; `--backend`, which overrides OSSY_BACKEND), and wiring
the engine (`ossy.engine.backend.open_engine`: ossy's own, or vLLM), the model store (swept of
dead writers' temp files first) and the settings into `ossy.server.create_app`. Logs one line
per request on stderr. Does not own: the routes (`ossy.server`) or the engine.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace

from ossy.config import parse_backend, settings
from ossy.store import Library
from ossy.store.bundled import install_missing


def register(subparsers) -> None:
    p = subparsers.add_parser("serve", aliases=["start"], help="Start the API server (Ollama, OpenAI and Anthropic APIs)")
    p.add_argument("--host", help="address to listen on, HOST[:PORT] (default: OSSY_HOST or 127.0.0.1:11434)")
    p.add_argument("--port", type=int, help="port to listen on (overrides the one in --host / OSSY_HOST)")
    p.add_argument("--backend", help="what computes: local (ossy's engine), vllm (vLLM in this process) or "
                                     "vllm:URL (a vLLM server); default OSSY_BACKEND or local")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ossy.engine.backend import open_engine  # lazy: torch and fastapi, kept out of `ossy --help`
    from ossy.server import create_app, serve, split_host  # lazy: as above

    s = settings()
    if args.backend is not None:
        s = replace(s, backend=parse_backend(args.backend))
    host, port = split_host(args.host or s.host)
    if args.port is not None:
        port = args.port

    library = Library.from_settings(s)
    library.store.sweep()  # what a killed create left behind
    for problem in install_missing(library):  # the bundled nano, the first time
        print(f"warning: {problem}", file=sys.stderr)
    app = create_app(open_engine(s), library=library, settings=s)
    serve(app, host, port)
    return 0
