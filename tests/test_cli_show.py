"""`ossy show PATH` through the real command line (`python -m ossy` in a subprocess): the fields
`ollama show --verbose` prints, with values from the checkpoint's config, the tensor table and
the parameter counts; and every bad input as one `Error:` line naming the file or tensor."""

from __future__ import annotations

import subprocess
import sys

import bad_checkpoints as bad
import pytest
import tiny
import torch

from ossy.cli.show import render_show
from ossy.format import human_number
from ossy.model.weights import Checkpoint, save_checkpoint
from ossy.store.show import checkpoint_info, parameters_text


def ossy(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ossy", *args], capture_output=True, text=True, timeout=120)


def sections(text: str) -> dict[str, list[list[str]]]:
    """Section title -> rows split into columns (2+ spaces separate columns)."""
    out: dict[str, list[list[str]]] = {}
    for line in text.splitlines():
        if line.startswith("    "):
            out[title].append([cell.strip() for cell in line.split("  ") if cell.strip()])
        elif line.startswith("  "):
            title = line.strip()
            out[title] = []
        else:
            assert line == "", line
    return out


@pytest.fixture(scope="module")
def mxfp4_checkpoint(tmp_path_factory):
    config, tensors = bad.source()
    path = save_checkpoint(tmp_path_factory.mktemp("show") / "tiny", config, tensors)
    (path / "LICENSE").write_text("Apache License\nVersion 2.0, January 2004\nhttp://www.apache.org/licenses/\n")
    return path


def test_show_verbose_prints_ollama_fields_tensors_and_counts(mxfp4_checkpoint):
    config, tensors = bad.source()
    result = ossy("show", str(mxfp4_checkpoint), "--verbose")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    s = sections(result.stdout)
    assert list(s) == ["Model", "Capabilities", "Metadata", "Parameter counts", "Memory", "Compute", "Tensors",
                       "License"]
    from ossy.model.native import open_kernels

    path = " ".join(s["Compute"][0][1:])  # which path runs: ossy's kernels where this machine has them
    assert path.startswith("ossy native kernels" if open_kernels() is not None else "PyTorch")
    total = sum(t.numel() for t in tensors.values())  # the source model's own parameters
    assert dict(map(tuple, s["Model"])) == {
        "architecture": "gptoss", "parameters": human_number(total), "context length": str(config.max_position_embeddings),
        "embedding length": str(config.hidden_size), "quantization": "MXFP4"}
    assert s["Capabilities"] == [["completion"], ["tools"], ["thinking"]]
    meta = dict(map(tuple, s["Metadata"]))
    assert [row[0] for row in s["Metadata"]] == sorted(meta)
    assert meta == {
        "general.architecture": "gptoss",
        "general.parameter_count": str(total),
        "gptoss.block_count": str(config.num_hidden_layers),
        "gptoss.context_length": str(config.max_position_embeddings),
        "gptoss.embedding_length": str(config.hidden_size),
        "gptoss.feed_forward_length": str(config.intermediate_size),
        "gptoss.expert_count": str(config.num_local_experts),
        "gptoss.expert_used_count": str(config.num_experts_per_tok),
        "gptoss.attention.head_count": str(config.num_attention_heads),
        "gptoss.attention.head_count_kv": str(config.num_key_value_heads),
        "gptoss.attention.key_length": str(config.head_dim),
        "gptoss.attention.value_length": str(config.head_dim),
        "gptoss.attention.layer_norm_rms_epsilon": f"{config.rms_norm_eps:g}",
        "gptoss.attention.sliding_window": str(config.sliding_window),
        "gptoss.rope.freq_base": f"{config.rope_theta:g}",
        "gptoss.rope.scaling.factor": f"{config.rope_scaling_factor:g}",
        "gptoss.rope.scaling.original_context_length": str(config.original_max_position_embeddings),
    }
    counts = {row[0]: int(row[1].replace(",", "")) for row in s["Parameter counts"]}
    experts = sum(t.numel() for n, t in tensors.items() if n.endswith(("experts.gate_up_proj", "experts.down_proj")))
    assert counts["total"] == total
    assert counts["MXFP4"] == experts and counts["F32"] == total - experts
    assert counts["active per token"] < total
    rows = {row[0]: row[1:] for row in s["Tensors"]}
    E, H, I = config.num_local_experts, config.hidden_size, config.intermediate_size
    for name, t in tensors.items():
        if name.endswith(("experts.gate_up_proj", "experts.down_proj")):
            out, inp = (2 * I, H) if name.endswith("gate_up_proj") else (H, I)
            assert rows[name] == ["MXFP4", f"[{E} {out} {inp}]"], name
        else:
            assert rows[name] == ["F32", "[" + " ".join(map(str, t.shape)) + "]"], name
    assert len(rows) == len(tensors)
    assert s["License"] == [["Apache License"], ["Version 2.0, January 2004"], ["..."]]


def test_show_plain_for_a_transformers_checkpoint(tmp_path):
    model = tiny.hf_model(seed=4, num_local_experts=8)
    model.to(torch.bfloat16).save_pretrained(tmp_path)
    result = ossy("show", str(tmp_path))
    assert result.returncode == 0, result.stderr
    s = sections(result.stdout)
    assert list(s) == ["Model", "Capabilities"]
    model_rows = dict(map(tuple, s["Model"]))
    assert model_rows["quantization"] == "BF16"
    assert model_rows["parameters"] == human_number(sum(p.numel() for p in model.parameters()))


def test_show_license_and_modelfile(mxfp4_checkpoint):
    license = ossy("show", str(mxfp4_checkpoint), "--license")
    assert license.returncode == 0 and license.stdout == (mxfp4_checkpoint / "LICENSE").read_text()
    modelfile = ossy("show", str(mxfp4_checkpoint), "--modelfile")
    assert modelfile.returncode == 0 and modelfile.stdout == f"FROM {mxfp4_checkpoint.resolve()}\n"


@pytest.mark.parametrize("case", bad.CASES, ids=lambda c: c.name)
def test_bad_input_is_one_error_line(case, tmp_path):
    path, words = bad.build(case, tmp_path)
    result = ossy("show", str(path), "--verbose")
    assert result.returncode != 0
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    for word in words:
        assert word in lines[0]


@pytest.mark.parametrize("n, text", [
    (20_914_757_184, "20.9B"), (3_608_166_144, "3.6B"), (116_829_156_672, "116.8B"), (5_132_639_232, "5.1B"),
    (2_000_000_000, "2B"), (1_234_567, "1.23M"), (88_912, "89K"), (999, "999"),
])
def test_human_number_like_ollama(n, text):
    assert human_number(n) == text


def test_render_show_optional_sections(mxfp4_checkpoint):
    info = checkpoint_info(Checkpoint.open(mxfp4_checkpoint))
    info.update(parameters=parameters_text({"temperature": 1.0, "stop": ["<|return|>", "<|call|>"]}),
                system="You are ossy.\nBe brief.\nThird line.", license="Apache License")
    s = sections(render_show(info))
    assert list(s) == ["Model", "Capabilities", "Parameters", "System", "License"]
    assert s["Parameters"] == [["stop", '"<|return|>"'], ["stop", '"<|call|>"'], ["temperature", "1"]]
    assert s["System"] == [["You are ossy."], ["Be brief."], ["..."]]
    assert s["License"] == [["Apache License"]]
