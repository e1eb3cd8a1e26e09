"""Which loss weight on copied text makes nano answer from its tool results? A probe before a
full `ossy train` run, as copy_probe.py chose the learning rate and fact_probe.py the result
weight.

Trains a fresh nano-sized model (`ossy.train` defaults, the bundled tokenizer) on tool
conversations only (`ossy.train.data.tool_use` under settings that declare one of the nano
toolsets, its tools in their order or shuffled: short prefixes keep a step quick) for `--steps`
steps of `--per-step` conversations with `--copy-weight` on the call's arguments and on
the answer after the result, then asks it, greedy, through ossy's chat path, `--cases` held-out
tool requests: is the first call right (tool and schema-valid arguments), and given the
held-out result, is the answer the expected one word for word (`evaluate.answer_after_result`)?

    .venv/bin/python experiments/tool_probe.py --copy-weight 4 --steps 150 --threads 1

Measured (two weights run side by side, one thread each): a weight of 4 cost right calls (26/40
against 36/40 after 600 steps) and did not copy; README.md (nano's section) lists what else was tried.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from copy_probe import copy_pack
from ossy.train import data
from ossy.train.config import TrainConfig
from ossy.train.evaluate import Case, answer_after_result, open_checkpoint, run_case, score
from ossy.train.export import export
from ossy.train.model import Pack, TrainableGptOss
from ossy.train.trainer import learning_rate, load_tokenizer_text, nano_config, train_step

TOKENIZER = Path(__file__).resolve().parents[1] / "ossy" / "bundled" / "nano" / "tokenizer.json"


def tool_setting(rng: random.Random) -> data.Setting:
    setting = data.sample_setting(rng)
    return replace(setting, toolsets=(rng.choice(data.NANO_TOOLSETS),),
                   shuffle=rng.randrange(2**31) if rng.random() < 0.5 else None)


def tool_pack(rng: random.Random, split: str, per_step: int, tok, copy_weight: float, drill: float) -> Pack:
    setting = tool_setting(rng)
    convos = [(data.copy_drill if rng.random() < drill else data.tool_use)(rng, split, setting)
              for _ in range(per_step)]
    return Pack.build(data.prefix_ids(setting, tok), [data.encode(setting, c, tok, 1.0, copy_weight) for c in convos])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--copy-weight", type=float, default=TrainConfig.copy_weight)
    parser.add_argument("--drill", type=float, default=0.0,
                        help="fraction of the conversations that are copy drills (`data.copy_drill`)")
    parser.add_argument("--copy-warmup", type=int, default=0,
                        help="first train this many steps on random token runs shown twice (copy_probe.py's "
                             "packs): the copying mechanism alone")
    parser.add_argument("--copy-alphabet", type=int, default=64, help="token ids 0..N-1 in the warm-up runs")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--per-step", type=int, default=12, help="conversations per step")
    parser.add_argument("--cases", type=int, default=40)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    tokenizer_json = TOKENIZER.read_text()
    tok = load_tokenizer_text(tokenizer_json)
    config = TrainConfig(steps=args.steps, warmup_steps=min(100, args.steps // 10))
    model = TrainableGptOss(nano_config(config), seed=0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, betas=(0.9, 0.95), weight_decay=config.weight_decay)
    rng, start, losses = random.Random(0), time.monotonic(), []
    for step in range(args.steps):
        if step < args.copy_warmup:
            pack = copy_pack(rng, 32, args.copy_alphabet)
        else:
            pack = tool_pack(rng, data.TRAIN, args.per_step, tok, args.copy_weight, args.drill)
        losses.append(train_step(model, optimizer, pack, learning_rate(config, step), config.clip_norm))
        if (step + 1) % 25 == 0:
            print(f"copy weight {args.copy_weight:g} drill {args.drill:g} step {step + 1}: loss {sum(losses[-25:]) / 25:.3f}  "
                  f"{time.monotonic() - start:.0f} s", flush=True)
    heldout = random.Random(1)
    cases = []
    for _ in range(args.cases):
        setting = tool_setting(heldout)
        cases.append(Case("tool", setting, data.tool_use(heldout, data.HELDOUT, setting)))
    right = used = named = 0
    with tempfile.TemporaryDirectory() as tmp:
        export(model, tokenizer_json, Path(tmp) / "probe")
        with open_checkpoint(Path(tmp) / "probe", Path(tmp) / "home") as chat:
            for case in cases:
                reply = run_case(chat, case)
                if score(case, reply).right_tool:
                    right += 1
                    exact, names = answer_after_result(chat, case, reply)
                    used, named = used + exact, named + names
    print(f"copy weight {args.copy_weight:g}, drill {args.drill:g}, copy warm-up {args.copy_warmup} (alphabet {args.copy_alphabet}), {args.steps} steps: right tool {right}/{len(cases)}, "
          f"answer from the result {used}/{right} word for word, naming only what it shows {named}/{right}  "
          f"({time.monotonic() - start:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
