"""`ossy index PATH... [--clear] [--list]`: build or update the local document index that the
browser tool's `browser.search` queries.

Owns: the subcommand and what it prints (files indexed, where the index lives). Does not own
the index itself (`ossy.tools.index`).
"""

from __future__ import annotations

import argparse

from ossy.config import settings
from ossy.errors import OssyError
from ossy.tools import index


def register(subparsers) -> None:
    p = subparsers.add_parser("index", help="Index local documents for the browser tool's search")
    p.add_argument("paths", nargs="*", metavar="PATH", help="files or directories to index (text files only)")
    p.add_argument("--clear", action="store_true", help="empty the index first")
    p.add_argument("--list", action="store_true", help="list the indexed documents")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not (args.paths or args.clear or args.list):
        raise OssyError("give one or more paths to index, or --clear or --list")
    home = settings().home
    where = index.index_path(home)
    if args.clear:
        print(f"Removed {index.clear(home)} documents from {where}")
    if args.paths:
        try:
            counts = index.build(args.paths, home)
        except FileNotFoundError as exc:
            raise OssyError(str(exc)) from None
        print(f"Indexed {counts.indexed} files ({counts.unchanged} unchanged, {counts.skipped} skipped as binary "
              f"or unreadable, {counts.removed} removed) in {where}")
    if args.list:
        docs = index.documents(home)
        for path, title in docs:
            print(f"{path}\t{title}")
        print(f"{len(docs)} documents in {where}")
    return 0
