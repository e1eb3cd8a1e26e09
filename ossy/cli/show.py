"""`ossy show MODEL`: what a model is, laid out like `ollama show` (docs/reference/ollama-reference.md §1.3).

Owns: the `show` subcommand and `render_show`, the text of the Model / Capabilities / Parameters /
Tools / Metadata / Parameter counts / Memory / Compute / Tensors / System / License sections of an
/api/show body (`ossy.store.show` builds it, for the server and here alike; the REPL's `/show`
renders the server's answer with it too), and `local_memory` (this machine's engine estimate).
A MODEL that is not a path is a stored model's name (`show_named`: the Modelfile that rebuilds
it, one of its fields, or the info sections); a path that does not exist is an error, not a name.
Does not own: what is shown (`ossy.store.show`), counting (`ossy.model.inspect`), reading
checkpoints (`ossy.model.weights`), or the model store.
"""

from __future__ import annotations

import argparse
import functools
from pathlib import Path
from typing import TYPE_CHECKING

from ossy.config import Settings, settings
from ossy.errors import NotFoundError
from ossy.format import human_bytes, human_number
from ossy.store import Library, Model, parse_name
from ossy.store.bundled import bundled
from ossy.store.show import checkpoint_info, modelfile_text, parameters_text, show_info

if TYPE_CHECKING:  # torch-heavy: imported where used, so `ossy --help` and store commands start fast
    from ossy.model.weights import Checkpoint

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
        return show_named(args)
    path = Path(args.model).expanduser()
    from ossy.model.weights import Checkpoint  # lazy: torch, kept out of `ossy --help`

    checkpoint = Checkpoint.open(path)
    license = _license(checkpoint)
    if args.license:
        text = license or ""
        print(text, end="" if text.endswith("\n") else "\n")
    elif args.modelfile:
        print(f"FROM {path.resolve()}")
    elif not (args.template or args.parameters or args.system):  # a bare checkpoint has none of these
        s = settings()
        info = checkpoint_info(checkpoint, args.verbose, local_memory(s), license=license, kernels=s.kernels,
                               threads=s.num_threads)
        print(render_show(info, verbose=args.verbose), end="")
    return 0


def local_memory(s: Settings, resolver=None, name: str | None = None):
    """config -> the memory estimate of a model loaded by the engine settings `s` (OSSY_NUM_PARALLEL
    slots, OSSY_KERNELS) at the num_ctx a request gets by default: of the stored model `name`
    through `resolver`, else of a bare checkpoint (OSSY_CONTEXT_LENGTH or the default)."""

    from ossy.chat.models import memory_of  # lazy: torch, kept out of `ossy --help`
    from ossy.chat.options import resolve_options  # lazy: torch, kept out of `ossy --help`
    from ossy.engine.scheduler import memory_estimate  # lazy: torch, kept out of `ossy --help`
    from ossy.model.native import open_kernels  # lazy: torch, kept out of `ossy --help`

    native = open_kernels(s.kernels, s.num_threads) is not None
    estimate = functools.partial(memory_estimate, slots=s.num_parallel, native=native)
    if resolver is not None:
        return memory_of(resolver, name, estimate)
    defaults = {"num_ctx": s.context_length} if s.context_length else {}
    return lambda config: estimate(config, resolve_options(defaults, {}, context_length=config.context_length).num_ctx)


def _license(checkpoint: Checkpoint) -> str | None:
    """The LICENSE file beside config.json or, for `original/`, in the checkpoint root above it."""
    directories = [checkpoint.path] + ([checkpoint.path.parent] if checkpoint.path.name == "original" else [])
    for directory in directories:
        for name in _LICENSE_FILES:
            if (directory / name).is_file():
                return (directory / name).read_text(errors="replace")
    return None


