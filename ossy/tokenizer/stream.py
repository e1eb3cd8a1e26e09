"""Streaming detokenisation: ids in, text out, never half a UTF-8 character.

Owns: holding back the bytes of a character that a token split (emoji and CJK are often spread
over several byte-level tokens) until the rest arrives. Does not own: the vocabulary
(`ossy.tokenizer.core`) or harmony parsing.
"""

from __future__ import annotations

import codecs


class StreamDecoder:
    """`feed(id)` returns the text that is complete so far; `flush()` returns what is held back.

    Invalid byte sequences become U+FFFD as soon as they are known to be invalid, and an
    incomplete character at the very end becomes U+FFFD on `flush()`.
    """

    def __init__(self, tokenizer, *, skip_special: bool = False) -> None:
        self._tok = tokenizer
        self._skip_special = skip_special
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, token_id: int) -> str:
        if self._skip_special and self._tok.is_special(token_id):
            return ""
        return self._utf8.decode(self._tok.decode_bytes([token_id]))

    def flush(self) -> str:
        text = self._utf8.decode(b"", final=True)
        self._utf8.reset()
        return text
