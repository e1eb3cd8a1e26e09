"""The `browser` toolset: browser.search, browser.open and browser.find, following gpt-oss's
browser contract (openai/gpt-oss `simple_browser`).

Owns: the per-conversation browser state (`ctx.state["browser"]`: a cache of pages by URL and a
page stack whose index is the *cursor*, shown as `[N]`), turning documents into pages (text from
`ossy.tools.html_text`, lines wrapped at 80 columns and shown as
`L{n}: ...` under `[cursor] title (url)` and `**viewing lines [a - b] of N**`, so the model can
cite `【cursor†La-Lb】`), find-in-page, search result pages, and fetching: local files through
`ossy.tools.paths` (workspace only, plus documents the user indexed), http(s) only when the
policy grants network, with every hop's host resolved and refused if any address is loopback,
private, link-local or otherwise not public (our own server listens on 127.0.0.1), the
connection pinned to the checked address, no `file://`, a timeout and a size cap.
Does not own: the document index (`ossy.tools.index`), path containment (`ossy.tools.paths`),
HTML to text and the injection hygiene of fetched text (`ossy.tools.html_text`).
"""

from __future__ import annotations

import codecs
import ipaddress
import json
import re
import socket
import textwrap
from dataclasses import dataclass, field
from urllib.parse import quote

import httpx

from ossy.tools import index, paths
from ossy.tools.base import Tool, ToolContext, ToolError
from ossy.tools.html_text import html_to_text, link_marker, neutralize

WIDTH = 80  # columns a page is wrapped at
VIEW_CHARS = 4096  # a window shows about this much numbered text (gpt-oss: 1,024 tokens)
MAX_DOCUMENT_BYTES = 2 << 20  # a local file or a download is read up to this size
FETCH_TIMEOUT = 15.0  # seconds per HTTP request
MAX_REDIRECTS = 5
FIND_RESULTS, FIND_LINES = 50, 4
MAX_ERROR = 1024  # characters of a fetch error the model sees
SEARCH_DEFAULT, SEARCH_MAX = 10, 50

LINK_RE = re.compile(r"【\d+†([^†】]*)(?:†[^†】]*)?】")
TEXT_TYPES = ("text/", "application/json", "application/xml", "application/xhtml+xml")


@dataclass(frozen=True)
class Link:
    url: str
    line: int | None = None  # open at this line (find results)
    query: str | None = None  # open near the first line with a word of this query (search results)


@dataclass
class Page:
    url: str  # a URL, a file path, "" for a search result page
    title: str
    lines: list[str]
    links: dict[int, Link] = field(default_factory=dict)
    kind: str = "document"  # document | search | find

    @classmethod
    def of_text(cls, url: str, title: str, text: str, links: dict[int, Link] | None = None,
                kind: str = "document") -> "Page":
        return cls(url, title, wrap(text), links or {}, kind)

    def view(self, cursor: int, loc: int, num_lines: int) -> str:
        total = len(self.lines)
        if loc >= total:
            raise ToolError(f"Invalid location parameter: `{loc}`. Cannot exceed page maximum of {total - 1}.")
        end = min(total, loc + num_lines) if num_lines > 0 else self._window_end(loc)
        header = f"[{cursor}] {self.title}" + (f" ({self.url})" if self.url else "")
        body = "\n".join(f"L{i}: {self.lines[i]}" for i in range(loc, end))
        return f"{header}\n**viewing lines [{loc} - {end - 1}] of {total - 1}**\n\n{body}"

    def _window_end(self, loc: int) -> int:
        size, end = 0, loc
        while end < len(self.lines) and (end == loc or size + len(self.lines[end]) + 8 <= VIEW_CHARS):
            size += len(self.lines[end]) + 8
            end += 1
        return end

    def focus(self, link: Link) -> int:
        """Where a page opened through `link` starts when no `loc` is given (4 lines of context)."""
        line = link.line
        if link.query is not None:
            words = [w.lower() for w in re.findall(r"\w+", link.query)]
            line = next((i for i, text in enumerate(self.lines) if any(w in text.lower() for w in words)), None)
        return max(0, line - 4) if line is not None and line > 4 else 0


def wrap(text: str) -> list[str]:
    """Lines of `text` wrapped at WIDTH columns, empty lines kept (as gpt-oss does)."""
    lines: list[str] = []
    for line in text.split("\n"):
        lines += textwrap.wrap(line, width=WIDTH, replace_whitespace=False, drop_whitespace=False) or [""]
    return lines or [""]


