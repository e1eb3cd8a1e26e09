"""How often nano copies a directory name from the prompt into list_directory's arguments.

Asks "What files are in X?" and "List the files in X." for every directory name of the nano data
(training and held-out pools), with the nano tools declared, greedy, low effort, and counts the
replies whose only call is list_directory with {"path": X}. Not one of nano_quality.py's bars (its right-tool
figure checks the tool and schema-valid arguments); reported in evals/README.md.

Reproduce (about 1 minute on 2 cores):
    .venv/bin/python evals/nano_path_copy.py --checkpoint ossy/bundled/nano
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from ossy.train.evaluate import open_checkpoint

PHRASINGS = ("What files are in {}?", "List the files in {}.")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, required=True,
                        help="checkpoint directory written by `ossy train` (with its Modelfile)")
    args = parser.parse_args()

    import torch

    from ossy.train.data import declared_tools
    from ossy.train.facts import DIR_WORDS

    torch.set_num_threads(2)
    names = [name for pool in DIR_WORDS for name in pool]
    copied = 0
    with tempfile.TemporaryDirectory() as home, open_checkpoint(args.checkpoint, home) as model:
        for name in names:
            for question in (phrasing.format(name) for phrasing in PHRASINGS):
                reply = model.turn([{"role": "user", "content": question}], declared_tools(), think="low")
                calls = [(c.name.removeprefix("functions."), json.loads(c.arguments)) for c in reply.tool_calls]
                if calls == [("list_directory", {"path": name})]:
                    copied += 1
                else:
                    print(f"{question!r}: {calls}")
    print(f"copied the name {copied} times of {len(names) * len(PHRASINGS)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
