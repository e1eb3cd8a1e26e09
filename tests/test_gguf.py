"""GGUF gpt-oss checkpoints (llama.cpp's flavour and Ollama's two forms) load into exactly the
tensors of the HF checkpoint they were written from, and run to the same logits.

The layout is checked against ggml's own code, not only against our writer: gguf-py's MXFP4
dequantizer (ggml's reference, in `gguf.quants`) reads each expert tensor of the file to the same
values ossy's HF dequantization gives for the checkpoint.
"""

from __future__ import annotations

import json

import gguf
import gguf_files
import numpy as np
import pytest
import torch
from store_util import tiny_config

from ossy.model.errors import CheckpointError, ConfigError
from ossy.model.gguf_checkpoint import GgufCheckpoint
from ossy.model.gguf_file import is_gguf
from ossy.model.loading import open_model
from ossy.model.mxfp4 import dequantize
from ossy.model.tensors import tensor_shapes
from ossy.model.weights import Checkpoint, save_checkpoint


def numpy_tensors(checkpoint: Checkpoint) -> dict[str, np.ndarray]:
    """The checkpoint's tensors as the writer takes them: bf16 as raw uint16, MXFP4 as uint8."""
    out = {}
    for name, t in checkpoint.load(torch.bfloat16).items():
        out[name] = t.view(torch.int16).numpy().view(np.uint16) if t.dtype == torch.bfloat16 else t.numpy()
    return out


@pytest.fixture(scope="module")
def hf(tmp_path_factory):
    """A tiny checkpoint stored as gpt-oss is (bf16 but the MXFP4 experts), with gpt-oss's own
    YaRN settings: the ones Ollama's files leave out and its runtime assumes."""
    config = tiny_config().replace(rope_scaling_factor=32.0, original_max_position_embeddings=4096,
                                   max_position_embeddings=131072)
    gen = torch.Generator().manual_seed(3)
    tensors = {name: (torch.randn(shape, generator=gen) * 0.1).bfloat16()
               for name, shape in tensor_shapes(config, mxfp4=False).items()}
    return Checkpoint.open(save_checkpoint(tmp_path_factory.mktemp("hf") / "ckpt", config, tensors))


def write_gguf(hf: Checkpoint, path, flavour="llama.cpp", **kw):
    config = json.loads((hf.path / "config.json").read_text())
    gguf_files.write(path, numpy_tensors(hf), config, flavour, **kw)
    return path


@pytest.mark.parametrize("flavour", gguf_files.FLAVOURS)
def test_gguf_loads_the_same_tensors_as_the_checkpoint(hf, tmp_path, flavour):
    path = write_gguf(hf, tmp_path / "model", flavour)  # no suffix: an Ollama blob has none
    assert is_gguf(path)
    checkpoint = Checkpoint.open(path)
    assert isinstance(checkpoint, GgufCheckpoint) and checkpoint.mxfp4
    assert checkpoint.config.replace(eos_token_ids=()) == hf.config.replace(eos_token_ids=())
    expected, got = hf.load(torch.bfloat16), checkpoint.load(torch.bfloat16)
    assert got.keys() == expected.keys()
    for name in expected:
        assert got[name].dtype == expected[name].dtype, name
        assert torch.equal(got[name], expected[name]), name


@pytest.mark.parametrize("flavour", gguf_files.FLAVOURS)
def test_gguf_model_gives_the_checkpoints_logits(hf, tmp_path, flavour):
    path = write_gguf(hf, tmp_path / "model.gguf", flavour)
    ids = torch.tensor([5, 17, 3, 99, 42, 7, 0, 64])
    logits = []
    for source in (hf.path, path):
        model = open_model(source, "float32", kernels="torch")
        logits.append(model.forward(ids, model.new_cache()))
    torch.testing.assert_close(logits[1], logits[0], rtol=1e-4, atol=1e-5)


