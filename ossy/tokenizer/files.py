"""Reading tokenizer files into a `Tokenizer`: .tiktoken rank files, HF tokenizer.json, GGUF
vocabularies, model dirs.

Owns: the o200k_harmony definition (o200k split pattern + harmony special tokens with their
ids), the GPT-2 byte-level mapping of HF files, and the choice of BPE engine per file: tiktoken
where the file is tiktoken's BPE (a .tiktoken file, or a tokenizer.json in the form HF's
TikTokenConverter writes), HF `tokenizers` for every other byte-level BPE. Does not own:
encoding itself (`ossy.tokenizer.core`).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import tiktoken
from tokenizers import Tokenizer as HFTokenizer

from ossy.model.errors import CheckpointError
from ossy.tokenizer.core import HFBackend, TiktokenBackend, Tokenizer, TokenizerError

O200K_PATTERN = "|".join(
    [
        r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
        r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
        r"\p{N}{1,3}",
        r" ?[^\s\p{L}\p{N}]+[\r\n/]*",
        r"\s*[\r\n]+",
        r"\s+(?!\S)",
        r"\s+",
    ]
)
O200K_BASE_SIZE = 199_998  # ranks 0..199997; the special tokens start right after them
O200K_HARMONY_SIZE = 201_088  # the gpt-oss id space (model vocab_size)
_HARMONY_NAMED = {
    "<|startoftext|>": 199_998,
    "<|endoftext|>": 199_999,
    "<|return|>": 200_002,
    "<|constrain|>": 200_003,
    "<|channel|>": 200_005,
    "<|start|>": 200_006,
    "<|end|>": 200_007,
    "<|message|>": 200_008,
    "<|call|>": 200_012,
}


def o200k_harmony_specials() -> dict[str, int]:
    """Harmony's names: every unnamed id is `<|reserved_N|>`, 200018 included (tiktoken and HF
    also call 200018 `<|endofprompt|>`; openai-harmony does not)."""
    named = set(_HARMONY_NAMED.values())
    reserved = {f"<|reserved_{i}|>": i for i in range(O200K_BASE_SIZE, O200K_HARMONY_SIZE) if i not in named}
    return reserved | _HARMONY_NAMED


def _gpt2_byte_chars() -> dict[str, int]:
    """The GPT-2 byte-level alphabet: printable char -> the byte it stands for."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars, extra = {}, 0
    for b in range(256):
        if b in printable:
            chars[chr(b)] = b
        else:
            chars[chr(256 + extra)] = b
            extra += 1
    return chars


_BYTE_OF_CHAR = _gpt2_byte_chars()


def _unbyte(token: str) -> bytes:
    try:
        return bytes(_BYTE_OF_CHAR[c] for c in token)
    except KeyError:
        raise TokenizerError(f"not a byte-level BPE token: {token!r}") from None


def load(path) -> Tokenizer:
    """A tokenizer from a tokenizer.json, a .tiktoken rank file, a GGUF file's vocabulary, or a
    model directory."""

    from ossy.model.gguf_file import is_gguf  # lazy: gguf and numpy, 0.13 s of every `ossy` command's start

    path = Path(path)
    if path.is_dir():
        path = _tokenizer_file_in(path)
    if is_gguf(path):
        return _from_gguf(path)
    if path.suffix == ".tiktoken":
        return _from_tiktoken(path)
    if path.suffix == ".json":
        return _from_tokenizer_json(path)
    raise TokenizerError(f"not a tokenizer file (tokenizer.json or *.tiktoken): {path}")


def _tokenizer_file_in(directory: Path) -> Path:
    if (directory / "tokenizer.json").is_file():
        return directory / "tokenizer.json"
    rank_files = sorted(directory.glob("*.tiktoken"))
    if len(rank_files) == 1:
        return rank_files[0]
    raise TokenizerError(f"no tokenizer.json or single *.tiktoken file in {directory}")


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise TokenizerError(f"cannot read tokenizer file {path}: {e.strerror}") from None


def _from_tiktoken(path: Path) -> Tokenizer:
    """o200k_harmony: the o200k_base ranks in `path` plus harmony's special tokens."""
    try:
        ranks = {base64.b64decode(tok): int(rank) for tok, rank in (line.split() for line in _read(path).splitlines() if line)}
    except ValueError:
        raise TokenizerError(f"not a .tiktoken rank file: {path}") from None
    if len(ranks) != O200K_BASE_SIZE or max(ranks.values()) != O200K_BASE_SIZE - 1:
        raise TokenizerError(f"{path} is not o200k_base ({len(ranks)} ranks, expected {O200K_BASE_SIZE})")
    specials = o200k_harmony_specials()
    enc = tiktoken.Encoding("o200k_harmony", pat_str=O200K_PATTERN, mergeable_ranks=ranks, special_tokens=specials)
    return Tokenizer(TiktokenBackend(enc), specials, O200K_HARMONY_SIZE)


# GGUF token types (llama.cpp's llama_token_type)
_NORMAL, _CONTROL, _USER_DEFINED, _UNUSED = 1, 3, 4, 5
_GGUF_PATTERNS = {"gpt-4o": O200K_PATTERN}  # tokenizer.ggml.pre -> split pattern


