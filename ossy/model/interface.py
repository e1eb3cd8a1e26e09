"""The model interface the engine drives, whatever computes the model.

Owns `LanguageModel`, a Protocol (no torch at import): what the engine (`ossy.engine.scheduler`)
may use of a loaded model. `ossy.model.gptoss.GptOss` implements it, on PyTorch alone or with
ossy's native kernels (`backend` says which); a GGUF or remote backend can go behind it too.
Does not own: loading (`ossy.model.loading.open_model`) or any math.

The contract, in the engine's words:
  * `new_cache(rewind)` gives an empty cache for one sequence (a slot); `rewind` is how many
    recent positions of the sliding layers it keeps beyond their window, so a slot can step
    back that far and reuse its prefix.
  * `forward_batch([(ids [T_b], cache_b), ...], last_only)` runs every sequence one step, each
    on its own cache (which it extends by T_b), and returns fp32 logits [T_b or 1, V] each;
    `forward(ids, cache, last_only)` is the one-sequence case.
  * `embedding(ids)` is the embedding of token ids [T]: the mean of the final normed hidden states,
    L2-normalised, fp32 [H], on a fresh cache (it touches no slot).
  * `last_routing` (optional) is what the last `forward`/`forward_batch` routed: int64 counts
    [L, B, E] of how many of sequence b's tokens chose expert e in layer l (None or absent: the
    backend cannot tell). The engine sums it per request and per loaded model.
  * `weight_bytes()` is the memory its weights hold (shared storage counted once); `device` is
    where they are ("cpu", "cuda:0"), `config` the model's configuration.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from ossy.model.config import GptOssConfig


@runtime_checkable
class LanguageModel(Protocol):
    config: GptOssConfig

    @property
    def backend(self) -> str:
        """What computes it: "native-avx512", "native-avx2" (ossy's kernels) or "torch"."""

    @property
    def device(self) -> str:
        """Where the weights are: "cpu", "cuda:0"."""

    def new_cache(self, rewind: int = 0) -> Any: ...

    def forward(self, token_ids: Any, cache: Any, last_only: bool = False) -> Any: ...

    def forward_batch(self, sequences: list[tuple[Any, Any]], last_only: bool = False) -> list[Any]: ...

    def embedding(self, token_ids: Any) -> Any: ...

    def weight_bytes(self) -> int: ...
