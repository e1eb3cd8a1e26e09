"""Quality of the nano model on the held-out split, through ossy's real chat path, greedy.

Draws `--per-kind` held-out conversations of each kind (small talk, tool use, facts, arithmetic,
developer instructions), each under its own setting (reasoning effort, instructions, the nano
toolsets declared or not), asks the model through `ossy.agent.EngineModel` (prompt rendering,
engine, harmony parser: what `ossy run`, `ossy serve` and the agent use), and reports:
  well-formed   the generation ends in <|return|> or <|call|> and parses without warnings (bar 98%)
  right tool    tool prompts: the first call names the expected tool, its arguments valid
                against that tool's schema (bar 90%)
  right answer  fact, arithmetic and instruction prompts: the final answer is right (bar 80%)
  used result   tool prompts with the right call, given the held-out conversation's tool result:
                the final answer is the conversation's, word for word (no bar; reported)

Reproduce (about 5-10 minutes on 2 cores):
    .venv/bin/python -m ossy.train /tmp/nano                          # train one (about 70 min)
    .venv/bin/python benchmarks/nano_quality.py --checkpoint /tmp/nano
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

BARS = {"well_formed": 0.98, "right_tool": 0.90, "right_answer": 0.80}


def open_model(checkpoint: Path, home: Path):
    """An `EngineModel` for `checkpoint`, created as "nano" from its Modelfile in a scratch store."""
    from ossy.agent import EngineModel
    from ossy.chat.models import StoreResolver
    from ossy.engine import LocalEngine
    from ossy.modelfile import parse_file
    from ossy.store import Library, Store, create

    library = Library(Store(home))
    create(library, "nano", parse_file(checkpoint / "Modelfile"), base_dir=checkpoint)
    return EngineModel(LocalEngine(num_parallel=1, keep_alive=600), StoreResolver(library).resolve("nano"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, required=True,
                        help="checkpoint directory written by `ossy train` (with its Modelfile)")
    parser.add_argument("--per-kind", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--verbose", action="store_true", help="print every failing case")
    args = parser.parse_args()

    import torch

    from ossy.train.evaluate import Report, answer_after_result, cases, run_case, score

    torch.set_num_threads(2)
    report = Report()
    start = time.monotonic()
    with tempfile.TemporaryDirectory() as home, open_model(args.checkpoint, Path(home)) as model:
        for case in cases(args.per_kind, args.seed):
            reply = run_case(model, case)
            s = score(case, reply)
            if s.right_tool:
                s = replace(s, used_result=answer_after_result(model, case, reply))
            report.add(case, s)
            if args.verbose and False in (s.well_formed, s.right_tool, s.right_answer, s.used_result):
                print(json.dumps({"kind": case.kind, "prompt": case.messages, "score": s.__dict__,
                                  "thinking": reply.thinking, "content": reply.content,
                                  "calls": [c.openai() for c in reply.tool_calls], "warnings": reply.warnings}))
    figures = report.figures()
    print(f"{report.counts['all']} generations in {time.monotonic() - start:.0f} s")
    for name, value in figures.items():
        bar = BARS.get(name)
        verdict = "" if bar is None else f"  (bar {bar:.0%}: {'pass' if value >= bar else 'FAIL'})"
        print(f"{name:<26} {value:7.1%}{verdict}")
    return 0 if all(figures[k] >= v for k, v in BARS.items()) else 1


if __name__ == "__main__":
    sys.exit(main())