def _from_gguf(path: Path) -> Tokenizer:
    """The byte-level BPE vocabulary a GGUF carries (`tokenizer.ggml.*`), run by tiktoken when it
    is tiktoken's BPE (gpt-oss's is: o200k_harmony). Ollama's `gptoss` files say pre-tokenizer
    "default"; like Ollama's own compatibility layer, ossy reads that as gpt-4o (o200k)."""

    from ossy.model.gguf_file import read  # lazy: as in `load`

    try:
        fields = read(path).fields
    except CheckpointError as exc:
        raise TokenizerError(str(exc)) from None

    def value(key: str, default=None):
        return fields.get(key, default)

    model, pre = value("tokenizer.ggml.model"), value("tokenizer.ggml.pre", "default")
    if model != "gpt2":
        raise TokenizerError(f"{path}: GGUF tokenizer model {model!r} is not supported (byte-level BPE 'gpt2' only)")
    if pre == "default" and value("general.architecture") == "gptoss":
        pre = "gpt-4o"
    if pre not in _GGUF_PATTERNS:
        raise TokenizerError(f"{path}: GGUF pre-tokenizer {pre!r} is not supported (gpt-oss uses 'gpt-4o')")
    tokens, types = value("tokenizer.ggml.tokens", []), value("tokenizer.ggml.token_type", [])
    if not tokens or len(types) != len(tokens):
        raise TokenizerError(f"{path}: GGUF tokenizer has {len(tokens)} tokens and {len(types)} token types")
    vocab = {token: i for i, (token, kind) in enumerate(zip(tokens, types)) if kind == _NORMAL}
    specials = {token: i for i, (token, kind) in enumerate(zip(tokens, types)) if kind in (_CONTROL, _USER_DEFINED)}
    if not _merges_follow_ranks(vocab, value("tokenizer.ggml.merges", [])):
        raise TokenizerError(f"{path}: GGUF vocabulary is not tiktoken's BPE (its merges do not follow the ranks)")
    ranks = {_unbyte(token): rank for token, rank in vocab.items()}
    enc = tiktoken.Encoding(path.name, pat_str=_GGUF_PATTERNS[pre], mergeable_ranks=ranks, special_tokens=specials)
    return Tokenizer(TiktokenBackend(enc), specials, len(tokens))


def _from_tokenizer_json(path: Path) -> Tokenizer:
    text = _read(path).decode("utf-8")
    try:
        spec = json.loads(text)
        vocab = spec["model"]["vocab"]
        added = {t["content"]: t for t in spec.get("added_tokens", [])}
    except (ValueError, KeyError, TypeError):
        raise TokenizerError(f"not a HF tokenizer.json: {path}") from None
    if spec["model"].get("type") != "BPE" or (spec.get("decoder") or {}).get("type") != "ByteLevel":
        raise TokenizerError(f"{path}: only byte-level BPE tokenizers are supported")
    specials = {name: t["id"] for name, t in added.items() if t.get("special")}
    vocab_size = max([*vocab.values(), *(t["id"] for t in added.values())]) + 1
    pattern = _tiktoken_pattern(spec)
    if pattern is not None:
        ranks = {_unbyte(token): rank for token, rank in vocab.items()}
        enc = tiktoken.Encoding(path.name, pat_str=pattern, mergeable_ranks=ranks, special_tokens=specials)
        return Tokenizer(TiktokenBackend(enc), specials, vocab_size)
    return Tokenizer(_hf_backend(text, vocab, added), specials, vocab_size)


def _tiktoken_pattern(spec: dict) -> str | None:
    """The split regex if `spec` is tiktoken's BPE written as a tokenizer.json, else None.

    That form (HF's TikTokenConverter, e.g. gpt-oss): no normaliser, a regex Split followed by a
    regex-free ByteLevel, `ignore_merges`, all 256 bytes in the vocabulary, only special added
    tokens, and merges ordered by the rank (id) of the token they make. tiktoken then
    tokenises exactly like `tokenizers` does (checked token-for-token by the tests).
    """
    model, pre = spec["model"], spec.get("pre_tokenizer") or {}
    steps = pre.get("pretokenizers") if pre.get("type") == "Sequence" else None
    if spec.get("normalizer") or not model.get("ignore_merges") or not steps or len(steps) != 2:
        return None
    if model.get("dropout") or model.get("continuing_subword_prefix") or model.get("end_of_word_suffix"):
        return None
    split, level = steps
    regex = (split.get("pattern") or {}).get("Regex")
    if split.get("type") != "Split" or regex is None or split.get("behavior") != "Isolated" or split.get("invert"):
        return None
    if level.get("type") != "ByteLevel" or level.get("add_prefix_space") or level.get("use_regex"):
        return None
    if not all(t.get("special") for t in spec.get("added_tokens", [])):
        return None
    return regex if _merges_follow_ranks(model["vocab"], model.get("merges", [])) else None


def _merges_follow_ranks(vocab: dict[str, int], merges: list) -> bool:
    if not all(char in vocab for char in _BYTE_OF_CHAR):
        return False
    last = -1
    for merge in merges:
        left, right = merge if isinstance(merge, list) else merge.split(" ", 1)
        rank = vocab.get(left + right)
        if rank is None or rank < last:
            return False
        last = rank
    return True


def _hf_backend(text: str, vocab: dict[str, int], added: dict[str, dict]) -> HFBackend:
    plain, special = HFTokenizer.from_str(text), HFTokenizer.from_str(text)
    plain.encode_special_tokens = True
    id_to_bytes = {rank: _unbyte(token) for token, rank in vocab.items()}
    id_to_bytes.update({t["id"]: name.encode("utf-8") for name, t in added.items()})
    return HFBackend(plain, special, id_to_bytes)
