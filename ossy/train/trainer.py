"""Training nano: tokenizer, model, optimisation loop, progress.

Owns: `nano_config` (the architecture), `train`, which trains the tokenizer on the corpus and then
the model on packs of conversations, reporting step, loss, held-out loss, tokens/s, elapsed and
time left. Seeded: the same config gives the same weights (on the same torch build and thread
count). Does not own: the data (`ossy.train.data`), the math (`ossy.train.model`) or writing
the checkpoint (`ossy.train.export`).
"""

from __future__ import annotations

import math
import random
import tempfile
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch

from ossy import tokenizer as tokenizers
from ossy.model.config import FULL, SLIDING, GptOssConfig
from ossy.train import data
from ossy.train.config import TrainConfig
from ossy.train.model import Pack, TrainableGptOss
from ossy.train.tokenizer import train_tokenizer


def nano_config(c: TrainConfig) -> GptOssConfig:
    """gpt-oss at demo size: MoE (8 experts, top 2), sinks, sliding/full layers, YaRN rope."""
    return GptOssConfig(
        vocab_size=c.vocab_size, hidden_size=c.hidden_size, intermediate_size=c.hidden_size,
        num_hidden_layers=c.layers, num_attention_heads=c.heads, num_key_value_heads=2, head_dim=64,
        num_local_experts=8, num_experts_per_tok=2, sliding_window=128,
        layer_types=tuple(SLIDING if i % 2 == 0 else FULL for i in range(c.layers)),
        rope_scaling_factor=32.0, original_max_position_embeddings=4096, max_position_embeddings=131072,
        rope_truncate=False,
    )


def learning_rate(c: TrainConfig, step: int) -> float:
    """Linear warm-up, then cosine decay to `min_lr_fraction` of the peak."""
    if step < c.warmup_steps:
        return c.lr * (step + 1) / c.warmup_steps
    progress = (step - c.warmup_steps) / max(1, c.steps - c.warmup_steps)
    return c.lr * (c.min_lr_fraction + (1 - c.min_lr_fraction) * 0.5 * (1 + math.cos(math.pi * progress)))


def load_tokenizer_text(text: str):
    """A `Tokenizer` from tokenizer.json text (loaded as ossy loads a model's file)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tokenizer.json"
        path.write_text(text)
        return tokenizers.load(path)


def packs(c: TrainConfig, split: str, tokenizer):
    """The steps' packs: `copy_warmup` packs of repeated random runs (the copying mechanism
    alone), then conversations, each pack under one setting."""
    runs = random.Random(f"runs:{split}:{c.seed}")
    for _ in range(c.copy_warmup):
        yield Pack.build([], data.repeated_runs(runs, c.copy_runs, c.copy_alphabet))
    for setting, conversations in data.batches(split, c.seed, c.conversations_per_step):
        yield Pack.build(data.prefix_ids(setting, tokenizer),
                         [data.encode(setting, convo, tokenizer, c.result_weight, c.copy_weight)
                         for convo in conversations])


def _fmt(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Progress:
    """One line per `log_every` steps: step, loss, tokens/s, elapsed, time left (from the pace of
    the last `RECENT` steps)."""

    RECENT = 100

    def __init__(self, c: TrainConfig, log: Callable[[str], None]) -> None:
        self.c, self.log = c, log
        self.start = time.monotonic()
        self.tokens = 0
        self.loss: float | None = None
        self.finished: deque[float] = deque([self.start], maxlen=self.RECENT + 1)  # times steps ended

    def step(self, step: int, loss: float, tokens: int) -> None:
        self.tokens += tokens
        self.loss = loss if self.loss is None else 0.95 * self.loss + 0.05 * loss
        now = time.monotonic()
        self.finished.append(now)
        done = step + 1
        if done % self.c.log_every and done != self.c.steps:
            return
        elapsed = now - self.start
        left = (now - self.finished[0]) / (len(self.finished) - 1) * (self.c.steps - done)
        self.log(f"step {done}/{self.c.steps}  loss {self.loss:.3f}  {self.tokens / elapsed:,.0f} tok/s  "
                 f"elapsed {_fmt(elapsed)}  left {_fmt(left)}")


@torch.no_grad()
def heldout_loss(model: TrainableGptOss, batches: list[Pack]) -> float:
    return sum(float(model(p)) for p in batches) / len(batches)


def train_step(model: TrainableGptOss, optimizer: torch.optim.Optimizer, pack: Pack, lr: float,
               clip_norm: float) -> float:
    """One optimizer step on `pack` at learning rate `lr`, gradients clipped to `clip_norm`;
    returns the loss before the step."""
    for group in optimizer.param_groups:
        group["lr"] = lr
    loss = model(pack)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
    optimizer.step()
    return loss.item()


def train(c: TrainConfig, log: Callable[[str], None] = print) -> tuple[TrainableGptOss, str]:
    """Train the tokenizer and the model; returns (model, tokenizer.json text)."""
    torch.set_num_threads(c.threads)
    torch.manual_seed(c.seed)
    log(f"training the tokenizer ({c.vocab_size} tokens) on {c.tokenizer_conversations} conversations")
    tokenizer_json = train_tokenizer(data.corpus(c.tokenizer_conversations, c.seed), c.vocab_size)
    tokenizer = load_tokenizer_text(tokenizer_json)
    model = TrainableGptOss(nano_config(c), seed=c.seed)
    log(f"model: {sum(p.numel() for p in model.parameters()):,} parameters; {c.steps} steps: {c.copy_warmup} of "
        f"{c.copy_runs} repeated random runs, then of {c.conversations_per_step} conversations")
    decay = [p for p in model.parameters() if p.ndim >= 2]
    other = [p for p in model.parameters() if p.ndim < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": c.weight_decay},
                                   {"params": other, "weight_decay": 0.0}], lr=c.lr, betas=(0.9, 0.95))
    heldout = [p for p, _ in zip(packs(replace(c, copy_warmup=0), data.HELDOUT, tokenizer), range(4))]
    progress = Progress(c, log)
    conversations = packs(c, data.TRAIN, tokenizer)
    for step, pack in zip(range(c.steps), conversations):
        loss = train_step(model, optimizer, pack, learning_rate(c, step), c.clip_norm)
        progress.step(step, loss, len(pack.ids))
        if (step + 1) % c.eval_every == 0 or step + 1 == c.steps:
            log(f"step {step + 1}: held-out loss {heldout_loss(model, heldout):.3f}")
    return model, tokenizer_json
