"""`ossy show MODEL`: what a model is, laid out like `ollama show` (ollama-reference §1.3).

Owns: the `show` subcommand and `render_info`, the text of the Model / Capabilities / Tools /
Parameters / Metadata / Parameter counts / Memory / Tensors / System / License sections for a
checkpoint (reusable by other commands). A MODEL that is not a path is a model name,
handed to `ossy.cli.models.show_named` (a path that does not exist is an error, not a name).
Does not own: counting (`ossy.model.inspect`), reading checkpoints (`ossy.model.weights`), or
the model store.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from typing import TYPE_CHECKING

from ossy.format import human_bytes, human_number

if TYPE_CHECKING:  # torch-heavy: imported where used, so `ossy --help` and store commands start fast
    from ossy.model.weights import Checkpoint

CAPABILITIES = ("completion", "tools", "thinking")  # every gpt-oss model speaks harmony
_FIELDS = ("modelfile", "template", "parameters", "license", "system")
_LICENSE_FILES = ("LICENSE", "LICENSE.txt", "LICENSE.md")


def register(subparsers) -> None:
    p = subparsers.add_parser("show", help="Show information for a model or checkpoint directory")
    p.add_argument("model", metavar="MODEL", help="model name, or path to a checkpoint directory")
    p.add_argument("-v", "--verbose", action="store_true", help="also show metadata, parameter counts, memory and tensors")
    only = p.add_mutually_exclusive_group()
    for field in _FIELDS:
        only.add_argument(f"--{field}", action="store_true", help=f"show only the {field}")
    p.set_defaults(func=run)


def is_path(model: str) -> bool:
    """A MODEL argument means a checkpoint path if it exists or is spelled like a path."""
    return Path(model).exists() or model.startswith(("/", "./", "../", "~")) or model in (".", "..")


def run(args: argparse.Namespace) -> int:
    if not is_path(args.model):
        from ossy.cli.models import show_named  # the model store, only needed for names

        return show_named(args)
    path = Path(args.model).expanduser()
    from ossy.model.weights import Checkpoint

    checkpoint = Checkpoint.open(path)
    license = _license(checkpoint)
    if args.license:
        text = license or ""
        print(text, end="" if text.endswith("\n") else "\n")
    elif args.modelfile:
        print(f"FROM {path.resolve()}")
    elif not (args.template or args.parameters or args.system):  # a bare checkpoint has none of these
        print(render_info(checkpoint, verbose=args.verbose, license=license), end="")
    return 0


def _license(checkpoint: Checkpoint) -> str | None:
    """The LICENSE file beside config.json or, for `original/`, in the checkpoint root above it."""
    directories = [checkpoint.path] + ([checkpoint.path.parent] if checkpoint.path.name == "original" else [])
    for directory in directories:
        for name in _LICENSE_FILES:
            if (directory / name).is_file():
                return (directory / name).read_text(errors="replace")
    return None


# -- rendering ---------------------------------------------------------------------------------
def render_info(checkpoint: Checkpoint, *, verbose: bool, parameters: dict | None = None,
                license: str | None = None, system: str | None = None, tools: list[str] | None = None) -> str:
    """The `ollama show` text for a checkpoint; Parameters / System / License only when given,
    Tools for a stored model (`tools`: the toolsets its own Modelfile names with TOOLS)."""
    from ossy.model.inspect import count_parameters

    counts = count_parameters(checkpoint.config)
    sections = [("Model", _model_rows(checkpoint, counts.total)),
                ("Capabilities", [(c,) for c in CAPABILITIES])]
    if parameters:
        sections.append(("Parameters", _parameter_rows(parameters)))
    if tools is not None:
        sections.append(("Tools", _tool_rows(tools)))
    if verbose:
        sections += [
            ("Metadata", _metadata_rows(checkpoint, counts.total)),
            ("Parameter counts", _count_rows(checkpoint, counts)),
            ("Memory", _memory_rows(checkpoint)),
            ("Compute", _compute_rows(checkpoint)),
            ("Tensors", [(t.name, t.precision, _shape(t.shape)) for t in checkpoint.tensor_infos()]),
        ]
    if system:
        sections.append(("System", head_rows(system)))
    if license:
        sections.append(("License", head_rows(license)))
    return "\n".join(section_table(title, rows) for title, rows in sections)


def _tool_rows(tools: list[str]) -> list[tuple]:
    if not tools:
        return [("none", "ossy run offers tools with --tools fs,shell,...; TOOLS is not inherited by FROM")]
    return [(", ".join(tools), "offered by ossy run (TOOLS in this model's Modelfile); --tools none turns them off")]


def section_table(title: str, rows: list[tuple]) -> str:
    """`  Title` then rows indented by 4 with columns padded to a common width, as ollama does."""
    widths = [max(len(str(row[i])) for row in rows if len(row) > i) for i in range(max(map(len, rows)))]
    lines = [f"  {title}"]
    for row in rows:
        cells = [str(cell).ljust(widths[i]) for i, cell in enumerate(row)]
        lines.append(("    " + "    ".join(cells)).rstrip())
    return "\n".join(lines) + "\n"


def _quantization(checkpoint: Checkpoint) -> str:
    """Precision of the expert matrices (MXFP4 for the released checkpoints)."""
    return checkpoint.expert_precision


def _model_rows(checkpoint: Checkpoint, total: int) -> list[tuple]:
    c = checkpoint.config
    return [
        ("architecture", "gptoss"),
        ("parameters", human_number(total)),
        ("context length", c.context_length),
        ("embedding length", c.hidden_size),
        ("quantization", _quantization(checkpoint)),
        *_format_rows(checkpoint),
    ]


def _format_rows(checkpoint: Checkpoint) -> list[tuple]:
    """For a GGUF: whose flavour it is, and how ossy computes its YaRN (a GGUF cannot say)."""
    flavour = getattr(checkpoint, "flavour", None)
    if flavour is None:
        return []
    rows = [("format", f"GGUF ({'llama.cpp' if flavour == 'gpt-oss' else 'Ollama'} '{flavour}' flavour)")]
    if checkpoint.config.rope_scaling_factor > 1:
        rows.append(("rope", "YaRN, correction range untruncated as gpt-oss defines it (llama.cpp rounds it)"))
    return rows


def _parameter_rows(parameters: dict) -> list[tuple]:
    rows = []
    for key, value in parameters.items():
        for v in value if isinstance(value, (list, tuple)) else [value]:
            rows.append((key, f"{v:g}" if isinstance(v, float) else v))
    return rows


def _metadata_rows(checkpoint: Checkpoint, total: int) -> list[tuple]:
    """Ollama's `model_info` keys for gpt-oss (`gptoss.*`), sorted by key."""
    c = checkpoint.config
    info = {
        "general.architecture": "gptoss",
        "general.parameter_count": total,
        "gptoss.block_count": c.num_hidden_layers,
        "gptoss.context_length": c.context_length,
        "gptoss.embedding_length": c.hidden_size,
        "gptoss.feed_forward_length": c.intermediate_size,
        "gptoss.expert_count": c.num_local_experts,
        "gptoss.expert_used_count": c.num_experts_per_tok,
        "gptoss.attention.head_count": c.num_attention_heads,
        "gptoss.attention.head_count_kv": c.num_key_value_heads,
        "gptoss.attention.key_length": c.head_dim,
        "gptoss.attention.value_length": c.head_dim,
        "gptoss.attention.layer_norm_rms_epsilon": f"{c.rms_norm_eps:g}",
        "gptoss.attention.sliding_window": c.sliding_window,
        "gptoss.rope.freq_base": f"{c.rope_theta:g}",
        "gptoss.rope.scaling.factor": f"{c.rope_scaling_factor:g}",
        "gptoss.rope.scaling.original_context_length": c.original_max_position_embeddings,
    }
    return sorted(info.items())


