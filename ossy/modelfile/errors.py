"""The one error type of `ossy.modelfile`, carrying where in the Modelfile the problem is.

Owns the message format every Modelfile error uses:
`<path or "Modelfile">[:<line>[:<column>]]: <what is wrong>[; <what to do instead>]`.
Does not decide what is wrong; the parser and writer build the `reason` text.
"""

from __future__ import annotations

from ossy.errors import OssyError


class ModelfileError(OssyError):
    """A Modelfile that cannot be read or written; `str()` is the whole one-line message."""

    def __init__(
        self,
        reason: str,
        *,
        path: str | None = None,
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        self.reason = reason.replace("\r", "\\r").replace("\n", "\\n")  # always one line
        self.path = path
        self.line = line
        self.column = column
        super().__init__(f"{self.where}: {self.reason}")

    @property
    def where(self) -> str:
        """`path:line:column`, leaving out what is unknown (1-based line and column)."""
        parts = [self.path or "Modelfile"]
        if self.line is not None:
            parts.append(str(self.line))
            if self.column is not None:
                parts.append(str(self.column))
        return ":".join(parts)
