"""The audit log: created on first write, append-only, filters, caps, concurrent writers."""

from __future__ import annotations

import datetime
import sqlite3
import stat
import threading

import pytest

from ossy.tools.audit import MAX_ARGUMENTS, AuditLog, utc_timestamp


def row(**overrides) -> dict:
    values = dict(conversation="c1", tool="read_file", arguments='{"path": "a"}', decision="allowed",
                  decided_by="policy", status="ok", exit_code=0, duration=0.25, output_bytes=12, truncated=False,
                  error=None, mode="workspace-write", backend="bwrap 0.8.0")
    return {**values, **overrides}


def test_created_on_first_write_in_the_ossy_home(tmp_path):
    log = AuditLog.default(tmp_path / "home")
    assert log.path == tmp_path / "home" / "audit.sqlite"
    assert log.query() == [] and not log.path.exists()  # reading does not create it
    log.record(**row())
    assert stat.S_IMODE(log.path.stat().st_mode) == 0o600
    with sqlite3.connect(log.path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    [stored] = log.query()
    assert stored["time"].endswith("Z") and stored["id"] == 1
    assert {k: v for k, v in stored.items() if k not in ("id", "time")} == row()


def test_rows_are_append_only(tmp_path):
    log = AuditLog(tmp_path / "audit.sqlite")
    log.record(**row())
    with sqlite3.connect(log.path) as db:
        for statement in ("UPDATE calls SET decision = 'denied'", "DELETE FROM calls"):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                db.execute(statement)
    assert log.query()[0]["decision"] == "allowed"


def test_unknown_decisions_are_refused(tmp_path):
    with pytest.raises(sqlite3.IntegrityError):
        AuditLog(tmp_path / "a.sqlite").record(**row(decision="maybe"))


def test_long_or_unencodable_text_is_capped_and_escaped(tmp_path):
    log = AuditLog(tmp_path / "audit.sqlite")
    log.record(**row(arguments="x" * 10_000, tool="t" * 1000, error="e" * 10_000))
    log.record(**row(arguments='{"path": "\ud800"}', tool="bad\udcff"))
    lone, capped = log.query()
    assert capped["arguments"].startswith("x" * MAX_ARGUMENTS) and capped["arguments"].endswith("more characters]")
    assert len(capped["arguments"]) < MAX_ARGUMENTS + 40 and len(capped["tool"]) < 240
    assert len(capped["error"]) < MAX_ARGUMENTS + 40
    assert (lone["arguments"], lone["tool"]) == ('{"path": "\\ud800"}', "bad\\udcff")


def test_query_filters_and_limit(tmp_path):
    log = AuditLog(tmp_path / "audit.sqlite")
    log.record(**row())
    log.record(**row(tool="write_file", decision="denied", decided_by="user", status="denied", exit_code=None))
    log.record(**row(conversation="c2", tool="write_file", decision="approved", decided_by="user"))
    assert [r["id"] for r in log.query()] == [3, 2, 1]  # newest first
    assert [r["id"] for r in log.query(tool="write_file")] == [3, 2]
    assert [r["id"] for r in log.query(conversation="c2")] == [3]
    assert [r["id"] for r in log.query(decision="denied")] == [2]
    assert [r["id"] for r in log.query(tool="write_file", conversation="c1")] == [2]
    assert [r["id"] for r in log.query(limit=2)] == [3, 2]
    assert log.query(decision="denied")[0]["exit_code"] is None


def test_query_since(tmp_path):
    log = AuditLog(tmp_path / "audit.sqlite")
    log.record(**row())
    now = datetime.datetime.now(datetime.timezone.utc)
    assert len(log.query(since=now - datetime.timedelta(minutes=1))) == 1
    assert log.query(since=now + datetime.timedelta(minutes=1)) == []
    assert len(log.query(since=(now - datetime.timedelta(hours=1)).isoformat())) == 1
    assert log.query(since="2999-01-01T00:00:00") == []


def test_timestamps_are_utc():
    when = datetime.datetime(2025, 8, 5, 14, 0, 0, 123456, tzinfo=datetime.timezone(datetime.timedelta(hours=2)))
    assert utc_timestamp(when) == "2025-08-05T12:00:00.123Z"
    assert utc_timestamp(datetime.datetime(2025, 8, 5, 12, 0)) == "2025-08-05T12:00:00.000Z"


def test_concurrent_writers_lose_nothing(tmp_path):
    path = tmp_path / "audit.sqlite"
    logs = [AuditLog(path) for _ in range(4)]  # separate objects: as separate processes would be
    start = threading.Barrier(len(logs))  # all open the new log at once (CI once lost a writer there)

    def write(log: AuditLog, n: int) -> None:
        start.wait()
        for i in range(25):
            log.record(**row(conversation=f"w{n}", exit_code=i))

    threads = [threading.Thread(target=write, args=(log, n)) for n, log in enumerate(logs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(AuditLog(path).query(limit=1000)) == 100
    assert len(AuditLog(path).query(conversation="w3", limit=1000)) == 25
