"""The errors ossy.template raises.

Owns: `TemplateError` (every parse or execution failure, worded like Go's text/template) and
`GoError` (what a template function raises to fail the way a Go function returning an error
does). Does not own: the wording of individual messages, which lives where Go produces them.
"""

from __future__ import annotations

import re

from ossy.errors import OssyError

_LOCATION = re.compile(r"^template: [^:]*:(\d+)(?::(\d+))?: ")


class TemplateError(OssyError):
    """A template that Go would reject, or whose execution Go would stop.

    The message reads exactly like Go's (`template: NAME:LINE: what is wrong`, or
    `template: NAME:LINE:COL: executing "NAME" at <...>: what is wrong`). `line` is the line in
    the template text (1-based) and `column` the byte offset within that line as Go prints it,
    both None where Go's message gives none.
    """

    def __init__(self, message: str):
        super().__init__(message)
        found = _LOCATION.match(message)
        self.line: int | None = int(found.group(1)) if found else None
        self.column: int | None = int(found.group(2)) if found and found.group(2) else None


class GoError(Exception):
    """Raised by a template function to report an error, as a Go function returns one."""
