"""What every route shares: the engine, the model resolver, the store, the Responses store.

Owns `State` and its helpers that both API families use (resolving a name off the event loop,
starting a turn, per-request ids). Does not own any HTTP shape.
"""

from __future__ import annotations

import itertools
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import anyio

from ossy.chat import ChatRequest, Turn
from ossy.config import Settings
from ossy.engine.protocol import Engine, ModelResolver, ResolvedModel, Stats
from ossy.server.response_store import ResponseStore
from ossy.store import Library


@dataclass
class State:
    engine: Engine
    resolver: ModelResolver
    library: Library | None = None  # /api/tags, show, create, copy, delete; None: those answer 501
    create_root: Path | None = None  # OSSY_CREATE_ROOT: /api/create may read `from` directories below it
    responses: ResponseStore = field(default_factory=lambda: ResponseStore(None))  # /v1/responses store
    on_turn: Callable[[str, Stats], None] | None = None  # each finished turn's stats (the metrics)
    workspace: Path = field(default_factory=Path.cwd)  # where the page's tools act (`ossy.server.agent`)
    settings: Settings | None = None  # the server's: the page's tools and `show`'s compute use them
    started: float = field(default_factory=time.time)
    _ids: itertools.count = field(default_factory=itertools.count)

    async def resolve(self, name: str) -> ResolvedModel:
        """The model for `name` (NotFoundError -> 404); store reads and tokenizer loads run in a thread."""
        return await anyio.to_thread.run_sync(self.resolver.resolve, name)

    async def start(self, model: ResolvedModel, request: ChatRequest) -> Turn:
        """A started turn: prompt built and admitted by the engine, or the error raised now."""
        request.request_id = request.request_id or self.request_id()
        turn = Turn(self.engine, model, request, on_finish=self.on_turn)
        await anyio.to_thread.run_sync(turn.build_prompt)  # tokenizing is CPU work: off the event loop
        await turn.start()
        return turn

    def request_id(self) -> str:
        return f"{next(self._ids):06d}-{secrets.token_hex(4)}"

    def remember(self, response_id: str, record: dict) -> None:
        self.responses.put(response_id, record)
