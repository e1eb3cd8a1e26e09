"""Training nano's tokenizer: a small byte-level BPE with the harmony special tokens.

Owns: `train_tokenizer(texts, vocab_size)`, which returns the text of a standard HF
`tokenizer.json`. Its form is the one `ossy.tokenizer` runs with tiktoken (a regex Split then a
regex-free ByteLevel, `ignore_merges`, merges in rank order, special tokens after the ranks),
and its split pattern is o200k's with digits taken one at a time, so that every number is spelt
digit by digit and column arithmetic is learnable.
Does not own: loading tokenizers (`ossy.tokenizer`) or the corpus (`ossy.train.data.corpus`).

Why not o200k_harmony: its 201,088 rows cost 201,088 x width x 2 matrices x 2 bytes; at width 256
that is 206 MB, eight times the 25 MB budget for the whole model.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

from ossy.harmony import tokens as T
from ossy.tokenizer.files import O200K_PATTERN

DIGITS_PATTERN = O200K_PATTERN.replace(r"\p{N}{1,3}", r"\p{N}")
SPECIAL_TOKENS = (T.STARTOFTEXT, T.ENDOFTEXT, T.RETURN, T.CONSTRAIN, T.CHANNEL, T.START, T.END, T.MESSAGE, T.CALL)


def train_tokenizer(texts: Iterable[str], vocab_size: int) -> str:
    """tokenizer.json text: BPE ranks learned from `texts`, then the special tokens; ids run
    from 0 to `vocab_size` - 1."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(DIGITS_PATTERN), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size - len(SPECIAL_TOKENS), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    tok.add_special_tokens([AddedToken(name, special=True, normalized=False) for name in SPECIAL_TOKENS])
    spec = json.loads(tok.to_str())
    spec["model"]["ignore_merges"] = True  # a word that is one token stays one token (tiktoken's rule)
    if len(spec["model"]["vocab"]) + len(SPECIAL_TOKENS) != vocab_size:
        raise ValueError(f"the corpus is too small for a vocabulary of {vocab_size} tokens")
    return json.dumps(spec, ensure_ascii=False)