def _count_rows(checkpoint: Checkpoint, counts) -> list[tuple]:
    rows = [("total", f"{counts.total:,}", human_number(counts.total)),
            ("active per token", f"{counts.active:,}", human_number(counts.active))]
    from ossy.model.inspect import precision_counts

    for precision, n in precision_counts(checkpoint.tensor_infos()).items():
        rows.append((precision, f"{n:,}", human_number(n)))
    return rows


def _memory_rows(checkpoint: Checkpoint) -> list[tuple]:
    c = checkpoint.config
    from ossy.model.inspect import kv_cache_bytes, memory_needs

    needs = memory_needs(c)
    files = {t.file for t in checkpoint.tensor_infos()}
    return [
        ("weight files", human_bytes(sum(f.stat().st_size for f in files))),
        ("weights in memory (bf16, experts MXFP4)", human_bytes(needs.weights_bytes)),
        ("kv cache per token (bf16)", human_bytes(needs.kv_bytes_per_token)),
        ("kv cache, sliding layers (fixed)", human_bytes(needs.kv_sliding_bytes)),
        (f"kv cache at {c.context_length} tokens", human_bytes(kv_cache_bytes(c, c.context_length))),
    ]


def _compute_rows(checkpoint: Checkpoint) -> list[tuple]:
    """What would run the model here (OSSY_KERNELS, OSSY_NUM_THREADS, this CPU, the library)."""
    from ossy.config import settings
    from ossy.model.native import NAMES, open_kernels, physical_cores

    s = settings()
    kernels = open_kernels(s.kernels, s.num_threads)
    packed = _quantization(checkpoint) == "MXFP4"
    if kernels is None or not packed:
        why = "OSSY_KERNELS=torch" if s.kernels == "torch" else \
            "experts are not MXFP4" if not packed else "the native kernels are not built or this CPU lacks AVX2"
        return [("path", f"PyTorch ({why})")]
    label = {"avx512": "AVX512-BF16", "avx2": "AVX2"}[NAMES[kernels.level]]
    return [("path", f"ossy native kernels, {label} (MoE experts on the MXFP4 bytes; bf16 decode projections)"),
            ("threads", s.num_threads or physical_cores())]


def head_rows(text: str) -> list[tuple]:
    """The first two lines, then `...` if there is more (how ollama shows a license)."""
    lines = text.strip("\n").splitlines()
    return [(line,) for line in lines[:2]] + ([("...",)] if len(lines) > 2 else [])


def _shape(shape: tuple[int, ...]) -> str:
    return "[" + " ".join(map(str, shape)) + "]"
