"""The chat page `ossy serve` shows at http://127.0.0.1:11434/.

Owns: `GET /` (the page for a browser, which asks for text/html; Ollama's "Ollama is running" for
everything else, which is what Ollama's clients probe for) and `GET /page/{file}` (the page's
script, style sheet and the two libraries it uses, vendored from npm: marked 16.4.2 for Markdown
and DOMPurify 3.5.0 to keep the model's HTML inert; their licenses beside them). Everything ships
in the package: no network at run time and no build step. Every page response carries a
Content-Security-Policy that allows only this origin's own scripts, styles and connections, so
whatever a model writes cannot load or send anything elsewhere.
Does not own: what the page calls (`/api/tags`, `/api/show`, `/api/agent`, `/api/experts`: their
own modules) or the origin rules (`ossy.server.guard`, `ossy.server.agent.same_origin`).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, PlainTextResponse

from ossy.errors import NotFoundError

PAGE_DIR = Path(__file__).with_name("page")
FILES = {  # what /page/ serves, and as what
    "app.js": "text/javascript", "style.css": "text/css",
    "vendor/marked.umd.js": "text/javascript", "vendor/purify.min.js": "text/javascript",
}
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def wants_page(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


def register(app: FastAPI) -> None:
    @app.get("/")
    @app.head("/")
    async def root(request: Request):
        if wants_page(request):
            return FileResponse(PAGE_DIR / "index.html", media_type="text/html", headers=HEADERS)
        return PlainTextResponse("Ollama is running")

    @app.get("/page/{name:path}")
    async def page_file(name: str):
        if name not in FILES:
            raise NotFoundError(f"no page file {name!r}")
        return FileResponse(PAGE_DIR / name, media_type=FILES[name], headers=HEADERS)
