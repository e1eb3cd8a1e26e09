"""Which engine serves: ossy's own (`LocalEngine`) or vLLM (`VllmEngine`), as the settings say.

Owns: `open_engine(settings)`, the one place `ossy serve` and the in-process server of `ossy run`
turn OSSY_BACKEND ("local", "vllm", "vllm:URL") and OSSY_VLLM_ARGS into an `Engine`.
Does not own: either engine, or reading the settings (`ossy.config`).
"""

from __future__ import annotations

from ossy.config import Settings
from ossy.engine.protocol import Engine
from ossy.engine.scheduler import LocalEngine
from ossy.engine.vllm import InProcess, Remote, VllmEngine


def open_engine(s: Settings) -> Engine:
    """The engine `s.backend` names: "local" ossy's, "vllm" vLLM in this process (engine
    arguments `s.vllm_args`), "vllm:URL" the vLLM server at URL."""
    if s.backend == "local":
        return LocalEngine.from_settings(s)
    if s.backend == "vllm":
        return VllmEngine(InProcess(s.vllm_args), max_queue=s.max_queue)
    return VllmEngine(Remote(s.backend.removeprefix("vllm:")), max_queue=s.max_queue)
