"""The model store through its API, on real files: names, create from a checkpoint or a stored
model, layers and config, runnable checkpoint directories, interrupted writes, copy, remove and
garbage collection, the store lock, and an Ollama store read without being written."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
from store_util import OLLAMA_TEMPLATE, fake_ollama_store, make_checkpoint, snapshot

from ossy.cli.models import format_modified, format_size
from ossy.errors import NotFoundError, OssyError
from ossy.model.weights import Checkpoint
from ossy.modelfile import Modelfile, gptoss_defaults
from ossy.store import InvalidNameError, Library, Progress, ReadOnlyError, Store, create, parse_name
from ossy.store import manifest as mt
from ossy.store.files import StoreLock
from ossy.store.manifest import Manifest


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "gpt-oss-tiny")


@pytest.fixture
def library(tmp_path):
    return Library(Store(tmp_path / "models"), Store(fake_ollama_store(tmp_path / "ollama"), read_only=True))


def build(library, name, checkpoint, **fields):
    return create(library, name, Modelfile(from_=str(checkpoint), **fields), base_dir=checkpoint.parent)


# -- names -------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, parts, shown", [
    ("gpt-oss", ("registry.ollama.ai", "library", "gpt-oss", "latest"), "gpt-oss:latest"),
    ("gpt-oss:20b", ("registry.ollama.ai", "library", "gpt-oss", "20b"), "gpt-oss:20b"),
    ("me/linux-tools:v1.2", ("registry.ollama.ai", "me", "linux-tools", "v1.2"), "me/linux-tools:v1.2"),
    ("hf.co/unsloth/gpt-oss-20b-GGUF:Q4_K_M", ("hf.co", "unsloth", "gpt-oss-20b-GGUF", "Q4_K_M"),
     "hf.co/unsloth/gpt-oss-20b-GGUF:Q4_K_M"),
    ("localhost:5000/x/y", ("localhost:5000", "x", "y", "latest"), "localhost:5000/x/y:latest"),
])
def test_names_fill_ollamas_defaults(text, parts, shown):
    name = parse_name(text)
    assert (name.host, name.namespace, name.model, name.tag) == parts
    assert str(name) == shown
    assert parse_name(shown) == name


@pytest.mark.parametrize("text, words", [
    ("", "the model is empty"),
    ("bad name", "the model 'bad name' may hold only"),
    ("a:b:c", "the tag 'b:c'"),
    ("model:", "empty tag"),
    ("a/b/c/d", "expected [host/][namespace/]model[:tag]"),
    ("my.ns/model", "the namespace 'my.ns'"),
    ("../etc", "the namespace '..'"),
    ("-x", "must start with a letter, digit or '_'"),
    ("x" * 81, "longer than 80"),
    ("gpt-oss@sha256:abc", "digests"),
])
def test_bad_names_are_refused_with_the_reason(text, words):
    with pytest.raises(InvalidNameError, match="invalid model name") as err:
        parse_name(text)
    assert words in str(err.value)


# -- create from a checkpoint ------------------------------------------------------------------
def test_bare_checkpoint_gets_the_gptoss_defaults_and_loads_back(library, checkpoint):
    model = build(library, "tiny", checkpoint)
    defaults = gptoss_defaults()
    files = model.manifest.of_type(mt.CHECKPOINT_FILE)
    assert [x.name for x in files] == ["config.json", "model.safetensors"]
    assert [x.media_type for x in model.manifest.layers[2:]] == [mt.TEMPLATE, mt.PARAMS, mt.LICENSE]
    assert model.template == defaults.template
    assert model.parameters == {"temperature": 1}
    assert model.licenses == defaults.licenses and "Apache License" in model.licenses[0]
    assert model.config["model_format"] == "safetensors" and model.config["model_family"] == "gptoss"
    assert model.config["file_type"] == "MXFP4" and model.config["context_length"] == 256
    assert model.config["model_type"].endswith("K")  # tens of thousands of parameters
    assert model.config["rootfs"]["diff_ids"] == [x.digest for x in model.manifest.layers]
    blob = library.store.blob_path(files[1].digest)
    assert blob.read_bytes() == (checkpoint / "model.safetensors").read_bytes()

    directory = library.store.checkpoint_dir(model)
    assert directory == library.store.checkpoint_dir(model)  # built once
    assert all(p.is_symlink() and not os.path.isabs(os.readlink(p)) for p in directory.iterdir())
    got, want = Checkpoint.open(directory).load(), Checkpoint.open(checkpoint).load()
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)


def test_modelfile_settings_win_over_the_defaults(library, checkpoint):
    model = build(library, "mine:v1", checkpoint, system="Be brief.", parameters={"top_k": 0, "stop": ["<|call|>"]},
                  licenses=["MIT"], messages=[("user", "hi"), ("assistant", "hello")], tools=["fs"])
    assert model.system == "Be brief."
    assert model.parameters == {"temperature": 1, "top_k": 0, "stop": ["<|call|>"]}
    assert model.licenses == gptoss_defaults().licenses + ["MIT"]  # licenses add up
    assert model.messages == [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    assert model.tools == ["fs"]


def test_create_from_a_stored_model_reuses_its_weights_and_combines_layers(library, checkpoint):
    base = build(library, "base", checkpoint, system="old")
    blobs = set(library.store.blobs.iterdir())
    child = create(library, "child", Modelfile(from_="base", system="new", parameters={"num_ctx": 128},
                                               licenses=["Extra terms"]), base_dir=checkpoint.parent)
    assert child.manifest.of_type(mt.CHECKPOINT_FILE) == base.manifest.of_type(mt.CHECKPOINT_FILE)
    assert child.template == base.template
    assert child.system == "new"
    assert child.parameters == {"temperature": 1, "num_ctx": 128}  # merged name by name
    assert child.licenses == base.licenses + ["Extra terms"]  # added, as Ollama does
    new = set(library.store.blobs.iterdir()) - blobs
    assert len(new) == 4  # system, params, license, config: no weights copied


def test_from_errors_name_what_is_wrong(library, tmp_path, checkpoint):
    (tmp_path / "model.gguf").write_bytes(b"GGUF\x03\x00\x00\x00")
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(Exception, match=r"model\.gguf: truncated GGUF header"):
        create(library, "x", Modelfile(from_="model.gguf"), base_dir=tmp_path)
    cases = [("notes.txt", "not a checkpoint directory or GGUF file"),
             ("./missing", "no such checkpoint directory"),
             ("nobody:latest", "no such checkpoint directory")]
    for value, words in cases:
        with pytest.raises(OssyError, match=words):
            create(library, "x", Modelfile(from_=value), base_dir=tmp_path)
    with pytest.raises(NotFoundError):
        create(library, "x", Modelfile(from_="nobody"), base_dir=tmp_path)
    with pytest.raises(OssyError, match="ADAPTER is not supported"):
        create(library, "x", Modelfile(from_=str(checkpoint), adapters=["lora"]), base_dir=tmp_path)
    with pytest.raises(InvalidNameError):
        build(library, "bad name", checkpoint)
    (tmp_path / "not-gptoss").mkdir()
    (tmp_path / "not-gptoss" / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(Exception, match="not a gpt-oss model"):
        create(library, "x", Modelfile(from_="not-gptoss"), base_dir=tmp_path)
    assert library.store.models() == [] and snapshot(library.store.root) == {}


# -- interrupted and concurrent writes ---------------------------------------------------------
class Interrupt(Progress):
    """Stops a create half-way through copying, as Ctrl+C would."""

    def transfer(self, text, done, total):
        if 0 < done < total:
            raise KeyboardInterrupt


def test_an_interrupted_create_leaves_the_store_as_it_was(library, tmp_path):
    big = make_checkpoint(tmp_path / "big", vocab_size=40_000)  # model.safetensors > 4 MiB: several chunks
    build(library, "kept", big)
    before = snapshot(library.store.root)
    with pytest.raises(KeyboardInterrupt):
        create(library, "lost", Modelfile(from_=str(big), system="other"), base_dir=tmp_path,
               progress=Interrupt())
    assert snapshot(library.store.root) == before
    assert not list(library.store.blobs.glob(".tmp-*"))  # the writer cleaned up after itself
    assert [str(m.name) for m in library.store.models()] == ["kept:latest"]


def test_gc_waits_while_a_writer_may_still_use_a_blob(library, checkpoint):
    a = build(library, "a", checkpoint)
    template = a.manifest.of_type(mt.TEMPLATE)[0]
    with library.store.transaction() as tx:  # a create FROM "a" in progress ...
        config, _ = tx.put(mt.CONFIG, b"{}")
        library.remove("a")  # ... so gc must not run now
        assert library.store.has_blob(template)
        b = tx.commit(parse_name("b"), Manifest(config, (template,)).to_json())
    assert b.template == a.template
    library.store.gc()
    assert {p.name for p in library.store.blobs.iterdir()} == {
        library.store.blob_path(x.digest).name for x in (config, template)}


def test_temp_files_go_once_no_writer_holds_the_lock(library, checkpoint):
    build(library, "a", checkpoint)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = library.store.blobs / f".tmp-{dead.stdout.strip()}-abc"
    reused = library.store.blobs / f".tmp-{os.getpid()}-abc"  # a killed writer's pid, reused since
    stale.write_bytes(b"half")
    reused.write_bytes(b"half")
    with library.store.transaction():  # a writer at work: its temp files must stay, so nothing goes
        library.store.gc()
        library.store.sweep()
        assert reused.exists()
    assert not stale.exists()  # a new transaction removes a dead pid's leftovers at once
    library.store.sweep()
    assert not reused.exists()  # with the lock held alone, every temp file is a dead writer's


def test_the_lock_is_shared_by_writers_and_exclusive_for_gc(tmp_path):
    a, b, gc = StoreLock(tmp_path), StoreLock(tmp_path), StoreLock(tmp_path)
    with a.shared(), b.shared():
        assert not gc.try_exclusive()
    assert gc.try_exclusive()
    gc.release()


# -- copy, remove, garbage collection ----------------------------------------------------------
def test_copy_and_remove_collect_only_unused_blobs(library, checkpoint):
    a = build(library, "a", checkpoint)
    b = library.copy("a", "me/b:v2")
    assert b.digest == a.digest and b.manifest == a.manifest  # same manifest, same ID
    c = create(library, "c", Modelfile(from_="a", system="extra"), base_dir=checkpoint.parent)
    library.store.checkpoint_dir(a)
    library.remove("a")
    library.remove("me/b:v2")
    assert [str(m.name) for m in library.store.models()] == ["c:latest"]
    used = {library.store.blob_path(x.digest).name for x in (c.manifest.config, *c.manifest.layers)}
    assert {p.name for p in library.store.blobs.iterdir()} == used
    assert len(list(library.store.checkpoints.iterdir())) == 1  # c shares a's checkpoint directory
    library.remove("c")
    assert list(library.store.blobs.iterdir()) == [] and list(library.store.checkpoints.iterdir()) == []
    assert not (library.store.manifests / "registry.ollama.ai").exists()  # empty directories pruned
    with pytest.raises(NotFoundError, match="model 'c' not found"):
        library.remove("c")


def test_hand_edited_manifests_cannot_reach_outside_the_store(library, checkpoint):
    model = build(library, "a", checkpoint)
    path = library.store.manifests / model.name.path
    path.write_text(path.read_text().replace('"name":"config.json"', '"name":"../../escape.json"'))
    with pytest.raises(OssyError, match="bad checkpoint file name '../../escape.json'"):
        library.store.checkpoint_dir(library.get("a"))
    path.write_text(path.read_text().replace('"digest":"sha256:', '"digest":"sha256:../', 1))
    with pytest.raises(OssyError, match="corrupt manifest .bad digest 'sha256:../"):
        library.get("a")


def test_recreating_a_name_drops_the_blobs_only_the_old_model_used(library, checkpoint):
    build(library, "a", checkpoint, system="first")
    model = build(library, "a", checkpoint, system="second")
    used = {library.store.blob_path(x.digest).name for x in (model.manifest.config, *model.manifest.layers)}
    assert {p.name for p in library.store.blobs.iterdir()} == used


def test_bundled_models_are_stored_by_an_explicit_step_and_reads_never_write(tmp_path, checkpoint, monkeypatch):
    import ossy.store.bundled
    from ossy.store.registry import pull

    shipped = tmp_path / "bundled-demo"
    shutil.copytree(checkpoint, shipped)
    (shipped / "Modelfile").write_text("FROM .\nSYSTEM shipped with ossy\n")
    monkeypatch.setattr(ossy.store.bundled, "bundled", lambda: {parse_name("demo"): shipped})
    library = Library(Store(tmp_path / "models"))
    assert library.find("demo") is None and library.models() == []
    assert not (tmp_path / "models").exists()  # looking up and listing wrote nothing
    assert ossy.store.bundled.install_missing(library) == []  # what `ossy serve` does when it starts
    assert [str(m.name) for m in library.models()] == ["demo:latest"]
    assert library.get("demo").system == "shipped with ossy" and library.get("demo").is_checkpoint
    library.remove("demo")
    assert ossy.store.bundled.install_missing(library) == [] and library.models() == []  # rm is kept
    events = []
    assert pull(library, "demo", progress=events.append).system == "shipped with ossy"  # no network
    assert [e.status for e in events] == ["installing demo:latest from the ossy package", "success"]


# -- the Ollama store --------------------------------------------------------------------------
def test_ollama_models_list_and_read_but_are_never_written(library, checkpoint, tmp_path):
    ollama_before = snapshot(tmp_path / "ollama")
    model = library.get("gpt-oss:20b")
    assert model.store.read_only and not model.is_checkpoint
    assert model.template == OLLAMA_TEMPLATE and model.parameters == {"temperature": 1}
    assert model.config["model_type"] == "20.9B"
    assert [str(m.name) for m in library.models()] == ["gpt-oss:20b"]
    with pytest.raises(ReadOnlyError, match="ollama rm gpt-oss:20b"):
        library.remove("gpt-oss:20b")
    with pytest.raises(OssyError, match="has no checkpoint files"):
        library.ollama.checkpoint_dir(model)

    child = create(library, "my-gpt", Modelfile(from_="gpt-oss:20b", system="Hi"), base_dir=tmp_path)
    gguf = child.manifest.of_type(mt.GGUF)[0]
    assert library.store.blob_path(gguf.digest).stat().st_ino == library.ollama.blob_path(gguf.digest).stat().st_ino
    assert child.template == OLLAMA_TEMPLATE and child.system == "Hi"
    copied = library.copy("gpt-oss:20b", "gpt-oss:mine")
    assert copied.digest == model.digest and copied.store is library.store
    library.remove("my-gpt")
    library.remove("gpt-oss:mine")
    assert snapshot(tmp_path / "ollama") == ollama_before
    assert list(library.store.blobs.iterdir()) == []


def test_an_ossy_model_shadows_an_ollama_one_of_the_same_name(library, checkpoint):
    build(library, "gpt-oss:20b", checkpoint)
    assert library.get("gpt-oss:20b").store is library.store
    assert sorted(m.store.read_only for m in library.models()) == [False, True]


# -- Ollama's list formats ---------------------------------------------------------------------
@pytest.mark.parametrize("n, text", [(0, "0 B"), (999, "999 B"), (1000, "1 KB"), (1500, "1.5 KB"),
                                     (999_999, "999 KB"), (10_500_000, "10.5 MB"), (13_780_000_000, "13.8 GB"),
                                     (1_999_999_999_999, "2.0 TB")])
def test_sizes_read_like_ollamas(n, text):
    assert format_size(n) == text


@pytest.mark.parametrize("ago, text", [(0.5, "Less than a second ago"), (1, "1 second ago"), (59, "59 seconds ago"),
                                       (60, "About a minute ago"), (150, "2 minutes ago"), (3600, "About an hour ago"),
                                       (5 * 3600, "5 hours ago"), (3 * 86400, "3 days ago"),
                                       (3 * 7 * 86400, "3 weeks ago"), (90 * 86400, "3 months ago"),
                                       (800 * 86400, "2 years ago"), (-120, "2 minutes from now")])
def test_times_read_like_ollamas(ago, text):
    assert format_modified(1_000_000_000 - ago, now=1_000_000_000) == text
