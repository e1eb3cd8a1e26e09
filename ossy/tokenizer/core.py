"""The `Tokenizer` object: one interface over two BPE engines (tiktoken and HF `tokenizers`).

Owns: encoding and decoding with and without special tokens, special-token lookup by name, and
the typed tokenizer errors. Does not own: reading tokenizer files (`ossy.tokenizer.files`),
streaming detokenisation (`ossy.tokenizer.stream`), or what any special token means (that is
`ossy.harmony.tokens`).
"""

from __future__ import annotations

import functools
from typing import Protocol

from ossy.errors import OssyError
from ossy.tokenizer.stream import StreamDecoder


class TokenizerError(OssyError):
    """A tokenizer file that ossy cannot use, or ids that are not in the vocabulary."""


class UnknownTokenError(TokenizerError, KeyError):
    """`token_id(name)` for a name that is neither a special token nor a single regular token."""

    def __str__(self) -> str:  # KeyError would print the repr of its argument
        return str(self.args[0])


class Backend(Protocol):
    def encode_ordinary(self, text: str) -> list[int]: ...

    def encode_with_special(self, text: str) -> list[int]: ...

    def decode_bytes(self, ids: list[int]) -> bytes: ...


class TiktokenBackend:
    """tiktoken's Rust BPE over mergeable ranks (o200k_harmony and rank-ordered tokenizer.json)."""

    def __init__(self, encoding) -> None:
        self._enc = encoding

    def encode_ordinary(self, text: str) -> list[int]:
        return self._enc.encode_ordinary(text)

    def encode_with_special(self, text: str) -> list[int]:
        return self._enc.encode(text, allowed_special="all")

    def decode_bytes(self, ids: list[int]) -> bytes:
        try:
            return self._enc.decode_bytes(ids)
        except (KeyError, OverflowError, TypeError) as e:
            raise TokenizerError(f"cannot decode token ids: {e}") from None


class HFBackend:
    """HF `tokenizers` for any other byte-level BPE tokenizer.json (e.g. a small trained one).

    `plain` has `encode_special_tokens` set, so special-token strings in text are encoded as
    ordinary text; `special` splits them out as their ids. Decoding uses our own id -> bytes table
    because `tokenizers` only decodes to (lossy) str.
    """

    def __init__(self, plain, special, id_to_bytes: dict[int, bytes]) -> None:
        self._plain, self._special, self._bytes = plain, special, id_to_bytes

    def encode_ordinary(self, text: str) -> list[int]:
        return self._plain.encode(text, add_special_tokens=False).ids

    def encode_with_special(self, text: str) -> list[int]:
        return self._special.encode(text, add_special_tokens=False).ids

    def decode_bytes(self, ids: list[int]) -> bytes:
        try:
            return b"".join([self._bytes[i] for i in ids])
        except (KeyError, TypeError) as e:
            raise TokenizerError(f"cannot decode token id {e}") from None


class Tokenizer:
    """Text <-> token ids for one model. Build it with `ossy.tokenizer.load(path)`."""

    def __init__(self, backend: Backend, special_tokens: dict[str, int], vocab_size: int) -> None:
        self._backend = backend
        self._special = dict(special_tokens)
        self._special_ids = frozenset(self._special.values())
        self.vocab_size = vocab_size  # size of the id space: every valid id is below it

    @property
    def special_tokens(self) -> dict[str, int]:
        return dict(self._special)

    def encode(self, text: str, *, allow_special: bool = False) -> list[int]:
        """Token ids of `text`; special-token strings become their ids only if `allow_special`."""
        if allow_special:
            return self._backend.encode_with_special(text)
        return self._backend.encode_ordinary(text)

    def decode_bytes(self, ids) -> bytes:
        return self._backend.decode_bytes(ids if isinstance(ids, list) else list(ids))

    def decode(self, ids, *, skip_special: bool = False) -> str:
        """Text of `ids`; bytes that are not valid UTF-8 (a cut character) become U+FFFD."""
        if skip_special:
            ids = [i for i in ids if i not in self._special_ids]
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    @functools.cached_property
    def longest_token(self) -> int:
        """Bytes of the longest token (special tokens' names included): a text of n bytes is at
        least n / longest_token tokens, whatever it says."""
        longest = max((len(name.encode()) for name in self._special), default=1)
        for i in range(self.vocab_size):
            if i not in self._special_ids:
                try:
                    longest = max(longest, len(self._backend.decode_bytes([i])))
                except TokenizerError:  # a hole in the id space
                    continue
        return longest

    def token_id(self, name: str) -> int:
        """Id of a special token, or of a string that is exactly one regular token."""
        if name in self._special:
            return self._special[name]
        ids = self.encode(name)
        if len(ids) == 1:
            return ids[0]
        raise UnknownTokenError(f"not a single token in this vocabulary: {name!r}")

    def is_special(self, token_id: int) -> bool:
        return token_id in self._special_ids

    def stream_decoder(self, *, skip_special: bool = False):
        """A decoder fed one id at a time that never emits half a UTF-8 character."""

        return StreamDecoder(self, skip_special=skip_special)
