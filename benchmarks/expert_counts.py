"""What counting expert routing costs: decode steps with the counting (`GptOss._count_routing`)
against the same model with the counting taken out, alternating, in one process.

A random checkpoint at full gpt-oss width (`benchmarks/engine.py`'s: hidden 2880, 32 experts of
width 2880, top-4, MXFP4 experts on the native kernels when built) with `--layers` layers and a
`--vocab` vocabulary; each round decodes `--steps` tokens after a short prompt, once with and
once without counting, in alternating order; best and median per-step times are reported, and
their ratio.

    .venv/bin/python benchmarks/expert_counts.py --layers 4 --rounds 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from engine import full_width_config, random_tensors  # noqa: E402

from ossy.model.gptoss import GptOss  # noqa: E402


class Uncounted(GptOss):
    """The shipped model with the routing counts left out (nothing else differs)."""

    def _count_routing(self, choices, lengths):
        return None


def decode_seconds(model: GptOss, steps: int) -> float:
    """Seconds per decode step, after a 16-token prompt."""
    cache = model.new_cache()
    model.forward(torch.arange(16), cache, last_only=True)
    start = time.perf_counter()
    token = torch.tensor([1])
    for _ in range(steps):
        model.forward(token, cache, last_only=True)
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=32768)
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    import ossy
    from ossy.model.weights import save_checkpoint

    with tempfile.TemporaryDirectory() as tmp:
        config = full_width_config(args.layers, args.vocab)
        save_checkpoint(Path(tmp) / "model", config, random_tensors(config), mxfp4=True)
        counted = ossy.load(Path(tmp) / "model").model
        uncounted = Uncounted(counted.config, counted.embed, counted.layers, counted.norm, counted.unembed,
                              counted.dtype, counted.kernels)
        print(f"{args.layers} full-width layers, vocab {args.vocab}, backend {counted.backend}; "
              f"{args.rounds} rounds of {args.steps} decode steps each")
        times: dict[str, list[float]] = {"counted": [], "uncounted": []}
        for r in range(args.rounds):
            order = (("counted", counted), ("uncounted", uncounted))
            for name, model in order if r % 2 == 0 else order[::-1]:
                times[name].append(decode_seconds(model, args.steps))
        for name, seconds in times.items():
            print(f"{name:<10} best {min(seconds) * 1e3:7.2f} ms/step  median {statistics.median(seconds) * 1e3:7.2f}")
        print(f"counted / uncounted: best {min(times['counted']) / min(times['uncounted']):.3f}x, "
              f"median {statistics.median(times['counted']) / statistics.median(times['uncounted']):.3f}x")


if __name__ == "__main__":
    main()