@dataclass
class BrowserState:
    pages: dict[str, Page] = field(default_factory=dict)  # documents by URL or path
    stack: list[Page] = field(default_factory=list)  # cursor N is stack[N]

    def page(self, cursor: int) -> Page:
        if not self.stack:
            raise ToolError("No pages to access! Use browser.search or browser.open with a URL or path first.")
        if cursor == -1:
            return self.stack[-1]
        if not 0 <= cursor < len(self.stack):
            raise ToolError(f"Cursor `{cursor}` is out of range. Available cursor indices: [0 - {len(self.stack) - 1}].")
        return self.stack[cursor]

    def show(self, page: Page, loc: int, num_lines: int) -> str:
        """Push `page` as the newest cursor and display it (nothing is pushed on a bad `loc`)."""
        text = page.view(len(self.stack), loc, num_lines)
        self.stack.append(page)
        if page.kind == "document":
            self.pages[page.url] = page
        return text


def _state(ctx: ToolContext) -> BrowserState:
    return ctx.state.setdefault("browser", BrowserState())


def _int(value, name: str) -> int:
    """A whole number from JSON (`3` or `3.0`); the schema already checked it is a number."""
    if isinstance(value, float) and not value.is_integer():
        raise ToolError(f"`{name}` must be a whole number, not {value}")
    return int(value)


# ---------------------------------------------------------------- loading documents

def load(ctx: ToolContext, target: str, *, view_source: bool = False) -> Page:
    """The page for a URL or a file path (fresh: a direct open is a refresh). A path is a
    workspace file (contained and read by `ossy.tools.paths`), else a document the user indexed."""

    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", target):
        scheme = target.split(":", 1)[0].lower()
        if scheme not in ("http", "https"):
            raise ToolError(f"only http(s) URLs and file paths can be opened, not {scheme}: URLs")
        if not ctx.policy.network:
            raise ToolError(f"cannot open {target}: network access is off for this session "
                            "(the user can allow it in the tool policy)")
        content_type, data = fetch(target)
        return _page_of(target, content_type, data.decode(_charset(content_type), errors="replace"), view_source)
    try:
        path = paths.resolve(ctx, target)
    except ToolError:
        indexed = index.document(target, ctx.home)
        if indexed is None:
            raise
        return _page_of(target, "text/plain", indexed[1], view_source, title=indexed[0])
    text, truncated, _ = paths.read_text(ctx, path, MAX_DOCUMENT_BYTES)
    text += f"\n[... file truncated at {MAX_DOCUMENT_BYTES} bytes ...]" if truncated else ""
    html = path.suffix.lower() in index.HTML_SUFFIXES
    return _page_of(str(path), "text/html" if html else "text/plain", text, view_source)


def _page_of(url: str, content_type: str, text: str, view_source: bool, title: str = "") -> Page:
    text = neutralize(text)
    name = url.rstrip("/").rsplit("/", 1)[-1] or url
    if view_source:
        return Page.of_text(f"view-source:{url}", f"Source of {name}", text)
    if "html" in content_type:
        html_title, body, targets = html_to_text(text, url)
        return Page.of_text(url, title or html_title or name, body, {i: Link(t) for i, t in enumerate(targets)})
    return Page.of_text(url, title or index.heading(text) or name, text)


def _charset(content_type: str) -> str:
    """The charset a Content-Type names, if Python knows it; else UTF-8."""
    match = re.search(r"charset=\"?([\w.:-]+)", content_type, re.IGNORECASE)
    try:
        return codecs.lookup(match.group(1)).name if match else "utf-8"
    except LookupError:
        return "utf-8"


# ---------------------------------------------------------------- HTTP

