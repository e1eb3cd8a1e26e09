"""`ossy audit`: the tool calls ossy made (the audit log in the ossy home), filtered.

Owns: the subcommand, reading `--since` (ISO time, or an age like 30m, 2h, 1d) and the table
(TIME CONVERSATION TOOL DECISION BY STATUS EXIT DURATION BYTES TRUNCATED, oldest first, times in
UTC). Every cell is shown with control characters escaped: tool names and errors can come from a
model. Does not own the log (`ossy.tools.audit`).
"""

from __future__ import annotations

import argparse
import datetime
import json
import re

from ossy.cli.ps import table
from ossy.config import settings
from ossy.errors import OssyError
from ossy.tools.audit import DECISIONS, AuditLog
from ossy.tools.executor import escape_control

AGE = re.compile(r"(\d+)([smhd])")
AGE_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
COLUMNS = ["TIME", "CONVERSATION", "TOOL", "DECISION", "BY", "STATUS", "EXIT", "DURATION", "BYTES", "TRUNCATED"]


def register(subparsers) -> None:
    p = subparsers.add_parser("audit", help="List the tool calls in the audit log")
    p.add_argument("--tool", help="only calls of this tool")
    p.add_argument("--conversation", help="only calls of this conversation (ossy tools run: cli)")
    p.add_argument("--decision", choices=DECISIONS, help="only calls with this decision")
    p.add_argument("--since", metavar="TIME", help="only calls since an ISO time or an age: 30m, 2h, 1d")
    p.add_argument("--limit", type=int, default=50, help="at most this many calls, the newest (default 50)")
    p.add_argument("--json", action="store_true", help="print the rows as JSON")
    p.set_defaults(func=run_audit)


def parse_since(text: str, now: datetime.datetime | None = None) -> datetime.datetime:
    """An ISO time (naive means UTC) or an age before `now`: "90s", "30m", "2h", "1d"."""
    match = AGE.fullmatch(text.strip())
    if match:
        now = now or datetime.datetime.now(datetime.timezone.utc)
        return now - datetime.timedelta(**{AGE_UNITS[match.group(2)]: int(match.group(1))})
    try:
        when = datetime.datetime.fromisoformat(text.strip())
    except ValueError:
        raise OssyError(f'--since must be an ISO time or an age like 30m, 2h, 1d, not "{text}"') from None
    return when if when.tzinfo else when.replace(tzinfo=datetime.timezone.utc)


def run_audit(args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise OssyError(f"--limit must be at least 1, not {args.limit}")
    since = parse_since(args.since) if args.since else None
    rows = AuditLog.default(settings().home).query(tool=args.tool, conversation=args.conversation, decision=args.decision,
                                    since=since, limit=args.limit)[::-1]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(_table(rows), end="")
    return 0


def _table(rows: list[dict]) -> str:
    cells = [[row["time"][:19].replace("T", " "), row["conversation"], row["tool"], row["decision"],
              row["decided_by"], row["status"], "" if row["exit_code"] is None else str(row["exit_code"]),
              f"{row['duration']:.2f}s", str(row["output_bytes"]), "yes" if row["truncated"] else ""]
             for row in rows]
    return table([COLUMNS] + [[escape_control(cell) for cell in line] for line in cells])
