"""Models that ship inside the ossy package, available by name without a pull.

Owns: where the bundled checkpoint directories live (package data `ossy/bundled/<name>/`: a gpt-oss
checkpoint plus the Modelfile it is created from) and `install`, which stores one in a
`Library` the first time it is asked for, exactly as `ossy create <name> -f <dir>/Modelfile`
would. After that it is an ordinary model of the ossy store (list, show, cp, rm).
Does not own: the store (`ossy.store`) or how the models were made (`ossy.train`).

nano: a demo-sized model with the gpt-oss architecture (MoE with MXFP4 experts, sinks, sliding
and full attention, YaRN) and its own small tokenizer, trained by `ossy train` on synthetic
harmony conversations. It is not gpt-oss-20b: it knows a fact table, works sums column by column
(mostly wrongly), and calls the fs, shell and system tools.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from ossy.store.names import ModelName, parse_name

NAMES = ("nano",)


def bundled() -> dict[ModelName, Path]:
    """Each bundled model's name and checkpoint directory (those present in this install)."""
    root = Path(str(resources.files(__package__)))
    return {parse_name(name): root / name for name in NAMES if (root / name / "Modelfile").is_file()}


def install(library, name: ModelName, directory: Path):
    """Create `name` in `library`'s ossy store from the bundled `directory`; the stored Model."""
    from ossy.modelfile import parse_file
    from ossy.store.create import create

    return create(library, str(name), parse_file(directory / "Modelfile"), base_dir=directory)