def public_address(host: str, port: int) -> str:
    """The address to connect to for `host`, if every address it resolves to is public."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as e:
        raise ToolError(f"cannot resolve {host}: {e}") from None
    addresses = [ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in infos]
    for address in addresses:
        mapped = getattr(address, "ipv4_mapped", None) or address
        if not mapped.is_global or mapped.is_multicast:
            raise ToolError(f"refused: {host} resolves to {address}, a private, loopback or link-local address")
    return str(addresses[0])


def fetch(url: str, *, params: dict | None = None, allow_private: bool = False) -> tuple[str, bytes]:
    """(content type, body) of a GET, following up to MAX_REDIRECTS redirects, each hop checked
    (http(s) only; public addresses only unless `allow_private`); the body is capped."""
    current = httpx.URL(url, params=params)
    with httpx.Client(timeout=FETCH_TIMEOUT, follow_redirects=False, trust_env=False) as client:
        for _ in range(MAX_REDIRECTS + 1):
            request = _pinned_request(client, current, allow_private)
            try:
                response = client.send(request, stream=True)
                try:
                    if response.is_redirect and "location" in response.headers:
                        current = current.join(response.headers["location"])
                        continue
                    return _checked_body(url, response)
                finally:
                    response.close()
            except httpx.HTTPError as e:
                raise ToolError(f"Error fetching URL `{url}`: {e}"[:MAX_ERROR]) from None
    raise ToolError(f"Error fetching URL `{url}`: more than {MAX_REDIRECTS} redirects")


def _pinned_request(client, url, allow_private: bool):
    """A request to the checked address of `url`'s host, with the host name kept for the Host
    header and TLS (so a second DNS answer cannot point the connection elsewhere)."""
    if url.scheme not in ("http", "https") or not url.host:
        raise ToolError(f"only http(s) URLs can be fetched, not {str(url)[:200]}")
    port = url.port or (443 if url.scheme == "https" else 80)
    address = _any_address(url.host, port) if allow_private else public_address(url.host, port)
    host_header = url.host if url.port is None else f"{url.host}:{url.port}"
    return client.build_request("GET", url.copy_with(host=address), headers={"Host": host_header},
                                extensions={"sni_hostname": url.host})


def _any_address(host: str, port: int) -> str:
    try:
        return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][4][0]
    except (socket.gaierror, UnicodeError) as e:
        raise ToolError(f"cannot resolve {host}: {e}") from None


def _checked_body(url: str, response) -> tuple[str, bytes]:
    """(content type, body up to MAX_DOCUMENT_BYTES) of a text response, else ToolError."""
    if response.status_code >= 400:
        raise ToolError(f"Error fetching URL `{url}`: HTTP {response.status_code}"[:MAX_ERROR])
    content_type = response.headers.get("content-type", "text/html")
    if not content_type.lower().startswith(TEXT_TYPES):
        raise ToolError(f"cannot show `{url}`: its content type is {content_type}, not text"[:MAX_ERROR])
    chunks, size = [], 0
    for chunk in response.iter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= MAX_DOCUMENT_BYTES:
            break
    return content_type, b"".join(chunks)[:MAX_DOCUMENT_BYTES]


# ---------------------------------------------------------------- search

def search_page(ctx: ToolContext, query: str, topn: int) -> Page:
    """Results from the configured web backend (network policy permitting), else the local index."""
    backend = ctx.search_url
    if backend and ctx.policy.network:
        results = _web_search(backend, query, topn)
    else:
        results = [(hit.path, hit.title, hit.snippet) for hit in index.search(query, topn, ctx.home)]
    title = f"Search results for `{neutralize(query)}`"
    if not results:
        where = "the web search backend" if backend and ctx.policy.network else \
            f"the local document index ({index.index_path(ctx.home)}; build it with `ossy index PATH`)"
        return Page.of_text("", title, f"No results for `{neutralize(query)}` in {where}.", kind="search")
    chunks, links = [], {}
    for i, (url, name, snippet) in enumerate(results):
        url, name = neutralize(url), neutralize(name or url)
        chunks.append(f"# {link_marker(i, name, url, '')}\n{url}\n{neutralize(snippet)}")
        links[i] = Link(url, query=query)
    return Page.of_text("", title, "\n\n".join(chunks), links, kind="search")


def _web_search(endpoint: str, query: str, topn: int) -> list[tuple[str, str, str]]:
    """A SearXNG-style JSON endpoint: GET ?q=...&format=json -> {"results": [{url, title, content}]}."""

    _, body = fetch(endpoint, params={"q": query, "format": "json"}, allow_private=True)
    try:
        results = json.loads(body.decode("utf-8", errors="replace")).get("results") or []
    except (ValueError, AttributeError):
        raise ToolError("the web search backend did not answer with JSON results") from None
    return [(str(r.get("url", "")), str(r.get("title", "")), str(r.get("content", "")))
            for r in results[:topn] if isinstance(r, dict) and r.get("url")]


# ---------------------------------------------------------------- find

def find_page(page: Page, pattern: str) -> Page:
    """Case-insensitive matches of `pattern` in `page` (link markup removed), as links."""
    plain = [re.sub(r"【\d+†|】", "", LINK_RE.sub(r"\1", line)) for line in page.lines]
    needle = pattern.lower()
    chunks, links, line = [], {}, 0
    while line < len(plain) and len(chunks) < FIND_RESULTS:
        if needle not in plain[line].lower():
            line += 1
            continue
        links[len(chunks)] = Link(page.url, line=line)
        chunks.append(f"# 【{len(chunks)}†match at L{line}】\n" + "\n".join(plain[line:line + FIND_LINES]))
        line += FIND_LINES
    shown = neutralize(pattern)
    text = "\n\n".join(chunks) if chunks else f"No `find` results for pattern: `{shown}`"
    return Page.of_text(f"{page.url}/find?pattern={quote(pattern)}",
                        f"Find results for text: `{shown}` in `{page.title}`", text, links, kind="find")


# ---------------------------------------------------------------- the tools

def browser_search(args: dict, ctx: ToolContext) -> str:
    topn = min(SEARCH_MAX, max(1, _int(args.get("topn", SEARCH_DEFAULT), "topn")))
    return _state(ctx).show(search_page(ctx, args["query"], topn), 0, -1)


def browser_open(args: dict, ctx: ToolContext) -> str:
    state = _state(ctx)
    target = args.get("id", -1)
    loc, num_lines = _int(args.get("loc", -1), "loc"), _int(args.get("num_lines", -1), "num_lines")
    view_source = bool(args.get("view_source", False))
    link = None
    if isinstance(target, str):
        page = load(ctx, target, view_source=view_source)
    else:
        current = state.page(_int(args.get("cursor", -1), "cursor"))
        link_id = _int(target, "id")
        if link_id >= 0:
            link = current.links.get(link_id)
            if link is None:
                raise ToolError(f"Invalid link id `{link_id}`.")
            cached = state.pages.get(link.url)
            page = cached if cached is not None and not view_source else load(ctx, link.url, view_source=view_source)
        elif view_source:
            if current.kind != "document":
                raise ToolError("a search or find results page has no source to view")
            page = load(ctx, current.url, view_source=True)
        else:
            page = current  # scroll the page at `cursor`
    if loc < 0:
        loc = page.focus(link) if link is not None else 0
    return state.show(page, loc, num_lines)


def browser_find(args: dict, ctx: ToolContext) -> str:
    state = _state(ctx)
    page = state.page(_int(args.get("cursor", -1), "cursor"))
    if page.kind != "document":
        raise ToolError("Cannot run `find` on search results page or find results page")
    return state.show(find_page(page, str(args["pattern"])), 0, -1)


CITE = ("Pages show `[cursor] title (url)` and numbered lines `L{n}: ...`; cite them as "
        "`【{cursor}†L{start}(-L{end})?】`, e.g. `【6†L9-L11】`. Links appear as `【{id}†text】`.")

SEARCH = Tool(
    "browser.search", "browser",
    "Searches for information related to `query` and displays `topn` results: the local document index "
    "(built with `ossy index PATH`), or the configured web search when network access is allowed. " + CITE,
    {"type": "object", "additionalProperties": False, "required": ["query"],
     "properties": {"query": {"type": "string", "minLength": 1, "maxLength": 1000},
                    "topn": {"type": "number", "default": SEARCH_DEFAULT},
                    "source": {"type": "string"}}},
    browser_search, timeout=30.0)

OPEN = Tool(
    "browser.open", "browser",
    "Opens the link `id` from the page indicated by `cursor` starting at line number `loc`, showing `num_lines` "
    "lines. If `id` is a string it is a URL (http/https, only when network access is allowed) or a file path "
    "in the workspace. Without `id`, scrolls the page at `cursor` (default: the most recent page). " + CITE,
    {"type": "object", "additionalProperties": False,
     "properties": {"id": {"type": ["number", "string"], "default": -1},
                    "cursor": {"type": "number", "default": -1},
                    "loc": {"type": "number", "default": -1},
                    "num_lines": {"type": "number", "default": -1},
                    "view_source": {"type": "boolean", "default": False},
                    "source": {"type": "string"}}},
    browser_open, timeout=30.0)

FIND = Tool(
    "browser.find", "browser",
    "Finds exact (case-insensitive) matches of `pattern` in the current page, or the page given by `cursor`. " + CITE,
    {"type": "object", "additionalProperties": False, "required": ["pattern"],
     "properties": {"pattern": {"type": "string", "minLength": 1, "maxLength": 1000},
                    "cursor": {"type": "number", "default": -1}}},
    browser_find, timeout=10.0)


def toolset() -> list[Tool]:
    return [SEARCH, OPEN, FIND]
