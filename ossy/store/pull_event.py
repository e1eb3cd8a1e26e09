"""The progress of a pull or a push: `PullEvent`, one line as Ollama's /api/pull and /api/push
stream it, and `Progress`, the callback that receives them.

Owns the events' shape, shared by the registry client (`ossy.store.registry`) and the Hugging Face
download (`ossy.store.huggingface`). Does not own what is pulled or how.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class PullEvent:
    """One progress line, as Ollama's /api/pull streams it."""

    status: str
    digest: str | None = None
    total: int | None = None
    completed: int | None = None

    def to_json(self) -> dict:
        return {k: v for k, v in (("status", self.status), ("digest", self.digest), ("total", self.total),
                                  ("completed", self.completed)) if v is not None}


Progress = Callable[[PullEvent], None]
