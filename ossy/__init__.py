"""ossy: run OpenAI's gpt-oss models on your own machine.

The top-level package re-exports the small Python API (`ossy.load`) and owns nothing else, but
the library's logging rule: ossy's loggers have a NullHandler, so nothing is printed unless the
program configures logging (`ossy serve` does; the CLI says what it has to say itself).
"""

import logging

__version__ = "0.1.0"

logging.getLogger("ossy").addHandler(logging.NullHandler())


def load(path, dtype="bfloat16", **options):
    """Load a gpt-oss checkpoint directory; see `ossy.api.load` (options: kernels, threads...)."""
    from ossy.api import load as _load  # lazy: torch; every `import ossy.x` runs this file

    return _load(path, dtype=dtype, **options)