def test_ggml_reads_the_experts_as_ossy_reads_the_checkpoint(hf, tmp_path):
    path = write_gguf(hf, tmp_path / "model.gguf")
    reader = gguf.GGUFReader(path)
    file_tensors = {t.name: t for t in reader.tensors}
    ours = hf.load(torch.float32)
    for i in range(hf.config.num_hidden_layers):
        x = f"model.layers.{i}.mlp.experts."
        gate_up = dequantize(ours[x + "gate_up_proj_blocks"], ours[x + "gate_up_proj_scales"], torch.float32)
        down = dequantize(ours[x + "down_proj_blocks"], ours[x + "down_proj_scales"], torch.float32)
        for name, want in (("gate", gate_up[:, 0::2]), ("up", gate_up[:, 1::2]), ("down", down)):
            t = file_tensors[f"blk.{i}.ffn_{name}_exps.weight"]
            values = gguf.quants.dequantize(t.data, t.tensor_type)  # ggml's reference, [E, out, in]
            np.testing.assert_array_equal(values, want.numpy(), err_msg=t.name)


def test_q8_0_attention_is_dequantized_as_ggml_does(hf, tmp_path):
    path = write_gguf(hf, tmp_path / "model.gguf", q8_attention=True)
    got = Checkpoint.open(path).load(torch.float32)
    reader = gguf.GGUFReader(path)
    t = next(t for t in reader.tensors if t.name == "blk.1.attn_q.weight")
    assert t.tensor_type == gguf.GGMLQuantizationType.Q8_0
    ggml = torch.from_numpy(gguf.quants.dequantize(t.data, t.tensor_type))
    assert torch.equal(got["model.layers.1.self_attn.q_proj.weight"], ggml)
    want = hf.load(torch.float32)["model.layers.1.self_attn.q_proj.weight"]
    torch.testing.assert_close(got["model.layers.1.self_attn.q_proj.weight"], want, rtol=0, atol=0.01)


