"""Tokenizer throughput: ossy.tokenizer against tiktoken's o200k_harmony on the same text.

Encodes and decodes a few MB of varied text (prose in several scripts, code, numbers, whitespace
runs, emoji; seeded, generated here) with ossy's tokenizer loaded from the .tiktoken file and
from the gpt-oss tokenizer.json, and with a plain tiktoken Encoding built from the same ranks.
Prints MB/s and tokens/s per path and the ratio ossy / tiktoken (goal: >= 0.8).

Run: .venv/bin/python benchmarks/tokenizer.py [--vocab DIR] [--mb 4] [--repeat 3]
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

import tiktoken
from tiktoken.load import load_tiktoken_bpe

import ossy.tokenizer
from ossy.tokenizer.files import O200K_PATTERN, o200k_harmony_specials

WORDS = (
    "the quick brown fox jumps over lazy dog model token stream harmony analysis final "
    "naïve café Straße Ελληνικά русский текст 東京 日本語 中文 한국어 العربية हिन्दी 😀 🎉 👍🏽 "
    "I'm don't they've 3.14159 1234567 -42 1e10 0x1F def return lambda {x: [1, 2]} => && || "
).split()
SEPARATORS = [" "] * 12 + [", ", ". ", "\n", "\n\n", "\t", "    ", "   \n", "(", ") "]


def corpus(megabytes: float, seed: int = 0) -> str:
    rnd = random.Random(seed)
    parts, size = [], 0
    while size < megabytes * 1e6:
        piece = rnd.choice(WORDS) + rnd.choice(SEPARATORS)
        parts.append(piece)
        size += len(piece.encode())
    return "".join(parts)


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(impls: dict, text: str, repeat: int) -> dict[str, dict]:
    """Best-of-`repeat` times, the implementations interleaved so they share the machine's noise."""
    ids = {name: encode(text) for name, (encode, decode) in impls.items()}
    for name, (encode, decode) in impls.items():
        assert decode(ids[name]) == text.encode(), f"{name}: decode(encode(text)) != text"
    best = {name: [float("inf"), float("inf")] for name in impls}
    for _ in range(repeat):
        for name, (encode, decode) in impls.items():
            best[name][0] = min(best[name][0], timed(lambda: encode(text)))
            best[name][1] = min(best[name][1], timed(lambda: decode(ids[name])))
    mb = len(text.encode()) / 1e6
    rows = {}
    for name, (enc_s, dec_s) in best.items():
        n = len(ids[name])
        rows[name] = {"enc_mbs": mb / enc_s, "enc_tps": n / enc_s, "dec_mbs": mb / dec_s, "dec_tps": n / dec_s}
        print(f"{name:24s} encode {mb / enc_s:7.2f} MB/s {n / enc_s / 1e6:6.2f} Mtok/s   "
              f"decode {mb / dec_s:8.1f} MB/s {n / dec_s / 1e6:7.2f} Mtok/s")  # fmt: skip
    return rows


def main() -> None:
    default_vocab = Path(__file__).resolve().parents[2] / "shared" / "vocab"
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab", type=Path, default=default_vocab, help="folder with o200k_base.tiktoken and gpt-oss/")
    parser.add_argument("--mb", type=float, default=4.0, help="megabytes of text")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    rank_file, json_file = args.vocab / "o200k_base.tiktoken", args.vocab / "gpt-oss" / "tokenizer.json"
    text = corpus(args.mb)
    print(f"text: {len(text.encode()) / 1e6:.2f} MB, {len(text)} chars")

    start = time.perf_counter()
    reference = tiktoken.Encoding("o200k_harmony", pat_str=O200K_PATTERN, mergeable_ranks=load_tiktoken_bpe(str(rank_file)),
                                  special_tokens=o200k_harmony_specials())  # fmt: skip
    print(f"load tiktoken (.tiktoken)          {time.perf_counter() - start:.2f} s")
    loaded = {}
    for label, path in (("ossy (.tiktoken)", rank_file), ("ossy (tokenizer.json)", json_file)):
        start = time.perf_counter()
        loaded[label] = ossy.tokenizer.load(path)
        print(f"load {label:30s}{time.perf_counter() - start:.2f} s")

    impls = {"tiktoken o200k_harmony": (reference.encode_ordinary, reference.decode_bytes)}
    impls |= {label: (tok.encode, tok.decode_bytes) for label, tok in loaded.items()}
    rows = measure(impls, text, args.repeat)
    base = rows["tiktoken o200k_harmony"]
    for label in loaded:
        row = rows[label]
        print(f"ratio {label:24s} encode {row['enc_mbs'] / base['enc_mbs']:.2f}  "
              f"decode {row['dec_mbs'] / base['dec_mbs']:.2f}  (goal >= 0.8)")  # fmt: skip

if __name__ == "__main__":
    main()
