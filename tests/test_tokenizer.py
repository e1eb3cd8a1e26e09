"""ossy.tokenizer against tiktoken's o200k_harmony, HF `tokenizers`, and docs/reference/gpt-oss-spec.md §4."""

from __future__ import annotations

import functools
import json

import pytest
import tiktoken
from hypothesis import given, settings
from hypothesis import strategies as st
from tiktoken.load import load_tiktoken_bpe
from tiktoken_ext import openai_public
from tokenizers import Tokenizer as HFTokenizer

import ossy.tokenizer
from ossy.harmony import tokens as names
from ossy.tokenizer import TokenizerError, UnknownTokenError

O200K_SHA256 = "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"

SPEC_VECTORS = {  # docs/reference/gpt-oss-spec.md §4
    "hello world": [24912, 2375],
    "Hello World": [13225, 5922],
    "assistant": [173781],
    "user": [1428],
    "system": [17360],
    "developer": [77944],
    "analysis": [35644],
    "commentary": [12606, 815],
    "final": [17196],
    "json": [4108],
    " to=functions.get_weather": [316, 28, 44580, 775, 170154],
    "1234567": [7633, 19354, 22],
    "  \n\n  x": [11691, 220, 1215],
    "I'm DON'T": [15390, 153384],
    "naïve café 東京": [1503, 9954, 737, 30469, 185244],
    "Hello world! This is a test.": [13225, 2375, 0, 1328, 382, 261, 1746, 13],
}

CORPUS = [
    "",
    " ",
    "\n",
    "   leading and trailing   ",
    "tabs\t\tand\r\nwindows\rnewlines\n\n\n",
    "whitespace runs:" + " " * 17 + "x" + "\n" * 5 + "\t \t y",
    "numbers 0 7 42 1234567890 3.14159 -2e10 1,000,000 ٣٤٥ ४५६",
    "def f(x):\n    return {'a': [x ** 2 for x in range(10)]}  # comment\n",
    "fn main() { println!(\"{}\", 1 + 2); } // rust\n\tif (a && b || !c) { x->y = *z; }",
    "I'm, you're, they've, we'll, he'd, IT'S, She'S",
    "CamelCaseWords and snake_case_words and SCREAMING_CASE",
    "Emoji: 😀😃🎉👍🏽 👨‍👩‍👧‍👦 🇯🇵 and ❤️",
    "中文文本，日本語のテキスト、한국어 텍스트。",
    "Ελληνικά, русский текст, עברית, العربية, हिन्दी, ไทย",
    "Combining: e\u0301 a\u0308 n\u0303 Zalgo: Z\u0336\u0335a\u0337l\u0338g\u0334o",
    "control \x00\x01\x1f\x7f chars and \u200b zero width \ufeff bom",
    "<|start|>user<|message|>hi<|end|> looks special but is text here",
    "https://example.com/path?query=1&b=2#frag  mail@example.org",
    "¡Hola! ¿Qué tal? Ça va. Straße, Œuvre, ﬁ ligature",
    "💯" * 20 + "a" * 300 + "!" * 50,
]


@pytest.fixture(scope="module")
def tiktoken_file(vocab_dir):
    return vocab_dir / "o200k_base.tiktoken"


@pytest.fixture(scope="module")
def hf_file(vocab_dir):
    return vocab_dir / "gpt-oss" / "tokenizer.json"


@pytest.fixture(scope="module")
def tok(tiktoken_file):
    return ossy.tokenizer.load(tiktoken_file)


@pytest.fixture(scope="module")
def hf_tok(hf_file):
    return ossy.tokenizer.load(hf_file)


@pytest.fixture(scope="module")
def reference(tiktoken_file):
    """tiktoken's own o200k_harmony definition (pattern and specials), fed the local rank file."""
    ranks = load_tiktoken_bpe(str(tiktoken_file), expected_hash=O200K_SHA256)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(openai_public, "load_tiktoken_bpe", lambda *args, **kwargs: ranks)
        return tiktoken.Encoding(**openai_public.o200k_harmony())


@pytest.fixture(scope="module")
def seed_text(shared_dir):
    return "\n".join(p.read_text(encoding="utf-8", errors="replace") for p in sorted((shared_dir / "seeds").glob("*")))


# --- vectors and equality with the references ----------------------------------------------------


@pytest.mark.parametrize("text,ids", SPEC_VECTORS.items())
def test_spec_vectors(tok, hf_tok, text, ids):
    assert tok.encode(text) == ids
    assert hf_tok.encode(text) == ids
    assert tok.decode(ids) == text


