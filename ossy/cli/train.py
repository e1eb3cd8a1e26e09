"""`ossy train`: train the nano model (tokenizer + gpt-oss weights) and write its checkpoint.

Owns: the command's arguments and its output (progress lines on stdout). Does not own the
training itself (`ossy.train`).
"""

from __future__ import annotations

import argparse
from dataclasses import fields

from ossy.train.config import TrainConfig

_DEFAULTS = TrainConfig()


def register(subparsers) -> None:
    parser = subparsers.add_parser("train", help="train the small nano model from scratch",
                                   description="Train nano (a demo-sized gpt-oss) on synthetic harmony "
                                               "conversations and write a checkpoint directory.")
    _add_arguments(parser)
    parser.set_defaults(func=run)


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("output", help="checkpoint directory to write (must not exist)")
    for f in fields(TrainConfig):
        parser.add_argument(f"--{f.name.replace('_', '-')}", type=type(getattr(_DEFAULTS, f.name)),
                            default=getattr(_DEFAULTS, f.name), metavar=f.name.upper(),
                            help=f"(default {getattr(_DEFAULTS, f.name)})")


def run(args: argparse.Namespace) -> int:
    from ossy.train.export import export  # lazy: torch, kept out of `ossy --help`
    from ossy.train.trainer import train  # lazy: torch, kept out of `ossy --help`

    config = TrainConfig(**{f.name: getattr(args, f.name) for f in fields(TrainConfig)})
    model, tokenizer_json = train(config, log=lambda line: print(line, flush=True))
    path = export(model, tokenizer_json, args.output)
    print(f"wrote {path}", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ossy.train", description="Train the nano model.")
    _add_arguments(parser)
    return run(parser.parse_args(argv))
