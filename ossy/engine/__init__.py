"""The engine: token ids in, token ids out (it never sees text).

Owns nothing itself: `ossy.engine.protocol` (the contract with the server, importable without
torch), `ossy.engine.scheduler.LocalEngine` (the continuously batching engine), `ossy.engine.decode`
(`generate`, the plain loop behind `ossy.api.Model.generate`), `ossy.engine.sampling`. `LocalEngine`
and `generate` are re-exported here, imported on first use so that importing the protocol never
loads torch.
Does not own: the model (`ossy.model`), tokenizing or chat formats.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ossy.engine.decode import generate
    from ossy.engine.scheduler import LocalEngine


def __getattr__(name: str):
    if name == "LocalEngine":
        from ossy.engine.scheduler import LocalEngine

        return LocalEngine
    if name == "generate":
        from ossy.engine.decode import generate

        return generate
    raise AttributeError(f"module 'ossy.engine' has no attribute {name!r}")


__all__ = ["LocalEngine", "generate"]
