"""Runtime settings: the only module that reads environment variables.

Owns: the names and defaults of every OSSY_* variable (and OLLAMA_MODELS, read to find an
existing Ollama store). Does not own: model configuration (`ossy.model.config`) or
per-request options.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    home: Path  # OSSY_HOME, default ~/.ossy
    models: Path  # OSSY_MODELS, default <home>/models
    ollama_models: Path  # OLLAMA_MODELS, default ~/.ollama/models (read-only source)
    host: str  # OSSY_HOST, default 127.0.0.1:11434
    num_parallel: int  # OSSY_NUM_PARALLEL, decode slots
    max_queue: int  # OSSY_MAX_QUEUE, waiting requests before 503
    keep_alive: float = 300.0  # OSSY_KEEP_ALIVE, seconds an idle model stays loaded; < 0 forever
    search_url: str = ""  # OSSY_SEARCH_URL, a SearXNG-style JSON search endpoint for browser.search


def settings(environ: dict[str, str] | None = None) -> Settings:
    """Read the settings from `environ` (default: the process environment) at call time."""
    env = os.environ if environ is None else environ
    home = Path(env.get("OSSY_HOME") or Path.home() / ".ossy").expanduser()
    return Settings(
        home=home,
        models=Path(env.get("OSSY_MODELS") or home / "models").expanduser(),
        ollama_models=Path(env.get("OLLAMA_MODELS") or Path.home() / ".ollama" / "models").expanduser(),
        host=env.get("OSSY_HOST") or "127.0.0.1:11434",
        num_parallel=int(env.get("OSSY_NUM_PARALLEL") or 4),
        max_queue=int(env.get("OSSY_MAX_QUEUE") or 512),
        keep_alive=float(env.get("OSSY_KEEP_ALIVE") or 300),
        search_url=env.get("OSSY_SEARCH_URL") or "",
    )
