"""ossy: run OpenAI's gpt-oss models on your own machine.

The top-level package re-exports the small Python API (`ossy.load`) and owns nothing else.
"""

__version__ = "0.1.0"


def load(path, dtype="bfloat16"):
    """Load a gpt-oss checkpoint directory; see `ossy.api.load`."""
    from ossy.api import load as _load

    return _load(path, dtype=dtype)
