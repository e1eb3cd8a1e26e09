"""Stored Responses API responses (`store`: true), kept across restarts.

Owns: one JSON file per response under `<OSSY_HOME>/responses/` (written atomically; what a
later request's `previous_response_id`, `GET /v1/responses/{id}`, `.../input_items` and `DELETE`
read), with the most recent `MEMORY` records also held in memory. A file that cannot be read
counts as absent (and is logged). Without a directory (`None`), records live in memory only.
Does not own: what a record holds (`ossy.server.responses`).
"""

from __future__ import annotations

import json
import logging
import re
from collections import OrderedDict
from pathlib import Path

from ossy.store.files import atomic_write

MEMORY = 1000
_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")

log = logging.getLogger("ossy.server")


class ResponseStore:
    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        self._memory: OrderedDict[str, dict] = OrderedDict()

    def _file(self, response_id: str) -> Path | None:
        if self.directory is None or not _ID.fullmatch(response_id):
            return None
        return self.directory / f"{response_id}.json"

    def get(self, response_id: str) -> dict | None:
        if response_id in self._memory:
            self._memory.move_to_end(response_id)
            return self._memory[response_id]
        file = self._file(response_id)
        if file is None or not file.is_file():
            return None
        try:
            record = json.loads(file.read_text())
        except (OSError, ValueError) as e:
            log.warning("stored response %s cannot be read: %s", file, e)
            return None
        self._keep(response_id, record)
        return record

    def put(self, response_id: str, record: dict) -> None:
        self._keep(response_id, record)
        file = self._file(response_id)
        if file is not None:
            try:
                file.parent.mkdir(parents=True, exist_ok=True)
                atomic_write(file, json.dumps(record, ensure_ascii=False).encode())
            except OSError as e:  # still served from memory until the process ends
                log.warning("could not store response %s: %s", response_id, e)

    def delete(self, response_id: str) -> bool:
        found = self._memory.pop(response_id, None) is not None
        file = self._file(response_id)
        if file is not None and file.is_file():
            file.unlink(missing_ok=True)
            found = True
        return found

    def _keep(self, response_id: str, record: dict) -> None:
        self._memory[response_id] = record
        self._memory.move_to_end(response_id)
        while len(self._memory) > MEMORY:
            self._memory.popitem(last=False)
