"""The local document index that `browser.search` queries and `ossy index PATH...` builds.

Owns: the SQLite FTS5 database at `<ossy home>/index.sqlite` — which files are indexed (text
files only: binaries are skipped, each file is read up to `MAX_FILE_BYTES`), their titles and
text, incremental updates (unchanged files are skipped by mtime and size, deleted ones dropped),
and ranked search with snippets. Does not own: rendering results for the model or reading
workspace files on the model's behalf (`ossy.tools.browser`), or the command line
(`ossy.cli.index`).

Only the user builds the index (from the command line), so the documents in it are ones the user
chose to make searchable; the browser may show them even when they lie outside the workspace.
"""

from __future__ import annotations

import os
import re
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from ossy.tools.html_text import html_to_text

MAX_FILE_BYTES = 2 << 20  # text kept per file; the rest is not indexed
SNIFF_BYTES = 8192  # a NUL byte or mostly undecodable bytes in this head: a binary file
SKIPPED_DIRS = {"node_modules", "__pycache__"}  # plus every hidden directory (.git, .venv...)
HTML_SUFFIXES = {".html", ".htm", ".xhtml"}

SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    id INTEGER PRIMARY KEY, path TEXT UNIQUE NOT NULL, title TEXT NOT NULL,
    mtime REAL NOT NULL, size INTEGER NOT NULL);
CREATE VIRTUAL TABLE IF NOT EXISTS texts USING fts5(title, body, tokenize='unicode61 remove_diacritics 2');
"""


@dataclass(frozen=True)
class Hit:
    path: str
    title: str
    snippet: str


@dataclass
class Counts:
    indexed: int = 0  # new or changed files written to the index
    unchanged: int = 0
    skipped: int = 0  # binaries, unreadable files
    removed: int = 0  # indexed files that no longer exist


def index_path(home: Path) -> Path:
    return Path(home) / "index.sqlite"


def connect(home: Path) -> sqlite3.Connection:
    path = index_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path)
    db.executescript(SCHEMA)
    return db


def build(paths: Iterable[str | Path], home: Path) -> Counts:
    """Index the text files under `paths` (files or directories), updating what changed."""
    counts = Counts()
    with closing(connect(home)) as db, db:
        for root in (Path(p).expanduser().resolve() for p in paths):
            if not root.exists():
                raise FileNotFoundError(f"{root} does not exist")
            seen = set()
            for file in _files(root):
                seen.add(str(file))
                _index_file(db, file, counts)
            if root.is_dir():
                counts.removed += _drop_missing(db, root, seen)
    return counts


def clear(home: Path) -> int:
    """Empty the index; returns how many documents it held."""
    with closing(connect(home)) as db, db:
        count = db.execute("SELECT count(*) FROM files").fetchone()[0]
        db.execute("DELETE FROM files")
        db.execute("DELETE FROM texts")
    return count


def documents(home: Path) -> list[tuple[str, str]]:
    """(path, title) of every indexed document, by path."""
    with closing(connect(home)) as db:
        return db.execute("SELECT path, title FROM files ORDER BY path").fetchall()


def document(path: str, home: Path) -> tuple[str, str] | None:
    """(title, text) of the indexed document at `path`, or None."""
    if not index_path(home).exists():
        return None
    with closing(connect(home)) as db:
        return db.execute("SELECT texts.title, texts.body FROM files JOIN texts ON texts.rowid = files.id "
                          "WHERE files.path = ?", (path,)).fetchone()


def search(query: str, limit: int, home: Path) -> list[Hit]:
    """Best matches first: all query words if any document has them all, else any of them."""
    words = re.findall(r"\w+", query)
    if not words or not index_path(home).exists():
        return []
    quoted = ['"' + w.replace('"', "") + '"' for w in words]
    with closing(connect(home)) as db:
        for match in (" ".join(quoted), " OR ".join(quoted)):
            rows = db.execute(
                "SELECT files.path, files.title, snippet(texts, 1, '', '', '…', 24) FROM texts "
                "JOIN files ON files.id = texts.rowid WHERE texts MATCH ? ORDER BY rank LIMIT ?",
                (match, max(1, int(limit)))).fetchall()
            if rows:
                return [Hit(path, title, " ".join(snippet.split())) for path, title, snippet in rows]
    return []


def _files(root: Path) -> Iterator[Path]:
    """Regular files under `root` (or `root` itself), not following symlinks, hidden and
    build directories left out."""
    if root.is_file():
        yield root
        return
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in SKIPPED_DIRS)
        for name in sorted(names):
            path = Path(folder, name)
            if not name.startswith(".") and path.is_file() and not path.is_symlink():
                yield path


def _index_file(db: sqlite3.Connection, file: Path, counts: Counts) -> None:
    stat = file.stat()
    row = db.execute("SELECT id, mtime, size FROM files WHERE path = ?", (str(file),)).fetchone()
    if row and (row[1], row[2]) == (stat.st_mtime, stat.st_size):
        counts.unchanged += 1
        return
    text = _read_text(file)
    if text is None:
        counts.skipped += 1
        return
    title, body = _title_and_body(file, text)
    if row:
        db.execute("DELETE FROM texts WHERE rowid = ?", (row[0],))
        db.execute("UPDATE files SET title = ?, mtime = ?, size = ? WHERE id = ?",
                   (title, stat.st_mtime, stat.st_size, row[0]))
        doc_id = row[0]
    else:
        doc_id = db.execute("INSERT INTO files (path, title, mtime, size) VALUES (?, ?, ?, ?)",
                            (str(file), title, stat.st_mtime, stat.st_size)).lastrowid
    db.execute("INSERT INTO texts (rowid, title, body) VALUES (?, ?, ?)", (doc_id, title, body))
    counts.indexed += 1


def _drop_missing(db: sqlite3.Connection, root: Path, seen: set[str]) -> int:
    prefix = str(root).rstrip(os.sep) + os.sep
    rows = db.execute("SELECT id, path FROM files WHERE substr(path, 1, ?) = ?", (len(prefix), prefix)).fetchall()
    gone = [doc_id for doc_id, path in rows if path not in seen]
    for doc_id in gone:
        db.execute("DELETE FROM files WHERE id = ?", (doc_id,))
        db.execute("DELETE FROM texts WHERE rowid = ?", (doc_id,))
    return len(gone)


def _read_text(file: Path) -> str | None:
    """The file's text (first MAX_FILE_BYTES), or None for a binary or unreadable file."""
    try:
        with open(file, "rb") as f:
            data = f.read(MAX_FILE_BYTES)
    except OSError:
        return None
    head = data[:SNIFF_BYTES]
    if b"\0" in head:
        return None
    sniff = head.decode("utf-8", errors="replace")
    if sniff.count("\ufffd") > len(sniff) // 10:
        return None
    return data.decode("utf-8", errors="replace")


def _title_and_body(file: Path, text: str) -> tuple[str, str]:
    if file.suffix.lower() in HTML_SUFFIXES:
        title, body, _ = html_to_text(text, str(file), links=False)
        return title or file.name, body
    return heading(text) or file.name, text


def heading(text: str) -> str | None:
    """The first Markdown `# heading` near the top of `text`, the document's title."""
    match = re.search(r"^#\s+(.+)$", text[:4096], re.MULTILINE)
    return match.group(1).strip() if match else None
