"""Quality of the nano model on the held-out split, through ossy's real chat path, greedy.

Draws `--per-kind` held-out conversations of each kind (small talk, repeat, a tool request whose
tool is declared, one whose tool is not, facts, arithmetic, developer instructions), each under its
own setting (reasoning effort, instructions, declared toolsets: any subset, any order; or the
ones `--toolsets` names for every case), asks the model through `ossy.agent.EngineModel` (prompt
rendering, engine, harmony parser: what `ossy run`, `ossy serve` and the agent use), and reports:
  well-formed   the generation ends in <|return|> or <|call|> and parses without warnings (bar 98%)
  right tool    tool requests: the first call names the expected tool, its arguments valid
                against that tool's schema; or no call when the tool is not declared (bar 95%)
  right answer  fact, arithmetic and instruction prompts: the final answer is right (bar 80%)
  named result  tool requests with the right call, given the held-out conversation's tool
                result: the answer names what the result shows and nothing it does not (bar 90%)
  used result   the same answer is the conversation's, word for word (reported)

Reproduce (about 5-10 minutes on 2 cores a run):
    .venv/bin/ossy train /tmp/nano                                    # train one
    .venv/bin/python evals/nano_quality.py --checkpoint /tmp/nano
    .venv/bin/python evals/nano_quality.py --checkpoint /tmp/nano --toolsets fs     # also: all, none
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

BARS = {"well_formed": 0.98, "right_tool": 0.95, "right_answer": 0.80, "named_result": 0.90}  # README.md's bar row


def toolsets_of(value: str | None) -> tuple[str, ...] | None:
    from ossy.train.data import ALL_TOOLSETS

    if value is None:
        return None
    return {"none": (), "all": ALL_TOOLSETS}.get(value, tuple(value.split(",")))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, required=True,
                        help="checkpoint directory written by `ossy train` (with its Modelfile)")
    parser.add_argument("--per-kind", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--toolsets", help="declare these toolsets in every case instead of each case's own "
                                           "(comma-separated: fs,shell,system; all; none)")
    parser.add_argument("--verbose", action="store_true", help="print every failing case")
    args = parser.parse_args()

    import torch

    from ossy.train.evaluate import Report, answer_after_result, cases, open_checkpoint, run_case, score

    torch.set_num_threads(2)
    report = Report()
    start = time.monotonic()
    with tempfile.TemporaryDirectory() as home, open_checkpoint(args.checkpoint, home) as model:
        for case in cases(args.per_kind, args.seed, toolsets_of(args.toolsets)):
            reply = run_case(model, case)
            s = score(case, reply)
            if s.right_tool and case.expected_call:
                used, named = answer_after_result(model, case, reply)
                s = replace(s, used_result=used, named_result=named)
            report.add(case, s)
            if args.verbose and False in (s.well_formed, s.right_tool, s.right_answer, s.named_result):
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
