"""KV cache of one sequence: per layer, the post-RoPE keys and values it has seen, with positions.

Owns: storage and growth of keys/values. Full-attention layers keep every position (buffers
grow by doubling); sliding layers keep only the last `sliding_window` positions in a ring
buffer. Each layer hands attention the keys it must consider together with their absolute
positions, so the mask (`ossy.model.gptoss`) is computed from positions alone.
`truncate(n)` forgets positions >= n (prefix reuse by the engine); a sliding layer can rewind
only while its ring still holds the window before n, so a cache built with `rewind=R` keeps R
extra ring slots (positions are masked by `visible_keys`, so the extra keys change no result).
Does not own: the attention math or masks, batching several sequences (the model takes a list of
caches), or eviction policies beyond the window.
"""

from __future__ import annotations

import torch

from ossy.model.config import GptOssConfig

_EMPTY = -(2**62)  # position of a never-written ring slot: outside every window


class LayerCache:
    """Keys and values of one layer. `update` stores a chunk and returns what to attend over."""

    def __init__(self, kv_heads: int, head_dim: int, dtype: torch.dtype, device: torch.device,
                 window: int | None, capacity: int = 256, rewind: int = 0) -> None:
        self.window = window
        size = window + rewind if window is not None else capacity
        self.keys = torch.zeros(size, kv_heads, head_dim, dtype=dtype, device=device)  # [slots, Hkv, D]
        self.values = torch.zeros_like(self.keys)
        self.positions = torch.full((size,), _EMPTY, dtype=torch.long, device=device)  # [slots]
        self.length = 0  # positions stored so far (full layers)

    def update(self, k: torch.Tensor, v: torch.Tensor, positions: torch.Tensor):
        """Add k, v [T, Hkv, D] at `positions` [T]; return (keys, values, key_positions) to attend
        over: [S, Hkv, D], [S, Hkv, D], [S] (they include the new chunk)."""
        if self.window is None:
            return self._append(k, v, positions)
        return self._ring(k, v, positions)

    def _append(self, k, v, positions):
        end = self.length + k.shape[0]
        if end > self.keys.shape[0]:
            self._grow(max(end, 2 * self.keys.shape[0]))
        self.keys[self.length:end] = k
        self.values[self.length:end] = v
        self.positions[self.length:end] = positions
        self.length = end
        return self.keys[:end], self.values[:end], self.positions[:end]

    def _grow(self, size: int) -> None:
        for name in ("keys", "values", "positions"):
            old = getattr(self, name)
            new = old.new_full((size, *old.shape[1:]), _EMPTY if name == "positions" else 0)
            new[: old.shape[0]] = old
            setattr(self, name, new)

    def _ring(self, k, v, positions):
        # attend over the ring (the window before this chunk) plus the whole chunk: with a chunk
        # longer than the window its early queries still need its early keys
        keys = torch.cat((self.keys, k))  # [W + T, Hkv, D]
        values = torch.cat((self.values, v))
        key_positions = torch.cat((self.positions, positions))
        size = self.keys.shape[0]
        tail = slice(max(0, k.shape[0] - size), None)  # the last `size` new positions
        slots = positions[tail] % size
        self.keys[slots] = k[tail]
        self.values[slots] = v[tail]
        self.positions[slots] = positions[tail]
        return keys, values, key_positions

    def can_truncate(self, n: int) -> bool:
        """Whether the keys a query at position n needs (the window before it) are all here."""
        if self.window is None:
            return n <= self.length
        needed = torch.arange(max(0, n - self.window + 1), n, device=self.positions.device)
        return bool((self.positions[needed % self.positions.shape[0]] == needed).all())

    def truncate(self, n: int) -> None:
        if self.window is None:
            self.length = min(self.length, n)
        else:
            self.positions[self.positions >= n] = _EMPTY


class KVCache:
    """The per-layer caches of one sequence and the number of tokens it has consumed."""

    def __init__(self, config: GptOssConfig, dtype: torch.dtype, device: torch.device | str = "cpu",
                 rewind: int = 0) -> None:
        window = config.sliding_window
        self.layers = [
            LayerCache(config.num_key_value_heads, config.head_dim, dtype, torch.device(device),
                       window if config.is_sliding(i) else None, rewind=rewind)
            for i in range(config.num_hidden_layers)
        ]
        self.length = 0  # the next token's position

    def __len__(self) -> int:
        return self.length

    def truncate(self, n: int) -> bool:
        """Forget every position >= n so the next token goes at n; False (nothing changed) when
        a sliding layer has already overwritten keys that position n would attend to."""
        if not 0 <= n <= self.length or not all(layer.can_truncate(n) for layer in self.layers):
            return False
        for layer in self.layers:
            layer.truncate(n)
        self.length = n
        return True
