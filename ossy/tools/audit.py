"""The audit log: one row per tool call, in SQLite in the ossy home (`audit.sqlite`).

Owns: the `calls` table (what was called, with which arguments, what was decided and by whom,
and how it ended), writing rows and querying them. Does not own deciding (`ossy.tools.executor`
writes the rows) or printing them (`ossy audit`, `ossy.cli.audit`).

The file is created on first write, readable by its owner only. Rows are append-only: triggers
refuse UPDATE and DELETE. Each operation opens its own connection (WAL journal, busy timeout), so
several processes and threads may write at once. Arguments are stored as JSON text capped at
`MAX_ARGUMENTS` characters (errors too), the tool name (which the model chose) and the
conversation at `MAX_NAME`; lone surrogates are stored escaped.
"""

from __future__ import annotations

import datetime
import fcntl
import os
import sqlite3
import threading
from contextlib import closing
from pathlib import Path

DECISIONS = ("allowed", "approved", "denied", "dry-run", "invalid")
DECIDERS = ("policy", "user", "auto")
MAX_ARGUMENTS = 4096
MAX_NAME = 200

COLUMNS = ("id", "time", "conversation", "tool", "arguments", "decision", "decided_by", "status",
           "exit_code", "duration", "output_bytes", "truncated", "error", "mode", "backend")

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS calls (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time TEXT NOT NULL,                 -- ISO 8601, UTC, e.g. 2025-08-05T12:00:00.123Z
    conversation TEXT NOT NULL,
    tool TEXT NOT NULL,                 -- the tool's name, or the unknown name the model wrote
    arguments TEXT NOT NULL,            -- JSON (or the raw text when it was not JSON), capped
    decision TEXT NOT NULL CHECK (decision IN {DECISIONS}),
    decided_by TEXT NOT NULL CHECK (decided_by IN {DECIDERS}),
    status TEXT NOT NULL,               -- ok, error, denied, invalid, dry-run, timeout
    exit_code INTEGER,                  -- NULL when the tool did not run
    duration REAL NOT NULL,             -- seconds
    output_bytes INTEGER NOT NULL,      -- UTF-8 size of what the tool produced, before the cap
    truncated INTEGER NOT NULL,
    error TEXT,
    mode TEXT NOT NULL,                 -- sandbox mode of the policy
    backend TEXT NOT NULL               -- sandbox backend ("bwrap 0.8.0", "unsandboxed", "")
);
CREATE INDEX IF NOT EXISTS calls_time ON calls (time);
CREATE TRIGGER IF NOT EXISTS calls_no_update BEFORE UPDATE ON calls
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS calls_no_delete BEFORE DELETE ON calls
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
"""


def utc_timestamp(when: datetime.datetime | None = None) -> str:
    """`when` (default now; naive means UTC) as the log writes times: 2025-08-05T12:00:00.123Z."""
    when = when or datetime.datetime.now(datetime.timezone.utc)
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    return when.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def cap(text: str | None, limit: int) -> str | None:
    """`text` storable (lone surrogates escaped) and cut to `limit` characters, saying how much
    was dropped."""
    if text is None:
        return None
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= limit else text[:limit] + f"...[{len(text) - limit} more characters]"


class AuditLog:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None

    @classmethod
    def default(cls, home: Path) -> "AuditLog":
        """The log in the ossy home `home`."""
        return cls(Path(home) / "audit.sqlite")

    def record(self, *, conversation: str, tool: str, arguments: str, decision: str, decided_by: str,
               status: str, exit_code: int | None = None, duration: float = 0.0, output_bytes: int = 0,
               truncated: bool = False, error: str | None = None, mode: str = "", backend: str = "") -> None:
        row = (utc_timestamp(), cap(conversation, MAX_NAME), cap(tool, MAX_NAME), cap(arguments, MAX_ARGUMENTS),
               decision, decided_by, status, exit_code, float(duration), int(output_bytes), int(bool(truncated)),
               cap(error, MAX_ARGUMENTS), mode, backend)
        with self._lock, self._connect() as db:
            db.execute(f"INSERT INTO calls ({', '.join(COLUMNS[1:])}) VALUES ({', '.join('?' * len(row))})", row)

    def query(self, *, tool: str | None = None, conversation: str | None = None, decision: str | None = None,
              since: datetime.datetime | str | None = None, limit: int = 50) -> list[dict]:
        """The newest `limit` rows matching every given filter, newest first."""
        if not self.path.exists():
            return []
        if isinstance(since, str):
            since = datetime.datetime.fromisoformat(since)
        filters = {"tool = ?": tool, "conversation = ?": conversation, "decision = ?": decision,
                   "time >= ?": utc_timestamp(since) if since is not None else None}
        used = {clause: value for clause, value in filters.items() if value is not None}
        where = f"WHERE {' AND '.join(used)}" if used else ""
        with self._lock:
            rows = self._connect().execute(f"SELECT {', '.join(COLUMNS)} FROM calls {where} ORDER BY id DESC LIMIT ?",
                              (*used.values(), max(int(limit), 0))).fetchall()
        return [dict(zip(COLUMNS, row), truncated=bool(row[COLUMNS.index("truncated")])) for row in rows]

    def counts(self) -> dict[tuple[str, str], int]:
        """How many calls each (tool, decision) has in the log."""
        if not self.path.exists():
            return {}
        with self._lock:
            rows = self._connect().execute("SELECT tool, decision, COUNT(*) FROM calls GROUP BY tool, decision").fetchall()
        return {(tool, decision): count for tool, decision, count in rows}

    def _connect(self) -> sqlite3.Connection:
        """The log's one connection, kept open (closing the last connection checkpoints the WAL,
        which cost ~20 ms a call); commits are atomic but not fsynced (WAL, synchronous NORMAL)."""
        if self._db is None:
            self._create()
            self._db = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
            self._db.execute("PRAGMA busy_timeout = 30000")
            self._db.execute("PRAGMA synchronous = NORMAL")
        return self._db

    def _create(self) -> None:
        """Create the file, WAL mode and the schema, one opener at a time (an flock beside the
        log): switching the journal mode needs the database to itself, and SQLite reports
        "database is locked" at once, without waiting, when another opener holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
            with closing(sqlite3.connect(self.path, timeout=30)) as db:
                if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                    db.execute("PRAGMA journal_mode = WAL")
                db.executescript(SCHEMA)
