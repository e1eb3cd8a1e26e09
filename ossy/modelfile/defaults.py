"""What Ollama's library entry gives gpt-oss, for a model created from a bare checkpoint.

Owns `gptoss_defaults()`: the library TEMPLATE (package data `gptoss/template.gotmpl`, the
`ollama show gpt-oss:20b --template` text, kept byte for byte: no trailing newline),
`PARAMETER temperature 1`, and the Apache License 2.0 as the library ships it (package data
`gptoss/LICENSE`: a leading blank line, no trailing newline). FROM is left empty for the
caller. Does not decide when the defaults apply; the store does, with
`Modelfile.with_defaults`.
"""

from __future__ import annotations

from importlib import resources

from ossy.modelfile.modelfile import Modelfile


def gptoss_defaults() -> Modelfile:
    """A fresh Modelfile holding the gpt-oss library defaults (FROM empty)."""
    data = resources.files(__package__) / "gptoss"
    return Modelfile(
        template=(data / "template.gotmpl").read_text(encoding="utf-8"),
        parameters={"temperature": 1.0},
        licenses=[(data / "LICENSE").read_text(encoding="utf-8")],
    )
