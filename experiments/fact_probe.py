"""How fast does a nano-sized model learn the one-digit facts column working is made of?

Trains a fresh nano-sized model (`ossy.train` defaults) on arithmetic conversations and the
digit-fact drill only (`ossy.train.data`, 6 : 4, no tools), with the digits of each result
weighted `--result-weight` in the loss, and reports every 100 steps how many one-digit facts in
the column working of held-out sums it gets right, teacher-forced ("7 + 5 + 1 = 13" is right
when it predicts both 1 and 3 after "= "), by operation. This is how nano's `result_weight` was
chosen: with every result digit weighted like any other token, the facts stayed near guessing
while the copying around them (operands, "write", "So") was learned.

    .venv/bin/python experiments/fact_probe.py --result-weight 4 --steps 600

Measured (2-core CPU, 2 threads, 9 min a run; held-out facts right, + / - / *):

    result weight   step 300        step 400        step 500        step 600
    4               26% 17% 28%     58% 42% 58%     88% 70% 73%     95% 82% 85%
    1               13% 15% 26%     23% 24% 42%     46% 45% 64%     67% 66% 72%
"""

from __future__ import annotations

import argparse
import random
import re
import time
from collections import Counter

import torch

from ossy.train import data
from ossy.train.config import TrainConfig
from ossy.train.model import Pack, TrainableGptOss
from ossy.train.tokenizer import train_tokenizer
from ossy.train.trainer import learning_rate, load_tokenizer_text, nano_config, train_step

KINDS, WEIGHTS = (data.arithmetic, data.digit_facts), (6, 4)
_FACT_ANSWER = re.compile(r"\b(\d+(?: [-+*] \d+)+) = $")


def training_pack(rng: random.Random, tokenizer, runs: int, result_weight: float) -> Pack:
    setting = data.Setting(rng.choice(data.REASONING_EFFORTS), "2025-01-01")
    convos = [rng.choices(KINDS, WEIGHTS)[0](rng, data.TRAIN, setting) for _ in range(runs)]
    return Pack.build(data.prefix_ids(setting, tokenizer),
                      [data.encode(setting, c, tokenizer, result_weight) for c in convos])


def fact_answers(tokenizer, tokens: list[tuple[int, float]], table: dict[str, str]) -> list[tuple[str, list[int]]]:
    """(operation, [indices of the answer's digits in `tokens`]) of each one-digit fact the model
    produces in `tokens`."""
    found, text = [], ""
    for j, (token, weight) in enumerate(tokens):
        match = _FACT_ANSWER.search(text)
        if weight and match and match.group(1) in table:
            digits = len(table[match.group(1)])
            found.append((next(op for op in "+-*" if f" {op} " in match.group(1)), list(range(j, j + digits))))
        text = (text + tokenizer.decode([token]))[-40:]
    return found


def held_out(tokenizer, packs: int = 8, runs: int = 24):
    """Packs of held-out sums (low effort: the working alone) with their fact answers."""
    rng, table, out = random.Random(5), dict(data.column_facts()), []
    for _ in range(packs):
        setting = data.Setting("low", "2025-01-01")
        encoded = [data.encode(setting, data.arithmetic(rng, data.HELDOUT, setting), tokenizer) for _ in range(runs)]
        pack = Pack.build(data.prefix_ids(setting, tokenizer), encoded)
        answers = [(op, [start + j for j in digits]) for (start, _), tokens in zip(pack.spans, encoded)
                   for op, digits in fact_answers(tokenizer, tokens, table)]
        out.append((pack, answers))
    return out


@torch.no_grad()
def facts_right(model: TrainableGptOss, evaluation) -> dict[str, float]:
    right, total = Counter(), Counter()
    for pack, answers in evaluation:
        predicted = model.next_tokens(pack)
        for op, digits in answers:
            right[op] += all(predicted[i - 1] == pack.ids[i] for i in digits)
            total[op] += 1
    return {op: right[op] / total[op] for op in "+-*"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--result-weight", type=float, default=TrainConfig.result_weight)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--runs", type=int, default=24, help="conversations per step")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    tokenizer = load_tokenizer_text(train_tokenizer(data.corpus(3000, 0), TrainConfig.vocab_size))
    model = TrainableGptOss(nano_config(TrainConfig()), seed=0)
    schedule = TrainConfig(steps=args.steps)
    optimizer = torch.optim.AdamW(model.parameters(), lr=schedule.lr, betas=(0.9, 0.95), weight_decay=0.01)
    evaluation, rng, start = held_out(tokenizer), random.Random(1), time.monotonic()
    for step in range(args.steps):
        train_step(model, optimizer, training_pack(rng, tokenizer, args.runs, args.result_weight),
                   learning_rate(schedule, step), schedule.clip_norm)
        if (step + 1) % 100 == 0:
            right = "  ".join(f"{op} {rate:.0%}" for op, rate in facts_right(model, evaluation).items())
            print(f"result weight {args.result_weight:g} step {step + 1}: held-out facts right {right}  "
                  f"{time.monotonic() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