# -- bad files: one line naming the file and the tensor or key ---------------------------------
def test_not_gpt_oss_architecture(tmp_path):
    w = gguf.GGUFWriter(str(tmp_path / "llama.gguf"), "llama")
    w.add_block_count(1)
    w.add_tensor("token_embd.weight", np.zeros((4, 8), np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with pytest.raises(ConfigError, match=r"llama\.gguf: GGUF architecture 'llama' is not gpt-oss"):
        Checkpoint.open(tmp_path / "llama.gguf")


def test_unsupported_tensor_type_is_named(hf, tmp_path, monkeypatch):
    original = gguf_files.tensors

    def with_f64_sinks(*args, **kw):
        for name, make, raw in original(*args, **kw):
            if name == "blk.1.attn_sinks.weight":
                yield name, (lambda make=make: make().astype(np.float64)), gguf.GGMLQuantizationType.F64
            else:
                yield name, make, raw

    monkeypatch.setattr(gguf_files, "tensors", with_f64_sinks)
    path = write_gguf(hf, tmp_path / "model.gguf")
    with pytest.raises(CheckpointError, match=r"model\.gguf: tensor blk\.1\.attn_sinks\.weight has type F64, "
                                              r"which ossy cannot load \(supported: F32, F16, BF16, Q8_0, MXFP4\)"):
        Checkpoint.open(path)


def test_missing_tensor_is_named(hf, tmp_path, monkeypatch):
    original = gguf_files.tensors
    monkeypatch.setattr(gguf_files, "tensors", lambda *a, **kw: (t for t in original(*a, **kw)
                                                                  if t[0] != "blk.0.ffn_up_exps.bias"))
    path = write_gguf(hf, tmp_path / "model.gguf")
    with pytest.raises(CheckpointError, match=r"model\.gguf: missing tensor blk\.0\.ffn_up_exps\.bias"):
        Checkpoint.open(path)


def test_truncated_gguf_is_refused(hf, tmp_path):
    path = write_gguf(hf, tmp_path / "model.gguf")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"model\.gguf: "):
        Checkpoint.open(path).load()


# -- the vocabulary ------------------------------------------------------------------------------
@pytest.mark.parametrize("flavour", ["llama.cpp", "ollama"])
def test_gguf_vocabulary_is_o200k_harmony(shared_dir, tmp_path, flavour):
    from test_tokenizer import CORPUS

    import ossy.tokenizer

    path = tmp_path / "vocab.gguf"
    gguf_files.write_vocabulary_only(path, gguf_files.hf_vocabulary(shared_dir / "vocab" / "gpt-oss" / "tokenizer.json",
                                                                     flavour), flavour)
    got = ossy.tokenizer.load(path)
    want = ossy.tokenizer.load(shared_dir / "vocab" / "o200k_base.tiktoken")
    seeds = "\n".join(p.read_text(encoding="utf-8", errors="replace") for p in sorted((shared_dir / "seeds").glob("*")))
    for text in [*CORPUS, seeds]:
        assert got.encode(text) == want.encode(text), text[:60]
        assert got.encode(text, allow_special=True) == want.encode(text, allow_special=True), text[:60]
    for name in ("<|start|>", "<|channel|>", "<|message|>", "<|end|>", "<|return|>", "<|call|>", "<|constrain|>"):
        assert got.token_id(name) == want.token_id(name), name
    assert got.vocab_size == (201088 if flavour == "llama.cpp" else 200019)  # Ollama does not pad


def test_gguf_vocabulary_of_another_pre_tokenizer_is_refused(shared_dir, tmp_path):
    import ossy.tokenizer
    from ossy.tokenizer import TokenizerError

    def llama3(w):
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre("llama-bpe")
        w.add_token_list(["a", "b"])
        w.add_token_types([1, 1])

    path = tmp_path / "vocab.gguf"
    gguf_files.write_vocabulary_only(path, llama3)
    with pytest.raises(TokenizerError, match=r"vocab\.gguf: GGUF pre-tokenizer 'llama-bpe' is not supported"):
        ossy.tokenizer.load(path)


# -- creating a model from a GGUF (FROM ./model.gguf, or an uploaded blob) -----------------------
def test_create_from_a_gguf_file_and_from_an_uploaded_gguf(hf, tmp_path):
    import hashlib

    from ossy.modelfile import Modelfile, parse
    from ossy.store import Library, Store, create
    from ossy.store import manifest as mt
    from ossy.store.create import create_from_blobs
    from ossy.store.names import parse_name

    path = write_gguf(hf, tmp_path / "model.gguf", "ollama")
    library = Library(Store(tmp_path / "models"))
    model = create(library, "from-gguf", parse("FROM ./model.gguf\nPARAMETER temperature 0\n"), base_dir=tmp_path)
    (layer,) = model.manifest.of_type(mt.GGUF)
    assert library.store.blob_path(layer.digest).read_bytes() == path.read_bytes()
    assert model.config["model_format"] == "gguf" and model.config["file_type"] == "MXFP4"
    assert model.parameters == {"temperature": 0} and model.template  # the gpt-oss defaults, as for a checkpoint
    loaded = Checkpoint.open(library.store.gguf_file(model)).load(torch.bfloat16)
    assert torch.equal(loaded["lm_head.weight"], hf.load(torch.bfloat16)["lm_head.weight"])

    digest = "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    with library.store.upload(digest) as upload:
        upload.write(path.read_bytes())
        upload.finish()
    uploaded = create_from_blobs(library, parse_name("uploaded"), Modelfile(from_=""), {"model.gguf": digest})
    assert uploaded.manifest.of_type(mt.GGUF)[0].digest == digest
    with pytest.raises(Exception, match="send it alone"):
        create_from_blobs(library, parse_name("two"), Modelfile(from_=""), {"model.gguf": digest, "config.json": digest})
    (tmp_path / "fake.gguf").write_bytes(b"GGUF" + bytes(64))
    with pytest.raises(CheckpointError, match=r"fake\.gguf: GGUF version 0 is not supported"):
        create(library, "bad", parse("FROM ./fake.gguf\n"), base_dir=tmp_path)