def test_equal_to_tiktoken_o200k_harmony(tok, reference, seed_text):
    for text in [*CORPUS, seed_text]:
        assert tok.encode(text) == reference.encode_ordinary(text), text
        assert tok.encode(text, allow_special=True) == reference.encode(text, allowed_special="all"), text
        assert tok.decode(tok.encode(text)) == text


def test_gpt_oss_tokenizer_json_equals_hf_tokenizers(hf_tok, hf_file, seed_text):
    hf = HFTokenizer.from_file(str(hf_file))
    for text in [*CORPUS, seed_text]:
        assert hf_tok.encode(text, allow_special=True) == hf.encode(text, add_special_tokens=False).ids, text


def test_pattern_is_the_pattern_of_the_hf_file_and_tiktoken(hf_file, reference):
    spec = json.loads(hf_file.read_text(encoding="utf-8"))
    assert spec["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] == ossy.tokenizer.files.O200K_PATTERN
    assert reference._pat_str == ossy.tokenizer.files.O200K_PATTERN


# --- id space and special tokens ------------------------------------------------------------------


def test_id_space(tok, hf_tok):
    assert tok.vocab_size == 201088
    assert hf_tok.vocab_size == 200019  # the HF file stops at 200018; the model's logits go to 201087
    assert set(tok.special_tokens.values()) == set(range(199998, 201088))
    assert len(tok.special_tokens) == 201088 - 199998
    assert max(tok.encode("".join(CORPUS))) < 199998


def test_harmony_control_tokens(tok, hf_tok):
    expected = {"<|startoftext|>": 199998, "<|endoftext|>": 199999, "<|return|>": 200002,
                "<|constrain|>": 200003, "<|channel|>": 200005, "<|start|>": 200006,
                "<|end|>": 200007, "<|message|>": 200008, "<|call|>": 200012}  # fmt: skip
    for t in (tok, hf_tok):
        assert {name: t.token_id(name) for name in expected} == expected
        assert all(t.is_special(i) for i in expected.values())
        assert {t.token_id(n) for n in names.CONTROL_TOKENS} <= set(expected.values())
    assert not tok.is_special(24912)


def test_200018_naming(tok, hf_tok):
    """harmony calls 200018 <|reserved_200018|>; HF (and tiktoken, as an alias) <|endofprompt|>."""
    assert tok.token_id("<|reserved_200018|>") == 200018
    assert tok.decode([200018]) == "<|reserved_200018|>"
    assert hf_tok.token_id("<|endofprompt|>") == 200018
    assert hf_tok.decode([200018]) == "<|endofprompt|>"


def test_special_strings_only_with_allow_special(tok):
    text = "<|start|>user<|message|>hi<|end|>"
    assert tok.encode(text, allow_special=True) == [200006, 1428, 200008, 3686, 200007]
    plain = tok.encode(text)
    assert not any(tok.is_special(i) for i in plain)
    assert tok.decode(plain) == text


def test_decode_skip_special_and_bytes(tok):
    ids = tok.encode("<|start|>assistant<|message|>héllo<|end|>", allow_special=True)
    assert tok.decode(ids, skip_special=True) == "assistanthéllo"
    assert tok.decode_bytes(ids) == "<|start|>assistant<|message|>héllo<|end|>".encode()


def test_token_id_of_a_regular_token_and_unknown_names(tok, hf_tok):
    assert tok.token_id("assistant") == 173781
    for t in (tok, hf_tok):
        with pytest.raises(UnknownTokenError) as err:
            t.token_id("<|nope|>")
        assert isinstance(err.value, KeyError) and "<|nope|>" in str(err.value)
    with pytest.raises(UnknownTokenError):
        hf_tok.token_id("<|reserved_200500|>")


@pytest.mark.parametrize("bad", [[201088], [-1], [2**40]])
def test_decode_of_ids_outside_the_vocabulary(tok, bad):
    with pytest.raises(TokenizerError):
        tok.decode(bad)


def test_partial_utf8_is_replaced(tok):
    euro = "€".encode()
    ids = byte_ids(tok, euro)
    assert tok.decode(ids[:2]) == "\ufffd"
    assert tok.decode(ids) == "€"


# --- streaming decoder ----------------------------------------------------------------------------


def byte_ids(tok, data: bytes) -> list[int]:
    """One token per byte (the single-byte tokens), however the text would normally be split."""
    return [single_byte_ids(tok)[b] for b in data]


@functools.cache
def single_byte_ids(tok) -> dict[int, int]:
    ids = {tok.decode_bytes([i]): i for i in range(256)}  # o200k: the first 256 ranks are the bytes
    assert len(ids) == 256 and all(len(b) == 1 for b in ids)
    return {b[0]: i for b, i in ids.items()}


def stream(tok, ids, **kw) -> list[str]:
    dec = tok.stream_decoder(**kw)
    return [dec.feed(i) for i in ids] + [dec.flush()]


@pytest.mark.parametrize("text", ["😀", "👨‍👩‍👧‍👦", "東京", "a€b", "🇯🇵!"])
def test_stream_holds_back_split_characters(tok, text):
    pieces = stream(tok, byte_ids(tok, text.encode()))
    assert "".join(pieces) == text
    assert "\ufffd" not in "".join(pieces)
    assert pieces[0] == ("" if text[0] > "\x7f" else text[0])


@pytest.mark.parametrize("text", CORPUS)
def test_stream_equals_decode(tok, text):
    ids = tok.encode(text)
    pieces = stream(tok, ids)
    assert "".join(pieces) == text
    assert all("\ufffd" not in p for p in pieces)


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=40), st.randoms(use_true_random=False))
def test_stream_random_byte_splits(tok, text, rnd):
    """Random tokenisations of the same bytes (whole tokens or single bytes) stream to the text."""
    data, ids, i = text.encode(), [], 0
    while i < len(data):
        n = rnd.randint(1, 4)
        chunk = data[i : i + n]
        try:
            ids += tok.encode(chunk.decode())
        except UnicodeDecodeError:
            ids += byte_ids(tok, chunk)
        i += n
    assert "".join(stream(tok, ids)) == text


