"""Documents as the model reads them: HTML to text and the injection hygiene of fetched text.

Owns: `html_to_text` (the stdlib HTML parser; links as `【{id}†{text}】`, the format of gpt-oss's
browser contract, openai/gpt-oss `simple_browser`), `link_marker` and `neutralize`. Used by the
browser toolset (`ossy.tools.browser`) and the document index (`ossy.tools.index`).
Does not own: fetching, pages, or the index.

Injection hygiene (as gpt-oss does it): in fetched text `【】` become `〖〗` and `†` in link text
becomes `‡`, so a document cannot forge a link or a citation; zero-width characters are removed
and control characters are shown escaped. Harmony renders tool output as ordinary text, so
`<|end|>` in a page never becomes a special token.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urldefrag, urljoin, urlsplit

ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"))
CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def neutralize(text: str) -> str:
    """Fetched text as the model may see it: no forged link or citation brackets, no
    zero-width characters, control characters escaped, newlines normalised."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("【", "〖").replace("】", "〗")
    text = text.translate(ZERO_WIDTH).expandtabs(4)
    return CONTROL_RE.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def link_marker(link_id: int, text: str, target: str, base: str) -> str:
    """`【id†text】`, with `†domain` for a link to another site (gpt-oss's format)."""
    text = text.replace("†", "‡")
    domain = urlsplit(target).netloc
    return f"【{link_id}†{text}†{domain}】" if domain and domain != urlsplit(base).netloc else f"【{link_id}†{text}】"


class _HTMLText(HTMLParser):
    """HTML -> text: block elements start lines, headings get `#`, list items `*`, images their
    alt text, links become markers (or plain text with `links=False`); scripts and styles go."""

    SKIP = {"script", "style", "noscript", "template", "svg", "math", "iframe", "object"}
    BLOCKS = {"p", "div", "br", "li", "tr", "section", "article", "header", "footer", "nav", "aside", "main",
              "pre", "blockquote", "table", "ul", "ol", "hr", "dd", "dt", "dl", "form", "figure", "figcaption",
              "h1", "h2", "h3", "h4", "h5", "h6", "title", "body", "address", "details", "summary"}

    def __init__(self, base: str, links: bool) -> None:
        super().__init__(convert_charrefs=True)
        self.base, self.with_links = base, links
        self.out: list[str] = []
        self.title = ""
        self.urls: list[str] = []
        self.skipping = 0  # depth inside SKIP elements
        self.in_title = self.in_pre = False
        self.anchor: tuple[str, list[str]] | None = None  # (href, text parts) of the open <a>
        self.images = 0

    def handle_starttag(self, tag: str, attrs) -> None:
        attrs = dict(attrs)
        if tag == "title":
            self.in_title = True
        elif tag in self.SKIP:
            self.skipping += 1
        if self.skipping:
            return
        if tag in self.BLOCKS:
            self._end_anchor()  # an unclosed <a> ends where a block starts
            self._newline()
        if tag == "pre":
            self.in_pre = True
        elif tag in ("h1", "h2", "h3", "h4", "h5", "h6"):
            self.out.append("#" * int(tag[1]) + " ")
        elif tag == "li":
            self.out.append("* ")
        elif tag == "img":
            alt = (attrs.get("alt") or attrs.get("title") or "").strip()
            self._text(f"[Image {self.images}: {alt}]" if alt else f"[Image {self.images}]")
            self.images += 1
        elif tag == "a" and attrs.get("href") and self.anchor is None:
            self.anchor = (attrs["href"].strip(), [])
        elif tag in ("td", "th"):
            self._text(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self.in_title = False
            return
        if tag in self.SKIP:
            self.skipping = max(0, self.skipping - 1)
            return
        if self.skipping:
            return
        if tag == "a":
            self._end_anchor()
        if tag == "pre":
            self.in_pre = False
        if tag in self.BLOCKS:
            self._newline()

    def handle_data(self, data: str) -> None:
        if self.in_title:
            self.title += data
        elif self.skipping:
            return
        elif self.in_pre:
            self._text(data)
        else:
            data = re.sub(r"\s+", " ", data)
            parts = self.anchor[1] if self.anchor is not None else self.out
            self._text(data.lstrip() if not parts or parts[-1].endswith(("\n", " ")) else data)

    def _text(self, text: str) -> None:
        (self.anchor[1] if self.anchor is not None else self.out).append(text)

    def _end_anchor(self) -> None:
        if self.anchor is not None:
            href, parts = self.anchor
            self.anchor = None
            self._text(self._link(href, " ".join("".join(parts).split())))

    def _newline(self) -> None:
        if self.anchor is None and self.out and not self.out[-1].endswith("\n"):
            self.out.append("\n")

    def _link(self, href: str, text: str) -> str:
        scheme = urlsplit(href).scheme.lower()
        if not text or not self.with_links or href.startswith("#") or scheme not in ("", "http", "https"):
            return text  # in-page anchors, mailto:, javascript:, file: and friends stay plain text
        if scheme or "://" in self.base:
            target = urldefrag(urljoin(self.base, href))[0]
        else:  # a relative link in a local file: a path beside it
            target = str(Path(self.base).parent / unquote(urlsplit(href).path))
        if target not in self.urls:
            self.urls.append(target)
        return link_marker(self.urls.index(target), text, target, self.base)

    def text(self) -> str:
        self._end_anchor()
        lines = [line.rstrip() for line in "".join(self.out).split("\n")]
        return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n")


def html_to_text(html: str, base: str, *, links: bool = True) -> tuple[str, str, list[str]]:
    """(title, text, link targets) of an HTML document; link N of the text is targets[N].
    `base` (a URL or a file path) resolves relative links. Neutralise `html` first when it
    is untrusted: markers made here are the only real ones."""
    parser = _HTMLText(base, links)
    parser.feed(html)
    parser.close()
    return " ".join(parser.title.split()), parser.text(), parser.urls


# ---------------------------------------------------------------- pages and state
