"""`ossy serve`: the Ollama- and OpenAI-compatible HTTP server on `OSSY_HOST`.

Owns: the subcommand and its flags (`--host HOST[:PORT]`, `--port PORT`, which override
`OSSY_HOST`, default 127.0.0.1:11434), and wiring the in-process engine
(`ossy.engine.LocalEngine`), the model store (swept of dead writers' temp files first) and the
settings into `ossy.server.create_app`. Logs one line per
request on stderr. Does not own: the routes (`ossy.server`) or the engine.
"""

from __future__ import annotations

import argparse
import sys

from ossy.config import settings
from ossy.store import Library
from ossy.store.bundled import install_missing


def register(subparsers) -> None:
    p = subparsers.add_parser("serve", aliases=["start"], help="Start the API server (Ollama, OpenAI and Anthropic APIs)")
    p.add_argument("--host", help="address to listen on, HOST[:PORT] (default: OSSY_HOST or 127.0.0.1:11434)")
    p.add_argument("--port", type=int, help="port to listen on (overrides the one in --host / OSSY_HOST)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ossy.engine.scheduler import LocalEngine  # lazy: torch and fastapi, kept out of `ossy --help`
    from ossy.server import create_app, serve, split_host  # lazy: as above

    s = settings()
    host, port = split_host(args.host or s.host)
    if args.port is not None:
        port = args.port

    library = Library.from_settings(s)
    library.store.sweep()  # what a killed create left behind
    for problem in install_missing(library):  # the bundled nano, the first time
        print(f"warning: {problem}", file=sys.stderr)
    app = create_app(LocalEngine.from_settings(s), library=library, settings=s)
    serve(app, host, port)
    return 0