# -- rendering ---------------------------------------------------------------------------------
def render_show(info: dict, *, verbose: bool = False, tools: bool = False, parameters: list[tuple] | None = None,
                system: str | None = None) -> str:
    """The `ollama show` text of an /api/show body (`ossy.store.show`): Model, Capabilities,
    Parameters, Tools (`tools`: a stored model's, from its Modelfile), with `verbose` Metadata,
    Parameter counts, Memory, Compute and Tensors (when the body has them), System, License.
    `parameters` / `system`: a REPL session's own, shown with or instead of the model's."""
    model_info = info.get("model_info") or {}
    sections = [("Model", _model_rows(info)), ("Capabilities", [(c,) for c in info.get("capabilities") or ()])]
    pairs = [tuple(line.split(None, 1)) for line in (info.get("parameters") or "").splitlines() if line.strip()]
    sections.append(("Parameters", pairs + list(parameters or [])))
    if tools:
        sections.append(("Tools", _tool_rows(info.get("toolsets") or [])))
    if verbose:
        sections += [
            ("Metadata", [(key, _value(value)) for key, value in sorted(model_info.items())]),
            ("Parameter counts", _count_rows(info.get("parameter_counts") or {})),
            ("Memory", _memory_rows(info)),
            ("Compute", list((info.get("compute") or {}).items())),
            ("Tensors", [(t["name"], t["type"], _shape(t["shape"])) for t in info.get("tensors") or ()]),
        ]
    if system or info.get("system"):
        sections.append(("System", head_rows(system or info["system"])))
    if info.get("license"):
        sections.append(("License", head_rows(info["license"])))
    return "\n".join(section_table(title, rows) for title, rows in sections if rows)


def _model_rows(info: dict) -> list[tuple]:
    details, model_info = info.get("details") or {}, info.get("model_info") or {}
    arch = model_info.get("general.architecture") or details.get("family") or ""
    rows = [("architecture", arch), ("parameters", details.get("parameter_size")),
            ("context length", model_info.get(f"{arch}.context_length")),
            ("embedding length", model_info.get(f"{arch}.embedding_length")),
            ("quantization", details.get("quantization_level"))]
    flavour = info.get("gguf_flavour")
    if flavour:  # whose flavour it is, and how ossy computes its YaRN (a GGUF cannot say)
        rows.append(("format", f"GGUF ({'llama.cpp' if flavour == 'gpt-oss' else 'Ollama'} '{flavour}' flavour)"))
        if (model_info.get(f"{arch}.rope.scaling.factor") or 1) > 1:
            rows.append(("rope", "YaRN, correction range untruncated as gpt-oss defines it (llama.cpp rounds it)"))
    return [(key, value) for key, value in rows if value not in (None, "")]


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


def _value(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _count_rows(counts: dict) -> list[tuple]:
    labels = {"total": "total", "active": "active per token"}
    return [(labels.get(key, key), f"{n:,}", human_number(n)) for key, n in counts.items()]


def _memory_rows(info: dict) -> list[tuple]:
    m = info.get("memory")
    rows = [("weight files", human_bytes(info["weight_files"]))] if "weight_files" in info else []
    if m:
        slots = f"{m['slots']} slot{'s' * (m['slots'] != 1)}"
        rows += [("weights in memory (experts MXFP4)", human_bytes(m["weights"])),
                 (f"kv cache, {slots} of {m['num_ctx']} tokens", human_bytes(m["kv_cache"])),
                 ("compute buffers", human_bytes(m["compute"])), ("runtime (Python, PyTorch)", human_bytes(m["runtime"])),
                 ("total", human_bytes(m["total"]))]
    return rows


def head_rows(text: str) -> list[tuple]:
    """The first two lines, then `...` if there is more (how ollama shows a license)."""
    lines = text.strip("\n").splitlines()
    return [(line,) for line in lines[:2]] + ([("...",)] if len(lines) > 2 else [])


def _shape(shape) -> str:
    return "[" + " ".join(map(str, shape)) + "]"


def show_named(args: argparse.Namespace) -> int:
    """`ossy show NAME [--modelfile|--template|--system|--parameters|--license|--verbose]`."""
    s = settings()
    library = Library.from_settings(s)
    model = get_or_hint(library, args.model)
    if args.modelfile:
        text = modelfile_text(model)
    elif args.template:
        text = model.template or ""
    elif args.system:
        text = model.system or ""
    elif args.parameters:
        text = parameters_text(model.parameters)
    elif args.license:
        text = "\n".join(model.licenses)
    else:
        from ossy.chat.models import StoreResolver  # lazy: torch, kept out of `ossy --help`

        resolver = StoreResolver(library, default_num_ctx=s.context_length)
        info = show_info(model, args.verbose, local_memory(s, resolver, args.model), s.kernels, s.num_threads)
        text = render_show(info, verbose=args.verbose, tools=True)
    print(text, end="" if not text or text.endswith("\n") else "\n")
    return 0


def get_or_hint(library: Library, name: str) -> Model:
    """`library.get(name)`; a bundled model not stored yet says how to store it (no network)."""
    try:
        return library.get(name)
    except NotFoundError:
        if parse_name(name) in bundled():
            raise NotFoundError(f"model '{name}' not found; it ships with ossy: 'ossy pull {name}' stores it "
                                f"(no network needed)") from None
        raise