def test_stream_skip_special_and_truncated_end(tok):
    ids = [200006, *tok.encode("ok"), 200007, *byte_ids(tok, "😀".encode())[:3]]
    pieces = stream(tok, ids, skip_special=True)
    assert pieces[:-1] == ["", "ok", "", "", "", ""]
    assert pieces[-1] == "\ufffd"


# --- a small trained tokenizer.json, files and directories ----------------------------------------


@pytest.fixture(scope="module")
def small_json(tmp_path_factory):
    from tokenizers import Tokenizer as HF
    from tokenizers import decoders, models, pre_tokenizers, trainers

    hf = HF(models.BPE())
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    hf.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", *names.CONTROL_TOKENS]
    trainer = trainers.BpeTrainer(
        vocab_size=600, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    hf.train_from_iterator(CORPUS * 20, trainer=trainer)
    path = tmp_path_factory.mktemp("small") / "tokenizer.json"
    hf.save(str(path))
    return path


def test_small_trained_tokenizer(small_json):
    tok = ossy.tokenizer.load(small_json)
    hf = HFTokenizer.from_file(str(small_json))
    assert tok.vocab_size == hf.get_vocab_size() <= 600
    assert tok.token_id("<|start|>") == hf.token_to_id("<|start|>") != 200006
    assert {tok.token_id(n) for n in names.CONTROL_TOKENS} == {hf.token_to_id(n) for n in names.CONTROL_TOKENS}
    text = "<|start|>user<|message|>Straße 東京 😀 1234<|end|>"
    assert tok.encode(text, allow_special=True) == hf.encode(text).ids
    plain = tok.encode(text)
    assert not any(tok.is_special(i) for i in plain)
    assert tok.decode(plain) == text
    assert tok.decode(tok.encode(text, allow_special=True), skip_special=True) == "userStraße 東京 😀 1234"
    for t in CORPUS:
        assert tok.encode(t, allow_special=True) == hf.encode(t).ids
        assert "".join(stream(tok, tok.encode(t))) == t
    with pytest.raises(TokenizerError):
        tok.decode([10_000])


def test_load_from_directories(tmp_path, small_json, tiktoken_file):
    (tmp_path / "m1").mkdir()
    (tmp_path / "m1" / "tokenizer.json").write_bytes(small_json.read_bytes())
    assert ossy.tokenizer.load(tmp_path / "m1").token_id("<|call|>") == ossy.tokenizer.load(small_json).token_id("<|call|>")
    (tmp_path / "m2").mkdir()
    (tmp_path / "m2" / "o200k_base.tiktoken").symlink_to(tiktoken_file)
    assert ossy.tokenizer.load(tmp_path / "m2").encode("hello world") == [24912, 2375]


@pytest.mark.parametrize(
    "name,content",
    [("empty_dir", None), ("x.tiktoken", b"not base64 at all\n"), ("y.tiktoken", b"YQ== 0\n"),
     ("tokenizer.json", b"{not json"), ("model.bin", b"")],  # fmt: skip
)
def test_bad_files_raise_typed_errors(tmp_path, name, content):
    path = tmp_path / name
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    with pytest.raises(TokenizerError):
        ossy.tokenizer.load(path)
    with pytest.raises(TokenizerError):
        ossy.tokenizer.load(tmp_path / "missing.json")
