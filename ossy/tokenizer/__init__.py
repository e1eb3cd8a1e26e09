"""Tokenizers for gpt-oss: `load(path)` gives a `Tokenizer` (encode, decode, special tokens,
streaming decoder) from a HF tokenizer.json, a .tiktoken rank file (o200k_harmony) or a model
directory.

Owns: the public tokenizer API. Does not own: harmony (rendering and parsing live in
`ossy.harmony`, which asks the tokenizer for special-token ids by name).

Library choice, by measurement (2 shared CPU cores, the real gpt-oss files, 1.36 MB of varied
text, tiktoken 0.14.0 vs tokenizers 0.23.3; both gave identical ids):
  load:   tiktoken from o200k_base.tiktoken 0.60 s; tokenizers from gpt-oss tokenizer.json 1.97 s
  encode: tiktoken 9.2 MB/s (2.7 M tokens/s); tokenizers 0.8 MB/s (0.24 M tokens/s)
  decode: tiktoken 32.7 M tokens/s; tokenizers 4.7 M tokens/s
So tiktoken is the engine wherever it is exact: .tiktoken files and tokenizer.json files that are
tiktoken's BPE in HF form (gpt-oss's is; its ranks are converted, no `tokenizers` load at all).
Any other byte-level BPE tokenizer.json (a small model's own trained vocabulary) goes through
`tokenizers`, which is exact for every file it can read; speed matters less for those.
`benchmarks/tokenizer.py` (4 MB): ossy / tiktoken = 0.94-1.0 encode, 1.0 decode.
"""

from ossy.tokenizer.core import Tokenizer, TokenizerError, UnknownTokenError
from ossy.tokenizer.files import load

__all__ = ["Tokenizer", "TokenizerError", "UnknownTokenError", "load"]
