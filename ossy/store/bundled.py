"""Models that ship inside the ossy package, as the store installs them: available with no network.

Owns: where the bundled checkpoint directories live (package data `ossy/bundled/<name>/`: a gpt-oss
checkpoint plus the Modelfile it is created from; `ossy.bundled` says what each model is),
`install`, which stores one in a `Library` exactly as `ossy create <name> -f <dir>/Modelfile`
would (and as `ossy pull nano` does, from the package), and `install_missing`, the explicit step
`ossy serve` (and the in-process server) takes when it starts: each bundled model a store has
never had is stored once (one `ossy rm` keeps it out; `ossy pull nano` brings it back, from the
package, with no network). After that it is an ordinary model of the ossy store.
Does not own: looking models up (`ossy.store.store`, which only reads), or how the models were
made (`ossy.train`).
"""


from __future__ import annotations

from importlib import resources
from pathlib import Path

from ossy.errors import OssyError
from ossy.modelfile import parse_file
from ossy.store.create import create
from ossy.store.files import atomic_write
from ossy.store.names import ModelName, parse_name

PACKAGE = "ossy.bundled"  # the package data holding each bundled model's directory

NAMES = ("nano",)


def bundled() -> dict[ModelName, Path]:
    """Each bundled model's name and checkpoint directory (those present in this install)."""
    root = Path(str(resources.files(PACKAGE)))
    return {parse_name(name): root / name for name in NAMES if (root / name / "Modelfile").is_file()}


OFFERED = "bundled-offered"  # in the store's root: the bundled names install_missing has stored once


def install(library, name: ModelName, directory: Path):
    """Create `name` in `library`'s ossy store from the bundled `directory`; the stored Model."""
    return create(library, str(name), parse_file(directory / "Modelfile"), base_dir=directory)


def install_missing(library) -> list[str]:
    """Store each bundled model this store never had; what kept one out (a full disk...), which
    is tried again next time."""
    marker = library.store.root / OFFERED
    offered = set(marker.read_text().split()) if marker.is_file() else set()
    new, problems = [], []
    for name, directory in bundled().items():
        if str(name) in offered:
            continue
        try:
            if library.find(name) is None:
                install(library, name, directory)
            new.append(str(name))
        except (OssyError, OSError) as e:
            problems.append(f"the bundled model {name} could not be created: {e}")
    if new:
        try:
            atomic_write(marker, "".join(f"{name}\n" for name in sorted({*offered, *new})).encode())
        except OSError:  # only a note of what was stored: stored again next time
            pass
    return problems
